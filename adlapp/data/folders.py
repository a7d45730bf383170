"""Load the user's own images from a folder tree into the same tensors the built-in sets produce.

Every file is decoded, converted and resized once, here; after loading there is no per-item PIL
work, everything is a tensor. Unreadable image files are skipped and listed in `skipped` so the UI
can report them (`skipped_summary` words it); a layout problem is a `DataError` whose message names the path
and lists at most a few of the entries it found.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adlapp.data.base import ClassificationData, DataError, SegmentationData, check_int, standardise
from adlapp.folder_layout import capped_list

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_segmentation_folder"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
CLASSIFICATION_IMAGE_SIZE = 28   # the course CNN's flatten layer assumes 28 x 28 inputs

# The public card set names its validation split "valid"; segmentation sets usually say "val".
# Either spelling is accepted for both, the first one found wins.
_VAL_NAMES: tuple[str, ...] = ("valid", "val")


@contextmanager
def _readable(root: str | Path) -> Iterator[None]:
    """Turn an OS error met while scanning the folder tree into a `DataError` naming the path.

    Image decoding errors never get here (`_read_rgb`/`_read_mask` skip those files); what does is a folder
    that cannot be listed (permissions) or a path the OS rejects outright (a name too long), which would
    otherwise surface as a traceback instead of a one-line message.
    """
    try:
        yield
    except OSError as e:
        # Name the entry the OS refused when it is not the folder itself (a subfolder without permission).
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(root) else ""
        raise DataError(f"data folder {root} cannot be read: {e.strerror or e}{where}") from e


def _root(root: str | Path) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"data folder {path} does not exist")
    if not path.is_dir():
        raise DataError(f"data folder {path} is not a directory")
    return path


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_dirs(root: Path, val_first: str) -> dict[str, Path]:
    """{"train", "val", "test"} -> split folders; a missing one is an error listing what exists."""
    val_names = (val_first,) + tuple(n for n in _VAL_NAMES if n != val_first)
    wanted = {"train": ("train",), "val": val_names, "test": ("test",)}
    found: dict[str, Path] = {}
    for split, names in wanted.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
        else:
            present = capped_list(p.name for p in _visible_dirs(root))
            raise DataError(f"data folder {root} has no '{names[0]}' split folder "
                            f"(expected train/{val_first}/test; found: {present})")
    return found


def _image_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


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
    with _readable(root):
        return _load_image_folder(_root(root), size)


def _load_image_folder(root: Path, size: int) -> ClassificationData:
    splits = _split_dirs(root, "valid")
    class_dirs: dict[str, dict[str, Path]] = {}
    for split, path in splits.items():
        dirs = _visible_dirs(path)
        if not dirs:
            raise DataError(f"split folder {path} has no class folders "
                            f"(expected {path}/<class name>/*.png)")
        class_dirs[split] = {d.name: d for d in dirs}
    classes = tuple(sorted(class_dirs["train"]))
    if len(classes) < 2:
        # One class trains to accuracy 1.0 without learning anything; refuse it rather than report that.
        raise DataError(f"split folder {splits['train']} has only one class folder ({classes[0]}); "
                        "classification needs at least two classes")
    for split in ("val", "test"):
        have = set(class_dirs[split])
        missing, extra = sorted(set(classes) - have), sorted(have - set(classes))
        if missing or extra:
            parts = [f"{what} {capped_list(names)}"
                     for what, names in (("missing", missing), ("extra", extra)) if names]
            raise DataError(f"split folder {splits[split]} has different classes from "
                            f"{splits['train']}: " + "; ".join(parts))

    skipped: list[str] = []
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        images: list[np.ndarray] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            folder = class_dirs[split][name]
            files = _image_files(folder)
            if not files:
                raise DataError(f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
            n_before = len(images)
            for f in files:
                arr = _read_rgb(f, size)
                if arr is None:
                    skipped.append(str(f))
                    continue
                images.append(arr)
                labels.append(label)
            if len(images) == n_before:
                raise DataError(f"class folder {folder}: none of its {len(files)} image file(s) "
                                "could be read")
        arrays[split] = (_to_nchw(images), np.asarray(labels, dtype=np.int64))

    (tr, va, te), mean, std = standardise(arrays["train"][0], arrays["val"][0], arrays["test"][0])
    return ClassificationData(
        train_x=tr, train_y=torch.from_numpy(arrays["train"][1]),
        val_x=va, val_y=torch.from_numpy(arrays["val"][1]),
        test_x=te, test_y=torch.from_numpy(arrays["test"][1]),
        class_names=classes, skipped=tuple(skipped), mean=mean, std=std, root=str(root),
    )


def _stems(folder: Path) -> dict[str, Path]:
    """stem -> file for the images in `folder`; two files with one stem are ambiguous, so an error."""
    out: dict[str, Path] = {}
    for f in _image_files(folder):
        if f.stem in out:
            raise DataError(f"{folder} has two files for stem '{f.stem}': "
                            f"{out[f.stem].name} and {f.name}")
        out[f.stem] = f
    return out


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
    with _readable(root):
        return _load_segmentation_folder(_root(root), size)


def _load_segmentation_folder(root: Path, size: int) -> SegmentationData:
    splits = _split_dirs(root, "val")
    skipped: list[str] = []
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, path in splits.items():
        sub = {}
        for kind in ("images", "masks"):
            sub[kind] = path / kind
            if not sub[kind].is_dir():
                present = capped_list(p.name for p in _visible_dirs(path))
                raise DataError(f"split folder {path} has no '{kind}' folder (found: {present})")
        images, masks = _stems(sub["images"]), _stems(sub["masks"])
        for stem in sorted(set(masks) - set(images)):
            raise DataError(f"mask {masks[stem]} has no image with stem '{stem}' in {sub['images']}")
        for stem in sorted(set(images) - set(masks)):
            raise DataError(f"image {images[stem]} has no mask with stem '{stem}' in {sub['masks']}")
        if not images:
            raise DataError(f"split folder {path} has no images in {sub['images']}")
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for stem in sorted(images):
            x, y = _read_rgb(images[stem], size), _read_mask(masks[stem], size)
            if x is None:
                skipped.append(str(images[stem]))
            if y is None:
                skipped.append(str(masks[stem]))
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if not xs:
            raise DataError(f"split folder {path}: none of its {len(images)} image/mask pairs "
                            "could be read")
        arrays[split] = (_to_nchw(xs), np.stack(ys)[:, None].astype(np.float32))

    (tr, va, te), mean, std = standardise(arrays["train"][0], arrays["val"][0], arrays["test"][0])
    return SegmentationData(
        train_x=tr, train_y=torch.from_numpy(arrays["train"][1]),
        val_x=va, val_y=torch.from_numpy(arrays["val"][1]),
        test_x=te, test_y=torch.from_numpy(arrays["test"][1]),
        skipped=tuple(skipped), mean=mean, std=std, root=str(root),
    )
