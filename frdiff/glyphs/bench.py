"""Glyph benchmarks (`python -m frdiff bench`, `sweep`): a policy against the full-compute run.

Speed is a ratio measured side by side in one process (`frdiff.timing.interleaved_speedup`):
warm-up, then baseline and accelerated calls interleaved, the median ratio reported. Quality
compares the two on the same noise and labels, judged by the glyph classifier.
"""

from __future__ import annotations

import torch

from ..accelerate import accelerate, block_depths
from ..metrics import accuracy, classify, frechet_distance, psnr, ssim
from ..mixing import ScoreMixing
from ..policy import KeyframePolicy
from ..timing import interleaved_speedup, machine
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

    return interleaved_speedup(baseline, accelerated, repeats, warmup)


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
    """PSNR/SSIM to the full-compute images, class accuracy of both, FD between them."""
    target = torch.tensor(labels)
    base_logits, base_feats = classify(classifier, baseline)
    logits, feats = classify(classifier, images)
    return {"psnr": psnr(images, baseline), "ssim": ssim(images, baseline),
            "class_accuracy": accuracy(logits, target),
            "baseline_class_accuracy": accuracy(base_logits, target),
            "fd_to_baseline": frechet_distance(feats, base_feats), "samples": len(labels)}


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
def collect_rows(jobs, progress: bool = True, report=None) -> list[dict]:
    """Run row jobs in order; each takes the full-compute images of the one before (None for
    the first), so the baseline is generated once. `report(row)` sees every finished row."""
    from tqdm.auto import tqdm

    rows, baseline = [], None
    for job in tqdm(jobs, desc="settings", disable=not progress):
        row = job(baseline)
        baseline = row.pop("baseline_images")
        rows.append(row)
        if report is not None:
            report(row)
    return rows


def policy_row(pipe, classifier, spec: str, mixing: ScoreMixing, labels: list[int], steps: int,
               seed: int, samples: int, repeats: int, baseline: torch.Tensor | None = None) -> dict:
    """Speed and quality of an frdiff policy (`uniform:2`, `deep:3`, `adaptive:0.1`, a JSON file)."""
    policy = KeyframePolicy.parse(spec, steps, block_depths(pipe))
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


def fewer_steps_row(pipe, classifier, fewer: int, labels: list[int], steps: int, seed: int,
                    samples: int, repeats: int, baseline: torch.Tensor | None = None) -> dict:
    """The shortcut users reach for first: the same sampler with `fewer` steps than `steps`."""
    if not 1 <= fewer <= steps:
        raise ValueError(f"fewer steps must be in 1..{steps}, got {fewer}")

    def run(n: int):
        return lambda: pipe(labels, num_inference_steps=n, generator=torch.Generator().manual_seed(seed),
                            output_type="pt")

    speed = interleaved_speedup(run(steps), run(fewer), repeats)
    q_labels = balanced_labels(samples, len(pipe.labels))
    base = baseline if baseline is not None else generate(pipe, q_labels, steps, seed + 1000, progress=False)
    images = generate(pipe, q_labels, fewer, seed + 1000, progress=False)
    scheduler = type(pipe.scheduler).__name__.replace("Scheduler", "").replace("Multistep", "")
    return {"method": "fewer steps", "setting": f"{scheduler} {fewer} steps", "fewer_steps": fewer} | speed | \
        quality_against(classifier, images, base, q_labels) | {"ideal_speedup": steps / fewer,
                                                               "baseline_images": base}


def sweep(pipe, classifier, specs: list[str], mixing: ScoreMixing, steps: int,
          fewer_steps: list[int] | None = None, batch: int = 8, samples: int = 64, repeats: int = 3,
          seed: int = 0, progress: bool = True) -> dict:
    """Policies (specs as for `bench`) and fewer-steps baselines (default steps/2, steps/3) under
    one protocol, with the speed/quality Pareto front by counted and by measured speedup."""
    fewer = fewer_steps if fewer_steps is not None else sorted(
        {max(1, round(steps / 2)), max(1, round(steps / 3))}, reverse=True)
    common = dict(labels=[(seed + i) % len(pipe.labels) for i in range(batch)], steps=steps,
                  seed=seed, samples=samples, repeats=repeats)
    jobs = [lambda b, s=s: policy_row(pipe, classifier, s, mixing, baseline=b, **common) for s in specs]
    jobs += [lambda b, k=k: fewer_steps_row(pipe, classifier, k, baseline=b, **common) for k in fewer]
    rows = mark_front(collect_rows(jobs, progress=progress))
    return {"steps": steps, "batch": batch, "samples": samples, "repeats": repeats, "seed": seed,
            "machine": machine(), "rows": rows}


def mark_front(rows: list[dict]) -> list[dict]:
    """Mark each row on the speed/PSNR Pareto front, by counted (`front_ideal_speedup`) and by
    measured speedup (`front_speedup`)."""
    from ..metrics import pareto_front

    for key in ("ideal_speedup", "speedup"):
        front = pareto_front([(r[key], r["psnr"]) for r in rows])
        for r in rows:
            r[f"front_{key}"] = (r[key], r["psnr"]) in front
    return rows


def sweep_table(result: dict) -> str:
    """A sweep's rows as Markdown, slowest first, with the Pareto front marked."""
    lines = ["| setting | measured speedup | counted speedup | PSNR (dB) | SSIM | class acc. | front |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: r["ideal_speedup"]):
        mark = ", ".join(name for name, key in (("counted", "front_ideal_speedup"), ("measured", "front_speedup"))
                         if r[key])
        lines.append(f"| {r['setting']} | {r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x | {r['psnr']:.1f} | "
                     f"{r['ssim']:.3f} | {r['class_accuracy']:.3f} | {mark} |")
    m = result["machine"]
    return "\n".join(lines) + (f"\n\n{result.get('model', 'model')}, {result.get('scheduler', '')} "
                               f"{result['steps']} steps, {result['samples']} samples, {result['repeats']} "
                               f"timing pairs per row; {m['cpu']}, {m['threads']} threads")
