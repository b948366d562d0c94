"""Would the "no call" start (fewer steps, learned step selection) have won for the shipped
policies? Scores every structured start the tuner has now, for each shipped policy's settings.

    python -m analysis.start_check [--policies assets/policies/*.json] [--threads 2]

For each file: the tuner's starts (`tune(..., iterations=0)`) with its model, scheduler,
steps, target, seed and per-block setting, scored on the same held-out batches as when the
file was made. Prints and writes analysis/results/start-check.json: the best start now, the
"no call" start's selection loss, and the shipped policy's own selection loss (`final_loss`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import torch

from frdiff import ScoreMixing, load_pipeline, set_scheduler
from frdiff.autofr import tune
from analysis.common import write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", nargs="+", default=sorted(glob.glob("assets/policies/*.json")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="analysis/results/start-check.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for path in args.policies:
        with open(path) as f:
            meta = json.load(f)["meta"]
        pipe = set_scheduler(load_pipeline(meta["model"]), meta["scheduler"])
        result = tune(pipe, meta["steps"], meta["target_speedup"], per_block=meta["per_block"],
                      iterations=0, seed=meta["seed"], mixing=ScoreMixing(), progress=False)
        no_call = {k: v for k, v in result.starts.items() if k.startswith("no call")}
        row = {"policy": path, "best_start_now": result.start, "best_start_loss": result.start_loss,
               "no_call_start": next(iter(no_call), None), "no_call_loss": next(iter(no_call.values()), None),
               "shipped_loss": meta["final_loss"], "shipped_start": meta["start"],
               "ideal_speedup_of_best_start": result.ideal_speedup}
        row["no_call_wins"] = row["no_call_loss"] is not None and row["no_call_loss"] < row["shipped_loss"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_result(args.out, {"rows": rows})
    print("\n| shipped policy | its selection loss | \"no call\" start | its loss | best start now |")
    print("|---|---|---|---|---|")
    for r in rows:
        nc = "n/a" if r["no_call_loss"] is None else f"{r['no_call_loss']:.2e}"
        print(f"| `{os.path.basename(r['policy'])}` | {r['shipped_loss']:.2e} | {r['no_call_start']} | {nc} | "
              f"{r['best_start_now']} |")


if __name__ == "__main__":
    main()
