"""adlapp.charts (every picture) on hand-made run tables whose every number can be checked by hand (no torch,
no training), plus the display tables the charts sit next to (adlapp.report's)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from types import SimpleNamespace

import altair as alt
import numpy as np
import pandas as pd
import pytest

from adlapp import charts, metrics, report
from adlapp import compare as cmp
from adlapp.config import config_to_dict, display_name, run_key, variant, variant_label
from adlapp.health import Health
from adlapp.store import RUN_COLUMNS, RunTables


def tables(curves: dict[tuple[str, int], list[float]], tests: dict[tuple[str, int], float] | None = None,
           epochs: int | None = None, metric: str = "train_loss", status: str = "done", **data) -> RunTables:
    """Runs of registry variants; `curves[(variant, seed)]` is that run's `metric` per epoch 1, 2, ...;
    `tests[(variant, seed)]` its test accuracy (cnn) / pixel accuracy (unet) at its last epoch; `data`
    changes the data config (a different training of the same variant)."""
    runs, eps, tst = [], [], []
    for (name, seed), values in curves.items():
        cfg = replace(variant(name), epochs=epochs or len(values))
        cfg = replace(cfg, data=replace(cfg.data, **data))
        key = run_key(cfg, seed)
        runs.append({"key": key, "experiment": cfg.experiment, "variant": variant_label(cfg), "seed": seed,
                     "epochs": cfg.epochs, "status": status, "last_epoch": len(values),
                     "config": json.dumps(config_to_dict(cfg))})
        eps += [(key, e, metric, v) for e, v in enumerate(values, start=1)]
        if tests and (name, seed) in tests:
            acc = "acc" if cfg.experiment == "cnn" else "pixel_acc"
            tst += [(key, cfg.epochs, acc, tests[(name, seed)]), (key, cfg.epochs, "loss", 1 - tests[(name, seed)])]
    cols = ["key", "epoch", "name", "value"]
    return RunTables(pd.DataFrame(runs).reindex(columns=RUN_COLUMNS), pd.DataFrame(eps, columns=cols),
                     pd.DataFrame(tst, columns=cols))


def test_curve_frame_mean_sd_range_and_n_by_hand():
    t = tables({("cnn/adam", 0): [1.0, 0.5], ("cnn/adam", 1): [3.0, 0.7], ("cnn/adam", 2): [2.0, 0.9]})
    f = charts.curve_frame(t, ["train_loss"])
    e1 = f[f["epoch"] == 1].iloc[0]
    assert (e1["mean"], e1["sd"], e1["lo"], e1["hi"], e1["n"], e1["n_seeds"]) == (2.0, 1.0, 1.0, 3.0, 3, 3)
    assert e1["sd_lo"] == 1.0 and e1["sd_hi"] == 3.0 and e1["seeds_note"] == "3 of 3"   # sd with ddof=1
    assert e1["series"] == "Adam" and e1["metric"] == "training loss"
    assert set(f["all_seeds"]) == {"all seeds"}


def test_unequal_progress_is_marked_bridged_and_explained():
    t = tables({("cnn/sgd", 0): [4.0, 3.0, 2.0, 1.0], ("cnn/sgd", 1): [2.0, 1.0]}, epochs=4)
    f = charts.curve_frame(t, ["train_loss"])
    solid = f[f["all_seeds"] == "all seeds"]
    dashed = f[f["all_seeds"] == "not all seeds yet"]
    assert solid["epoch"].tolist() == [1, 2]
    assert dashed["epoch"].tolist() == [2, 3, 4]                 # epoch 2 repeated: the lines meet
    assert dashed[dashed["epoch"] == 3]["n"].item() == 1 and dashed[dashed["epoch"] == 3]["sd"].isna().all()
    assert charts.curve_frame(t, ["train_loss"], complete_only=True)["epoch"].tolist() == [1, 2]
    notes = report.seed_progress_notes(t)
    assert len(notes) == 1 and "SGD: seeds have reached epochs 2–4" in notes[0]


def test_runs_of_one_training_are_one_series_and_other_trainings_are_never_averaged_in():
    # a 2- and a 3-epoch run of seed 0 are one training (config.training_signature): one seed, its longer run
    t = RunTables.concat([tables({("cnn/adam", 0): [1.0, 1.0]}), tables({("cnn/adam", 0): [2.0, 2.0, 2.0]}),
                          tables({("cnn/adam", 1): [4.0, 4.0]})])
    s = charts.curve_frame(t, ["train_loss"])
    assert set(s["series"]) == {"Adam"} and (s["n_seeds"] == 2).all()
    assert s.loc[s["epoch"] == 1, "mean"].item() == 3.0 and s.loc[s["epoch"] == 3, "n"].item() == 1
    other = RunTables.concat([tables({("cnn/adam", 0): [1.0, 1.0]}),
                              tables({("cnn/adam", 0): [2.0, 2.0]}, train_per_class=7)])
    assert sorted(cmp.series_table(other.runs)["series"]) == ["Adam (train_per_class=20)",
                                                              "Adam (train_per_class=7)"]
    f = charts.curve_frame(other, ["train_loss"])
    assert (f["n"] == 1).all() and (f["n_seeds"] == 1).all()


def test_colours_are_fixed_per_variant_and_distinct():
    a = cmp.series_table(tables({("cnn/sgd", 0): [1.0], ("cnn/adam", 0): [1.0]}).runs)
    b = cmp.series_table(tables({("cnn/sgd", 0): [1.0], ("cnn/bn-adam", 0): [1.0]}).runs)
    ca, cb = dict(zip(*charts.colours(a), strict=True)), dict(zip(*charts.colours(b), strict=True))
    assert ca["SGD"] == cb["SGD"] == charts.PALETTE[2]
    assert ca["Adam"] == charts.PALETTE[1] and cb["BN + Adam"] == charts.PALETTE[0]
    custom = pd.DataFrame({"series": ["cnn/x", "cnn/y", "SGD"], "variant": ["cnn/x", "cnn/y", "cnn/sgd"],
                           "order": [1, 2, 0]})
    domain, rng = charts.colours(custom)
    assert domain == ["SGD", "cnn/x", "cnn/y"] and len(set(rng)) == 3
    # a custom variant's colour is its own, stable across charts, and never a registry variant's colour
    alone = dict(zip(*charts.colours(custom.iloc[:1]), strict=True))
    assert alone["cnn/x"] == dict(zip(domain, rng, strict=True))["cnn/x"] and alone["cnn/x"] not in charts.PALETTE[:3]


def test_long_curves_are_thinned_to_real_epochs():
    keep = charts.keep_epochs(1000, 120)
    assert keep[0] == 1 and keep[-1] == 1000 and len(keep) <= 121 and np.all(np.diff(keep) > 0)
    assert (keep <= 10).sum() >= 10                                  # dense early, for the log axis
    rng = np.random.default_rng(0)
    curves = {(v, s): list(rng.random(1000)) for v in ("unet/normal", "unet/elu") for s in range(6)}
    f = charts.curve_frame(tables(curves), ["train_loss"])
    assert len(f) <= 2 * 121 and set(f["epoch"]) <= set(range(1, 1001))
    assert charts.keep_epochs(50).tolist() == list(range(1, 51))


def spec_of(chart) -> dict:
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict()


def test_curves_chart_layers_log_axis_legend_highlight():
    t = tables({("cnn/adam", 0): [2.0, 1.0, 0.5], ("cnn/adam", 1): [2.5, 1.5, 0.7],
                ("cnn/sgd", 0): [3.0, 2.0, 1.0], ("cnn/sgd", 1): [3.5, 2.5, 1.5]})
    spec = spec_of(charts.curves_chart(charts.curve_frame(t, ["train_loss"])))
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["area", "line", "circle"]
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in layers)
    assert spec["params"][0]["bind"] == "legend" and spec["params"][0]["select"]["fields"] == ["series"]
    assert spec["resolve"]["scale"]["y"] == "independent" and "x" not in spec["resolve"]["scale"]  # shared x
    tips = {tip.get("title", tip["field"]) for tip in layers[2]["encoding"]["tooltip"]}
    assert {"n seeds", "sd (ddof=1)", "min", "max"} <= tips
    f = charts.curve_frame(t, ["train_loss"], seeds=True)
    spec = spec_of(charts.curves_chart(f, log_x=False, band="sd", seeds=True))
    layers = spec["spec"]["layer"]
    assert layers[0]["encoding"]["y"]["field"] == "sd_lo" and layers[1]["encoding"]["detail"]["field"] == "key"
    assert layers[0]["encoding"]["x"]["scale"]["type"] == "linear"
    assert [m["mark"]["type"] for m in spec_of(charts.curves_chart(
        charts.curve_frame(t, ["train_loss"]), band="none"))["spec"]["layer"]] == ["line", "circle"]
    assert charts.curves_chart(charts.curve_frame(RunTables.empty(), ["train_loss"])) is None


def shown_test_table(t: RunTables, experiment: str) -> pd.DataFrame:
    table = report.test_table(cmp.test_summary(t, metrics.test_metrics(experiment)), experiment)
    return table


def test_test_table_mean_sd_n_seeds_and_best_marked():
    t = tables({("cnn/adam", 0): [1.0], ("cnn/adam", 1): [1.0], ("cnn/sgd", 0): [1.0], ("cnn/sgd", 1): [1.0]},
               tests={("cnn/adam", 0): 0.5, ("cnn/adam", 1): 0.7, ("cnn/sgd", 0): 0.2, ("cnn/sgd", 1): 0.3})
    table = shown_test_table(t, "cnn").set_index("variant")
    assert table.loc["Adam", "test accuracy (mean ± sd)"] == f"0.6000 ± {math.sqrt(0.02):.4f} ★"
    assert table.loc["Adam", "test loss (mean ± sd)"].endswith("★")   # lower loss is better
    assert "★" not in table.loc["SGD", "test loss (mean ± sd)"] + table.loc["SGD", "test accuracy (mean ± sd)"]
    assert table.loc["SGD", "n"] == 2 and table.loc["SGD", "acc · seed 1"] == 0.3
    single = shown_test_table(tables({("cnn/adam", 0): [1.0]}, tests={("cnn/adam", 0): 0.5}), "cnn")
    assert single["test accuracy (mean ± sd)"].item() == "0.5000"       # no sd from one seed, no ★ alone


def test_course_table_rows_and_budgets():
    curves = {(v, s): [0.1] * 3 for v in ("unet/normal", "unet/nearest", "unet/elu", "unet/nearest-elu")
              for s in (0, 1, 2)}
    t = tables(curves, tests={k: 0.97 + 0.001 * k[1] for k in curves}, metric="train_loss")
    table = report.course_table(cmp.test_summary(t, ["pixel_acc"]), "pixel_acc")
    # the one display name of each variant (config.COURSE_NAMES), as in every chart and table
    assert list(table.index) == ["Normal", "Nearest Neighbor", "Using ELU", "Nearest and ELU"]
    assert table.loc["Normal", "3: pixel acc. (ours)"] == "0.971 ± 0.001 (n=3)"


@pytest.mark.parametrize("experiment", ["cnn", "unet"])
def test_figure_chart_one_column_per_variant_with_test_metrics(experiment):
    names = {"cnn": ("cnn/bn-adam", "cnn/adam", "cnn/sgd"), "unet": ("unet/normal", "unet/elu")}[experiment]
    metric = metrics.figure_metrics(experiment)[1]
    curves = {(v, s): [0.1, 0.2] for v in names for s in (0, 1, 2)}
    t = tables(curves, tests={k: 0.5 for k in curves})
    t = RunTables(t.runs, pd.concat([t.epochs, t.epochs.assign(name=metric)]), t.tests)
    spec = spec_of(charts.figure_chart(t, experiment))
    assert spec["facet"]["column"]["field"] == "panel" and spec["facet"]["row"]["field"] == "metric"
    panels = spec["facet"]["column"]["sort"]
    assert len(panels) == len(names) and all("\ntest after epoch 2 (n=3):\n" in p for p in panels)
    assert spec["spec"]["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"


def test_curves_spec_is_the_chart_without_data_and_cached():
    t = tables({("cnn/adam", 0): [2.0, 1.0], ("cnn/sgd", 0): [3.0, 2.0]})
    frame = charts.curve_frame(t, ["train_loss"])
    full = spec_of(charts.curves_chart(frame))
    spec = charts.curves_spec(frame)
    assert "datasets" not in spec and "data" not in spec
    assert spec["spec"] == full["spec"] and spec["params"] == full["params"] and spec["facet"] == full["facet"]
    later = charts.curve_frame(tables({("cnn/adam", 0): [2.0, 1.0, 0.5], ("cnn/sgd", 0): [3.0, 2.0, 1.0]}),
                               ["train_loss"])
    before = charts._spec_json.cache_info().hits
    assert charts.curves_spec(later) == spec                     # new data, same spec: served from the cache
    assert charts._spec_json.cache_info().hits == before + 1


def test_figure_2_marks_the_test_scores_at_every_evaluation_epoch():
    names = ("unet/normal", "unet/nearest", "unet/elu", "unet/nearest-elu")
    curves = {(v, s): [0.1 * e for e in range(1, 11)] for v in names for s in (0, 1, 2)}
    t = tables(curves, metric="val_f1")
    t = RunTables(t.runs, pd.concat([t.epochs, t.epochs.assign(name="train_loss")]), pd.DataFrame(
        [(k, e, m, 0.5 + 0.01 * e + 0.001 * s) for (v, s), k in zip(curves, t.runs["key"], strict=True)
         for e in (2, 5, 10) for m in ("f1", "pixel_acc", "loss")], columns=["key", "epoch", "name", "value"]))
    spec = spec_of(charts.figure_chart(t, "unet"))
    layers = spec["spec"]["layer"]
    marked = [layer for layer in layers if layer.get("transform") == [{"filter": "(datum.kind === 'test')"}]]
    assert [layer["mark"]["type"] for layer in marked] == ["rule", "point"]          # ± sd bar, diamond at mean
    assert marked[0]["encoding"]["y"]["field"] == "sd_lo" and marked[0]["encoding"]["y2"]["field"] == "sd_hi"
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in marked)
    tips = {tip.get("title", tip["field"]) for tip in marked[1]["encoding"]["tooltip"]}
    assert {"n seeds", "sd (ddof=1)", "test after epoch"} <= tips
    data = pd.DataFrame(next(iter(spec["datasets"].values())))
    marks = data[data["kind"] == "test"]
    assert sorted(set(marks["epoch"])) == [2, 5, 10] and len(marks) == 4 * 3
    assert set(marks["metric"]) == {"validation F1"} and (marks["n"] == 3).all()
    one = marks[(marks["series"] == "Normal") & (marks["epoch"] == 5)].iloc[0]
    assert one["mean"] == pytest.approx(0.551) and one["sd"] == pytest.approx(0.001)     # ddof=1 over 3 seeds
    assert one["panel"].startswith("Normal\ntest after epoch 10 (n=3):\npixel accuracy")
    assert "loss 0.551 ± 0.001" in one["test_note"]


# -- the Compare page's charts ---------------------------------------------------------------------------------
GROUPS = {"A": [0.971, 0.975, 0.969], "B": [0.962, 0.968, 0.966, 0.960, 0.963], "C": [0.95, 0.97]}
VARIANTS = {"A": "cnn/bn-adam", "B": "cnn/adam", "C": "cnn/sgd"}


def groups_of(d, flags: dict[tuple[str, int], Health] | None = None):
    return [cmp.Group(VARIANTS[k], 3, k, np.asarray(v, dtype=float), tuple(range(len(v))),
                      tuple(f"{k}-{i}" for i in range(len(v))), series=display_name(VARIANTS[k]),
                      flags=tuple((seed, h) for (g, seed), h in (flags or {}).items() if g == k))
            for k, v in d.items()]


def test_matrix_chart_is_a_diverging_heatmap_centred_at_zero():
    res = cmp.compare_groups(groups_of(GROUPS))
    order = [report.axis_label(g) for g in res.groups]
    for color_by, field in (("diff", "diff"), ("hedges_g", "hedges_g")):
        spec = charts.matrix_chart(res, color_by, higher_is_better=False).to_dict()
        rect, text = spec["layer"]
        assert rect["mark"]["type"] == "rect" and text["mark"]["type"] == "text"
        scale = rect["encoding"]["color"]["scale"]
        assert scale["domainMid"] == 0 and scale["scheme"] == "redblue" and scale["reverse"] is True
        assert rect["encoding"]["x"]["scale"]["domain"] == order[1:]            # upper triangle: a < b
        assert rect["encoding"]["y"]["scale"]["domain"] == order[:-1]
        top = max(abs(v) for v in res.pairs[field])
        assert scale["domain"] == [-top, top]
        data = spec["datasets"][spec["data"]["name"]]
        assert len(data) == 3 and [d["colour"] for d in data] == list(res.pairs[field])
        tips = {t.get("title", t["field"]) for t in rect["encoding"]["tooltip"] if isinstance(t, dict)}
        assert {"family", "pairs in the family", "p adjusted (Holm)"} <= tips
    cells = {d["b"]: d["cell"] for d in data}
    assert "n < 3: not tested" in cells["C"] and "(of 1)" in cells["B"]


def test_matrix_of_explicit_pairs_shows_every_pair():
    g = groups_of(GROUPS)
    res = cmp.compare_groups(g, pairs=[("cnn/adam", "cnn/bn-adam"), ("cnn/sgd", "cnn/bn-adam")])
    spec = charts.matrix_chart(res).to_dict()
    rect = spec["layer"][0]
    assert rect["encoding"]["y"]["scale"]["domain"] == [report.axis_label(x) for x in g[1:]]     # B, C as rows
    assert rect["encoding"]["x"]["scale"]["domain"] == [report.axis_label(g[0])]


def test_strip_power_and_curve_test_chart_layers():
    res = cmp.compare_groups(groups_of(GROUPS))
    spec = charts.strip_chart(res, "test accuracy").to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["circle", "rule", "point"]   # nothing flagged
    assert spec["layer"][0]["encoding"]["xOffset"]["field"] == "seed"
    assert len(spec["datasets"][spec["layer"][0]["data"]["name"]]) == 10    # every seed is a point
    colour = spec["layer"][0]["encoding"]["color"]["scale"]                 # the variants' own colours
    assert dict(zip(colour["domain"], colour["range"], strict=True)) == {"BN + Adam": charts.PALETTE[0],
                                                            "Adam": charts.PALETTE[1], "SGD": charts.PALETTE[2]}
    a, b = groups_of({"A": GROUPS["A"], "B": GROUPS["B"]})
    plan = cmp.power_plan(a, b, None, comparisons=3)
    spec = charts.power_chart(plan).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "rule", "rule", "text"]
    rules = {d["rule"] for d in spec["datasets"][spec["layer"][0]["data"]["name"]]}
    assert rules == {"uncorrected", "Bonferroni over 3 pairs"}
    curves = pd.DataFrame({"label": ["BN + Adam", "SGD"], "variant": ["cnn/bn-adam", "cnn/sgd"], "epoch": [1, 1],
                           "mean": [0.5, 0.4], "lo": [0.4, 0.3], "hi": [0.6, 0.5], "n": [3, 3]})
    tests = pd.DataFrame({"epoch": [1], "diff": [0.1], "welch_p": [0.01], "p_adjusted": [0.01],
                          "significant": [True]})
    cur = cmp.CurveTest(curves, tests, metrics.metric("val_acc"), ("BN + Adam", "SGD"), ("cnn/bn-adam", "cnn/sgd"))
    spec = charts.curve_test_chart(cur).to_dict()
    assert len(spec["vconcat"]) == 2 and spec["vconcat"][1]["mark"]["type"] == "tick"
    scale = spec["vconcat"][0]["layer"][0]["encoding"]["color"]["scale"]
    assert scale == {"domain": ["BN + Adam", "SGD"], "range": [charts.PALETTE[0], charts.PALETTE[2]]}
    verdict = spec["vconcat"][1]["encoding"]["color"]["scale"]["domain"]
    assert verdict == ["significant (adjusted p < α)", "not significant"]     # not "no evidence"
    assert [d["verdict"] for d in spec["datasets"][spec["vconcat"][1]["data"]["name"]]] == [verdict[0]]


# -- reference levels, flagged runs, the validation-loss minimum, the spread across seeds -----------------------
def key_of(t: RunTables, name: str, seed: int) -> str:
    runs = t.runs
    return runs.loc[(runs["variant"] == name) & (runs["seed"] == seed), "key"].item()


def layers_filtered(spec: dict, kind: str) -> list[dict]:
    only = [{"filter": f"(datum.kind === '{kind}')"}]
    return [layer for layer in spec["spec"]["layer"] if layer.get("transform") == only]


def test_figure_chart_draws_baselines_in_every_column_of_the_score_row_and_flagged_runs_only():
    names = ("cnn/bn-adam", "cnn/sgd")
    curve = [0.1, 0.3, 0.4, 0.45, 0.2, 0.02]
    curves = {(v, s): [x + 0.01 * s for x in curve] for v in names for s in (0, 1, 2)}
    curves[("cnn/bn-adam", 2)] = [0.1, 0.2, 0.3, 0.35, math.nan, 0.5]
    t = tables(curves, metric="val_acc")
    t = RunTables(t.runs, pd.concat([t.epochs, t.epochs.assign(name="train_loss")]), t.tests)
    plain = spec_of(charts.figure_chart(t, "cnn"))
    assert not layers_filtered(plain, "baseline") and not layers_filtered(plain, "flag")   # off by default
    flags = {key_of(t, "cnn/sgd", 1): Health("collapsed", 4, "validation accuracy fell back to chance"),
             key_of(t, "cnn/sgd", 2): Health("exploded", 9, ""),          # past the last epoch: the last one
             key_of(t, "cnn/bn-adam", 2): Health("diverged", 5, "NaN"),   # no value there: nearest, earlier on a tie
             key_of(t, "cnn/bn-adam", 0): Health("ok"),                   # not flagged: no marker
             "not-a-run": Health("collapsed", 2, "")}
    baselines = {"chance 0.019": 0.019, "majority class 0.026": 0.026}
    spec = spec_of(charts.figure_chart(t, "cnn", baselines=baselines, flags=flags))
    data = pd.DataFrame(next(iter(spec["datasets"].values())))
    panels = spec["facet"]["column"]["sort"]

    rule, text = layers_filtered(spec, "baseline")
    assert rule["mark"]["type"] == "rule" and rule["mark"]["strokeDash"] == [4, 3] and "x" not in rule["encoding"]
    assert rule["encoding"]["y"]["field"] == "baseline" and text["encoding"]["text"]["field"] == "baseline_label"
    assert text["mark"]["align"] == "right" and text["encoding"]["x"] == {"value": spec["spec"]["width"]}
    base = data[data["kind"] == "baseline"]
    assert sorted(zip(base["panel"], base["baseline_label"], base["baseline"], strict=True)) == sorted(
        (p, k, v) for p in panels for k, v in baselines.items())                 # every column, each baseline
    assert set(base["metric"]) == {"validation accuracy"}                       # the score row only

    (flag,) = layers_filtered(spec, "flag")
    assert flag["mark"]["type"] == "point" and flag["mark"]["shape"] == "cross" and flag["mark"]["color"] == "#d62728"
    assert {tip.get("title", tip["field"]) for tip in flag["encoding"]["tooltip"]} >= {"flagged", "health"}
    got = data[data["kind"] == "flag"].set_index("key")
    assert set(got.index) == {key_of(t, "cnn/sgd", 1), key_of(t, "cnn/sgd", 2), key_of(t, "cnn/bn-adam", 2)}
    assert set(got["metric"]) == {"validation accuracy"}
    one = got.loc[key_of(t, "cnn/sgd", 1)]
    assert (one["epoch"], one["value"], one["series"]) == (4, pytest.approx(0.46), "SGD")
    assert one["flag_note"] == "seed 1: collapsed at epoch 4 — validation accuracy fell back to chance"
    assert one["panel"] == [p for p in panels if p.startswith("SGD")][0]
    two = got.loc[key_of(t, "cnn/sgd", 2)]
    assert (two["epoch"], two["value"], two["flag_note"]) == (6, pytest.approx(0.04), "seed 2: exploded at epoch 9")
    nan = got.loc[key_of(t, "cnn/bn-adam", 2)]
    assert (nan["epoch"], nan["value"], nan["health"]) == (4, pytest.approx(0.35), "diverged")


class _JsNum(float):
    """A number as a Vega expression concatenates it to a string ('epoch ' + 3 is 'epoch 3')."""

    def __radd__(self, other):
        return other + (str(int(self)) if self.is_integer() else str(float(self)))

    def __add__(self, other):
        if isinstance(other, str):
            return (str(int(self)) if self.is_integer() else str(float(self))) + other
        return float(self) + other


def _vega_expr(expr: str, row: dict):
    """Evaluate the small subset of Vega expressions the charts use (===, &&, a ? b : c, + on strings)."""
    py = expr.replace("===", "==").replace("!==", "!=").replace("&&", " and ").replace("||", " or ")
    while (m := re.search(r"\(([^()?]+?) \? ('[^']*') : ('[^']*')\)", py)):
        py = py[:m.start()] + f"({m.group(2)} if {m.group(1)} else {m.group(3)})" + py[m.end():]
    datum = SimpleNamespace(**{k: _JsNum(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                               for k, v in row.items()})
    return eval(py, {}, {"datum": datum})


def run_transforms(transforms: list[dict], frame: pd.DataFrame) -> pd.DataFrame:
    """Vega-Lite's filter, joinaggregate, window (row_number) and calculate, in pandas."""
    df = frame.copy()
    for t in transforms:
        if "filter" in t:
            df = df[[bool(_vega_expr(t["filter"], r)) for r in df.to_dict("records")]]
        elif "joinaggregate" in t:
            for agg in t["joinaggregate"]:
                df[agg["as"]] = df.groupby(t["groupby"])[agg["field"]].transform(agg["op"])
        elif "window" in t:
            (w,) = t["window"]
            assert w["op"] == "row_number"
            df = df.sort_values([s["field"] for s in t["sort"]], ascending=[s.get("order") != "descending"
                                                                          for s in t["sort"]], kind="stable")
            df[w["as"]] = df.groupby(t["groupby"]).cumcount() + 1
        elif "calculate" in t:
            df[t["as"]] = [_vega_expr(t["calculate"], r) for r in df.to_dict("records")]
        else:
            raise AssertionError(f"transform not evaluated here: {t}")
    return df


