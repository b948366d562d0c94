"""The first screen: every tab shows a result for its defaults before anyone clicks.

Each tab registers the handler its button runs and the components it reads. On page load
(`first_view`) the handler runs on the components' values with `FIRST` set: the data functions
it calls through `remember` (a sampling run, a measurement) then come from a cache, in memory
and on disk (`FRDIFF_APP_CACHE`, default `~/.cache/frdiff/app`), keyed by the function, its
arguments and the model's weights, and are computed once, at server start (`prepare_elsewhere`:
a process of its own) or by the first visitor. A button press never reads the cache: it runs now.
A page opened by a link (its query parameters) skips the first view and runs the link's.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import torch

import frdiff
from frdiff.glyphs import ASSETS_DIR, EMBEDDED_MODELS

from .links import from_link
from .models import threads_here
from .runs import Run


@dataclass(frozen=True)
class View:
    """What a tab's button runs: its handler, the components it reads and those it writes."""

    name: str  # the tab's id (links.TABS)
    handler: Callable
    inputs: list
    outputs: list
    on_load: bool  # shown for the defaults when the page loads


# the events a page load starts (first views, a link's run): a group of their own with no limit, so
# a plain page's no-op events never wait in, or fill, the queue of the visitors' model runs (a
# run that computes still borrows one of the pool's pipelines, exclusively)
ON_LOAD = dict(concurrency_id="page-load", concurrency_limit=None)
FIRST = contextvars.ContextVar("frdiff_app_first_view", default=False)
NOTE = ("*An example for the default settings, computed when this server started (its times are from then): "
        "press the button to run it now, or change the settings.*")
log = logging.getLogger("frdiff.app")
_MEMORY: dict[str, object] = {}
_LOCK = threading.Lock()
_KEY_LOCKS: dict[str, threading.Lock] = {}
torch.serialization.add_safe_globals([Run])


def cache_dir() -> str:
    return os.environ.get("FRDIFF_APP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "frdiff", "app")


def _normal(value):
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return _OTHER  # a progress callback and the like: not part of what is computed


_OTHER = object()


def _weights(args) -> tuple:
    """Size and time of the embedded models' weight files the arguments name."""
    out = []
    for name in args:
        if isinstance(name, str) and name in EMBEDDED_MODELS:
            folder = os.path.join(ASSETS_DIR, EMBEDDED_MODELS[name])
            for root, _, files in sorted(os.walk(folder)):
                for f in sorted(files):
                    st = os.stat(os.path.join(root, f))
                    out.append((f, st.st_size, int(st.st_mtime)))
    return tuple(out)


def _key(fn, args) -> str:
    data = tuple(v for v in map(_normal, args) if v is not _OTHER)
    text = repr((fn.__module__, fn.__qualname__, data, _weights(args),
                 frdiff.__version__, torch.__version__))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def remember(fn, *args):
    """fn(*args), from the first-view cache while FIRST is set (computed once, kept on disk);
    computed now otherwise."""
    if not FIRST.get():
        return fn(*args)
    key = _key(fn, args)
    with _LOCK:
        if key in _MEMORY:
            return _MEMORY[key]
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:  # two first visitors at once compute it once
        with _LOCK:
            if key in _MEMORY:
                return _MEMORY[key]
        path = os.path.join(cache_dir(), key + ".pt")
        value = None
        if os.path.isfile(path):
            try:
                value = torch.load(path, weights_only=True)  # data only: tensors, numbers, Runs
            except Exception as err:  # noqa: BLE001 - a broken cache file is recomputed
                log.warning("first-view cache %s unreadable (%s): recomputing", path, err)
        if value is None:
            value = fn(*args)
            try:
                os.makedirs(cache_dir(), exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp"
                torch.save(value, tmp)
                os.replace(tmp, path)
            except OSError as err:  # a read-only disk: memory only
                log.warning("first-view cache not written (%s)", err)
        with _LOCK:
            _MEMORY[key] = value
        return value


def register(name: str, handler, inputs: list, outputs: list, demo, on_load: bool = True, button=None) -> None:
    """Record what tab `name`'s button runs (a link to the tab runs it, see `views`) and, with
    `on_load`, show its result for the components' values when the page loads. A press of
    `button` cancels a first view still being computed: it would land over the visitor's own
    result (the first views are queued for that, in the group `ON_LOAD`)."""
    view = View(name, handler, list(inputs), list(outputs), on_load)
    demo.frdiff_views = [*getattr(demo, "frdiff_views", []), view]
    if not on_load:
        return
    if os.environ.get("FRDIFF_APP_FIRST_VIEWS", "1") == "0":  # FRDIFF_APP_FIRST_VIEWS=0: empty tabs on load
        return
    event = demo.load(first_view(handler, len(outputs)), inputs, outputs, api_visibility="private",
                      show_progress="minimal", **ON_LOAD)
    if button is not None:
        button.click(None, None, None, cancels=[event], queue=False, api_visibility="private")


def views(demo) -> list[View]:
    """The views registered on `demo`, one per tab that runs something."""
    return list(getattr(demo, "frdiff_views", []))


def first_view(handler, outputs: int):
    """A load callback: `handler` on the page's values with FIRST set, skipped for a link's page."""
    def on_load(request: gr.Request, *values):  # Gradio passes the request to a leading parameter
        if from_link(request):
            return skipped(outputs)
        token = FIRST.set(True)
        try:
            return handler(*values)
        finally:
            FIRST.reset(token)

    on_load.__name__ = f"first_{getattr(handler, '__name__', 'view')}"
    return on_load


def skipped(outputs: int):
    """What a load callback with `outputs` outputs returns to change none of them."""
    return [gr.skip()] * outputs if outputs > 1 else gr.skip()


def prepare(demo) -> None:
    """Compute the first views of `demo` (those shown on load) now, into the cache (memory and disk)."""
    threads_here()
    for view in (v for v in views(demo) if v.on_load):
        token = FIRST.set(True)
        try:
            view.handler(*[c.value for c in view.inputs])
        except Exception:  # noqa: BLE001 - a first view that fails is computed by its visitor
            log.exception("first view %s failed", view.name)
        finally:
            FIRST.reset(token)


def prepare_elsewhere(env: dict | None = None):
    """Compute the first views in a process of their own, at nice 10, writing the disk cache
    the server reads (`remember` looks there before computing); its Popen (`env`: the
    process's environment, default this one's). Not a thread of the server: its Python work
    would hold the server's GIL, and a visitor's run would wait for it (/generate took 4.1 s
    instead of 2.5 s while a warm-up thread computed them)."""
    import subprocess
    import sys

    def lower():
        os.nice(10)

    # the app registers its views as it is built, then they are computed
    code = "from app import first, ui; first.prepare(ui.build_demo())"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `app` imports from
    return subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.DEVNULL,
                            preexec_fn=lower if hasattr(os, "nice") else None,
                            env=dict(env if env is not None else os.environ, GRADIO_ANALYTICS_ENABLED="False"))
