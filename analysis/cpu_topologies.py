"""frdiff on real-size topologies, on this CPU: is its overhead still small beyond the toys?

    python -m analysis.cpu_topologies [--models sd15,dit,flux-like] [--steps 6] [--repeats 2] [--name NAME]

Random weights (weights do not change speed), fp32, 256 px, a few steps, latent output (the
denoiser loop is what frdiff changes), built as `analysis.gpu_bench` builds them:

    sd15       SD 1.5's UNet (860M parameters), 256x256, DDIM, CFG 7.5 batched
    dit        DiT-XL/2 (675M), 256x256 (its native size), DPM-Solver++, CFG 4.0 batched
    flux-like  FLUX.1-dev's transformer at its real width (24 heads x 128, T5 width 4096, guidance
               embedding) but 1 dual-stream and 2 single-stream blocks of its 19 + 38 (the full model's
               12B parameters do not fit this machine in fp32), 64 text tokens, 256x256

Rows, timed interleaved in one process (`analysis.overhead.time_policies`): plain, all keyframes
(the hook overhead), `uniform:2` FR only and `uniform:2` with score mixing: measured vs counted
(MAC) speedup, and each frdiff run's cache misses. Writes analysis/results/NAME.json and .md
(default cpu-topologies).
"""

from __future__ import annotations

import argparse
import gc

import torch

from analysis.common import write_result
from analysis.gpu_bench import _embeds, _made_on, build
from analysis.overhead import standard_policies, time_policies

SIZE = 256


def flux_like():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    with _made_on("cpu", torch.float32):
        model = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=2,
                                       attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                                       pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=model)
    return pipe, dict(prompt_embeds=_embeds(1, 64, 4096), pooled_prompt_embeds=_embeds(1, 768), guidance_scale=3.5)


def topology(name: str):
    if name == "flux-like":
        pipe, kwargs = flux_like()
    elif name in ("sd15", "dit"):
        pipe, kwargs = build(name)
    else:
        raise ValueError(f"unknown model {name!r}; choose from sd15, dit, flux-like")
    if "height" in kwargs or name == "flux-like":
        kwargs |= {"height": SIZE, "width": SIZE}  # dit: 256 px is its own size
    return pipe, kwargs


def measure(name: str, steps: int, repeats: int) -> dict:
    pipe, kwargs = topology(name)
    pipe.set_progress_bar_config(disable=True)
    model = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    rows = time_policies(pipe, kwargs | {"num_inference_steps": steps, "output_type": "latent"},
                         standard_policies(steps), repeats)
    for row in rows:
        print(f"{name:<10} {row['run']:<40} {row['seconds']:.2f} s  {row['measured']:.3f}x measured, "
              f"{row['counted']:.2f}x counted, {row['cache_misses']} cache misses", flush=True)
    return {"model": name, "parameters": params, "steps": steps, "size": SIZE, "repeats": repeats, "rows": rows,
            "overhead_all_keyframes": 1.0 / rows[1]["measured"] - 1.0,
            "uniform2_measured_over_counted": rows[2]["measured"] / rows[2]["counted"]}


def markdown(results: list[dict]) -> str:
    lines = ["| model | parameters | run | seconds | measured | counted | measured / counted |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.0f}M | {row['run']} | {row['seconds']:.2f} | "
                         f"{row['measured']:.3f}x | {row['counted']:.2f}x | {row['measured'] / row['counted']:.2f} |")
    lines.append("")
    lines += [f"- {r['model']}: {r['steps']} steps at {r['size']} px, {r['repeats']} interleaved rounds; all-keyframe "
              f"overhead {100 * r['overhead_all_keyframes']:+.1f}%, `uniform:2` FR only at "
              f"{r['uniform2_measured_over_counted']:.2f} of its count" for r in results]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sd15,dit,flux-like")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--name", default="cpu-topologies", help="result name under analysis/results")
    args = ap.parse_args()
    results = []
    for name in args.models.split(","):
        results.append(measure(name.strip(), args.steps, args.repeats))
        gc.collect()
    md = markdown(results)
    print(md)
    print(write_result(args.name, {"results": results}, md))


if __name__ == "__main__":
    main()
