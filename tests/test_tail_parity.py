"""Parity of the diffusers code frdiff runs itself (frdiff/tails.py) with the stock forwards.

An FR step keeps a unit's expensive part from its last keyframe and runs the rest. Where that
rest is diffusers' own code nothing can drift (an output unit returns its cached value into
its block's own forward; tests/test_flow_transformers.py checks those units, feeders included,
against a reference written with hooks). Three pieces are frdiff's own, and each is run here
through the installed unit, on random weights and inputs, against the stock module whose
cached child is held by a forward hook at the value the keyframe computed, so that the stock
code computes the same thing the FR step means, on a different input:
  ResnetBlock2D           resnet_tail: the same operations in the same order, so bit for bit,
                          over every option the stock class has (time embedding or none,
                          default / scale_shift norms, skip_time_act, activations, 1x1 and
                          3x3 shortcuts, up / down sampling with every kernel, output scale,
                          dropout in training mode),
  Attention (residual)    output = input / rescale + cached branch (residual_scale),
  Transformer2DModel      output = input + cached branch, in the output type of the call
                          (wrap_sample: an output object, or a tuple with return_dict=False);
                          these two split the stock (branch + input) / scale into two terms,
                          so they agree to a few float32 roundings, not bit for bit.
The last tests drift each piece and check that its parity test would fail.
"""

import pytest
import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel

import frdiff.reuse
from frdiff.patching import Patches
from frdiff.reuse import ReuseState
from frdiff.tails import resnet_tail, wrap_sample
from frdiff.units import RESIDUAL, RESNET, FRUnit


class KeepThenReuse:
    """A ReuseState for one unit: the first call computes and keeps, every later call reuses."""

    def __init__(self):
        self.kept = {}

    def reuse(self, owner, block: int, mode: str):
        return self.kept.get(id(owner))

    def keep(self, owner, block: int, mode: str, fresh):
        self.kept[id(owner)] = fresh
        return fresh


def randomized(module: torch.nn.Module, seed: int, training: bool = False) -> torch.nn.Module:
    """Every parameter drawn at random (norm scales and biases too: no identity to hide behind)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module.train(training)


def call(module, args, kwargs):
    torch.manual_seed(1)  # dropout in training mode draws the same mask in both paths
    with torch.no_grad():
        return module(*args, **kwargs)


def child_output(module, child, args, kwargs):
    """What `child` returns inside a stock call of `module`."""
    seen = []
    handle = child.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        call(module, args, kwargs)
    finally:
        handle.remove()
    return seen[0]


def stock_held(module, child, held, args, kwargs):
    """The stock forward of `module` with `child`'s output replaced by `held`."""
    handle = child.register_forward_hook(lambda m, a, out: held)
    try:
        return call(module, args, kwargs)
    finally:
        handle.remove()


def fr_step(module, kind, keyframe, reuse):
    """The installed unit's outputs at a keyframe call and at the FR call after it."""
    unit = FRUnit("unit", module, kind, 0)
    with Patches() as patches:
        kind.install(unit, KeepThenReuse(), patches)
        return call(module, *keyframe), call(module, *reuse)


# -- ResnetBlock2D ---------------------------------------------------------------------------
RESNETS = {  # name -> (ResnetBlock2D keyword arguments, training mode)
    "default": (dict(in_channels=4, temb_channels=6), False),
    "no-time-embedding": (dict(in_channels=4, temb_channels=None), False),
    "scale-shift": (dict(in_channels=4, temb_channels=6, time_embedding_norm="scale_shift"), False),
    "skip-time-act": (dict(in_channels=4, temb_channels=6, skip_time_act=True), False),
    "1x1-shortcut": (dict(in_channels=4, out_channels=6, temb_channels=6), False),
    "3x3-shortcut": (dict(in_channels=4, out_channels=6, temb_channels=6, conv_shortcut=True), False),
    "forced-shortcut-no-bias": (dict(in_channels=4, temb_channels=6, use_in_shortcut=True,
                                     conv_shortcut_bias=False), False),
    "conv2-out-channels": (dict(in_channels=4, out_channels=6, conv_2d_out_channels=8, groups_out=2,
                                temb_channels=6), False),
    "mish": (dict(in_channels=4, temb_channels=6, non_linearity="mish"), False),
    "gelu": (dict(in_channels=4, temb_channels=6, non_linearity="gelu"), False),
    "silu-scaled": (dict(in_channels=4, temb_channels=6, non_linearity="silu", output_scale_factor=2.0), False),
    "up": (dict(in_channels=4, temb_channels=6, up=True), False),
    "up-fir": (dict(in_channels=4, temb_channels=6, up=True, kernel="fir"), False),
    "up-sde-vp": (dict(in_channels=4, temb_channels=6, up=True, kernel="sde_vp"), False),
    "down": (dict(in_channels=4, out_channels=6, temb_channels=6, down=True), False),
    "down-fir": (dict(in_channels=4, temb_channels=6, down=True, kernel="fir"), False),
    "down-sde-vp": (dict(in_channels=4, temb_channels=6, down=True, kernel="sde_vp"), False),
    "dropout-training": (dict(in_channels=4, temb_channels=6, dropout=0.5), True),
}


