"""Guidance reuse (KeyframePolicy.uncond, "the unconditional branch reuses longer"): at an uncond
R step the model runs on the conditional half of the batched CFG call and the unconditional half
is rebuilt from the last guidance difference. Checked against a sampler written here, on half
the batch, with its cost counted, combined with block reuse and forecasts, in every policy
format, and refused where it cannot apply."""

from types import SimpleNamespace

import pytest
import torch

from conftest import LABELS, tiny_dit, tiny_unet
from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.cost import CallCosts
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler
from frdiff.sampler import CacheStore, ForecastStore


def pipe_of(model):
    pipe = GlyphPipeline.from_model(model, build_scheduler(), labels=LABELS)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, steps, guidance_scale=4.0):
    return pipe(["A", "7", "C"], num_inference_steps=steps, guidance_scale=guidance_scale,
                generator=torch.Generator().manual_seed(0), output_type="pt").images


def reference(pipe, steps: int, uncond: str):
    """The same sampling, guidance reused by hand: at R steps the model sees the conditional
    rows only, and uncond = cond - (cond - uncond) of the last step that ran both."""
    model, calls, guidance = pipe.denoiser, [0], [None]
    original = model.forward

    def forward(x, timestep, class_labels, **kwargs):
        step, rows = calls[0], x.shape[0] // 2
        calls[0] += 1
        if uncond[step] == "K":
            out = original(x, timestep, class_labels=class_labels, **kwargs)
            guidance[0] = out.sample[rows:] - out.sample[:rows]
            return out
        cond = original(x[rows:], timestep[rows:], class_labels=class_labels[rows:], **kwargs).sample
        return SimpleNamespace(sample=torch.cat([cond - guidance[0], cond]))

    model.forward = forward
    try:
        return sample(pipe, steps)
    finally:
        del model.forward


@pytest.mark.parametrize("build", [tiny_unet, tiny_dit])
def test_guidance_reuse_is_the_hand_written_sampler_on_half_the_batch(build):
    pipe = pipe_of(build())
    policy = KeyframePolicy.uniform(8, 1).with_uncond_every(3)
    assert policy.uncond == "KRRKRRKR"
    batches = []
    first = getattr(pipe.denoiser, "conv_in", None) or pipe.denoiser.pos_embed  # runs in every call
    handle = first.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        with accelerate(pipe, policy, ScoreMixing.off()) as run:
            got = sample(pipe, 8)
    finally:
        handle.remove()
    assert batches == [6 if u == "K" else 3 for u in policy.uncond]
    torch.testing.assert_close(got, reference(pipe, 8, policy.uncond), rtol=0, atol=1e-6)
    assert not torch.equal(got, sample(pipe, 8))  # it is a different sampler than full compute
    assert run.stats.half_batch_calls == 5 and run.stats.network_calls == 8
    assert run.stats.ideal_speedup == pytest.approx(8 / (3 + 5 * 0.5), rel=1e-12)
    assert not any("forward" in vars(m) for m in pipe.denoiser.modules())


@pytest.mark.parametrize("build, spec", [(tiny_unet, "uniform:2"), (tiny_unet, "deep:2"),
                                         (tiny_dit, "uniform:2:residual"), (tiny_dit, "uniform:3")])
def test_guidance_reuse_with_block_reuse_is_counted_and_left_clean(build, spec):
    from frdiff.accelerate import block_depths
    pipe = pipe_of(build())
    policy = KeyframePolicy.parse(spec, 9, block_depths(pipe))
    with accelerate(pipe, policy, ScoreMixing()) as run:
        plain = sample(pipe, 9)
    costs = CallCosts(**{k: v for k, v in vars(run.costs[0]).items()})
    both = policy.with_uncond_every(2)
    with accelerate(pipe, both, ScoreMixing()) as run:
        got = sample(pipe, 9)
    assert run.stats.cache_misses == 0 and run.stats.half_batch_calls > 0
    assert torch.isfinite(got).all() and not torch.equal(got, plain)
    assert run.stats.ideal_speedup == pytest.approx(costs.speedup(both, ScoreMixing()), rel=1e-9)
    assert run.stats.ideal_speedup > costs.speedup(policy, ScoreMixing())
    assert not any("forward" in vars(m) for m in pipe.denoiser.modules())
    with accelerate(pipe, policy, ScoreMixing()):
        assert torch.equal(sample(pipe, 9), plain)  # nothing of the half-batch steps left behind
    with accelerate(pipe, both.with_forecast("step"), ScoreMixing()) as run:
        assert torch.isfinite(sample(pipe, 9)).all() and run.stats.cache_misses == 0


