"""Train the embedded glyph models: `python -m frdiff train --model glyph-unet ...`.

glyph-unet and glyph-dit learn v-prediction with min-SNR loss weighting; glyph-flux learns
rectified flow (the velocity eps - x0 at x_t = (1 - s) x0 + s eps, s logit-normal as in SD3);
all with label dropout to the null class (classifier-free guidance) and EMA weights; the
classifier learns from fresh glyphs each step.
Training resumes from `RUN_DIR/checkpoint.pt`; `--export` writes the EMA weights in diffusers
`save_pretrained` layout (the embedded ones are in frdiff/glyphs/assets/, which assets/ links to).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import GLYPH_CLASSES, RESOLUTION, GlyphStream, GlyphStyle
from .models import (FLUX_PATCH, NUM_CLASSES, GlyphClassifier, GlyphFlux, build_flow_scheduler,
                     build_glyph_dit, build_glyph_unet, build_scheduler)

TRAINABLE = ("glyph-unet", "glyph-dit", "glyph-flux", "classifier")


@dataclass(frozen=True)
class TrainConfig:
    model: str
    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    seed: int = 0
    checkpoint_every: int = 250
    init_from: str | None = None  # warm start: exported weights (model and EMA), fresh optimiser


def build_model(name: str) -> torch.nn.Module:
    builders = {"glyph-unet": build_glyph_unet, "glyph-dit": build_glyph_dit,
                "glyph-flux": GlyphFlux, "classifier": GlyphClassifier}
    return builders[name]()


def _disable_builtin_label_dropout(model: torch.nn.Module) -> None:
    # diffusers' DiT drops labels inside every block independently in train mode; we drop
    # them once, explicitly, for every model, so the null class means the same thing.
    from diffusers.models.embeddings import LabelEmbedding

    for module in model.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0


def _call_generator(model, x, t, labels):
    return model(x, t, class_labels=labels).sample


def _drop_labels(labels: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """Classifier-free guidance training: each label becomes the null class with probability
    `cfg.label_dropout` (drawn from the CPU generator `g`)."""
    drop = (torch.rand(labels.shape[0], generator=g) < cfg.label_dropout).to(labels.device)
    return torch.where(drop, torch.full_like(labels, NUM_CLASSES), labels)


def diffusion_loss(model, images, labels, alphas_cumprod, cfg: TrainConfig, g: torch.Generator):
    """v-prediction MSE with min-SNR-gamma weighting (Hang et al. 2023), CFG label dropout.

    Random draws come from the CPU generator `g` (so a run is the same on any device) and
    move to the model's device."""
    n, device = images.shape[0], images.device
    t = torch.randint(0, len(alphas_cumprod), (n,), generator=g)
    a = alphas_cumprod[t].view(n, 1, 1, 1).to(device)
    noise = torch.randn(images.shape, generator=g).to(device)
    noisy = a.sqrt() * images + (1 - a).sqrt() * noise
    target = a.sqrt() * noise - (1 - a).sqrt() * images  # v
    labels = _drop_labels(labels, cfg, g)
    t = t.to(device)
    pred = _call_generator(model, noisy, t, labels)
    snr = (a / (1 - a)).view(n)
    weight = snr.clamp(max=cfg.min_snr_gamma) / (snr + 1)
    return (weight * (pred - target).pow(2).mean((1, 2, 3))).mean()


def flow_loss(model: GlyphFlux, images, labels, cfg: TrainConfig, g: torch.Generator):
    """Rectified flow: MSE of the predicted velocity, s = sigmoid(N(0, 1)) (logit-normal)."""
    from .pipeline import flux_condition, flux_velocity

    n, device = images.shape[0], images.device
    s = torch.sigmoid(torch.randn(n, generator=g)).to(device)
    noise = torch.randn(images.shape, generator=g).to(device)
    noisy = (1 - s.view(n, 1, 1, 1)) * images + s.view(n, 1, 1, 1) * noise
    labels = _drop_labels(labels, cfg, g)
    condition = flux_condition(model.label_encoder, labels, noisy, FLUX_PATCH)
    pred = flux_velocity(model.transformer, noisy, s, condition, FLUX_PATCH)
    return (pred - (noise - images)).pow(2).mean()


def classifier_loss(model, images, labels):
    return F.cross_entropy(model(images), labels, label_smoothing=0.05)


