"""accelerate() puts everything back, even when an undo step fails, and one model is
accelerated by one context at a time, in any thread."""

import sys
import threading

import pytest
import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.patching import Patches

N = 6


def test_every_undo_runs_when_one_raises(tiny_pipe, monkeypatch):
    """The scheduler's undo fails (and restores nothing): every other undo still runs, the
    error comes out, and no replaced forward is left on the model."""
    acc = sys.modules["frdiff.accelerate"]  # the module (frdiff.accelerate is also the function)
    real = acc.drive_clock

    def failing_clock(*args, **kwargs):
        real(*args, **kwargs)  # patches the scheduler; its undo is dropped, and this one fails

        def undo():
            raise RuntimeError("undo failed")
        return undo

    monkeypatch.setattr(acc, "drive_clock", failing_clock)
    model = tiny_pipe.denoiser
    policy = KeyframePolicy.uniform(N, 2)
    with pytest.raises(RuntimeError, match="undo failed"):
        with accelerate(tiny_pipe, policy, ScoreMixing()):
            assert "forward" in model.__dict__
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert "_frdiff_run" not in model.__dict__
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_patches_undo_everything_even_if_one_restore_raises():
    class Thing:
        def a(self):
            return "a"

        def b(self):
            return "b"

    thing = Thing()
    with pytest.raises(ValueError, match="boom"):
        with Patches() as p:
            p.replace(thing, "a", lambda f: lambda: "patched a")
            p.callback(lambda: (_ for _ in ()).throw(ValueError("boom")))
            p.replace(thing, "b", lambda f: lambda: "patched b")
            assert thing.a() == "patched a" and thing.b() == "patched b"
    assert thing.a() == "a" and thing.b() == "b" and not vars(thing)


def test_replaced_forwards_keep_the_original_signature(tiny_pipe):
    import inspect

    model = tiny_pipe.denoiser
    original = inspect.signature(model.forward)
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):
        assert inspect.signature(model.forward) == original
        assert model.forward.__wrapped__ is not None


def test_a_model_accelerated_in_another_thread_is_refused_clearly(tiny_pipe):
    entered, release, errors = threading.Event(), threading.Event(), []

    def hold():
        with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):
            entered.set()
            release.wait(30)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert entered.wait(30)
        with pytest.raises(RuntimeError, match="already accelerated by frdiff"):
            with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 3), ScoreMixing()):
                errors.append("entered twice")
    finally:
        release.set()
        worker.join(30)
    assert not errors and "_frdiff_run" not in tiny_pipe.denoiser.__dict__
    with accelerate(tiny_pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()):  # free again
        tiny_pipe(["A"], num_inference_steps=N, output_type="pt", generator=torch.Generator().manual_seed(0))
