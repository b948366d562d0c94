"""frdiff on a compiled denoiser: no compiled region ever holds frdiff's code.

A reuse decision read inside a graph torch.compile traced becomes a guard (one graph per
step kind and per block, soon past dynamo's recompile limit) or a graph break, and a cache
written there is a side effect dynamo must replay. So frdiff keeps every decision in eager
Python and compiles only what it never looks inside, with the user's own compile settings:

- The user compiled the denoiser (`torch.compile(model)`, `model.compile()`) or some of its
  modules (`model.compile_repeated_blocks()`, `block.compile()`). For the life of the
  `accelerate()` context, every compiled module that frdiff touches (replaces the forward
  of, or hooks) or holds one that it touches runs eagerly instead, and its compile context
  (backend, mode, options: whatever the user passed to `torch.compile`) compiles frdiff's
  regions: each maximal submodule that holds nothing frdiff touches, and the original
  forward of each touched module that holds nothing touched (an FR unit's attention, an
  S block's body), where it holds more than one layer: a lone convolution or norm gains
  nothing compiled alone and pays dynamo's guards, so it runs eagerly. The glue between them
  (the block's norms and gates at a reuse step, the cached-value lookups) runs eagerly; it is
  the cheap part.
- Compiled modules frdiff does not reach stay as the user compiled them.
- The first call of each CFG branch, where frdiff counts MACs with module hooks, runs every
  region eagerly; so does any region whose compiled call fails (with one warning; the
  eager call gives the same result), so a broken backend costs speed, never images.

Leaving the context puts every module back exactly as the user compiled it. Compiled
callables are made once per (compile context, forward function, the module's class and
parameter shapes) and kept for later contexts, so a second `accelerate()` with the same
settings finds dynamo's graphs already built. Each of those gets a code object of its own:
dynamo keeps graphs, and counts recompiles against its limit of 8, per code object, and every
region calls one of a few functions (`Module._call_impl`, `Conv2d.forward`); a UNet's regions
come in dozens of channel counts (parameter shapes are static to dynamo), which on one code
object ran past the limit and left the rest eager.
`Regions.report()` gives the dynamo counters (graphs compiled, graph breaks, recompiles)
since the context opened.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Callable

import torch

from .patching import Patches

_KEPT: dict = {}  # (id(context), function, shapes) -> (context, compiled function)


def is_wrapper(model) -> bool:
    """Is `model` the module `torch.compile(model)` returns (an OptimizedModule)?"""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # never imported: nothing compiled
    wrapper_type = getattr(eval_frame, "OptimizedModule", None)
    return wrapper_type is not None and isinstance(model, wrapper_type)


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module `torch.compile(model)` wrapped (or `model` itself)."""
    return model._orig_mod if is_wrapper(model) else model


def compile_context(module: torch.nn.Module):
    """The dynamo context `module` was compiled with (`torch.compile(...)`'s settings), or
    None. Read from torch's compiled callables; a torch that hides it gives None."""
    if is_wrapper(module):
        return getattr(module, "dynamo_ctx", None)
    fn = module.__dict__.get("_compiled_call_impl")
    if fn is None:
        return None
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if type(value).__name__.endswith("Context") and callable(value) and hasattr(value, "callback"):
            return value
    return False  # compiled, but how is unknown


def compiled_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of `model` that carry a compiled call (`module.compile()`)."""
    return [m for m in model.modules() if m.__dict__.get("_compiled_call_impl") is not None]


class Regions:
    """The compiled regions of one accelerate() context on one denoiser (see the module doc)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.eager = False  # counting calls: every region runs its eager call
        self.regions = 0  # frdiff's regions, compiled with the user's context
        self.kept = 0  # the user's compiled modules frdiff left as they were
        self.failed: list[str] = []  # regions that fell back to eager
        self._start = _dynamo_counts()

    @contextlib.contextmanager
    def eager_calls(self):
        """Every region runs eagerly inside (frdiff's MAC counting hooks must not be traced)."""
        saved, self.eager = self.eager, True
        try:
            yield
        finally:
            self.eager = saved

    def switch(self, name: str, compiled: Callable, eager: Callable) -> Callable:
        """A call that runs `compiled`, or `eager` while counting or after `compiled` failed."""
        regions = self
        broken = []

        def call(*args, **kwargs):
            if regions.eager or broken:
                return eager(*args, **kwargs)
            try:
                return compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - a backend's failure: eager gives the same result
                if not _is_compile_error(error):
                    raise
                broken.append(True)
                regions.failed.append(name)
                warnings.warn(f"frdiff: the compiled {name} failed ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200] if str(error) else ''}); it runs "
                              f"eagerly from now on", RuntimeWarning, stacklevel=2)
                return eager(*args, **kwargs)

        return call

    def report(self) -> dict:
        """Dynamo's counters since the context opened, and the regions."""
        now = _dynamo_counts()
        return {"regions": self.regions, "user_regions_kept": self.kept,
                "failed": list(self.failed)} | {k: now[k] - self._start[k] for k in now}


def _is_compile_error(error: Exception) -> bool:
    """An error raised by dynamo or a backend (not by the model's own code)."""
    module = type(error).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor", "torch._functorch",
                              "torch.fx", "torch._subclasses")) or "BackendCompilerFailed" in type(error).__name__


def _dynamo_counts() -> dict:
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - a torch without dynamo
        return {"graphs": 0, "graph_breaks": 0, "recompiles": 0}
    return {"graphs": int(counters["stats"].get("unique_graphs", 0)),
            "graph_breaks": int(sum(counters["graph_break"].values())),
            "recompiles": int(sum(counters["recompiles"].values()))}


