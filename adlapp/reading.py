"""The course study in a few sentences, generated from the numbers (no streamlit, no hard-coded verdicts).

Groups and tests come from `adlapp.significance` (`extract_groups`, `compare_groups`, `power_plan`), so every
number is the one `adlapp.stats` gives the Compare page: Welch's t-test, Holm over the pairs of one family,
95 % CIs of Δ, the course's z kept only as a standardised difference, seeds needed at 80 % power.

Families, as in the course report:
- CNN: the three variants on test accuracy at the course's epoch 200 (else the latest test epoch), 3 pairs;
- U-Net: the four variants on test pixel accuracy at each budget 200 / 400 / 1000, 6 pairs per budget;
- U-Net: Normal after 200 vs after 1000 epochs, the one pair the report computed its z for;
- U-Net: the report's test-loss claim, ELU vs ReLU at the smallest budget (both upsamplings), Holm over 2.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from adlapp import significance as sig
from adlapp import stats
from adlapp.store import RunTables

__all__ = ["course_reading"]

_CNN = sig.PRESETS["Course: CNN optimisers & BN"]
_UNET = sig.PRESETS["Course: U-Net variants at 200/400/1000"]
_NORMAL = sig.PRESETS["Course: normal 200 vs 1000"]
_ELU_PAIRS = (("unet/elu", "unet/normal"), ("unet/nearest-elu", "unet/nearest"))   # ELU − ReLU, same upsampling
_TITLE = {"cnn": "CNN", "unet": "U-Net"}
_MINUS = "\u2212"


def course_reading(tables: RunTables, alpha: float = sig.ALPHA) -> list[str]:
    """Short markdown sentences, one list item each, on what the finished course runs in `tables` show.

    Per experiment present: which differences are significant after Holm over the family compared (Δ with
    its 95 % CI, adjusted p, n per group); where none is, the seeds per group that 80 % power would need
    for the clearest observed difference (`stats.seeds_needed` at α / family size). For U-Net also the
    report's Normal 200-vs-1000 comparison with its z = d/√2, and its claim about ELU and test loss.
    Returns [] when there are no finished runs.
    """
    opts = sig.options(tables)
    out: list[str] = []
    if "cnn" in opts:
        avail = opts["cnn"]
        epoch = _pick(_CNN.epochs, avail["epochs"])[-1]
        out += _family(tables, "cnn", _present(_CNN.variants, avail), epoch,
                       sig.metric_by_key("cnn", _CNN.metric), alpha)
    if "unet" in opts:
        avail = opts["unet"]
        pix = sig.metric_by_key("unet", _UNET.metric)
        for epoch in _pick(_UNET.epochs, avail["epochs"], every=True):
            out += _family(tables, "unet", _present(_UNET.variants, avail), epoch, pix, alpha)
        out += _budget_pair(tables, avail, sig.metric_by_key("unet", _NORMAL.metric), alpha)
        out += _elu_loss(tables, avail, alpha)
    return out


def _pick(course: Sequence[int], avail: Sequence[int], every: bool = False) -> list[int]:
    """The course's epochs the data has; else every available one (`every`) or the latest."""
    have = [e for e in course if e in avail]
    return have or (list(avail) if every else list(avail)[-1:])


def _present(course: Sequence[str], avail: dict[str, list]) -> list[str]:
    return [v for v in course if v in avail["variants"]]


# -- formatting ---------------------------------------------------------------------------------------------
def _dec(*values: float) -> int:
    """Decimals showing at least 3 places and 2 significant digits of the largest magnitude (as stats does)."""
    finite = [abs(v) for v in values if np.isfinite(v) and v != 0]
    return 3 if not finite else int(min(8, max(3, 1 - math.floor(math.log10(max(finite))))))


def _num(x: float, dec: int, sign: bool = False) -> str:
    if not np.isfinite(x):
        return "n/a"
    if round(x, dec) == 0:
        x = 0.0
    return (f"{x:+.{dec}f}" if sign and x != 0 else f"{x:.{dec}f}").replace("-", _MINUS)


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return "= " + (f"{p:.{1 - math.floor(math.log10(p))}f}" if p < 0.1 else f"{p:.2f}")


