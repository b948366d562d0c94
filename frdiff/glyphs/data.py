"""Procedural glyph dataset: 32x32 RGB characters rendered from the fonts inside matplotlib.

Each image is one character (its class) in a random font, size, rotation and position, in a
random colour on a two-colour gradient background: coarse colour layout plus sharp edges,
and nothing to download. Glyph masks are rasterised once per (font, character) at 64x64;
every sample is then a random affine warp of a mask, area-downsampled to 32x32 (antialiased).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# Digits and capitals without look-alikes (0/O/D/Q, 1/I/J/L, 5/S, 8/B, 2/Z, 6/G, V/U/Y...).
GLYPH_CLASSES: str = "2345679ACEFHKMPRTUWX"
RESOLUTION = 32
_MASTER = 64  # masks are rendered at twice the output size, then area-downsampled

FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf",
)


@dataclass(frozen=True)
class GlyphStyle:
    """Ranges of the random style of a glyph sample."""

    max_rotation_deg: float = 12.0
    scale: tuple[float, float] = (0.75, 1.0)  # glyph height / image height (before rotation)
    max_shift: float = 0.12  # fraction of the image size
    min_contrast: float = 0.35  # luminance distance between glyph and background mean


def _font_dir() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")


def _render_mask(font_file: str, char: str) -> np.ndarray:
    """Rasterise one character to a centred _MASTER x _MASTER coverage mask in [0, 1]."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(os.path.join(_font_dir(), font_file))
    font.set_size(40, 72)
    font.set_text(char)
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    ys, xs = np.nonzero(bitmap > 0.05)
    if len(ys) == 0:
        raise RuntimeError(f"font {font_file} has no glyph for {char!r}")
    crop = bitmap[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    # Normalise so the taller side spans 80% of the master canvas, then centre it.
    h, w = crop.shape
    target = 0.8 * _MASTER / max(h, w)
    t = torch.from_numpy(crop)[None, None]
    new_h, new_w = max(1, round(h * target)), max(1, round(w * target))
    t = F.interpolate(t, size=(new_h, new_w), mode="area" if target < 1 else "bilinear")
    canvas = torch.zeros(_MASTER, _MASTER)
    top, left = (_MASTER - new_h) // 2, (_MASTER - new_w) // 2
    canvas[top: top + new_h, left: left + new_w] = t[0, 0].clamp(0, 1)
    return canvas.numpy()


@lru_cache(maxsize=None)
def glyph_masks(classes: str = GLYPH_CLASSES) -> torch.Tensor:
    """All masks as a (num_fonts, num_classes, 64, 64) tensor, rendered once per process."""
    masks = [[_render_mask(f, c) for c in classes] for f in FONT_FILES]
    return torch.from_numpy(np.stack([np.stack(row) for row in masks]))


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb * torch.tensor([0.299, 0.587, 0.114])).sum(-1)


def _random_colours(n: int, style: GlyphStyle, g: torch.Generator):
    """Background gradient end colours and a glyph colour with enough contrast."""
    bg_a, bg_b = torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g)
    # Keep the gradient gentle so the glyph stays the dominant edge.
    bg_b = (bg_a + 0.5 * (bg_b - bg_a)).clamp(0, 1)
    fg = torch.rand(n, 3, generator=g)
    bg_lum = _luminance((bg_a + bg_b) / 2)
    for _ in range(8):  # resample the glyph colours that are too close to the background
        bad = (_luminance(fg) - bg_lum).abs() < style.min_contrast
        if not bad.any():
            break
        fg[bad] = torch.rand(int(bad.sum()), 3, generator=g)
    still_bad = (_luminance(fg) - bg_lum).abs() < style.min_contrast
    fg[still_bad] = (bg_lum[still_bad] < 0.5).float()[:, None].expand(-1, 3)  # white or black
    return bg_a, bg_b, fg


def _warp_masks(masks: torch.Tensor, n: int, style: GlyphStyle, g: torch.Generator):
    """Random rotation, scale and shift of (n, 64, 64) masks via one affine grid."""
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(style.max_rotation_deg)
    lo, hi = style.scale
    scale = (lo + (hi - lo) * torch.rand(n, generator=g)) / 0.8  # masks span 80% already
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * style.max_shift * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], -1),
                         torch.stack([sin, cos, shift[:, 1]], -1)], 1)
    grid = F.affine_grid(theta, (n, 1, _MASTER, _MASTER), align_corners=False)
    warped = F.grid_sample(masks[:, None], grid, mode="bilinear", align_corners=False)
    return F.avg_pool2d(warped, 2)  # (n, 1, 32, 32)


def sample_glyphs(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                  style: GlyphStyle = GlyphStyle(), classes: str = GLYPH_CLASSES):
    """Draw n glyph images in [-1, 1], shape (n, 3, 32, 32), and their class ids.

    Deterministic for a given generator state. `labels` fixes the classes (else uniform).
    """
    masks = glyph_masks(classes)
    if labels is None:
        labels = torch.randint(0, len(classes), (n,), generator=generator)
    labels = torch.as_tensor(labels, dtype=torch.long)
    fonts = torch.randint(0, masks.shape[0], (n,), generator=generator)
    alpha = _warp_masks(masks[fonts, labels], n, style, generator)
    bg_a, bg_b, fg = _random_colours(n, style, generator)
    direction = torch.rand(n, generator=generator) * 2 * math.pi
    coords = torch.linspace(-1, 1, RESOLUTION)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    ramp = (xx * torch.cos(direction)[:, None, None] + yy * torch.sin(direction)[:, None, None])
    ramp = ((ramp + 1.42) / 2.84)[:, None]  # (n, 1, 32, 32) in [0, 1]
    background = bg_a[:, :, None, None] * (1 - ramp) + bg_b[:, :, None, None] * ramp
    image = background * (1 - alpha) + fg[:, :, None, None] * alpha
    return image * 2 - 1, labels


class GlyphStream:
    """An endless, seeded stream of training batches (fresh samples every batch)."""

    def __init__(self, batch_size: int, seed: int = 0, style: GlyphStyle = GlyphStyle()):
        self.batch_size, self.style = batch_size, style
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return self

    def __next__(self):
        return sample_glyphs(self.batch_size, self.generator, style=self.style)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
