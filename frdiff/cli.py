"""Command line: `python -m frdiff <command> ...`; every measuring command takes --json."""

from __future__ import annotations

import argparse
import json
import sys


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an embedded glyph model (resumable)")
    p.add_argument("--model", required=True, choices=("glyph-unet", "glyph-dit", "classifier"))
    p.add_argument("--steps", type=int, required=True, help="total optimiser steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--run-dir", default=None, help="checkpoint folder (default runs/MODEL)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="after training, write the EMA weights here (e.g. assets/glyph-unet)")
    p.add_argument("--json", action="store_true")


def _run_train(args) -> dict:
    from .train import TrainConfig, export, train

    run_dir = args.run_dir or f"runs/{args.model}"
    cfg = TrainConfig(model=args.model, steps=args.steps, batch_size=args.batch, lr=args.lr,
                      seed=args.seed)
    train(cfg, run_dir, threads=args.threads, progress=not args.json)
    result = {"run_dir": run_dir}
    if args.export:
        result |= export(run_dir, args.export) | {"out": args.export}
    return result


COMMANDS = {"train": (_add_train, _run_train)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frdiff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    args = parser.parse_args(argv)
    try:
        result = COMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0
