"""Pictures: every Altair chart of the app, from run tables and adlapp.compare's results. No streamlit here.

Numbers come from adlapp.compare / adlapp.stats and words (heads, cell texts, axis labels) from adlapp.report;
this module only draws. Every builder returns an Altair chart (or a spec), so tests can inspect `to_dict()`.

Honesty rules the builders keep:
- every mean and band says how many seeds are behind it (`n` in the tooltip, `n_seeds` = seeds in the
  series); where not every seed has reached an epoch yet the mean line is dashed, and
  `report.seed_progress_notes` says so in words, because a mean over fewer seeds jumps when a slow seed arrives;
- a series is `compare.series_table`'s: one variant trained one way, each seed once (its furthest run);
- spreads are standard deviations with ddof=1 (pandas' default), min/max bands are the range of the seeds;
- long curves are thinned to log- and linearly-spaced *actual* epochs (nothing is averaged away), plus
  every series' last epoch, so a 1000-epoch × many-run study stays a few hundred points per series;
- smoothing (`ema`) is TensorBoard's debiased exponential moving average, applied to the mean over seeds (and
  to each seed's own curve) over every recorded epoch; the raw mean stays drawn, faint, under the smoothed one,
  and tooltips give both, so smoothing never hides a number;
- zoom and pan act on the epoch axis only (drag, mouse wheel; double-click resets): the y scales are per panel;
- `colours` is the one colour function: a registry variant has the same colour on every chart of every page
  (curves, the course figures, the Compare strip plot and curve test), any other series a stable colour.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from functools import lru_cache

import altair as alt
import numpy as np
import pandas as pd

from adlapp import compare as cmp
from adlapp import report
from adlapp.config import VARIANTS, display_name
from adlapp.health import Health
from adlapp.metrics import METRICS, Metric, by_row, figure_metrics, label, metrics_for, test_metrics
from adlapp.store import RunTables

__all__ = [
    "PALETTE", "colours", "keep_epochs", "ema", "curve_frame", "curves_chart", "curves_spec", "figure_marker",
    "figure_chart",
    "matrix_chart", "strip_chart", "power_chart", "curve_test_chart", "spread_chart",
]

# Tableau 10: distinguishable, colour-blind friendlier than the theme default (which made two blues).
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
           "#9d755d", "#bab0ac")
_INCOMPLETE = "not all seeds yet"
_COMPLETE = "all seeds"
_BASELINE = "#888888"               # reference levels (chance, majority class): grey, never a series colour
_FLAG = "#d62728"                   # a flagged run (adlapp.health): red, on top of the series colours
_HEALTH_SHAPES = {"ok": "circle", "diverged": "square", "exploded": "triangle-up", "collapsed": "cross"}
_SIGNIFICANT = "significant (adjusted p < α)"
_NOT_SIGNIFICANT = "not significant"


# -- colour: one function for every chart ----------------------------------------------------------------------
def _registry_slot(variant: str) -> int:
    exp = variant.split("/")[0]
    return [v for v in VARIANTS if v.startswith(exp + "/")].index(variant)


def colours(series: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(domain, range) of the colour scale for the `series` labels of a frame with `series` and `variant`
    columns, in the frame's order (its `order` column when there is one).

    A registry variant under its display name always gets its registry position's colour (SGD is the third
    CNN colour on every page). Any other series (a custom variant, or a registry variant trained another
    way) gets a colour from a stable hash of its label among the slots the registry leaves free for its
    experiment; two that collide in one chart take the next free slot, in label order.
    """
    pairs = series[["series", "variant"]].astype(str)
    if "order" in series:
        pairs = pairs.assign(order=series["order"].to_numpy()).sort_values("order", kind="stable")
    pairs = pairs.drop_duplicates("series")
    slot: dict[str, int] = {}
    for s, v in zip(pairs["series"], pairs["variant"], strict=True):
        if v in VARIANTS and s == display_name(v):
            slot[s] = _registry_slot(v)
    taken = set(slot.values())
    for s, v in sorted(zip(pairs["series"], pairs["variant"], strict=True)):
        if s in slot:
            continue
        exp = v.split("/")[0]
        free = [i for i in range(len(PALETTE)) if i >= sum(n.startswith(exp + "/") for n in VARIANTS)]
        free = free or list(range(len(PALETTE)))
        i = free[int(hashlib.sha256(s.encode()).hexdigest(), 16) % len(free)]
        while i in taken and len(taken) < len(PALETTE):
            i = (i + 1) % len(PALETTE)
        slot[s] = i
        taken.add(i)
    domain = list(pairs["series"])
    return domain, [PALETTE[slot[s]] for s in domain]


def _colour(frame: pd.DataFrame, field: str = "series", **kw) -> alt.Color:
    domain, rng = colours(frame[[field, "variant"]].rename(columns={field: "series"}))
    return alt.Color(f"{field}:N", scale=alt.Scale(domain=domain, range=rng), **kw)


