"""Honest comparison of variants trained with several seeds.

Pure functions on small arrays: one value per seed, `(n_seeds,)` per variant, or `(n_seeds, n_epochs)` for
curves. Nothing here imports streamlit or torch, draws random numbers or prints.

Conventions:
- `compare` treats two groups as independent samples. In this project a seed fixes a run's initial weights
  and batch order, so same-seed runs of two variants are correlated; treating them as independent is the
  conservative default, not a claim that they are unrelated. `paired` is for the same runs scored twice (one
  run's test accuracy after 200 and after 1000 epochs) and for runs a caller chooses to match by seed.
- Standard deviations use ddof=1 everywhere (numpy's default is 0).
- Non-finite values (diverged runs) are excluded and counted, never silently averaged in.
- The default test is Welch's t-test, corrected over the family of pairs actually displayed (Holm by
  default). Mann-Whitney, Hedges' g, the probability of improvement and the course report's z are reported
  next to it. The course's z = (a - b) / sqrt(sd_a^2 + sd_b^2) is a standardised difference (= Cohen's d
  divided by sqrt(2) for equal n), not a test.
- Degenerate cases (n=1, zero variance) are handled before any scipy call, so no RuntimeWarning leaks and no
  floating-point residue turns into an absurd p-value.
- Numbers only: the `note` of `compare` is a terse diagnostic (what was excluded, why there is no test), like
  an error message. Sentences, tables and every number as text are adlapp.report's.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

__all__ = [
    "Correction", "CORRECTIONS", "COMPARE_KEYS", "compare", "holm", "bh", "adjust", "adjust_within", "pairwise",
    "seeds_needed", "power", "power_curve", "pooled_sd", "summarize", "welch_over_epochs",
    "PAIRED_KEYS", "paired", "mean_diff_ci", "SPREAD_KEYS", "spread_test",
]

Correction = Literal["holm", "bh", "none"]

_CI_LEVEL = 0.95                    # the CIs are 95 % regardless of alpha: alpha only decides "significant"
_SD_RTOL = 1e-12                    # sd <= 1e-12 * max(1, |mean|) is floating-point residue, i.e. zero
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def _finite(values: ArrayLike, name: str) -> tuple[np.ndarray, int]:
    """Return the finite values of a 1-D input `(n,)` as float64 and how many were excluded."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per seed), got shape {x.shape}")
    keep = np.isfinite(x)
    return x[keep], int(x.size - keep.sum())


def _mean_var(x: np.ndarray) -> tuple[float, float, bool]:
    """Mean, variance (ddof=1) and whether the sd is zero up to floating-point residue.

    The variance is snapped to exactly 0.0 when the sd is within `_SD_RTOL` of zero, so [0.9]*3 has
    variance 0 rather than ~1e-33. Mean and variance are NaN where undefined (n=0, n<2).
    """
    n = x.size
    if n == 0:
        return math.nan, math.nan, False
    mean = float(np.mean(x))
    if n < 2:
        return mean, math.nan, False
    var = float(np.var(x, ddof=1))
    zero = math.sqrt(var) <= _SD_RTOL * max(1.0, abs(mean))
    return mean, (0.0 if zero else var), zero


