"""The metrics vocabulary: every number a run records, defined once.

A run stores two kinds of rows (see adlapp.store): per-epoch rows (`train_loss`, `val_loss`, `val_acc`,
`val_f1`, `val_pixel_acc`, `seconds`) and test rows scored after chosen epochs (`acc`, `loss`, `f1`,
`pixel_acc`). A `Metric` names one of them with its split, label, unit and direction, and says in which
views it appears. Charts, tables, the Compare page, the Home reading and the CLI all look metrics up here,
so "higher is better" and "validation F1" are written exactly once.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "metric", "by_row", "metrics_for", "curve_metrics", "figure_metrics", "test_metrics",
           "compare_metrics", "label"]


@dataclass(frozen=True)
class Metric:
    """One recorded number.

    key: unique and readable, `{split}_{stat}` ("test_acc", "val_f1", "train_loss"; "seconds").
    row: the name stored in the run store's rows ("acc" in test rows, "val_acc" in epoch rows).
    split: "train", "val", "test" or "time"; source: "epoch" (per-epoch rows) or "test" (test rows).
    views: where it is shown: "curve" (live curves), "figure" (the report's Figure 1 panels), "table" (test
    tables), "compare" (Compare page and `compare` CLI).
    """
    key: str
    row: str
    split: str
    label: str
    unit: str
    higher_is_better: bool
    experiments: tuple[str, ...]
    views: frozenset[str]

    @property
    def source(self) -> str:
        return "test" if self.split == "test" else "epoch"

    @property
    def curve_key(self) -> str:
        """The per-epoch metric that tracks this one during training (test_f1 -> val_f1)."""
        return self.key.replace("test_", "val_", 1) if self.split == "test" else self.key


def _m(key: str, row: str, split: str, label: str, unit: str, higher: bool, experiments: str,
       views: str) -> Metric:
    return Metric(key, row, split, label, unit, higher, tuple(experiments.split()), frozenset(views.split()))


_BOTH = "cnn unet"
METRICS: dict[str, Metric] = {m.key: m for m in (
    _m("test_acc", "acc", "test", "test accuracy", "fraction", True, "cnn", "table compare"),
    _m("test_pixel_acc", "pixel_acc", "test", "test pixel accuracy", "fraction", True, "unet", "table compare"),
    _m("test_f1", "f1", "test", "test F1", "fraction", True, "unet", "table compare"),
    _m("test_loss", "loss", "test", "test loss", "", False, _BOTH, "table compare"),
    _m("train_loss", "train_loss", "train", "training loss", "", False, _BOTH, "curve figure"),
    _m("val_loss", "val_loss", "val", "validation loss", "", False, _BOTH, "curve compare"),
    _m("val_acc", "val_acc", "val", "validation accuracy", "fraction", True, "cnn", "curve figure compare"),
    _m("val_f1", "val_f1", "val", "validation F1", "fraction", True, "unet", "curve figure compare"),
    _m("val_pixel_acc", "val_pixel_acc", "val", "validation pixel accuracy", "fraction", True, "unet",
       "compare"),
    _m("seconds", "seconds", "time", "seconds per epoch", "s", False, _BOTH, ""),
)}
_BY_ROW = {(m.source, m.row): m for m in METRICS.values()}


def metric(key: str) -> Metric:
    """The metric with this key ("test_acc"); a KeyError lists the known keys."""
    try:
        return METRICS[key]
    except KeyError:
        raise KeyError(f"metric {key!r}: unknown; known metrics are {', '.join(METRICS)}") from None


def by_row(source: str, row: str) -> Metric | None:
    """The metric stored as `row` in the epoch or test rows, or None for a name this project never writes."""
    return _BY_ROW.get((source, row))


def metrics_for(experiment: str, view: str | None = None) -> tuple[Metric, ...]:
    """The experiment's metrics (in registry order), optionally only those shown in `view`."""
    return tuple(m for m in METRICS.values()
                 if experiment in m.experiments and (view is None or view in m.views))


def curve_metrics(experiment: str) -> tuple[str, ...]:
    """Epoch-row names drawn as live curves."""
    return tuple(m.row for m in metrics_for(experiment, "curve"))


def figure_metrics(experiment: str) -> tuple[str, ...]:
    """Epoch-row names of the report's figure panels (training loss and the validation score)."""
    return tuple(m.row for m in metrics_for(experiment, "figure"))


def test_metrics(experiment: str) -> tuple[str, ...]:
    """Test-row names shown in test tables."""
    return tuple(m.row for m in metrics_for(experiment, "table"))


def compare_metrics(experiment: str) -> tuple[Metric, ...]:
    return metrics_for(experiment, "compare")


def label(source: str, row: str) -> str:
    """Human label of a stored row name ("val_f1" -> "validation F1"); unknown names are shown as they are."""
    m = by_row(source, row)
    return m.label if m else row
