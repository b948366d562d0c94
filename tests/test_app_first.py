"""The first screen (app/first.py): a tab's result for its defaults is computed once, kept on
disk and shown on load; a button press never reads the cache; visitors arriving together
compute it once; a link skips it."""

import threading

import pytest

from app import first


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRDIFF_APP_CACHE", str(tmp_path))
    monkeypatch.setattr(first, "_MEMORY", {})
    return tmp_path


def measured(calls):
    def fn(model, steps, progress=None):
        calls.append((model, steps))
        return {"model": model, "steps": steps, "values": [float(steps)] * 3}
    return fn


def test_first_views_are_computed_once_kept_on_disk_and_buttons_compute_now(cache, monkeypatch):
    calls = []
    fn = measured(calls)
    token = first.FIRST.set(True)
    try:
        a = first.remember(fn, "glyph-unet", 50.0, object())  # the page's 50.0 and a progress callback
        b = first.remember(fn, "glyph-unet", 50)
        assert a == b and calls == [("glyph-unet", 50.0)] and len(list(cache.glob("*.pt"))) == 1
        monkeypatch.setattr(first, "_MEMORY", {})  # a restarted server: read back from disk
        assert first.remember(fn, "glyph-unet", 50) == a and len(calls) == 1
        first.remember(fn, "glyph-dit", 50)  # other arguments: their own entry
        assert len(calls) == 2 and len(list(cache.glob("*.pt"))) == 2
    finally:
        first.FIRST.reset(token)
    first.remember(fn, "glyph-unet", 50)  # a button press: computed now
    assert len(calls) == 3


def test_a_broken_cache_file_is_recomputed(cache):
    calls = []
    token = first.FIRST.set(True)
    try:
        first.remember(measured(calls), "glyph-unet", 8)
        (path,) = cache.glob("*.pt")
        path.write_bytes(b"not a tensor file")
        first._MEMORY.clear()
        assert first.remember(measured(calls), "glyph-unet", 8)["steps"] == 8 and len(calls) == 2
    finally:
        first.FIRST.reset(token)


def test_visitors_arriving_together_compute_a_first_view_once(cache):
    calls, results = [], []
    fn = measured(calls)
    view = first.first_view(lambda model, steps: first.remember(fn, model, steps), 1)

    class Request:
        query_params = {}

    threads = [threading.Thread(target=lambda: results.append(view(Request(), "glyph-unet", 20)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4 and all(r == results[0] for r in results)

    class Linked:
        query_params = {"tab": "trajectory"}

    import gradio as gr

    assert view(Linked(), "glyph-unet", 20) == gr.skip()  # a link: its own view, not this one
    assert len(calls) == 1


def test_gradio_hands_the_page_request_to_the_load_callbacks():
    """Gradio injects a gr.Request only into a leading positional parameter whose annotation it
    can resolve: without it a link's page would get the first view instead of the link's."""
    from gradio.helpers import special_args

    from app import ui

    view = first.View("trajectory", lambda *a: a, [], [None, None], on_load=True)
    for fn in (first.first_view(lambda *a: a, 2), ui.linked(view)):
        marker = object()
        args, *_ = special_args(fn, ["glyph-unet", 20], request=marker)
        assert args == [marker, "glyph-unet", 20], fn.__name__