def _mwu_min_p(n_a: int, n_b: int) -> float:
    """Smallest two-sided p an exact rank/permutation test can reach with n_a vs n_b values."""
    if n_a < 1 or n_b < 1:
        return math.nan
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def _prob_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """P(A > B) over all (a, b) pairs with ties counted 1/2, i.e. U_a / (n_a n_b)."""
    if a.size == 0 or b.size == 0:
        return math.nan
    diff = a[:, None] - b[None, :]                                      # (n_a, n_b)
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _welch(mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int,
           level: float = _CI_LEVEL) -> dict[str, float]:
    """Welch's t-test and its `level` CI from summary statistics; needs n >= 2 in both and a positive
    standard error."""
    sa, sb = var_a / n_a, var_b / n_b
    se = math.sqrt(sa + sb)
    diff = mean_a - mean_b
    t = diff / se
    df = (sa + sb) ** 2 / (sa**2 / (n_a - 1) + sb**2 / (n_b - 1))
    p = float(2.0 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return {"welch_t": t, "welch_df": df, "welch_p": min(p, 1.0), "ci_low": diff - half, "ci_high": diff + half}


@dataclass(frozen=True)
class _Sample:
    """One group's finite values `(n,)`, how many were excluded, mean, variance (ddof=1) and zero spread."""
    x: np.ndarray
    excluded: int
    mean: float
    var: float
    zero: bool

    @property
    def n(self) -> int:
        return int(self.x.size)


def _sample(values: ArrayLike, name: str) -> _Sample:
    x, excluded = _finite(values, name)
    return _Sample(x, excluded, *_mean_var(x))


def compare(
    a: ArrayLike,
    b: ArrayLike,
    *,
    alpha: float = 0.05,
    names: tuple[str, str] = ("a", "b"),
) -> dict[str, Any]:
    """Compare two independent samples of per-seed results.

    Args:
        a, b: shape `(n_a,)` and `(n_b,)`, one final metric per seed. NaN/inf (diverged runs) are excluded
            and counted in `n_excluded_a` / `n_excluded_b`.
        alpha: only used to say in `note` whether the rank test can reach significance at all.
        names: how `note` refers to the two groups.

    Returns:
        A flat dict: `n_a`, `n_b`, `n_excluded_a`, `n_excluded_b`, `mean_a`, `mean_b`, `sd_a`, `sd_b`
        (ddof=1), `diff` (mean_a - mean_b), `ci_low`, `ci_high` (Welch 95 % CI of diff), `welch_t`,
        `welch_df`, `welch_p`, `mwu_p` (two-sided, scipy method="auto"), `mwu_min_p` (2 / C(n_a+n_b, n_a),
        the exact test's floor), `hedges_g`, `cohens_d` (pooled sd, ddof=1), `prob_improvement`
        (P(a > b), ties 1/2), `z_seed` (the course report's diff / sqrt(sd_a^2 + sd_b^2)), `testable`
        (True when a Welch p-value exists) and `note` (diagnostics joined by "; ", "" if none).
        Anything that cannot be computed is NaN and `note` says why.
    """
    sa, sb = _sample(a, "a"), _sample(b, "b")
    out = _describe(sa, sb)
    notes = _excluded_notes(names, sa, sb)
    if min(sa.n, sb.n) < 2:                         # a single seed says nothing about its group's spread
        return _finish(out, notes + _too_small_notes(names, sa, sb))
    out.update(_effect_sizes(sa, sb))
    out.update(_welch_or_exact(sa, sb))
    notes += _variance_notes(names, sa, sb)
    out.update(_rank_test(sa, sb))
    notes += _rank_notes(out, alpha)
    return _finish(out, notes)


def _describe(sa: _Sample, sb: _Sample) -> dict[str, Any]:
    """Every key of `compare`: the descriptive ones filled, the tests and effect sizes NaN."""
    nan = math.nan
    return {
        "n_a": sa.n, "n_b": sb.n, "n_excluded_a": sa.excluded, "n_excluded_b": sb.excluded,
        "mean_a": sa.mean, "mean_b": sb.mean, "sd_a": math.sqrt(sa.var), "sd_b": math.sqrt(sb.var),
        "diff": sa.mean - sb.mean, "ci_low": nan, "ci_high": nan, "welch_t": nan, "welch_df": nan,
        "welch_p": nan, "mwu_p": nan, "mwu_min_p": _mwu_min_p(sa.n, sb.n), "hedges_g": nan, "cohens_d": nan,
        "prob_improvement": _prob_improvement(sa.x, sb.x), "z_seed": nan, "testable": False, "note": "",
    }


def _effect_sizes(sa: _Sample, sb: _Sample) -> dict[str, float]:
    """`z_seed` (the course's diff / sqrt(var_a + var_b)), `cohens_d` and `hedges_g` (pooled sd, ddof=1,
    J = 1 - 3 / (4 (n_a + n_b) - 9)). Only called with n >= 2 in both groups."""
    diff = sa.mean - sb.mean
    out = {"z_seed": diff / math.sqrt(sa.var + sb.var) if sa.var + sb.var > 0 else math.nan}
    sd = _pooled(sa.n, sa.var, sb.n, sb.var)
    if np.isfinite(sd) and sd > 0 and np.isfinite(diff):
        d = diff / sd
        out.update(cohens_d=d, hedges_g=d * (1.0 - 3.0 / (4.0 * (sa.n + sb.n) - 9.0)))
    return out


def _welch_or_exact(sa: _Sample, sb: _Sample) -> dict[str, float]:
    """Welch's test and CI. With zero spread in both groups there is none, unless the means are equal too:
    then there is no difference at all (t = 0, p = 1)."""
    if not (sa.zero and sb.zero):
        return _welch(sa.mean, sa.var, sa.n, sb.mean, sb.var, sb.n)
    if _equal_means(sa, sb):
        diff = sa.mean - sb.mean
        return {"welch_t": 0.0, "welch_p": 1.0, "ci_low": diff, "ci_high": diff}
    return {}


def _equal_means(sa: _Sample, sb: _Sample) -> bool:
    return abs(sa.mean - sb.mean) <= _SD_RTOL * max(1.0, abs(sa.mean))


def _rank_test(sa: _Sample, sb: _Sample) -> dict[str, float]:
    """Mann-Whitney's two-sided p (scipy method="auto")."""
    if np.ptp(np.concatenate([sa.x, sb.x])) == 0:
        return {"mwu_p": 1.0}                   # all values identical: scipy's normal approximation is 0/0
    return {"mwu_p": float(sps.mannwhitneyu(sa.x, sb.x, alternative="two-sided", method="auto").pvalue)}


def _finish(out: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    out["testable"] = bool(np.isfinite(out["welch_p"]))
    out["note"] = "; ".join(notes)
    return out


# Diagnostics for `note`: terse, like error messages; adlapp.report writes the sentences.
def _excluded_notes(names: tuple[str, str], sa: _Sample, sb: _Sample) -> list[str]:
    return [f"{s.excluded} non-finite value{'s' if s.excluded > 1 else ''} (diverged run) excluded from {name}"
            for name, s in zip(names, (sa, sb), strict=True) if s.excluded]


def _too_small_notes(names: tuple[str, str], sa: _Sample, sb: _Sample) -> list[str]:
    return [f"no finite values in {name}: no test possible" if s.n == 0 else f"n=1 in {name}: no test possible"
            for name, s in zip(names, (sa, sb), strict=True) if s.n < 2]


def _variance_notes(names: tuple[str, str], sa: _Sample, sb: _Sample) -> list[str]:
    if sa.zero and sb.zero:
        if _equal_means(sa, sb):
            return ["zero variance in both groups and equal means: no difference at all"]
        return ["zero variance in both groups: the difference is exact for these seeds, a t-test is undefined"]
    return [f"zero variance in {name} (all seeds identical)" for name, s in zip(names, (sa, sb), strict=True) if s.zero]


def _rank_notes(out: dict[str, Any], alpha: float) -> list[str]:
    min_p, notes = out["mwu_min_p"], []
    if min_p >= alpha:
        notes.append(f"rank test cannot reach p<{alpha:g} with n={out['n_a']} vs {out['n_b']} (min p = {min_p:.3f})")
    if out["mwu_p"] < min_p * (1 - 1e-9):
        notes.append(f"rank-test p is a normal approximation (ties) below the exact minimum {min_p:.3f}; "
                     f"don't trust it")
    return notes


def _pooled(n_a: int, var_a: float, n_b: int, var_b: float) -> float:
    """Pooled sd from per-group ddof=1 variances; a group with n=1 contributes nothing (0 df)."""
    dof = n_a + n_b - 2
    if n_a < 1 or n_b < 1 or dof < 1:
        return math.nan
    ss = (n_a - 1) * (var_a if n_a > 1 else 0.0) + (n_b - 1) * (var_b if n_b > 1 else 0.0)
    return math.sqrt(ss / dof)


def pooled_sd(a: ArrayLike, b: ArrayLike) -> float:
    """Pooled standard deviation (ddof=1) of two samples `(n_a,)` and `(n_b,)`; non-finite values dropped.

    NaN when n_a + n_b - 2 < 1 or a group is empty.
    """
    xa, _ = _finite(a, "a")
    xb, _ = _finite(b, "b")
    _, var_a, _ = _mean_var(xa)
    _, var_b, _ = _mean_var(xb)
    return _pooled(xa.size, var_a, xb.size, var_b)


def summarize(values: ArrayLike) -> dict[str, float | int]:
    """Describe one variant's per-seed results.

    Args:
        values: shape `(n_seeds,)`. Non-finite values are excluded and counted.

    Returns:
        `n`, `n_excluded`, `mean`, `sd` (ddof=1, NaN when n<2), `min`, `max`, and `ci_low`/`ci_high`: the
        t-based 95 % CI of the mean (NaN when n<2).
    """
    x, excl = _finite(values, "values")
    n = x.size
    mean, var, _ = _mean_var(x)
    sd = math.sqrt(var)
    out: dict[str, float | int] = {
        "n": n, "n_excluded": excl, "mean": mean, "sd": sd,
        "min": float(x.min()) if n else math.nan, "max": float(x.max()) if n else math.nan,
        "ci_low": math.nan, "ci_high": math.nan,
    }
    if n >= 2:
        half = float(sps.t.ppf(0.5 + _CI_LEVEL / 2, n - 1)) * sd / math.sqrt(n)
        out["ci_low"], out["ci_high"] = mean - half, mean + half
    return out


def _multipletests(pvalues: Sequence[float], method: str) -> list[float]:
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    keep = np.isfinite(p)
    if keep.any():
        if ((p[keep] < 0) | (p[keep] > 1)).any():
            raise ValueError(f"p-values must lie in [0, 1], got {p[keep].tolist()}")
        out[keep] = multipletests(p[keep], method=method)[1]
    return out.tolist()


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values `(m,)`; NaN entries stay NaN and are not part of the family."""
    return _multipletests(pvalues, "holm")


def bh(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (FDR) adjusted p-values `(m,)`; NaN entries stay NaN and are not in the family."""
    return _multipletests(pvalues, "fdr_bh")


def adjust(pvalues: Sequence[float], correction: Correction = "holm") -> list[float]:
    """Adjust p-values `(m,)` with "holm", "bh" or "none"; NaN entries stay NaN and leave the family."""
    if correction == "holm":
        return holm(pvalues)
    if correction == "bh":
        return bh(pvalues)
    if correction == "none":
        return [float(p) if np.isfinite(p) else math.nan for p in np.asarray(pvalues, dtype=float).reshape(-1)]
    raise ValueError(f"correction must be one of {list(CORRECTIONS)}, got {correction!r}")


COMPARE_KEYS: tuple[str, ...] = (
    "n_a", "n_b", "n_excluded_a", "n_excluded_b", "mean_a", "mean_b", "sd_a", "sd_b", "diff", "ci_low",
    "ci_high", "welch_t", "welch_df", "welch_p", "mwu_p", "mwu_min_p", "hedges_g", "cohens_d",
    "prob_improvement", "z_seed", "testable", "note",
)


def adjust_within(pvalues: Sequence[float], families: Sequence[Any],
                  correction: Correction = "holm") -> tuple[list[float], list[int]]:
    """Adjust p-values `(m,)` separately within each family: `families` `(m,)` labels the family of each.

    Returns the adjusted p-values `(m,)` and, per entry, its family's size (the finite p-values in that family,
    i.e. how many it is corrected over). NaN entries stay NaN and are in no family's count.
    """
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    if len(families) != p.size:
        raise ValueError(f"families has {len(families)} labels for {p.size} p-values")
    adjusted, sizes = [math.nan] * p.size, [0] * p.size
    for fam in dict.fromkeys(families):
        idx = [i for i, f in enumerate(families) if f == fam]
        values = adjust(p[idx].tolist(), correction)
        size = int(np.isfinite(p[idx]).sum())
        for i, v in zip(idx, values, strict=True):
            adjusted[i], sizes[i] = v, size
    return adjusted, sizes


def pairwise(
    groups: dict[str, ArrayLike],
    correction: Correction = "holm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Compare every unordered pair of variants, correcting over the pairs shown (one family).

    Args:
        groups: variant name -> per-seed results `(n_seeds,)`. Pairs follow the dict's order: `a` is the
            earlier key, `b` the later one, so `diff` = mean(a) - mean(b).
        correction: "holm" (default), "bh" (Benjamini-Hochberg) or "none", applied to the Welch p-values.
        alpha: significance level for `significant` (p_adjusted < alpha).

    Returns:
        One row per pair, K (K-1) / 2 rows: `a`, `b`, every `compare` field, `p_adjusted`, `significant` and
        `family_size` (the number of pairs with a Welch p-value, i.e. the family corrected over). Sentences
        are adlapp.report's (`report.pair_sentence`).
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {list(CORRECTIONS)}, got {correction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    names = list(groups)
    rows = [{"a": a, "b": b, **compare(groups[a], groups[b], alpha=alpha, names=(a, b))}
            for i, a in enumerate(names) for b in names[i + 1:]]
    p_adj, sizes = adjust_within([r["welch_p"] for r in rows], [0] * len(rows), correction)
    for r, p, size in zip(rows, p_adj, sizes, strict=True):
        r.update(p_adjusted=p, significant=bool(np.isfinite(p) and p < alpha), family_size=size)
    return pd.DataFrame(rows, columns=["a", "b", *COMPARE_KEYS, "p_adjusted", "significant", "family_size"])


def _check_power_args(alpha: float, comparisons: int) -> float:
    if not (isinstance(comparisons, (int, np.integer)) and comparisons >= 1):
        raise ValueError(f"comparisons must be an integer >= 1, got {comparisons!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha / comparisons


def _power(effect_size: float, n: int, alpha: float) -> float:
    return float(TTestIndPower().power(effect_size=abs(effect_size), nobs1=n, alpha=alpha, ratio=1.0,
                                       alternative="two-sided"))


def power(effect_size: float, n: int, alpha: float = 0.05, comparisons: int = 1) -> float:
    """Power of a two-sided Student t-test with `n` seeds per group at standardized effect `effect_size`.

    Uses statsmodels `TTestIndPower` (pooled-variance t-test; Welch has slightly less power at tiny n) at
    the Bonferroni level alpha / comparisons. Requires n >= 2.
    """
    if not np.isfinite(effect_size):
        raise ValueError(f"effect_size must be finite, got {effect_size}")
    if n < 2:
        raise ValueError(f"n must be >= 2 seeds per group for a t-test, got {n}")
    return _power(effect_size, n, _check_power_args(alpha, comparisons))


def seeds_needed(effect_size: float, alpha: float = 0.05, power: float = 0.8, comparisons: int = 1) -> int:
    """Seeds per group for a two-sided t-test to detect `effect_size` (Cohen's d) with the given power.

    Bonferroni: the test runs at alpha / comparisons. Solved with statsmodels
    `TTestIndPower().solve_power`, rounded up, at least 2. Example: d = 1 needs 17 seeds per group.

    Raises:
        ValueError: effect_size <= 0 or not finite, or alpha / power / comparisons out of range.
    """
    target = power
    if not (np.isfinite(effect_size) and effect_size > 0):
        raise ValueError(f"effect_size must be a positive finite number (Cohen's d = smallest difference "
                         f"that matters / sd), got {effect_size}")
    if not 0 < target < 1:
        raise ValueError(f"power must be in (0, 1), got {target}")
    a = _check_power_args(alpha, comparisons)

    def pw(n: int) -> float:
        return _power(effect_size, n, a)

    if pw(2) >= target:
        return 2                    # also sidesteps solve_power failing to converge for huge effects
    raw = float(TTestIndPower().solve_power(effect_size=effect_size, nobs1=None, alpha=a, power=target,
                                            ratio=1.0, alternative="two-sided"))
    hi = max(3, math.ceil(raw - 1e-9)) if np.isfinite(raw) else 4
    while pw(hi) < target:          # the solver's tolerance, or no solution at all: widen the bracket
        hi *= 2
    lo = 2                          # pw(lo) < target, pw(hi) >= target: bisect for the smallest passing n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if pw(mid) >= target else (mid, hi)
    return int(hi)


def power_curve(
    effect_size: float,
    ns: Sequence[int] = range(2, 31),
    alpha: float = 0.05,
    comparisons: int = 1,
) -> pd.DataFrame:
    """Power per number of seeds per group: a DataFrame with columns `n` and `power`, one row per n in `ns`."""
    ns = [int(n) for n in ns]
    return pd.DataFrame({"n": ns, "power": [power(effect_size, n, alpha, comparisons) for n in ns]})


def welch_over_epochs(
    a: ArrayLike,
    b: ArrayLike,
    correction: Correction = "holm",
    alpha: float = 0.05,
    epochs: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Welch test at every epoch of two sets of learning curves ("significance along the curve").

    Args:
        a, b: shape `(n_seeds_a, n_epochs)` and `(n_seeds_b, n_epochs)`, one curve per seed (row).
        correction: "holm", "bh" or "none", over the epochs given (the family is every testable epoch, so
            pass only the epochs you look at).
        alpha: significance level for `significant`.
        epochs: labels for the columns, length n_epochs; default 1..n_epochs.

    Returns:
        One row per epoch: `epoch`, `n_a`, `n_b`, `diff` (mean a - mean b), `ci_low`, `ci_high`, `welch_p`,
        `p_adjusted`, `significant`.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.ndim != 2 or xb.ndim != 2:
        raise ValueError(f"a and b must be 2-D (n_seeds, n_epochs), got shapes {xa.shape} and {xb.shape}")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"a and b must have the same number of epochs, got {xa.shape[1]} and {xb.shape[1]}")
    n_epochs = xa.shape[1]
    labels = list(range(1, n_epochs + 1)) if epochs is None else list(epochs)
    if len(labels) != n_epochs:
        raise ValueError(f"epochs has {len(labels)} labels for {n_epochs} epochs")
    keys = ("n_a", "n_b", "diff", "ci_low", "ci_high", "welch_p")
    rows = []
    for j in range(n_epochs):
        res = compare(xa[:, j], xb[:, j], alpha=alpha)
        rows.append({"epoch": labels[j], **{k: res[k] for k in keys}})
    df = pd.DataFrame(rows, columns=["epoch", *keys])
    df["p_adjusted"] = adjust(df["welch_p"].tolist(), correction)
    df["significant"] = df["p_adjusted"].lt(alpha)
    return df


# -- Paired samples, simultaneous CIs, equality of spreads -----------------------------------------------------
PAIRED_KEYS: tuple[str, ...] = (
    "n", "n_excluded", "mean_a", "mean_b", "diff", "sd_diff", "ci_low", "ci_high", "t", "df", "p", "wilcoxon_p",
    "wilcoxon_min_p", "dz", "testable", "note",
)


def _pairs(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, int]:
    """The complete pairs of two matched 1-D inputs `(n,)` as float64, and how many pairs were dropped
    because either value is non-finite."""
    if np.ndim(a) > 1 or np.ndim(b) > 1:
        raise ValueError(f"a and b must be 1-D (one value per run), got shapes {np.shape(a)} and {np.shape(b)}")
    xa, xb = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if xa.size != xb.size:
        raise ValueError(f"paired samples must have the same length, got {xa.size} and {xb.size}")
    keep = np.isfinite(xa) & np.isfinite(xb)
    return xa[keep], xb[keep], int(keep.size - keep.sum())


def _differences(xa: np.ndarray, xb: np.ndarray) -> _Sample:
    """The differences a - b as a sample, floating-point residue snapped to exactly 0 (0.1 + 0.2 vs 0.3)."""
    d = xa - xb
    scale = max(1.0, float(np.max(np.abs(np.concatenate([xa, xb])), initial=0.0)))
    return _sample(np.where(np.abs(d) <= _SD_RTOL * scale, 0.0, d), "a - b")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _paired_ci(d: _Sample, level: float) -> tuple[float, float]:
    """t CI `(low, high)` of the mean difference. With every difference the same there is none, unless they
    are all zero: then there is no difference at all (zero width), as in `compare`."""
    if d.n < 2 or (d.zero and np.any(d.x)):
        return math.nan, math.nan
    half = float(sps.t.ppf(0.5 + level / 2, d.n - 1)) * math.sqrt(d.var / d.n)
    return d.mean - half, d.mean + half


def _wilcoxon_min_p(m: int) -> float:
    """Smallest two-sided p the exact signed-rank test reaches with m non-zero differences: 2 / 2^m."""
    return min(1.0, 2.0 ** (1 - m)) if m >= 1 else math.nan


def paired(
    a: ArrayLike,
    b: ArrayLike,
    *,
    alpha: float = 0.05,
    names: tuple[str, str] = ("a", "b"),
) -> dict[str, Any]:
    """Compare two matched samples: the same runs scored twice, or runs paired by a seed that fixes what they
    share. Tests the mean of the differences a - b.

    Args:
        a, b: shape `(n,)` each, a[i] and b[i] from the same run (or matched pair). A pair with a non-finite
            value on either side (a diverged run) is dropped and counted in `n_excluded`.
        alpha: only used to say in `note` whether the signed-rank test can reach significance at all.
        names: how `note` refers to the two samples.

    Returns:
        A flat dict (PAIRED_KEYS): `n` (complete pairs), `n_excluded`, `mean_a`, `mean_b`, `diff` (mean of
        a - b), `sd_diff` (ddof=1), `ci_low`, `ci_high` (t 95 % CI of diff), `t`, `df`, `p` (paired t-test,
        two-sided, = scipy `ttest_rel`), `wilcoxon_p` (signed-rank test, two-sided, scipy method="auto": exact
        for n <= 50, exhaustive permutations with ties or zero differences for n <= 13; zero differences are
        dropped, "wilcox"; 1 when every difference is zero), `wilcoxon_min_p` (2 / 2^m with m non-zero
        differences, the exact test's floor), `dz` (diff / sd_diff), `testable` (True when a t-test p
        exists) and `note` ("" if nothing to say). Anything that cannot be computed is NaN and `note` says why.
    """
    xa, xb, excluded = _pairs(a, b)
    d = _differences(xa, xb)
    nonzero = int(np.count_nonzero(d.x))
    nan = math.nan
    out: dict[str, Any] = {
        "n": d.n, "n_excluded": excluded, "mean_a": float(np.mean(xa)) if d.n else nan,
        "mean_b": float(np.mean(xb)) if d.n else nan, "diff": d.mean, "sd_diff": math.sqrt(d.var),
        "ci_low": nan, "ci_high": nan, "t": nan, "df": float(d.n - 1) if d.n >= 2 else nan, "p": nan,
        "wilcoxon_p": nan, "wilcoxon_min_p": _wilcoxon_min_p(nonzero), "dz": nan, "testable": False, "note": "",
    }
    notes = [f"{excluded} pair{'s' if excluded > 1 else ''} with a non-finite value (diverged run) excluded"
             ] if excluded else []
    if d.n < 2:
        notes.append("no complete pairs: no test possible" if d.n == 0 else "n=1 pair: no test possible")
        return _finish_paired(out, notes)
    out["ci_low"], out["ci_high"] = _paired_ci(d, _CI_LEVEL)
    if nonzero == 0:                            # scipy: t = 0/0 and a signed-rank test of nothing
        out.update(t=0.0, p=1.0, wilcoxon_p=1.0)
        notes.append(f"{names[0]} equals {names[1]} in every pair: no difference at all (signed-rank p = 1)")
        return _finish_paired(out, notes)
    if d.zero:
        notes.append("every pair differs by the same amount: the difference is exact for these pairs, "
                     "a t-test is undefined")
    else:
        out["t"] = d.mean / math.sqrt(d.var / d.n)
        out["p"] = min(1.0, float(2.0 * sps.t.sf(abs(out["t"]), d.n - 1)))
        out["dz"] = d.mean / math.sqrt(d.var)
    out["wilcoxon_p"] = float(sps.wilcoxon(d.x, alternative="two-sided", method="auto").pvalue)
    if nonzero < d.n:
        notes.append(f"{d.n - nonzero} zero difference{'s' if d.n - nonzero > 1 else ''} left out of the "
                     f"signed-rank test")
    if out["wilcoxon_min_p"] >= alpha:
        notes.append(f"signed-rank test cannot reach p<{alpha:g} with {nonzero} non-zero difference"
                     f"{'s' if nonzero > 1 else ''} (min p = {out['wilcoxon_min_p']:.3f})")
    return _finish_paired(out, notes)


def _finish_paired(out: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    out["testable"] = bool(np.isfinite(out["p"]))
    out["note"] = "; ".join(notes)
    return out


def mean_diff_ci(a: ArrayLike, b: ArrayLike, level: float, paired: bool = False) -> tuple[float, float]:
    """CI `(low, high)` of mean(a) - mean(b) at confidence `level`.

    Unpaired (default): Welch's CI, non-finite values dropped per sample, the same interval `compare` gives at
    level 0.95. Paired: the t CI of the mean difference over complete pairs, as in `paired`. For m CIs that
    hold simultaneously (Bonferroni), pass level = 1 - alpha / m.

    NaN, NaN when there is no interval: n < 2 on a side (or fewer than 2 pairs), or zero spread in both samples
    with different means (the difference is exact; zero width when the means are equal too).
    """
    _check_level(level)
    if paired:
        return _paired_ci(_differences(*_pairs(a, b)[:2]), level)
    sa, sb = _sample(a, "a"), _sample(b, "b")
    if min(sa.n, sb.n) < 2:
        return math.nan, math.nan
    if sa.zero and sb.zero:
        diff = sa.mean - sb.mean
        return (diff, diff) if _equal_means(sa, sb) else (math.nan, math.nan)
    res = _welch(sa.mean, sa.var, sa.n, sb.mean, sb.var, sb.n, level=level)
    return res["ci_low"], res["ci_high"]


SPREAD_KEYS: tuple[str, ...] = (
    "n", "n_excluded", "sd", "groups_tested", "brown_forsythe_w", "brown_forsythe_p", "levene_w", "levene_p",
    "testable", "note",
)


def spread_test(groups: Sequence[ArrayLike]) -> dict[str, Any]:
    """Do the groups differ in spread? Brown-Forsythe (Levene's test about the median, robust to skew and
    outliers: the one to read) and the original Levene test (about the mean).

    Args:
        groups: k samples `(n_i,)`, one value per seed. Non-finite values are dropped and counted; groups left
            with fewer than 2 values say nothing about spread and are left out of the test.

    Returns:
        A flat dict (SPREAD_KEYS): `n`, `n_excluded`, `sd` (ddof=1, NaN for n<2): lists with one entry per
        group; `groups_tested` (groups with n >= 2), `brown_forsythe_w`, `brown_forsythe_p` (scipy `levene`,
        center="median"), `levene_w`, `levene_p` (center="mean"), `testable` and `note`. NaN and a note when
        fewer than 2 groups have n >= 2, or when the deviations from the centre are the same within every
        group (e.g. 2 values per group: both lie equally far from their midpoint), which leaves no
        within-group variation to compare against. Zero spread in every group: equal spreads, W = 0, p = 1.
    """
    samples = [_sample(g, f"group {i}") for i, g in enumerate(groups)]
    nan = math.nan
    out: dict[str, Any] = {
        "n": [s.n for s in samples], "n_excluded": [s.excluded for s in samples],
        "sd": [math.sqrt(s.var) for s in samples], "groups_tested": 0, "brown_forsythe_w": nan,
        "brown_forsythe_p": nan, "levene_w": nan, "levene_p": nan, "testable": False, "note": "",
    }
    notes = [f"{s.excluded} non-finite value{'s' if s.excluded > 1 else ''} (diverged run) excluded from group {i}"
             for i, s in enumerate(samples) if s.excluded]
    tested = [s for s in samples if s.n >= 2]
    out["groups_tested"] = len(tested)
    if len(tested) < len(samples):
        notes.append(f"{len(samples) - len(tested)} group(s) with fewer than 2 values left out")
    if len(tested) < 2:
        notes.append("fewer than 2 groups with n>=2: no test possible")
    elif all(s.zero for s in tested):
        out.update(brown_forsythe_w=0.0, brown_forsythe_p=1.0, levene_w=0.0, levene_p=1.0)
        notes.append("zero variance in every group: the spreads are equal")
    else:
        degenerate = []
        for key, center in (("brown_forsythe", "median"), ("levene", "mean")):
            if _constant_deviations([s.x for s in tested], center):
                degenerate.append(center)
                continue
            res = sps.levene(*[s.x for s in tested], center=center)
            out[f"{key}_w"], out[f"{key}_p"] = float(res.statistic), float(res.pvalue)
        if degenerate:
            notes.append(f"deviations from the {' and the '.join(degenerate)} are the same within every group "
                         f"(e.g. 2 values per group): no test possible")
    out["testable"] = bool(np.isfinite(out["brown_forsythe_p"]))
    out["note"] = "; ".join(notes)
    return out


def _constant_deviations(xs: list[np.ndarray], center: str) -> bool:
    """True when |x - centre| is the same for every value of each group (up to floating-point residue):
    Levene's statistic would divide by a zero within-group sum of squares."""
    mid = np.median if center == "median" else np.mean
    devs = [np.abs(x - mid(x)) for x in xs]
    scale = max(1.0, max(float(np.max(np.abs(x))) for x in xs))
    return all(np.ptp(z) <= _SD_RTOL * scale for z in devs)
