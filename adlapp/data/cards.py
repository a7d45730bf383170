"""Procedural 53-class playing-card images: the built-in stand-in for the public card data set.

Nothing is downloaded. Each class (13 ranks x 4 suits + joker) is drawn once as a clean card template
with PIL; every image then places that template on its own background with a random position, scale
and rotation, jitters the colours and adds noise. Suit is carried by the pip shape and its colour,
rank by the number and layout of pips (ace: one large pip; jack/queen/king: a framed picture with a
rank-specific motif). At 28 x 28 the pips are only a few pixels wide, which is what keeps the task
from being trivial for the course CNN.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from adlapp.data.base import ClassificationData, DataError, check_int, standardise

__all__ = ["RANKS", "SUITS", "CLASS_NAMES", "IMAGE_SIZE", "make_cards"]

RANKS: tuple[str, ...] = ("ace", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                          "jack", "queen", "king")
SUITS: tuple[str, ...] = ("clubs", "diamonds", "hearts", "spades")
# Sorted like the folder loader sorts the public set's class folders, so label i means the same card
# whether the data came from here or from disk.
CLASS_NAMES: tuple[str, ...] = tuple(sorted([f"{r} of {s}" for r in RANKS for s in SUITS] + ["joker"]))
IMAGE_SIZE = 28

_TW, _TH = 40, 56          # template size in pixels (card aspect 5:7)
_SUPER = 4                 # templates are drawn this many times larger, then box-filtered: smooth edges
_CANVAS = 2 * IMAGE_SIZE   # cards are warped onto a 2x canvas and average-pooled: cheap anti-aliasing
_RED = (200, 20, 30)
_BLACK = (20, 20, 25)

# Pip centres as fractions of card width/height, following real card layouts.
_L, _C, _R = 0.3, 0.5, 0.7
_PIPS: dict[int, list[tuple[float, float]]] = {
    2: [(_C, 0.22), (_C, 0.78)],
    3: [(_C, 0.22), (_C, 0.5), (_C, 0.78)],
    4: [(_L, 0.22), (_R, 0.22), (_L, 0.78), (_R, 0.78)],
    5: [(_L, 0.22), (_R, 0.22), (_C, 0.5), (_L, 0.78), (_R, 0.78)],
    6: [(_L, 0.22), (_R, 0.22), (_L, 0.5), (_R, 0.5), (_L, 0.78), (_R, 0.78)],
    7: [(_L, 0.22), (_R, 0.22), (_C, 0.36), (_L, 0.5), (_R, 0.5), (_L, 0.78), (_R, 0.78)],
    8: [(_L, 0.22), (_R, 0.22), (_C, 0.36), (_L, 0.5), (_R, 0.5), (_C, 0.64), (_L, 0.78), (_R, 0.78)],
    9: [(x, y) for y in (0.22, 0.41, 0.59, 0.78) for x in (_L, _R)] + [(_C, 0.5)],
    10: [(x, y) for y in (0.22, 0.41, 0.59, 0.78) for x in (_L, _R)] + [(_C, 0.31), (_C, 0.69)],
}


def _glyph(draw: ImageDraw.ImageDraw, suit: str, cx: float, cy: float, r: float,
           colour: tuple[int, int, int], flip: bool = False) -> None:
    """Draw one suit symbol of half-size `r` centred at (cx, cy); `flip` turns it upside down."""
    s = -1.0 if flip else 1.0

    def pt(x: float, y: float) -> tuple[float, float]:
        return cx + x * r, cy + s * y * r

    def disc(x: float, y: float, rad: float) -> None:
        px, py = pt(x, y)
        draw.ellipse((px - rad * r, py - rad * r, px + rad * r, py + rad * r), fill=colour)

    if suit == "diamonds":
        draw.polygon([pt(0, -1), pt(0.72, 0), pt(0, 1), pt(-0.72, 0)], fill=colour)
    elif suit == "hearts":
        disc(-0.47, -0.35, 0.52)
        disc(0.47, -0.35, 0.52)
        draw.polygon([pt(-0.97, -0.2), pt(0.97, -0.2), pt(0, 1)], fill=colour)
    elif suit == "spades":
        disc(-0.47, 0.2, 0.5)
        disc(0.47, 0.2, 0.5)
        draw.polygon([pt(-0.95, 0.05), pt(0.95, 0.05), pt(0, -1)], fill=colour)
        draw.polygon([pt(0, 0.3), pt(0.35, 1), pt(-0.35, 1)], fill=colour)
    elif suit == "clubs":
        disc(0, -0.5, 0.42)
        disc(-0.5, 0.12, 0.42)
        disc(0.5, 0.12, 0.42)
        draw.polygon([pt(0, -0.1), pt(0.35, 1), pt(-0.35, 1)], fill=colour)
    else:
        raise DataError(f"suit={suit!r}: unknown; expected one of {', '.join(SUITS)}")


def _draw_face(draw: ImageDraw.ImageDraw, rank: str, suit: str, colour: tuple[int, int, int],
               w: float, h: float) -> None:
    """Jack/queen/king: a framed picture whose motif and frame colour depend on the rank."""
    frame = {"jack": (40, 70, 170), "queen": (30, 130, 60), "king": (200, 150, 20)}[rank]
    x0, y0, x1, y1 = 0.2 * w, 0.17 * h, 0.8 * w, 0.83 * h
    draw.rectangle((x0, y0, x1, y1), outline=frame, width=max(1, int(0.05 * w)))
    cx, cy = 0.5 * w, 0.5 * h
    if rank == "jack":       # a single vertical blade
        draw.rectangle((cx - 0.05 * w, y0 + 0.1 * h, cx + 0.05 * w, y1 - 0.1 * h), fill=frame)
    elif rank == "queen":    # a ring
        rr = 0.2 * w
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=frame, width=max(1, int(0.06 * w)))
    else:                    # a crown: zig-zag over a bar
        top, base = cy - 0.12 * h, cy + 0.06 * h
        xs = np.linspace(x0 + 0.08 * w, x1 - 0.08 * w, 5)
        teeth = [(x, top if i % 2 == 0 else cy) for i, x in enumerate(xs)]
        crown = [(xs[0], base), *teeth, (xs[-1], base)]
        draw.polygon(crown, fill=frame)
    _glyph(draw, suit, x0 + 0.11 * w, y0 + 0.09 * h, 0.07 * w, colour)
    _glyph(draw, suit, x1 - 0.11 * w, y1 - 0.09 * h, 0.07 * w, colour, flip=True)


def _draw_joker(draw: ImageDraw.ImageDraw, w: float, h: float) -> None:
    """The joker: a multi-coloured star with no suit symbol."""
    cx, cy = 0.5 * w, 0.5 * h
    ang = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
    rad = np.where(np.arange(10) % 2 == 0, 0.36 * w, 0.15 * w)
    star = [(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in zip(rad, ang, strict=True)]
    draw.polygon(star, fill=(120, 40, 160))
    for colour, frac in [((220, 40, 40), 0.15), ((40, 120, 220), 0.85)]:
        rr = 0.08 * w
        yy = frac * h
        draw.ellipse((cx - rr, yy - rr, cx + rr, yy + rr), fill=colour)


def _template(name: str) -> np.ndarray:
    """One clean card as premultiplied RGBA, (4, _TH, _TW) float32 in [0, 1]."""
    w, h = _TW * _SUPER, _TH * _SUPER
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=0.08 * w, fill=(255, 255, 255, 255))
    if name == "joker":
        _draw_joker(draw, w, h)
    else:
        rank, suit = name.split(" of ")
        colour = _RED if suit in ("hearts", "diamonds") else _BLACK
        # Corner indices, as on real cards (the bottom one upside down).
        _glyph(draw, suit, 0.12 * w, 0.09 * h, 0.07 * w, colour)
        _glyph(draw, suit, 0.88 * w, 0.91 * h, 0.07 * w, colour, flip=True)
        if rank == "ace":
            _glyph(draw, suit, 0.5 * w, 0.5 * h, 0.28 * w, colour)
        elif rank in ("jack", "queen", "king"):
            _draw_face(draw, rank, suit, colour, w, h)
        else:
            for fx, fy in _PIPS[RANKS.index(rank) + 1]:
                _glyph(draw, suit, fx * w, fy * h, 0.1 * w, colour, flip=fy > 0.5)
    img = img.resize((_TW, _TH), Image.Resampling.BOX)
    a = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    a[:3] *= a[3:4]
    return a


@lru_cache(maxsize=1)
def _templates() -> torch.Tensor:
    """All class templates, (53, 4, _TH, _TW) premultiplied RGBA; drawn once per process."""
    return torch.from_numpy(np.stack([_template(n) for n in CLASS_NAMES]))


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> torch.Tensor:
    """(n, 3, size, size) colourful textured backgrounds in [0, 1]: base colour, blotches, stripes."""
    base = rng.uniform(0.0, 1.0, (n, 3, 1, 1))
    # Low-frequency blotches: a coarse random grid, bilinearly upsampled.
    grid = rng.uniform(-1.0, 1.0, (n, 3, 4, 4))
    blotch = F.interpolate(torch.from_numpy(grid), size=(size, size), mode="bilinear",
                           align_corners=True)
    amp = rng.uniform(0.05, 0.3, (n, 1, 1, 1))
    # Stripes of random frequency and orientation, in a random colour.
    yy, xx = np.mgrid[0:size, 0:size] / size
    phi = rng.uniform(0, np.pi, (n, 1, 1, 1))
    freq = rng.uniform(2.0, 9.0, (n, 1, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1))
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(phi) + yy * np.sin(phi)) + phase)
    stripe_col = rng.uniform(-0.25, 0.25, (n, 3, 1, 1)) * (rng.uniform(0, 1, (n, 1, 1, 1)) < 0.5)
    bg = base + amp * blotch.numpy() + stripe_col * stripes
    return torch.from_numpy(np.clip(bg, 0.0, 1.0).astype(np.float32))


def _render(labels: np.ndarray, rng: np.random.Generator, chunk: int = 512) -> np.ndarray:
    """Images for `labels` (N,), as (N, 3, 28, 28) float32 in [0, 1]."""
    # In chunks: each image briefly needs its own copy of a template and a 56 x 56 canvas.
    parts = [_render_chunk(labels[i:i + chunk], rng) for i in range(0, len(labels), chunk)]
    return np.concatenate(parts)


def _render_chunk(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    tpl = _templates()[torch.from_numpy(labels)]                             # (N, 4, _TH, _TW)
    # Card height as a fraction of the canvas, rotation, centre offset (normalised [-1, 1] units).
    half_h = rng.uniform(0.66, 0.86, n)
    half_w = half_h * _TW / _TH
    theta = np.deg2rad(rng.uniform(-12.0, 12.0, n))
    slack = np.maximum(1.0 - half_h, 0.05)
    cx = rng.uniform(-1.0, 1.0, n) * (1.0 - half_w) * 0.9
    cy = rng.uniform(-1.0, 1.0, n) * slack * 0.9
    # Output point p maps to template coordinates diag(1/hw, 1/hh) @ R(-theta) @ (p - c).
    cos, sin = np.cos(theta), np.sin(theta)
    a = np.stack([np.stack([cos / half_w, sin / half_w], -1),
                  np.stack([-sin / half_h, cos / half_h], -1)], 1)         # (N, 2, 2)
    b = -np.einsum("nij,nj->ni", a, np.stack([cx, cy], -1))
    mat = torch.from_numpy(np.concatenate([a, b[:, :, None]], 2)).float()   # (N, 2, 3)
    grid = F.affine_grid(mat, [n, 4, _CANVAS, _CANVAS], align_corners=False)
    card = F.grid_sample(tpl, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Paper/ink colour jitter: a per-image gain on the card's colours (off-white paper, faded ink).
    gain = rng.uniform(0.8, 1.05, (n, 3, 1, 1)) * rng.uniform(0.85, 1.05, (n, 1, 1, 1))
    rgb, alpha = card[:, :3] * torch.from_numpy(gain).float(), card[:, 3:]
    img = rgb + (1.0 - alpha) * _backgrounds(rng, n, _CANVAS)               # (N, 3, 56, 56)
    img = F.avg_pool2d(img, 2).numpy()                                       # (N, 3, 28, 28)
    # Global exposure/contrast jitter, then sensor noise.
    contrast = rng.uniform(0.7, 1.1, (n, 1, 1, 1))
    bright = rng.uniform(-0.1, 0.1, (n, 1, 1, 1))
    img = (img - 0.5) * contrast + 0.5 + bright
    img = img + rng.normal(0.0, 1.0, img.shape) * rng.uniform(0.02, 0.06, (n, 1, 1, 1))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _split(per_class: int, seed: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """One split: exactly `per_class` images of every class, in a seeded random order."""
    # Each split has its own stream, so changing the train size leaves val/test untouched.
    rng = np.random.default_rng(np.random.SeedSequence([seed, split]))
    labels = rng.permutation(np.repeat(np.arange(len(CLASS_NAMES)), per_class))
    return _render(labels, rng), labels.astype(np.int64)


def make_cards(train_per_class: int = 20, eval_per_class: int = 5, seed: int = 0) -> ClassificationData:
    """Generate the built-in 53-class card data set.

    Args:
      train_per_class: training images per class (20 -> 1,060 images).
      eval_per_class: validation and test images per class each (5 -> 265 + 265).
      seed: generation seed; the same seed gives bit-identical tensors.
    Returns:
      `ClassificationData` with (N, 3, 28, 28) standardised images and (N,) int64 labels.
    """
    check_int("train_per_class", train_per_class, 1)
    check_int("eval_per_class", eval_per_class, 1)
    check_int("seed", seed, 0)
    tr_x, tr_y = _split(train_per_class, seed, 0)
    va_x, va_y = _split(eval_per_class, seed, 1)
    te_x, te_y = _split(eval_per_class, seed, 2)
    (tr, va, te), mean, std = standardise(tr_x, va_x, te_x)
    return ClassificationData(
        train_x=tr, train_y=torch.from_numpy(tr_y), val_x=va, val_y=torch.from_numpy(va_y),
        test_x=te, test_y=torch.from_numpy(te_y), class_names=CLASS_NAMES, mean=mean, std=std,
    )