def resnet_case(name: str, seed: int = 0):
    """A random ResnetBlock2D and two different (input, temb) calls: keyframe, then FR."""
    options, training = RESNETS[name]
    module = randomized(ResnetBlock2D(groups=2, eps=1e-5, **options), seed, training)
    torch.manual_seed(seed + 1)
    temb = options["temb_channels"]
    calls = [((torch.randn(2, 4, 8, 8), None if temb is None else torch.randn(2, temb)), {}) for _ in range(2)]
    return module, calls


def resnet_parity(name: str, seed: int = 0):
    """(frdiff's FR output, the stock forward's with conv1 held at the keyframe's output)."""
    module, (keyframe, reuse) = resnet_case(name, seed)
    h = child_output(module, module.conv1, *keyframe)
    expected = stock_held(module, module.conv1, h, *reuse)
    first, fr = fr_step(module, RESNET, keyframe, reuse)
    assert torch.equal(first, call(module, *keyframe))  # a keyframe is the stock call
    assert not torch.equal(expected, call(module, *reuse))  # what is held matters
    return fr, expected


def test_the_stand_in_state_is_a_reuse_state():
    assert isinstance(KeepThenReuse(), ReuseState)


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("name", RESNETS)
def test_resnet_tail_is_the_stock_forward_after_conv1_bit_for_bit(name, seed):
    fr, expected = resnet_parity(name, seed)
    assert fr.shape == expected.shape and torch.equal(fr, expected)


@pytest.mark.parametrize("name", ["default", "scale-shift", "3x3-shortcut", "up-fir", "down"])
def test_resnet_tail_on_the_keyframes_own_input_is_the_stock_call(name):
    """The tail given conv1's output of the same call gives that call's output."""
    module, ((args, kwargs), _) = resnet_case(name, seed=3)
    h = child_output(module, module.conv1, args, kwargs)
    torch.manual_seed(1)
    with torch.no_grad():
        tail = resnet_tail(module, h, *args)
    assert torch.equal(tail, call(module, args, kwargs))


def test_the_fr_step_does_not_run_conv1():
    module, (keyframe, reuse) = resnet_case("default")
    ran = []
    module.conv1.register_forward_pre_hook(lambda m, a: ran.append(a[0].shape))
    fr_step(module, RESNET, keyframe, reuse)
    assert len(ran) == 1  # the keyframe's


# -- residual units: Attention with residual_connection, Transformer2DModel --------------------
def _attention(rescale: float, groups: int | None):
    return Attention(query_dim=8, heads=2, dim_head=4, rescale_output_factor=rescale, eps=1e-5,
                     norm_num_groups=groups, residual_connection=True, bias=True, upcast_softmax=True,
                     _from_deprecated_attn_block=True)


def _transformer(linear: bool, cross: bool):
    return Transformer2DModel(num_attention_heads=2, attention_head_dim=4, in_channels=8, norm_num_groups=2,
                              cross_attention_dim=6 if cross else None, use_linear_projection=linear)


RESIDUALS = {  # name -> (module factory, held child, input shape, extra kwargs of a call)
    "attention": (lambda: _attention(1.0, 2), lambda m: m.to_out[1], (2, 8, 4, 4), {}),
    "attention-rescaled": (lambda: _attention(2.0, 2), lambda m: m.to_out[1], (2, 8, 4, 4), {}),
    "attention-no-norm-tokens": (lambda: _attention(2.0, None), lambda m: m.to_out[1], (2, 16, 8), {}),
    "transformer": (lambda: _transformer(False, True), lambda m: m.proj_out, (2, 8, 4, 4), {"cross": True}),
    "transformer-linear": (lambda: _transformer(True, True), lambda m: m.proj_out, (2, 8, 4, 4), {"cross": True}),
    "transformer-self-only": (lambda: _transformer(False, False), lambda m: m.proj_out, (2, 8, 4, 4), {}),
    "transformer-tuple": (lambda: _transformer(True, True), lambda m: m.proj_out, (2, 8, 4, 4),
                          {"cross": True, "return_dict": False}),
}


def residual_case(name: str, seed: int = 0):
    make, child, shape, extra = RESIDUALS[name]
    module = randomized(make(), seed)
    torch.manual_seed(seed + 1)
    calls = []
    for _ in range(2):
        kwargs = {"return_dict": extra["return_dict"]} if "return_dict" in extra else {}
        if extra.get("cross"):
            kwargs["encoder_hidden_states"] = torch.randn(2, 5, 6)
        calls.append(((torch.randn(shape),), kwargs))
    return module, child(module), calls


