"""The peer that applies to the model (DeepCache on the UNet, MagCache on the DiT), driven
through `frdiff.peers`, which runs the packages unmodified.

Results never depend on what other requests did before: MagCache is calibrated once per
(model, sampler, steps) on a fixed call (CALIBRATION), not on whoever asked first, and the
counted compute of a run is counted on a repeat of exactly that run (memoised on its inputs).
"""

from __future__ import annotations

import threading

import torch

from frdiff.peers import calibrate_mag_cache, counted_macs, mag_cache, peer_methods
from frdiff.targets import denoiser_of

from .runs import Run, sample

PREFERRED = ("DeepCache (interval 3)", "MagCache")  # the strongest peer per model class
CALIBRATION = dict(class_labels=list("A7K3"), seed=0)
_lock = threading.Lock()
_ratios: dict[tuple, tuple[float, ...]] = {}  # (model, sampler, steps) -> MagCache's ratios
_counts: dict[tuple, int] = {}  # a peer run's inputs -> the MACs it executed
_per_call: dict[tuple, int] = {}  # (model, batch) -> full-compute MACs of one denoiser call


def _context(pipe, method, model: str, scheduler: str, steps: int):
    """The peer's context for this run (MagCache: with the ratios of this setting)."""
    if method.name != "MagCache":
        return method(steps)
    key = (model, scheduler, steps)
    with _lock:
        ratios = _ratios.get(key)
    if ratios is None:  # two requests may both calibrate; both get the same ratios
        g = torch.Generator().manual_seed(CALIBRATION["seed"])
        ratios = calibrate_mag_cache(pipe, steps, class_labels=CALIBRATION["class_labels"], generator=g,
                                     output_type="pt")
        with _lock:
            _ratios[key] = ratios
    return mag_cache(pipe, ratios)


def choose(pipe):
    """The peer method to run on this pipeline, or a ValueError saying why none can run."""
    methods = peer_methods(pipe)
    for name in PREFERRED:
        if name in methods:
            if not methods[name].available:
                raise ValueError(f"{name} is unavailable here ({methods[name].reason})")
            return methods[name]
    raise ValueError(f"no peer applies to {type(denoiser_of(pipe)).__name__}")


def run_peer(pipe, model: str, scheduler: str, steps: int, glyphs: list[str], seed: int) -> Run:
    method = choose(pipe)
    context = _context(pipe, method, model, scheduler, steps)  # MagCache calibrates here, untimed
    calls = [0]
    handle = denoiser_of(pipe).register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        with context:
            images, seconds = sample(pipe, glyphs, steps, seed)
    finally:
        handle.remove()
    executed = _counted(pipe, method, model, scheduler, steps, tuple(glyphs), seed)
    full = steps * _call_macs(pipe, model, len(glyphs))
    setting = method.setting
    if method.name == "MagCache":
        setting = setting.replace("calibrated on the call", "calibrated once per setting on a fixed call "
                                  f"({''.join(CALIBRATION['class_labels'])}, seed {CALIBRATION['seed']})")
    return Run(f"{method.name} (peer)", images, seconds, calls[0], full / executed, setting)


def _counted(pipe, method, model, scheduler, steps, glyphs, seed) -> int:
    """MACs the peer executes on exactly this call (a repeat of it, counted; memoised). DeepCache's
    schedule is static, so its count depends only on the setting and the batch size."""
    static = method.name.startswith("DeepCache")
    key = (method.name, model, scheduler, steps) + ((len(glyphs),) if static else (glyphs, seed))
    if key not in _counts:
        g = torch.Generator().manual_seed(seed)
        _, macs = counted_macs(pipe, _context(pipe, method, model, scheduler, steps), class_labels=list(glyphs),
                               num_inference_steps=steps, generator=g, output_type="pt")
        _counts[key] = macs
    return _counts[key]


def _call_macs(pipe, model: str, batch: int) -> int:
    """Full-compute MACs of one denoiser call at this batch (the same at every step)."""
    key = (model, batch)
    if key not in _per_call:
        _, macs = counted_macs(pipe, None, class_labels=["A"] * batch, num_inference_steps=1,
                               generator=torch.Generator().manual_seed(0), output_type="pt")
        _per_call[key] = macs
    return _per_call[key]
