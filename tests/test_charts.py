"""adlapp.charts (every picture) on hand-made run tables whose every number can be checked by hand (no torch,
no training), plus the display tables the charts sit next to (adlapp.report's)."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import altair as alt
import numpy as np
import pandas as pd
import pytest

from adlapp import charts, metrics, report
from adlapp import compare as cmp
from adlapp.config import config_to_dict, display_name, run_key, variant, variant_label
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
    assert table.loc["Normal", "3"] == "0.971 ± 0.001 (n=3)"


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


def groups_of(d):
    return [cmp.Group(VARIANTS[k], 3, k, np.asarray(v, dtype=float), tuple(range(len(v))), (),
                      series=display_name(VARIANTS[k])) for k, v in d.items()]


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
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["circle", "rule", "point"]
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
