"""The layout of a user's data folder, checked once, without decoding an image and without torch.

Two layouts are understood (`val` and `valid` are both accepted as the validation split's name):

  classification: ROOT/{train,valid,test}/<class name>/*.png|jpg|jpeg, at least two classes, the same in
                  every split, every class folder with at least one image file;
  segmentation:   ROOT/{train,val,test}/{images,masks}/*.png|jpg|jpeg, one mask per image, matched by stem.

`classification_layout` and `segmentation_layout` return the files to read, or raise `LayoutError` naming
the offending path and listing at most a few of the entries found there. The loaders in
`adlapp.data.folders` read these files (decoding stays there); the app and the CLI call
`check_dataset_folder` before anything is queued, so a bad folder is a message, never a failed run.

This module lives outside the `adlapp.data` package on purpose: importing anything under `adlapp.data` runs
that package's `__init__`, which imports torch, and the pages that check a folder must stay torch-free.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adlapp.config import EXPERIMENT_INFO

__all__ = ["LISTING_LIMIT", "IMAGE_EXTENSIONS", "VAL_NAMES", "LayoutError", "ClassificationLayout",
           "SegmentationLayout", "capped_list", "classification_layout", "segmentation_layout",
           "check_dataset_folder"]

# Enough names to recognise a folder, few enough that pointing the loader at /etc (70 entries) or /tmp gives a
# one-line message instead of a wall of names.
LISTING_LIMIT = 5
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
# The public card set names its validation split "valid"; segmentation sets usually say "val". Either
# spelling is accepted for both, the layout's usual one first.
VAL_NAMES: tuple[str, ...] = ("valid", "val")
SPLITS: tuple[str, ...] = ("train", "val", "test")


class LayoutError(ValueError):
    """The folder does not have the expected layout; the message names the path (lower case, no period)."""


@dataclass(frozen=True)
class ClassificationLayout:
    root: Path                                   # as given, with ~ expanded
    splits: dict[str, Path]                      # "train" | "val" | "test" -> split folder
    classes: tuple[str, ...]                     # sorted class folder names
    files: dict[str, dict[str, list[Path]]]      # split -> class -> sorted image files (never empty)


@dataclass(frozen=True)
class SegmentationLayout:
    root: Path
    splits: dict[str, Path]
    pairs: dict[str, list[tuple[Path, Path]]]    # split -> (image, mask) sorted by stem (never empty)


def capped_list(names: Iterable[str], limit: int = LISTING_LIMIT, empty: str = "nothing") -> str:
    """'a, b, c' for a short list; 'a, b, c, d, e and 35 more' past `limit` names; `empty` for none.

    The names are listed in the order given (callers sort them), so the message is stable.
    """
    names = list(names)
    if not names:
        return empty
    limit = max(1, limit)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def classification_layout(root: str | os.PathLike) -> ClassificationLayout:
    """The image files of a classification folder, by split and class; `LayoutError` when the layout is wrong."""
    with _scanning(root) as path:
        splits = _split_dirs(path, val_first="valid")
        class_dirs = {split: _class_dirs(folder) for split, folder in splits.items()}
        classes = _classes(splits, class_dirs)
        files = {split: {name: _class_images(class_dirs[split][name]) for name in classes} for split in SPLITS}
        return ClassificationLayout(path, splits, classes, files)


def segmentation_layout(root: str | os.PathLike) -> SegmentationLayout:
    """The (image, mask) pairs of a segmentation folder, by split; `LayoutError` when the layout is wrong."""
    with _scanning(root) as path:
        splits = _split_dirs(path, val_first="val")
        return SegmentationLayout(path, splits, {split: _pairs(folder) for split, folder in splits.items()})


def check_dataset_folder(path: str | os.PathLike, experiment: str) -> str | None:
    """None when the folder has the layout the experiment's task needs, else one sentence saying what is wrong."""
    task = EXPERIMENT_INFO[experiment].task
    try:
        (classification_layout if task == "classification" else segmentation_layout)(path)
    except LayoutError as e:
        return _sentence(str(e))
    return None


