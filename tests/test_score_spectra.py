"""score_spectra: eps_key, eps_FR and the mix vs full compute along one real FRDiff run."""

import json

import pytest
import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, set_scheduler
from frdiff.analysis import full_compute_twin, score_spectra
from frdiff.mixing import in_space
from frdiff.targets import find_blocks
from test_accelerate import no_instance_forwards

N = 10  # uniform(N, 2) with the default mixing: lam 0 at steps 1, 3; 0.5 at 5; 1 at 7, 9
LABELS = ["A", "7", "K"]


def plain(pipe, policy, mixing, labels=LABELS, **kwargs):
    """The same run through accelerate alone, nothing observing it."""
    with accelerate(pipe, policy, mixing):
        return pipe(labels, num_inference_steps=policy.num_steps, output_type="pt",
                    generator=torch.Generator().manual_seed(0), **kwargs).images


def assert_restored(pipe, model, scheduler, scheduler_keys):
    assert pipe.denoiser is model and pipe.scheduler is scheduler
    assert no_instance_forwards(model) and not hasattr(model, "_frdiff_run")
    assert set(scheduler.__dict__) == scheduler_keys and "step" not in scheduler.__dict__


@pytest.mark.parametrize("scheduler", ["ddim", "dpmsolver"])
def test_spectra_follow_the_run_the_sampler_made(tiny_pipe, scheduler):
    if scheduler != "ddim":
        set_scheduler(tiny_pipe, scheduler)
    model, sched = tiny_pipe.denoiser, tiny_pipe.scheduler
    keys = set(sched.__dict__)
    policy, mixing = KeyframePolicy.uniform(N, 2), ScoreMixing()
    spec = score_spectra(tiny_pipe, policy, mixing, N, class_labels=LABELS)
    assert torch.equal(spec.images, plain(tiny_pipe, policy, mixing))  # observed, not changed
    assert_restored(tiny_pipe, model, sched, keys)
    assert spec.space == ("eps" if scheduler == "ddim" else "x0")
    assert spec.kinds == ["keyframe", "no call"] * 2 + ["keyframe", "reuse"] * 3
    assert spec.lam == [1.0, 0.0, 1.0, 0.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert spec.bands == list(range(9)) and sorted(spec.per_step) == [1, 3, 5, 7, 9]
    for step, spectra in spec.per_step.items():
        assert set(spectra) == {"eps_key", "eps_fr", "mixed"}  # eps_FR even where no call ran
        assert all(len(v) == 9 and all(e >= 0 for e in v) for v in spectra.values())
        if spec.lam[step] == 0.0:
            assert spectra["mixed"] == spectra["eps_key"] != spectra["eps_fr"]
        if spec.lam[step] == 1.0:
            assert spectra["mixed"] == spectra["eps_fr"] != spectra["eps_key"]
    assert spec.mean == spec.per_step[5]  # the one step with 0 < lam < 1
    mid = spec.per_step[5]
    assert mid["mixed"] not in (mid["eps_key"], mid["eps_fr"])
    data = json.loads(json.dumps(spec.as_dict()))
    assert data["space"] == spec.space and data["mean"] == spec.mean and "images" not in data


@pytest.mark.parametrize("mixing, same_as", [(ScoreMixing.off(), "eps_fr"),
                                             (ScoreMixing.reduced_nfe(), "eps_key")])
def test_pure_fr_mixes_nothing_and_reduced_nfe_is_the_keyframe(tiny_pipe, mixing, same_as):
    policy = KeyframePolicy.uniform(N, 2)
    spec = score_spectra(tiny_pipe, policy, mixing, N, class_labels=LABELS)
    assert torch.equal(spec.images, plain(tiny_pipe, policy, mixing))
    assert sorted(spec.per_step) == [1, 3, 5, 7, 9] and spec.mean is None  # lam is 0 or 1
    for spectra in spec.per_step.values():
        assert spectra["mixed"] == spectra[same_as]
        assert spectra["eps_fr"] != spectra["eps_key"]
    assert set(spec.kinds[1::2]) == {"reuse" if same_as == "eps_fr" else "no call"}


def test_full_compute_twin_shares_the_weights(tiny_pipe):
    model = tiny_pipe.denoiser
    twin = full_compute_twin(model)
    assert twin is not model and all(a is b for a, b in zip(twin.parameters(), model.parameters()))
    assert all(a is b for a, b in zip(twin.buffers(), model.buffers()))
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2)):
        assert no_instance_forwards(twin)  # accelerate replaces the model's forwards only
        with pytest.raises(RuntimeError, match="inside an accelerate"):
            full_compute_twin(model)


