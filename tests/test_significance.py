"""adlapp.significance (data shaping for the Compare page) and adlapp.significance_charts (chart specs).

Groups are built from hand-made RunTables, so every expected value can be checked by hand or against
adlapp.stats itself (the page must show stats' numbers, not its own).
"""
import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from adlapp import significance as sig
from adlapp import significance_charts as charts
from adlapp import stats
from adlapp.config import config_to_dict, run_key, variant, variant_label
from adlapp.store import RUN_COLUMNS, RunTables

pytestmark = pytest.mark.filterwarnings("error")

ACC = sig.metric_by_key("cnn", "test:acc")
VAL_ACC = sig.metric_by_key("cnn", "val:val_acc")
PIX = sig.metric_by_key("unet", "test:pixel_acc")


def cnn(name="cnn/adam", epochs=3, **kw):
    return replace(variant(name), epochs=epochs, **kw)


def unet(name="unet/normal", epochs=10, eval_at=(4,)):
    return replace(variant(name), epochs=epochs, eval_at=eval_at)


def tables(*runs):
    """runs: (cfg, seed, status, tests {epoch: {name: v}}, curve {epoch: {name: v}}) -> RunTables."""
    rows, ep, te = [], [], []
    for i, (cfg, seed, status, tests, curve) in enumerate(runs):
        key = run_key(cfg, seed)
        rows.append({**{c: None for c in RUN_COLUMNS}, "key": key, "experiment": cfg.experiment,
                     "variant": variant_label(cfg), "seed": seed, "epochs": cfg.epochs, "status": status,
                     "last_epoch": cfg.epochs, "created": float(i), "config": json.dumps(config_to_dict(cfg))})
        te += [{"key": key, "epoch": e, "name": n, "value": v} for e, d in tests.items() for n, v in d.items()]
        ep += [{"key": key, "epoch": e, "name": n, "value": v} for e, d in curve.items() for n, v in d.items()]
    cols = ["key", "epoch", "name", "value"]
    return RunTables(pd.DataFrame(rows, columns=RUN_COLUMNS), pd.DataFrame(ep, columns=cols),
                     pd.DataFrame(te, columns=cols))


def done(cfg, seed, acc, status="done"):
    """A CNN run scored `acc` at its last epoch, with a flat validation curve at the same value."""
    tests = {} if acc is None else {cfg.epochs: {"acc": acc, "loss": 1 - acc}}
    curve = {e: {"val_acc": acc if acc is not None else math.nan} for e in range(1, cfg.epochs + 1)}
    return cfg, seed, status, tests, curve


# -- group extraction -----------------------------------------------------------------------------------
def test_test_metric_groups_at_the_evaluation_epoch():
    t = tables(*(done(cnn("cnn/adam"), s, v) for s, v in enumerate([0.50, 0.52, 0.54])),
               *(done(cnn("cnn/sgd"), s, v) for s, v in enumerate([0.40, 0.41, 0.45])))
    groups, notes = sig.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC)
    assert [g.label for g in groups] == ["Adam", "SGD"]           # one epoch: course names only
    np.testing.assert_allclose(groups[0].values, [0.50, 0.52, 0.54])
    assert groups[1].seeds == (0, 1, 2) and groups[1].n == 3 and notes == []


def test_variant_at_two_epochs_is_two_groups():
    runs = [(unet(), s, "done", {4: {"pixel_acc": 0.9 + s / 100}, 10: {"pixel_acc": 0.95 + s / 100}}, {})
            for s in range(3)]
    groups, _ = sig.extract_groups(tables(*runs), "unet", ["unet/normal"], [4, 10], PIX)
    assert [g.label for g in groups] == ["Normal @ 4", "Normal @ 10"]
    np.testing.assert_allclose(groups[0].values, [0.90, 0.91, 0.92])
    np.testing.assert_allclose(groups[1].values, [0.95, 0.96, 0.97])


