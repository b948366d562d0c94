"""Image grids for the README, the CLI and the app."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, ncol: int, pad: int = 1, scale: int = 1) -> Image.Image:
    """A PIL grid of (N, 3, H, W) images in [0, 1], `ncol` per row, upscaled by `scale`."""
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    canvas = torch.ones(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for i, img in enumerate(images.float().clamp(0, 1)):
        r, k = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, y: y + h, x: x + w] = img
    arr = (canvas.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    grid = Image.fromarray(arr)
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST) if scale > 1 else grid


def save_grid(images: torch.Tensor, path: str, ncol: int, scale: int = 3) -> str:
    make_grid(images, ncol, scale=scale).save(path)
    return path