# -- curves ----------------------------------------------------------------------------------------------------
def keep_epochs(last: int, max_points: int = 120) -> np.ndarray:
    """At most ~max_points epochs in 1..last: half log-spaced (dense early, right for a log axis), half
    linearly spaced (even on a linear axis), always including 1 and `last`."""
    if last <= max_points:
        return np.arange(1, last + 1)
    half = max(2, max_points // 2)
    pts = np.concatenate([np.geomspace(1, last, half), np.linspace(1, last, half)])
    return np.unique(np.clip(np.rint(pts).astype(int), 1, last))


def ema(values: pd.Series, weight: float) -> pd.Series:
    """TensorBoard's scalar smoothing: the debiased exponential moving average of `values` in their order.

    With w = `weight` in [0, 1): last_t = w * last_(t-1) + (1 - w) * x_t from last_0 = 0, shown as
    last_t / (1 - w^t), t counting the finite values so far (the debiasing: without it the curve starts near 0).
    That equals sum_i w^i x_(t-i) / sum_i w^i, which is pandas' ewm(alpha=1-w, adjust=True); non-finite values
    (NaN, inf) are skipped by the average and passed through unchanged, as TensorBoard does. w = 0: the values.
    """
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    v = values.astype("float64")
    if weight == 0:
        return v
    finite = np.isfinite(v)
    smoothed = v.where(finite).ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean()
    return smoothed.where(finite, v)


def _smoothed(frame: pd.DataFrame, by: list[str], column: str, weight: float) -> pd.Series:
    """`ema` of `column` per group of `by`, over the epochs in order (`frame` sorted by by + epoch)."""
    if not weight or frame.empty:
        return frame[column].astype("float64")
    return frame.groupby(by, sort=False)[column].transform(lambda v: ema(v, weight))


def curve_frame(tables: RunTables, metrics: Sequence[str], max_points: int = 120,
                complete_only: bool = False, seeds: bool = False, smoothing: float = 0.0) -> pd.DataFrame:
    """Per series, metric and (kept) epoch: mean, sd (ddof=1), min, max and n over the seeds.

    `metrics` are per-epoch row names ("train_loss"). Columns: kind ("mean" | "seed"), series, variant, metric
    (its label), name, epoch, mean, smoothed, sd, lo, hi, sd_lo, sd_hi, n, n_seeds, seeds_note, all_seeds; with
    `seeds` also one "seed" row per run and epoch (key, seed, value, smoothed). Each seed of a series is one
    curve: its run that got furthest. n counts the seeds with a finite value at that epoch; n_seeds the seeds in
    the series. `complete_only` keeps only epochs every seed of the series has reached.
    `smoothing`: the `ema` weight, 0 (off) to < 1. `smoothed` is the EMA of the mean (of `value` on seed rows)
    per series (run) and metric over every epoch drawn (all of them, before long curves are thinned, so a weight
    means the same per epoch whatever the length); it equals the mean when smoothing is off. Bands stay raw.
    """
    cols = ["kind", "series", "variant", "metric", "name", "epoch", "mean", "smoothed", "sd", "lo", "hi", "sd_lo",
            "sd_hi", "n", "n_seeds", "seeds_note", "all_seeds", "key", "seed", "value"]
    lab = cmp.series_table(tables.runs)
    ep = tables.epochs
    if lab.empty or ep.empty:
        return pd.DataFrame(columns=cols)
    reached = ep.groupby("key")["epoch"].max()
    lab = cmp.one_per_seed(lab, ["series", "seed"], lab["key"].map(reached).fillna(0))
    ep = ep[ep["name"].isin(list(metrics))].merge(lab[["key", "series", "variant", "seed"]], on="key")
    if ep.empty:
        return pd.DataFrame(columns=cols)
    ep = ep.astype({"epoch": "int64", "value": "float64"})
    last = ep.groupby("series")["epoch"].max()
    keep = set(keep_epochs(int(last.max()), max_points).tolist()) | set(int(e) for e in last)
    if not smoothing:
        ep = ep[ep["epoch"].isin(keep)]          # thin first: the live view pays this every poll
    agg = (ep.groupby(["series", "variant", "name", "epoch"])["value"]
           .agg(mean="mean", sd="std", lo="min", hi="max", n="count").reset_index())
    agg["n_seeds"] = agg["series"].map(lab.groupby("series")["key"].nunique()).astype("int64")
    agg = agg[agg["n"] > 0]
    if complete_only:
        agg = agg[agg["n"] == agg["n_seeds"]]
    agg = agg.sort_values(["series", "name", "epoch"])
    agg["smoothed"] = _smoothed(agg, ["series", "name"], "mean", smoothing)
    agg = agg[agg["epoch"].isin(keep)]
    agg = agg.assign(kind="mean", sd_lo=agg["mean"] - agg["sd"], sd_hi=agg["mean"] + agg["sd"],
                     seeds_note=agg["n"].astype(str) + " of " + agg["n_seeds"].astype(str),
                     all_seeds=np.where(agg["n"] == agg["n_seeds"], _COMPLETE, _INCOMPLETE))
    parts = [_bridge(agg)]
    if seeds:
        runs = ep.sort_values(["key", "name", "epoch"])
        runs = runs.assign(kind="seed", seed=runs["seed"].astype("int64"),
                           smoothed=_smoothed(runs, ["key", "name"], "value", smoothing))
        parts.append(runs[runs["epoch"].isin(keep)])
    out = pd.concat(parts, ignore_index=True).reindex(columns=cols)
    out["metric"] = [label("epoch", n) for n in out["name"]]
    return out.sort_values(["kind", "series", "name", "epoch"], ignore_index=True)


def _bridge(agg: pd.DataFrame) -> pd.DataFrame:
    """Copy the last complete point into the incomplete part so the solid and dashed lines meet."""
    open_ = agg["all_seeds"] == _INCOMPLETE
    if not open_.any() or open_.all():
        return agg
    done = agg[~open_]
    last = done.loc[done.groupby(["series", "name"])["epoch"].idxmax()]
    extra = last.merge(agg.loc[open_, ["series", "name"]].drop_duplicates(), on=["series", "name"])
    return pd.concat([agg, extra.assign(all_seeds=_INCOMPLETE)], ignore_index=True)


def _facet_header() -> alt.Header:
    return alt.Header(labelFontSize=12, labelFontWeight="bold", labelLimit=0,
                      labelExpr="split(datum.value, '\\n')")


def _layers(sel: alt.Parameter, x: alt.X, color: alt.Color, band: str, seeds: bool,
            smoothing: float = 0.0, dash_legend: str = "bottom") -> list[alt.Chart]:
    base = alt.Chart().encode(x=x, color=color)
    mean = base.transform_filter(alt.datum.kind == "mean")
    line_y = "smoothed" if smoothing else "mean"
    smooth_tip = ([alt.Tooltip("smoothed:Q", title=f"smoothed (EMA {smoothing:g})", format=".4g")]
                  if smoothing else [])
    layers: list[alt.Chart] = []
    if band in ("minmax", "sd"):
        lo, hi = ("lo", "hi") if band == "minmax" else ("sd_lo", "sd_hi")
        layers.append(mean.mark_area(interpolate="linear").encode(
            y=alt.Y(f"{lo}:Q", title=None, scale=alt.Scale(zero=False)), y2=f"{hi}:Q",
            detail="all_seeds:N",
            opacity=alt.when(sel).then(alt.value(0.22)).otherwise(alt.value(0.03))))
    if seeds:
        layers.append(base.transform_filter(alt.datum.kind == "seed").mark_line(strokeWidth=0.8).encode(
            y=alt.Y(f"{line_y}:Q", title=None, scale=alt.Scale(zero=False)), detail="key:N",
            opacity=alt.when(sel).then(alt.value(0.5)).otherwise(alt.value(0.05)),
            tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("seed:Q"),
                     alt.Tooltip("epoch:Q"), alt.Tooltip("value:Q", title="value (raw)", format=".4g"),
                     *smooth_tip]))
    if smoothing:      # the raw mean stays visible, faint, under its smoothed line (TensorBoard's habit)
        layers.append(mean.mark_line(strokeWidth=1).encode(
            y=alt.Y("mean:Q", title=None, scale=alt.Scale(zero=False)), detail="all_seeds:N",
            opacity=alt.when(sel).then(alt.value(0.3)).otherwise(alt.value(0.05))))
    layers.append(mean.mark_line(strokeWidth=2).encode(
        y=alt.Y(f"{line_y}:Q", title=None, scale=alt.Scale(zero=False)),
        strokeDash=alt.StrokeDash("all_seeds:N", title="mean over", legend=alt.Legend(orient=dash_legend),
                                  scale=alt.Scale(domain=[_COMPLETE, _INCOMPLETE], range=[[1, 0], [5, 3]])),
        opacity=alt.when(sel).then(alt.value(1.0)).otherwise(alt.value(0.15))))
    # Invisible points carry the tooltip: a line's own tooltip shows one arbitrary point of the path.
    layers.append(mean.mark_circle(size=40, opacity=0).encode(
        y=alt.Y(f"{line_y}:Q", title=None),
        tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("metric:N"), alt.Tooltip("epoch:Q"),
                 alt.Tooltip("mean:Q", title="mean (raw)" if smoothing else "mean", format=".4g"), *smooth_tip,
                 alt.Tooltip("sd:Q", title="sd (ddof=1)", format=".4g"),
                 alt.Tooltip("lo:Q", title="min", format=".4g"), alt.Tooltip("hi:Q", title="max", format=".4g"),
                 alt.Tooltip("seeds_note:N", title="n seeds")]))
    return layers


