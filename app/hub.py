"""Real text-to-image (and class-to-image, and text-to-video) models from the Hugging Face Hub,
where the Space can run them: a GPU (or ZeroGPU) and a reachable Hub. Anywhere else the tab says
why they are not offered and the glyph models stay.

Only the ids in HUB_MODELS load. Their pipeline class is named here, never read from the hub
repository; `trust_remote_code` is never passed; weights load as safetensors in the dtype the
entry names: fp16 for the UNet / PixArt / DiT models, bf16 for the flow-matching transformers
(FLUX, SD3.5, Qwen-Image and Wan are run in bf16; FLUX overflows in fp16). A model is loaded once
and runs one request at a time (its own lock): frdiff replaces forwards on the model it
accelerates, so two requests must not sample with it at once.

Each entry carries its defaults (steps, guidance, size, frames) and a recommended frdiff policy
spec (`KeyframePolicy.parse` form, score mixing on): uniform FR every 2 steps for the 28-50 step
models; full compute for FLUX.1-schnell, whose 4 steps leave caching little room. A video model
(Wan) is shown as a strip of frames; PSNR is over every frame.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache

import torch

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff import timing
from frdiff.metrics import psnr

from .inputs import seed_of, whole_number


@dataclass(frozen=True)
class HubModel:
    pipeline: str  # the diffusers class, by name (from this list only)
    conditioning: str  # "prompt" (text) or "class" (an ImageNet class name)
    extra: tuple = ()  # (name, value) call arguments it always gets
    dtype: str = "float16"  # the torch dtype its weights load in
    steps: int = 50  # the tab's default number of steps
    guidance: tuple = ()  # (argument, value): its guidance (CFG, distilled, or Qwen's true CFG)
    size: tuple = ()  # (height, width) in pixels; () for the pipeline's own default
    frames: int = 0  # video models: frames generated (num_frames); 0 for an image model
    policy: str = "uniform:2"  # recommended frdiff policy spec (score mixing on)
    note: str = ""  # what to expect of frdiff on it
    gpu_gib: int = 0  # GPU memory it needs in its dtype (text encoders included); 0: any GPU
    seconds_per_step: float = 0.3  # one full-compute step on a large GPU (for ZeroGPU's duration)

    @property
    def interval(self) -> int:
        """The keyframe interval of the recommended `uniform:K` policy."""
        return int(self.policy.split(":")[1])

    def defaults(self) -> str:
        """One line: its steps, size (width x height), frames, guidance and recommended policy."""
        parts = [f"{self.steps} steps"]
        if self.size:
            parts.append(f"{self.size[1]}x{self.size[0]}")
        if self.frames:
            parts.append(f"{self.frames} frames")
        if self.guidance:
            parts.append(f"{self.guidance[0]} {self.guidance[1]:g}")
        dtype = {"float16": "fp16", "bfloat16": "bf16"}.get(self.dtype, self.dtype)
        recommended = f"{self.policy} + score mixing" if self.interval > 1 else f"full compute ({self.policy})"
        parts.append(f"{dtype}; recommended frdiff policy: {recommended}")
        return ", ".join(parts) + (f". {self.note}" if self.note else "")

    def call_defaults(self) -> dict:
        """The call arguments it always gets: guidance, size, frames and `extra`."""
        kwargs = dict(self.extra)
        if self.guidance:
            kwargs[self.guidance[0]] = self.guidance[1]
        if self.size:
            kwargs["height"], kwargs["width"] = self.size
        if self.frames:
            kwargs["num_frames"] = self.frames
        return kwargs


PIXART = (("use_resolution_binning", False),  # its native size is in its bins: a no-op there
          ("clean_caption", False))  # needs beautifulsoup4 and ftfy, which the Space need not have
FEW_STEPS = ("4 steps leave caching little room (each reused step is a quarter of the path): full "
             "compute is recommended; uniform:2 (interval 2) halves the calls at exactly 4 steps, "
             "at a visible cost in detail")
FLOW = dict(dtype="bfloat16", policy="uniform:2")

HUB_MODELS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": HubModel("StableDiffusionPipeline", "prompt",
                                                            seconds_per_step=0.03),
    "stabilityai/stable-diffusion-xl-base-1.0": HubModel("StableDiffusionXLPipeline", "prompt",
                                                         seconds_per_step=0.08),
    "PixArt-alpha/PixArt-XL-2-512x512": HubModel("PixArtAlphaPipeline", "prompt", PIXART, seconds_per_step=0.05),
    "facebook/DiT-XL-2-256": HubModel("DiTPipeline", "class", seconds_per_step=0.03),
    "black-forest-labs/FLUX.1-schnell": HubModel(
        "FluxPipeline", "prompt", (("max_sequence_length", 256),), **(FLOW | dict(policy="uniform:1")),
        steps=4, guidance=("guidance_scale", 0.0), size=(1024, 1024), note=FEW_STEPS, gpu_gib=36,
        seconds_per_step=0.5),
    "black-forest-labs/FLUX.1-dev": HubModel(
        "FluxPipeline", "prompt", **FLOW, steps=28, guidance=("guidance_scale", 3.5), size=(1024, 1024),
        note="guidance is distilled into the model: one call per step", gpu_gib=36, seconds_per_step=0.5),
    "stabilityai/stable-diffusion-3.5-medium": HubModel(
        "StableDiffusion3Pipeline", "prompt", **FLOW, steps=40, guidance=("guidance_scale", 4.5),
        size=(1024, 1024), note="CFG batched into one call per step", gpu_gib=20, seconds_per_step=0.25),
    "Qwen/Qwen-Image": HubModel(
        "QwenImagePipeline", "prompt", (("negative_prompt", " "),), **FLOW, steps=50,
        guidance=("true_cfg_scale", 4.0), size=(1328, 1328),
        note="true CFG: two calls per step (a negative prompt of one space, as its model card)",
        gpu_gib=64, seconds_per_step=1.6),
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers": HubModel(
        "WanPipeline", "prompt", **FLOW, steps=50, guidance=("guidance_scale", 5.0), size=(480, 832), frames=33,
        note="video: 33 frames at 832x480 (2 s at 16 fps), CFG as two calls per step; shown as a strip of "
             "4 frames, PSNR over every frame", gpu_gib=20, seconds_per_step=0.6),
}
MAX_PROMPT = 500  # characters


def _zero_gpu() -> bool:
    """On a ZeroGPU Space the GPU is attached only inside `@spaces.GPU` functions."""
    return bool(os.environ.get("SPACES_ZERO_GPU")) and _spaces() is not None


def _spaces():
    try:
        import spaces
    except ImportError:
        return None
    return spaces


def gpu(duration=120):
    """`spaces.GPU(duration=...)` where the `spaces` package is installed, else a no-op.
    `duration`: seconds, or a function of the decorated function's arguments giving them
    (ZeroGPU's dynamic duration)."""
    spaces = _spaces()
    return spaces.GPU(duration=duration) if spaces is not None else (lambda fn: fn)


@lru_cache(maxsize=1)
def unavailable() -> str:
    """'' when hub models can be offered here, else why not (checked once per process)."""
    if os.environ.get("FRDIFF_APP_HUB", "1") == "0":
        return "hub models are switched off on this server (FRDIFF_APP_HUB=0)"
    if not (torch.cuda.is_available() or _zero_gpu()):
        return ("this server has no GPU: the hub models (SD 1.5, SDXL, PixArt-alpha, DiT-XL/2, FLUX.1, "
                "SD3.5, Qwen-Image, Wan 2.1) take minutes to hours per image on a CPU, so only the glyph "
                "models are offered")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return "this server is offline (HF_HUB_OFFLINE=1): hub models cannot be downloaded"
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError as err:
        return f"the Hugging Face Hub cannot be reached from this server ({err.__class__.__name__})"
    return ""


def model_spec(model_id) -> HubModel:
    if not isinstance(model_id, str) or model_id not in HUB_MODELS:
        shown = model_id if isinstance(model_id, str) and len(model_id) <= 100 else type(model_id).__name__
        raise ValueError(f"model {shown!r} is not offered; choose from {', '.join(HUB_MODELS)}")
    return HUB_MODELS[model_id]


def _from_pretrained(cls, model_id: str, **kwargs):
    """The one place a hub model is downloaded (tests replace it with tiny pipelines)."""
    return cls.from_pretrained(model_id, **kwargs)


_loaded: dict[str, object] = {}
_locks: dict[str, threading.Lock] = {}
_load_lock = threading.Lock()


def _gpu_gib() -> float | None:
    """The GPU's memory in GiB, None where it cannot be read (no GPU, or ZeroGPU outside a call)."""
    try:
        return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - unknown: let the load try
        return None


def load(model_id: str):
    """The allow-listed pipeline `model_id` in its dtype on the GPU (loaded once), and its lock.
    A model that needs more GPU memory than this GPU has is refused before anything downloads."""
    spec = model_spec(model_id)
    with _load_lock:
        if model_id not in _loaded:
            import diffusers

            have = _gpu_gib()
            if spec.gpu_gib and have is not None and have < spec.gpu_gib:
                raise ValueError(f"{model_id} needs about {spec.gpu_gib} GiB of GPU memory in {spec.dtype}; "
                                 f"this GPU has {have:.0f} GiB")
            cls = getattr(diffusers, spec.pipeline)
            pipe = _from_pretrained(cls, model_id, torch_dtype=getattr(torch, spec.dtype), use_safetensors=True)
            if torch.cuda.is_available():
                pipe.to("cuda")
            pipe.set_progress_bar_config(disable=True)
            _loaded[model_id], _locks[model_id] = pipe, threading.Lock()
        return _loaded[model_id], _locks[model_id]


def call_kwargs(spec: HubModel, pipe, prompt) -> dict:
    """The pipeline's conditioning from the prompt box: the text, or a class name's id."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("type a prompt" if spec.conditioning == "prompt" else "type an ImageNet class name")
    if len(prompt) > MAX_PROMPT:
        raise ValueError(f"the prompt is {len(prompt)} characters; at most {MAX_PROMPT}")
    if spec.conditioning == "prompt":
        return {"prompt": prompt.strip(), **spec.call_defaults()}
    labels = getattr(pipe, "labels", None) or {}
    name = prompt.strip().lower()
    if name not in {k.lower() for k in labels}:
        examples = ", ".join(sorted(labels)[:5])
        raise ValueError(f"no ImageNet class {prompt.strip()!r} in this model (for example: {examples})")
    return {"class_labels": pipe.get_label_ids([next(k for k in labels if k.lower() == name)])}


def _duration(model_id, prompt=None, steps=50, *args, **kwargs) -> int:
    """ZeroGPU seconds for a generate() call: two runs of `steps` steps, and room for loading."""
    spec = HUB_MODELS.get(model_id) if isinstance(model_id, str) else None
    if spec is None or isinstance(steps, bool) or not isinstance(steps, (int, float)) or not 1 <= steps <= 100:
        return 120  # refused before any GPU work
    return int(min(300, max(60, 60 + 2 * steps * spec.seconds_per_step)))


STRIP = 4  # frames of a video shown side by side


def strip(video: torch.Tensor, frames: int = STRIP) -> torch.Tensor:
    """(N, F, C, H, W) video as (N, C, H, k W) images: `frames` frames from first to last."""
    picks = torch.linspace(0, video.shape[1] - 1, min(frames, video.shape[1])).round().long()
    return torch.cat(list(video[:, picks].unbind(1)), dim=-1)


@gpu(duration=_duration)
def generate(model_id, prompt, steps, interval, mixing_on, seed) -> dict:
    """Full compute and FRDiff (uniform FR at `interval`, score mixing on or off) from the same
    noise: both images (a video model: strips of frames), their times, PSNR (every frame of a
    video) and the FRDiff run's stats."""
    spec = model_spec(model_id)
    if reason := unavailable():
        raise ValueError(reason)
    steps = whole_number(steps, "steps", 4, 100)
    interval = whole_number(interval, "keyframe interval", 1, 10)
    seed = seed_of(seed)
    pipe, lock = load(model_id)
    kwargs = call_kwargs(spec, pipe, prompt)
    policy, mixing = KeyframePolicy.uniform(steps, interval), ScoreMixing() if mixing_on else ScoreMixing.off()

    def call():
        g = torch.Generator("cuda" if torch.cuda.is_available() else "cpu").manual_seed(seed)
        out = pipe(num_inference_steps=steps, generator=g, output_type="pt", **kwargs)
        images = out.frames if spec.frames else out.images  # a video: (N, F, C, H, W)
        if not torch.is_tensor(images):  # DiTPipeline gives (N, H, W, 3) arrays for anything but "pil"
            images = torch.from_numpy(images).permute(0, 3, 1, 2)
        return images

    with lock:
        full, full_s = timing.timed(call)
        with accelerate(pipe, policy, mixing) as run:
            fast, fast_s = timing.timed(call)
    full, fast = full.float().cpu(), fast.float().cpu()
    score = psnr(fast, full)  # a video: over all its frames
    if spec.frames:
        full, fast = strip(full), strip(fast)
    return {"full": full, "frdiff": fast, "full_seconds": full_s, "frdiff_seconds": fast_s, "psnr": score,
            "stats": run.stats.as_dict()}
