"""Run health: flag runs that finished but did not train, so a group's mean is not read blindly.

The trainer catches one failure itself: a non-finite training loss ends the run "diverged". Two more end with
status "done" and chance-level scores. In cached_runs/cnn-adam.zip, plain-Adam CNN runs reach ~0.45 validation
accuracy and then collapse to chance (test accuracy 5/265 with 53 classes). A CNN at lr=1e6 ends "done" with a
training loss of ~1e30 and chance accuracy. This module reads one run's per-epoch history and names what went
wrong, with the epoch and the numbers.

Rules, on the epochs <= `upto` (a run can be healthy at its 200-epoch budget and collapse by 1000):
- diverged: a training loss, validation loss or validation score that is not finite. The store keeps these
  as NULL, so they read back as NaN; the trainer stops at the first NaN training loss.
- exploded: a training loss above EXPLODE_FACTOR x the first epoch's (when that is finite and > 0), or above
  EXPLODE_LOSS. Both losses trained here are cross-entropies. A model that knows nothing scores ln C on them
  (3.97 for the 53 card classes, 0.69 per pixel), so a loss that far up means the weights blew up, not that
  the run is learning slowly. The absolute ceiling is needed because the first epoch's loss is a mean over
  its batches: at lr=1e6 on the full card data the weights blow up inside epoch 1, whose mean loss is then
  already 8.9e30, and the relative rule alone would call the run steady.
- collapsed: the score learned, then fell back most of the way to chance and stayed there. "Learned": the
  peak covers at least LEARNED_FRACTION of the distance from chance to a perfect score of 1. The criterion is
  relative to the headroom, so it works for chance 0 (segmentation F1 of the all-background predictor) as
  well as for 1/53. "Fell back": every one of the last COLLAPSE_WINDOW epochs is at or below chance +
  COLLAPSE_FRACTION x (peak - chance), i.e. the run lost at least 75 % of what it had learned. A run that
  never learned is not "collapsed"; it is just bad. It is reported "ok", with a detail saying so.
- precedence: diverged > exploded > collapsed. A NaN makes every later number meaningless, and an exploded
  loss usually comes with a collapsed score, which it explains.

Boundaries are inclusive where the rule says "at least" / "at most" and strict for "above", up to
floating-point residue, so a value typed as exactly a threshold lands on the documented side.

`shape_warning` is a separate, group-level check: it warns when per-seed results are visibly non-normal for
a t-test (one collapsed seed among healthy ones, or two clusters).

Pure numpy/pandas/scipy: this module imports neither torch nor streamlit.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps

from adlapp.metrics import label

__all__ = ["Health", "REASONS", "EXPLODE_FACTOR", "EXPLODE_LOSS", "LEARNED_FRACTION", "COLLAPSE_FRACTION",
           "COLLAPSE_WINDOW", "SHAPE_ALPHA", "GAP_FACTOR", "SCORE_BY_EXPERIMENT", "assess", "flag_runs",
           "group_note", "shape_warning"]

REASONS: tuple[str, ...] = ("ok", "diverged", "exploded", "collapsed")

# Shipped runs that end up collapsed reach at most 14x their first training loss (plain Adam: 6.4 -> 84.5). Healthy
# runs stay under 2x. lr=10 and above reach 1e9 and more within 2 epochs.
EXPLODE_FACTOR = 100.0
# No cross-entropy of a working model comes near this (know-nothing: ln 53 = 3.97). Blown-up runs sit at 1e10-1e31.
EXPLODE_LOSS = 1e6
# "Learned": the peak covers >= 10 % of the way from chance to 1. For 53 classes that is a peak >= 0.117, about 12
# binomial standard errors above chance on the 265 validation cards, so noise never passes it.
LEARNED_FRACTION = 0.10
# "Collapsed": the end keeps <= 25 % of what was learned (peak - chance). The shipped collapses end at <= 5 %,
# plain Adam's worst healthy end keeps ~80 % (0.39-0.42 after a 0.48 peak).
COLLAPSE_FRACTION = 0.25
# Epochs at the end that must all lie in the collapsed band (all of them if fewer): one unlucky epoch is not a
# collapse, and the collapsed runs sit at chance for tens to hundreds of epochs.
COLLAPSE_WINDOW = 5
# shape_warning: Grubbs' outlier test at this level, so the warning fires on 1 % of truly normal groups at any n.
SHAPE_ALPHA = 0.01
# shape_warning: a gap between sorted values > 4x the range of the cluster on either side (>= 2 values each)
# means two clusters. On normal samples this fires for 4 % of groups of 4, 2 % of groups of 5, < 1 % from 6 on.
GAP_FACTOR = 4.0

SCORE_BY_EXPERIMENT: dict[str, str] = {"cnn": "val_acc", "unet": "val_f1"}   # the validation score that should rise
_LOSSES = ("train_loss", "val_loss")
_RTOL = 1e-12           # floating-point residue: a value this close to a threshold is at the threshold
_T_TEST = "the t-test assumes roughly normal values; see the rank test"


@dataclass(frozen=True)
class Health:
    """How one run trained.

    reason: "ok", "diverged", "exploded" or "collapsed" (REASONS).
    epoch: where it happened (the first non-finite epoch, the first epoch above the explosion threshold, the
        first epoch of the final collapse); None when ok.
    detail: one terse line with the numbers ("validation accuracy peaked at 0.449 (epoch 22), then fell back
        to 0.0189 from epoch 42 (chance 0.0189)"); "" for a healthy run, a remark for an ok run that never
        learned.
    """
    reason: str
    epoch: int | None = None
    detail: str = ""

    @property
    def flagged(self) -> bool:
        return self.reason != "ok"


def _at_most(x: np.ndarray | float, limit: float) -> np.ndarray | bool:
    return x <= limit + _RTOL * max(1.0, abs(limit))


def assess(history: pd.DataFrame, score: str, chance: float, upto: int | None = None) -> Health:
    """Judge one run from its per-epoch history.

    Args:
        history: one row per epoch, wide: column `epoch` plus metric columns (`train_loss`, `val_loss`, the
            score, ...). Metric columns that are absent are not checked.
        score: the validation score that should rise, a fraction in [0, 1] (`val_acc`, `val_f1`).
        chance: the score of a model that learned nothing (1 / num_classes for accuracy, 0 for the F1 of the
            all-background predictor), in [0, 1).
        upto: only epochs <= upto count (None: all).

    Returns:
        The first rule that fires, in the order diverged > exploded > collapsed, else Health("ok").
    """
    if not (math.isfinite(chance) and 0 <= chance < 1):
        raise ValueError(f"chance must be a score in [0, 1), got {chance}")
    if "epoch" not in history:
        raise ValueError(f"history needs an 'epoch' column, got columns {list(history.columns)}")
    h = history if upto is None else history[history["epoch"] <= upto]
    h = h.sort_values("epoch")
    if h.empty:
        return Health("ok", None, "no epochs recorded" + ("" if upto is None else f" up to epoch {upto}"))
    epochs = h["epoch"].to_numpy(dtype=int)
    return (_diverged(h, epochs, score) or _exploded(h, epochs) or _collapsed(h, epochs, score, chance)
            or Health("ok"))


def _column(h: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(h[name], errors="coerce").to_numpy(dtype=float)


def _diverged(h: pd.DataFrame, epochs: np.ndarray, score: str) -> Health | None:
    names = [c for c in (*_LOSSES, score) if c in h]
    if not names:
        return None
    bad = ~np.isfinite(np.column_stack([_column(h, c) for c in names]))     # (n_epochs, n_metrics)
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return None
    i = rows[0]
    which = ", ".join(label("epoch", c) for c, b in zip(names, bad[i], strict=True) if b)
    return Health("diverged", int(epochs[i]), f"{which} not finite at epoch {epochs[i]}")


def _exploded(h: pd.DataFrame, epochs: np.ndarray) -> Health | None:
    if "train_loss" not in h:
        return None
    loss = _column(h, "train_loss")
    first = loss[0]
    limit = EXPLODE_LOSS
    if first > 0:
        limit = min(limit, EXPLODE_FACTOR * first)
    rows = np.flatnonzero(~_at_most(loss, limit))
    if rows.size == 0:
        return None
    i = rows[0]
    why = (f"{loss[i] / first:.3g}× epoch {epochs[0]}'s {first:.3g}" if first > 0 and limit < EXPLODE_LOSS
           else f"above the {EXPLODE_LOSS:.0e} ceiling")
    return Health("exploded", int(epochs[i]), f"training loss {loss[i]:.3g} at epoch {epochs[i]}, {why}")


def _collapsed(h: pd.DataFrame, epochs: np.ndarray, score: str, chance: float) -> Health | None:
    if score not in h:
        return None
    s = _column(h, score)
    top = int(np.argmax(s))
    peak, name = float(s[top]), label("epoch", score)
    if not _at_most(LEARNED_FRACTION * (1.0 - chance), peak - chance):
        return Health("ok", None, f"never learned: {name} peaked at {peak:.3g}, chance {chance:.3g}")
    band = chance + COLLAPSE_FRACTION * (peak - chance)
    low = _at_most(s, band)
    if not low[-COLLAPSE_WINDOW:].all():
        return None
    start = int(np.flatnonzero(~low)[-1]) + 1          # first epoch of the final stretch in the band
    end = float(np.mean(s[-COLLAPSE_WINDOW:]))
    return Health("collapsed", int(epochs[start]),
                  f"{name} peaked at {peak:.3g} (epoch {epochs[top]}), then fell back to {end:.3g} from epoch "
                  f"{epochs[start]} (chance {chance:.3g})")


def _wide(epochs: pd.DataFrame) -> pd.DataFrame:
    """Long epoch rows (key, epoch, name, value) -> one row per (key, epoch), one column per metric name.
    A duplicated (key, epoch, name) keeps its last row, as the store's INSERT OR REPLACE does."""
    long = epochs.drop_duplicates(["key", "epoch", "name"], keep="last")
    values = pd.to_numeric(long["value"], errors="coerce")
    wide = values.set_axis(pd.MultiIndex.from_frame(long[["key", "epoch", "name"]])).unstack("name")
    return wide.reset_index(level="epoch")


def flag_runs(
    runs: pd.DataFrame,
    epochs: pd.DataFrame,
    chance: Mapping[str, float] | float,
    score_by_experiment: Mapping[str, str] = SCORE_BY_EXPERIMENT,
    upto: int | None = None,
) -> dict[str, Health]:
    """`assess` every run of a run table.

    Args:
        runs: one row per run with columns `key` and `experiment` (the store's runs table, RunTables.runs).
        epochs: the store's long epoch rows, columns `key`, `epoch`, `name`, `value` (RunTables.epochs).
        chance: per experiment ({"cnn": 1 / 53, "unet": 0.0}), or one number for all runs.
        score_by_experiment: the score column `assess` reads per experiment.
        upto: only epochs <= upto count.

    Returns:
        run key -> Health, for every run in `runs` (a run with no epoch rows is "ok", "no epochs recorded").
    """
    keys = set(runs["key"])
    wide = _wide(epochs[epochs["key"].isin(keys)])
    by_key = dict(tuple(wide.groupby(level="key", sort=False)))
    empty = pd.DataFrame({"epoch": pd.Series(dtype=int)})
    out = {}
    for key, experiment in zip(runs["key"], runs["experiment"], strict=True):
        if experiment not in score_by_experiment:
            raise KeyError(f"experiment {experiment!r} of run {key}: no score column in {dict(score_by_experiment)}")
        if isinstance(chance, Mapping):
            if experiment not in chance:
                raise KeyError(f"experiment {experiment!r} of run {key}: no chance level in {dict(chance)}")
            level = chance[experiment]
        else:
            level = chance
        out[key] = assess(by_key.get(key, empty), score_by_experiment[experiment], float(level), upto)
    return out


_NOTE_ORDER = ("collapsed", "exploded", "diverged")


def group_note(flags: Mapping[object, Health] | Iterable[Health], n: int) -> str:
    """What went wrong in a group of n seeds: "3 of 5 seeds collapsed", "1 of 3 seeds exploded, 1 diverged";
    "" when no seed is flagged. `flags` holds the Health of (some of) the group's runs, e.g. seed -> Health."""
    health = list(flags.values()) if isinstance(flags, Mapping) else list(flags)
    if n < len(health):
        raise ValueError(f"n={n}: the group has at least {len(health)} runs")
    counts = Counter(h.reason for h in health if h.flagged)
    parts = [f"{counts[r]} {r}" for r in _NOTE_ORDER if counts[r]]
    if not parts:
        return ""
    count, _, reason = parts[0].partition(" ")
    return ", ".join([f"{count} of {n} seed{'s' if n != 1 else ''} {reason}", *parts[1:]])


def _grubbs_critical(n: int, alpha: float) -> float:
    """Two-sided Grubbs critical value: G > this flags max |x - mean| / sd as an outlier at level alpha."""
    t = float(sps.t.ppf(1 - alpha / (2 * n), n - 2))
    return (n - 1) / math.sqrt(n) * math.sqrt(t * t / (n - 2 + t * t))


def _two_clusters(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted `x` split at the gap that is widest relative to the range of its two sides (>= 2 values each),
    when that gap exceeds GAP_FACTOR x both ranges; None otherwise. Sides of identical values count too."""
    ratios = np.zeros(x.size)                               # ratios[i]: the split before x[i]
    for i in range(2, x.size - 1):
        gap, spread = x[i] - x[i - 1], max(x[i - 1] - x[0], x[-1] - x[i])
        ratios[i] = gap / spread if spread > 0 else (math.inf if gap > 0 else 0.0)
    i = int(np.argmax(ratios))
    return (x[:i], x[i:]) if ratios[i] > GAP_FACTOR else None


def shape_warning(values: ArrayLike) -> str:
    """A warning when per-seed results `(n,)` are visibly non-normal for a t-test, else "".

    Non-finite values (diverged runs) are ignored, as the tests ignore them. With fewer than 3 values there is no
    shape to judge. Two checks, each calibrated on normal samples so the warning stays rare on healthy groups:
    two clusters (a gap between sorted values > GAP_FACTOR x the range on either side, >= 2 values each), then
    one outlier (Grubbs' test at SHAPE_ALPHA). Together they fire on about 5 %, 3 % and 1.6 % of normal groups
    of 4, 5 and 6 values. With 3 values only a very extreme outlier can be told from chance. A robust z
    (|x - median| / (1.4826 MAD) > 3.5) was not used: with a handful of values the MAD is often tiny by luck,
    and it fires on 29 %, 17 %, 21 % and 14 % of normal samples of 3, 4, 5 and 8.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    x = np.sort(x[np.isfinite(x)])
    if x.size < 3 or np.ptp(x) <= _RTOL * max(1.0, float(np.max(np.abs(x)))):
        return ""
    clusters = _two_clusters(x)
    if clusters is not None:
        lo, hi = clusters
        return f"two clusters ({_span(lo)} and {_span(hi)}): {_T_TEST}"
    dev = np.abs(x - x.mean())
    g = float(dev.max() / x.std(ddof=1))
    if g > _grubbs_critical(x.size, SHAPE_ALPHA):
        return f"{x[int(np.argmax(dev))]:.3g} is an outlier (Grubbs' test, p < {SHAPE_ALPHA:g}): {_T_TEST}"
    return ""


def _span(x: np.ndarray) -> str:
    return f"{x[0]:.3g}" if x[0] == x[-1] else f"{x[0]:.3g}–{x[-1]:.3g}"