@pytest.mark.parametrize("store", [CacheStore(), ForecastStore(), CacheStore(torch.float16)])
def test_a_half_batch_call_reads_and_refreshes_only_the_rows_that_run(store):
    owner = object()
    store.put(owner, (torch.arange(4.0), torch.ones(4, 2)))
    with store.half_batch(2):
        assert torch.equal(store.get(owner)[0], torch.tensor([2.0, 3.0]))
        store.put(owner, (torch.tensor([9.0, 9.0]), torch.zeros(2, 2)))
    value = store.get(owner)
    assert torch.equal(value[0], torch.tensor([0.0, 1.0, 9.0, 9.0]))
    assert torch.equal(value[1], torch.tensor([[1.0, 1.0], [1.0, 1.0], [0, 0], [0, 0]]))
    assert value[0].dtype == torch.float32
    with pytest.raises(KeyError), store.half_batch(2):  # an error inside leaves full-batch calls
        store.put(object(), torch.ones(2))  # nothing held for it yet: nothing to refresh
        raise KeyError
    assert len(store.values) == 1 and torch.equal(store.get(owner)[0], value[0])


def test_guidance_reuse_in_every_policy_format():
    policy = KeyframePolicy.uniform(12, 2).with_uncond_every(2, start=4).with_forecast("step")
    assert policy.uncond == "KKKKKRKRKRKR"
    assert KeyframePolicy.from_dict(policy.to_dict()) == policy
    assert KeyframePolicy.from_json(policy.to_json()) == policy
    text = policy.to_text(["a", "b"])
    assert "@uncond  KKKKKRKRKR KR" in text
    assert KeyframePolicy.from_text(text) == KeyframePolicy.per_block(
        ["a", "b"], {"a": "KF" * 6, "b": "KF" * 6}).with_uncond(policy.uncond).with_forecast("step")
    for spec in ("uniform:2+cfg:2:4+forecast", "uniform:2+forecast+cfg:2:4"):
        assert KeyframePolicy.parse(spec, 12) == policy
    assert KeyframePolicy.uniform(4, 1).with_uncond("KKKK").uncond is None  # always computes
    assert policy.uncond_reused(5) and not policy.uncond_reused(4)
    no_call = KeyframePolicy.uniform(4, 2, "none").with_uncond("KRRR")
    assert [no_call.uncond_reused(s) for s in range(4)] == [False, False, True, False]


@pytest.mark.parametrize("bad, words", [
    (lambda: KeyframePolicy.uniform(4, 1).with_uncond("KRR"), "3 letters for 4 steps"),
    (lambda: KeyframePolicy.uniform(4, 1).with_uncond("RKKK"), "step 0 must compute"),
    (lambda: KeyframePolicy.uniform(4, 1).with_uncond("KXKK"), "K (the unconditional"),
    (lambda: KeyframePolicy.uniform(4, 1).with_uncond(3), "K (the unconditional"),
    (lambda: KeyframePolicy.uniform(4, 1).with_uncond_every(0), "interval must be"),
    (lambda: KeyframePolicy.parse("uniform:2+cfg:0", 8), "+cfg:K[:START]"),
    (lambda: KeyframePolicy.parse("uniform:2+cfg:x", 8), "+cfg:K[:START]"),
    (lambda: KeyframePolicy.parse("uniform:2+cfg", 8), "+cfg:K[:START]"),
    (lambda: KeyframePolicy.parse("adaptive:0.1+cfg:2", 8), "not adaptive"),
    (lambda: KeyframePolicy.from_text("@uncond\na KF"), "directives"),
    (lambda: KeyframePolicy.from_text("@uncond KQ\na KF"), "K (the unconditional"),
])
def test_bad_guidance_reuse_is_refused_with_a_message(bad, words):
    with pytest.raises(ValueError) as error:
        bad()
    assert words in str(error.value)


def test_guidance_reuse_without_guidance_is_refused_and_restored():
    pipe = pipe_of(tiny_unet())
    policy = KeyframePolicy.uniform(4, 1).with_uncond_every(2)
    with pytest.raises(RuntimeError, match="needs classifier-free guidance"):
        with accelerate(pipe, policy, ScoreMixing.off()):
            sample(pipe, 4, guidance_scale=1.0)
    assert not any("forward" in vars(m) for m in pipe.denoiser.modules())
    assert "step" not in vars(pipe.scheduler)
    with accelerate(pipe, policy, ScoreMixing.off()) as run:  # the same pipeline, guided: runs
        sample(pipe, 4)
    assert run.stats.half_batch_calls == 2
