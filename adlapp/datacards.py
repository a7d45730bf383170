"""Data cards: what each experiment's built-in data are, and the baselines a trained model has to beat.

A card is written by `scripts/make_datacards.py` (which uses torch, through `adlapp.data.describe`) into
cached_runs/datacards/{experiment}.json, next to a {experiment}.png strip of training samples. This module
only reads them, so the viewer pages can say what the data are without importing torch.

A missing or unreadable card is not an error for the app: `load` returns None and the page shows no card.
`load(..., strict=True)` raises `DataCardError` instead, one line naming the file (the script and tests use it).

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from adlapp.library import cached_runs_dir

__all__ = ["DataCard", "DataCardError", "config_hash", "load", "default_folder"]

_EXPERIMENT = re.compile(r"[a-z0-9_-]{1,40}")     # a card name is never a path
_SPLITS = ("train", "val", "test")
_MAX_BYTES = 1 << 20                               # a card is a few KB; refuse to parse anything huge


class DataCardError(ValueError):
    """A data card file cannot be read; the message is one line naming the file."""


def config_hash(data_cfg: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the canonical JSON of a data config dict (`asdict(DataConfig)`)."""
    text = json.dumps(data_cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_folder() -> Path:
    """cached_runs/datacards/ (follows $ADLAPP_CACHED_RUNS, like the bundles)."""
    return cached_runs_dir() / "datacards"


@dataclass(frozen=True)
class DataCard:
    """One experiment's data card, as `adlapp.data.describe` computed it from the generated data.

    `splits`: images per split; `class_counts`: per split, images per class index (classification only);
    `foreground_fraction`: per split, the fraction of mask pixels that are foreground (segmentation only).
    `baselines`: per evaluated split ("val", "test"): {"chance", "majority"} accuracies (classification) or
    {"all_background": {"pixel_acc", "f1"}} (segmentation). `parameters`: trainable parameters per variant.
    """
    experiment: str
    name: str                                     # the data config's name ("cards", or a folder)
    label: str                                    # what the samples are, for a sentence ("cards")
    generated: bool
    source: str
    stands_in_for: str | None
    task: str
    image_shape: tuple[int, ...]                  # (C, H, W)
    splits: dict[str, int]
    num_classes: int | None
    majority_class: int | None                    # the most frequent training class (lowest index on ties)
    class_counts: dict[str, list[int]] | None
    foreground_fraction: dict[str, float] | None
    baselines: dict[str, dict[str, Any]]
    config: dict[str, Any]
    config_hash: str
    parameters: dict[str, int]
    sample_png: bytes | None = None

    @property
    def chance(self) -> float | None:
        """Accuracy of guessing uniformly at random: 1 / num_classes (None for segmentation)."""
        return 1.0 / self.num_classes if self.num_classes else None

    def baseline(self, metric_key: str, split: str = "test") -> float | None:
        """The trivial predictor's value of a metric (an `adlapp.metrics` key), None where there is none.

        "test_acc"/"val_acc" -> always predicting the most frequent training class; "test_pixel_acc",
        "val_pixel_acc", "test_f1", "val_f1" -> predicting background everywhere. A key's own split wins;
        `split` is used only for a bare stat name ("acc", "pixel_acc", "f1"). Scores of the best-validation
        weights ("test_acc_best", row "best_acc") share their split's baseline: the trivial predictor has no
        epochs. Losses, timings and metrics of the other task have no baseline here (None).
        """
        key = metric_key.removesuffix("_best").removeprefix("best_")
        head, _, stat = key.partition("_")
        if head in _SPLITS and stat:
            split = head
        else:
            stat = key
        row = self.baselines.get(split)
        if not isinstance(row, dict):
            return None
        if self.task == "classification" and stat == "acc":
            value = row.get("majority")
        elif self.task == "segmentation" and stat in ("pixel_acc", "f1"):
            value = (row.get("all_background") or {}).get(stat)
        else:
            return None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def matches(self, data_cfg: Any) -> bool:
        """True when this card describes these data: the same data config hash.

        Takes a data config dict (`config_to_dict(cfg)["data"]`), a whole run config dict (its "data" is used)
        or a `DataConfig`."""
        if is_dataclass(data_cfg) and not isinstance(data_cfg, type):
            data_cfg = asdict(data_cfg)
        if isinstance(data_cfg, dict) and isinstance(data_cfg.get("data"), dict):
            data_cfg = data_cfg["data"]
        if not isinstance(data_cfg, dict):
            return False
        try:
            return config_hash(data_cfg) == self.config_hash
        except (TypeError, ValueError):           # not JSON-able: not a config this card could describe
            return False

    def summary_line(self) -> str:
        """One short plain sentence for the UI, e.g. "Data: 53 classes of generated 28×28 cards (1,060 train /
        265 val / 265 test), made in code — not the public card set the course report used."."""
        c, h, w = (list(self.image_shape) + [0, 0, 0])[:3]
        size = f"{h}×{w}"
        counts = " / ".join(f"{self.splits.get(s, 0):,} {s}" for s in _SPLITS)
        if self.task == "classification":
            what = (f"{self.num_classes} classes of generated {size} {self.label}" if self.generated
                    else f"{self.num_classes} classes of {size} images from {self.label}")
        else:
            what = (f"generated {size} {self.label} with masks" if self.generated
                    else f"{size} images with masks from {self.label}")
            fg = (self.foreground_fraction or {}).get("train")
            if isinstance(fg, (int, float)):
                counts += f"; {100 * fg:.1f}% foreground pixels in train"
        line = f"Data: {what} ({counts})"
        if self.generated:
            line += ", made in code"
            if self.stands_in_for:
                line += f" — not {self.stands_in_for}"
        return line + "."


def load(experiment: str, folder: Path | None = None, strict: bool = False) -> DataCard | None:
    """The data card of `experiment` from `folder` (default: `default_folder()`), with its sample strip.

    Returns None when there is no card, or when the card is unreadable (not JSON, wrong fields, another
    experiment's card): the app shows no card rather than failing. With `strict=True` an unreadable card
    raises `DataCardError` (one line naming the file); a missing one still returns None. A missing or
    unreadable PNG only leaves `sample_png` None.
    """
    if not isinstance(experiment, str) or not _EXPERIMENT.fullmatch(experiment):
        if strict:
            raise DataCardError(f"data card {str(experiment)[:40]!r}: not an experiment name")
        return None
    folder = Path(folder) if folder is not None else default_folder()
    path = folder / f"{experiment}.json"
    try:
        if not path.is_file():
            return None
        stat = path.stat()
        if stat.st_size > _MAX_BYTES:
            raise DataCardError(f"{path}: {stat.st_size:,} bytes, too large for a data card")
        png = path.with_suffix(".png")
        png_stamp = (png.stat().st_mtime_ns, png.stat().st_size) if png.is_file() else None
        card = _cached(str(path), experiment, (stat.st_mtime_ns, stat.st_size), png_stamp)
    except DataCardError:
        if strict:
            raise
        return None
    except (OSError, UnicodeDecodeError, ValueError) as e:     # json.JSONDecodeError is a ValueError
        if strict:
            raise DataCardError(f"{path}: not a readable data card ({_one_line(e)})") from e
        return None
    return card


@lru_cache(maxsize=16)
def _cached(path: str, experiment: str, stamp: tuple[int, int], png_stamp: tuple[int, int] | None) -> DataCard:
    """The parsed card, read once per version of its files (`stamp`s: mtime and size): pages ask for a card on
    every rerun, and the live view reruns every second."""
    p = Path(path)
    return _parse(p, json.loads(p.read_text(encoding="utf-8")), experiment)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def _parse(path: Path, d: Any, experiment: str) -> DataCard:
    def bad(why: str) -> DataCardError:
        return DataCardError(f"{path}: not a valid data card ({why})")

    def need(key: str, kinds: type | tuple[type, ...]) -> Any:
        value = d.get(key)
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
            raise bad(f"field {key!r} missing or of the wrong type")
        return value

    if not isinstance(d, dict):
        raise bad(f"expected a JSON object, got {type(d).__name__}")
    if need("experiment", str) != experiment:
        raise bad(f"it is the card of {d['experiment'][:40]!r}, not of {experiment!r}")
    task = need("task", str)
    if task not in ("classification", "segmentation"):
        raise bad(f"task {task[:40]!r} is neither classification nor segmentation")
    shape = need("image_shape", list)
    splits = need("splits", dict)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
        raise bad("image_shape must be whole numbers")
    if set(splits) != set(_SPLITS) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in splits.values()):
        raise bad("splits must give train, val and test sizes")
    baselines = need("baselines", dict)
    if not all(isinstance(v, dict) for v in baselines.values()):
        raise bad("baselines must be objects per split")
    params = need("parameters", dict)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in params.values()):
        raise bad("parameters must be whole numbers")
    classification = task == "classification"
    stands_in_for = d.get("stands_in_for")
    png = path.with_suffix(".png")
    try:
        sample = png.read_bytes() if png.is_file() and png.stat().st_size <= _MAX_BYTES else None
    except OSError:
        sample = None
    return DataCard(
        experiment=experiment, name=need("name", str), label=need("label", str), generated=need("generated", bool),
        source=need("source", str), stands_in_for=stands_in_for if isinstance(stands_in_for, str) else None,
        task=task, image_shape=tuple(shape), splits=dict(splits),
        num_classes=need("num_classes", int) if classification else None,
        majority_class=need("majority_class", int) if classification else None,
        class_counts=need("class_counts", dict) if classification else None,
        foreground_fraction=None if classification else need("foreground_fraction", dict),
        baselines=baselines, config=need("config", dict), config_hash=need("config_hash", str),
        parameters=dict(params), sample_png=sample,
    )
