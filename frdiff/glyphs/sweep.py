"""The sweep (`python -m frdiff sweep`): frdiff's policies, the plain sampler with fewer steps and
the peers, each a row under one protocol (`frdiff.glyphs.bench`), with the Pareto front.

It sits above both modules it puts together: the rows and tables (`bench`) and the peers' rows
(`peer_rows`, which measures them with `bench`'s rows).
"""

from __future__ import annotations

from ..mixing import ScoreMixing
from ..timing import machine
from .bench import collect_rows, fewer_steps_row, mark_front, policy_row, sampler_policy_row
from .peer_rows import peer_jobs


def sweep(pipe, classifier, specs: list, mixing: ScoreMixing, steps: int,
          fewer_steps: list[int] | None = None, batch: int = 8, samples: int = 64, repeats: int = 3,
          seed: int = 0, progress: bool = True, peers: list | None = None, scheduler: str = "ddim",
          report=None, state=None) -> dict:
    """Policies (specs as for `bench`, (name, policy) pairs, or (name, policy, sampler, steps) for a
    policy on another sampler and step count), fewer-steps baselines (default
    steps/2, steps/3) and `peers` (from `peer_rows.resolve`; rows reported for those that cannot
    run on this model) under one protocol, with the speed/quality Pareto front by counted and by
    measured speedup. `scheduler`: the name of the pipeline's sampler (for the peers). `state`
    (frdiff.distributed.processes()): the rows are shared between processes, each row timed
    within the process that measures it; every process returns the whole result."""
    from ..distributed import count

    fewer = fewer_steps if fewer_steps is not None else sorted(
        {max(1, round(steps / 2)), max(1, round(steps / 3))}, reverse=True)
    common = dict(labels=[(seed + i) % len(pipe.labels) for i in range(batch)], steps=steps,
                  seed=seed, samples=samples, repeats=repeats)

    def frdiff_job(spec):
        if not isinstance(spec, str) and len(spec) == 4:  # (name, policy, sampler, its steps)
            name, policy, sampler, run_steps = spec
            return lambda b: sampler_policy_row(pipe, classifier, name, policy, mixing, sampler, run_steps,
                                                baseline=b, **common)
        name, policy = (spec, None) if isinstance(spec, str) else spec
        return lambda b: policy_row(pipe, classifier, name, mixing, baseline=b, policy=policy, **common)

    jobs = [frdiff_job(s) for s in specs]
    jobs += [lambda b, k=k: fewer_steps_row(pipe, classifier, k, baseline=b, **common) for k in fewer]
    extra, reported = peer_jobs(pipe, classifier, peers or [], scheduler, common, set(fewer))
    rows = mark_front(collect_rows(jobs + extra, progress=progress, report=report, state=state)) + reported
    return {"steps": steps, "batch": batch, "samples": samples, "repeats": repeats, "seed": seed,
            "machine": machine(), "processes": count(state), "rows": rows}
