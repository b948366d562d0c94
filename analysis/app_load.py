"""Load test of the served app: many gradio_client clients at once over every endpoint.

    python -m analysis.app_load [--clients 32] [--seconds 120] [--port 7862] [--memory 500] [--json]

Starts `python app.py` in a subprocess (a real server), then:
1. **Load**: `--clients` threads, each its own `gradio_client.Client`, send requests for
   `--seconds`, each drawn (from the client's own seeded generator) from a fixed mix of
   REQUESTS: /generate, /spectra, /similarity, /trajectory, /live, /learn and /check_policy
   on both models, three samplers, several policies and seeds, at small sizes (a 2-core CPU
   serves them one at a time). Every answer is checked, bit for bit, against the same request
   run alone afterwards (numbers without their timing fields, every image's pixels).
2. **Queue**: a second server with a queue of 2 gets 8 requests at once: those beyond the queue
   must be refused at once with a clear message, the others served.
3. **Memory**: `--memory` consecutive /live requests (different seeds) on the first server; its
   peak RSS (VmHWM) after 50 and after all of them.
Prints requests served, failures, p50/p95 latency, peak RSS, the queue's answers and the memory
figures, with the machine. Writes analysis/results/app-load.json.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from frdiff.timing import machine

TIMING = {"seconds", "measured_speedup"}


def requests() -> list[tuple[str, tuple]]:
    """The request mix: (api name, arguments), each small enough to take about a second here."""
    from app.presets import preset_text

    out = []
    for model, glyphs in (("glyph-unet", "A7"), ("glyph-dit", "K3")):
        for scheduler, steps in (("DDIM", 10), ("DPM-Solver++", 8), ("Euler", 8)):
            for preset in ("uniform, interval 2", "whole-block skip, interval 2"):
                text = preset_text(model, scheduler, steps, preset)
                settings = (model, glyphs, scheduler, steps, text, True, 30, 0.5)
                out.append(("/generate", settings + (len(out) % 3, ["fewer-steps"])))
                out.append(("/live", settings + (len(out) % 5, True)))
        text = preset_text(model, "DDIM", 8, "uniform, interval 3")
        settings = (model, glyphs, "DDIM", 8, text, True, 30, 0.5, 1)
        out.append(("/similarity", settings + (None,)))
        out.append(("/spectra", settings))
        out.append(("/trajectory", settings))
        out.append(("/check_policy", (model, 8, text, True, 30, 0.5)))
    out.append(("/learn", ("glyph-unet", "A7", "DDIM", 6, preset_text("glyph-unet", "DDIM", 6, "uniform, interval 2"),
                           True, 30, 0.5, 0, 1.5)))
    return out


def comparable(value):
    """A result with its timing fields removed and every image file replaced by its pixels."""
    from PIL import Image

    if isinstance(value, dict):
        if "image" in value and isinstance(value["image"], str):  # a gallery item
            return comparable(value["image"])
        return {k: comparable(v) for k, v in value.items() if k not in TIMING and k != "caption"}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if isinstance(value, str) and os.path.isfile(value) and value.endswith(".png"):
        return np.asarray(Image.open(value)).tobytes()
    if isinstance(value, str) and " s for this update" in value:  # /live's text ends with its time
        return value.rsplit(";", 1)[0]
    if isinstance(value, str) and value.startswith("**Learned**"):  # the learn text holds its time
        return value.split(" in ", 1)[0]
    return value


def call(client, name: str, args: tuple):
    if name == "/similarity":  # the block: the model's first
        block = "down_blocks.0" if args[0] == "glyph-unet" else "transformer_blocks.0"
        args = args[:-1] + (block,)
    out = client.predict(*args, api_name=name)
    if name == "/generate":
        out = out[:8]  # the downloads are the same files' bytes under new names
        out = [o for i, o in enumerate(out) if i not in (6,)]  # the notes hold this run's times
    if name == "/generate" or name == "/learn":
        out = [o if not isinstance(o, dict) or "data" not in o else
               {**o, "data": [r[:2] + r[4:] for r in o["data"]]} for o in out]  # drop the table's times
    return comparable(out)


def start_server(port: int, extra_env: dict | None = None) -> subprocess.Popen:
    from analysis.app_bench import wait_for_page

    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "app.py"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_page(f"http://127.0.0.1:{port}/", proc)
    return proc


def rss(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
    return {k: int(v.split()[0]) * 1024 for k, v in fields.items()}


def load(url: str, clients: int, seconds: float, seed: int = 0, max_requests: int | None = None,
         mix: list | None = None) -> dict:
    """`clients` concurrent clients for `seconds` (or `max_requests` each); then every distinct
    request alone, compared bit for bit."""
    from gradio_client import Client

    mix = mix or requests()
    answers: list[tuple[int, object, float]] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        client = Client(url, verbose=False)
        done = 0
        while time.monotonic() < deadline and (max_requests is None or done < max_requests):
            i = rng.randrange(len(mix))
            start = time.perf_counter()
            try:
                out = call(client, *mix[i])
            except Exception as err:  # noqa: BLE001 - counted and reported
                with lock:
                    failures.append(f"{mix[i][0]}: {type(err).__name__}: {err}")
                continue
            with lock:
                answers.append((i, out, time.perf_counter() - start))
            done += 1

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"load: {len(answers)} served, {len(failures)} failed; now each distinct request alone",
          file=sys.stderr, flush=True)
    alone = {}
    client = Client(url, verbose=False)
    for i in sorted({i for i, _, _ in answers}):
        alone[i] = call(client, *mix[i])
    mismatched = [mix[i][0] for i, out, _ in answers if out != alone[i]]
    latencies = sorted(t for _, _, t in answers)
    return {"clients": clients, "seconds": seconds, "served": len(answers), "failures": failures,
            "mismatched": mismatched, "distinct_requests": len(alone),
            "endpoints": sorted({mix[i][0] for i, _, _ in answers}),
            "p50_s": statistics.median(latencies) if latencies else None,
            "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None}


def queue_overflow(port: int, size: int = 2, burst: int = 8) -> dict:
    """A server with a queue of `size` gets `burst` requests at once."""
    from gradio_client import Client

    from app.presets import preset_text

    proc = start_server(port, {"FRDIFF_APP_QUEUE_SIZE": str(size)})
    try:
        url = f"http://127.0.0.1:{port}/"
        text = preset_text("glyph-unet", "DDIM", 30, "uniform, interval 2")
        jobs = [Client(url, verbose=False).submit("glyph-unet", "A7K3", "DDIM", 30, text, True, 30, 0.5, s,
                                                  ["fewer-steps"], api_name="/generate") for s in range(burst)]
        served, refused, start = 0, [], time.perf_counter()
        for job in jobs:
            try:
                job.result(timeout=300)
                served += 1
            except Exception as err:  # noqa: BLE001 - the refusals are the point
                refused.append(str(err))
        return {"queue_size": size, "burst": burst, "served": served, "refused": len(refused),
                "messages": sorted(set(refused)), "seconds": time.perf_counter() - start}
    finally:
        proc.terminate()
        proc.wait()


def memory(url: str, pid: int, total: int) -> dict:
    """Peak RSS of the server after 50 and after `total` consecutive /live requests."""
    from gradio_client import Client

    from app.presets import preset_text

    client = Client(url, verbose=False)
    text = preset_text("glyph-unet", "DDIM", 8, "uniform, interval 2")
    marks = {}
    for i in range(total):
        client.predict("glyph-unet", "A7", "DDIM", 8, text, True, 30, 0.5, i % 1000, True, api_name="/live")
        if i + 1 in (50, total):
            marks[i + 1] = rss(pid)["VmHWM"]
    return {"requests": total, "peak_rss_after_50": marks.get(50), "peak_rss_after_all": marks[total],
            "growth": marks[total] / marks[50] - 1 if 50 in marks else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--port", type=int, default=7862)
    ap.add_argument("--memory", type=int, default=500, help="consecutive requests of the memory phase (0: skip)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from analysis.common import write_result

    proc = start_server(args.port)
    try:
        url = f"http://127.0.0.1:{args.port}/"
        result = {"machine": machine(), "load": load(url, args.clients, args.seconds)}
        result["load"]["peak_rss"] = rss(proc.pid)["VmHWM"]
        if args.memory:
            result["memory"] = memory(url, proc.pid, args.memory)
    finally:
        proc.terminate()
        proc.wait()
    result["queue"] = queue_overflow(args.port + 1)
    write_result("app-load", result)
    r = result["load"]
    print(f"{r['clients']} clients for {r['seconds']:.0f} s: {r['served']} requests served over "
          f"{', '.join(r['endpoints'])}; {len(r['failures'])} failed; {len(r['mismatched'])} differed from the "
          f"same request alone; latency p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s; server peak RSS "
          f"{r['peak_rss'] / 2**20:.0f} MiB")
    if "memory" in result:
        m = result["memory"]
        print(f"memory: peak RSS {m['peak_rss_after_50'] / 2**20:.0f} MiB after 50 requests, "
              f"{m['peak_rss_after_all'] / 2**20:.0f} MiB after {m['requests']} ({m['growth']:+.1%})")
    q = result["queue"]
    print(f"queue of {q['queue_size']}, {q['burst']} at once: {q['served']} served, {q['refused']} refused "
          f"({'; '.join(q['messages'])}) in {q['seconds']:.1f} s")
    m = result["machine"]
    print(f"{m['cpu']}, {m['threads']} threads")


if __name__ == "__main__":
    main()
