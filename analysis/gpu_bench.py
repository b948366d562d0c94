"""frdiff at the scale of real models, on a GPU: SD 1.5, SDXL, PixArt-alpha and DiT-XL/2.

    python -m analysis.gpu_bench [--quick] [--models sd15,sdxl,pixart,dit] [--steps 50] [--pairs 3]

Each model's topology is built from its published config with random weights (weights do not
change speed), at native resolution in fp16, as a stock diffusers pipeline with the text
encoders bypassed by random prompt embeddings of the right shapes and `output_type="latent"`
(the denoiser loop is what frdiff changes; VAE decoding would add the same time to every row).
CFG as the pipelines do it (guidance 7.5 for SD/SDXL, 4.5 for PixArt, 4.0 for DiT). Rows per
model: full compute; frdiff with an all-keyframe policy (the hook overhead: per-step decisions
of a static policy make no host sync); uniform FR every 2 steps without and with score mixing;
whole-block reuse (DeepCache's granularity, `deep:2`); residual reuse on the transformer blocks
(DiT, PixArt); a per-block policy (the inner blocks reused, the outer ones computed); and the
peers that apply (DeepCache on the UNets; diffusers' MagCache, calibrated first, and
FirstBlockCache on the transformers). Speed: interleaved pairs in this process, the median of
the per-pair ratios (`frdiff.timing`); beside it the counted (MAC) speedup, peak CUDA memory and
frdiff's peak cache bytes. `--quick`: 10 steps, 1 pair, for about a minute.

Without CUDA it prints "skipped: no CUDA" and exits 0; `--tiny --device cpu` runs the same code on
tiny versions of the four topologies on a CPU (what the test suite does), figures meaningless.
Writes analysis/results/gpu-bench.json on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate, block_depths
from frdiff.timing import interleaved_speedup, machine, peak_memory

MODELS = ("sd15", "sdxl", "pixart", "dit")


def _scale(tiny: bool, full: int, small: int) -> int:
    return small if tiny else full


def build(name: str, tiny: bool = False):
    """(pipe, call kwargs) of a model's topology, random weights, fp32 (cast by the caller)."""
    from diffusers import (AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel,
                           DPMSolverMultistepScheduler, EulerDiscreteScheduler, PixArtAlphaPipeline,
                           PixArtTransformer2DModel, StableDiffusionPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)

    torch.manual_seed(0)
    # the VAE never runs (latent output): four tiny blocks give the pipelines their 8x latent scale
    vae = AutoencoderKL(block_out_channels=(8,) * 4, latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    embeds = lambda *shape: torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape)))  # noqa: E731
    if name in ("sd15", "sdxl"):
        xl = name == "sdxl"
        channels = (320, 640, 1280) if xl else (320, 640, 1280, 1280)
        if tiny:
            channels = tuple(c // 20 for c in channels)
        cross = _scale(tiny, 2048 if xl else 768, 32)
        kw = dict(sample_size=_scale(tiny, 128 if xl else 64, 16), in_channels=4, out_channels=4,
                  block_out_channels=channels, layers_per_block=2, cross_attention_dim=cross,
                  norm_num_groups=_scale(tiny, 32, 4))
        if xl:
            kw |= dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                       up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                       transformer_layers_per_block=(1, 2, 10) if not tiny else (1, 1, 2),
                       attention_head_dim=(5, 10, 20) if not tiny else (2, 2, 2), use_linear_projection=True,
                       addition_embed_type="text_time", addition_time_embed_dim=_scale(tiny, 256, 8),
                       projection_class_embeddings_input_dim=_scale(tiny, 2816, 32 + 6 * 8))
            unet = UNet2DConditionModel(**kw)
            pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                             tokenizer_2=None, unet=unet, scheduler=EulerDiscreteScheduler())
            pooled = _scale(tiny, 1280, 32)
            size = _scale(tiny, 1024, 128)
            return pipe, dict(prompt_embeds=embeds(1, 77, cross), negative_prompt_embeds=embeds(1, 77, cross) + 1,
                              pooled_prompt_embeds=embeds(1, pooled),
                              negative_pooled_prompt_embeds=embeds(1, pooled) + 1,
                              height=size, width=size, guidance_scale=7.5)
        kw |= dict(down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                   up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, attention_head_dim=_scale(tiny, 8, 2))
        unet = UNet2DConditionModel(**kw)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                       scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        size = _scale(tiny, 512, 128)
        return pipe, dict(prompt_embeds=embeds(1, 77, cross), negative_prompt_embeds=embeds(1, 77, cross) + 1,
                          height=size, width=size, guidance_scale=7.5)
    heads, head_dim, layers = (16, 72, 28) if not tiny else (2, 8, 4)
    if name == "pixart":
        caption = _scale(tiny, 4096, 32)
        model = PixArtTransformer2DModel(num_attention_heads=heads, attention_head_dim=head_dim, in_channels=4,
                                         out_channels=8, num_layers=layers, sample_size=_scale(tiny, 64, 16),
                                         patch_size=2, cross_attention_dim=heads * head_dim, caption_channels=caption,
                                         norm_type="ada_norm_single", num_embeds_ada_norm=1000,
                                         use_additional_conditions=False)
        pipe = PixArtAlphaPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=model,
                                   scheduler=DPMSolverMultistepScheduler())
        size = _scale(tiny, 512, 128)
        return pipe, dict(prompt_embeds=embeds(1, 120, caption), prompt_attention_mask=torch.ones(1, 120),
                          negative_prompt_embeds=embeds(1, 120, caption) + 1, negative_prompt=None,
                          negative_prompt_attention_mask=torch.ones(1, 120), height=size, width=size,
                          use_resolution_binning=False, guidance_scale=4.5)
    if name == "dit":
        model = DiTTransformer2DModel(num_attention_heads=heads, attention_head_dim=head_dim, in_channels=4,
                                      out_channels=8, num_layers=layers, sample_size=_scale(tiny, 32, 16),
                                      patch_size=2, num_embeds_ada_norm=1000)
        pipe = DiTPipeline(transformer=model, vae=vae, scheduler=DPMSolverMultistepScheduler())
        return pipe, dict(class_labels=[207], guidance_scale=4.0)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def methods(pipe, name: str, steps: int, kwargs: dict) -> dict:
    """Row name -> a function giving a fresh context manager (None: what does not apply, and why)."""
    from frdiff import peers
    from frdiff.targets import find_blocks

    depths = block_depths(pipe)
    blocks = find_blocks(pipe.unet if hasattr(pipe, "unet") else pipe.transformer)
    names = list(depths)
    inner = "".join("K" if depths[n] == 0 else "F" for n in names)  # outer blocks compute, inner ones reuse
    per_block = KeyframePolicy(tuple("K" * len(names) if s % 2 == 0 else inner for s in range(steps)), tuple(names))

    def frdiff_run(policy, mixing):
        return lambda: accelerate(pipe, policy, mixing)

    rows = {"frdiff, all keyframes (hook overhead)": frdiff_run(KeyframePolicy.uniform(steps, 1), ScoreMixing.off()),
            "frdiff FR, interval 2": frdiff_run(KeyframePolicy.uniform(steps, 2), ScoreMixing.off()),
            "frdiff FR + score mixing, interval 2": frdiff_run(KeyframePolicy.uniform(steps, 2), ScoreMixing()),
            "frdiff whole-block reuse (deep:2)": frdiff_run(KeyframePolicy.deep_skip(depths, steps, 2),
                                                            ScoreMixing.off()),
            "frdiff per-block (outer blocks compute)": frdiff_run(per_block, ScoreMixing.off())}
    if all(b.residual for b in blocks):
        rows["frdiff residual reuse, interval 2"] = frdiff_run(KeyframePolicy.uniform(steps, 2, "residual"),
                                                               ScoreMixing.off())
    else:
        rows["frdiff residual reuse, interval 2"] = None, "not every block is a residual map (a UNet)"
    applicable = peers.peer_methods(pipe)
    for peer_name, method in applicable.items():
        if not method.available:
            rows[peer_name] = None, method.reason
        elif peer_name == "MagCache":
            ratios = peers.calibrate_mag_cache(pipe, steps, output_type="latent", **kwargs)
            rows[peer_name] = lambda ratios=ratios: peers.mag_cache(pipe, ratios)
        else:
            rows[peer_name] = lambda method=method: method(steps)
    return rows


