"""Mode R, residual reuse: a block's current input plus its cached residual (MagCache's form)."""

import pytest
import torch
from diffusers import DiTTransformer2DModel

from frdiff import AdaptivePolicy, KeyframePolicy, ScoreMixing, accelerate
from frdiff.cost import CallCosts, MacCounter
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler
from frdiff.targets import find_blocks

from conftest import LABELS, tiny_dit, tiny_unet

N = 8


def pipe_of(model):
    pipe = GlyphPipeline.from_model(model, build_scheduler(), labels=LABELS)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, steps=N):
    return pipe(["A", "7"], num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                output_type="pt").images


def record_blocks(blocks):
    """Forward hooks that keep every call's (input, output) per block, around the installed forward."""
    calls = {b.name: [] for b in blocks}
    handles = []
    for b in blocks:
        def hook(module, args, kwargs, out, name=b.name):
            x = args[0] if args else kwargs["hidden_states"]
            calls[name].append((x.detach().clone(), out.detach().clone(), args, kwargs))
        handles.append(b.module.register_forward_hook(hook, with_kwargs=True))
    return calls, handles


def test_residual_steps_add_the_keyframe_residual_to_the_current_input_and_keyframes_are_exact():
    pipe = pipe_of(tiny_dit())
    blocks = find_blocks(pipe.denoiser)
    width = len(blocks)
    rows = ("K" * width, "R" * width, "R" * width, "K" * width, "KR", "R" * width, "K" * width, "RK")
    policy = KeyframePolicy(rows, tuple(b.name for b in blocks))
    calls, handles = record_blocks(blocks)
    try:
        with accelerate(pipe, policy, ScoreMixing.off()) as run:
            out = sample(pipe)
    finally:
        for h in handles:
            h.remove()
    assert torch.isfinite(out).all() and run.stats.modules_reused["residual_blocks"] == width
    for b, block in enumerate(blocks):
        residual = None
        for step, (x, y, args, kwargs) in enumerate(calls[block.name]):
            mode = policy.mode(step, b)
            if mode == "K":  # computed by the block's own forward, bit for bit
                with torch.no_grad():
                    assert torch.equal(y, type(block.module).forward(block.module, *args, **kwargs))
                residual = y - x
            else:
                assert torch.allclose(y, x + residual, atol=1e-6)
                assert not torch.allclose(x, calls[block.name][0][0])  # the input is fresh
    assert all("forward" not in b.module.__dict__ for b in blocks)  # restored on exit


def test_a_run_of_residual_blocks_is_the_stack_form():
    """Between the first and last block, R everywhere = the stack's input plus its summed
    cached residual (MagCache), the first and last blocks computing."""
    torch.manual_seed(0)
    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=3,
                                  out_channels=3, num_layers=4, sample_size=16, patch_size=4,
                                  num_embeds_ada_norm=len(LABELS))
    pipe = pipe_of(model)
    blocks = find_blocks(model)
    inner = "KRRK"
    policy = KeyframePolicy(("KKKK", inner, inner, "KKKK", inner, "KKKK", "KKKK", "KKKK"),
                            tuple(b.name for b in blocks))
    calls, handles = record_blocks(blocks)
    try:
        with accelerate(pipe, policy, ScoreMixing.off()):
            sample(pipe)
    finally:
        for h in handles:
            h.remove()
    first, last = calls[blocks[1].name], calls[blocks[2].name]
    stack_residual = last[0][1] - first[0][0]  # at the keyframe: output of the run minus its input
    for step in (1, 2):  # R steps: the run's output is its current input plus that residual
        assert torch.allclose(last[step][1], first[step][0] + stack_residual, atol=1e-5)
        assert torch.equal(calls[blocks[3].name][step][0], last[step][1])  # the last block computes on it