def test_lowest_mean_validation_loss_is_found_by_the_spec_itself():
    # Adam: mean val loss 1.1, 0.7, 0.5, 0.6, 0.9 -> lowest at epoch 3, then rising; SGD still falling at its last.
    # SGD seed 1 has two more epochs with a lower value: a mean over fewer seeds is not a minimum.
    t = tables({("cnn/adam", 0): [1.0, 0.6, 0.45, 0.55, 0.85], ("cnn/adam", 1): [1.2, 0.8, 0.55, 0.65, 0.95],
                ("cnn/sgd", 0): [2.0, 1.5, 1.2], ("cnn/sgd", 1): [2.2, 1.7, 1.4, 0.1, 0.05]},
               metric="val_loss", epochs=5)
    t = RunTables(t.runs, pd.concat([t.epochs, t.epochs.assign(name="train_loss")]), t.tests)
    frame = charts.curve_frame(t, ["train_loss", "val_loss"])
    spec = charts.curves_spec(frame)
    layers = spec["spec"]["layer"]
    assert spec_of(charts.curves_chart(frame))["spec"]["layer"] == layers         # the chart and the spec agree
    (lowest,) = [layer for layer in layers if "val_loss" in json.dumps(layer.get("transform", []))]
    assert lowest["mark"]["type"] == "point" and lowest["encoding"]["y"]["field"] == "mean"
    picked = run_transforms(lowest["transform"], frame).set_index("series")
    assert sorted(picked.index) == ["Adam", "SGD"] and set(picked["metric"]) == {"validation loss"}
    assert picked.loc["Adam", "epoch"] == 3 and picked.loc["Adam", "mean"] == pytest.approx(0.5)
    assert picked.loc["Adam", "val_loss_min"] == "lowest mean validation loss: epoch 3 (then it rises: overfitting)"
    assert picked.loc["SGD", "epoch"] == 3 and "then it rises" not in picked.loc["SGD", "val_loss_min"]
    tips = {tip.get("title", tip["field"]) for tip in lowest["encoding"]["tooltip"]}
    assert {"minimum", "n seeds"} <= tips
    # no validation-loss panel, no such layer
    only_train = charts.curves_spec(charts.curve_frame(t, ["train_loss"]))
    assert "val_loss" not in json.dumps(only_train)


