"""One way to replace a method and put it back: `Patches`, an `ExitStack` of exact inverses.

Every forward frdiff replaces (the denoiser's, its blocks', their FR units') and every
scheduler method it wraps (`set_timesteps`, `step`) goes through `Patches.replace`, and every
hook it registers through `Patches.hook`. Closing the stack undoes them in reverse order; as
an ExitStack it runs every undo even when one raises, then re-raises the first error.

A replacement keeps the original's name, docstring and signature (`functools.wraps`, so
`inspect.signature(module.forward)` still describes the original). What was there before,
an instance attribute (an offload hook's forward, another library's wrapper) or only the
class's method, is exactly what comes back.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable

_MISSING = object()


class Original:
    """A module's own forward as frdiff's first replacement of it calls it: `fn`, or in its
    place `alternative` once one is set (the same forward compiled, see compiled.py)."""

    def __init__(self, fn: Callable):
        self.fn, self.alternative = fn, None
        self.__wrapped__ = fn  # inspect.signature(original) describes the forward

    def __call__(self, *args, **kwargs):
        return (self.alternative or self.fn)(*args, **kwargs)


class Patches(contextlib.ExitStack):
    """`with Patches() as patches: patches.replace(module, "forward", make)` ...

    It records what it changed: `touched` (id -> module) holds every module whose forward
    was replaced or which was hooked, `originals` (id -> Original) the module's own forward
    under the first replacement of each (where that was the class's method)."""

    def __init__(self):
        super().__init__()
        self.touched: dict[int, object] = {}
        self.originals: dict[int, Original] = {}

    def replace(self, owner, name: str, make: Callable[[Callable], Callable]) -> Callable:
        """Set `owner.name = make(current)` as an instance attribute; undone on close.
        `make` gets the bound method in place now and returns its replacement."""
        original = getattr(owner, name)
        replacement = functools.wraps(original)(make(original))
        self.attribute(owner, name, replacement)
        return replacement

    def forward(self, module, make: Callable[[Callable], Callable]) -> Callable:
        """Replace `module.forward` (see `replace`)."""
        self.touched[id(module)] = module
        if id(module) in self.originals or "forward" in module.__dict__:
            return self.replace(module, "forward", make)
        original = self.originals[id(module)] = Original(module.forward)
        self.callback(self.originals.pop, id(module), None)
        return self.replace(module, "forward", lambda _: make(original))

    def hook(self, handle, module=None) -> None:
        """A torch hook handle (on `module`), removed on close."""
        if module is not None:
            self.touched[id(module)] = module
        self.callback(handle.remove)

    def attribute(self, owner, name: str, value) -> None:
        """Set a plain attribute for the life of the stack (deleted, or put back, on close)."""
        saved = owner.__dict__.get(name, _MISSING)

        def restore() -> None:
            if saved is _MISSING:
                owner.__dict__.pop(name, None)
            else:
                owner.__dict__[name] = saved

        self.callback(restore)
        setattr(owner, name, value)
