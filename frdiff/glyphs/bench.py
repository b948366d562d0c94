"""Glyph benchmarks (`python -m frdiff bench`, and the rows and tables of `sweep`, which
`frdiff.glyphs.sweep` puts together): a policy against the full-compute run.

Speed is a ratio measured side by side in one process (`frdiff.timing.interleaved_speedup`):
warm-up, then baseline and accelerated calls interleaved, the median ratio reported. Quality
compares the two on the same noise and labels, judged by the glyph classifier.
"""

from __future__ import annotations

import contextlib

import torch

from ..accelerate import accelerate, block_depths
from ..metrics import accuracy, classify, frechet_distance, psnr, ssim
from ..mixing import ScoreMixing
from ..policy import KeyframePolicy
from ..schedulers import set_scheduler
from ..timing import interleaved_speedup, machine, peak_memory
from .data import sample_glyphs
from .evaluate import balanced_labels, generate


def measure_speed(pipe, policy: KeyframePolicy, mixing: ScoreMixing, labels: list[int],
                  steps: int, seed: int, repeats: int = 5, warmup: int = 1) -> dict:
    """Median of per-pair time ratios, baseline / accelerated, interleaved in one process."""
    return measure_speed_with(pipe, lambda: accelerate(pipe, policy=policy, mixing=mixing),
                              labels, steps, seed, repeats, warmup)


def measure_speed_with(pipe, make_context, labels: list[int], steps: int, seed: int,
                       repeats: int = 5, warmup: int = 1) -> dict:
    """`measure_speed` for any accelerator: `make_context()` returns a fresh context manager
    that accelerates `pipe` while it is entered (frdiff's `accelerate`, DeepCache, ...)."""
    pipe.set_progress_bar_config(disable=True)

    def baseline():
        pipe(labels, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
             output_type="pt")

    def accelerated():
        with make_context():
            baseline()

    return timed_pair(baseline, accelerated, repeats, warmup)


def timed_pair(baseline, accelerated, repeats: int, warmup: int = 1) -> dict:
    """`interleaved_speedup` with the peak memory of one call of each (`timing.peak_memory`);
    those two calls are the first warm-up round."""
    memory = {"baseline_peak_memory": peak_memory(baseline), "peak_memory": peak_memory(accelerated)}
    return interleaved_speedup(baseline, accelerated, repeats, max(0, warmup - 1)) | memory


def measure_quality(pipe, classifier, policy: KeyframePolicy, mixing: ScoreMixing,
                    samples: int, steps: int, seed: int, batch_size: int = 64,
                    baseline: torch.Tensor | None = None) -> dict:
    """PSNR/SSIM of accelerated vs full-compute images from the same noise, and the
    classifier's accuracy and Frechet distance for both. `baseline` may hold the
    full-compute images of an earlier call with the same samples, steps and seed."""
    labels = balanced_labels(samples, len(pipe.labels))
    base = baseline if baseline is not None else generate(pipe, labels, steps, seed, batch_size,
                                                          progress=False)
    with accelerate(pipe, policy=policy, mixing=mixing) as run:
        acc = generate(pipe, labels, steps, seed, batch_size, progress=False)
    return quality_against(classifier, acc, base, labels) | {
        "ideal_speedup": run.stats.ideal_speedup, "stats": run.stats.as_dict(), "baseline_images": base}


