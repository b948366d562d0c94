"""Images handed to Gradio as files this app wrote, never as PIL objects.

Gradio caches a returned PIL image under a name made from its content hash and writes it in
place (gradio 6.31 `save_pil_to_cache`), so two requests that return the same image at the same
moment (two users, same glyphs and seed) can read each other's half-written file. Files
returned by path are copied into the cache atomically. Each image is written once, to a unique
name in a folder of this process (downloads: their own name in a unique folder); files older
than KEEP_S are removed as new ones arrive. No name comes from user input unfiltered.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time

from PIL import Image

KEEP_S = 3600.0
_DIR = tempfile.mkdtemp(prefix="frdiff-app-")
_lock = threading.Lock()
_last_sweep = [0.0]


def image_file(image: Image.Image, name: str | None = None) -> str:
    """The path of a new PNG holding `image` (named `name`.png, for a download, if given)."""
    if name is not None:
        return data_file(lambda f: image.save(f, format="PNG"), f"{name}.png")
    fd, path = tempfile.mkstemp(suffix=".png", dir=_DIR)
    with os.fdopen(fd, "wb") as f:
        image.save(f, format="PNG")
    _sweep()
    return path


def data_file(content, name: str) -> str:
    """The path of a new file called `name` (letters, digits, '.', '-', '_' kept) in a folder of
    its own, holding `content`: text, bytes, or a function that writes to the open binary file."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "download"
    path = os.path.join(tempfile.mkdtemp(dir=_DIR), safe_name)
    with open(path, "wb") as f:
        if callable(content):
            content(f)
        else:
            f.write(content.encode() if isinstance(content, str) else content)
    _sweep()
    return path


def _sweep() -> None:
    now = time.time()
    with _lock:
        if now - _last_sweep[0] < 60:
            return
        _last_sweep[0] = now
    for name in os.listdir(_DIR):
        path = os.path.join(_DIR, name)
        try:
            if now - os.path.getmtime(path) > KEEP_S:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        except OSError:  # removed by another request meanwhile
            pass


def plot_data_file(figures: dict, name: str) -> str:
    """The data of plotly figures as one JSON download `name`.json: per figure, its title and
    each trace's name, type and x / y / z values as plain lists (a plot's picture is its camera
    button's PNG)."""
    import json

    def plain(value):
        if hasattr(value, "tolist"):
            return value.tolist()
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    out = {}
    for label, fig in figures.items():
        title = fig.layout.title.text or ""
        out[label] = {"title": title, "traces": [
            {k: plain(t[k]) for k in ("name", "type", "x", "y", "z", "text") if k in t and t[k] is not None}
            for t in fig.data]}
    return data_file(json.dumps(out, indent=1), f"{name}.json")


def gif_file(frames: list[Image.Image], name: str, seconds_per_frame: float = 0.25) -> str:
    """An animated GIF of `frames` (looping), as a download called `name`.gif."""
    if not frames:
        raise ValueError("no frames to animate")
    first, rest = frames[0].convert("RGB"), [f.convert("RGB") for f in frames[1:]]
    return data_file(lambda f: first.save(f, format="GIF", save_all=True, append_images=rest, loop=0,
                                          duration=int(1000 * seconds_per_frame)), f"{name}.gif")


def side_by_side(left: Image.Image, right: Image.Image, gap: int = 8) -> Image.Image:
    """Two images next to each other on white."""
    out = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "white")
    out.paste(left.convert("RGB"), (0, 0))
    out.paste(right.convert("RGB"), (left.width + gap, 0))
    return out