def test_last_validation_value():
    cfg = cnn(epochs=4)
    runs = [(cfg, s, "done", {}, {e: {"val_acc": e / 10 + s} for e in range(1, 5)}) for s in range(3)]
    groups, _ = sig.extract_groups(tables(*runs), "cnn", ["cnn/adam"], [4], VAL_ACC)
    np.testing.assert_allclose(groups[0].values, [0.4, 1.4, 2.4])


def test_diverged_runs_are_nan_excluded_and_counted():
    t = tables(*(done(cnn(), s, v) for s, v in enumerate([0.5, 0.6, 0.55])),
               done(cnn(), 3, None, status="diverged"),                       # never scored: NaN
               *(done(cnn("cnn/sgd"), s, v) for s, v in enumerate([0.3, 0.35, 0.32])))
    groups, notes = sig.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC)
    adam = groups[0]
    assert adam.values.size == 4 and adam.n == 3 and adam.n_excluded == 1
    assert any("1 diverged run(s) excluded" in m for _, m in notes)
    res = sig.compare_groups(groups)
    row = res.pairs.iloc[0]
    assert row["n_a"] == 3 and row["n_excluded_a"] == 1              # counted by stats, not averaged in
    assert "Adam: 1 diverged run excluded" in row["sentence"]
    assert res.summary.loc[0, "axis_label"] == "Adam (n=3, 1 diverged)"


def test_pending_duplicate_and_unfinished_runs():
    short, long = cnn(epochs=3), cnn(epochs=3, eval_at=(2,))          # same training, different run length
    t = tables(done(short, 0, 0.5), done(short, 1, 0.6), done(long, 1, 0.6), done(short, 2, 0.7),
               (cnn(), 5, "running", {}, {}), (cnn(), 6, "failed", {}, {}))
    (g,), notes = sig.extract_groups(t, "cnn", ["cnn/adam"], [3], ACC)
    assert g.seeds == (0, 1, 2) and g.n_duplicates == 1 and g.n_pending == 1
    assert any("queued or running" in m for _, m in notes)


def test_done_run_without_the_metric_is_left_out_not_counted_as_diverged():
    t = tables(*(done(cnn(), s, 0.5 + s / 10) for s in range(3)), (cnn(), 3, "done", {}, {}))
    (g,), notes = sig.extract_groups(t, "cnn", ["cnn/adam"], [3], ACC)
    assert g.values.size == 3 and g.n_excluded == 0
    assert notes == [("info", "Adam: 1 finished run(s) have no test accuracy at epoch 3 and are left out.")]


def test_missing_group_is_reported_not_empty():
    t = tables(*(done(cnn(), s, 0.5 + s / 10) for s in range(3)))
    groups, notes = sig.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC)
    assert [g.variant for g in groups] == ["cnn/adam"]
    assert notes == [("info", "SGD: no finished run scored at epoch 3.")]


# -- the comparison -------------------------------------------------------------------------------------
GROUPS = {"A": [0.971, 0.975, 0.969], "B": [0.962, 0.968, 0.966, 0.960, 0.963], "C": [0.95, 0.97]}


def groups_of(d):
    return [sig.Group("cnn/x", 3, k, np.asarray(v, dtype=float), tuple(range(len(v))), ()) for k, v in d.items()]


