"""Where glyph-unet's sampling time goes, and how other widths of it would compare.

    python -m analysis.unet_cost [--threads 2]

Prints the time of one model call (CFG doubles batch 8 to 16 rows) at several batch sizes,
so the fixed per-call cost shows, the share of convolutions, group norms and SiLU in a call
at batch 16 (torch profiler), and the time of other (untrained) widths of the same
architecture relative to the shipped one (> 1: slower), among them the 16/32/64/128 model
glyph-unet had before it was rebuilt to meet the 3 s sampling bar. Writes
analysis/results/unet-cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from diffusers import UNet2DModel
from torch.profiler import profile

from frdiff import load_pipeline
from frdiff.timing import machine
from analysis.common import write_result


def call_ms(unet, batch: int, repeats: int = 10) -> float:
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    t, y = torch.full((batch,), 500), torch.zeros(batch, dtype=torch.long)
    with torch.inference_mode():
        for _ in range(3):
            unet(x, t, class_labels=y)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, t, class_labels=y)
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def op_shares(unet, batch: int = 16) -> dict[str, float]:
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    t, y = torch.full((batch,), 500), torch.zeros(batch, dtype=torch.long)
    with torch.inference_mode(), profile() as prof:
        for _ in range(5):
            unet(x, t, class_labels=y)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    groups = {"convolution": ("mkldnn_convolution", "convolution_overrideable", "thnn_conv"),
              "group_norm": ("native_group_norm",), "silu": ("silu",),
              "attention": ("scaled_dot_product", "_flash_attention", "bmm", "baddbmm")}
    shares = {name: sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys)) / total
              for name, keys in groups.items()}
    return shares | {"other": 1.0 - sum(shares.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    unet = load_pipeline("glyph-unet").unet
    per_call = {b: round(call_ms(unet, b), 1) for b in (2, 8, 16)}
    others = {}
    for widths, groups in (((16, 32, 64, 128), 8), ((8, 32, 64, 128), 8), ((8, 16, 48, 96), 4),
                           ((16, 32, 64, 64), 8)):
        config = dict(unet.config) | {"block_out_channels": widths, "norm_num_groups": groups}
        others[str(widths)] = UNet2DModel.from_config(config).eval().to(memory_format=torch.channels_last)
    # interleaved rounds (shipped, variant, shipped, variant, ...), so drift hits both alike
    ratios = {name: [] for name in others}
    for _ in range(5):
        for name, other in others.items():
            ratios[name].append(call_ms(other, 16, repeats=5) / call_ms(unet, 16, repeats=5))
    variants = {name: round(statistics.median(r), 2) for name, r in ratios.items()}
    out = {"widths": list(unet.config.block_out_channels), "call_ms_by_rows": per_call,
           "time_of_other_widths_relative_at_16_rows": variants,
           "sampling_s_estimate_50_steps_batch_8": round(per_call[16] * 50 / 1000, 2),
           "shares_at_16_rows": {k: round(v, 3) for k, v in op_shares(unet).items()},
           "machine": machine()}
    write_result("unet-cost", out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
