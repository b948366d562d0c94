"""frdiff at the scale of real models, on a GPU: SD 1.5, SDXL, PixArt-alpha and DiT-XL/2, and the
flow-matching transformers of FLUX.1-dev, SD3.5-medium and Wan 2.1 T2V 1.3B.

    python -m analysis.gpu_bench [--quick] [--models sd15,sdxl,pixart,dit,flux-dev,sd35,wan13]
                                 [--steps N] [--pairs 3] [--wan-frames 33]

Each model's topology is built from its published config with random weights (weights do not
change speed), at native resolution, as a stock diffusers pipeline with the text encoders
bypassed by random prompt embeddings of the right shapes and `output_type="latent"` (the
denoiser loop is what frdiff changes; VAE decoding would add the same time to every row). A tiny
VAE is built only where a pipeline reads its scale factor from one (the SD / PixArt / DiT
pipelines); the flow pipelines default to 8x without a VAE. The UNet and DiT-family models run
in fp16, the flow transformers in bf16 (as they are run; FLUX overflows in fp16), each built
directly on the device in its dtype (FLUX's 12B parameters would not fit twice).

    sd15      UNet, 512px, DDIM, CFG 7.5 (batched)                                50 steps
    sdxl      UNet, 1024px, Euler, CFG 7.5 (batched)                              50 steps
    pixart    PixArt-alpha XL/2, 512px, DPM-Solver++, CFG 4.5 (batched)           50 steps
    dit       DiT-XL/2, 256px, DPM-Solver++, CFG 4.0 (batched)                    50 steps
    flux-dev  FluxTransformer2DModel, FLUX.1-dev's config: 19 dual + 38 single blocks, 24 heads x 128,
              guidance embedding (distilled guidance 3.5: one call a step), T5 sequence 512, pooled
              768; 1024x1024; FlowMatchEuler with dynamic shifting                28 steps
    sd35      SD3Transformer2DModel, SD3.5-medium's config: 24 joint blocks (dual attention in 0-12),
              24 heads x 64, qk rms_norm, pos_embed_max_size 384; CLIP 77 + T5 256 tokens, pooled
              2048; 1024x1024; FlowMatchEuler shift 3; CFG 4.5 (batched)          40 steps
    wan13     WanTransformer3DModel, Wan 2.1 T2V 1.3B: 30 blocks, 12 heads x 128, ffn 8960, text 512 x
              4096; 832x480, 33 frames (--wan-frames 81 for its full 5 s); UniPC on flow sigmas
              (flow_prediction, flow_shift 3.0); CFG 5.0 as two calls a step    50 steps

Rows per model: full compute; frdiff with an all-keyframe policy (the hook overhead: per-step
decisions of a static policy make no host sync); uniform FR every 2 steps without and with score
mixing; whole-block reuse (DeepCache's granularity, `deep:2`); residual reuse (`uniform:2:residual`)
on the transformer blocks; a per-block policy (the inner blocks reused, the outer ones computed);
and the peers that apply, from their own packages, every one through `frdiff.peers`' registry
(`peer_methods`, the one the app and the glyph benchmarks read). UNets: DeepCache. DiT / PixArt:
diffusers' MagCache (calibrated first) and FirstBlockCache. Flow transformers (`FLOW_PEERS`):
diffusers' FirstBlockCache, MagCache (calibrated first on the same call; the ratios of the
pipeline's conditional context where it names contexts) and TaylorSeer (predicting the units
frdiff's FR caches, attention and MLP outputs and a single-stream block's proj_out, skipping what
only feeds proj_out: its default identifiers match no Wan module, attn1 / attn2 / ffn); and
cache-dit's DBCache through cache-dit's own adapter for the pipeline class
(`cache_dit.enable_cache(pipe, ...)`, F8B0, threshold 0.08, warmup 8). FirstBlockCache does not
apply to SD3.5: its last joint block returns no text stream (`context_pre_only`) and diffusers'
tail hook subtracts from it (the registry says so). Settings: FirstBlockCache 0.08, MagCache
0.12 / 3 skips / 20% retention, TaylorSeer interval 3, order 1, 3 warm-up steps (the
`frdiff.peers` defaults). Speed: interleaved pairs in this process, the median of the per-pair
ratios (`frdiff.timing`); beside it the counted (MAC) speedup, peak CUDA memory and frdiff's peak
cache bytes. `--steps` replaces every model's own step count; `--quick`: 10 steps, 1 pair.

Without CUDA it prints "skipped: no CUDA" and exits 0; `--tiny --device cpu` runs the same code on
tiny versions of the seven topologies on a CPU (what the test suite does), figures meaningless.
Writes analysis/results/gpu-bench.json on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys

import torch

from frdiff import KeyframePolicy, Mode, ScoreMixing, accelerate, block_depths
from frdiff.timing import interleaved_speedup, machine, peak_memory

MODELS = ("sd15", "sdxl", "pixart", "dit", "flux-dev", "sd35", "wan13")
FLOW_MODELS = ("flux-dev", "sd35", "wan13")
FLOW_PEERS = ("firstblockcache", "magcache", "taylorseer", "dbcache")  # frdiff.peers.REGISTRY names
STEPS = {"flux-dev": 28, "sd35": 40, "wan13": 50}  # the others: 50
WAN_FRAMES = 33


def _scale(tiny: bool, full: int, small: int) -> int:
    return small if tiny else full


def model_dtype(name: str, device: str) -> torch.dtype:
    """fp32 on a CPU; on a GPU bf16 for the flow transformers, fp16 for the others."""
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if name in FLOW_MODELS else torch.float16


@contextlib.contextmanager
def _made_on(device: str, dtype: torch.dtype):
    """Modules constructed inside are created on `device` in `dtype` (no fp32 copy on the host)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build(name: str, tiny: bool = False, device: str = "cpu", dtype: torch.dtype = torch.float32,
          frames: int = WAN_FRAMES):
    """(pipe, call kwargs) of a model's topology, random weights, its denoiser made on `device` in
    `dtype` ("meta": shapes only); the caller still moves the pipeline there (buffers made in fp32)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    torch.manual_seed(0)
    made = lambda: _made_on(device, dtype)  # noqa: E731 - the denoiser only (schedulers stay fp32 on the host)
    return (_flow if name in FLOW_MODELS else _classic)(name, tiny, frames, made)


def _embeds(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape)), dtype=torch.float32, device="cpu")


def _classic(name: str, tiny: bool, frames: int, made):
    """SD 1.5, SDXL, PixArt-alpha, DiT-XL/2."""
    from diffusers import (AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel,
                           DPMSolverMultistepScheduler, EulerDiscreteScheduler, PixArtAlphaPipeline,
                           PixArtTransformer2DModel, StableDiffusionPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)

    # the VAE never runs (latent output): four tiny blocks give the pipelines their 8x latent scale
    vae = AutoencoderKL(block_out_channels=(8,) * 4, latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    embeds = _embeds
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
            with made():
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
        with made():
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
        with made():
            model = PixArtTransformer2DModel(
                num_attention_heads=heads, attention_head_dim=head_dim, in_channels=4, out_channels=8,
                num_layers=layers, sample_size=_scale(tiny, 64, 16), patch_size=2,
                cross_attention_dim=heads * head_dim, caption_channels=caption, norm_type="ada_norm_single",
                num_embeds_ada_norm=1000, use_additional_conditions=False)
        pipe = PixArtAlphaPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=model,
                                   scheduler=DPMSolverMultistepScheduler())
        size = _scale(tiny, 512, 128)
        return pipe, dict(prompt_embeds=embeds(1, 120, caption), prompt_attention_mask=torch.ones(1, 120),
                          negative_prompt_embeds=embeds(1, 120, caption) + 1, negative_prompt=None,
                          negative_prompt_attention_mask=torch.ones(1, 120), height=size, width=size,
                          use_resolution_binning=False, guidance_scale=4.5)
    if name == "dit":
        with made():
            model = DiTTransformer2DModel(num_attention_heads=heads, attention_head_dim=head_dim, in_channels=4,
                                          out_channels=8, num_layers=layers, sample_size=_scale(tiny, 32, 16),
                                          patch_size=2, num_embeds_ada_norm=1000)
        pipe = DiTPipeline(transformer=model, vae=vae, scheduler=DPMSolverMultistepScheduler())
        return pipe, dict(class_labels=[207], guidance_scale=4.0)
    raise ValueError(f"unknown model {name!r}")


def _flow(name: str, tiny: bool, frames: int, made):
    """FLUX.1-dev, SD3.5-medium, Wan 2.1 T2V 1.3B: no VAE (latent output; the pipelines' scale
    factor defaults to 8 without one), text encoders bypassed."""
    from diffusers import (FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                           SD3Transformer2DModel, StableDiffusion3Pipeline, UniPCMultistepScheduler,
                           WanPipeline, WanTransformer3DModel)

    text = _scale(tiny, 4096, 16)  # T5-XXL's width (UMT5 for Wan)
    if name == "flux-dev":
        with made():
            model = FluxTransformer2DModel(
                patch_size=1, in_channels=_scale(tiny, 64, 16), num_layers=_scale(tiny, 19, 2),
                num_single_layers=_scale(tiny, 38, 2), attention_head_dim=_scale(tiny, 128, 8),
                num_attention_heads=_scale(tiny, 24, 2), joint_attention_dim=text,
                pooled_projection_dim=_scale(tiny, 768, 16), guidance_embeds=True,
                axes_dims_rope=(2, 2, 4) if tiny else (16, 56, 56))
        scheduler = FlowMatchEulerDiscreteScheduler(  # FLUX.1-dev's scheduler config
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
            max_image_seq_len=4096)
        pipe = FluxPipeline(scheduler=scheduler, vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                            tokenizer_2=None, transformer=model)
        size = _scale(tiny, 1024, 64)
        return pipe, dict(prompt_embeds=_embeds(1, _scale(tiny, 512, 8), text),
                          pooled_prompt_embeds=_embeds(1, _scale(tiny, 768, 16)), height=size, width=size,
                          guidance_scale=3.5)
    if name == "sd35":
        layers = _scale(tiny, 24, 4)
        with made():
            model = SD3Transformer2DModel(
                sample_size=_scale(tiny, 128, 8), patch_size=2, in_channels=16, out_channels=16, num_layers=layers,
                attention_head_dim=_scale(tiny, 64, 8), num_attention_heads=_scale(tiny, 24, 2),
                joint_attention_dim=text, caption_projection_dim=_scale(tiny, 1536, 16),
                pooled_projection_dim=_scale(tiny, 2048, 16), pos_embed_max_size=_scale(tiny, 384, 8),
                dual_attention_layers=tuple(range(_scale(tiny, 13, 2))), qk_norm="rms_norm")
        pipe = StableDiffusion3Pipeline(transformer=model, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                        vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                                        tokenizer_2=None, text_encoder_3=None, tokenizer_3=None)
        tokens, pooled, size = _scale(tiny, 77 + 256, 8), _scale(tiny, 2048, 16), _scale(tiny, 1024, 64)
        return pipe, dict(prompt_embeds=_embeds(1, tokens, text), negative_prompt_embeds=_embeds(1, tokens, text) + 1,
                          pooled_prompt_embeds=_embeds(1, pooled), negative_pooled_prompt_embeds=_embeds(1, pooled) + 1,
                          height=size, width=size, guidance_scale=4.5)
    if name == "wan13":
        with made():
            model = WanTransformer3DModel(
                patch_size=(1, 2, 2), num_attention_heads=_scale(tiny, 12, 2), attention_head_dim=_scale(tiny, 128, 8),
                in_channels=16, out_channels=16, text_dim=text, freq_dim=_scale(tiny, 256, 16),
                ffn_dim=_scale(tiny, 8960, 32), num_layers=_scale(tiny, 30, 4), cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=_scale(tiny, 1024, 32))
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                                            num_train_timesteps=1000)
        pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=model, vae=None, scheduler=scheduler)
        tokens = _scale(tiny, 512, 8)
        return pipe, dict(prompt_embeds=_embeds(1, tokens, text), negative_prompt_embeds=_embeds(1, tokens, text) + 1,
                          height=_scale(tiny, 480, 32), width=_scale(tiny, 832, 32),
                          num_frames=frames if not tiny else 5, guidance_scale=5.0)
    raise ValueError(f"unknown model {name!r}")


def methods(pipe, name: str, steps: int, kwargs: dict, tiny: bool = False) -> dict:
    """Row name -> a function giving a fresh context manager (None: what does not apply, and why)."""
    from frdiff import peers
    from frdiff.targets import find_blocks

    depths = block_depths(pipe)
    blocks = find_blocks(pipe.unet if hasattr(pipe, "unet") else pipe.transformer)
    names = list(depths)
    # outer blocks compute, inner ones reuse
    inner = "".join(Mode.KEYFRAME if depths[n] == 0 else Mode.FEATURE_REUSE for n in names)
    per_block = KeyframePolicy(tuple(Mode.KEYFRAME * len(names) if s % 2 == 0 else inner for s in range(steps)),
                               tuple(names))

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
    if name in FLOW_MODELS:  # every diffusers hook peer and cache-dit apply; name those measured
        asked = peers.peer_methods(pipe, peers=FLOW_PEERS, options={
            "taylorseer": {"identifiers": "units"},  # its default patterns match no Wan module
            "dbcache": {"front": 1 if tiny else 8, "warmup": 1 if tiny else 8}})
    else:  # the ones frdiff.peers offers for the class: DeepCache on UNets; MagCache, FirstBlockCache
        asked = peers.peer_methods(pipe)
    for peer_name, method in asked.items():
        if not method.available:
            rows[peer_name] = None, method.reason
        elif peer_name == "MagCache":  # calibrated here, before any timing, on the benchmark's call
            ratios = peers.calibrate_mag_cache(pipe, steps, output_type="latent", **kwargs)
            rows[peer_name] = lambda ratios=ratios: peers.mag_cache(pipe, ratios)
        else:
            rows[peer_name] = lambda method=method: method(steps)
    return rows


def bench_model(name: str, steps: int, pairs: int, device: str, dtype: torch.dtype, tiny: bool,
                frames: int = WAN_FRAMES) -> list[dict]:
    from frdiff.peers import counted_speedup

    pipe, kwargs = build(name, tiny, device, dtype, frames)
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
    for method, make in methods(pipe, name, steps, kwargs, tiny).items():
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
        print(f"{name:<8} {method:<42} {row['speedup']:.2f}x measured, {row['ideal_speedup']:.2f}x counted",
              flush=True)
    for row in rows:
        row |= {"steps": steps, "dtype": str(dtype).removeprefix("torch.")}
    return rows


def markdown(result: dict) -> str:
    lines = ["| model | method | measured speedup | counted speedup | peak memory (GiB) | cache (MiB) | steps, dtype |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        run = f"{r['steps']}, {r['dtype']}" if "steps" in r else ""
        if "status" in r:
            lines.append(f"| {r['model']} | {r['method']} | {r['status']}: {r['reason']} | | | | {run} |")
            continue
        memory = f"{r['peak_memory'] / 2**30:.2f}" if r.get("peak_memory") else "-"
        cache = f"{r['cache_bytes'] / 2**20:.0f}" if r.get("cache_bytes") else "-"
        lines.append(f"| {r['model']} | {r['method']} | {r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x | "
                     f"{memory} | {cache} | {run} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 steps, 1 timing pair")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=None,
                    help="every model's steps (default: its own, 50 / flux-dev 28 / sd35 40; 10 with --quick)")
    ap.add_argument("--pairs", type=int, default=None, help="interleaved timing pairs (default 3, 1 with --quick)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny topologies (for a CPU test of this script)")
    ap.add_argument("--wan-frames", type=int, default=WAN_FRAMES, help="wan13's frames, 4k + 1 (default 33; 81: 5 s)")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    if args.wan_frames < 1 or (args.wan_frames - 1) % 4:
        print(f"error: --wan-frames must be 4k + 1 (Wan's VAE), got {args.wan_frames}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: no CUDA (python -m analysis.gpu_bench measures on a GPU; nothing was run)")
        return 0
    steps = args.steps or (10 if args.quick else None)
    pairs = args.pairs or (1 if args.quick else 3)
    rows = []
    for name in names:
        try:
            rows += bench_model(name, steps or STEPS.get(name, 50), pairs, args.device,
                                model_dtype(name, args.device), args.tiny, args.wan_frames)
        except Exception as err:  # noqa: BLE001 - a model that cannot be built is a reported row
            rows.append({"model": name, "method": "all", "status": "failed", "reason": f"{type(err).__name__}: {err}"})
        gc.collect()  # the last model's weights go before the next one is built (FLUX: 24 GB)
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()
    result = {"machine": machine(), "steps": steps or {n: STEPS.get(n, 50) for n in names}, "pairs": pairs,
              "dtypes": {n: str(model_dtype(n, args.device)) for n in names}, "tiny": args.tiny,
              "wan_frames": args.wan_frames, "rows": rows}
    print(markdown(result))
    if args.device.startswith("cuda") and not args.tiny:
        from analysis.common import write_result

        write_result("gpu-bench", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
