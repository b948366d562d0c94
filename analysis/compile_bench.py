"""frdiff under torch.compile on the glyph models, measured in one process.

Four ways to sample the same batch, timed in rotating order (median of `--repeats`):
uncompiled, uncompiled + frdiff, compiled (`--how regional`: each policy block, or the
model's `compile_repeated_blocks()`; `whole`: `model.compile()`), compiled + frdiff. The
compile warm-up (first call) is timed apart, and dynamo's counters (graphs, graph breaks,
recompiles) are read over the first and a second frdiff run: the second must add none.

    python -m analysis.compile_bench --models glyph-unet glyph-dit glyph-flux --how regional

writes analysis/results/compile-bench.json (.md beside it). Inductor needs a C compiler
(gcc); `--backend aot_eager` measures the same without one.
"""

from __future__ import annotations

import argparse
import time

import torch

import frdiff
from frdiff.glyphs import load_pipeline
from frdiff.schedulers import default_steps
from frdiff.targets import denoiser_of, find_blocks
from frdiff.timing import interleaved_times, machine

from .common import write_result


def compile_model(model, how: str, backend: str) -> None:
    """As a user would: regional (the model's repeated blocks, else each policy block) or whole."""
    if how == "whole":
        model.compile(backend=backend)
    elif getattr(model, "_repeated_blocks", None):
        model.compile_repeated_blocks(backend=backend)
    else:
        for block in find_blocks(model):
            block.module.compile(backend=backend)


def bench_model(name: str, policy_spec: str, how: str, backend: str, batch: int,
                repeats: int, steps: int | None = None) -> dict:
    plain_pipe, compiled_pipe = load_pipeline(name), load_pipeline(name)
    steps = steps or default_steps(plain_pipe)
    labels = list(range(batch))
    policy = frdiff.KeyframePolicy.parse(policy_spec, steps)
    for pipe in (plain_pipe, compiled_pipe):
        pipe.set_progress_bar_config(disable=True)

    def sample(pipe):
        return pipe(labels, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                    output_type="pt").images

    def with_frdiff(pipe, reports=None):
        with frdiff.accelerate(pipe, policy) as run:
            out = sample(pipe)
        if reports is not None:
            reports.append(run.regions.report() if run.regions else None)
        return out

    torch._dynamo.reset()
    compile_model(denoiser_of(compiled_pipe), how, backend)
    start = time.perf_counter()
    compiled_plain = sample(compiled_pipe)
    warmup_plain = time.perf_counter() - start
    reports: list = []
    start = time.perf_counter()
    compiled_fr = with_frdiff(compiled_pipe, reports)
    warmup_fr = time.perf_counter() - start
    with_frdiff(compiled_pipe, reports)  # the second run: no new graph
    eager_plain, eager_fr = sample(plain_pipe), with_frdiff(plain_pipe)
    times = interleaved_times({
        "uncompiled": lambda: sample(plain_pipe),
        "uncompiled + frdiff": lambda: with_frdiff(plain_pipe),
        "compiled": lambda: sample(compiled_pipe),
        "compiled + frdiff": lambda: with_frdiff(compiled_pipe),
    }, repeats=repeats, warmup=1)
    with frdiff.accelerate(plain_pipe, policy) as run:
        sample(plain_pipe)
    return {
        "model": name, "policy": policy_spec, "steps": steps, "batch": batch, "how": how,
        "backend": backend, "counted_speedup": run.stats.ideal_speedup, "times": times,
        "frdiff_speedup_uncompiled": times["uncompiled + frdiff"]["speedup_vs_first"],
        "frdiff_speedup_compiled": times["compiled + frdiff"]["speedup_vs_first"]
        / times["compiled"]["speedup_vs_first"],
        "compile_speedup": times["compiled"]["speedup_vs_first"],
        "total_speedup": times["compiled + frdiff"]["speedup_vs_first"],
        "warmup_s": {"compiled": warmup_plain, "compiled + frdiff": warmup_fr},
        "dynamo": {"first_frdiff_run": reports[0], "second_frdiff_run": reports[1]},
        "max_abs_diff": {"compiled vs uncompiled": (compiled_plain - eager_plain).abs().max().item(),
                         "compiled + frdiff vs uncompiled + frdiff":
                             (compiled_fr - eager_fr).abs().max().item()},
    }


def table(rows: list[dict]) -> str:
    lines = ["| model | policy | how | uncompiled s | compiled s | frdiff x (uncompiled) | "
             "frdiff x (compiled) | compile + frdiff x | counted x | warm-up s (plain / frdiff) | "
             "new graphs, 2nd run | graph breaks |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, d = r["times"], r["dynamo"]
        second, first = d["second_frdiff_run"] or {}, d["first_frdiff_run"] or {}
        lines.append(
            f"| {r['model']} | {r['policy']} | {r['how']} ({r['backend']}) | {t['uncompiled']['seconds']:.2f} | "
            f"{t['compiled']['seconds']:.2f} | {r['frdiff_speedup_uncompiled']:.2f} | "
            f"{r['frdiff_speedup_compiled']:.2f} | {r['total_speedup']:.2f} | {r['counted_speedup']:.2f} | "
            f"{r['warmup_s']['compiled']:.0f} / {r['warmup_s']['compiled + frdiff']:.0f} | "
            f"{second.get('graphs', 0)} | {first.get('graph_breaks', 0) + second.get('graph_breaks', 0)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["glyph-unet", "glyph-dit", "glyph-flux"])
    p.add_argument("--policy", default="uniform:2")
    p.add_argument("--how", choices=["regional", "whole"], default="regional")
    p.add_argument("--backend", default="inductor")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="default: the model's (50 DDIM, 28 Euler)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="compile-bench")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        rows.append(bench_model(name, args.policy, args.how, args.backend, args.batch, args.repeats, args.steps))
        print(table(rows[-1:]), flush=True)
    md = f"Measured on {machine()['cpu']} ({machine()['threads']} threads).\n\n" + table(rows)
    print(write_result(args.out, {"rows": rows}, md))


if __name__ == "__main__":
    main()