def test_all_keyframe_policy_has_no_reuse_step(tiny_pipe):
    spec = score_spectra(tiny_pipe, KeyframePolicy.uniform(N, 1), ScoreMixing(), N, class_labels=LABELS)
    full = tiny_pipe(LABELS, num_inference_steps=N, output_type="pt",
                     generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(spec.images, full)
    assert spec.per_step == {} and spec.mean is None and spec.bands == []
    assert spec.kinds == ["keyframe"] * N and spec.lam == [1.0] * N


def test_analysis_fr_forward_leaves_the_caches_alone(tiny_pipe):
    """At a lam = 0 step the FR forward for eps_FR runs a K block, which refreshes its caches;
    the real run must still see the caches of step 0 at step 4."""
    n, steps = len(find_blocks(tiny_pipe.denoiser)), 8  # lam 0 at steps 1-3, 0.5 at 4, 1 after
    k, f = "K" * n, "F" * n
    names = tuple(b.name for b in find_blocks(tiny_pipe.denoiser))
    policy = KeyframePolicy((k, "K" + "F" * (n - 1), f, f, f, k, f, f), names)
    spec = score_spectra(tiny_pipe, policy, ScoreMixing(), steps, class_labels=LABELS)
    assert torch.equal(spec.images, plain(tiny_pipe, policy, ScoreMixing()))
    assert spec.kinds == ["keyframe"] + ["no call"] * 3 + ["reuse", "keyframe", "reuse", "reuse"]
    assert spec.mean == spec.per_step[4]


def test_observer_sees_exactly_what_the_scheduler_is_handed(tiny_pipe):
    """No CFG (guidance 1): the model output is what scheduler.step receives."""
    sched = tiny_pipe.scheduler
    handed, events = [], []
    step = sched.step
    sched.step = lambda out, *a, **k: (handed.append(out.clone()), step(out, *a, **k))[1]
    policy, mixing = KeyframePolicy.uniform(N, 2), ScoreMixing()
    try:
        with accelerate(tiny_pipe, policy, mixing) as run:
            run.observer = events.append
            observed = tiny_pipe(LABELS, num_inference_steps=N, guidance_scale=1.0, output_type="pt",
                                 generator=torch.Generator().manual_seed(0)).images
    finally:
        del sched.step
    assert torch.equal(observed, plain(tiny_pipe, policy, mixing, guidance_scale=1.0))
    assert [e.step for e in events] == [1, 3, 5, 7, 9] and len(handed) == N
    for e in events:
        assert torch.equal(e.output[:, :3], handed[e.step])
        used = in_space(e.space, handed[e.step], e.x, e.alpha, e.sigma, e.prediction_type)
        torch.testing.assert_close(used, e.mixed, atol=1e-5, rtol=1e-5)
        assert e.lam == policy.reuse_weight(e.step, mixing) and e.fr is not None
        if e.lam == 0.0:
            assert torch.equal(e.mixed, e.key)
        elif e.lam == 1.0:
            assert torch.equal(e.mixed, e.fr)
        else:
            torch.testing.assert_close(e.mixed, e.lam * e.fr + (1 - e.lam) * e.key)
    assert no_instance_forwards(tiny_pipe.denoiser)


def test_n_steps_have_no_fr_output_and_policies_are_checked(tiny_pipe):
    policy = KeyframePolicy.uniform(6, 2, reuse="none")
    spec = score_spectra(tiny_pipe, policy, ScoreMixing(), 6, class_labels=LABELS)
    assert sorted(spec.per_step) == [1, 3, 5] and spec.kinds[1::2] == ["no call"] * 3
    assert all(set(s) == {"eps_key", "mixed"} and s["mixed"] == s["eps_key"]
               for s in spec.per_step.values())
    with pytest.raises(ValueError, match="covers 6 steps"):
        score_spectra(tiny_pipe, policy, ScoreMixing(), 8, class_labels=LABELS)
    with pytest.raises(ValueError, match="generator"):
        score_spectra(tiny_pipe, policy, ScoreMixing(), 6, class_labels=LABELS,
                      generator=torch.Generator())
