"""frdiff on compiled denoisers (backend "eager" / "aot_eager": no C compiler in the loop).

Regional (`compile_repeated_blocks`, `block.compile()`), whole-model (`model.compile()`) and
wrapped (`torch.compile(model)`) compiles: an all-keyframe run equals the compiled plain run,
FR equals uncompiled FR, no graph break, no new graph in a second run, everything put back
on exit, and a backend that fails falls back to eager with a warning and the same images."""

import warnings

import pytest
import torch
from diffusers import FluxPipeline

import frdiff
from frdiff.compiled import compile_context
from flow_pipelines import _flux
from stock_pipelines import build

STEPS = 6
HOW = ["regional", "whole", "wrapper"]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from nothing (dynamo's graphs outlive a test otherwise)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compile(model, how: str, backend):
    if how == "regional":
        if getattr(model, "_repeated_blocks", None):
            model.compile_repeated_blocks(backend=backend)
        else:  # a UNet: each policy block, as a user would
            for block in frdiff.targets.find_blocks(model):
                block.module.compile(backend=backend)
        return model
    if how == "whole":
        model.compile(backend=backend)
        return model
    return torch.compile(model, backend=backend)


def _flux_case():
    pipe, kwargs = _flux(FluxPipeline)
    pipe.set_progress_bar_config(disable=True)
    return pipe, kwargs | {"num_inference_steps": STEPS}, "transformer"


def _stock_case(name):
    pipe, kwargs = build(name)
    return pipe, kwargs | {"num_inference_steps": STEPS, "output_type": "pt"}, (
        "unet" if hasattr(pipe, "unet") else "transformer")


def _glyph_case(tiny_pipe):
    attr = "unet" if getattr(tiny_pipe, "unet", None) is not None else "transformer"
    return tiny_pipe, {"class_labels": ["A", "K"], "num_inference_steps": STEPS, "output_type": "pt"}, attr


def _sample(pipe, kwargs):
    out = pipe(**kwargs, generator=torch.Generator().manual_seed(0))
    return out.images if hasattr(out, "images") else out[0]


def _check(pipe, kwargs, attr, how, backend="eager", exact=True):
    policy = frdiff.KeyframePolicy.uniform(STEPS, 2)
    all_keyframes = frdiff.KeyframePolicy.uniform(STEPS, 1)
    with frdiff.accelerate(pipe, policy):
        eager_fr = _sample(pipe, kwargs)
    model = getattr(pipe, attr)
    setattr(pipe, attr, _compile(model, how, backend))
    compiled_plain = _sample(pipe, kwargs)
    close = torch.equal if exact else (lambda a, b: torch.allclose(a, b, atol=1e-5, rtol=1e-4))
    with frdiff.accelerate(pipe, all_keyframes) as run:
        assert close(_sample(pipe, kwargs), compiled_plain)
    reports = []
    for _ in range(2):
        with frdiff.accelerate(pipe, policy) as run:
            images = _sample(pipe, kwargs)
            reports.append(run.regions.report())
        assert close(images, eager_fr)
        assert run.stats.fr_calls > 0
    first, second = reports
    assert first["graph_breaks"] == 0 and second["graph_breaks"] == 0, reports
    # frdiff compiles its own regions where the user's compiled modules hold its reuse (else
    # the user's stay: SD's compiled transformer blocks sit inside an FR unit's branch)
    assert first["regions"] + first["user_regions_kept"] > 0, reports
    assert first["graphs"] > 0 or not first["regions"], reports
    assert second["graphs"] == 0 and second["recompiles"] == 0, reports  # built once, reused
    assert not first["failed"]
    return model


@pytest.mark.parametrize("how", HOW)
def test_flux_compiled(how):
    pipe, kwargs, attr = _flux_case()
    model = _check(pipe, kwargs, attr, how)
    wrapper = pipe.transformer
    if how == "wrapper":  # the pipeline calls the wrapper's compiled forward again
        assert wrapper is not model and "forward" in wrapper.__dict__
        assert compile_context(wrapper) is not None
    elif how == "whole":
        assert compile_context(model)
    else:
        assert all(compile_context(b) for b in model.transformer_blocks)
    assert "forward" not in model.__dict__
    for m in model.modules():  # no region of frdiff's stays behind
        assert m.__dict__.get("_compiled_call_impl") is None or compile_context(m)


@pytest.mark.parametrize("how", HOW)
def test_glyph_models_compiled(tiny_pipe, how):
    _check(*_glyph_case(tiny_pipe), how)


@pytest.mark.parametrize("name", ["sd", "pixart"])
def test_stock_pipelines_compiled(name):
    _check(*_stock_case(name), "regional")


def test_aot_eager_flux():
    pipe, kwargs, attr = _flux_case()
    _check(pipe, kwargs, attr, "regional", backend="aot_eager", exact=False)


def test_restored_exactly():
    pipe, kwargs, _ = _flux_case()
    pipe.transformer.compile_repeated_blocks(backend="eager")
    _sample(pipe, kwargs)  # the pipeline's own lazy state (diffusers' hook registry) is there
    before = {id(m): dict(m.__dict__) for m in pipe.transformer.modules()}
    with frdiff.accelerate(pipe, frdiff.KeyframePolicy.uniform(STEPS, 2)) as run:
        _sample(pipe, kwargs)
        assert run.regions.regions > 0
        assert any(m.__dict__.get("_compiled_call_impl") is None for m in pipe.transformer.transformer_blocks)
    for m in pipe.transformer.modules():
        assert m.__dict__.keys() == before[id(m)].keys()
        assert m.__dict__.get("_compiled_call_impl") is before[id(m)].get("_compiled_call_impl")


def _failing_backend(gm, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


def test_failing_backend_falls_back_to_eager():
    pipe, kwargs, _ = _flux_case()
    policy = frdiff.KeyframePolicy.uniform(STEPS, 2)
    with frdiff.accelerate(pipe, policy):
        expected = _sample(pipe, kwargs)
    pipe.transformer.compile(backend=_failing_backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with frdiff.accelerate(pipe, policy) as run:
            images = _sample(pipe, kwargs)
    assert torch.equal(images, expected)
    assert run.regions.report()["failed"]
    assert any("runs eagerly from now on" in str(w.message) for w in caught)


def test_uncompiled_model_has_no_regions(tiny_pipe):
    with frdiff.accelerate(tiny_pipe, frdiff.KeyframePolicy.uniform(STEPS, 2)) as run:
        tiny_pipe(["A"], num_inference_steps=STEPS, output_type="pt")
    assert run.regions is None


def test_unet_regions_stay_under_dynamos_recompile_limit():
    """A UNet's regions come in many channel counts (parameter shapes are static to dynamo). All
    entered through one code object they ran past dynamo's recompile limit (8) and every region
    after that ran eagerly; each class and shape now compiles from a code object of its own."""
    from torch._dynamo.utils import counters

    from frdiff.glyphs import load_pipeline

    pipe = load_pipeline("glyph-unet")
    pipe.set_progress_bar_config(disable=True)
    _compile(pipe.unet, "regional", "eager")
    with frdiff.accelerate(pipe, frdiff.KeyframePolicy.uniform(4, 2)) as run:
        pipe(["A", "7"], num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="pt")
        report = run.regions.report()
    limits = [reason for reason in counters["unimplemented"] if "recompile limit" in reason.lower()]
    assert not limits and report["graphs"] > 0 and not report["failed"], report