def _zoom() -> alt.Parameter:
    """Zoom (mouse wheel) and pan (drag) on the epoch axis, double-click to reset: scales bound to an interval.
    x only: the y scales are per panel (independent), and a bound y would force one y range on all of them."""
    return alt.selection_interval(bind="scales", encodings=["x"], name="zoom")


def _is_loss(name: str) -> bool:
    """A loss row (lower is better, positive): the panels a log-y axis is offered for."""
    m = by_row("epoch", name)
    return (not m.higher_is_better) if m is not None else name.endswith("loss")


def _log_y(layers: list[alt.Chart]) -> list[alt.Chart]:
    """Copies of `layers` with a log y scale on every layer (one scale per panel: all layers must agree).
    A value <= 0 (e.g. mean − sd below zero) has no place on it and is left out by Vega."""
    out = []
    for layer in layers:
        layer = layer.copy(deep=True)
        layer.encoding.y["scale"] = alt.Scale(type="log")
        out.append(layer)
    return out


def _quiet_concat(make):
    """Build a concatenation of views that each carry the same `pick`/`zoom` params: Altair merges them into one
    (which is the point: one legend highlight and one zoom for all) and says so in a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Automatically deduplicated selection parameter")
        return make()


def _x(log_x: bool, batches: int | None = None) -> alt.X:
    """The epoch axis; with `batches` (per epoch) labelled in optimiser steps instead: the data stay in epochs
    (tooltips too), each tick label is epoch × batches, and the title gives the conversion. The course report's
    axis counted batches, which it noted was "off by a factor of 3" against epochs."""
    scale = alt.Scale(type="log", nice=False) if log_x else alt.Scale(type="linear", zero=False, nice=False)
    log = " (log scale)" if log_x else ""
    if batches:
        axis = alt.Axis(labelExpr=f"datum.value % 1 ? '' : format(datum.value * {int(batches)}, ',')")
        return alt.X("epoch:Q", title=f"batches{log}: 1 epoch = {int(batches)} batches", scale=scale, axis=axis)
    # Epochs are whole numbers: a short log axis would otherwise be labelled 1, 1.2, 1.4, ...
    axis = alt.Axis(labelExpr="datum.value % 1 ? '' : datum.label")
    return alt.X("epoch:Q", title="epoch" + log, scale=scale, axis=axis)


def _series_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """series, variant, order of a chart frame, in display order (registry order, then label)."""
    pairs = frame[["variant", "series"]].drop_duplicates("series")
    ranked = sorted(zip(pairs["variant"], pairs["series"], strict=True),
                    key=lambda vs: (cmp.variant_rank(vs[0]), vs[1]))
    return pd.DataFrame({"series": [s for _, s in ranked], "variant": [v for v, _ in ranked],
                         "order": range(len(ranked))})


def _metric_order(frame: pd.DataFrame) -> list[str]:
    known = [m.row for m in METRICS.values() if m.source == "epoch"]
    names = frame["name"].dropna().unique().tolist()
    return sorted(names, key=lambda n: known.index(n) if n in known else len(known))


def curves_chart(frame: pd.DataFrame, log_x: bool = True, band: str = "minmax", seeds: bool = False,
                 columns: int = 3, width: int = 210, height: int = 200, smoothing: float = 0.0,
                 log_y: bool = False, batches: int | None = None) -> alt.FacetChart | alt.ConcatChart | None:
    """One panel per metric, one colour per series: mean line over seeds plus a band.

    `frame` comes from `curve_frame` (with the same `smoothing`). band: "minmax" (range of the seeds), "sd"
    (mean ± 1 sd, ddof=1) or "none". smoothing > 0 draws the `smoothed` column as the mean line and keeps the
    raw mean faint under it. The x (epoch) scale is shared by all panels, zoomable (wheel, drag; double-click
    resets); y is per panel. log_y puts the loss panels on a log y axis (the score panels stay linear), as a
    concatenation of a loss facet and a score facet. Clicking a legend entry highlights that series. At most
    `columns` panels a row (then they wrap). Returns None when there is nothing to draw.
    """
    if frame.empty:
        return None
    domain, rng = colours(_series_frame(frame[frame["kind"] == "mean"]))
    metrics = tuple(label("epoch", m) for m in _metric_order(frame))
    losses = tuple(label("epoch", m) for m in _metric_order(frame) if _is_loss(m))
    return _curves(frame, tuple(domain), tuple(rng), metrics, log_x, band, seeds, columns, width, height,
                   float(smoothing), losses if log_y else (), batches)


def _curves(frame: pd.DataFrame, domain: tuple[str, ...], rng: tuple[str, ...], metrics: tuple[str, ...],
            log_x: bool, band: str, seeds: bool, columns: int, width: int, height: int, smoothing: float = 0.0,
            log_panels: tuple[str, ...] = (), batches: int | None = None) -> alt.FacetChart | alt.ConcatChart:
    sel = alt.selection_point(fields=["series"], bind="legend", name="pick")
    zoom = _zoom()
    # one panel a row (a narrow page): the legend's title on two lines, so the legends fit under the panel
    color = alt.Color("series:N", title=["variant", "(click to highlight)"] if columns == 1
                      else "variant (click to highlight)",
                      scale=alt.Scale(domain=list(domain), range=list(rng)),
                      legend=alt.Legend(labelLimit=400, titleLimit=400, symbolStrokeWidth=3, symbolOpacity=1,
                                        orient="bottom", **({"columns": 1} if columns == 1 else {})))

    def facet(panels: tuple[str, ...], log: bool, cols: int) -> alt.FacetChart:
        # one panel a row: the two legends one above, one below (side by side they are wider than the panel)
        layers = _layers(sel, _x(log_x, batches), color, band, seeds, smoothing, "top" if columns == 1 else "bottom")
        if label("epoch", "val_loss") in panels:
            layers.append(_val_loss_min_layer(sel, _x(log_x, batches), color))
        layered = alt.layer(*(_log_y(layers) if log else layers), data=frame).add_params(sel, zoom)
        return (layered.properties(width=width, height=height)
                .facet(facet=alt.Facet("metric:N", sort=list(panels), title=None, header=_facet_header()),
                       columns=cols)
                .resolve_scale(y="independent"))

    logged = tuple(m for m in metrics if m in log_panels)
    if not logged:
        return facet(metrics, False, columns)
    linear = tuple(m for m in metrics if m not in log_panels)
    parts = [facet(logged, True, min(columns, len(logged))).transform_filter(
        alt.FieldOneOfPredicate(field="metric", oneOf=list(logged)))]
    if linear:
        parts.append(facet(linear, False, min(columns, len(linear))).transform_filter(
            alt.FieldOneOfPredicate(field="metric", oneOf=list(linear))))
    # side by side while all panels fit in `columns`, else one part under the other (each wrapping itself)
    wrap = 1 if len(metrics) > columns else len(parts)
    return _quiet_concat(lambda: alt.concat(*parts, columns=wrap).resolve_scale(y="independent", x="shared"))


def _val_loss_min_layer(sel: alt.Parameter, x: alt.X, color: alt.Color) -> alt.Chart:
    """A point at each series' lowest *mean* validation loss, found by the spec itself (Vega-Lite transforms),
    so it also marks `curves_spec`'s data-less spec fed fresh data every poll.

    Only epochs every seed has reached count: a mean over fewer seeds jumps when a slow seed arrives, so its
    minimum would be an artefact. Ties go to the earliest epoch. The tooltip says "then it rises" only when
    the series has later (complete) epochs, all of them above the minimum by construction."""
    keep = ((alt.datum.kind == "mean") & (alt.datum.name == "val_loss") & (alt.datum.all_seeds == _COMPLETE))
    note = ("'lowest mean validation loss: epoch ' + datum.epoch + (datum.epoch < datum.last_epoch"
            " ? ' (then it rises: overfitting)' : ' (the last epoch so far: not rising yet)')")
    return (alt.Chart().transform_filter(keep)
            .transform_joinaggregate(last_epoch="max(epoch)", groupby=["series"])
            .transform_window(val_loss_rank="row_number()", groupby=["series"],
                              sort=[alt.SortField("mean", "ascending"), alt.SortField("epoch", "ascending")])
            .transform_filter(alt.datum.val_loss_rank == 1)
            .transform_calculate(val_loss_min=note)
            .mark_point(shape="triangle-down", filled=True, size=110, stroke="#222", strokeWidth=0.8)
            .encode(x=x, y=alt.Y("mean:Q", title=None), color=color,
                    opacity=alt.when(sel).then(alt.value(1.0)).otherwise(alt.value(0.15)),
                    tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("val_loss_min:N", title="minimum"),
                             alt.Tooltip("mean:Q", title="mean validation loss", format=".4f"),
                             alt.Tooltip("seeds_note:N", title="n seeds")]))


def curves_spec(frame: pd.DataFrame, log_x: bool = True, band: str = "minmax", seeds: bool = False,
                columns: int = 3, width: int = 210, height: int = 200, smoothing: float = 0.0,
                log_y: bool = False, batches: int | None = None) -> dict | None:
    """`curves_chart` as a Vega-Lite dict *without data*, for `st.vega_lite_chart(frame, spec)`.

    Building an Altair chart and serialising it costs ~60 ms, which a live view would pay every second; the
    spec depends only on the series, metrics and options, so it is built once per combination and cached,
    and each poll sends only the new data. Returns None when there is nothing to draw.
    Widths are pixels: Vega-Lite has no "container" width for a facet or a concatenation (Streamlit ignores its
    container width for facets too), so `columns` and `width` are what makes it fit.
    """
    if frame.empty:
        return None
    domain, rng = colours(_series_frame(frame[frame["kind"] == "mean"]))
    metrics = tuple(label("epoch", m) for m in _metric_order(frame))
    losses = tuple(label("epoch", m) for m in _metric_order(frame) if _is_loss(m)) if log_y else ()
    return json.loads(_spec_json(tuple(domain), tuple(rng), metrics, log_x, band, seeds, columns, width, height,
                                 float(smoothing), losses, batches))


@lru_cache(maxsize=64)
def _spec_json(domain: tuple[str, ...], rng: tuple[str, ...], metrics: tuple[str, ...], log_x: bool, band: str,
               seeds: bool, columns: int, width: int, height: int, smoothing: float = 0.0,
               log_panels: tuple[str, ...] = (), batches: int | None = None) -> str:
    empty = pd.DataFrame(columns=["kind", "series", "metric", "epoch"])
    spec = _curves(empty, domain, rng, metrics, log_x, band, seeds, columns, width, height, smoothing,
                   log_panels, batches).to_dict()
    spec.pop("data", None)
    spec.pop("datasets", None)
    for part in spec.get("concat", []):
        part.pop("data", None)
    return json.dumps(spec)


# -- the course figures ----------------------------------------------------------------------------------------
def figure_marker(experiment: str) -> Metric:
    """The test metric marked on the course figure's second row: the one whose curve that row draws (same
    units): test accuracy for the CNN, test F1 for the U-Net."""
    row = figure_metrics(experiment)[1]
    return next(m for m in metrics_for(experiment, "table") if METRICS[m.curve_key].row == row)


def figure_chart(tables: RunTables, experiment: str, log_x: bool = True, max_points: int = 120,
                 width: int | None = None, height: int = 150, baselines: dict[str, float] | None = None,
                 flags: dict[str, Health] | None = None, smoothing: float = 0.0, log_y: bool = False,
                 shared_y: bool = False, columns: int | None = None, batches: int | None = None
                 ) -> alt.FacetChart | alt.VConcatChart | None:
    """The course report's Figure 1 (CNN) / Figure 2 (U-Net), reborn: one column per series, rows training
    loss and validation accuracy (F1 for U-Net), min/max band over the seeds around the mean, log-x epochs
    shared per column, and each column headed by its final test metrics as mean ± sd (n seeds).

    The accuracy/F1 row also marks the test score (`figure_marker`: test accuracy / test F1, the row's own
    units) after every epoch the test split was scored at, e.g. the U-Net's 200, 400 and 1000: a diamond at
    the mean with a ± sd (ddof=1) error bar, its tooltip giving n and every test metric there.

    baselines: label -> value in the second row's units ({"chance 0.019": 0.019}); each is a dashed grey
    rule across every column of that row, labelled at its right end (and in its tooltip).
    flags: run key -> `health.Health`; each flagged run (`Health.flagged`) of these tables gets a red cross
    on the second row in its series' column, at its own value of that row's metric at `Health.epoch` (the
    nearest epoch it has a value at, when it has none there), its tooltip "seed S: <reason> at epoch E — detail".

    smoothing: `ema` weight of the mean lines (0 = off; the raw mean stays, faint). The epoch axis zooms and
    pans (wheel, drag; double-click resets). width: pixels per panel (default: what fits ~950 px).
    With none of the next three the figure is one facet (rows metric, columns variant, y per panel); with any of
    them it is one facet per row, stacked, each wrapping after `columns` variants:
    log_y: the loss row on a log y axis (the score row stays linear); shared_y: one y scale across the columns
    of a row (rows keep their own); columns: variants per line (fewer than the variants: the row wraps).
    batches: label the x axis in optimiser steps (batches per epoch), as the report's figure did.
    """
    rows = figure_metrics(experiment)
    frame = curve_frame(tables, rows, max_points=max_points, smoothing=smoothing)
    if frame.empty:
        return None
    summary = cmp.test_summary(tables, test_metrics(experiment))
    heads = report.figure_heads(summary, experiment)
    if len(marks := _test_marks(summary, experiment)):
        frame = pd.concat([frame, marks], ignore_index=True)
    frame["panel"] = [heads.get(s, s) for s in frame["series"]]
    order = _series_frame(frame)
    domain, rng = colours(order)
    panels = [heads.get(s, s) for s in order["series"]]
    # Each column adds ~65 px of axis labels and padding to its panel: 4 columns fit the ~820 px main column
    # of a 1280 px window beside the sidebar.
    width = width or max(100, min(200, 800 // len(panels) - 70))
    extra = [_baseline_rows(baselines, order, heads, rows[1]), _flag_rows(tables, flags, order, heads, rows[1])]
    if any(len(e) for e in extra):
        frame = pd.concat([frame, *[e for e in extra if len(e)]], ignore_index=True)
    sel = alt.selection_point(fields=["series"], bind="legend", name="pick")
    color = alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), legend=None)
    x = _x(log_x, batches)
    x["scale"] = x["scale"].copy()
    x["scale"]["padding"] = 6                                     # a test marker at the last epoch shows whole
    layers = [*_layers(sel, x, color, "minmax", False, smoothing), *_test_layers(x, color)]
    if len(extra[0]):
        layers += _baseline_layers(width)
    if len(extra[1]):
        layers.append(_flag_layer(x))
    zoom = _zoom()
    if not (log_y or shared_y or columns):
        layered = alt.layer(*layers, data=frame).add_params(sel, zoom)
        return (layered.properties(width=width, height=height)
                .facet(row=alt.Row("metric:N", sort=[label("epoch", m) for m in rows], title=None,
                                   header=_facet_header()),
                       column=alt.Column("panel:N", sort=panels, title=None, header=_facet_header()))
                .resolve_scale(y="independent")
                .configure_legend(orient="bottom"))               # not beside the columns: keeps the width
    per_line = min(columns or len(panels), len(panels))
    parts = []
    for i, row in enumerate(rows):
        name = label("epoch", row)
        mine = _log_y(layers) if log_y and _is_loss(row) else layers
        # the heads repeat under a wrapped row (a line of panels without heads is unreadable); else once, on top
        head = _facet_header() if i == 0 or per_line < len(panels) else alt.Header(labels=False)
        parts.append(alt.layer(*mine, data=frame).add_params(sel, zoom).properties(width=width, height=height)
                     .facet(facet=alt.Facet("panel:N", sort=panels, title=name + (" (log scale)" if mine is not layers
                                                                                    else ""),
                                            header=head), columns=per_line)
                     .transform_filter(alt.datum.metric == name)
                     .resolve_scale(y="shared" if shared_y else "independent"))
    return _quiet_concat(lambda: alt.vconcat(*parts).resolve_scale(y="independent", x="shared")
                         .configure_legend(orient="bottom"))


def _baseline_rows(baselines: dict[str, float] | None, order: pd.DataFrame, heads: dict[str, str],
                   row: str) -> pd.DataFrame:
    """Rows (kind "baseline") for the reference rules: one per baseline *and* column, because a layer of a
    faceted chart only appears in the cells whose facet fields (metric, panel) its rows carry."""
    out = [{"kind": "baseline", "series": s, "variant": v, "panel": heads.get(s, s), "name": row,
            "metric": label("epoch", row), "baseline": float(value), "baseline_label": name}
           for name, value in (baselines or {}).items() if np.isfinite(value)
           for s, v in zip(order["series"], order["variant"], strict=True)]
    return pd.DataFrame(out)


def _baseline_layers(width: int | str, data: pd.DataFrame | None = None, title: str | None = None) -> list[alt.Chart]:
    """A dashed grey rule across the plot at each `kind == "baseline"` row's value, its label at the right end.
    `width`: the plot's width in pixels, or "width" (Vega-Lite's own) where the chart's width is not fixed;
    `data`: the rows (None: the enclosing layer's); `title`: the y axis title the other layers give."""
    base = (alt.Chart() if data is None else alt.Chart(data)).transform_filter(alt.datum.kind == "baseline")
    y = alt.Y("baseline:Q", title=title, scale=alt.Scale(zero=False))
    tip = [alt.Tooltip("baseline_label:N", title="baseline"), alt.Tooltip("baseline:Q", title="value", format=".4g")]
    rule = base.mark_rule(color=_BASELINE, strokeDash=[4, 3], strokeWidth=1.2).encode(y=y, tooltip=tip)
    text = base.mark_text(align="right", baseline="bottom", dx=-2, dy=-2, fontSize=9, color="#555").encode(
        x=alt.value(width), y=y, text="baseline_label:N", tooltip=tip)
    return [rule, text]


def _flag_rows(tables: RunTables, flags: dict[str, Health] | None, order: pd.DataFrame, heads: dict[str, str],
               row: str) -> pd.DataFrame:
    """Rows (kind "flag") for the flagged runs' markers on the second row: one per flagged run of `tables`
    whose series is drawn, at (Health.epoch, the run's own value of `row` there, or at the nearest epoch it
    has a finite value; the run's last epoch when Health.epoch is None)."""
    flagged = {k: h for k, h in (flags or {}).items() if h is not None and h.flagged}
    if not flagged:
        return pd.DataFrame()
    lab = cmp.series_table(tables.runs)
    lab = lab[lab["key"].isin(set(flagged)) & lab["series"].isin(set(order["series"]))]
    ep = tables.epochs[(tables.epochs["name"] == row) & tables.epochs["key"].isin(set(lab["key"]))]
    ep = ep.astype({"epoch": "int64", "value": "float64"})
    ep = ep[np.isfinite(ep["value"])]
    out = []
    for r in lab.to_dict("records"):
        h, mine = flagged[r["key"]], ep[ep["key"] == r["key"]]
        if mine.empty:
            continue                                  # no value of this row at all: nowhere to put the marker
        at = int(h.epoch) if h.epoch is not None else int(mine["epoch"].max())
        # nearest epoch with a value, the earlier one on a tie
        near = mine.iloc[np.lexsort((mine["epoch"].to_numpy(), np.abs(mine["epoch"].to_numpy() - at)))[0]]
        seed = int(r["seed"])
        note = f"seed {seed}: {h.reason} at epoch {at}" + (f" — {h.detail}" if h.detail else "")
        out.append({"kind": "flag", "series": r["series"], "variant": r["variant"], "key": r["key"], "seed": seed,
                    "panel": heads.get(r["series"], r["series"]), "name": row, "metric": label("epoch", row),
                    "epoch": int(near["epoch"]), "value": float(near["value"]), "health": h.reason,
                    "flag_epoch": at, "flag_note": note})
    return pd.DataFrame(out)


def _flag_layer(x: alt.X) -> alt.Chart:
    """A red cross at each `kind == "flag"` row (a flagged run, see `_flag_rows`)."""
    return (alt.Chart().transform_filter(alt.datum.kind == "flag")
            .mark_point(shape="cross", filled=True, size=90, color=_FLAG, stroke="white", strokeWidth=0.5, opacity=1)
            .encode(x=x, y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
                    tooltip=[alt.Tooltip("flag_note:N", title="flagged"), alt.Tooltip("health:N"),
                             alt.Tooltip("series:N", title="variant"), alt.Tooltip("seed:Q"),
                             alt.Tooltip("epoch:Q", title="value at epoch"),
                             alt.Tooltip("value:Q", format=".4f")]))


def _test_marks(summary: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Rows (kind "test") for the figure's test markers: per series and test epoch the marked test metric's
    mean, sd (ddof=1), mean ± sd, n, placed in the accuracy/F1 row; `test_note` lists every test metric."""
    marked = figure_marker(experiment).row
    rows = []
    for (series, epoch), g in summary.groupby(["series", "epoch"], sort=False):
        by = {r["metric"]: r for r in g.to_dict("records")}
        r = by.get(marked)
        if r is None or not r["n"]:
            continue
        rows.append({"kind": "test", "series": series, "variant": r["variant"], "name": marked,
                     "metric": label("epoch", figure_metrics(experiment)[1]), "epoch": int(epoch),
                     "mean": r["mean"], "sd": r["sd"], "sd_lo": r["mean"] - r["sd"], "sd_hi": r["mean"] + r["sd"],
                     "n": r["n"], "test_metric": label("test", marked),
                     "test_note": report.test_note(by, experiment, r["n"])})
    return pd.DataFrame(rows)


def _test_layers(x: alt.X, color: alt.Color) -> list[alt.Chart]:
    """± sd error bar and a diamond at the mean for the `kind == "test"` rows."""
    test = alt.Chart().transform_filter(alt.datum.kind == "test")
    y = alt.Y("mean:Q", title=None, scale=alt.Scale(zero=False))
    bar = test.mark_rule(color="#333", strokeWidth=1.2).encode(
        x=x, y=alt.Y("sd_lo:Q", title=None, scale=alt.Scale(zero=False)), y2="sd_hi:Q")
    dot = test.mark_point(shape="diamond", filled=True, size=70, stroke="#222", strokeWidth=0.8,
                          opacity=1).encode(
        x=x, y=y, color=color,
        tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("epoch:Q", title="test after epoch"),
                 alt.Tooltip("test_metric:N", title="marker"), alt.Tooltip("mean:Q", format=".4f"),
                 alt.Tooltip("sd:Q", title="sd (ddof=1)", format=".4f"), alt.Tooltip("n:Q", title="n seeds"),
                 alt.Tooltip("test_note:N", title="test metrics (mean ± sd)")])
    return [bar, dot]


# -- the Compare page ------------------------------------------------------------------------------------------
def matrix_chart(res: cmp.Comparison, color_by: str = "diff", higher_is_better: bool = True) -> alt.LayerChart:
    """The pair matrix: row a, column b, one cell per compared pair (the upper triangle of the groups' K x K
    matrix under the default families), Δ = a − b; each cell says its adjusted p and family size.

    color_by: "diff" (metric units) or "hedges_g". The diverging scale is centred at 0 and symmetric, and
    reversed for lower-is-better metrics so that blue always means "row is better".
    """
    pairs = res.pairs
    axis = {g.label: report.axis_label(g) for g in res.groups}
    order = [axis[g.label] for g in res.groups]
    compact = len(order) > 5
    colour = pairs["diff" if color_by == "diff" else "hedges_g"].astype(float)
    top = float(np.nanmax(np.abs(colour))) if colour.notna().any() else 0.0
    top = top if top > 0 else 1.0
    data = pairs.assign(
        axis_a=pairs["a"].map(axis), axis_b=pairs["b"].map(axis), colour=colour,
        dark=(colour.abs() > 0.6 * top).to_numpy(),
        cell=[report.matrix_cell(r, compact) for r in pairs.to_dict("records")],
        family_text=[report.family_label(f) for f in pairs["family"]],
        verdict=["significant" if s else ("not significant" if t else f"not tested (n < {cmp.MIN_N})")
                 for s, t in zip(pairs["significant"], pairs["tested"], strict=True)])
    data = data.assign(test_name=[report.TEST_NAMES.get(t, t) for t in data["test"]])
    data = data[["axis_a", "axis_b", "a", "b", "n_a", "n_b", "diff", "ci_low", "ci_high", "ci_adj_low",
                 "ci_adj_high", "hedges_g", "z_seed", "test_name", "p", "p_adjusted", "family_text", "family_size",
                 "significant", "verdict", "colour", "dark", "cell"]]
    rows = [o for o in order if o in set(data["axis_a"])]
    cols = [o for o in order if o in set(data["axis_b"])]
    title = "Δ (row − column)" if color_by == "diff" else "Hedges' g (row − column)"
    x = alt.X("axis_b:N", title=None, sort=cols, scale=alt.Scale(domain=cols),
              axis=alt.Axis(labelAngle=-40, labelLimit=220, labelOverlap=False, orient="top"))
    y = alt.Y("axis_a:N", title=None, sort=rows, scale=alt.Scale(domain=rows), axis=alt.Axis(labelLimit=220))
    base = alt.Chart(data).encode(x=x, y=y)
    adjusted = f"p adjusted ({report.CORRECTION_SHORT[res.correction]})"
    tooltip = ["a:N", "b:N", "n_a:Q", "n_b:Q", alt.Tooltip("diff:Q", format=".4g", title="Δ"),
               alt.Tooltip("ci_low:Q", format=".4g", title="95 % CI low"),
               alt.Tooltip("ci_high:Q", format=".4g", title="95 % CI high"),
               alt.Tooltip("ci_adj_low:Q", format=".4g", title="CI adjusted like p: low"),
               alt.Tooltip("ci_adj_high:Q", format=".4g", title="CI adjusted like p: high"),
               alt.Tooltip("hedges_g:Q", format=".3g", title="Hedges' g"),
               alt.Tooltip("z_seed:Q", format=".3g", title="course z (standardised Δ, not a test)"),
               alt.Tooltip("test_name:N", title="test"),
               alt.Tooltip("p:Q", format=".4g", title="p"),
               alt.Tooltip("p_adjusted:Q", format=".4g", title=adjusted),
               alt.Tooltip("family_text:N", title="family"),
               alt.Tooltip("family_size:Q", title="pairs in the family"), "verdict:N"]
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
    # autosize "pad": Streamlit's default "fit" squeezed the cells far below these sizes (seen in Chromium)
    return (rect + text).properties(width=max(160, len(cols) * (66 if compact else 130)),
                                    height=max(170, len(rows) * (40 if compact else 80)),
                                    autosize=alt.AutoSizeParams(type="pad"))


def strip_chart(res: cmp.Comparison, metric_label: str,
                baselines: dict[str, float] | None = None) -> alt.LayerChart:
    """Every seed's value per group (always the raw points), coloured by series as on every page, with the
    mean and its 95 % t-interval.

    A seed its group lists in `Group.flags` (adlapp.health: diverged, exploded, collapsed) is drawn in a second
    layer with its reason's shape (legend "health"), its tooltip giving the reason, epoch and detail; the
    others stay circles (tooltip health "ok").
    baselines: label -> value in the metric's units, each a dashed grey rule labelled at its right end."""
    axis = {g.label: report.axis_label(g) for g in res.groups}
    order = [axis[g.label] for g in res.groups]
    flagged = {(g.label, int(seed)): h for g in res.groups for seed, h in g.flags if h.flagged}
    healths = [flagged.get((lab, int(seed))) for lab, seed in zip(res.points["label"], res.points["seed"],
                                                                  strict=True)]
    points = res.points.assign(
        axis_label=res.points["label"].map(axis),
        health=[h.reason if h else "ok" for h in healths],
        health_note=["" if h is None else f"{h.reason} at epoch {h.epoch}" + (f" — {h.detail}" if h.detail else "")
                     for h in healths])
    summ = res.summary.assign(axis_label=res.summary["label"].map(axis))
    x = alt.X("axis_label:N", title=None, sort=order,
              axis=alt.Axis(labelAngle=-40, labelLimit=220, labelOverlap=False))
    y = alt.Y("value:Q", title=metric_label, scale=alt.Scale(zero=False))
    tooltip = ["label:N", "seed:Q", alt.Tooltip("value:Q", format=".4g"), alt.Tooltip("health:N"),
               alt.Tooltip("health_note:N", title="flagged")]
    # healthy seeds stay circles (the first layer, as before); flagged ones are a layer of their own, shaped
    # by reason, so the legend lists only the reasons present
    pts = alt.Chart(points[points["health"] == "ok"]).mark_circle(size=70, opacity=0.75).encode(
        x=x, xOffset=alt.XOffset("seed:N"), y=y, color=_colour(points, legend=None), tooltip=tooltip)
    bad = points[points["health"] != "ok"]
    shown = [r for r in _HEALTH_SHAPES if r in set(bad["health"])]
    flagged_pts = [alt.Chart(bad).mark_point(size=90, opacity=0.9, filled=True, stroke="#222",
                                             strokeWidth=0.6).encode(
        x=x, xOffset=alt.XOffset("seed:N"), y=y, color=_colour(points, legend=None),
        shape=alt.Shape("health:N", title="health", legend=alt.Legend(values=shown, orient="bottom"),
                        scale=alt.Scale(domain=list(_HEALTH_SHAPES), range=list(_HEALTH_SHAPES.values()))),
        tooltip=tooltip)] if len(bad) else []
    summ = summ[["label", "axis_label", "n", "mean", "ci_low", "ci_high"]]
    tip = ["label:N", "n:Q", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("ci_low:Q", format=".4g"),
           alt.Tooltip("ci_high:Q", format=".4g")]
    ci = alt.Chart(summ).mark_rule(color="black", strokeWidth=2).encode(x=x, y="ci_low:Q", y2="ci_high:Q",
                                                                         tooltip=tip)
    mean = alt.Chart(summ).mark_point(shape="diamond", filled=True, size=140, color="black").encode(
        x=x, y="mean:Q", tooltip=tip)
    ref = pd.DataFrame([{"kind": "baseline", "baseline": float(v), "baseline_label": k}
                        for k, v in (baselines or {}).items() if np.isfinite(v)])
    rules = _baseline_layers("width", ref, metric_label) if len(ref) else []
    return alt.layer(pts, *flagged_pts, ci, mean, *rules).properties(title="every seed, mean ± 95 % CI", height=360)


def power_chart(plan: cmp.PowerPlan, targets: Sequence[float] = (0.8, 0.9)) -> alt.LayerChart:
    """Power against seeds per group (`plan.curve`), one line per test level, the current n marked."""
    curve = plan.curve.assign(rule=[report.power_rule(int(k)) for k in plan.curve["comparisons"]])
    rules = list(dict.fromkeys(curve["rule"]))
    line = alt.Chart(curve).mark_line(point=True).encode(
        x=alt.X("n:Q", title="seeds per group"), y=alt.Y("power:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("rule:N", title="test level",                      # test levels, not variants: greys
                        scale=alt.Scale(domain=rules, range=["#9d9d9d", "#222222"][:len(rules)])),
        tooltip=["n:Q", alt.Tooltip("power:Q", format=".2f"), "rule:N"])
    goal = alt.Chart(pd.DataFrame({"power": list(targets)})).mark_rule(strokeDash=[4, 4], color="grey").encode(
        y="power:Q")
    now = pd.DataFrame({"n": [plan.current_n], "label": [f"now: n = {plan.current_n}"]})
    mark = alt.Chart(now).mark_rule(color="black").encode(x="n:Q")
    text = alt.Chart(now).mark_text(align="left", dx=4, dy=-6, y=0).encode(x="n:Q", text="label:N")
    return (line + goal + mark + text).properties(height=260, title="Power of a two-sided t-test")


def curve_test_chart(cur: cmp.CurveTest, width: int = 760) -> alt.VConcatChart:
    """The two series' per-epoch curves (mean line, min-max band, coloured as on every page) over a strip of
    the epochs, dark where the difference is significant after the correction (`compare.curve_test`)."""
    x = alt.X("epoch:Q", title="epoch", scale=alt.Scale(zero=False, nice=False))
    curves = cur.curves
    base = alt.Chart(curves).encode(x=x, color=_colour(curves, "label", title=None, legend=alt.Legend(orient="top")))
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("lo:Q", title=cur.metric.label, scale=alt.Scale(zero=False)),
                                             y2="hi:Q")
    line = base.mark_line().encode(y="mean:Q", tooltip=[alt.Tooltip("label:N", title="variant"), "epoch:Q",
                                                        "n:Q", alt.Tooltip("mean:Q", format=".4g")])
    # "not significant" is not "no evidence": with few seeds a real difference often stays not significant
    marks = cur.tests.assign(verdict=np.where(cur.tests["significant"], _SIGNIFICANT, _NOT_SIGNIFICANT))
    strip = alt.Chart(marks).mark_tick(thickness=2).encode(
        x=x, color=alt.Color("verdict:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=300),
                             scale=alt.Scale(domain=[_SIGNIFICANT, _NOT_SIGNIFICANT],
                                             range=["#222222", "#d9d9d9"])),
        tooltip=["epoch:Q", alt.Tooltip("diff:Q", format=".4g", title="Δ"),
                 alt.Tooltip("welch_p:Q", format=".4g"), alt.Tooltip("p_adjusted:Q", format=".4g")])
    # fixed widths: "container" inside a vconcat overflowed Streamlit's column and cut the legend off
    top = (band + line).properties(height=260, width=width)
    return alt.vconcat(top, strip.properties(height=30, width=width)).resolve_scale(
        x="shared", color="independent")


# -- spread across seeds ---------------------------------------------------------------------------------------
def spread_chart(spread: cmp.SeedSpread) -> alt.Chart | None:
    """`compare.seed_spread`'s sd across seeds (ddof=1) against the evaluation epoch: one line with points per
    series, coloured as on every page; the tooltip gives n, sd, min and max. The x axis is ordinal for at most
    5 distinct epochs (200/400/1000 evenly spaced), else quantitative. None for an empty table."""
    table = spread.table
    if table.empty:
        return None
    ordinal = table["epoch"].nunique() <= 5
    x = alt.X(f"epoch:{'O' if ordinal else 'Q'}", title="evaluation epoch",
              **({} if ordinal else {"scale": alt.Scale(zero=False, nice=False)}))
    label_ = spread.metric.label if spread.metric is not None else "value"
    return alt.Chart(table).mark_line(point=True).encode(
        x=x, y=alt.Y("sd:Q", title="sd across seeds (ddof=1)"),
        color=_colour(table, title="variant", legend=alt.Legend(orient="bottom", labelLimit=400)),
        tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("epoch:Q"), alt.Tooltip("n:Q", title="n seeds"),
                 alt.Tooltip("sd:Q", title="sd (ddof=1)", format=".4g"),
                 alt.Tooltip("lo:Q", title=f"min {label_}", format=".4g"),
                 alt.Tooltip("hi:Q", title=f"max {label_}", format=".4g")]
    ).properties(height=260)