def test_compare_groups_uses_stats_and_leaves_small_groups_untested():
    res = sig.compare_groups(groups_of(GROUPS), "holm")
    assert list(zip(res.pairs["a"], res.pairs["b"])) == [("A", "B"), ("A", "C"), ("B", "C")]
    ref = stats.pairwise({"A": GROUPS["A"], "B": GROUPS["B"]}, "holm")    # family: the tested pair only
    ab = res.pairs.iloc[0]
    assert ab["tested"] and ab["welch_p"] == pytest.approx(ref.loc[0, "welch_p"], rel=1e-12)
    assert ab["p_adjusted"] == pytest.approx(ref.loc[0, "p_adjusted"], rel=1e-12)
    assert ab["sentence"] == ref.loc[0, "sentence"]
    ac = res.pairs.iloc[1]
    assert not ac["tested"] and math.isnan(ac["welch_p"]) and math.isnan(ac["p_adjusted"])
    assert ac["hedges_g"] == pytest.approx(stats.compare(GROUPS["A"], GROUPS["C"])["hedges_g"], rel=1e-12)
    assert "not tested because n < 3 (C has n = 2)" in ac["sentence"]


def test_rank_test_hidden_when_it_cannot_reach_alpha():
    res = sig.compare_groups(groups_of({"A": GROUPS["A"], "B": GROUPS["B"]}))
    row = res.pairs.iloc[0]
    assert row["mwu_min_p"] == pytest.approx(2 / math.comb(8, 3))            # 0.036 < 0.05: shown
    assert row["mwu_shown"] and np.isfinite(row["mwu_p"])
    res = sig.compare_groups(groups_of({"A": GROUPS["A"], "B": GROUPS["B"][:3]}))
    row = res.pairs.iloc[0]
    assert not row["mwu_shown"] and math.isnan(row["mwu_p"])                 # 3 vs 3: min p = 0.1
    assert any("smallest possible p = 0.100" in m for _, m in res.notes)
    table = sig.pair_table(res.pairs, "holm")
    assert table.loc[0, "Mann-Whitney p"] == "cannot reach 0.05 (min p 0.100)"
    assert table.loc[0, "n"] == "3 vs 3"


def test_pair_table_shows_course_z_next_to_welch():
    res = sig.compare_groups(groups_of({"A": GROUPS["A"], "B": GROUPS["B"]}), "bh")
    row = sig.pair_table(res.pairs, "bh").iloc[0]
    ref = stats.compare(GROUPS["A"], GROUPS["B"])
    assert row["course z = d/√2 (standardised Δ, not a test)"] == f"{ref['z_seed']:+.3g}"
    assert f"Welch p = {row['Welch p']}" in res.pairs["sentence"].iloc[0]      # same rounding as stats
    assert float(row["Welch p"]) == pytest.approx(ref["welch_p"], abs=5e-4)
    assert "p adjusted (BH)" in row.index


# -- how many seeds -------------------------------------------------------------------------------------
def test_power_plan_defaults_to_observed_difference_and_matches_stats():
    res = sig.compare_groups(groups_of(GROUPS))
    a, b = res.pair_groups(1)
    assert (a.label, b.label) == ("A", "C")
    a, b = groups_of({"A": GROUPS["A"], "B": GROUPS["B"]})
    plan = sig.power_plan(a, b, None, comparisons=3)
    sd = stats.pooled_sd(GROUPS["A"], GROUPS["B"])
    delta = abs(np.mean(GROUPS["A"]) - np.mean(GROUPS["B"]))
    assert plan.delta == pytest.approx(delta) and plan.sd == pytest.approx(sd)
    for p in (0.8, 0.9):
        assert list(plan.table[f"{p:.0%} power"]) == [stats.seeds_needed(delta / sd, 0.05, p, k) for k in (1, 3)]
    assert plan.current_n == 3 and set(plan.curve["rule"]) == {"uncorrected", "Bonferroni over 3 pairs"}
    assert plan.recommended == stats.seeds_needed(delta / sd, 0.05, 0.8, 3)
    assert list(plan.curve["n"].unique()) == list(range(2, 31))
    assert "biased upward" in plan.caveat


