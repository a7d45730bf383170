"""Altair chart and table builders from run tables (`adlapp.store.RunTables`). No streamlit here.

Honesty rules the builders keep:
- every mean and band says how many seeds are behind it (`n` in the tooltip, `n_seeds` = runs in the
  series); where not every seed has reached an epoch yet the mean line is dashed, and `progress_notes`
  says so in words, because a mean over fewer seeds jumps when a slow seed arrives;
- spreads are standard deviations with ddof=1 (pandas' default), min/max bands are the range of the seeds;
- long curves are thinned to log- and linearly-spaced *actual* epochs (nothing is averaged away), plus
  every series' last epoch, so a 1000-epoch × many-run study stays a few hundred points per series;
- colours are a fixed function of the variant name, so "cnn/sgd" is the same colour on every page.
"""
from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from adlapp.config import COURSE_NAMES, VARIANTS
from adlapp.store import RunTables

__all__ = [
    "CURVE_METRICS", "FIGURE_METRICS", "FIGURE_TESTS", "TEST_METRICS", "TITLES", "PALETTE", "series_table",
    "colours", "keep_epochs", "curve_frame", "progress_notes", "curves_chart", "curves_spec", "figure_chart",
    "test_summary", "test_table", "course_table", "COURSE_ROWS",
]

CURVE_METRICS = {"cnn": ("train_loss", "val_loss", "val_acc"), "unet": ("train_loss", "val_loss", "val_f1")}
FIGURE_METRICS = {"cnn": ("train_loss", "val_acc"), "unet": ("train_loss", "val_f1")}   # the report's panels
FIGURE_TESTS = {"cnn": "acc", "unet": "f1"}    # test metric marked on the figure's second row: same units
TEST_METRICS = {"cnn": ("acc", "loss"), "unet": ("pixel_acc", "f1", "loss")}
TITLES = {
    "train_loss": "training loss", "val_loss": "validation loss", "val_acc": "validation accuracy",
    "val_f1": "validation F1", "val_pixel_acc": "validation pixel accuracy", "seconds": "seconds per epoch",
    "acc": "test accuracy", "loss": "test loss", "f1": "test F1", "pixel_acc": "test pixel accuracy",
}
_LOWER_IS_BETTER = {"loss", "train_loss", "val_loss", "seconds"}
# Tableau 10: distinguishable, colour-blind friendlier than the theme default (which made two blues).
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
           "#9d755d", "#bab0ac")
# The course's U-Net table uses these short row names.
COURSE_ROWS = {"unet/normal": "Normal", "unet/nearest": "Nearest", "unet/elu": "ELU",
               "unet/nearest-elu": "Nearest+ELU"}
_INCOMPLETE = "not all seeds yet"
_COMPLETE = "all seeds"


# -- series: which runs are averaged together ----------------------------------------------------------------
def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
    return out


def _variant_order(variant: str) -> tuple[int, str]:
    names = list(VARIANTS)
    return (names.index(variant), "") if variant in names else (len(names), variant)


def series_table(runs: pd.DataFrame) -> pd.DataFrame:
    """key -> series label, the variant it belongs to and a display order.

    Runs of one variant are one series (their seeds are averaged). Where runs share a variant label but
    differ in some other setting (epochs, data size, ...), each setting gets its own series, labelled with the
    settings that differ — runs with different configurations are never averaged together.
    """
    if runs.empty:
        return pd.DataFrame(columns=["key", "series", "variant", "order"])
    base = [COURSE_NAMES.get(v, v) for v in runs["variant"]]
    configs = [_flat(json.loads(c)) if isinstance(c, str) and c else {} for c in runs["config"]]
    labels = list(base)
    by_label: dict[str, list[int]] = {}
    for i, b in enumerate(base):
        by_label.setdefault(b, []).append(i)
    for b, idx in by_label.items():
        distinct = {json.dumps(configs[i], sort_keys=True, default=str) for i in idx}
        if len(distinct) < 2:
            continue
        fields = sorted({f for i in idx for f in configs[i]
                         if len({json.dumps(configs[j].get(f), default=str) for j in idx}) > 1})
        for i in idx:
            labels[i] = f"{b} (" + ", ".join(f"{f.split('.')[-1]}={configs[i].get(f)}" for f in fields) + ")"
    out = pd.DataFrame({"key": runs["key"].to_numpy(), "series": labels, "variant": runs["variant"].to_numpy()})
    order = sorted(set(zip(out["variant"], out["series"])), key=lambda vs: (_variant_order(vs[0]), vs[1]))
    rank = {s: i for i, (_, s) in enumerate(order)}
    out["order"] = out["series"].map(rank)
    return out


