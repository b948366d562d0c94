"""Faults on the served app, compared with a fresh process: requests that end early (a time
limit hit mid-sampling, a learning run cancelled mid-descent, a client that cancels and goes
away) leave no replaced forward, no scheduler patch, no accelerate run and no trainable weight
on any pooled pipeline, and the next requests answer exactly what a freshly started server
answers. Both servers run in processes of their own (as the app is deployed), never in the
test process, whose history of other tests is not a server's."""

import json
import math
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(500)

# run in a new process: `python -c SCRIPT faults|fresh`; prints RESULT {"left": ..., "after": ...}
SCRIPT = r'''
import hashlib, json, os, sys, time
os.environ["FRDIFF_APP_TUNER_ITERATIONS"] = "50"  # a learning run long enough to cancel mid-descent
import numpy as np
from PIL import Image
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from app.models import POOL
from app.presets import preset_text
from app.ui import serve_locally

STEPS = 6
TEXT = preset_text("glyph-dit", "DDIM", STEPS, "uniform, interval 2")
AFTER = [("/generate", ["glyph-dit", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 1, ["fr-only"]]),
         ("/generate", ["glyph-unet", "K", "DPM-Solver++", STEPS,
                        preset_text("glyph-unet", "DPM-Solver++", STEPS, "uniform, interval 3"),
                        True, 30, 0.5, 2, []]),
         ("/similarity", ["glyph-dit", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 1, "transformer_blocks.1"])]


def summary(name, out):
    """An answer without its timings: image hashes and every number."""
    if name == "/similarity":
        return out[4]
    images = [np.asarray(Image.open(item["image"])) for item in out[0]]
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "measured_speedup")} for r in out[7]["runs"]]
    return {"images": [hashlib.sha256(i.tobytes()).hexdigest() for i in images], "rows": rows}


def left_on(pipe):
    """What a request could have left on a pooled pipeline (empty when nothing)."""
    model, left = pipe.denoiser, []
    left += [f"{n or 'model'}.forward" for n, m in model.named_modules() if "forward" in vars(m)]
    left += [f"{n}: trainable" for n, p in model.named_parameters() if p.requires_grad]
    left += [f"{n}._frdiff_run" for n, m in model.named_modules() if "_frdiff_run" in vars(m)]
    left += [f"scheduler.{k}" for k in ("step", "set_timesteps") if k in vars(pipe.scheduler)]
    return left


def faults(client):
    # 1. a time limit hit mid-sampling (the limit is read per request)
    os.environ["FRDIFF_APP_TIME_LIMIT"] = "1"
    try:
        long = preset_text("glyph-dit", "DDIM", 100, "uniform, interval 2")
        client.predict("glyph-dit", "A7KM" * 2, "DDIM", 100, long, True, 30, 0.5, 0, ["fr-only"],
                       api_name="/generate")
        raise SystemExit("no time limit hit")
    except AppError as err:
        assert "time limit of 1 s" in str(err), err
    del os.environ["FRDIFF_APP_TIME_LIMIT"]
    # 2. learning cancelled once the descent has begun (the gated pass patches the model)
    job = client.submit("glyph-dit", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 0, 1.5, api_name="/learn")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("descending" in out[1] for out in job.outputs()):
        time.sleep(0.05)
    assert not job.done(), "learning ended before it could be cancelled mid-descent"
    job.cancel()
    # 3. a generation whose client cancels once it runs, and leaves
    gone = client.submit(*AFTER[0][1], api_name="/generate")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and gone.status().code not in (Status.PROCESSING, Status.FINISHED):
        time.sleep(0.05)
    gone.cancel()
    # the server finishes what it started; once nothing runs, every replica is free to check
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(POOL._queue(m).qsize() < POOL.size for m in ("glyph-dit", "glyph-unet")):
        time.sleep(0.1)
    left = []
    for model in ("glyph-dit", "glyph-unet"):
        free = POOL._queue(model)
        held = [free.get(timeout=120) for _ in range(POOL.size)]
        left += [f"{model}: {x}" for pipe in held for x in left_on(pipe)]
        for pipe in held:
            free.put(pipe)
    return left


demo, url = serve_locally(concurrency=1)
try:
    left = faults(Client(url, verbose=False)) if sys.argv[1] == "faults" else []
    after = [summary(name, Client(url, verbose=False).predict(*args, api_name=name)) for name, args in AFTER]
finally:
    demo.close()
print("RESULT " + json.dumps({"left": left, "after": after, "requests": [a[:4] for _, a in AFTER]}))
'''


def _served(mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.getcwd(), GRADIO_ANALYTICS_ENABLED="False")
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=400, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _same(a, b) -> bool:
    """Equal, floats to 1e-5 relative: a float32 sum may round differently with the process's
    history (the allocator's and the math libraries' state), a few units in the last place,
    while anything a request left behind (a patched forward, a stale cache, trainable weights)
    changes numbers by far more than that, and changes the image hashes too."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_requests_ended_early_leave_the_server_as_a_fresh_one():
    after_faults, fresh = _served("faults"), _served("fresh")
    assert after_faults["left"] == []
    for request, mine, theirs in zip(fresh["requests"], after_faults["after"], fresh["after"], strict=True):
        if isinstance(mine, dict) and "rows" in mine:
            assert mine["images"] == theirs["images"], request
            differing = [(a["method"], k, a[k], b.get(k)) for a, b in zip(mine["rows"], theirs["rows"])
                         for k in a if not _same(a[k], b.get(k))]
            assert not differing, (request, differing)
        assert _same(mine, theirs), request


def test_the_comparison_tells_a_leak_from_rounding():
    row = {"method": "FR", "ssim": 0.8543059825897217, "class_agreement": 2}
    assert _same(row, row | {"ssim": 0.8543061017990112})  # two float32 ulps: rounding
    assert not _same(row, row | {"ssim": 0.8541})  # a changed answer
    assert not _same(row, row | {"class_agreement": 1})
    assert not _same([row], [row, row])
