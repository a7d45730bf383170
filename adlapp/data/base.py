"""The data containers every loader returns, the error they raise, and the shared standardisation.

Images are always float32 NCHW tensors standardised per channel with statistics of the *train* split
only, so validation and test numbers never leak into the inputs the model sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import torch

from adlapp.folder_layout import capped_list

__all__ = ["DataError", "ClassificationData", "SegmentationData", "standardise", "check_int", "skipped_summary"]


class DataError(ValueError):
    """The data cannot be built or loaded; the message always names the offending path or value."""


@dataclass(frozen=True)
class ClassificationData:
    """Image classification splits.

    `*_x` are (N, 3, 28, 28) float32, standardised per channel with train statistics; `*_y` are (N,)
    int64 indices into `class_names`. `skipped` lists files that could not be read and were left out.
    `mean`/`std` are the per-channel statistics that were removed: `x * std + mean` is back in [0, 1].
    `root` is the folder the data was loaded from ("" for a generated set).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    root: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class SegmentationData:
    """Binary segmentation splits.

    `*_x` are (N, 3, H, W) float32, standardised per channel with train statistics; `*_y` are
    (N, 1, H, W) float32 masks in {0., 1.} (1 = foreground). `skipped`, `mean`, `std`, `root` as in
    `ClassificationData`.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    skipped: tuple[str, ...] = ()
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    root: str = ""


def skipped_summary(data: ClassificationData | SegmentationData, limit: int = 3) -> str | None:
    """One line reporting the unreadable image files a loader left out, or None when none were.

    e.g. "skipped 4 unreadable image file(s): train/a/x.png, train/b/y.jpg, val/a/z.png and 1 more".
    Names are relative to the data folder when the file lies inside it (the full path otherwise), and at
    most `limit` are named, so a folder with hundreds of broken files still gives one readable line.
    """
    if not data.skipped:
        return None
    names = [_relative(p, data.root) for p in data.skipped]
    return f"skipped {len(names)} unreadable image file(s): {capped_list(names, limit)}"


def _relative(path: str, root: str) -> str:
    # Pure path arithmetic: the files may have been moved or deleted since loading, and a summary must not fail.
    if root and PurePath(path).is_relative_to(root):
        return str(PurePath(path).relative_to(root))
    return path


def check_int(name: str, value: object, minimum: int) -> None:
    """Raise `DataError` naming `name` unless `value` is a whole number >= `minimum`."""
    # bool is an int subclass, but `True` images per class is a mistake, not a request for one.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}={value!r}: must be a whole number >= {minimum}")


def standardise(
    train: np.ndarray, *others: np.ndarray
) -> tuple[list[torch.Tensor], tuple[float, ...], tuple[float, ...]]:
    """Standardise image arrays per channel with the statistics of `train`.

    Args:
      train: (N, C, H, W) float array with pixels in [0, 1].
      others: more (M, C, H, W) arrays (validation, test) to transform with the same statistics.
    Returns:
      ([train, *others] as float32 tensors, per-channel mean, per-channel std).
    """
    # float64 accumulation: a float32 sum over ~800k pixels loses enough digits to shift the mean.
    mean = train.mean(axis=(0, 2, 3), dtype=np.float64)
    std = train.std(axis=(0, 2, 3), dtype=np.float64)
    # A constant channel (e.g. a grey-scale folder) would divide by zero; leave its scale alone.
    std = np.where(std < 1e-6, 1.0, std)
    m = mean.reshape(1, -1, 1, 1).astype(np.float32)
    s = std.reshape(1, -1, 1, 1).astype(np.float32)
    out = [torch.from_numpy(np.ascontiguousarray((a.astype(np.float32) - m) / s))
           for a in (train, *others)]
    return out, tuple(float(v) for v in mean), tuple(float(v) for v in std)



def display_pixels(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """The inverse of `standardise` for showing images: (N, C, H, W) standardised -> (N, H, W, 3) uint8, where
    x * std + mean is back in [0, 1]; one-channel images are repeated to grey RGB."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    pixels = np.clip(x.detach().cpu().numpy() * s + m, 0.0, 1.0)
    pixels = np.round(pixels * 255).astype(np.uint8).transpose(0, 2, 3, 1)          # (N, H, W, C)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return pixels[..., :3]