def test_strip_chart_shapes_flagged_seeds_and_draws_baselines():
    flags = {("A", 1): Health("collapsed", 31, "fell back to chance"), ("C", 0): Health("exploded", 2, "")}
    res = cmp.compare_groups(groups_of(GROUPS, flags))
    spec = charts.strip_chart(res, "test accuracy", baselines={"chance 0.019": 0.019}).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["circle", "point", "rule", "point", "rule", "text"]
    ok, bad = spec["layer"][:2]
    assert bad["encoding"]["xOffset"] == ok["encoding"]["xOffset"] and "shape" not in ok["encoding"]
    shape = bad["encoding"]["shape"]
    assert shape["field"] == "health" and shape["title"] == "health"
    assert shape["legend"]["values"] == ["exploded", "collapsed"]             # the reasons present, in order
    assert dict(zip(shape["scale"]["domain"], shape["scale"]["range"], strict=True))["collapsed"] == "cross"
    for layer in (ok, bad):
        assert {tip.get("title", tip["field"]) for tip in layer["encoding"]["tooltip"]} >= {"health", "flagged"}
    healthy = pd.DataFrame(spec["datasets"][ok["data"]["name"]])
    flagged = pd.DataFrame(spec["datasets"][bad["data"]["name"]]).set_index("label")
    assert len(healthy) == 8 and set(healthy["health"]) == {"ok"} and (healthy["health_note"] == "").all()
    assert sorted(flagged.index) == ["A", "C"] and list(flagged.loc[["A", "C"], "seed"]) == [1, 0]
    assert flagged.loc["A", "health"] == "collapsed" and flagged.loc["C", "health"] == "exploded"
    assert flagged.loc["A", "health_note"] == "collapsed at epoch 31 — fell back to chance"
    rule, text = spec["layer"][4:]
    ref = spec["datasets"][rule["data"]["name"]]
    assert [(r["baseline_label"], r["baseline"]) for r in ref] == [("chance 0.019", 0.019)]
    assert rule["mark"]["strokeDash"] == [4, 3] and rule["encoding"]["y"]["field"] == "baseline"
    assert text["encoding"]["text"]["field"] == "baseline_label" and text["encoding"]["x"] == {"value": "width"}


