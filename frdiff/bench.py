"""`python -m frdiff bench`: speed and quality of a policy against the full-compute run.

Speed is a ratio measured side by side in one process: warm-up, then baseline and
accelerated calls interleaved (A B A B ...), each pair giving baseline/accelerated; the
median ratio is reported. Quality compares the two on the same noise and labels.
"""

from __future__ import annotations

import statistics
import time

import torch

from .accelerate import accelerate
from .evaluate import balanced_labels, generate
from .metrics import accuracy, classify, frechet_distance, psnr, ssim
from .mixing import ScoreMixing
from .policy import KeyframePolicy


def machine() -> dict:
    """What the numbers were measured on."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"cpu": name, "threads": torch.get_num_threads(), "device": device,
            "torch": torch.__version__}


def _timed(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


def interleaved_speedup(baseline, accelerated, repeats: int = 5, warmup: int = 1) -> dict:
    """Time two zero-arg callables after `warmup` rounds of both, in pairs A B, B A, ...;
    speedup is the median of the per-pair ratios baseline / accelerated."""
    for _ in range(warmup):
        baseline(), accelerated()
    base_t, acc_t = [], []
    for i in range(repeats):
        order = (baseline, accelerated) if i % 2 == 0 else (accelerated, baseline)
        times = {fn: _timed(fn) for fn in order}
        base_t.append(times[baseline])
        acc_t.append(times[accelerated])
    ratios = [b / a for b, a in zip(base_t, acc_t)]
    return {"speedup": statistics.median(ratios), "baseline_s": statistics.median(base_t),
            "accelerated_s": statistics.median(acc_t), "repeats": repeats}


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
    target = torch.tensor(labels)
    base_logits, base_feats = classify(classifier, base)
    acc_logits, acc_feats = classify(classifier, acc)
    return {"psnr": psnr(acc, base), "ssim": ssim(acc, base),
            "class_accuracy": accuracy(acc_logits, target),
            "baseline_class_accuracy": accuracy(base_logits, target),
            "fd_to_baseline": frechet_distance(acc_feats, base_feats),
            "ideal_speedup": run.stats.ideal_speedup, "stats": run.stats.as_dict(),
            "samples": samples, "baseline_images": base}


def bench(pipe, classifier, policy: KeyframePolicy, mixing: ScoreMixing, steps: int,
          batch: int, seed: int = 0, samples: int = 256, repeats: int = 5) -> dict:
    labels = [(seed + i) % len(pipe.labels) for i in range(batch)]
    speed = measure_speed(pipe, policy, mixing, labels, steps, seed, repeats)
    quality = measure_quality(pipe, classifier, policy, mixing, samples, steps, seed + 1000)
    quality.pop("baseline_images")
    return speed | quality | {"steps": steps, "batch": batch, "seed": seed,
                              "policy": policy.to_dict(), "mixing": mixing.enabled,
                              "machine": machine()}
