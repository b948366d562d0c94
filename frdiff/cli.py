"""Command line: `python -m frdiff <command> ...`; every measuring command takes --json.

An entry point over both the library and the glyph testbed (models, classifier, training).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import torch

from .specs import LIBRARY, OPTIONS, SpecContext

# what --policy (sample, bench) and --policies (sweep, which also runs SAMPLER@STEPS:SPEC) take
POLICY_HELP = f"{LIBRARY.expected()} (options: {OPTIONS})"
POLICIES_HELP = f"{LIBRARY.expected(SpecContext(samplers=()))} (options: {OPTIONS})"


def positive(text: str) -> int:
    """An argparse type: an integer >= 1 (sample counts, batch sizes, repeats, steps)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def seed(text: str) -> int:
    """An argparse type: a random seed, 0 <= seed < 2**63 (what torch.Generator takes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:80]!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError("must be in 0 .. 2**63 - 1")
    return value


def number(low: float = 0.0, strict: bool = True, high: float = 1e6):
    """An argparse type: a number above `low` (at least `low` when not strict), at most `high`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text[:80]!r}") from None
        if not (low <= value <= high) or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be a number {'>' if strict else '>='} {low:g} "
                                             f"and <= {high:g}, got {text[:80]!r}")
        return value
    return parse


def sample_count(text: str) -> int:
    """An argparse type: a number of images for quality figures (a Frechet distance needs two)."""
    value = positive(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a Frechet distance needs two images), "
                                         f"got {value}")
    return value


