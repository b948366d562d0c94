"""Real text-to-image (and class-to-image) models from the Hugging Face Hub, where the Space can
run them: a GPU (or ZeroGPU) and a reachable Hub. Anywhere else the tab says why they are not
offered and the glyph models stay.

Only the ids in HUB_MODELS load. Their pipeline class is named here, never read from the hub
repository; `trust_remote_code` is never passed; weights load as safetensors in fp16. A model is
loaded once and runs one request at a time (its own lock): frdiff replaces forwards on the
model it accelerates, so two requests must not sample with it at once.
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


PIXART = (("use_resolution_binning", False),  # its native size is in its bins: a no-op there
          ("clean_caption", False))  # needs beautifulsoup4 and ftfy, which the Space need not have

HUB_MODELS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": HubModel("StableDiffusionPipeline", "prompt"),
    "stabilityai/stable-diffusion-xl-base-1.0": HubModel("StableDiffusionXLPipeline", "prompt"),
    "PixArt-alpha/PixArt-XL-2-512x512": HubModel("PixArtAlphaPipeline", "prompt", PIXART),
    "facebook/DiT-XL-2-256": HubModel("DiTPipeline", "class"),
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


def gpu(duration: int = 120):
    """`spaces.GPU(duration=...)` where the `spaces` package is installed, else a no-op."""
    spaces = _spaces()
    return spaces.GPU(duration=duration) if spaces is not None else (lambda fn: fn)


@lru_cache(maxsize=1)
def unavailable() -> str:
    """'' when hub models can be offered here, else why not (checked once per process)."""
    if os.environ.get("FRDIFF_APP_HUB", "1") == "0":
        return "hub models are switched off on this server (FRDIFF_APP_HUB=0)"
    if not (torch.cuda.is_available() or _zero_gpu()):
        return ("this server has no GPU: the hub models (SD 1.5, SDXL, PixArt-alpha, DiT-XL/2) take "
                "minutes per image on a CPU, so only the glyph models are offered")
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


def load(model_id: str):
    """The allow-listed pipeline `model_id` in fp16 on the GPU (loaded once), and its lock."""
    spec = model_spec(model_id)
    with _load_lock:
        if model_id not in _loaded:
            import diffusers

            cls = getattr(diffusers, spec.pipeline)
            pipe = _from_pretrained(cls, model_id, torch_dtype=torch.float16, use_safetensors=True)
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
        return {"prompt": prompt.strip(), **dict(spec.extra)}
    labels = getattr(pipe, "labels", None) or {}
    name = prompt.strip().lower()
    if name not in {k.lower() for k in labels}:
        examples = ", ".join(sorted(labels)[:5])
        raise ValueError(f"no ImageNet class {prompt.strip()!r} in this model (for example: {examples})")
    return {"class_labels": pipe.get_label_ids([next(k for k in labels if k.lower() == name)])}


@gpu(duration=120)
def generate(model_id, prompt, steps, interval, mixing_on, seed) -> dict:
    """Full compute and FRDiff (uniform FR at `interval`, score mixing on or off) from the same
    noise: both images, their times and the FRDiff run's stats."""
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
        images = pipe(num_inference_steps=steps, generator=g, output_type="pt", **kwargs).images
        if not torch.is_tensor(images):  # DiTPipeline gives (N, H, W, 3) arrays for anything but "pil"
            images = torch.from_numpy(images).permute(0, 3, 1, 2)
        return images

    with lock:
        full, full_s = timing.timed(call)
        with accelerate(pipe, policy, mixing) as run:
            fast, fast_s = timing.timed(call)
    return {"full": full.float().cpu(), "frdiff": fast.float().cpu(), "full_seconds": full_s,
            "frdiff_seconds": fast_s, "psnr": psnr(fast.float().cpu(), full.float().cpu()),
            "stats": run.stats.as_dict()}
