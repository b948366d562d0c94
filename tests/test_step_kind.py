"""KeyframePolicy.step_kind: keyframe, reuse (a forward mixed with lam > 0) or no call."""

from frdiff import KeyframePolicy, ScoreMixing


def test_step_kind_follows_modes_and_mixing():
    policy = KeyframePolicy(("KK", "FS", "NN", "KF", "FF", "SS"), ("a", "b"))
    mixing = ScoreMixing()  # lam(r) = 0 up to r = 0.43, 1 from r = 0.57 on
    kinds = [policy.step_kind(s, mixing) for s in range(policy.num_steps)]
    assert kinds == ["keyframe", "no call", "no call", "reuse", "reuse", "reuse"]
    assert [policy.step_kind(s, ScoreMixing.off()) for s in range(6)] == [
        "keyframe", "reuse", "no call", "reuse", "reuse", "reuse"]  # N makes no call whatever lam
    assert {policy.step_kind(s, ScoreMixing.reduced_nfe()) for s in range(1, 6)} == {"no call"}
    for s in range(6):  # consistent with the existing queries
        assert (policy.step_kind(s, mixing) != "no call") == policy.makes_call(s, mixing)