def main(output) -> torch.Tensor:
    """The sample of a tensor, tuple or output object (compared in one way for all three)."""
    if isinstance(output, tuple):
        return output[0]
    return output if isinstance(output, torch.Tensor) else output.sample


def same_convention(fr, stock) -> bool:
    """Does frdiff's output package its sample as the stock one does? Transformer2DModel returns
    `transformer_2d.Transformer2DModelOutput`, a deprecated alias subclass of the public
    `modeling_outputs.Transformer2DModelOutput` (its constructor warns); frdiff builds the public
    class, which the stock output is an instance of."""
    if isinstance(stock, (torch.Tensor, tuple)):
        return type(fr) is type(stock) and (isinstance(fr, torch.Tensor) or len(fr) == len(stock))
    return type(fr) is Transformer2DModelOutput and isinstance(stock, Transformer2DModelOutput)


def residual_parity(name: str, seed: int = 0):
    """(frdiff's FR output, the stock forward's with the branch held, the tolerance): the FR
    step adds input / scale to (keyframe output - keyframe input / scale), two roundings more
    than the stock (branch + input) / scale, so a few float32 ulps of the largest term apart."""
    module, child, (keyframe, reuse) = residual_case(name, seed)
    branch = child_output(module, child, *keyframe)
    expected = stock_held(module, child, branch, *reuse)
    first, fr = fr_step(module, RESIDUAL, keyframe, reuse)
    stock = call(module, *keyframe)
    assert type(first) is type(stock) and torch.equal(main(first), main(stock))  # a keyframe is the stock call
    assert not torch.allclose(main(expected), main(call(module, *reuse)))  # what is held matters
    terms = max(float(keyframe[0][0].abs().max()), float(reuse[0][0].abs().max()), float(main(first).abs().max()))
    return fr, expected, 8 * torch.finfo(torch.float32).eps * terms


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("name", RESIDUALS)
def test_residual_units_are_the_stock_forward_with_the_branch_held(name, seed):
    fr, expected, tol = residual_parity(name, seed)
    assert same_convention(fr, expected)  # a tensor, an output object, or (sample,)
    torch.testing.assert_close(main(fr), main(expected), rtol=0.0, atol=tol)


def test_wrap_sample_follows_the_stock_return_convention():
    module = _transformer(False, False).eval()
    x = torch.randn(1, 8, 4, 4)
    assert same_convention(wrap_sample(module, x, {}), module(x))
    assert same_convention(wrap_sample(module, x, {"return_dict": True}), module(x, return_dict=True))
    assert same_convention(wrap_sample(module, x, {"return_dict": False}), module(x, return_dict=False))
    assert wrap_sample(_attention(1.0, 2), x, {}) is x


# -- the tests above fail when a piece drifts ----------------------------------------------------
def _scaled_away(m, h, x, temb):
    return resnet_tail(m, h, x, temb) * m.output_scale_factor  # output_scale_factor forgotten


def _time_embedding_dropped(m, h, x, temb):
    return resnet_tail(m, h, x, None)


def _last_bit(m, h, x, temb):
    out = resnet_tail(m, h, x, temb)
    return torch.nextafter(out, out + 1)  # one ulp off: bit for bit means bit for bit


@pytest.mark.parametrize("drifted, name", [(_scaled_away, "silu-scaled"), (_time_embedding_dropped, "default"),
                                           (_last_bit, "scale-shift"), (_last_bit, "down-fir")])
def test_a_drifted_resnet_tail_fails_its_parity_test(monkeypatch, drifted, name):
    monkeypatch.setattr(frdiff.reuse, "resnet_tail", drifted)
    fr, expected = resnet_parity(name)
    assert not torch.equal(fr, expected)


def test_a_drifted_stock_resnet_fails_its_parity_test(monkeypatch):
    """diffusers changing ResnetBlock2D.forward (here: its output no longer rescaled)."""
    stock = ResnetBlock2D.forward

    def changed(self, input_tensor, temb, *args, **kwargs):
        scale, self.output_scale_factor = self.output_scale_factor, 1.0
        try:
            return stock(self, input_tensor, temb, *args, **kwargs)
        finally:
            self.output_scale_factor = scale

    monkeypatch.setattr(ResnetBlock2D, "forward", changed)
    fr, expected = resnet_parity("silu-scaled")
    assert not torch.equal(fr, expected)


def test_a_drifted_residual_fails_its_parity_test(monkeypatch):
    monkeypatch.setattr(frdiff.reuse, "residual_scale", lambda module: 1.0)  # rescale forgotten
    fr, expected, tol = residual_parity("attention-rescaled")
    assert float((fr - expected).abs().max()) > 100 * tol
    monkeypatch.setattr(frdiff.reuse, "wrap_sample", lambda module, sample, kwargs: sample)  # output type
    fr, expected, tol = residual_parity("transformer")
    assert not same_convention(fr, expected)
