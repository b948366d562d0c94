"""What every peer module shares: loading a peer's package lazily (a missing or broken one is a
PeerUnavailable naming it, never an error on import of frdiff.peers), settings validation, and
the snapshots that put every attribute a peer changed back exactly on exit."""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..targets import denoiser_of

_MISSING = object()


class PeerUnavailable(ImportError):
    """A peer method's package is missing or fails to import."""


def _load(module: str, package: str, *names: str) -> tuple:
    """`names` from `module`, or PeerUnavailable naming the package and the import error."""
    if module.split(".")[0] == "cache_dit":  # it reads its log level once, at import: 8 lines a run
        os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")
    try:
        mod = importlib.import_module(module)
        return tuple(getattr(mod, name) for name in names)
    except Exception as err:  # missing, or broken against the installed torch/diffusers
        raise PeerUnavailable(f"{package} is unavailable: importing {module} failed with "
                              f"{type(err).__name__}: {err}") from err


def _probe(module: str, package: str) -> str:
    """'' when `module` imports, else the reason it does not."""
    try:
        _load(module, package)
    except PeerUnavailable as err:
        return str(err)
    return ""


def _number(what: str, value: Any, low: float, high: float = math.inf, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        noun = "an integer" if integer else "a number"
        allowed = f"{noun} >= {low}" if high == math.inf else f"{noun} in [{low}, {high}]"
        raise ValueError(f"{what} must be {allowed}, got {value!r}")


def _denoiser_name(pipe) -> str:
    try:
        return type(denoiser_of(pipe)).__name__
    except ValueError:
        return f"missing ({type(pipe).__name__} has neither `unet` nor `transformer`)"


# -- exact restoration -----------------------------------------------------------------------
def _saved(objects: Sequence[object], names: Sequence[str]) -> Callable[[], None]:
    """Record the objects' own `names` attributes; the returned function puts them back exactly."""
    saved = [(obj, name, obj.__dict__.get(name, _MISSING)) for obj in objects for name in names]

    def restore() -> None:
        for obj, name, value in saved:
            if value is _MISSING:
                obj.__dict__.pop(name, None)
            else:
                obj.__dict__[name] = value

    return restore


def _snapshot(modules: Sequence[object], cls: type, class_names: Sequence[str]) -> Callable[[], None]:
    """Record the objects' attributes (and a module's submodules, in order) and `cls`'s own
    `class_names`; the returned function puts all of them back exactly."""
    saved = [(obj, dict(obj.__dict__), dict(getattr(obj, "_modules", {}))) for obj in modules]
    saved_cls = {name: cls.__dict__.get(name, _MISSING) for name in class_names}

    def restore() -> None:
        for obj, attributes, submodules in saved:
            obj.__dict__.clear()
            obj.__dict__.update(attributes)
            if isinstance(obj, torch.nn.Module):
                obj._modules.clear()
                obj._modules.update(submodules)
        for name, value in saved_cls.items():
            if value is _MISSING and name in cls.__dict__:
                delattr(cls, name)
            elif value is not _MISSING:
                setattr(cls, name, value)

    return restore