def test_spread_chart_draws_the_table_with_the_series_colours():
    table = pd.DataFrame({"series": ["BN + Adam", "BN + Adam", "SGD", "SGD"],
                          "variant": ["cnn/bn-adam", "cnn/bn-adam", "cnn/sgd", "cnn/sgd"], "order": [0, 0, 2, 2],
                          "epoch": [200, 1000, 200, 1000], "n": [3, 3, 4, 4], "sd": [0.02, 0.01, 0.03, 0.005],
                          "lo": [0.90, 0.93, 0.80, 0.85], "hi": [0.94, 0.95, 0.86, 0.86]})
    spread = cmp.SeedSpread(table, pd.DataFrame(), metrics.metric("test_acc"))
    spec = charts.spread_chart(spread).to_dict()
    assert spec["mark"] == {"type": "line", "point": True}
    enc = spec["encoding"]
    assert enc["x"]["field"] == "epoch" and enc["x"]["type"] == "ordinal"
    assert enc["y"]["field"] == "sd" and enc["y"]["title"] == "sd across seeds (ddof=1)"
    assert enc["color"]["scale"] == {"domain": ["BN + Adam", "SGD"], "range": [charts.PALETTE[0], charts.PALETTE[2]]}
    assert {tip["field"] for tip in enc["tooltip"]} >= {"n", "sd", "lo", "hi"}
    pd.testing.assert_frame_equal(pd.DataFrame(spec["datasets"][spec["data"]["name"]]), table)
    many = replace(spread, table=pd.concat([table.assign(epoch=table["epoch"] + k) for k in range(3)]))
    assert charts.spread_chart(many).to_dict()["encoding"]["x"]["type"] == "quantitative"   # 6 epochs
    assert charts.spread_chart(replace(spread, table=table.iloc[:0])) is None


