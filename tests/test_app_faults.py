"""Faults on the served app, compared with a fresh process: requests that end early (a time
limit hit mid-sampling, a learning run cancelled mid-descent, a client that cancels and goes
away) leave no replaced forward, no scheduler patch, no cache and no trainable weight on any
pooled pipeline, and the next requests answer exactly what a freshly started server answers."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from app.presets import preset_text

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = pytest.mark.timeout(400)
STEPS = 6
TEXT = preset_text("glyph-dit", "DDIM", STEPS, "uniform, interval 2")
# the requests compared with a fresh process: both models, a policy, the analyses
AFTER = [("/generate", ["glyph-dit", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 1, ["fr-only"]]),
         ("/generate", ["glyph-unet", "K", "DPM-Solver++", STEPS,
                        preset_text("glyph-unet", "DPM-Solver++", STEPS, "uniform, interval 3"),
                        True, 30, 0.5, 2, []]),
         ("/similarity", ["glyph-dit", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 1,
                          "transformer_blocks.1"])]
# what the fresh process runs (after `summary`'s source): the requests on a server of its own
FRESH = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    from gradio_client import Client
    from app.ui import serve_locally
    demo, url = serve_locally(concurrency=1)
    out = []
    for name, args in json.loads(sys.argv[1]):
        out.append(summary(name, Client(url, verbose=False).predict(*args, api_name=name)))
    demo.close()
    print("RESULT " + json.dumps(out))
    """)


def summary(name, out):
    """A request's answer without its timings: pixel sums and hashes of every image, numbers."""
    import hashlib

    if name == "/similarity":
        return out[4]
    images = [np.asarray(Image.open(item["image"])) for item in out[0]]
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "measured_speedup")}
            for r in out[7]["runs"]]
    return {"images": [hashlib.sha256(i.tobytes()).hexdigest() for i in images], "rows": rows}


def _fresh_results():
    import inspect

    script = inspect.getsource(summary) + FRESH
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-c", script, json.dumps(AFTER)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _clean(pipe) -> list[str]:
    """What a request could have left on a pooled pipeline (empty when nothing)."""
    model, left = pipe.denoiser, []
    left += [f"{n or 'model'}.forward" for n, m in model.named_modules() if "forward" in vars(m)]
    left += [f"{n}: trainable" for n, p in model.named_parameters() if p.requires_grad]
    left += [f"{n}._frdiff_run" for n, m in model.named_modules() if "_frdiff_run" in vars(m)]
    left += [f"scheduler.{k}" for k in ("step", "set_timesteps") if k in vars(pipe.scheduler)]
    return left


def test_requests_ended_early_leave_the_server_as_a_fresh_one(monkeypatch):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from app import learn as learning
    from app.models import POOL
    from app.ui import serve_locally

    demo, url = serve_locally(concurrency=1)
    try:
        client = Client(url, verbose=False)
        # 1. a time limit hit mid-sampling (the limit is read per request)
        monkeypatch.setenv("FRDIFF_APP_TIME_LIMIT", "1")
        with pytest.raises(AppError, match="time limit of 1 s"):
            client.predict("glyph-dit", "A7KM" * 2, "DDIM", 100, preset_text(
                "glyph-dit", "DDIM", 100, "uniform, interval 2"), True, 30, 0.5, 0, ["fr-only"],
                api_name="/generate")
        monkeypatch.delenv("FRDIFF_APP_TIME_LIMIT")
        # 2. learning cancelled once the descent has begun (the gated pass patches the model)
        monkeypatch.setattr(learning, "LEARN_LIMITS", learning.LearnLimits(iterations=50, seconds=240))
        job = client.submit("glyph-dit", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 0, 1.5,
                            api_name="/learn")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("descending" in out[1] for out in job.outputs()):
            time.sleep(0.05)
        assert not job.done(), "learning ended before it could be cancelled mid-descent"
        job.cancel()
        # 3. a generation whose client cancels and leaves at once
        gone = client.submit(*AFTER[0][1], api_name="/generate")
        time.sleep(0.5)
        gone.cancel()
        # everything ended early has let go of its pipeline: borrow every replica of each model
        time.sleep(1.0)
        for model in ("glyph-dit", "glyph-unet"):
            free = POOL._queue(model)
            held = [free.get(timeout=120) for _ in range(POOL.size)]
            try:
                for pipe in held:
                    assert _clean(pipe) == [], (model, _clean(pipe))
            finally:
                for pipe in held:
                    free.put(pipe)
        after = [summary(name, Client(url, verbose=False).predict(*args, api_name=name))
                 for name, args in AFTER]
    finally:
        demo.close()
    assert after == _fresh_results()
