"""Speed as a ratio measured side by side in one process, and the machine it was measured on."""

from __future__ import annotations

import statistics
import time

import torch


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


def timed(fn) -> tuple:
    """fn()'s result and its seconds, the GPU's queued work included."""
    _sync()
    start = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - start


def _timed(fn) -> float:
    return timed(fn)[1]


def _sync() -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved_speedup(baseline, accelerated, repeats: int = 5, warmup: int = 1) -> dict:
    """Time two zero-arg callables after `warmup` rounds of both, in pairs A B, B A, ...;
    speedup is the median of the per-pair ratios baseline / accelerated."""
    times = interleaved_times({"baseline": baseline, "accelerated": accelerated}, repeats, warmup)
    return {"speedup": times["accelerated"]["speedup_vs_first"], "baseline_s": times["baseline"]["seconds"],
            "accelerated_s": times["accelerated"]["seconds"], "repeats": repeats}


def interleaved_times(fns: dict, repeats: int = 5, warmup: int = 1) -> dict:
    """Seconds of each zero-arg callable in `fns` (name -> fn), after `warmup` rounds of all,
    timed in rotating order (round i starts at the i-th), medians per name; and the median
    of each name's per-round ratio to the first name's time (`speedup_vs_first`)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(_timed(fns[name]))
    first = times[names[0]]
    return {name: {"seconds": statistics.median(t),
                   "speedup_vs_first": statistics.median(b / a for b, a in zip(first, t))}
            for name, t in times.items()} | {"repeats": repeats}


def peak_memory(fn) -> int | None:
    """Peak memory in bytes while `fn()` runs: CUDA's peak allocation on a GPU; on a CPU the
    process's peak resident set (Linux VmHWM, reset just before), which includes the model and
    everything else resident. None where neither can be read."""
    if torch.cuda.is_available():
        _sync()
        torch.cuda.reset_peak_memory_stats()
        fn()
        _sync()
        return int(torch.cuda.max_memory_allocated())
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
    except OSError:
        return None
    fn()
    return _vm_hwm()


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None