def quality_against(classifier, images: torch.Tensor, baseline: torch.Tensor, labels: list[int]) -> dict:
    """PSNR/SSIM to the full-compute images, class accuracy of both, the Frechet distance of
    both to as many real glyphs (`fd`, `baseline_fd`; one fixed real set per sample count) and
    between them (`fd_to_baseline`), in the classifier's feature space; `class_agreement`: the
    share of images the classifier puts in the same class as their full-compute twin."""
    target = torch.tensor(labels)
    base_logits, base_feats = classify(classifier, baseline)
    logits, feats = classify(classifier, images)
    real = _real_features(classifier, len(labels))
    return {"psnr": psnr(images, baseline), "ssim": ssim(images, baseline),
            "class_accuracy": accuracy(logits, target),
            "baseline_class_accuracy": accuracy(base_logits, target),
            "class_agreement": accuracy(logits, base_logits.argmax(1)),
            "fd": frechet_distance(feats, real), "baseline_fd": frechet_distance(base_feats, real),
            "fd_to_baseline": frechet_distance(feats, base_feats), "samples": len(labels)}


_REAL: dict[tuple[int, int], tuple] = {}  # (id, samples) -> (classifier kept alive, features)


def _real_features(classifier, samples: int, seed: int = 20_000) -> torch.Tensor:
    """Classifier features of `samples` real glyphs from a fixed seed (memoised per classifier)."""
    key = (id(classifier), samples)
    if key not in _REAL:
        real, _ = sample_glyphs(samples, torch.Generator().manual_seed(seed))
        _REAL[key] = classifier, classify(classifier, (real + 1) / 2)[1]
    return _REAL[key][1]


def bench(pipe, classifier, policy: KeyframePolicy, mixing: ScoreMixing, steps: int,
          batch: int, seed: int = 0, samples: int = 256, repeats: int = 5) -> dict:
    labels = [(seed + i) % len(pipe.labels) for i in range(batch)]
    speed = measure_speed(pipe, policy, mixing, labels, steps, seed, repeats)
    quality = measure_quality(pipe, classifier, policy, mixing, samples, steps, seed + 1000)
    quality.pop("baseline_images")
    return speed | quality | {"steps": steps, "batch": batch, "seed": seed,
                              "policy": policy.to_dict(), "mixing": mixing.enabled,
                              "machine": machine()}


