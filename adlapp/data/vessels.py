"""Procedural retina-like vessel segmentation: the built-in stand-in for a fundus vessel data set.

Nothing is downloaded. Each image grows a vessel tree from an optic-disc-like point: a few trunks
random-walk into the frame, taper, and branch. All tips grow in lock-step, so stopping the growth
at a per-image target foreground fraction (10-14 %) shortens every vessel a little rather than
dropping whole trunks. The tree is drawn as a soft dark profile on a reddish background with smooth
illumination, choroid-like texture, a few dark blobs (haemorrhage-like distractors) and pixel noise.
Thin vessels are drawn fainter than thick ones, so a small U-Net does well but not perfectly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from adlapp.data.base import SegmentationData, check_int, standardise

__all__ = ["make_vessels"]

_MAX_SEGMENTS = 700   # safety cap on the tree size; the fraction cut-off normally stops far earlier
_MAX_TIPS = 48


def _grow_tree(rng: np.random.Generator, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Grow one vessel tree.

    Returns:
      (segments, root): segments is (S, 5) float32 rows (x0, y0, x1, y1, half_width) in pixel units,
      in growth order (all tips advance one step before any advances again); root is the disc centre.
    """
    k = size / 64.0   # geometry is designed at 64 px and scaled, so the fraction holds at other sizes
    left = rng.random() < 0.5
    rx = rng.uniform(0.03, 0.22) * size
    rx = rx if left else size - rx
    ry = rng.uniform(0.3, 0.7) * size
    inward = 0.0 if left else np.pi
    n_trunks = int(rng.integers(3, 6))
    angles = inward + np.linspace(-1.3, 1.3, n_trunks) + rng.normal(0.0, 0.2, n_trunks)
    # Tip state: x, y, heading, half-width, curvature (radians per step), path length from the root.
    tips = [[rx, ry, a, rng.uniform(0.9, 1.3) * k, rng.normal(0.0, 0.03), 0.0] for a in angles]
    segs: list[tuple[float, float, float, float, float]] = []
    step, min_hw, margin = 2.0 * k, 0.45 * k, 3.0 * k
    # Stop once the drawn area (ignoring overlaps) comfortably exceeds the largest target fraction:
    # the caller trims back to its target, and a smaller tree keeps the distance matrix small.
    area, budget = 0.0, 0.3 * size * size
    while tips and len(segs) < _MAX_SEGMENTS and area < budget:
        grown = []
        for x, y, a, hw, curv, dist in tips:
            a = a + curv + rng.normal(0.0, 0.1)
            nx, ny = x + step * np.cos(a), y + step * np.sin(a)
            segs.append((x, y, nx, ny, hw))
            area += 2.0 * hw * step
            hw, dist = hw * 0.994, dist + step
            out = not (-margin < nx < size + margin and -margin < ny < size + margin)
            if out or hw < min_hw:
                continue
            # Few forks inside the disc, more further out: otherwise lock-step growth spends the
            # whole foreground budget on a bush around the root.
            p_fork = 0.02 if dist < 12 * k else 0.09
            if rng.random() < p_fork and len(tips) + len(grown) < _MAX_TIPS:
                # Children leave at an angle and are thinner; the parent narrows at the fork.
                side = 1.0 if rng.random() < 0.5 else -1.0
                child_a = a + side * rng.uniform(0.5, 1.1)
                child_hw = max(hw * rng.uniform(0.6, 0.85), 1.15 * min_hw)
                grown.append([nx, ny, child_a, child_hw, rng.normal(0.0, 0.04), dist])
                hw *= 0.92
            grown.append([nx, ny, a, hw, curv, dist])
        tips = grown
    return np.asarray(segs, dtype=np.float32).reshape(-1, 5), (rx, ry)


def _segment_distance(segs: np.ndarray, size: int) -> np.ndarray:
    """Distance from every pixel centre to every segment: (size*size, S) float32."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    px, py = xx.reshape(-1, 1) + 0.5, yy.reshape(-1, 1) + 0.5                 # (P, 1)
    x0, y0, x1, y1 = (segs[:, i][None, :] for i in range(4))                  # (1, S)
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return np.hypot(px - (x0 + t * dx), py - (y0 + t * dy))                    # (P, S)


def _one(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (3, size, size) image in [0, 1] and its (size, size) {0, 1} mask."""
    target = int(round(rng.uniform(0.10, 0.14) * size * size))
    segs, root, d, covered = _fullest_tree(rng, size, target)
    mask, n_keep = _trim_to_target(segs, covered, target, size)
    vessels = _vessel_darkness(rng, segs[:n_keep, 4], d[:, :n_keep], size)
    return _fundus(rng, vessels, root, size), mask.astype(np.float32)


def _fullest_tree(rng: np.random.Generator, size: int, target: int):
    """A grown tree, its root, every pixel's distance to every segment (P, S) and which segments cover it.

    A tree whose trunks all run out of the frame early can fall short of the target; a few of those are
    re-grown (from the same stream, so still deterministic) and the fullest one is kept."""
    best = None
    for _ in range(3):
        segs, root = _grow_tree(rng, size)
        d = _segment_distance(segs, size)                                      # (P, S)
        covered = d < segs[:, 4]
        n_covered = int(covered.any(1).sum())
        if best is None or n_covered > best[0]:
            best = (n_covered, segs, root, d, covered)
        if n_covered >= target:
            break
    return best[1:]