def device_name(text: str) -> str:
    """An argparse type: a torch device that exists on this machine (cpu, cuda, cuda:1, mps)."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a device; use cpu, cuda, cuda:N "
                                         f"or mps") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError("no CUDA device on this machine; use cpu")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA device(s)")
        return text
    if device.type == "mps" and torch.backends.mps.is_available():
        return text
    raise argparse.ArgumentTypeError(f"{text[:80]!r} is not available here; use cpu"
                                     + (", cuda" if torch.cuda.is_available() else ""))


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an embedded glyph model (resumable)")
    p.add_argument("--model", required=True, choices=("glyph-unet", "glyph-dit", "glyph-flux", "classifier"))
    p.add_argument("--steps", type=positive, required=True, help="total optimiser steps")
    p.add_argument("--batch", type=positive, default=32)
    p.add_argument("--lr", type=number(high=10.0), default=1e-3)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--threads", type=positive, default=None, help="torch threads (default: all)")
    p.add_argument("--run-dir", default=None, help="checkpoint folder (default runs/MODEL)")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="warm start from exported weights (e.g. assets/glyph-dit); fresh optimiser")
    p.add_argument("--device", type=device_name, default="cpu",
                   help="where the model trains: cpu, cuda, ...")
    p.add_argument("--max-minutes", type=number(), default=None,
                   help="stop after this much wall time with a checkpoint (rerun to go on)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="after training, write the EMA weights here (e.g. assets/glyph-unet)")
    p.add_argument("--json", action="store_true")


def _run_train(args) -> dict:
    from .glyphs.train import TrainConfig, export, train

    run_dir = args.run_dir or f"runs/{args.model}"
    cfg = TrainConfig(model=args.model, steps=args.steps, batch_size=args.batch, lr=args.lr,
                      seed=args.seed, init_from=args.init_from)
    train(cfg, run_dir, threads=args.threads, progress=not args.json, device=args.device,
          max_minutes=args.max_minutes)
    result = {"run_dir": run_dir}
    if args.export:
        result |= export(run_dir, args.export) | {"out": args.export}
    return result


def _add_model_args(p) -> None:
    p.add_argument("--model", default="glyph-unet",
                   help="glyph-unet, glyph-dit, glyph-flux, or a local GlyphPipeline folder")
    p.add_argument("--steps", type=positive, default=None,
                   help="sampling steps (default: 50, or 28 for flow models)")
    p.add_argument("--scheduler", default=None,
                   help="ddim (default), dpmsolver or euler; for flow models euler (default), "
                        "heun, unipc or dpmsolver")
    p.add_argument("--guidance", type=number(strict=False), default=None, help="CFG scale (default: the pipeline's)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", type=device_name, default=None, help="cpu (default), cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _load(args):
    from .glyphs import load_pipeline
    from .schedulers import default_scheduler, default_steps, set_scheduler

    pipe = load_pipeline(args.model, device=args.device)
    args.scheduler = args.scheduler or default_scheduler(pipe)  # the name the results carry
    args.steps = args.steps or default_steps(pipe)
    pipe = set_scheduler(pipe, args.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _call_kwargs(args) -> dict:
    return {} if args.guidance is None else {"guidance_scale": args.guidance}


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="class accuracy and Frechet distance of samples")
    _add_model_args(p)
    p.add_argument("--samples", type=sample_count, default=512)
    p.add_argument("--batch", type=positive, default=64)


def _run_evaluate(args) -> dict:
    from .distributed import device, is_main, processes
    from .glyphs import load_classifier
    from .glyphs.evaluate import evaluate

    state = processes()  # several processes under torchrun / accelerate launch
    args.device = device(state, args.device)
    pipe = _load(args)
    result = evaluate(pipe, load_classifier(), args.samples, args.steps, args.seed,
                      args.batch, progress=not args.json, state=state, **_call_kwargs(args))
    if not is_main(state):
        return {"quiet": True}  # the main process reports
    return result | {"model": args.model, "scheduler": args.scheduler}


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate images (a PNG grid)")
    _add_model_args(p)
    p.add_argument("--labels", default=None, help="characters to draw (default: every class)")
    p.add_argument("--rows", type=positive, default=1, help="rows of samples per label")
    p.add_argument("--out", default="samples.png")
    p.add_argument("--policy", default=None, help=f"accelerate with {POLICY_HELP}")
    p.add_argument("--mixing", choices=("on", "off"), default="on")


def _run_sample(args) -> dict:
    from .accelerate import accelerate
    from .images import save_grid

    pipe = _load(args)
    labels = list(args.labels or pipe.labels) * args.rows
    g = torch.Generator().manual_seed(args.seed)
    call = lambda: pipe(labels, num_inference_steps=args.steps, generator=g,  # noqa: E731
                        output_type="pt", **_call_kwargs(args)).images
    stats = None
    if args.policy:
        with accelerate(pipe, _policy(args, pipe), _mixing(args)) as run:
            images = call()
        stats = run.stats.as_dict()
    else:
        images = call()
    save_grid(images, args.out, ncol=len(labels) // args.rows)
    return {"out": args.out, "labels": "".join(str(l) for l in labels), "stats": stats}


def _policy(args, pipe):
    """The policy `args.policy` names (frdiff.specs: every grammar, `magnitude:` with the
    model's shipped calibration for this sampler and step count)."""
    from .specs import parse_policy

    return parse_policy(args.policy, args.steps, _spec_context(args, pipe))


def _spec_context(args, pipe, samplers: bool = False) -> SpecContext:
    """What the specs may need on this model: its blocks, the testbed's shipped magnitude
    calibrations, and (`samplers`, for the sweep's SAMPLER@STEPS:SPEC) the samplers it runs."""
    from .glyphs import load_calibration
    from .schedulers import scheduler_names
    from .targets import denoiser_of, find_blocks

    blocks = find_blocks(denoiser_of(pipe))
    return SpecContext(blocks={b.name: b.depth for b in blocks}, residual=all(b.residual for b in blocks),
                       model=args.model, sampler=args.scheduler, calibration=load_calibration,
                       samplers=tuple(scheduler_names(pipe)) if samplers else None)


def _mixing(args):
    from .mixing import ScoreMixing

    return ScoreMixing() if args.mixing == "on" else ScoreMixing.off()


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measured speedup and quality of a policy vs full compute")
    _add_model_args(p)
    p.add_argument("--batch", type=positive, default=8, help="batch of the timed calls")
    p.add_argument("--policy", required=True, help=POLICY_HELP)
    p.add_argument("--mixing", choices=("on", "off"), default="on")
    p.add_argument("--samples", type=sample_count, default=256, help="images for the quality figures")
    p.add_argument("--repeats", type=positive, default=5, help="interleaved timing pairs")


def _run_bench(args) -> dict:
    from .glyphs import load_classifier
    from .glyphs.bench import bench

    pipe = _load(args)
    result = bench(pipe, load_classifier(), _policy(args, pipe), _mixing(args), args.steps,
                   args.batch, args.seed, args.samples, args.repeats)
    return result | {"model": args.model, "scheduler": args.scheduler}


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="learn a keyframe policy to a speed target (Auto-FR)")
    _add_model_args(p)
    p.add_argument("--target-speedup", type=number(1.0, strict=False), required=True)
    p.add_argument("--per-block", action="store_true", help="gates per step x block")
    p.add_argument("--iterations", type=positive, default=30, help="gradient iterations")
    p.add_argument("--mixing", choices=("on", "off"), default="on")
    p.add_argument("--cost", choices=("counted", "measured"), default="counted",
                   help="budget in counted MACs, or in seconds measured on this device (profiles "
                        "first unless --cost-table)")
    p.add_argument("--cost-table", default=None, metavar="JSON", help="a `profile` table (--cost measured)")
    p.add_argument("--out", required=True, help="policy JSON file to write")