# -- rows of a comparison (`sweep`, analysis/deepcache.py): one setting each, same protocol --
def collect_rows(jobs, progress: bool = True, report=None, state=None) -> list[dict]:
    """Run row jobs in order; each takes the full-compute images of the one before in its
    process (None for the first), so the baseline is generated once per process. `report(row)`
    sees every finished row. `state` (frdiff.distributed.processes()): the jobs are shared
    between the processes and every process gets all rows back, in order."""
    from tqdm.auto import tqdm

    from ..distributed import count, is_main, run_shared

    share = -(-len(jobs) // count(state))
    bar = tqdm(total=share, desc="settings" if state is None else "settings (this process's share)",
               disable=not progress or not is_main(state))
    baseline = [None]

    def work(job):
        row = job(baseline[0])
        baseline[0] = row.pop("baseline_images")
        bar.update(1)
        if report is not None:
            report(row)
        return row

    try:
        return run_shared(state, jobs, work)
    finally:
        bar.close()


def policy_row(pipe, classifier, spec: str, mixing: ScoreMixing, labels: list[int], steps: int,
               seed: int, samples: int, repeats: int, baseline: torch.Tensor | None = None,
               policy: KeyframePolicy | None = None) -> dict:
    """Speed and quality of an frdiff policy (`uniform:2`, `deep:3`, `adaptive:0.1`, a JSON file;
    or `policy` itself, `spec` naming it)."""
    policy = policy if policy is not None else KeyframePolicy.parse(spec, steps, block_depths(pipe))
    speed = measure_speed(pipe, policy, mixing, labels, steps, seed, repeats)
    q = measure_quality(pipe, classifier, policy, mixing, samples, steps, seed + 1000, baseline=baseline)
    q.pop("stats")
    return {"method": "frdiff", "setting": f"{spec}, mixing {'on' if mixing.enabled else 'off'}",
            "policy": spec, "mixing": mixing.enabled} | speed | q


def context_row(pipe, classifier, method: str, setting: str, make_context, labels: list[int],
                steps: int, seed: int, samples: int, repeats: int,
                baseline: torch.Tensor | None = None, **extra) -> dict:
    """Speed and quality of any accelerator (`make_context()` returns a fresh context manager
    that accelerates `pipe`: frdiff's `accelerate`, a peer from `frdiff.peers`), with the same
    protocol as `policy_row`; its counted speedup from MACs on one image."""
    from ..peers import counted_speedup

    speed = measure_speed_with(pipe, make_context, labels, steps, seed, repeats)
    q_labels = balanced_labels(samples, len(pipe.labels))
    base = baseline if baseline is not None else generate(pipe, q_labels, steps, seed + 1000, progress=False)
    with make_context():
        images = generate(pipe, q_labels, steps, seed + 1000, progress=False)
    ideal = counted_speedup(pipe, make_context, seed, class_labels=[labels[0]], num_inference_steps=steps,
                            output_type="pt")
    return {"method": method, "setting": setting, **extra} | speed | quality_against(
        classifier, images, base, q_labels) | {"ideal_speedup": ideal, "baseline_images": base}


@contextlib.contextmanager
def using(pipe, scheduler):
    """`pipe` samples with `scheduler` inside the `with` block; its own scheduler after."""
    own = pipe.scheduler
    pipe.scheduler = scheduler
    try:
        yield pipe
    finally:
        pipe.scheduler = own


def _sampler(pipe, name: str | None):
    """A new scheduler `name` (frdiff.schedulers) with the pipeline's betas, or its own for None."""
    if not name:
        return pipe.scheduler
    own = pipe.scheduler
    other = set_scheduler(pipe, name).scheduler
    pipe.scheduler = own
    return other


def fewer_steps_row(pipe, classifier, fewer: int, labels: list[int], steps: int, seed: int,
                    samples: int, repeats: int, baseline: torch.Tensor | None = None,
                    scheduler: str | None = None) -> dict:
    """The shortcut users reach for first: the same sampler (or `scheduler`, a name of
    `frdiff.schedulers`, same betas) with `fewer` steps than the full-compute `steps`."""
    if not 1 <= fewer <= steps:
        raise ValueError(f"fewer steps must be in 1..{steps}, got {fewer}")
    full, other = pipe.scheduler, _sampler(pipe, scheduler)

    def run(n: int, sampler):
        def call():
            with using(pipe, sampler):
                return pipe(labels, num_inference_steps=n, generator=torch.Generator().manual_seed(seed),
                            output_type="pt")
        return call

    speed = timed_pair(run(steps, full), run(fewer, other), repeats)
    q_labels = balanced_labels(samples, len(pipe.labels))
    base = baseline if baseline is not None else generate(pipe, q_labels, steps, seed + 1000, progress=False)
    with using(pipe, other):
        images = generate(pipe, q_labels, fewer, seed + 1000, progress=False)
    name = scheduler_name(other)
    return {"method": "fewer steps" if other is full else f"{name} (other sampler)",
            "setting": f"{name} {fewer} steps", "fewer_steps": fewer} | speed | \
        quality_against(classifier, images, base, q_labels) | {"ideal_speedup": steps / fewer,
                                                               "baseline_images": base}


def sampler_policy_row(pipe, classifier, spec: str, policy: KeyframePolicy, mixing: ScoreMixing, scheduler: str,
                       run_steps: int, labels: list[int], steps: int, seed: int, samples: int, repeats: int,
                       baseline: torch.Tensor | None = None) -> dict:
    """frdiff on another sampler and step count: `policy` (for `run_steps` steps) on `scheduler`,
    against the sweep's full compute (its own sampler with `steps`); counted speedup
    steps / run_steps times the policy's own."""
    other = _sampler(pipe, scheduler)

    def baseline_call():
        pipe(labels, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), output_type="pt")

    def accelerated():
        with using(pipe, other), accelerate(pipe, policy, mixing):
            pipe(labels, num_inference_steps=run_steps, generator=torch.Generator().manual_seed(seed),
                 output_type="pt")

    speed = timed_pair(baseline_call, accelerated, repeats)
    q_labels = balanced_labels(samples, len(pipe.labels))
    base = baseline if baseline is not None else generate(pipe, q_labels, steps, seed + 1000, progress=False)
    with using(pipe, other), accelerate(pipe, policy, mixing) as run:
        images = generate(pipe, q_labels, run_steps, seed + 1000, progress=False)
    name = scheduler_name(other)
    return {"method": "frdiff", "setting": f"{name} {run_steps} steps + {spec}, mixing "
            f"{'on' if mixing.enabled else 'off'}", "policy": spec, "sampler": name, "run_steps": run_steps} | \
        speed | quality_against(classifier, images, base, q_labels) | {
            "ideal_speedup": steps / run_steps * run.stats.ideal_speedup, "baseline_images": base}