def colours(series: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(domain, range) for a colour scale: a registry variant keeps its registry position's colour, any other
    label a colour chosen by a stable hash of its name (the next free one if two collide in one chart)."""
    pairs = series[["series", "variant", "order"]].drop_duplicates("series").sort_values("order")
    per_exp: dict[str, list[str]] = {}
    for name in VARIANTS:
        per_exp.setdefault(name.split("/")[0], []).append(name)
    taken: set[int] = set()
    domain, rng = [], []
    for s, v in zip(pairs["series"], pairs["variant"]):
        exp = str(v).split("/")[0]
        if v in per_exp.get(exp, []) and s == COURSE_NAMES.get(v, v):
            want = per_exp[exp].index(v)
        else:
            want = int(hashlib.sha256(str(s).encode()).hexdigest(), 16) % len(PALETTE)
        i = want
        while i in taken and len(taken) < len(PALETTE):
            i = (i + 1) % len(PALETTE)
        taken.add(i)
        domain.append(s)
        rng.append(PALETTE[i])
    return domain, rng


# -- curves --------------------------------------------------------------------------------------------------
def keep_epochs(last: int, max_points: int = 120) -> np.ndarray:
    """At most ~max_points epochs in 1..last: half log-spaced (dense early, right for a log axis), half
    linearly spaced (even on a linear axis), always including 1 and `last`."""
    if last <= max_points:
        return np.arange(1, last + 1)
    half = max(2, max_points // 2)
    pts = np.concatenate([np.geomspace(1, last, half), np.linspace(1, last, half)])
    return np.unique(np.clip(np.rint(pts).astype(int), 1, last))


def curve_frame(tables: RunTables, metrics: tuple[str, ...] | list[str], max_points: int = 120,
                complete_only: bool = False, seeds: bool = False) -> pd.DataFrame:
    """Per series, metric and (kept) epoch: mean, sd (ddof=1), min, max and n over the seeds.

    Columns: kind ("mean" | "seed"), series, variant, metric (its title), name, epoch, mean, sd, lo, hi,
    sd_lo, sd_hi, n, n_seeds, seeds_note, all_seeds; with `seeds` also one "seed" row per run and epoch
    (key, seed, value). n counts the seeds with a finite value at that epoch; n_seeds the runs in the series.
    `complete_only` keeps only epochs every seed of the series has reached.
    """
    cols = ["kind", "series", "variant", "metric", "name", "epoch", "mean", "sd", "lo", "hi", "sd_lo", "sd_hi",
            "n", "n_seeds", "seeds_note", "all_seeds", "key", "seed", "value"]
    lab = series_table(tables.runs)
    ep = tables.epochs
    if lab.empty or ep.empty:
        return pd.DataFrame(columns=cols)
    ep = ep[ep["name"].isin(list(metrics))].merge(lab[["key", "series", "variant"]], on="key")
    if ep.empty:
        return pd.DataFrame(columns=cols)
    ep = ep.astype({"epoch": "int64", "value": "float64"})
    last = ep.groupby("series")["epoch"].max()
    keep = set(keep_epochs(int(last.max()), max_points).tolist()) | set(int(e) for e in last)
    ep = ep[ep["epoch"].isin(keep)]
    agg = (ep.groupby(["series", "variant", "name", "epoch"])["value"]
           .agg(mean="mean", sd="std", lo="min", hi="max", n="count").reset_index())
    n_seeds = lab.groupby("series")["key"].nunique()
    agg["n_seeds"] = agg["series"].map(n_seeds).astype("int64")
    agg = agg[agg["n"] > 0]
    complete = agg["n"] == agg["n_seeds"]
    if complete_only:
        agg = agg[complete]
    agg = agg.assign(kind="mean", sd_lo=agg["mean"] - agg["sd"], sd_hi=agg["mean"] + agg["sd"],
                     seeds_note=agg["n"].astype(str) + " of " + agg["n_seeds"].astype(str),
                     all_seeds=np.where(agg["n"] == agg["n_seeds"], _COMPLETE, _INCOMPLETE))
    agg = _bridge(agg)
    parts = [agg]
    if seeds:
        seed_of = dict(zip(tables.runs["key"], tables.runs["seed"]))
        s = ep.assign(kind="seed", seed=ep["key"].map(seed_of).astype("int64"))
        parts.append(s)
    out = pd.concat(parts, ignore_index=True).reindex(columns=cols)
    out["metric"] = out["name"].map(TITLES).fillna(out["name"])
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


def progress_notes(tables: RunTables) -> list[str]:
    """One sentence per series whose seeds have not all reached the same epoch (or did not all finish)."""
    lab = series_table(tables.runs)
    if lab.empty:
        return []
    runs = tables.runs.merge(lab[["key", "series"]], on="key")
    reached = (tables.epochs.groupby("key")["epoch"].max() if len(tables.epochs) else pd.Series(dtype=int))
    notes = []
    for series, g in runs.groupby("series", sort=False):
        ks = list(g["key"])
        got = [int(reached.get(k, 0)) for k in ks]
        if len(set(got)) > 1:
            lo, hi = min(got), max(got)
            notes.append(f"{series}: seeds have reached epochs {lo}–{hi}; after epoch {lo} the mean (dashed) "
                         f"covers only the seeds that got there (see n in the tooltip).")
        bad = g[g["status"].isin(["failed", "diverged", "cancelled", "interrupted"])]
        for r in bad.to_dict("records"):
            at = r.get("diverged_epoch")
            where = f" at epoch {int(at)}" if at is not None and at == at else ""
            notes.append(f"{series} seed {int(r['seed'])} {r['status']}{where}.")
    return notes


def _facet_header() -> alt.Header:
    return alt.Header(labelFontSize=12, labelFontWeight="bold", labelLimit=0,
                      labelExpr="split(datum.value, '\\n')")


def _layers(frame: pd.DataFrame, sel: alt.Parameter, x: alt.X, color: alt.Color, band: str, seeds: bool
            ) -> list[alt.Chart]:
    base = alt.Chart().encode(x=x, color=color)
    mean = base.transform_filter(alt.datum.kind == "mean")
    y_title = None
    layers: list[alt.Chart] = []
    if band in ("minmax", "sd"):
        lo, hi = ("lo", "hi") if band == "minmax" else ("sd_lo", "sd_hi")
        layers.append(mean.mark_area(interpolate="linear").encode(
            y=alt.Y(f"{lo}:Q", title=y_title, scale=alt.Scale(zero=False)), y2=f"{hi}:Q",
            detail="all_seeds:N",
            opacity=alt.when(sel).then(alt.value(0.22)).otherwise(alt.value(0.03))))
    if seeds:
        layers.append(base.transform_filter(alt.datum.kind == "seed").mark_line(strokeWidth=0.8).encode(
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)), detail="key:N",
            opacity=alt.when(sel).then(alt.value(0.5)).otherwise(alt.value(0.05)),
            tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("seed:Q"),
                     alt.Tooltip("epoch:Q"), alt.Tooltip("value:Q", format=".4f")]))
    layers.append(mean.mark_line(strokeWidth=2).encode(
        y=alt.Y("mean:Q", title=y_title, scale=alt.Scale(zero=False)),
        strokeDash=alt.StrokeDash("all_seeds:N", title="mean over",
                                  scale=alt.Scale(domain=[_COMPLETE, _INCOMPLETE], range=[[1, 0], [5, 3]])),
        opacity=alt.when(sel).then(alt.value(1.0)).otherwise(alt.value(0.15))))
    # Invisible points carry the tooltip: a line's own tooltip shows one arbitrary point of the path.
    layers.append(mean.mark_circle(size=40, opacity=0).encode(
        y=alt.Y("mean:Q", title=y_title),
        tooltip=[alt.Tooltip("series:N", title="variant"), alt.Tooltip("metric:N"), alt.Tooltip("epoch:Q"),
                 alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("sd:Q", title="sd (ddof=1)", format=".4f"),
                 alt.Tooltip("lo:Q", title="min", format=".4f"), alt.Tooltip("hi:Q", title="max", format=".4f"),
                 alt.Tooltip("seeds_note:N", title="n seeds")]))
    return layers


def _x(log_x: bool) -> alt.X:
    scale = alt.Scale(type="log", nice=False) if log_x else alt.Scale(type="linear", zero=False, nice=False)
    # Epochs are whole numbers: a short log axis would otherwise be labelled 1, 1.2, 1.4, ...
    axis = alt.Axis(labelExpr="datum.value % 1 ? '' : datum.label")
    return alt.X("epoch:Q", title="epoch" + (" (log scale)" if log_x else ""), scale=scale, axis=axis)


def curves_chart(frame: pd.DataFrame, log_x: bool = True, band: str = "minmax", seeds: bool = False,
                 columns: int = 3, width: int = 210, height: int = 200) -> alt.FacetChart | None:
    """One panel per metric, one colour per series: mean line over seeds plus a band.

    `frame` comes from `curve_frame`. band: "minmax" (range of the seeds), "sd" (mean ± 1 sd, ddof=1) or
    "none". The x (epoch) scale is shared by all panels; y is per panel. Clicking a legend entry highlights
    that series. Returns None when there is nothing to draw.
    """
    if frame.empty:
        return None
    domain, rng = colours(frame[frame["kind"] == "mean"].assign(order=lambda d: d["series"].map(
        {s: i for i, s in enumerate(_series_order(frame))})))
    metrics = tuple(TITLES.get(m, m) for m in _metric_order(frame))
    return _curves(frame, tuple(domain), tuple(rng), metrics, log_x, band, seeds, columns, width, height)


def _curves(frame: pd.DataFrame, domain: tuple[str, ...], rng: tuple[str, ...], metrics: tuple[str, ...],
            log_x: bool, band: str, seeds: bool, columns: int, width: int, height: int) -> alt.FacetChart:
    sel = alt.selection_point(fields=["series"], bind="legend", name="pick")
    color = alt.Color("series:N", title="variant (click to highlight)",
                      scale=alt.Scale(domain=list(domain), range=list(rng)),
                      legend=alt.Legend(labelLimit=400, titleLimit=400, symbolStrokeWidth=3, symbolOpacity=1,
                                        orient="bottom"))      # below the panels: three fit a laptop-wide page
    layered = alt.layer(*_layers(frame, sel, _x(log_x), color, band, seeds), data=frame).add_params(sel)
    return (layered.properties(width=width, height=height)
            .facet(facet=alt.Facet("metric:N", sort=list(metrics), title=None, header=_facet_header()),
                   columns=columns)
            .resolve_scale(y="independent"))


def curves_spec(frame: pd.DataFrame, log_x: bool = True, band: str = "minmax", seeds: bool = False,
                columns: int = 3, width: int = 210, height: int = 200) -> dict | None:
    """`curves_chart` as a Vega-Lite dict *without data*, for `st.vega_lite_chart(frame, spec)`.

    Building an Altair chart and serialising it costs ~60 ms, which a live view would pay every second; the
    spec depends only on the series, metrics and options, so it is built once per combination and cached,
    and each poll sends only the new data. Returns None when there is nothing to draw.
    """
    if frame.empty:
        return None
    domain, rng = colours(frame[frame["kind"] == "mean"].assign(order=lambda d: d["series"].map(
        {s: i for i, s in enumerate(_series_order(frame))})))
    metrics = tuple(TITLES.get(m, m) for m in _metric_order(frame))
    return json.loads(_spec_json(tuple(domain), tuple(rng), metrics, log_x, band, seeds, columns, width, height))


@lru_cache(maxsize=64)
def _spec_json(domain: tuple[str, ...], rng: tuple[str, ...], metrics: tuple[str, ...], log_x: bool, band: str,
               seeds: bool, columns: int, width: int, height: int) -> str:
    empty = pd.DataFrame(columns=["kind", "series", "metric", "epoch"])
    spec = _curves(empty, domain, rng, metrics, log_x, band, seeds, columns, width, height).to_dict()
    spec.pop("data", None)
    spec.pop("datasets", None)
    return json.dumps(spec)


def _series_order(frame: pd.DataFrame) -> list[str]:
    pairs = frame[["variant", "series"]].drop_duplicates("series")
    return [s for _, s in sorted(zip(pairs["variant"], pairs["series"]),
                                 key=lambda vs: (_variant_order(vs[0]), vs[1]))]


def _metric_order(frame: pd.DataFrame) -> list[str]:
    known = list(TITLES)
    names = frame["name"].dropna().unique().tolist()
    return sorted(names, key=lambda n: known.index(n) if n in known else len(known))


def figure_chart(tables: RunTables, experiment: str, log_x: bool = True, max_points: int = 120,
                 width: int | None = None, height: int = 150) -> alt.FacetChart | None:
    """The course report's Figure 1 (CNN) / Figure 2 (U-Net), reborn: one column per variant, rows training
    loss and validation accuracy (F1 for U-Net), min/max band over the seeds around the mean, log-x epochs
    shared per column, and each column headed by its final test metrics as mean ± sd (n seeds).

    The accuracy/F1 row also marks the test score (`FIGURE_TESTS`: test accuracy / test F1, the row's own
    units) after every epoch the test split was scored at, e.g. the U-Net's 200, 400 and 1000: a diamond at
    the mean with a ± sd (ddof=1) error bar, its tooltip giving n and every test metric there."""
    frame = curve_frame(tables, FIGURE_METRICS[experiment], max_points=max_points)
    if frame.empty:
        return None
    heads = _panel_heads(tables, experiment)
    if len(marks := _test_marks(tables, experiment)):
        frame = pd.concat([frame, marks], ignore_index=True)
    frame["panel"] = frame["series"].map(heads).fillna(frame["series"])
    domain, rng = colours(frame.assign(order=frame["series"].map(
        {s: i for i, s in enumerate(_series_order(frame))})))
    panels = [heads.get(s, s) for s in _series_order(frame)]
    width = width or max(120, min(200, 680 // len(panels)))      # 4 columns + axes fit a wide page (~950 px)
    sel = alt.selection_point(fields=["series"], bind="legend", name="pick")
    color = alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), legend=None)
    x = _x(log_x)
    x["scale"] = x["scale"].copy()
    x["scale"]["padding"] = 6                                     # a test marker at the last epoch shows whole
    layers = [*_layers(frame, sel, x, color, "minmax", False), *_test_layers(x, color)]
    layered = alt.layer(*layers, data=frame).add_params(sel)
    rows = [TITLES[m] for m in FIGURE_METRICS[experiment]]
    return (layered.properties(width=width, height=height)
            .facet(row=alt.Row("metric:N", sort=rows, title=None, header=_facet_header()),
                   column=alt.Column("panel:N", sort=panels, title=None, header=_facet_header()))
            .resolve_scale(y="independent")
            .configure_legend(orient="bottom"))                   # not beside the columns: keeps the width


def _panel_heads(tables: RunTables, experiment: str) -> dict[str, str]:
    """series -> 'BN + Adam / test after epoch 200 (n=3): / accuracy 0.412 ± 0.020 / loss 2.110 ± 0.050'
    (one line each) at each series' last test epoch."""
    summ = test_summary(tables, TEST_METRICS[experiment])
    heads = {}
    for series, g in summ.groupby("series", sort=False):
        g = g[g["epoch"] == g["epoch"].max()]
        bits = []
        for m in TEST_METRICS[experiment]:
            r = g[g["metric"] == m]
            if len(r):
                r = r.iloc[0]
                bits.append(f"{TITLES[m].replace('test ', '')} {_pm(r['mean'], r['sd'])}")
        n = int(g["n"].max()) if len(g) else 0
        heads[series] = "\n".join([series, f"test after epoch {int(g['epoch'].max())} (n={n}):", *bits])
    return heads


def _test_marks(tables: RunTables, experiment: str) -> pd.DataFrame:
    """Rows (kind "test") for the figure's test markers: per series and test epoch the `FIGURE_TESTS` metric's
    mean, sd (ddof=1), mean ± sd, n, placed in the accuracy/F1 row; `test_note` lists every test metric."""
    metric = FIGURE_TESTS[experiment]
    summ = test_summary(tables, TEST_METRICS[experiment])
    rows = []
    for (series, epoch), g in summ.groupby(["series", "epoch"], sort=False):
        by = {r["metric"]: r for r in g.to_dict("records")}
        r = by.get(metric)
        if r is None or not r["n"]:
            continue
        note = " · ".join(f"{TITLES[m].replace('test ', '')} {_pm(by[m]['mean'], by[m]['sd'])}"
                          + (f" (n={by[m]['n']})" if by[m]["n"] != r["n"] else "")
                          for m in TEST_METRICS[experiment] if m in by)
        rows.append({"kind": "test", "series": series, "variant": r["variant"], "name": metric,
                     "metric": TITLES[FIGURE_METRICS[experiment][1]], "epoch": int(epoch), "mean": r["mean"],
                     "sd": r["sd"], "sd_lo": r["mean"] - r["sd"], "sd_hi": r["mean"] + r["sd"], "n": r["n"],
                     "test_metric": TITLES[metric], "test_note": note})
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


# -- test metrics --------------------------------------------------------------------------------------------
def test_summary(tables: RunTables, metrics: tuple[str, ...] | list[str] | None = None) -> pd.DataFrame:
    """Long summary of test metrics: series, epoch, metric, n, mean, sd (ddof=1), values {seed: value}."""
    cols = ["series", "variant", "order", "epoch", "metric", "n", "mean", "sd", "values"]
    lab = series_table(tables.runs)
    t = tables.tests
    if lab.empty or t.empty:
        return pd.DataFrame(columns=cols)
    if metrics is not None:
        t = t[t["name"].isin(list(metrics))]
    t = t.merge(lab, on="key").merge(tables.runs[["key", "seed"]], on="key")
    rows = []
    for (order, series, variant, epoch, metric), g in t.groupby(["order", "series", "variant", "epoch", "name"]):
        v = g["value"].astype(float)
        fin = v[np.isfinite(v)]
        rows.append({"series": series, "variant": variant, "order": int(order), "epoch": int(epoch),
                     "metric": metric, "n": int(len(fin)), "mean": float(fin.mean()) if len(fin) else math.nan,
                     "sd": float(fin.std(ddof=1)) if len(fin) > 1 else math.nan,
                     "values": {int(s): float(x) for s, x in zip(g["seed"], v)}})
    return pd.DataFrame(rows, columns=cols)


def _pm(mean: float, sd: float, digits: int = 3) -> str:
    if mean != mean:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd == sd else "")