def _delta(r: dict) -> str:
    """'Δ = +0.012, 95 % CI [0.004, 0.020]' (no CI where Welch has none)."""
    dec = _dec(r["diff"], r["ci_low"], r["ci_high"])
    out = f"Δ = {_num(r['diff'], dec, sign=True)}"
    if np.isfinite(r["ci_low"]):
        out += f", 95 % CI [{_num(r['ci_low'], dec)}, {_num(r['ci_high'], dec)}]"
    return out


def _n_pair(r: dict) -> str:
    return f"n = {r['n_a']} vs {r['n_b']}"


def _n_groups(groups: Sequence[sig.Group]) -> str:
    ns = {g.n for g in groups}
    text = (f"n = {ns.pop()} per variant" if len(ns) == 1
            else "n = " + ", ".join(f"{g.n} ({g.label})" for g in groups))
    excluded = sum(g.n_excluded for g in groups)
    return text + (f", {excluded} diverged run(s) excluded" if excluded else "")


def _pairs_word(m: int) -> str:
    return f"{m} pair{'s' if m != 1 else ''}"


# -- families -----------------------------------------------------------------------------------------------
def _family(tables: RunTables, experiment: str, variants: list[str], epoch: int, metric: sig.Metric,
            alpha: float) -> list[str]:
    """The variants at one epoch, every pair, Holm over the tested pairs."""
    title = f"**{_TITLE[experiment]}, {metric.label} after epoch {epoch}**"
    groups, _ = sig.extract_groups(tables, experiment, variants, [epoch], metric)
    if len(groups) < 2:
        return [f"{title}: fewer than two variants have finished runs here; nothing to compare."]
    res = sig.compare_groups(groups, "holm", alpha)
    pairs = res.pairs.to_dict("records")
    tested = [r for r in pairs if r["tested"] and np.isfinite(r["welch_p"])]
    hits = [r for r in tested if r["significant"]]
    m = len(tested)
    method = f"Welch's t-test, Holm over {_pairs_word(m)}, α = {alpha:g}"
    if not tested:
        why = (f"a t-test on fewer than {sig.MIN_N} seeds has about one degree of freedom"
               if min(g.n for g in groups) < sig.MIN_N else "the seeds of each variant agree exactly (no spread)")
        return [f"{title} ({_n_groups(groups)}): not tested, since {why}. "
                + _clearest(res, pairs, len(pairs), alpha)]
    if not hits:
        return [f"{title} ({_n_groups(groups)}; {method}): no difference is significant. "
                + _clearest(res, tested, m, alpha)]
    verdict = f"{len(hits)} of {m} pairs differ significantly" if m > 1 else "the difference is significant"
    lines = [f"{title} ({_n_groups(groups)}; {method}): {verdict}."]
    for r in hits:
        word = "higher" if r["diff"] > 0 else "lower"
        lines.append(f"{r['a']} is {word} than {r['b']}: {_delta(r)}, adjusted p {_p(r['p_adjusted'])}; "
                     f"{_n_pair(r)}.")
    rest = [r for r in pairs if not r["significant"]]
    if rest:
        lines.append("Not significant: " + "; ".join(
            f"{r['a']} vs {r['b']} ({_delta(r)}, "
            + (f"adjusted p {_p(r['p_adjusted'])})" if np.isfinite(r["p_adjusted"]) else "not tested)")
            for r in rest) + ".")
    return lines


def _clearest(res: sig.Comparison, pairs: list[dict], family: int, alpha: float) -> str:
    """The pair with the largest standardised difference, and the seeds 80 % power would need for it."""
    if not pairs:
        return ""
    d = [abs(r["cohens_d"]) if np.isfinite(r["cohens_d"]) else -1.0 for r in pairs]
    r = pairs[int(np.argmax(d))]
    p = f", adjusted p {_p(r['p_adjusted'])}" if np.isfinite(r["p_adjusted"]) else ""
    text = f"The clearest difference is {r['a']} vs {r['b']}: {_delta(r)}{p}."
    a, b = res.pair_groups(res.pair_labels().index(f"{r['a']} vs {r['b']}"))
    return text + " " + _seeds_sentence(a, b, family, alpha)


