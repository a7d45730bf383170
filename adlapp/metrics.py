"""The metrics vocabulary: every number a run records, defined once.

A run stores two kinds of rows (see adlapp.store): per-epoch rows (`train_loss`, `val_loss`, `val_acc`,
`val_f1`, `val_pixel_acc`, `seconds`) and test rows scored after chosen epochs (`acc`, `loss`, `f1`,
`pixel_acc`). Each test epoch E also scores the weights of the epoch <= E with the lowest validation loss
(`best_acc`, `best_loss`, `best_f1`, `best_pixel_acc`, and `best_epoch`, that epoch; see adlapp.train); runs
trained before these existed have no such rows. A `Metric` names one of them with its split, label, unit and
direction, and says in which views it appears. Charts, tables, the Compare page, the Home reading and the CLI
all look metrics up here, so "higher is better" and "validation F1" are written exactly once.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "metric", "by_row", "metrics_for", "curve_metrics", "figure_metrics", "test_metrics",
           "best_metrics", "compare_metrics", "label"]


@dataclass(frozen=True)
class Metric:
    """One recorded number.

    key: unique and readable, `{split}_{stat}` ("test_acc", "val_f1", "train_loss"; "seconds"); a score of
    the best-validation weights adds `_best` ("test_acc_best"), and their epoch is "best_epoch".
    row: the name stored in the run store's rows ("acc" in test rows, "val_acc" in epoch rows).
    split: "train", "val", "test" or "time"; source: "epoch" (per-epoch rows) or "test" (test rows).
    views: where it is shown: "curve" (live curves), "figure" (the report's Figure 1 panels), "table" (test
    tables of the last-epoch scores), "best" (the scores at the best-validation epoch: a table of their own,
    beside the "table" one), "compare" (Compare page and `compare` CLI), "detail" (a per-run detail such as
    `best_epoch`, not a score to tabulate or compare).
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
        """The per-epoch metric that tracks this one during training (test_f1 -> val_f1, test_f1_best -> val_f1;
        best_epoch -> val_loss, the curve whose minimum it is)."""
        if self.key == "best_epoch":
            return "val_loss"
        return self.key.replace("test_", "val_", 1).removesuffix("_best") if self.split == "test" else self.key


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
    # The same test scores for the weights of the epoch with the lowest validation loss so far (adlapp.train).
    _m("test_acc_best", "best_acc", "test", "test accuracy at the best-validation epoch", "fraction", True, "cnn",
       "best compare"),
    _m("test_pixel_acc_best", "best_pixel_acc", "test", "test pixel accuracy at the best-validation epoch",
       "fraction", True, "unet", "best compare"),
    _m("test_f1_best", "best_f1", "test", "test F1 at the best-validation epoch", "fraction", True, "unet",
       "best compare"),
    _m("test_loss_best", "best_loss", "test", "test loss at the best-validation epoch", "", False, _BOTH,
       "best compare"),
    # Which epoch that was (<= the test epoch of its row). Neither direction is better; shown as a detail.
    _m("best_epoch", "best_epoch", "test", "best-validation epoch", "epoch", False, _BOTH, "detail"),
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


def best_metrics(experiment: str) -> tuple[str, ...]:
    """Test-row names of the scores at the best-validation epoch (best_acc, best_loss, ...), for a table of
    their own beside `test_metrics`; `best_epoch` is not among them (a detail, see METRICS["best_epoch"])."""
    return tuple(m.row for m in metrics_for(experiment, "best"))


def compare_metrics(experiment: str) -> tuple[Metric, ...]:
    return metrics_for(experiment, "compare")


def label(source: str, row: str) -> str:
    """Human label of a stored row name ("val_f1" -> "validation F1"); unknown names are shown as they are."""
    m = by_row(source, row)
    return m.label if m else row