def test_residual_reuse_on_the_unet_mid_block_and_refused_elsewhere():
    pipe = pipe_of(tiny_unet())
    blocks = find_blocks(pipe.denoiser)
    names = tuple(b.name for b in blocks)
    mid = names.index("mid_block")
    row = "".join("R" if i == mid else "F" for i in range(len(blocks)))
    policy = KeyframePolicy(tuple("K" * len(blocks) if s % 2 == 0 else row for s in range(N)), names)
    with accelerate(pipe, policy, ScoreMixing()) as run:
        out = sample(pipe)
    assert torch.isfinite(out).all() and run.stats.modules_reused["residual_blocks"] == 1
    bad = KeyframePolicy(tuple("K" * len(blocks) if s % 2 == 0 else "R" * len(blocks) for s in range(N)), names)
    with pytest.raises(ValueError, match="mode R .* does not apply to down_blocks.0"):
        with accelerate(pipe, bad, ScoreMixing()):
            pass
    assert "forward" not in pipe.denoiser.__dict__ and "_frdiff_run" not in pipe.denoiser.__dict__
    with pytest.raises(ValueError, match="does not apply to down_blocks.1"):  # block 0 is the probe
        accelerate(pipe, AdaptivePolicy(N, 0.1, reuse="residual"), ScoreMixing()).__enter__()


def test_residual_steps_cost_nothing_inside_the_block():
    pipe = pipe_of(tiny_dit())
    blocks = find_blocks(pipe.denoiser)
    width = len(blocks)
    policy = KeyframePolicy(("K" * width,) + ("K" + "R" * (width - 1),) * (N - 1), tuple(b.name for b in blocks))
    with accelerate(pipe, policy, ScoreMixing.off()) as run:
        sample(pipe)
    with MacCounter(pipe.denoiser) as counter, torch.no_grad():
        pipe(["A", "7"], num_inference_steps=1, output_type="pt")
    costs = CallCosts.count(counter, blocks)
    saved = (N - 1) * sum(costs.block[1:])
    assert run.stats.baseline_macs - run.stats.executed_macs == saved
    assert abs(run.stats.ideal_speedup - costs.speedup(policy, ScoreMixing.off())) < 1e-9


def test_adaptive_residual_reuse_keeps_the_probe_fresh():
    pipe = pipe_of(tiny_dit())
    with accelerate(pipe, AdaptivePolicy(N, 0.5, reuse="residual"), ScoreMixing.off()) as run:
        out = sample(pipe)
    assert torch.isfinite(out).all() and run.stats.ideal_speedup > 1.0
    assert len(run.stats.keyframe_steps[-1]) < N


def test_the_gated_pass_follows_residual_reuse_and_the_tuner_starts_from_it():
    from frdiff.autofr import candidates, gated_pass, reference_latents, whole_letters
    from frdiff.cost import policy_gates

    from test_autofr import _tiny_call

    pipe = pipe_of(tiny_dit())
    blocks = find_blocks(pipe.denoiser)
    width = len(blocks)
    rows = ("K" * width, "R" * width, "K" * width, "RF", "N" * width, "K" * width, "FR", "R" * width)
    policy = KeyframePolicy(rows, tuple(b.name for b in blocks))
    mixing, call = ScoreMixing(), _tiny_call(pipe)
    with accelerate(pipe, policy, mixing):
        accelerated = reference_latents(pipe, call, N, 0)
    k, z = (g.float() for g in policy_gates(policy, width))
    lam = [policy.reuse_weight(s, mixing) for s in range(N)]
    with torch.no_grad():
        assert gated_pass(pipe, blocks, mixing.multistep, call, 0, k, z, lam, accelerated, 1,
                          whole=whole_letters(policy, width)) < 1e-10
    costs = CallCosts(10.0, [4.0, 4.0], [2.0, 2.0])
    found = candidates(costs, 20, mixing, 1.6, {"a": 0, "b": 0}, [True, True])
    assert any(name.startswith("residual") for name in found)
    assert not any(name.startswith("residual") for name in candidates(costs, 20, mixing, 1.6,
                                                                     {"a": 0, "b": 0}, [True, False]))


def test_residual_mode_in_the_text_grid_and_json():
    policy = KeyframePolicy(("KK", "RF", "KK", "RR"), ("transformer_blocks.0", "transformer_blocks.1"))
    assert KeyframePolicy.from_text(policy.to_text()) == policy
    assert KeyframePolicy.from_json(policy.to_json()) == policy
    assert KeyframePolicy.uniform(4, 2, reuse="residual").schedule == ("K", "R", "K", "R")
    with pytest.raises(ValueError, match="R \\(residual reuse\\)"):
        KeyframePolicy(("K", "Q"))
