"""Altair charts for the Compare page, built from `adlapp.significance` frames. No `st.*` here.

Every chart takes plain DataFrames and returns an Altair chart, so tests can inspect `chart.to_dict()`.
"""
from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from adlapp.significance import MIN_N

__all__ = ["matrix_chart", "strip_chart", "power_chart", "curve_chart"]

_MINUS = "\u2212"
_PALETTE = "category10"              # the Streamlit theme's default colours two variants alike (notes)


def _f(x: float, digits: int = 3, sign: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return (f"{x:+.{digits}g}" if sign else f"{x:.{digits}g}").replace("-", _MINUS)


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else (f"{p:.2g}" if p < 0.1 else f"{p:.2f}")


def _cell_text(r: dict, compact: bool) -> str:
    star = "\u2605 " if r["significant"] else ""
    delta = f"{star}\u0394 {_f(r['diff'], 2, sign=True)}"
    if not r["tested"]:
        g = "" if compact else f"\ng {_f(r['hedges_g'], 2)}"
        return f"{delta}{g}\nn < {MIN_N}: not tested"
    if compact:
        return f"{delta}\nadj. p {_p(r['p_adjusted'])}"
    return (f"{delta}\n[{_f(r['ci_low'], 2)}, {_f(r['ci_high'], 2)}]\ng {_f(r['hedges_g'], 2)}\n"
            f"p {_p(r['welch_p'])} \u2192 adj. {_p(r['p_adjusted'])}")


def matrix_chart(pairs: pd.DataFrame, order: Sequence[str], color_by: str = "diff",
                 higher_is_better: bool = True, correction: str = "holm") -> alt.LayerChart:
    """The pair matrix: row a, column b, one cell per pair (the upper triangle of the K x K matrix, so the
    first group has no column and the last no row), Δ = a − b.

    Args:
        pairs: `significance.Comparison.pairs` (axis_a, axis_b, diff, ci_low, ci_high, hedges_g, welch_p,
            p_adjusted, significant, tested, n_a, n_b).
        order: the K axis labels, in group order.
        color_by: "diff" (metric units) or "hedges_g". The diverging scale is centred at 0 and symmetric,
            and reversed for lower-is-better metrics so that blue always means "row is better".
    """
    compact = len(order) > 5
    colour = pairs["diff" if color_by == "diff" else "hedges_g"].astype(float)
    top = float(np.nanmax(np.abs(colour))) if colour.notna().any() else 0.0
    top = top if top > 0 else 1.0
    data = pairs.assign(
        colour=colour, dark=(colour.abs() > 0.6 * top).to_numpy(),
        cell=[_cell_text(r, compact) for r in pairs.to_dict("records")],
        verdict=["significant" if s else ("not significant" if t else f"not tested (n < {MIN_N})")
                 for s, t in zip(pairs["significant"], pairs["tested"])])
    data = data[["axis_a", "axis_b", "a", "b", "n_a", "n_b", "diff", "ci_low", "ci_high", "hedges_g",
                 "z_seed", "welch_p", "p_adjusted", "significant", "verdict", "colour", "dark", "cell"]]
    title = "\u0394 (row \u2212 column)" if color_by == "diff" else "Hedges' g (row \u2212 column)"
    x = alt.X("axis_b:N", title=None, sort=list(order[1:]), scale=alt.Scale(domain=list(order[1:])),
              axis=alt.Axis(labelAngle=-40, labelLimit=220, labelOverlap=False, orient="top"))
    y = alt.Y("axis_a:N", title=None, sort=list(order[:-1]), scale=alt.Scale(domain=list(order[:-1])),
              axis=alt.Axis(labelLimit=220))
    base = alt.Chart(data).encode(x=x, y=y)
    tooltip = ["a:N", "b:N", "n_a:Q", "n_b:Q", alt.Tooltip("diff:Q", format=".4g", title="Δ"),
               alt.Tooltip("ci_low:Q", format=".4g", title="CI low"),
               alt.Tooltip("ci_high:Q", format=".4g", title="CI high"),
               alt.Tooltip("hedges_g:Q", format=".3g", title="Hedges' g"),
               alt.Tooltip("z_seed:Q", format=".3g", title="course z (= d/√2)"),
               alt.Tooltip("welch_p:Q", format=".4g", title="Welch p"),
               alt.Tooltip("p_adjusted:Q", format=".4g", title=f"p adjusted ({correction})"), "verdict:N"]
    rect = base.mark_rect(stroke="black").encode(
        color=alt.Color("colour:Q", title=title,
                        scale=alt.Scale(scheme="redblue", domain=[-top, top], domainMid=0,
                                        reverse=not higher_is_better)),
        strokeWidth=alt.when("datum.significant").then(alt.value(3)).otherwise(alt.value(0)),
        tooltip=tooltip)
    lines = 2 if compact else 4                                # Vega starts a multi-line text at y
    text = base.mark_text(lineBreak="\n", fontSize=10 if compact else 11, lineHeight=13,
                          dy=-6.5 * (lines - 1)).encode(
        text="cell:N", color=alt.when("datum.dark").then(alt.value("white")).otherwise(alt.value("black")))
    cells = len(order) - 1
    # autosize "pad": Streamlit's default "fit" squeezed the cells far below these sizes (seen in Chromium)
    return (rect + text).properties(width=max(160, cells * (66 if compact else 130)),
                                    height=max(170, cells * (40 if compact else 80)),
                                    autosize=alt.AutoSizeParams(type="pad"))


def strip_chart(points: pd.DataFrame, summary: pd.DataFrame, metric_label: str) -> alt.LayerChart:
    """Every seed's value per group (always the raw points), with the mean and its 95 % t-interval.

    points: label, axis_label, variant, seed, value (finite only).
    summary: label, axis_label, n, mean, ci_low, ci_high (`stats.summarize` per group).
    """
    order = list(summary["axis_label"])
    x = alt.X("axis_label:N", title=None, sort=order,
              axis=alt.Axis(labelAngle=-40, labelLimit=220, labelOverlap=False))
    pts = alt.Chart(points).mark_circle(size=70, opacity=0.75).encode(
        x=x, xOffset=alt.XOffset("seed:N"),
        y=alt.Y("value:Q", title=metric_label, scale=alt.Scale(zero=False)),
        color=alt.Color("variant:N", legend=None, scale=alt.Scale(scheme=_PALETTE)),   # one colour per variant
        tooltip=["label:N", "seed:Q", alt.Tooltip("value:Q", format=".4g")])
    summ = summary[["label", "axis_label", "n", "mean", "ci_low", "ci_high"]]
    tip = ["label:N", "n:Q", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("ci_low:Q", format=".4g"),
           alt.Tooltip("ci_high:Q", format=".4g")]
    ci = alt.Chart(summ).mark_rule(color="black", strokeWidth=2).encode(x=x, y="ci_low:Q", y2="ci_high:Q",
                                                                         tooltip=tip)
    mean = alt.Chart(summ).mark_point(shape="diamond", filled=True, size=140, color="black").encode(
        x=x, y="mean:Q", tooltip=tip)
    return (pts + ci + mean).properties(title="every seed, mean ± 95 % CI", height=360)


def power_chart(curve: pd.DataFrame, current_n: int, targets: Sequence[float] = (0.8, 0.9)) -> alt.LayerChart:
    """Power against seeds per group (`stats.power_curve` rows: n, power, rule), current n marked."""
    line = alt.Chart(curve).mark_line(point=True).encode(
        x=alt.X("n:Q", title="seeds per group"), y=alt.Y("power:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("rule:N", title="test level", scale=alt.Scale(scheme=_PALETTE)),
        tooltip=["n:Q", alt.Tooltip("power:Q", format=".2f"), "rule:N"])
    goal = alt.Chart(pd.DataFrame({"power": list(targets)})).mark_rule(strokeDash=[4, 4], color="grey").encode(
        y="power:Q")
    now = pd.DataFrame({"n": [current_n], "label": [f"now: n = {current_n}"]})
    mark = alt.Chart(now).mark_rule(color="black").encode(x="n:Q")
    label = alt.Chart(now).mark_text(align="left", dx=4, dy=-6, y=0).encode(x="n:Q", text="label:N")
    return (line + goal + mark + label).properties(height=260, title="Power of a two-sided t-test")


def curve_chart(curves: pd.DataFrame, tests: pd.DataFrame, metric_label: str,
                width: int = 760) -> alt.VConcatChart:
    """Validation curves (mean line, min-max band) over a strip of the epochs where Welch rejects.

    curves: label, epoch, mean, lo, hi, n. tests: `stats.welch_over_epochs` rows (epoch, significant, ...).
    """
    x = alt.X("epoch:Q", title="epoch", scale=alt.Scale(zero=False, nice=False))
    colour = alt.Color("label:N", title=None, scale=alt.Scale(scheme=_PALETTE), legend=alt.Legend(orient="top"))
    base = alt.Chart(curves).encode(x=x, color=colour)
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("lo:Q", title=metric_label, scale=alt.Scale(zero=False)),
                                             y2="hi:Q")
    line = base.mark_line().encode(y="mean:Q", tooltip=["label:N", "epoch:Q", "n:Q",
                                                        alt.Tooltip("mean:Q", format=".4g")])
    marks = tests.assign(verdict=np.where(tests["significant"], "Welch rejects", "no evidence"))
    strip = alt.Chart(marks).mark_tick(thickness=2).encode(
        x=x, color=alt.Color("verdict:N", title=None, legend=alt.Legend(orient="bottom"),
                             scale=alt.Scale(domain=["Welch rejects", "no evidence"],
                                             range=["#d62728", "#d9d9d9"])),
        tooltip=["epoch:Q", alt.Tooltip("diff:Q", format=".4g", title="Δ"),
                 alt.Tooltip("welch_p:Q", format=".4g"), alt.Tooltip("p_adjusted:Q", format=".4g")])
    # fixed widths: "container" inside a vconcat overflowed Streamlit's column and cut the legend off
    top = (band + line).properties(height=260, width=width)
    return alt.vconcat(top, strip.properties(height=30, width=width)).resolve_scale(
        x="shared", color="independent")