def _trim_to_target(segs: np.ndarray, covered: np.ndarray, target: int, size: int) -> tuple[np.ndarray, int]:
    """The mask of the first segments (in growth order) that cover `target` pixels, and how many they are."""
    # first[p]: index of the first segment (in growth order) covering pixel p, S if none.
    first = np.where(covered.any(1), covered.argmax(1), len(segs))
    order = np.sort(first)
    n_keep = len(segs) if order[target - 1] >= len(segs) else int(order[target - 1]) + 1
    return (first < n_keep).reshape(size, size), n_keep


def _vessel_darkness(rng: np.random.Generator, hw: np.ndarray, d: np.ndarray, size: int) -> np.ndarray:
    """(size, size) how strongly vessels darken each pixel: a soft profile around each kept segment; thin
    vessels are fainter, which is what makes them hard to segment."""
    k = size / 64.0
    contrast = rng.uniform(0.3, 0.48) * np.clip(hw / (1.2 * k), 0.45, 1.0)
    sigma = np.maximum(hw, 0.45 * k)
    return (contrast * np.exp(-0.5 * (d / sigma) ** 2)).max(1).reshape(size, size)


def _fundus(rng: np.random.Generator, vessels: np.ndarray, root: tuple[float, float], size: int) -> np.ndarray:
    """(3, size, size) fundus-like image in [0, 1]: uneven light with a bright optic disc at the tree's root,
    texture, vessel-coloured blobs, the vessels, and noise."""
    k = size / 64.0
    rx, ry = root
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    # Smooth illumination: a coarse random field plus a bright optic disc where the tree starts.
    coarse = F.interpolate(torch.from_numpy(rng.normal(0.0, 1.0, (1, 1, 3, 3))), size=(size, size),
                           mode="bicubic", align_corners=True)[0, 0].numpy()
    disc_r = rng.uniform(5.0, 8.0) * k
    disc = np.exp(-0.5 * ((xx - rx) ** 2 + (yy - ry) ** 2) / disc_r ** 2)
    light = 1.0 + 0.12 * coarse + 0.45 * disc
    # Choroid-like mid-frequency texture.
    tex = F.interpolate(torch.from_numpy(rng.normal(0.0, 1.0, (1, 1, size // 4, size // 4))),
                        size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
    # Dark round blobs: vessel-coloured but not vessel-shaped, so colour alone is not enough.
    blobs = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(0, 4))):
        bx, by, br = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.0, 2.5) * k
        depth = rng.uniform(0.15, 0.35)
        blobs = np.maximum(blobs, depth * np.exp(-0.5 * ((xx - bx) ** 2 + (yy - by) ** 2) / br ** 2))

    base = np.array([rng.uniform(0.65, 0.85), rng.uniform(0.28, 0.42), rng.uniform(0.1, 0.2)],
                    np.float32)                                               # fundus red-orange
    # Vessels absorb green most and red least, as in real fundus photographs.
    absorb = np.array([0.55, 1.0, 0.8], np.float32).reshape(3, 1, 1)
    dark = np.maximum(vessels, blobs)[None]
    img = base.reshape(3, 1, 1) * light[None] * (1.0 + 0.06 * tex[None]) * (1.0 - absorb * dark)
    img = img + rng.normal(0.0, rng.uniform(0.02, 0.04), img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _split(n: int, size: int, seed: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, size, size) images and (n, 1, size, size) masks for one split."""
    # One child stream per image: changing n keeps the first images of a split as they were.
    children = np.random.SeedSequence([seed, split]).spawn(n)
    pairs = [_one(np.random.default_rng(c), size) for c in children]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])[:, None]


def make_vessels(n_train: int = 48, n_val: int = 16, n_test: int = 16, size: int = 64,
                 seed: int = 0) -> SegmentationData:
    """Generate the built-in vessel segmentation data set.

    Args:
      n_train, n_val, n_test: number of images per split.
      size: side length in pixels (at least 16).
      seed: generation seed; the same seed gives bit-identical tensors.
    Returns:
      `SegmentationData` with (N, 3, size, size) standardised images and (N, 1, size, size) masks.
    """
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_int(name, v, 1)
    check_int("size", size, 16)   # below 16 px the vessel geometry degenerates to specks
    check_int("seed", seed, 0)
    tr_x, tr_y = _split(n_train, size, seed, 0)
    va_x, va_y = _split(n_val, size, seed, 1)
    te_x, te_y = _split(n_test, size, seed, 2)
    (tr, va, te), mean, std = standardise(tr_x, va_x, te_x)
    return SegmentationData(
        train_x=tr, train_y=torch.from_numpy(tr_y), val_x=va, val_y=torch.from_numpy(va_y),
        test_x=te, test_y=torch.from_numpy(te_y), mean=mean, std=std,
    )