def _checkpoint_path(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoint.pt")


def train(cfg: TrainConfig, run_dir: str, threads: int | None = None, progress: bool = True,
          device: str = "cpu", max_minutes: float | None = None):
    """Train (or resume) one model; returns the run directory's checkpoint path.

    `device` is where the model trains (data is drawn on the CPU); `max_minutes` stops this
    invocation after that much wall time with a checkpoint (run again to go on)."""
    if threads:
        torch.set_num_threads(threads)
    os.makedirs(run_dir, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model).to(device)  # before the optimiser: its state follows the params
    _disable_builtin_label_dropout(model)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    stream = GlyphStream(cfg.batch_size, seed=cfg.seed, style=GlyphStyle())
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, elapsed = 0, 0.0
    path = _checkpoint_path(run_dir)
    init_steps = 0
    if cfg.init_from and not os.path.exists(path):
        weights = _load_exported(cfg.model, cfg.init_from).state_dict()
        model.load_state_dict(weights), ema.load_state_dict(weights)
        init_steps = _init_steps(cfg.init_from)
    if os.path.exists(path):
        state = torch.load(path, map_location="cpu", weights_only=True)  # any device's run; tensors and plain data only
        saved = {"init_from": None} | state["config"]  # checkpoints from before warm starts
        if saved != asdict(cfg) | {"steps": saved["steps"]}:
            raise ValueError(f"{path} was made with another config: {state['config']}")
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"]), stream.load_state_dict(state["stream"])
        noise_gen.set_state(state["noise_gen"]), torch.set_rng_state(state["torch_rng"])
        step, elapsed = state["step"], state["elapsed"]
        init_steps = state.get("init_steps", 0)
    alphas_cumprod = build_scheduler().alphas_cumprod
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", disable=not progress)
    t0 = time.perf_counter() - elapsed
    deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes
    while step < cfg.steps:
        images, labels = (x.to(device) for x in next(stream))
        if cfg.model == "classifier":
            loss = classifier_loss(model, images, labels)
        elif cfg.model == "glyph-flux":
            loss = flow_loss(model, images, labels, cfg, noise_gen)
        else:
            loss = diffusion_loss(model, images, labels, alphas_cumprod, cfg, noise_gen)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        _ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        out_of_time = deadline is not None and time.perf_counter() > deadline
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            _save(path, cfg, model, ema, opt, stream, noise_gen, step, time.perf_counter() - t0,
                  init_steps)
        if out_of_time:
            break
    bar.close()
    return path


def _load_exported(name: str, folder: str) -> torch.nn.Module:
    """The model of an exported folder (`assets/glyph-dit`...), checked to be `name`'s architecture."""
    sub = {"glyph-unet": "unet", "glyph-dit": "transformer", "glyph-flux": "transformer"}.get(name)
    path = os.path.join(folder, sub) if sub else folder
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--init-from {folder}: no {name} weights at {path}")
    model = build_model(name)
    if name == "glyph-flux":  # two parts, each checked
        model.transformer = _loaded_like(model.transformer, path, folder, name)
        model.label_encoder = _loaded_like(model.label_encoder,
                                           os.path.join(folder, "label_encoder"), folder, name)
        return model
    return _loaded_like(model, path, folder, name)


def _loaded_like(model: torch.nn.Module, path: str, folder: str, name: str) -> torch.nn.Module:
    """`type(model).from_pretrained(path)`, refused unless its config is `model`'s."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--init-from {folder}: no {name} weights at {path}")
    loaded = type(model).from_pretrained(path)

    def arch(config):
        # through JSON, so tuples and lists compare equal, as they are on disk
        return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))

    if arch(loaded.config) != arch(model.config):
        raise ValueError(f"--init-from {folder}: its config differs from {name}'s architecture")
    return loaded


def _note(folder: str | None) -> dict | None:
    """An exported folder's training note (None when it has none)."""
    note = os.path.join(folder or "", "training.json")
    if not folder or not os.path.exists(note):
        return None
    with open(note) as f:
        return json.load(f)


def _total(note: dict, key: str) -> float:
    """`steps` or `wall_time_s` over a note's whole history (its warm starts included)."""
    return note.get({"steps": "total_steps", "wall_time_s": "total_wall_time_s"}[key], note.get(key, 0))


def _init_steps(folder: str | None) -> int:
    """Optimiser steps already behind an exported folder (0 when unknown or none)."""
    note = _note(folder)
    return 0 if note is None else int(_total(note, "steps"))


@torch.no_grad()
def _ema_update(ema, model, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _save(path, cfg, model, ema, opt, stream, noise_gen, step, elapsed, init_steps=0) -> None:
    state = {"config": asdict(cfg), "model": model.state_dict(), "ema": ema.state_dict(),
             "opt": opt.state_dict(), "stream": stream.state_dict(),
             "noise_gen": noise_gen.get_state(), "torch_rng": torch.get_rng_state(),
             "step": step, "elapsed": elapsed, "threads": torch.get_num_threads(),
             "init_steps": init_steps, "device": _device_name(next(model.parameters()).device)}
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)  # never leave a half-written checkpoint


def _device_name(device: torch.device) -> str:
    """What trained the model, for the training note: "cpu" or e.g. "cuda (NVIDIA H200)"."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def export(run_dir: str, out_dir: str) -> dict:
    """Write the EMA weights of a run to `out_dir` (diffusers layout) with a training note."""
    from .pipeline import GlyphPipeline

    state = torch.load(_checkpoint_path(run_dir), map_location="cpu", weights_only=True)
    name = state["config"]["model"]
    model = build_model(name)
    model.load_state_dict(state["ema"])
    model.eval()
    if name == "classifier":
        model.save_pretrained(out_dir)
    elif name == "glyph-flux":
        GlyphPipeline.from_model(model.transformer, build_flow_scheduler(), labels=GLYPH_CLASSES,
                                 label_encoder=model.label_encoder,
                                 resolution=RESOLUTION).save_pretrained(out_dir)
    else:
        GlyphPipeline.from_model(model, build_scheduler(), labels=GLYPH_CLASSES).save_pretrained(out_dir)
    info = {"model": name, "steps": state["step"], "wall_time_s": round(state["elapsed"], 1),
            "config": state["config"], "threads": state.get("threads"),
            "device": state.get("device", "cpu")}
    init = state["config"].get("init_from")
    if init:
        # the warm start's own history: total steps = the earlier run's + this run's
        info["init_steps"] = state.get("init_steps", 0)
        info["total_steps"] = info["init_steps"] + state["step"]
        earlier = _note(init)
        if earlier is not None:  # the warm start's note, nested: the whole history in one file
            info["earlier"] = earlier
            info["total_wall_time_s"] = round(_total(earlier, "wall_time_s") + info["wall_time_s"], 1)
    with open(os.path.join(out_dir, "training.json"), "w") as f:
        json.dump(info, f, indent=2)
    return info