def test_table(tables: RunTables, experiment: str) -> pd.DataFrame:
    """Display table: one row per series × test epoch; per metric 'mean ± sd' (ddof=1; sd needs n ≥ 2),
    n seeds, and every seed's value. The best mean in each column (per test epoch) is marked ★."""
    metrics = TEST_METRICS[experiment]
    summ = test_summary(tables, metrics)
    if summ.empty:
        return pd.DataFrame()
    seeds = sorted({s for vals in summ["values"] for s in vals})
    best: dict[tuple[int, str], float] = {}
    for (epoch, m), g in summ.groupby(["epoch", "metric"]):
        ok = g["mean"].dropna()
        if len(g) > 1 and len(ok):
            best[(epoch, m)] = ok.min() if m in _LOWER_IS_BETTER else ok.max()
    rows = []
    for (order, series, epoch), g in summ.groupby(["order", "series", "epoch"]):
        row: dict[str, Any] = {"variant": series, "test epoch": int(epoch), "n": int(g["n"].max())}
        by = {r["metric"]: r for r in g.to_dict("records")}
        for m in metrics:
            r = by.get(m)
            cell = "–" if r is None else _pm(r["mean"], r["sd"], 4)
            if r is not None and (r["n"] < row["n"]):
                cell += f" (n={r['n']})"
            if r is not None and best.get((epoch, m)) == r["mean"]:
                cell += " ★"
            row[f"{TITLES[m]} (mean ± sd)"] = cell
        for m in metrics:
            for s in seeds:
                r = by.get(m)
                row[f"{m} · seed {s}"] = r["values"].get(s) if r is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


def course_table(tables: RunTables, metric: str = "pixel_acc") -> pd.DataFrame:
    """The course report's U-Net table: rows Normal / Nearest / ELU / Nearest+ELU, one column per test epoch
    (200/400/1000), cells 'mean ± sd (n=k)' of `metric`. Only the four named U-Net variants are included."""
    summ = test_summary(tables, [metric])
    summ = summ[summ["variant"].isin(list(COURSE_ROWS))]
    if summ.empty:
        return pd.DataFrame()
    epochs = sorted(summ["epoch"].unique())
    rows = []
    for (order, series, variant), g in summ.groupby(["order", "series", "variant"]):
        label = COURSE_ROWS[variant] + series[len(COURSE_NAMES[variant]):]
        row = {"type / epochs": label}
        by = dict(zip(g["epoch"], g.to_dict("records")))
        for e in epochs:
            r = by.get(e)
            row[str(e)] = "–" if r is None else f"{_pm(r['mean'], r['sd'])} (n={r['n']})"
        rows.append(row)
    return pd.DataFrame(rows).set_index("type / epochs")