def bench_model(name: str, steps: int, pairs: int, device: str, dtype: torch.dtype, tiny: bool) -> list[dict]:
    from frdiff.peers import counted_speedup

    pipe, kwargs = build(name, tiny)
    pipe.set_progress_bar_config(disable=True)
    (pipe.unet if hasattr(pipe, "unet") else pipe.transformer).eval()
    pipe.to(device, dtype)
    kwargs = {k: v.to(device, dtype) if torch.is_tensor(v) and v.is_floating_point() else
              v.to(device) if torch.is_tensor(v) else v for k, v in kwargs.items()}

    def call():
        g = torch.Generator(device).manual_seed(0)
        return pipe(num_inference_steps=steps, generator=g, output_type="latent", **kwargs)

    rows = [{"model": name, "method": "full compute", "speedup": 1.0, "ideal_speedup": 1.0,
             "peak_memory": peak_memory(call)}]
    for method, make in methods(pipe, name, steps, kwargs).items():
        if isinstance(make, tuple):
            rows.append({"model": name, "method": method, "status": "not applicable", "reason": make[1]})
            continue

        def accelerated(make=make):
            with make() as run:
                call()
            return run

        speed = interleaved_speedup(call, accelerated, pairs, warmup=1)
        row = {"model": name, "method": method, "speedup": speed["speedup"],
               "baseline_s": speed["baseline_s"], "accelerated_s": speed["accelerated_s"],
               "peak_memory": peak_memory(accelerated)}
        with make() as run:
            call()
        stats = getattr(run, "stats", None)
        if stats is not None:
            row |= {"ideal_speedup": stats.ideal_speedup, "cache_bytes": stats.peak_cache_bytes}
        else:
            row["ideal_speedup"] = counted_speedup(pipe, make, num_inference_steps=steps, output_type="latent",
                                                   **{k: v for k, v in kwargs.items()})
        rows.append(row)
        print(f"{name:<7} {method:<42} {row['speedup']:.2f}x measured, {row['ideal_speedup']:.2f}x counted",
              flush=True)
    with contextlib.suppress(Exception):
        torch.cuda.empty_cache()
    return rows


