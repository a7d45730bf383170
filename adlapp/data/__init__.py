"""Offline data for the lab: built-in procedural sets and the user's own folders, as tensors.

`load_data(cfg, task)` is the one entry point the trainer needs: "cards" and "vessels" are generated
(nothing is ever downloaded), any other name is a folder path. Results are cached per process, keyed
on the `DataConfig` fields that matter and the task, so runs over many seeds build the data once.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from adlapp.config import BUILTIN_DATASETS, EXPERIMENT_INFO, DataConfig
from adlapp.data.base import ClassificationData, DataError, SegmentationData, skipped_summary
from adlapp.data.cards import make_cards
from adlapp.data.folders import load_image_folder, load_segmentation_folder
from adlapp.data.vessels import make_vessels

__all__ = [
    "TASKS", "builtin_task", "DataError", "ClassificationData", "SegmentationData", "load_data",
    "describe_data", "clear_cache", "make_cards", "make_vessels", "load_image_folder",
    "load_segmentation_folder", "skipped_summary",
]

TASKS: tuple[str, ...] = tuple(dict.fromkeys(info.task for info in EXPERIMENT_INFO.values()))


def builtin_task(name: str) -> str | None:
    """The task of a built-in data set ("cards" -> "classification"), None for any other name (a folder)."""
    experiment = BUILTIN_DATASETS.get(name)
    return EXPERIMENT_INFO[experiment].task if experiment else None


def load_data(cfg: DataConfig, task: str) -> ClassificationData | SegmentationData:
    """The data set `cfg` describes, for `task` ("classification" or "segmentation").

    "cards" -> `make_cards(cfg.train_per_class, seed=cfg.seed)`; "vessels" ->
    `make_vessels(cfg.n_train, size=cfg.image_size, seed=cfg.seed)`; anything else is a folder
    loaded with `load_image_folder` or `load_segmentation_folder(size=cfg.image_size)` by task.
    The same (cfg, task) returns the same object for the life of the process, so its tensors are
    shared: treat them as read-only. A folder whose files change after the first load is not
    re-read (call `clear_cache()` to force it).
    """
    if task not in TASKS:
        raise DataError(f"task={task!r}: must be one of {', '.join(TASKS)}")
    name = cfg.name
    own_task = builtin_task(name)
    if own_task is not None and own_task != task:
        raise DataError(f"dataset {name!r} is a {own_task} set; it cannot be used for {task}")
    # Key only on the fields that shape this data set: a U-Net config and a CNN config that differ in
    # unrelated fields (image_size for cards, say) then share one copy.
    if name == "cards":
        return _load(("cards", cfg.train_per_class, cfg.seed))
    if name == "vessels":
        return _load(("vessels", cfg.n_train, cfg.image_size, cfg.seed))
    path = Path(name).expanduser()
    try:
        exists = path.exists()
    except OSError as e:   # e.g. a name too long for the OS: still a bad data set name, not a crash
        raise DataError(f"dataset {name!r}: not a usable path ({e.strerror or e})") from e
    if not exists:
        known = ", ".join(BUILTIN_DATASETS)
        raise DataError(f"dataset {name!r}: not a built-in set ({known}) and no folder at {path}")
    size = cfg.image_size if task == "segmentation" else 0
    return _load((task, str(path.resolve()), size))


@lru_cache(maxsize=8)
def _load(key: tuple) -> ClassificationData | SegmentationData:
    kind, *args = key
    if kind == "cards":
        return make_cards(train_per_class=args[0], seed=args[1])
    if kind == "vessels":
        return make_vessels(n_train=args[0], size=args[1], seed=args[2])
    if kind == "classification":
        return load_image_folder(args[0])
    return load_segmentation_folder(args[0], size=args[1])


def clear_cache() -> None:
    """Forget every data set `load_data` has built (e.g. after the files of a folder changed)."""
    _load.cache_clear()


def describe_data(cfg: DataConfig, task: str) -> dict[str, Any]:
    """Summary for the UI: split sizes, image shape, skipped-file count, and class count
    (classification) or foreground fraction over all masks (segmentation). Uses the `load_data` cache.
    """
    data = load_data(cfg, task)
    out: dict[str, Any] = {
        "name": cfg.name,
        "task": task,
        "builtin": cfg.name in BUILTIN_DATASETS,
        "train": len(data.train_x), "val": len(data.val_x), "test": len(data.test_x),
        "image_shape": tuple(data.train_x.shape[1:]),
        "skipped": len(data.skipped),
    }
    if isinstance(data, ClassificationData):
        out["num_classes"] = data.num_classes
    else:
        n_fg = sum(float(y.sum()) for y in (data.train_y, data.val_y, data.test_y))
        n_px = sum(y.numel() for y in (data.train_y, data.val_y, data.test_y))
        out["foreground_fraction"] = n_fg / n_px
    return out