# -- smoothing, log y, shared y, zoom, wrapping ----------------------------------------------------------------
def tensorboard_ema(values: list[float], weight: float) -> np.ndarray:
    """TensorBoard's scalar smoothing, written out as its loop: debiased EMA, non-finite values passed through."""
    last, n, out = 0.0, 0, []
    for v in values:
        if not np.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight ** n))
    return np.array(out)


def test_ema_is_tensorboards_debiased_ema_per_series_and_metric():
    raw = [4.0, 1.0, 3.0, math.nan, 0.5, 2.0, 0.25]
    for w in (0.0, 0.6, 0.9, 0.99):
        np.testing.assert_allclose(charts.ema(pd.Series(raw), w), tensorboard_ema(raw, w), rtol=1e-12)
    assert charts.ema(pd.Series([5.0, 1.0]), 0.5).iloc[0] == 5.0          # debiased: starts at the value, not 0
    with pytest.raises(ValueError):
        charts.ema(pd.Series(raw), 1.0)
    adam, sgd = [2.0, 1.0, 1.5, 0.4, 0.6], [3.0, 2.5, 2.9, 1.0, 1.2]
    t = tables({("cnn/adam", 0): adam, ("cnn/adam", 1): [a + 0.2 for a in adam], ("cnn/sgd", 0): sgd})
    f = charts.curve_frame(t, ["train_loss"], smoothing=0.6, seeds=True)
    means = f[f["kind"] == "mean"].set_index(["series", "epoch"])
    np.testing.assert_allclose(means.loc["Adam", "smoothed"], tensorboard_ema([a + 0.1 for a in adam], 0.6))
    np.testing.assert_allclose(means.loc["SGD", "smoothed"], tensorboard_ema(sgd, 0.6))
    np.testing.assert_allclose(means.loc["Adam", "mean"], [a + 0.1 for a in adam])     # the raw mean is kept
    seed1 = f[(f["kind"] == "seed") & (f["series"] == "Adam") & (f["seed"] == 1)]
    np.testing.assert_allclose(seed1["smoothed"], tensorboard_ema([a + 0.2 for a in adam], 0.6))
    off = charts.curve_frame(t, ["train_loss"])
    assert (off["smoothed"] == off["mean"]).all()                              # 0 = off