def markdown(result: dict) -> str:
    lines = ["| model | method | measured speedup | counted speedup | peak memory (GiB) | cache (MiB) |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "status" in r:
            lines.append(f"| {r['model']} | {r['method']} | {r['status']}: {r['reason']} | | | |")
            continue
        memory = f"{r['peak_memory'] / 2**30:.2f}" if r.get("peak_memory") else "-"
        cache = f"{r['cache_bytes'] / 2**20:.0f}" if r.get("cache_bytes") else "-"
        lines.append(f"| {r['model']} | {r['method']} | {r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x | "
                     f"{memory} | {cache} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 steps, 1 timing pair")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=None, help="default 50 (10 with --quick)")
    ap.add_argument("--pairs", type=int, default=None, help="interleaved timing pairs (default 3, 1 with --quick)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny topologies (for a CPU test of this script)")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: no CUDA (python -m analysis.gpu_bench measures on a GPU; nothing was run)")
        return 0
    steps = args.steps or (10 if args.quick else 50)
    pairs = args.pairs or (1 if args.quick else 3)
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    rows = []
    for name in names:
        try:
            rows += bench_model(name, steps, pairs, args.device, dtype, args.tiny)
        except Exception as err:  # noqa: BLE001 - a model that cannot be built is a reported row
            rows.append({"model": name, "method": "all", "status": "failed", "reason": f"{type(err).__name__}: {err}"})
    result = {"machine": machine(), "steps": steps, "pairs": pairs, "dtype": str(dtype), "tiny": args.tiny,
              "rows": rows}
    print(markdown(result))
    if args.device.startswith("cuda") and not args.tiny:
        from analysis.common import write_result

        write_result("gpu-bench", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