def compile_regions(model: torch.nn.Module, patches: Patches, wrapper=None) -> Regions | None:
    """Make `model` (frdiff installed on it, through `patches`) run frdiff's regions compiled
    with the user's compile context; None where nothing of it was compiled. `wrapper` is the
    `torch.compile(model)` module the pipeline calls, if any."""
    touched = patches.touched
    compiled = compiled_modules(model)
    if wrapper is None and not compiled:
        return None
    parents = {id(child): parent for parent in model.modules() for child in parent.children()}
    above: set[int] = set()  # modules that hold a touched module
    for module in touched.values():
        parent = parents.get(id(module))
        while parent is not None and id(parent) not in above:
            above.add(id(parent))
            parent = parents.get(id(parent))
    reached = above | set(touched)  # touched modules and everything above them
    ctx = None
    disabled = []
    for module in ([wrapper] if wrapper is not None else []) + compiled:
        if module is not wrapper and id(module) not in reached:
            continue
        found = compile_context(module)
        ctx = ctx or found
        disabled.append(module)
    regions = Regions(ctx or None)
    if wrapper is not None:  # the pipeline calls the wrapper: it calls the model eagerly now
        patches.attribute(wrapper, "forward", model.__call__)
    for module in disabled:
        if module is not wrapper:
            patches.attribute(module, "_compiled_call_impl", None)
    for module in compiled:  # the user's, left as they were, but eager while frdiff counts
        if id(module) not in reached:
            user = module.__dict__["_compiled_call_impl"]
            patches.attribute(module, "_compiled_call_impl",
                              regions.switch(type(module).__name__, user, module._call_impl))
            regions.kept += 1
    if not disabled:
        return regions
    if not ctx:
        warnings.warn("frdiff: this torch does not say how the model was compiled; the compiled "
                      "modules frdiff reaches run eagerly inside accelerate()", RuntimeWarning, stacklevel=3)
        return regions
    _compile_below(model, "", reached, above, patches, regions)
    return regions


def _compile_below(module, prefix: str, reached, above, patches: Patches, regions: Regions) -> None:
    """Compile the regions under `module` (named `prefix`), see `compile_regions`."""
    for child_name, child in module.named_children():
        name = f"{prefix}{child_name}"
        if id(child) not in reached:  # nothing of frdiff inside: one region
            if child.__dict__.get("_compiled_call_impl") is None and _worth_a_region(child):
                fn = _kept(regions.ctx, child._call_impl)
                patches.attribute(child, "_compiled_call_impl",
                                  regions.switch(name, fn, child._call_impl))
                regions.regions += 1
            continue
        if id(child) not in above:  # touched, nothing touched inside (an FR unit, an S block): its body
            if not _worth_a_region(child):  # a lone layer (a resnet's hooked conv1): eager
                continue
            original = patches.originals.get(id(child))
            if original is not None:
                fn = _kept(regions.ctx, original.fn)
                original.alternative = regions.switch(name, fn, original.fn)
            else:  # only hooked (a resnet's conv1): its forward, its hooks stay outside
                eager = child.forward
                fn = _kept(regions.ctx, eager)
                patches.attribute(child, "forward", regions.switch(name, fn, eager))
            regions.regions += 1
            continue
        _compile_below(child, name + ".", reached, above, patches, regions)


def _worth_a_region(module: torch.nn.Module) -> bool:
    """A region holds several layers (an attention, an MLP, a norm with its modulation, a
    block). A lone layer (one convolution, one norm, an activation) runs the kernel it runs
    eagerly, with nothing to fuse, behind dynamo's guards and a wrapper: compiled alone it is
    slower (a UNet's resnets split into such layers around their cached convolution)."""
    return any(True for _ in module.children())


def _kept(ctx, method: Callable) -> Callable:
    """`ctx(method)`, compiled once per (context, function, module shapes) and kept: the
    function, not the bound method, so the kept callable holds no module (the module is
    passed as `self`); modules of one class and parameter shapes share it."""
    func, owner = getattr(method, "__func__", None), getattr(method, "__self__", None)
    if func is None or owner is None:  # not a bound method: compiled as it is, not kept
        return ctx(method)
    key = (id(ctx), func, _shapes(owner))
    held = _KEPT.get(key)
    if held is None or held[0] is not ctx:
        held = _KEPT[key] = (ctx, ctx(_entry(func)))
    compiled = held[1]
    return lambda *args, **kwargs: compiled(owner, *args, **kwargs)


def _shapes(module: torch.nn.Module) -> tuple:
    """What dynamo specializes a module's graph on, beyond its inputs: its class and the shapes
    and dtypes of its parameters and buffers."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return (type(module), tuple((name, tuple(t.shape), t.dtype) for name, t in tensors))


def _entry(func: Callable) -> Callable:
    """A function that calls `func`, with a code object of its own: dynamo compiles from it
    (inlining `func`) and keeps its graphs and recompile count there. (Compiled directly, a
    torch function such as `Module._call_impl` would be entered through one wrapper frame that
    dynamo makes for every function it may not start tracing in, all regions' graphs on it.)"""
    def region(*args, **kwargs):
        return func(*args, **kwargs)

    region.__code__ = region.__code__.replace()  # nested functions share their code object
    region.__name__ = region.__qualname__ = f"frdiff_region_{getattr(func, '__name__', 'call')}"
    return region