def _seeds_sentence(a: sig.Group, b: sig.Group, family: int, alpha: float) -> str:
    plan = sig.power_plan(a, b, None, comparisons=family, alpha=alpha)     # recommended: 80 % power, α/family
    if plan.error:
        return f"No seeds can be planned from it: {plan.error[0].lower()}{plan.error[1:]}"
    level = f"α = {alpha:g}/{family}" if family > 1 else f"α = {alpha:g}"
    few = min(a.n, b.n)
    return ("Detecting a difference that size with 80 % power would take about "
            f"{plan.recommended} seeds per group (d = {plan.d:.2g}, {level}); an effect size from "
            f"{few} seeds is noisy, so take that as a rough guide.")


def _budget_pair(tables: RunTables, avail: dict[str, list], metric: sig.Metric, alpha: float) -> list[str]:
    """Normal after the shortest vs the longest budget: the report's z, kept as a standardised difference."""
    normal = _NORMAL.variants[0]
    lo, hi = (_NORMAL.epochs if set(_NORMAL.epochs) <= set(avail["epochs"])
              else (avail["epochs"][0], avail["epochs"][-1]))      # tiny test runs: first vs last budget
    if normal not in avail["variants"] or lo == hi:
        return []
    groups, _ = sig.extract_groups(tables, "unet", [normal], [hi, lo], metric)   # Δ = longer − shorter
    if len(groups) < 2:
        return []
    res = sig.compare_groups(groups, "holm", alpha)
    r = res.pairs.iloc[0].to_dict()
    a, b = groups
    if r["tested"]:
        verdict = "significant" if r["significant"] else "not significant"
        test = f"Welch p {_p(r['p_adjusted'])}, {_n_pair(r)}: {verdict}"
    else:
        test = f"{_n_pair(r)}: not tested (n < {sig.MIN_N})"
    text = (f"**{sig.variant_name(normal)}, {hi} vs {lo} epochs** (the report's comparison; {metric.label} "
            f"after {hi} minus after {lo}): {_delta(r)}; {test}. Standardised difference z = d/√2 = "
            f"{_num(r['z_seed'], 2)} (the report: 0.17σ), an effect size, not a test.")
    if np.isfinite(r["z_seed"]) and not r["significant"]:
        text += " " + _seeds_sentence(a, b, 1, alpha)
    if set(a.keys) & set(b.keys):
        text += " Both groups are the same runs scored twice, which Welch treats as independent."
    return [text]


def _elu_loss(tables: RunTables, avail: dict[str, list], alpha: float) -> list[str]:
    """The report: 'when running fewer epochs the ELU activation gives a significantly lower final test-loss
    across the board'. Checked at the smallest budget, ELU vs ReLU for each upsampling, Holm over the pairs."""
    loss = sig.metric_by_key("unet", "test:loss")
    epoch = _pick(_UNET.epochs, avail["epochs"], every=True)[0]
    rows = []
    for elu, relu in _ELU_PAIRS:
        if elu in avail["variants"] and relu in avail["variants"]:
            groups, _ = sig.extract_groups(tables, "unet", [elu, relu], [epoch], loss)
            if len(groups) == 2:
                rows.append(sig.compare_groups(groups, "holm", alpha).pairs.iloc[0].to_dict())
    if not rows:
        return []
    welch = [r["welch_p"] if r["tested"] else math.nan for r in rows]
    adjusted = stats.holm(welch)
    m = int(np.isfinite(welch).sum())
    parts, lower = [], 0
    for r, p in zip(rows, adjusted):
        if not np.isfinite(p):
            parts.append(f"{r['a']} vs {r['b']}: {_delta(r)}, not tested (n < {sig.MIN_N})")
            continue
        hit = p < alpha
        if hit and r["diff"] < 0:
            lower += 1
        how = ("significantly lower" if r["diff"] < 0 else "significantly higher") if hit else "not significant"
        parts.append(f"{r['a']} vs {r['b']}: {_delta(r)}, adjusted p {_p(p)}, {_n_pair(r)}, {how}")
    if m == 0:
        verdict = "not testable with these seeds"
    elif lower == len(rows):
        verdict = "supported by these seeds"
    elif lower:
        verdict = "only partly supported"
    else:
        verdict = "not supported by these seeds"
    head = (f"**The report's claim that ELU gives a lower test loss at fewer epochs**, {loss.label} after "
            f"epoch {epoch} (Welch's t-test, Holm over {_pairs_word(m)}): {verdict}. ")
    return [head + "; ".join(parts) + "."]