# -- scanning ----------------------------------------------------------------------------------------------
@contextmanager
def _scanning(root: str | os.PathLike) -> Iterator[Path]:
    """The root with ~ expanded, checked to be a folder; an OS error met while listing the tree (no permission,
    a name the OS rejects as too long) becomes a `LayoutError` naming the path instead of a traceback."""
    path = Path(root).expanduser()
    try:
        if not path.exists():
            raise LayoutError(f"data folder {path} does not exist")
        if not path.is_dir():
            raise LayoutError(f"data folder {path} is not a directory")
        yield path
    except OSError as e:
        # Name the entry the OS refused when it is not the folder itself (a subfolder without permission).
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(path) else ""
        raise LayoutError(f"data folder {path} cannot be read: {e.strerror or e}{where}") from e


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _split_dirs(root: Path, val_first: str) -> dict[str, Path]:
    """{"train", "val", "test"} -> split folders; a missing one is an error listing what exists."""
    val_names = (val_first,) + tuple(n for n in VAL_NAMES if n != val_first)
    wanted = {"train": ("train",), "val": val_names, "test": ("test",)}
    found: dict[str, Path] = {}
    for split, names in wanted.items():
        folder = next((root / n for n in names if (root / n).is_dir()), None)
        if folder is None:
            present = capped_list(p.name for p in _visible_dirs(root))
            raise LayoutError(f"data folder {root} has no '{names[0]}' folder "
                              f"(expected train/{val_first}/test; found: {present})")
        found[split] = folder
    return found


# -- classification ----------------------------------------------------------------------------------------
def _class_dirs(split: Path) -> dict[str, Path]:
    dirs = {d.name: d for d in _visible_dirs(split)}
    if not dirs:
        raise LayoutError(f"split folder {split} has no class folders (expected {split}/<class name>/*.png)")
    return dirs


def _classes(splits: dict[str, Path], class_dirs: dict[str, dict[str, Path]]) -> tuple[str, ...]:
    """The train split's classes; at least two, and exactly the same in the other splits."""
    classes = tuple(sorted(class_dirs["train"]))
    if len(classes) < 2:
        # One class trains to accuracy 1.0 without learning anything; refuse it rather than report that.
        raise LayoutError(f"split folder {splits['train']} has only one class folder ({classes[0]}); "
                          "classification needs at least two classes")
    for split in ("val", "test"):
        have = set(class_dirs[split])
        missing, extra = sorted(set(classes) - have), sorted(have - set(classes))
        if missing or extra:
            parts = [f"{what} {capped_list(names)}" for what, names in (("missing", missing), ("extra", extra))
                     if names]
            raise LayoutError(f"split folder {splits[split]} has different classes from {splits['train']}: "
                              + "; ".join(parts))
    return classes


def _class_images(folder: Path) -> list[Path]:
    files = _image_files(folder)
    if not files:
        raise LayoutError(f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


# -- segmentation ------------------------------------------------------------------------------------------
def _pairs(split: Path) -> list[tuple[Path, Path]]:
    """(image, mask) by stem; an image without a mask, a mask without an image or no image at all is an error."""
    for kind in ("images", "masks"):
        if not (split / kind).is_dir():
            present = capped_list(p.name for p in _visible_dirs(split))
            raise LayoutError(f"split folder {split} has no '{kind}' folder "
                              f"(expected {split}/images and {split}/masks; found: {present})")
    images, masks = _stems(split / "images"), _stems(split / "masks")
    for stem in sorted(set(masks) - set(images)):
        raise LayoutError(f"mask {masks[stem]} has no image with stem '{stem}' in {split / 'images'}")
    for stem in sorted(set(images) - set(masks)):
        raise LayoutError(f"image {images[stem]} has no mask with stem '{stem}' in {split / 'masks'}")
    if not images:
        raise LayoutError(f"split folder {split} has no images in {split / 'images'}")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def _stems(folder: Path) -> dict[str, Path]:
    """stem -> file for the images in `folder`; two files with one stem are ambiguous, so an error."""
    out: dict[str, Path] = {}
    for f in _image_files(folder):
        if f.stem in out:
            raise LayoutError(f"{folder} has two files for stem '{f.stem}': {out[f.stem].name} and {f.name}")
        out[f.stem] = f
    return out


def _sentence(message: str) -> str:
    """A loader message ("data folder X does not exist") as a sentence for a page: capitalised, with a period."""
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