def _run_tune(args) -> dict:
    from .autofr import tune
    from .distributed import device, is_main, processes

    state = processes()  # several processes: the structured starts are scored in shares
    args.device = device(state, args.device)
    pipe = _load(args)
    t0 = time.perf_counter()
    result = tune(pipe, args.steps, args.target_speedup, per_block=args.per_block,
                  iterations=args.iterations, seed=args.seed, progress=not args.json and is_main(state),
                  mixing=_mixing(args), state=state, cost=args.cost, cost_table=args.cost_table)
    if not is_main(state):
        return {"quiet": True}  # the main process writes the policy
    meta = {"model": args.model, "scheduler": args.scheduler, "steps": args.steps,
            "target_speedup": args.target_speedup, "per_block": args.per_block,
            "iterations": args.iterations, "seed": args.seed, "mixing": args.mixing,
            "cost_table": args.cost_table, **result.meta(), "tuning_s": round(time.perf_counter() - t0, 1)}
    result.policy.to_json(args.out, **meta)  # atomic: an interrupted run leaves no file
    return meta | {"out": args.out}


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="time every policy block in modes K, F and S on this "
                                       "device: a cost table for `tune --cost measured`")
    _add_model_args(p)
    p.add_argument("--batch", type=positive, default=8, help="images per call (the table's batch)")
    p.add_argument("--repeats", type=positive, default=3)
    p.add_argument("--out", required=True, help="cost table JSON file to write")


def _run_profile(args) -> dict:
    from .profile import profile

    pipe = _load(args)
    if not hasattr(pipe, "labels"):
        raise ValueError(f"profile from the command line needs a GlyphPipeline; call "
                         f"frdiff.profile.profile(pipe, steps, call_kwargs) for {type(pipe).__name__}")
    labels = [i % len(pipe.labels) for i in range(args.batch)]
    table = profile(pipe, args.steps, {"class_labels": labels, "output_type": "pt"} | _call_kwargs(args),
                    args.repeats, progress=not args.json)
    table.to_json(args.out)
    lines = [f"{table.model} on {table.device} ({table.dtype}), batch {table.batch}, {table.steps} steps: "
             f"a full call {1000 * table.call:.1f} ms, the step around it {1000 * table.step:.1f} ms",
             "", "| block | K ms | F ms | S ms |", "|---|---|---|---|"]
    for i, name in enumerate(table.blocks):
        k, f, sk = (1000 * table.seconds[m][i] for m in "KFS")
        lines.append(f"| {name} | {k:.2f} | {f:.2f} | {sk:.2f} |")
    lines.append(f"\nwritten to {args.out}")
    return {"model": args.model, "out": args.out, "call_s": table.call, "step_s": table.step,
            "seconds": table.seconds, "markdown": "\n".join(lines)}


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="several policies and fewer-steps baselines, one protocol, "
                                     "with the speed/quality Pareto front")
    _add_model_args(p)
    p.add_argument("--policies", default="uniform:2,uniform:3,deep:2,deep:3",
                   help=f"comma-separated, each {POLICIES_HELP}")
    p.add_argument("--peers", default="",
                   help="comma-separated peers measured beside them (all, or: " + ", ".join(_peer_names()) + ")")
    p.add_argument("--fewer-steps", default=None,
                   help="comma-separated step counts of the plain sampler (default: steps/2, steps/3)")
    p.add_argument("--mixing", choices=("on", "off"), default="on")
    p.add_argument("--batch", type=positive, default=8, help="batch of the timed calls")
    p.add_argument("--samples", type=sample_count, default=64, help="images for the quality figures")
    p.add_argument("--repeats", type=positive, default=3, help="interleaved timing pairs per row")
    p.add_argument("--out", default=None, help="also write the result JSON here")