def test_power_plan_reference_number_and_bad_inputs():
    a, b = groups_of({"A": [0.0, 1.0, 2.0], "B": [1.0, 2.0, 3.0]})          # sd = 1
    plan = sig.power_plan(a, b, 1.0, comparisons=1)
    assert plan.d == pytest.approx(1.0) and plan.table["80% power"].iloc[0] == 17      # notes: d=1 -> 17
    assert sig.power_plan(a, b, 0.0, 1).error
    flat = groups_of({"A": [0.5, 0.5, 0.5], "B": [0.5, 0.5, 0.5]})
    assert "No spread" in sig.power_plan(*flat, None, 1).error


# -- missing seeds --------------------------------------------------------------------------------------
def test_missing_seeds_fill_the_smallest_unused_numbers_with_the_runs_config():
    adam, sgd = cnn("cnn/adam"), cnn("cnn/sgd")
    t = tables(done(adam, 0, 0.5), done(adam, 2, 0.6), done(adam, 5, None, status="diverged"),
               (adam, 1, "failed", {}, {}), (adam, 7, "queued", {}, {}),
               *(done(sgd, s, 0.4) for s in range(3)))
    plans = sig.missing_seeds(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC, target_n=6)
    by = {p.variant: p for p in plans}
    assert by["cnn/adam"].present == (0, 2, 5, 7)              # diverged and queued count, failed does not
    assert by["cnn/adam"].missing == (1, 3)                    # failed seed 1 is asked for again
    assert by["cnn/adam"].config == adam
    assert by["cnn/sgd"].missing == (3, 4, 5)
    reqs = sig.seed_requests(plans)
    assert [(c.optim.name, s) for c, s in reqs] == [("adam", 1), ("adam", 3), ("sgd", 3), ("sgd", 4), ("sgd", 5)]
    assert sig.missing_seeds(t, "cnn", ["cnn/sgd"], [3], ACC, target_n=2)[0].missing == ()
    table = sig.plan_table(plans)
    assert list(table["to queue"]) == ["1, 3", "3-5"] and list(table["present"]) == ["0, 2, 5, 7", "0-2"]


def test_missing_seeds_need_a_run_covering_every_selected_epoch():
    short = unet(epochs=4, eval_at=())                         # scored at 4 only
    full = unet(epochs=10, eval_at=(4,))                       # scored at 4 and 10
    t = tables(*[(short, s, "done", {4: {"pixel_acc": 0.9}}, {}) for s in range(3)],
               (full, 0, "done", {4: {"pixel_acc": 0.9}, 10: {"pixel_acc": 0.95}}, {}))
    (p,) = sig.missing_seeds(t, "unet", ["unet/normal"], [4, 10], PIX, target_n=3)
    assert p.config == full and p.present == (0,) and p.missing == (1, 2)
    (p,) = sig.missing_seeds(t, "unet", ["unet/normal"], [4], PIX, target_n=3)
    assert p.config == short and p.missing == ()


# -- presets and widget state ---------------------------------------------------------------------------
def test_presets_fall_back_to_the_data():
    t = tables(*(done(cnn(n), s, 0.5) for n in ("cnn/bn-adam", "cnn/adam") for s in range(3)))
    opts = sig.options(t)
    assert opts == {"cnn": {"variants": ["cnn/bn-adam", "cnn/adam"], "epochs": [3]}}
    assert sig.default_preset(opts) == "Course: CNN optimisers & BN"
    state = sig.preset_state("Course: CNN optimisers & BN", opts)
    assert state == {"sig_preset": "Course: CNN optimisers & BN", "sig_experiment": "cnn",
                     "sig_variants": ["cnn/bn-adam", "cnn/adam"], "sig_epochs": [3], "sig_metric": "test:acc"}
    no_unet = sig.preset_state("Course: normal 200 vs 1000", opts)
    assert no_unet == {**state, "sig_preset": "Custom"}                 # no U-Net data: CNN, as Custom
    assert sig.sanitize_state({**state, "sig_variants": ["cnn/sgd", "cnn/adam"]}, opts) == {
        "sig_variants": ["cnn/adam"]}


