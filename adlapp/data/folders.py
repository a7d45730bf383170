"""Load the user's own images from a folder tree into the same tensors the built-in sets produce.

The layout (which splits, classes and image/mask pairs there are) is read by `adlapp.folder_layout`, the same
checker the app and the CLI run before queueing; this module decodes the files it lists. Every file is decoded,
converted and resized once, here; after loading there is no per-item PIL work, everything is a tensor.
Unreadable image files are skipped and listed in `skipped` so the UI can report them (`skipped_summary` words
it); a layout problem is a `DataError` whose message names the path and lists at most a few of the entries it
found.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from adlapp.data.base import ClassificationData, DataError, SegmentationData, check_int, standardise
from adlapp.folder_layout import (
    IMAGE_EXTENSIONS,
    ClassificationLayout,
    LayoutError,
    SegmentationLayout,
    classification_layout,
    segmentation_layout,
)

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_segmentation_folder"]

CLASSIFICATION_IMAGE_SIZE = 28   # the course CNN's flatten layer assumes 28 x 28 inputs
SPLITS = ("train", "val", "test")
_Layout = TypeVar("_Layout", ClassificationLayout, SegmentationLayout)


def _layout(read: Callable[[str | Path], _Layout], root: str | Path) -> _Layout:
    """The folder's layout, or the layout checker's message as a `DataError`."""
    try:
        return read(root)
    except LayoutError as e:
        raise DataError(str(e)) from e


def _read_rgb(path: Path, size: int) -> np.ndarray | None:
    """(size, size, 3) uint8, or None if the file cannot be decoded."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # PIL reports corrupt files as OSError, some bad headers as SyntaxError or ValueError.
        return None


def _read_mask(path: Path, size: int) -> np.ndarray | None:
    """(size, size) bool foreground (any non-zero value), or None if the file cannot be decoded."""
    try:
        with Image.open(path) as im:
            # Test raw values, not a grey conversion: a pure red (1, 0, 0) label would round to 0 in "L".
            if im.mode == "RGBA":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    fg = arr > 0 if arr.ndim == 2 else (arr > 0).any(axis=2)
    small = Image.fromarray(fg.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(small) > 0


def _to_nchw(images: list[np.ndarray]) -> np.ndarray:
    """list of (H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def load_image_folder(root: str | Path, size: int = CLASSIFICATION_IMAGE_SIZE) -> ClassificationData:
    """Load `ROOT/{train,valid,test}/<class name>/*.{png,jpg,jpeg}` (the public card set's layout).

    Classes are the sorted folder names of `train`; `valid` (or `val`) and `test` must have the same
    set. Images are converted to RGB and resized to size x size. A file that cannot be decoded is
    skipped and its path recorded in `skipped`; other files (not png/jpg/jpeg, hidden) are ignored.

    Raises:
      DataError, naming the path: ROOT missing or not a directory; a split folder missing; a split
      without class folders; fewer than two classes; a class folder without images, or with only
      unreadable ones; class sets that differ between splits; a folder that cannot be listed.
    Returns:
      `ClassificationData` with (N, 3, size, size) standardised images and (N,) int64 labels.
    """
    check_int("size", size, 1)
    layout = _layout(classification_layout, root)
    skipped: list[str] = []
    arrays = {split: _decode_classes(layout.files[split], layout.classes, size, skipped) for split in SPLITS}
    (tr, va, te), mean, std = standardise(arrays["train"][0], arrays["val"][0], arrays["test"][0])
    return ClassificationData(
        train_x=tr, train_y=torch.from_numpy(arrays["train"][1]),
        val_x=va, val_y=torch.from_numpy(arrays["val"][1]),
        test_x=te, test_y=torch.from_numpy(arrays["test"][1]),
        class_names=layout.classes, skipped=tuple(skipped), mean=mean, std=std, root=str(layout.root),
    )


def _decode_classes(files: dict[str, list[Path]], classes: tuple[str, ...], size: int,
                    skipped: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One split: (N, 3, size, size) images in [0, 1] and their (N,) labels; undecodable files go to `skipped`.
    A class folder none of whose files decode is an error: the class would silently vanish from the split."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        decoded = [(f, _read_rgb(f, size)) for f in files[name]]
        skipped += [str(f) for f, arr in decoded if arr is None]
        readable = [arr for _, arr in decoded if arr is not None]
        if not readable:
            raise DataError(f"class folder {files[name][0].parent}: none of its {len(decoded)} image file(s) "
                            "could be read")
        images += readable
        labels += [label] * len(readable)
    return _to_nchw(images), np.asarray(labels, dtype=np.int64)


def load_segmentation_folder(root: str | Path, size: int = 64) -> SegmentationData:
    """Load `ROOT/{train,val,test}/{images,masks}/` with one mask per image, matched by file stem.

    A mask pixel is foreground when its value is > 0 (in any channel). Images are converted to RGB
    and resized to size x size (bilinear), masks resized with nearest neighbour so they stay binary.
    A pair where either file cannot be decoded is skipped and the unreadable path recorded in
    `skipped`. `valid` is accepted as the name of the `val` split.

    Raises:
      DataError, naming the path: ROOT missing; a split, images or masks folder missing; a mask
      without an image or an image without a mask (naming the stem); a split with no pairs, or
      none readable; a folder that cannot be listed.
    Returns:
      `SegmentationData` with (N, 3, size, size) standardised images, (N, 1, size, size) masks.
    """
    check_int("size", size, 1)
    layout = _layout(segmentation_layout, root)
    skipped: list[str] = []
    arrays = {split: _decode_pairs(layout.splits[split], layout.pairs[split], size, skipped) for split in SPLITS}
    (tr, va, te), mean, std = standardise(arrays["train"][0], arrays["val"][0], arrays["test"][0])
    return SegmentationData(
        train_x=tr, train_y=torch.from_numpy(arrays["train"][1]),
        val_x=va, val_y=torch.from_numpy(arrays["val"][1]),
        test_x=te, test_y=torch.from_numpy(arrays["test"][1]),
        skipped=tuple(skipped), mean=mean, std=std, root=str(layout.root),
    )


def _decode_pairs(split: Path, pairs: list[tuple[Path, Path]], size: int,
                  skipped: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One split: (N, 3, size, size) images in [0, 1] and (N, 1, size, size) float masks in {0, 1}. A pair
    with an undecodable file is left out (the file goes to `skipped`); a split with none left is an error."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for image, mask in pairs:
        x, y = _read_rgb(image, size), _read_mask(mask, size)
        skipped += [str(f) for f, arr in ((image, x), (mask, y)) if arr is None]
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    if not xs:
        raise DataError(f"split folder {split}: none of its {len(pairs)} image/mask pairs could be read")
    return _to_nchw(xs), np.stack(ys)[:, None].astype(np.float32)