def test_smoothing_draws_the_smoothed_mean_over_the_faint_raw_mean_with_both_in_the_tooltip():
    t = tables({("cnn/adam", 0): [2.0, 1.0, 1.5], ("cnn/sgd", 0): [3.0, 2.0, 2.5]})
    spec = charts.curves_spec(charts.curve_frame(t, ["train_loss"], smoothing=0.8), smoothing=0.8)
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["area", "line", "line", "circle"]
    raw, smooth, tip = layers[1:]
    assert raw["encoding"]["y"]["field"] == "mean" and raw["mark"]["strokeWidth"] == 1
    assert raw["encoding"]["opacity"]["condition"][0]["value"] < 0.5                     # faint
    assert smooth["encoding"]["y"]["field"] == "smoothed" and tip["encoding"]["y"]["field"] == "smoothed"
    tips = {t.get("title", t["field"]): t for t in tip["encoding"]["tooltip"]}
    assert tips["mean (raw)"]["format"] == ".4g" and tips["smoothed (EMA 0.8)"]["format"] == ".4g"
    plain = charts.curves_spec(charts.curve_frame(t, ["train_loss"]))
    assert [layer["mark"]["type"] for layer in plain["spec"]["layer"]] == ["area", "line", "circle"]


def curves_three_panels() -> RunTables:
    t = tables({("cnn/adam", 0): [2.0, 1.0, 0.5], ("cnn/sgd", 0): [3.0, 2.0, 1.0]})
    return RunTables(t.runs, pd.concat([t.epochs, t.epochs.assign(name="val_loss"),
                                        t.epochs.assign(name="val_acc", value=0.1)]), t.tests)