def test_course_presets_name_registry_variants():
    for p in sig.PRESETS.values():
        assert all(v.startswith(p.experiment + "/") and variant(v) for v in p.variants)
        assert sig.metric_by_key(p.experiment, p.metric)


# -- significance along the curve -----------------------------------------------------------------------
def test_curve_significance_uses_complete_epochs_and_welch_over_epochs():
    a_cfg, b_cfg = cnn("cnn/adam", epochs=5), cnn("cnn/sgd", epochs=5)
    runs = [(a_cfg, s, "done", {}, {e: {"val_acc": 0.1 * e + 0.01 * s} for e in range(1, 6)}) for s in range(3)]
    runs += [(b_cfg, s, "done", {}, {e: {"val_acc": 0.1 + 0.013 * s} for e in range(1, 6)}) for s in range(3)]
    runs.append((b_cfg, 9, "diverged", {}, {1: {"val_acc": 0.2}}))
    cur = sig.curve_significance(tables(*runs), "cnn", "cnn/adam", "cnn/sgd", ACC, "holm")
    assert list(cur.tests["epoch"]) == [1, 2, 3, 4, 5]
    a = np.array([[0.1 * e + 0.01 * s for e in range(1, 6)] for s in range(3)])
    b = np.array([[0.1 + 0.013 * s for e in range(1, 6)] for s in range(3)])
    ref = stats.welch_over_epochs(a, b, "holm", epochs=[1, 2, 3, 4, 5])
    np.testing.assert_allclose(cur.tests["p_adjusted"], ref["p_adjusted"])
    assert "1 diverged run(s) left out" in cur.message
    assert set(cur.curves["label"]) == {"Adam", "SGD"} and (cur.curves["n"] == 3).all()
    thin = sig.curve_significance(tables(*runs), "cnn", "cnn/adam", "cnn/sgd", ACC, max_points=3)
    assert list(thin.tests["epoch"]) == [1, 3, 5]
    same = sig.curve_significance(tables(*runs), "cnn", "cnn/adam", "cnn/adam", ACC)
    assert same.tests.empty and "same runs" in same.message


# -- chart specs ----------------------------------------------------------------------------------------
def test_matrix_chart_is_a_diverging_heatmap_centred_at_zero():
    res = sig.compare_groups(groups_of(GROUPS))
    order = list(res.summary["axis_label"])
    for color_by, field in (("diff", "diff"), ("hedges_g", "hedges_g")):
        spec = charts.matrix_chart(res.pairs, order, color_by, higher_is_better=False).to_dict()
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
    cells = {d["b"]: d["cell"] for d in data}
    assert "n < 3: not tested" in cells["C"]


def test_strip_power_and_curve_chart_layers():
    res = sig.compare_groups(groups_of(GROUPS))
    spec = charts.strip_chart(res.points, res.summary, "test accuracy").to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["circle", "rule", "point"]
    assert spec["layer"][0]["encoding"]["xOffset"]["field"] == "seed"
    assert len(spec["datasets"][spec["layer"][0]["data"]["name"]]) == 10    # every seed is a point
    a, b = groups_of({"A": GROUPS["A"], "B": GROUPS["B"]})
    plan = sig.power_plan(a, b, None, comparisons=3)
    spec = charts.power_chart(plan.curve, plan.current_n).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "rule", "rule", "text"]
    curves = pd.DataFrame({"label": ["A", "B"], "epoch": [1, 1], "mean": [0.5, 0.4], "lo": [0.4, 0.3],
                           "hi": [0.6, 0.5], "n": [3, 3]})
    tests = pd.DataFrame({"epoch": [1], "diff": [0.1], "welch_p": [0.01], "p_adjusted": [0.01],
                          "significant": [True]})
    spec = charts.curve_chart(curves, tests, "validation accuracy").to_dict()
    assert len(spec["vconcat"]) == 2 and spec["vconcat"][1]["mark"]["type"] == "tick"
