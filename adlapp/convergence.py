"""Had it converged? A plateau diagnostic on a series' learning curves.

The report: "it graphically does not seem to have converged". Eyeballing a log-x chart is unreliable (the
last doubling of epochs is a thin sliver), so the question is made a number: over the last `window` of a
curve, fit a least-squares line to each seed's values against the epoch, and take the slope per 100 epochs.
Seeds are the replicates: the mean slope gets a t confidence interval over seeds (ddof=1), so a curve is
called "still improving" only when the whole interval lies on the improving side, "getting worse" when it
lies on the other side (for validation loss or accuracy: overfitting), and "flat" when the interval holds 0.
The interval also bounds how much N more epochs could plausibly add if the trend held (a linear
extrapolation, said as such: curves bend, so it is an upper-end guess for an improving curve).

Why slopes per seed and not one fit through all points: the points of one seed are serially correlated
(each epoch continues the previous one), so pooling them would count thousands of points as independent and
make every tiny slope "significant". One slope per seed gives n = seeds independent numbers.

Pure: numpy and scipy only, no torch, no streamlit, no English beyond the verdict words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["WINDOW_FRACTION", "MIN_WINDOW", "Plateau", "slope_per_100", "plateau", "VERDICTS"]

WINDOW_FRACTION = 0.2       # the last fifth of the epochs: late enough to be past the fast early phase
MIN_WINDOW = 10             # epochs; fewer points make a per-seed slope mostly noise
LEVEL = 0.95
VERDICTS = ("still improving", "flat", "getting worse", "too few seeds")


@dataclass(frozen=True)
class Plateau:
    """The trend of one series' metric over its last `window` epochs (from `start` to `end`)."""
    metric: str
    higher_is_better: bool
    start: int
    end: int
    n_seeds: int
    slopes: tuple[float, ...]          # per seed, in metric units per 100 epochs
    mean: float                        # mean slope per 100 epochs
    ci_low: float
    ci_high: float
    verdict: str                       # one of VERDICTS

    def gain(self, more_epochs: int) -> tuple[float, float, float]:
        """(mean, low, high) change of the metric over `more_epochs` further epochs if the trend held."""
        k = more_epochs / 100.0
        return self.mean * k, self.ci_low * k, self.ci_high * k


def slope_per_100(epochs: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of `values` (shape (n,)) on `epochs`, times 100; NaN with fewer than 3 finite points."""
    ok = np.isfinite(values) & np.isfinite(epochs)
    if ok.sum() < 3:
        return math.nan
    x, y = np.asarray(epochs, float)[ok], np.asarray(values, float)[ok]
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum() * 100.0)


def plateau(curves: pd.DataFrame, metric: str, higher_is_better: bool, window: int | None = None,
            level: float = LEVEL) -> Plateau | None:
    """The plateau diagnostic of one series from its per-epoch values.

    `curves`: long rows with columns seed, epoch, value (one series, one metric). The window is the last
    `window` epochs of the shortest seed's curve (default: WINDOW_FRACTION of it, at least MIN_WINDOW), so
    every seed contributes the same epochs. None when there is no curve long enough.
    """
    if curves.empty:
        return None
    last = int(curves.groupby("seed")["epoch"].max().min())
    window = window or max(MIN_WINDOW, int(round(WINDOW_FRACTION * last)))
    if last < MIN_WINDOW or window > last:
        return None
    start = last - window + 1
    part = curves[(curves["epoch"] >= start) & (curves["epoch"] <= last)]
    slopes = [slope_per_100(g["epoch"].to_numpy(float), g["value"].to_numpy(float))
              for _, g in part.sort_values("epoch").groupby("seed")]
    slopes = [s for s in slopes if np.isfinite(s)]
    n = len(slopes)
    if n == 0:
        return None
    mean = float(np.mean(slopes))
    if n < 2:
        return Plateau(metric, higher_is_better, start, last, n, tuple(slopes), mean, math.nan, math.nan,
                       "too few seeds")
    se = float(np.std(slopes, ddof=1) / math.sqrt(n))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * se)
    low, high = mean - half, mean + half
    better_low, better_high = (low, high) if higher_is_better else (-high, -low)
    verdict = "still improving" if better_low > 0 else "getting worse" if better_high < 0 else "flat"
    return Plateau(metric, higher_is_better, start, last, n, tuple(slopes), mean, low, high, verdict)