def y_types(part: dict) -> set[str]:
    return {layer["encoding"]["y"].get("scale", {}).get("type", "linear") for layer in part["spec"]["layer"]}


def test_log_y_only_on_the_loss_panels():
    frame = charts.curve_frame(curves_three_panels(), ["train_loss", "val_loss", "val_acc"])
    spec = charts.curves_spec(frame, log_y=True)
    loss, score = spec["concat"]
    assert loss["facet"]["sort"] == ["training loss", "validation loss"] and y_types(loss) == {"log"}
    assert score["facet"]["sort"] == ["validation accuracy"] and y_types(score) == {"linear"}
    assert loss["transform"][0]["filter"]["oneOf"] == loss["facet"]["sort"]
    assert spec["resolve"]["scale"]["y"] == "independent" and spec["columns"] == 2        # side by side
    assert [p["name"] for p in spec["params"]] == ["pick", "zoom"]                        # one of each
    assert y_types(charts.curves_spec(frame)) == {"linear"}
    narrow = charts.curves_spec(frame, log_y=True, columns=1)
    assert narrow["columns"] == 1 and narrow["concat"][0]["columns"] == 1
    fig = figure_tables()
    loss_row, score_row = spec_of(charts.figure_chart(fig, "cnn", log_y=True))["vconcat"]
    assert y_types(loss_row) == {"log"} and y_types(score_row) == {"linear"}
    assert loss_row["facet"]["title"] == "training loss (log scale)"