def _run_sweep(args) -> dict:
    from .distributed import device, is_main, processes
    from .glyphs import load_classifier
    from .glyphs.bench import sweep_table
    from .glyphs.peer_rows import resolve
    from .glyphs.sweep import sweep

    chosen, _ = resolve(args.peers.split(",")) if args.peers.strip() else ([], False)
    state = processes()  # several processes under torchrun / accelerate launch
    args.device = device(state, args.device)
    pipe = _load(args)
    specs = [s.strip() for s in args.policies.split(",") if s.strip()]
    try:
        fewer = None if args.fewer_steps is None else [int(k) for k in args.fewer_steps.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--fewer-steps must be comma-separated step counts, got {args.fewer_steps!r}") from None
    # every bad spec is an error before any measuring
    policies = [_sweep_policy(args, spec, pipe) for spec in specs]
    result = sweep(pipe, load_classifier(), policies, _mixing(args), args.steps, fewer, batch=args.batch,
                   samples=args.samples, repeats=args.repeats, seed=args.seed, progress=not args.json,
                   peers=chosen, scheduler=args.scheduler, report=None if args.json else _print_row,
                   state=state)
    result = {"command": "python -m frdiff " + shlex.join(args.argv), "model": args.model,
              "scheduler": args.scheduler} | result
    if not is_main(state):
        return {"quiet": True}  # the main process reports
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result | {"markdown": sweep_table(result)}


def _sweep_policy(args, spec: str, pipe) -> tuple:
    """(name, policy) for a sweep's spec, or (name, policy, sampler, steps) for
    `SAMPLER@STEPS:SPEC`: the policy SPEC on another sampler and step count (e.g.
    `dpmsolver@20:magnitude:0.24`), measured against the sweep's own full compute."""
    from .specs import parse_spec

    parsed = parse_spec(spec, args.steps, _spec_context(args, pipe, samplers=True))
    if parsed.sampler is None:
        return spec, parsed.policy
    return spec, parsed.policy, parsed.sampler, parsed.steps


def _peer_names() -> list[str]:
    from .glyphs.peer_rows import PEERS

    return list(PEERS)


def _print_row(row: dict) -> None:
    print(f"{row['method']:<28} {row['setting']:<56} {row['speedup']:.2f}x measured, "
          f"{row['ideal_speedup']:.2f}x counted, {row['psnr']:.1f} dB", file=sys.stderr, flush=True)


def _add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="per-block temporal change and per-frequency error of each "
                                       "shortcut (observes; changes nothing)")
    _add_model_args(p)
    p.add_argument("--labels", default=None, help="characters to draw (default: 8 spread classes)")
    p.add_argument("--interval", type=positive, default=2, help="keyframe interval of the frequency runs")


def _run_analyze(args) -> dict:
    from .analysis import frequency_comparison, temporal_similarity
    from .metrics import BANDS, band_errors

    pipe = _load(args)
    labels = list(args.labels) if args.labels else list(pipe.labels[:: max(1, len(pipe.labels) // 8)])[:8]
    kwargs = {"class_labels": labels} | _call_kwargs(args)
    sim = temporal_similarity(pipe, args.steps, generator=torch.Generator().manual_seed(args.seed),
                              output_type="pt", **kwargs)
    freq = frequency_comparison(pipe, args.steps, args.interval, seed=args.seed, **kwargs)
    change = sim.change.nan_to_num()
    lines = ["mean change of each block's output from one step to the next:"]
    lines += [f"  {name:<24} {float(c):6.1%}" for name, c in zip(sim.blocks, change.mean(0))]
    lines += ["", "error power / full-compute power, mean over the bands of each group (" +
              "; ".join(f"{k}: {v}" for k, v in BANDS.items()) + "):"]
    for name, run in freq.runs.items():
        e = band_errors(run["error_spectrum"])
        lines.append(f"  {name:<30} low {e['low']:.2e}  mid {e['mid']:.2e}  high {e['high']:.2e}  "
                     f"PSNR {run['psnr']:.1f} dB  counted {run['ideal_speedup']:.2f}x")
    return {"model": args.model, "scheduler": args.scheduler, "steps": args.steps,
            "labels": "".join(map(str, labels)), "seed": args.seed, "interval": args.interval,
            "temporal_similarity": sim.as_dict(), "frequency": freq.as_dict(),
            "markdown": "\n".join(lines)}


COMMANDS = {"tune": (_add_tune, _run_tune), "train": (_add_train, _run_train),
            "evaluate": (_add_evaluate, _run_evaluate), "sample": (_add_sample, _run_sample),
            "bench": (_add_bench, _run_bench), "sweep": (_add_sweep, _run_sweep),
            "analyze": (_add_analyze, _run_analyze), "profile": (_add_profile, _run_profile)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frdiff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = COMMANDS[args.command][1](args)
    except (ValueError, OSError, KeyError, FloatingPointError) as err:  # OSError: a corrupt checkpoint
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.get("quiet"):
        return 0
    table = result.pop("markdown", None)
    if getattr(args, "json", False):
        print(json.dumps(result))
    else:
        print(table or json.dumps(result, indent=2))
    return 0