def scheduler_name(scheduler) -> str:
    """DDIM, DPM-Solver++, Euler, ...: the sampler as people call it."""
    name = type(scheduler).__name__.replace("Scheduler", "").replace("Multistep", "")
    if name == "DPMSolver" and getattr(scheduler.config, "algorithm_type", "") == "dpmsolver++":
        return "DPM-Solver++"
    return name


def mark_front(rows: list[dict]) -> list[dict]:
    """Mark each row on the speed/PSNR Pareto front, by counted (`front_ideal_speedup`) and by
    measured speedup (`front_speedup`)."""
    from ..metrics import pareto_front

    measured = [r for r in rows if r.get("psnr") is not None]  # not reported rows of peers that did not run
    for key in ("ideal_speedup", "speedup"):
        front = pareto_front([(r[key], r["psnr"]) for r in measured])
        for r in measured:
            r[f"front_{key}"] = (r[key], r["psnr"]) in front
    return rows


def sweep_table(result: dict) -> str:
    """A sweep's rows as Markdown, slowest first, with the Pareto front marked; peers that did
    not run are listed after them with the reason."""
    rows = [r for r in result["rows"] if r.get("psnr") is not None]
    lines = ["| method | setting | measured speedup | counted speedup | PSNR (dB) | SSIM | class acc. | FD | "
             "front |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["ideal_speedup"]):
        mark = ", ".join(name for name, key in (("counted", "front_ideal_speedup"), ("measured", "front_speedup"))
                         if r[key])
        fd = f"{r['fd']:.2f}" if "fd" in r else "-"
        lines.append(f"| {r['method']} | {r['setting']} | {r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x | "
                     f"{r['psnr']:.1f} | {r['ssim']:.3f} | {r['class_accuracy']:.3f} | {fd} | {mark} |")
    for r in result["rows"]:
        if r.get("psnr") is None:
            lines.append(f"| {r['method']} | {r['status']}: {r['reason']} | | | | | | | |")
    m = result["machine"]
    full = next((r for r in rows if "baseline_fd" in r), None)
    reference = (f"; full compute: class acc. {full['baseline_class_accuracy']:.3f}, FD {full['baseline_fd']:.2f}"
                 if full else "")
    return "\n".join(lines) + (f"\n\n{result.get('model', 'model')}, {result.get('scheduler', '')} "
                               f"{result['steps']} steps, {result['samples']} samples, {result['repeats']} "
                               f"timing pairs per row{reference}; {m['cpu']}, {m['threads']} threads")


BUDGETS = (1.5, 2.0, 2.5, 3.0)


def budget_rows(result: dict, budgets=BUDGETS, key: str = "speedup", against: str = "row") -> list[dict]:
    """Per budget: frdiff's best row (highest PSNR) at least that fast by `key` (measured speed
    by default), the best peer row (any other method) at least as fast as that one (`against`
    "row") or at least the budget (`against` "budget": what someone with that budget would pick
    instead, which may be slower than frdiff's row), and whether frdiff is ahead; frdiff's row
    also against full compute's class accuracy and FD."""
    if against not in ("row", "budget"):
        raise ValueError(f"against must be 'row' or 'budget', got {against!r}")
    rows = [r for r in result["rows"] if r.get("psnr") is not None]
    out = []
    for b in budgets:
        ours = max((r for r in rows if r["method"] == "frdiff" and r[key] >= b), key=lambda r: r["psnr"], default=None)
        floor = ours[key] if ours is not None and against == "row" else b
        peer = max((r for r in rows if r["method"] != "frdiff" and r[key] >= floor), key=lambda r: r["psnr"],
                   default=None)
        out.append({"budget": b, "frdiff": ours, "peer": peer,
                    "ahead": ours is not None and (peer is None or ours["psnr"] > peer["psnr"])})
    return out


def budget_table(result: dict, budgets=BUDGETS, key: str = "speedup") -> str:
    """`budget_rows` as Markdown: per budget, frdiff's best row, the best peer at least as fast."""
    lines = ["| at least | frdiff's best (setting) | its speed, PSNR, class acc., FD | best peer at least as fast | "
             "its speed, PSNR | frdiff ahead by |", "|---|---|---|---|---|---|"]

    def speed(r):
        return f"{r['speedup']:.2f}x measured ({r['ideal_speedup']:.2f}x counted)"

    for row in budget_rows(result, budgets, key):
        ours, peer = row["frdiff"], row["peer"]
        if ours is None:
            if peer is None:
                lines.append(f"| {row['budget']}x | none this fast | | none this fast | | no row this fast |")
            else:
                lines.append(f"| {row['budget']}x | none this fast | | {peer['method']}, {peer['setting']} | "
                             f"{speed(peer)}, {peer['psnr']:.1f} dB | behind |")
            continue
        quality = (f"{speed(ours)}, {ours['psnr']:.1f} dB, {ours['class_accuracy']:.3f} (full "
                   f"{ours['baseline_class_accuracy']:.3f}), {ours['fd']:.2f} (full {ours['baseline_fd']:.2f})")
        if peer is None:
            lines.append(f"| {row['budget']}x | {ours['setting']} | {quality} | none | | no peer this fast |")
            continue
        margin = ours["psnr"] - peer["psnr"]
        lines.append(f"| {row['budget']}x | {ours['setting']} | {quality} | {peer['method']}, {peer['setting']} | "
                     f"{speed(peer)}, {peer['psnr']:.1f} dB | {margin:+.1f} dB |")
    return "\n".join(lines)


def verdict_table(results: list[dict], budgets=BUDGETS, key: str = "speedup", against: str = "row") -> str:
    """One line per sweep (model, sampler): at each budget, frdiff's margin over the best peer
    at least as fast as frdiff's best row (or at least the budget, `budget_rows`' `against`),
    or the peer that wins."""
    lines = ["| model, sampler | " + " | ".join(f"at least {b}x" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for result in results:
        cells = []
        for row in budget_rows(result, budgets, key, against):
            ours, peer = row["frdiff"], row["peer"]
            if ours is None:
                cells.append("no row this fast" if peer is None else
                             f"no frdiff row; {peer['method']}, {peer['setting']}: {peer['psnr']:.1f} dB")
            elif peer is None:
                cells.append(f"{ours['psnr']:.1f} dB at {ours[key]:.2f}x, no peer as fast")
            else:
                margin = ours["psnr"] - peer["psnr"]
                cells.append(f"{'+' if margin > 0 else ''}{margin:.1f} dB"
                             + ("" if margin > 0 else f" (behind {peer['method']}, {peer['setting']}: "
                                                      f"{peer[key]:.2f}x, {peer['psnr']:.1f} dB)"))
        lines.append(f"| {result.get('model', '?')}, {result.get('scheduler', '?')} {result['steps']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