def figure_tables() -> RunTables:
    curves = {(v, s): [0.3, 0.2, 0.1] for v in ("cnn/bn-adam", "cnn/adam", "cnn/sgd") for s in (0, 1)}
    t = tables(curves, tests={k: 0.5 for k in curves})
    return RunTables(t.runs, pd.concat([t.epochs, t.epochs.assign(name="val_acc")]), t.tests)


def test_figure_shared_y_across_columns_and_wrapping_columns():
    t = figure_tables()
    default = spec_of(charts.figure_chart(t, "cnn"))
    assert default["resolve"]["scale"]["y"] == "independent" and "row" in default["facet"]      # as before
    spec = spec_of(charts.figure_chart(t, "cnn", shared_y=True))
    rows = spec["vconcat"]
    assert [r["transform"][0]["filter"] for r in rows] == ["(datum.metric === 'training loss')",
                                                          "(datum.metric === 'validation accuracy')"]
    assert all(r["resolve"]["scale"]["y"] == "shared" for r in rows)                 # across the columns
    assert spec["resolve"]["scale"]["y"] == "independent"                            # not across the rows
    assert all(r["columns"] == 3 for r in rows)                                      # one line of variants
    wrapped = spec_of(charts.figure_chart(t, "cnn", columns=2, width=150))["vconcat"]
    assert all(r["columns"] == 2 and r["facet"]["field"] == "panel" for r in wrapped)
    assert all(r["spec"]["width"] == 150 for r in wrapped)
    assert all(r["resolve"]["scale"]["y"] == "independent" for r in wrapped)


def test_zoom_and_pan_are_scales_bound_to_an_interval_on_every_chart():
    frame = charts.curve_frame(curves_three_panels(), ["train_loss", "val_loss", "val_acc"])
    t = figure_tables()
    for spec in (charts.curves_spec(frame), spec_of(charts.curves_chart(frame)),
                 spec_of(charts.figure_chart(t, "cnn")), spec_of(charts.figure_chart(t, "cnn", shared_y=True))):
        zoom = [p for p in spec["params"] if p["name"] == "zoom"]
        assert len(zoom) == 1 and zoom[0]["bind"] == "scales"
        assert zoom[0]["select"] == {"type": "interval", "encodings": ["x"]}
    one = charts.curves_spec(frame, columns=1, width=240)
    assert one["columns"] == 1 and one["spec"]["width"] == 240                       # panels wrap: one a row
    assert charts.curves_spec(frame)["columns"] == 3
