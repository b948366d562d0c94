"""A sweep on several processes (torchrun, gloo on the CPU, through accelerate's process state)
equals the single-process sweep in every quality column, and says how many processes took part."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(600)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = ["sweep", "--model", "glyph-unet", "--steps", "4", "--batch", "2", "--samples", "4", "--repeats", "1",
         "--policies", "uniform:2,deep:2", "--fewer-steps", "2", "--json"]
QUALITY = ("method", "setting", "psnr", "ssim", "class_accuracy", "fd", "ideal_speedup")


def run(launcher: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")  # as torchrun sets it
    out = subprocess.run(launcher + ["-m", "frdiff", *SWEEP], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=500)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out.stdout[-2000:]  # only the main process reports
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def alone() -> dict:
    return run([sys.executable])


@pytest.mark.parametrize("processes", [2, 4])  # 4: more processes than the 3 settings, one idle
def test_torchrun_processes_share_the_sweep_and_equal_the_single_run(alone, processes):
    shared = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                  str(processes)])
    assert alone["processes"] == 1 and shared["processes"] == processes
    assert [{k: r[k] for k in QUALITY} for r in shared["rows"]] == [{k: r[k] for k in QUALITY} for r in alone["rows"]]
