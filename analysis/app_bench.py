"""How fast the app answers: time to first page after `python app.py`, /generate and /live times.

    python -m analysis.app_bench [--repeats 3] [--port 7861] [--methods fewer-steps,peer] [--learn]
                                 [--cache cold|warm] [--json]

Starts `python app.py` in a subprocess (a real server, as a user would), polls the page until
it answers, then drives /generate with gradio_client on the defaults a visitor gets: glyph-unet,
DDIM 50 steps, 4 glyphs ("A7K3"), uniform interval-2 policy with score mixing, and the default
method set (full compute, FRDiff, fewer steps, the shipped Auto-FR policy, the peer). The first
call may wait for the server's warm-up; the median of the rest is the steady figure. Then, in the
same session, /live with the policy edited back and forth (interval 2 and 3): what the page
does at every edit, FRDiff only, full compute reused. With --learn, then one /learn (the Learn
tab's "Learn a policy") at the same settings and a 2x target, with the app's default tuner
limits, timed from the call to the loaded policy. Prints the machine with the figures.
Nothing else heavy should run meanwhile.

`--cache cold` (the default) starts the server on an empty first-view cache (a fresh
FRDIFF_APP_CACHE), so the first views' own process computes them while the calls run: a Space's
first start. `--cache warm` fills that cache first (untimed, as a previous start would have) and
then times the start: every restart after the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from frdiff.timing import machine


def wait_for_page(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"python app.py exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no page at {url} after {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port", type=int, default=7861)
    ap.add_argument("--methods", default=None, help="comma-separated optional methods "
                    "(default: the app's default set)")
    ap.add_argument("--learn", action="store_true", help="also time one /learn at a 2x target")
    ap.add_argument("--cache", choices=("cold", "warm"), default="cold",
                    help="start on an empty first-view cache (cold) or on one filled first (warm)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from gradio_client import Client

    from app.methods import DEFAULT_METHODS
    from app.presets import preset_text

    cache = tempfile.mkdtemp(prefix="frdiff-app-cache-")
    env = dict(os.environ, GRADIO_SERVER_PORT=str(args.port), GRADIO_ANALYTICS_ENABLED="False",
               FRDIFF_APP_CACHE=cache)
    if args.cache == "warm":  # what a previous start left on disk (untimed)
        from app import first

        if first.prepare_elsewhere(env).wait() != 0:
            raise SystemExit("computing the first views failed")
    url = f"http://127.0.0.1:{args.port}/"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_page(url, proc)
        first_page = time.perf_counter() - start
        client = Client(url, verbose=False)
        text = preset_text("glyph-unet", "DDIM", 50, "uniform, interval 2")
        chosen = args.methods.split(",") if args.methods is not None else list(DEFAULT_METHODS)
        chosen = [m for m in chosen if m]
        times, methods = [], None
        for _ in range(args.repeats + 1):
            t = time.perf_counter()
            out = client.predict("glyph-unet", "A7K3", "DDIM", 50, text, True, 30, 0.5, 0,
                                 chosen, api_name="/generate")
            times.append(time.perf_counter() - t)
            methods = [r["method"] for r in out[7]["runs"]]
        # live editing: the same session edits the policy; /live redoes FRDiff only, full compute
        # reused from the generation above (what the page does at every edit)
        live = []
        for i in range(2 * args.repeats + 1):
            edited = preset_text("glyph-unet", "DDIM", 50, f"uniform, interval {2 + i % 2}")
            t = time.perf_counter()
            client.predict("glyph-unet", "A7K3", "DDIM", 50, edited, True, 30, 0.5, 0, True, api_name="/live")
            live.append(time.perf_counter() - t)
        learned = None
        if args.learn:
            t = time.perf_counter()
            out = client.predict("glyph-unet", "A7K3", "DDIM", 50, text, True, 30, 0.5, 0, 2.0, api_name="/learn")
            learned = {"seconds": time.perf_counter() - t, "status": out[1],
                       "rows": [row[:4] for row in out[3]["data"]]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"first_page_s": first_page, "generate_first_s": times[0],
              "generate_median_s": statistics.median(times[1:]), "generate_s": times,
              "methods": methods, "live_first_s": live[0], "live_median_s": statistics.median(live[1:]),
              "live_s": live, "settings": "glyph-unet, DDIM 50, 4 glyphs", "cache": args.cache,
              "machine": machine()}
    if learned is not None:
        result["learn"] = learned
    if args.json:
        print(json.dumps(result))
        return
    print(f"machine: {result['machine']}; {args.cache} first-view cache")
    print(f"first page after `python app.py`: {first_page:.1f} s (target 10 s)")
    print(f"/generate, {result['settings']}, methods {', '.join(methods)}:")
    print(f"  first call {times[0]:.2f} s, then median {result['generate_median_s']:.2f} s "
          f"over {args.repeats} (target 5 s)")
    print(f"/live (an edited policy, FRDiff only, full compute reused): first {live[0]:.2f} s, then median "
          f"{result['live_median_s']:.2f} s over {len(live) - 1} (target 3 s)")
    if learned is not None:
        print(f"/learn, 2x target, the app's tuner limits: {learned['seconds']:.1f} s (target 60 s)"
              f"\n  {learned['status']}")
        for row in learned["rows"]:
            print("  ", *row)


if __name__ == "__main__":
    main()
