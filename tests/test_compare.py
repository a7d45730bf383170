"""adlapp.compare: series, groups, pairs, families, presets, seed plans and the curve test (numbers only).

Groups are built from hand-made RunTables, so every expected value can be checked by hand or against
adlapp.stats itself (the page must show stats' numbers, not its own). Chart specs are in test_charts.py,
the words (notes, tables, sentences) in test_report.py.
"""
import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from adlapp import compare as cmp
from adlapp import stats
from adlapp.config import config_to_dict, run_key, variant, variant_label
from adlapp.metrics import compare_metrics, metric
from adlapp.store import RUN_COLUMNS, RunTables

pytestmark = pytest.mark.filterwarnings("error")

ACC = metric("test_acc")
VAL_ACC = metric("val_acc")
PIX = metric("test_pixel_acc")


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


# -- series: the one rule for which runs belong together -------------------------------------------------------
def test_runs_that_differ_only_in_run_length_are_one_series():
    short, long = cnn(epochs=3), cnn(epochs=5, eval_at=(3,))
    other = cnn(epochs=3, data=replace(variant("cnn/adam").data, train_per_class=7))
    t = tables(done(short, 0, 0.5), done(long, 1, 0.6), done(other, 0, 0.4), done(cnn("cnn/sgd"), 0, 0.3))
    s = cmp.series_table(t.runs)
    assert list(s["series"]) == ["Adam (train_per_class=20)", "Adam (train_per_class=20)",
                                 "Adam (train_per_class=7)", "SGD"]
    assert s["signature"].iloc[0] == s["signature"].iloc[1] != s["signature"].iloc[2]
    assert list(s["order"]) == [0, 0, 1, 2]                            # registry order, then label
    alone = cmp.series_table(tables(done(short, 0, 0.5), done(long, 1, 0.6)).runs)
    assert set(alone["series"]) == {"Adam"}                             # one training: just the display name


def test_a_seed_counts_once_per_series():
    rows = pd.DataFrame({"series": ["A", "A", "A", "B"], "seed": [0, 0, 1, 0], "key": ["k1", "k2", "k3", "k4"]})
    kept = cmp.one_per_seed(rows, ["series", "seed"], pd.Series([1, 5, 1, 1]))
    assert sorted(kept["key"]) == ["k2", "k3", "k4"]                  # the better run of seed 0 of A
    assert list(cmp.one_per_seed(rows, ["series", "seed"])["key"]) == ["k1", "k3", "k4"]


def test_test_summary_counts_each_seed_once_and_uses_ddof_1():
    short, long = cnn(epochs=3), cnn(epochs=5, eval_at=(3,))
    t = tables(done(short, 0, 0.5), (long, 0, "done", {3: {"acc": 0.5}, 5: {"acc": 0.7}}, {}),
               done(short, 1, 0.7), done(short, 2, 0.6))
    s = cmp.test_summary(t, ["acc"]).set_index("epoch")
    assert s.loc[3, "n"] == 3 and s.loc[3, "mean"] == pytest.approx(0.6) and s.loc[3, "sd"] == pytest.approx(0.1)
    assert s.loc[5, "n"] == 1 and math.isnan(s.loc[5, "sd"]) and s.loc[3, "values"] == {0: 0.5, 1: 0.7, 2: 0.6}


# -- group extraction ------------------------------------------------------------------------------------------
def test_test_metric_groups_at_the_evaluation_epoch():
    t = tables(*(done(cnn("cnn/adam"), s, v) for s, v in enumerate([0.50, 0.52, 0.54])),
               *(done(cnn("cnn/sgd"), s, v) for s, v in enumerate([0.40, 0.41, 0.45])))
    groups, gaps = cmp.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC)
    assert [g.label for g in groups] == ["Adam", "SGD"]           # one epoch: course names only
    np.testing.assert_allclose(groups[0].values, [0.50, 0.52, 0.54])
    assert groups[1].seeds == (0, 1, 2) and groups[1].n == 3 and gaps == []


def test_variant_at_two_epochs_is_two_groups():
    runs = [(unet(), s, "done", {4: {"pixel_acc": 0.9 + s / 100}, 10: {"pixel_acc": 0.95 + s / 100}}, {})
            for s in range(3)]
    groups, _ = cmp.extract_groups(tables(*runs), "unet", ["unet/normal"], [4, 10], PIX)
    assert [g.label for g in groups] == ["Normal @ 4", "Normal @ 10"]
    np.testing.assert_allclose(groups[0].values, [0.90, 0.91, 0.92])
    np.testing.assert_allclose(groups[1].values, [0.95, 0.96, 0.97])


def test_last_validation_value():
    cfg = cnn(epochs=4)
    runs = [(cfg, s, "done", {}, {e: {"val_acc": e / 10 + s} for e in range(1, 5)}) for s in range(3)]
    groups, _ = cmp.extract_groups(tables(*runs), "cnn", ["cnn/adam"], [4], VAL_ACC)
    np.testing.assert_allclose(groups[0].values, [0.4, 1.4, 2.4])


def test_diverged_runs_are_nan_excluded_and_counted():
    t = tables(*(done(cnn(), s, v) for s, v in enumerate([0.5, 0.6, 0.55])),
               done(cnn(), 3, None, status="diverged"),                       # never scored: NaN
               *(done(cnn("cnn/sgd"), s, v) for s, v in enumerate([0.3, 0.35, 0.32])))
    groups, _ = cmp.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC)
    adam = groups[0]
    assert adam.values.size == 4 and adam.n == 3 and adam.n_excluded == 1
    row = cmp.compare_groups(groups).pairs.iloc[0]
    assert row["n_a"] == 3 and row["n_excluded_a"] == 1              # counted by stats, not averaged in


def test_pending_duplicate_and_unfinished_runs():
    short, long = cnn(epochs=3), cnn(epochs=3, eval_at=(2,))          # same training, different run length
    t = tables(done(short, 0, 0.5), done(short, 1, 0.6), done(long, 1, 0.6), done(short, 2, 0.7),
               (cnn(), 5, "running", {}, {}), (cnn(), 6, "failed", {}, {}))
    (g,), gaps = cmp.extract_groups(t, "cnn", ["cnn/adam"], [3], ACC)
    assert g.seeds == (0, 1, 2) and g.n_duplicates == 1 and g.n_pending == 1 and gaps == []


def test_done_run_without_the_metric_is_left_out_not_counted_as_diverged():
    t = tables(*(done(cnn(), s, 0.5 + s / 10) for s in range(3)), (cnn(), 3, "done", {}, {}))
    (g,), gaps = cmp.extract_groups(t, "cnn", ["cnn/adam"], [3], ACC)
    assert g.values.size == 3 and g.n_excluded == 0
    assert gaps == [cmp.Gap("Adam", 3, lacking=1)]


def test_missing_group_is_a_gap_not_an_empty_group():
    t = tables(*(done(cnn(), s, 0.5 + s / 10) for s in range(3)), (cnn("cnn/sgd"), 0, "queued", {}, {}))
    groups, gaps = cmp.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC)
    assert [g.variant for g in groups] == ["cnn/adam"]
    assert gaps == [cmp.Gap("SGD", 3, empty=True, pending=1)]


def test_two_trainings_of_one_variant_are_two_groups_not_one_mixed():
    other = cnn(data=replace(variant("cnn/adam").data, train_per_class=7))
    t = tables(*(done(cnn(), s, 0.5) for s in range(3)), *(done(other, s, 0.4) for s in range(3)))
    groups, _ = cmp.extract_groups(t, "cnn", ["cnn/adam"], [3], ACC)
    assert [g.label for g in groups] == ["Adam (train_per_class=20)", "Adam (train_per_class=7)"]
    assert [g.n for g in groups] == [3, 3]


# -- pairs and families ----------------------------------------------------------------------------------------
GROUPS = {"A": [0.971, 0.975, 0.969], "B": [0.962, 0.968, 0.966, 0.960, 0.963], "C": [0.95, 0.97]}


def groups_of(d, epoch=3):
    return [cmp.Group("cnn/x", epoch, k, np.asarray(v, dtype=float), tuple(range(len(v))), (), series=k)
            for k, v in d.items()]


def test_compare_groups_uses_stats_and_leaves_small_groups_untested():
    res = cmp.compare_groups(groups_of(GROUPS), "holm")
    assert list(zip(res.pairs["a"], res.pairs["b"], strict=True)) == [("A", "B"), ("A", "C"), ("B", "C")]
    ref = stats.pairwise({"A": GROUPS["A"], "B": GROUPS["B"]}, "holm")    # family: the tested pair only
    ab = res.pairs.iloc[0]
    assert ab["tested"] and ab["welch_p"] == pytest.approx(ref.loc[0, "welch_p"], rel=1e-12)
    assert ab["p_adjusted"] == pytest.approx(ref.loc[0, "p_adjusted"], rel=1e-12)
    assert ab["family"] == "epoch:3" and ab["family_size"] == 1
    ac = res.pairs.iloc[1]
    assert not ac["tested"] and math.isnan(ac["welch_p"]) and math.isnan(ac["p_adjusted"])
    assert ac["hedges_g"] == pytest.approx(stats.compare(GROUPS["A"], GROUPS["C"])["hedges_g"], rel=1e-12)
    assert ac["family_size"] == 0 and res.family_pairs(1) == 3


def test_rank_test_hidden_when_it_cannot_reach_alpha():
    res = cmp.compare_groups(groups_of({"A": GROUPS["A"], "B": GROUPS["B"]}))
    row = res.pairs.iloc[0]
    assert row["mwu_min_p"] == pytest.approx(2 / math.comb(8, 3))            # 0.036 < 0.05: shown
    assert row["mwu_shown"] and np.isfinite(row["mwu_p"])
    res = cmp.compare_groups(groups_of({"A": GROUPS["A"], "B": GROUPS["B"][:3]}))
    row = res.pairs.iloc[0]
    assert not row["mwu_shown"] and math.isnan(row["mwu_p"])                 # 3 vs 3: min p = 0.1


def three(level):
    return [level + 0.01 * s for s in (0, 1, 3)]


def two_by_two():
    """Variants x and y at epochs 1 and 2: values that differ, so every pair has a Welch p."""
    return [cmp.Group(v, e, f"{v} @ {e}", np.asarray(three(x)), (0, 1, 2), (), series=v)
            for v, base in (("x", 0.5), ("y", 0.55)) for e, x in ((1, base), (2, base + 0.1))]


def test_families_within_an_epoch_and_within_a_variant_across_epochs():
    res = cmp.compare_groups(two_by_two())
    fams = dict(zip(res.pair_labels(), res.pairs["family"], strict=True))
    assert fams == {"x @ 1 vs x @ 2": "budgets", "x @ 1 vs y @ 1": "epoch:1", "x @ 2 vs y @ 2": "epoch:2",
                    "y @ 1 vs y @ 2": "budgets"}                          # x@1 vs y@2: not compared by default
    assert dict(zip(res.pairs["family"], res.pairs["family_size"], strict=True)) == {
        "budgets": 2, "epoch:1": 1, "epoch:2": 1}
    for _fam, part in res.pairs.groupby("family"):
        assert list(part["p_adjusted"]) == pytest.approx(stats.holm(list(part["welch_p"])))
    cross = cmp.compare_groups(two_by_two(), cross=True)
    assert len(cross.pairs) == 6 and (cross.pairs["family"] == "cross").sum() == 2
    kept = cross.pairs[cross.pairs["family"] != "cross"]                # the other families do not change
    np.testing.assert_allclose(kept["p_adjusted"], res.pairs["p_adjusted"])


def test_explicit_pairs_are_one_family_in_the_order_given():
    res = cmp.compare_groups(two_by_two(), pairs=[("y", "x")])
    assert res.pair_labels() == ["y @ 1 vs x @ 1", "y @ 2 vs x @ 2"]
    assert set(res.pairs["family"]) == {"chosen"} and (res.pairs["family_size"] == 2).all()
    assert list(res.pairs["p_adjusted"]) == pytest.approx(stats.holm(list(res.pairs["welch_p"])))
    assert res.pairs["diff"].iloc[0] == pytest.approx(0.05)


def test_adding_an_epoch_does_not_change_the_pairs_of_another_epoch():
    """Why families are per epoch: the Home reading (one epoch at a time) and a Compare preset over three
    epochs give the same adjusted p for the same pair."""
    g = two_by_two()
    alone = cmp.compare_groups([x for x in g if x.epoch == 1])
    both = cmp.compare_groups(g)
    row = both.pairs[both.pairs["family"] == "epoch:1"].iloc[0]
    assert row["p_adjusted"] == alone.pairs["p_adjusted"].iloc[0] and row["family_size"] == 1


# -- presets ---------------------------------------------------------------------------------------------------
def test_presets_fall_back_to_the_data():
    t = tables(*(done(cnn(n), s, 0.5) for n in ("cnn/bn-adam", "cnn/adam") for s in range(3)))
    opts = cmp.options(t)
    assert opts == {"cnn": {"variants": ["cnn/bn-adam", "cnn/adam"], "epochs": [3]}}
    assert cmp.default_preset(opts) == "Course: CNN optimisers & BN"
    name, sel = cmp.resolve("Course: CNN optimisers & BN", opts)
    assert name == "Course: CNN optimisers & BN"
    assert sel == cmp.Selection("cnn", ("cnn/bn-adam", "cnn/adam"), (3,), "test_acc")
    assert cmp.resolve("Course: normal 200 vs 1000", opts) == ("Custom", sel)   # no U-Net data: CNN, as Custom
    assert cmp.restrict(replace(sel, variants=("cnn/sgd", "cnn/adam")), opts) == replace(sel, variants=("cnn/adam",))
    assert cmp.restrict(replace(sel, metric="test_f1"), opts).metric == "test_acc"
    assert cmp.restrict(cmp.Selection("unet", (), (), "test_f1"), opts) is None


def test_preset_epochs_fall_back_per_preset():
    runs = [(unet(n, epochs=3, eval_at=(1, 2)), s, "done", {e: {"pixel_acc": 0.9, "loss": 0.1} for e in (1, 2, 3)},
             {}) for n in ("unet/normal", "unet/elu") for s in range(3)]
    opts = cmp.options(tables(*runs))
    epochs = {n: cmp.resolve(n, opts)[1].epochs for n in cmp.PRESETS if n.startswith("Course: U") or "ELU" in n
              or "normal" in n}
    assert epochs == {"Course: U-Net variants at 200/400/1000": (1, 2, 3), "Course: normal 200 vs 1000": (1, 3),
                      "Course: ELU vs ReLU test loss at 200": (1,)}
    _, elu = cmp.resolve("Course: ELU vs ReLU test loss at 200", opts)
    assert elu.pairs == (("unet/elu", "unet/normal"),)                 # the nearest pair has no runs


def test_course_presets_name_registry_variants():
    for p in cmp.PRESETS.values():
        sel = p.selection
        assert all(v.startswith(sel.experiment + "/") and variant(v) for v in sel.variants)
        assert metric(sel.metric).key in [m.key for m in compare_metrics(sel.experiment)]
        assert all(set(pair) <= set(sel.variants) for pair in sel.pairs)


# -- how many seeds --------------------------------------------------------------------------------------------
def test_power_plan_defaults_to_observed_difference_and_matches_stats():
    res = cmp.compare_groups(groups_of(GROUPS))
    a, b = res.pair_groups(1)
    assert (a.label, b.label) == ("A", "C")
    a, b = groups_of({"A": GROUPS["A"], "B": GROUPS["B"]})
    plan = cmp.power_plan(a, b, None, comparisons=3)
    sd = stats.pooled_sd(GROUPS["A"], GROUPS["B"])
    delta = abs(np.mean(GROUPS["A"]) - np.mean(GROUPS["B"]))
    assert plan.delta == pytest.approx(delta) and plan.sd == pytest.approx(sd)
    for p in (0.8, 0.9):
        got = plan.needed[plan.needed["power"] == p]
        assert list(got["seeds"]) == [stats.seeds_needed(delta / sd, 0.05, p, k) for k in (1, 3)]
    assert plan.current_n == 3 and set(plan.curve["comparisons"]) == {1, 3}
    assert plan.recommended == stats.seeds_needed(delta / sd, 0.05, 0.8, 3)
    assert list(plan.curve["n"].unique()) == list(range(2, 31))


def test_power_plan_reference_number_and_bad_inputs():
    a, b = groups_of({"A": [0.0, 1.0, 2.0], "B": [1.0, 2.0, 3.0]})          # sd = 1
    plan = cmp.power_plan(a, b, 1.0, comparisons=1)
    assert plan.d == pytest.approx(1.0)
    assert plan.needed.set_index("power").loc[0.8, "seeds"] == 17                    # d = 1 -> 17
    assert cmp.power_plan(a, b, 0.0, 1).error == "no_delta"
    flat = groups_of({"A": [0.5, 0.5, 0.5], "B": [0.5, 0.5, 0.5]})
    assert cmp.power_plan(*flat, None, 1).error == "no_spread"


# -- missing seeds ---------------------------------------------------------------------------------------------
def test_missing_seeds_fill_the_smallest_unused_numbers_with_the_runs_config():
    adam, sgd = cnn("cnn/adam"), cnn("cnn/sgd")
    t = tables(done(adam, 0, 0.5), done(adam, 2, 0.6), done(adam, 5, None, status="diverged"),
               (adam, 1, "failed", {}, {}), (adam, 7, "queued", {}, {}),
               *(done(sgd, s, 0.4) for s in range(3)))
    plans = cmp.missing_seeds(t, "cnn", ["cnn/adam", "cnn/sgd"], [3], ACC, target_n=6)
    by = {p.variant: p for p in plans}
    assert by["cnn/adam"].present == (0, 2, 5, 7)              # diverged and queued count, failed does not
    assert by["cnn/adam"].missing == (1, 3)                    # failed seed 1 is asked for again
    assert by["cnn/adam"].config == adam and by["cnn/adam"].series == "Adam"
    assert by["cnn/sgd"].missing == (3, 4, 5)
    reqs = cmp.seed_requests(plans)
    assert [(c.optim.name, s) for c, s in reqs] == [("adam", 1), ("adam", 3), ("sgd", 3), ("sgd", 4), ("sgd", 5)]
    assert cmp.missing_seeds(t, "cnn", ["cnn/sgd"], [3], ACC, target_n=2)[0].missing == ()


def test_missing_seeds_need_a_run_covering_every_selected_epoch():
    short = unet(epochs=4, eval_at=())                         # scored at 4 only
    full = unet(epochs=10, eval_at=(4,))                       # scored at 4 and 10
    t = tables(*[(short, s, "done", {4: {"pixel_acc": 0.9}}, {}) for s in range(3)],
               (full, 0, "done", {4: {"pixel_acc": 0.9}, 10: {"pixel_acc": 0.95}}, {}))
    (p,) = cmp.missing_seeds(t, "unet", ["unet/normal"], [4, 10], PIX, target_n=3)
    assert p.config == full and p.present == (0,) and p.missing == (1, 2)
    (p,) = cmp.missing_seeds(t, "unet", ["unet/normal"], [4], PIX, target_n=3)
    assert p.config == short and p.missing == () and p.n_configs == 2


def test_missing_seeds_plan_each_training_of_a_variant():
    other = cnn(data=replace(variant("cnn/adam").data, train_per_class=7))
    t = tables(*(done(cnn(), s, 0.5) for s in range(3)), done(other, 0, 0.4))
    plans = cmp.missing_seeds(t, "cnn", ["cnn/adam"], [3], ACC, target_n=3)
    assert [(p.series, p.missing) for p in plans] == [("Adam (train_per_class=20)", ()),
                                                      ("Adam (train_per_class=7)", (1, 2))]
    assert plans[1].config == other


# -- significance along the curve ------------------------------------------------------------------------------
def test_curve_test_uses_complete_epochs_and_welch_over_epochs():
    a_cfg, b_cfg = cnn("cnn/adam", epochs=5), cnn("cnn/sgd", epochs=5)
    runs = [(a_cfg, s, "done", {5: {"acc": 0.5}}, {e: {"val_acc": 0.1 * e + 0.01 * s} for e in range(1, 6)})
            for s in range(3)]
    runs += [(b_cfg, s, "done", {5: {"acc": 0.1}}, {e: {"val_acc": 0.1 + 0.013 * s} for e in range(1, 6)})
             for s in range(3)]
    runs.append((b_cfg, 9, "diverged", {}, {1: {"val_acc": 0.2}}))
    t = tables(*runs)
    groups, _ = cmp.extract_groups(t, "cnn", ["cnn/adam", "cnn/sgd"], [5], ACC)
    cur = cmp.curve_test(t, "cnn", *groups, ACC, "holm")
    assert list(cur.tests["epoch"]) == [1, 2, 3, 4, 5] and cur.metric.key == "val_acc"
    a = np.array([[0.1 * e + 0.01 * s for e in range(1, 6)] for s in range(3)])
    b = np.array([[0.1 + 0.013 * s for e in range(1, 6)] for s in range(3)])
    ref = stats.welch_over_epochs(a, b, "holm", epochs=[1, 2, 3, 4, 5])
    np.testing.assert_allclose(cur.tests["p_adjusted"], ref["p_adjusted"])
    assert cur.n_diverged == 1 and cur.n == (3, 3)
    assert set(cur.curves["label"]) == {"Adam", "SGD"} and (cur.curves["n"] == 3).all()
    thin = cmp.curve_test(t, "cnn", *groups, ACC, max_points=3)
    assert list(thin.tests["epoch"]) == [1, 3, 5]
    same = cmp.curve_test(t, "cnn", groups[0], replace(groups[0], epoch=4), ACC)
    assert same.tests.empty and same.same_runs


# -- the Home reading's numbers are the Compare presets' -------------------------------------------------------
def test_course_study_reads_the_presets_families():
    runs = [(unet(n, epochs=3, eval_at=(1, 2)), s, "done",
             {e: {"pixel_acc": 0.9 + 0.01 * s + (0.05 if n == "unet/elu" else 0) + 0.001 * e, "loss": 0.1 + s / 50}
              for e in (1, 2, 3)}, {}) for n in ("unet/normal", "unet/elu") for s in range(3)]
    t = tables(*runs)
    findings = cmp.course_study(t)
    assert [(f.preset, f.family) for f in findings] == [
        ("Course: U-Net variants at 200/400/1000", "epoch:1"), ("Course: U-Net variants at 200/400/1000", "epoch:2"),
        ("Course: U-Net variants at 200/400/1000", "epoch:3"), ("Course: normal 200 vs 1000", "budgets"),
        ("Course: ELU vs ReLU test loss at 200", "chosen")]
    opts = cmp.options(t)
    for f in findings:
        res = cmp.analyse(t, cmp.resolve(f.preset, opts)[1])
        mine = res.pairs[res.pairs["family"] == f.family]
        pd.testing.assert_frame_equal(f.pairs, mine)


# -- paired when paired: the test follows the run keys ---------------------------------------------------------
def test_paired_test_exactly_when_the_two_groups_are_the_same_runs():
    """One series at two epochs with the same run keys: paired t (scipy's ttest_rel), Wilcoxon beside it.
    The same seeds in separate runs (a 3- and a 5-epoch run per seed) or other variants: Welch, unless
    pairing by seed is asked for."""
    from scipy import stats as sps

    long = cnn(epochs=5, eval_at=(3,))
    scores = {0: (0.50, 0.56), 1: (0.52, 0.55), 2: (0.49, 0.58), 3: (0.51, 0.53)}
    runs = [(long, s, "done", {3: {"acc": a3, "loss": 0.5}, 5: {"acc": a5, "loss": 0.5}},
             {e: {"val_acc": a5} for e in range(1, 6)}) for s, (a3, a5) in scores.items()]
    t = tables(*runs)
    res = cmp.analyse(t, cmp.Selection("cnn", ("cnn/adam",), (3, 5), "test_acc"))
    (row,) = res.pairs.to_dict("records")
    a3, a5 = [v[0] for v in scores.values()], [v[1] for v in scores.values()]
    assert row["test"] == "paired-t" and row["paired_by"] == "runs" and row["n_pairs"] == 4
    assert row["p"] == pytest.approx(sps.ttest_rel(a3, a5).pvalue, rel=1e-12)
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a3, a5).pvalue, rel=1e-12)
    lo, hi = sps.ttest_rel(a3, a5).confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)
    assert math.isnan(row["welch_p"]) and math.isnan(row["mwu_p"])

    # the same seeds, but a separate 3-epoch run per seed: different keys, so Welch
    short = [(cnn(epochs=3), s, "done", {3: {"acc": a, "loss": 0.5}}, {e: {"val_acc": a} for e in (1, 2, 3)})
             for s, (a, _) in scores.items()]
    only5 = [(cnn(epochs=5), s, "done", {5: {"acc": b, "loss": 0.5}}, {e: {"val_acc": b} for e in range(1, 6)})
             for s, (_, b) in scores.items()]
    res = cmp.analyse(tables(*short, *only5), cmp.Selection("cnn", ("cnn/adam",), (3, 5), "test_acc"))
    (row,) = res.pairs.to_dict("records")
    assert row["test"] == "welch" and row["p"] == pytest.approx(sps.ttest_ind(a3, a5, equal_var=False).pvalue)

    # other variants at one epoch: Welch by default, paired by seed when asked (matched on the common seeds)
    sgd = [(cnn("cnn/sgd", epochs=5, eval_at=(3,)), s, "done", {3: {"acc": a - 0.1 + 0.01 * s, "loss": 0.5},
                                                                5: {"acc": 0.4, "loss": 0.5}},
            {e: {"val_acc": 0.4} for e in range(1, 6)}) for s, (a, _) in scores.items() if s < 3]
    t = tables(*runs, *sgd)
    sel = cmp.Selection("cnn", ("cnn/adam", "cnn/sgd"), (3,), "test_acc")
    (row,) = cmp.analyse(t, sel).pairs.to_dict("records")
    assert row["test"] == "welch" and row["n_a"] == 4 and row["n_b"] == 3
    (row,) = cmp.analyse(t, replace(sel, pair_seeds=True)).pairs.to_dict("records")
    sgd3 = [a - 0.1 + 0.01 * s for s, (a, _) in scores.items() if s < 3]
    assert row["test"] == "paired-t" and row["paired_by"] == "seeds" and row["n_pairs"] == 3
    assert row["p"] == pytest.approx(sps.ttest_rel(a3[:3], sgd3).pvalue, rel=1e-12)


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_the_adjusted_ci_is_tested_at_the_corrections_level_and_agrees_with_the_verdict(correction):
    """Next to an adjusted p, Δ's CI at level 1 - 0.05 * p / p_adjusted (scipy's Welch interval): it excludes
    0 exactly when the pair is significant, which a Bonferroni interval beside a Holm p does not."""
    from scipy import stats as sps

    res = cmp.compare_groups(groups_of(CMP_FAMILY), correction)
    assert (res.pairs["family_size"] == 3).all()
    for r in res.pairs.to_dict("records"):
        a, b = CMP_FAMILY[r["a"]], CMP_FAMILY[r["b"]]
        level = 1 - 0.05 * r["p"] / r["p_adjusted"]
        lo, hi = sps.ttest_ind(a, b, equal_var=False).confidence_interval(level)
        assert (r["ci_adj_low"], r["ci_adj_high"]) == pytest.approx((lo, hi), rel=1e-9)
        assert r["ci_adj_low"] <= r["ci_low"] and r["ci_adj_high"] >= r["ci_high"]
        assert (r["ci_adj_low"] > 0 or r["ci_adj_high"] < 0) == r["significant"]


CMP_FAMILY = {"A": [0.50, 0.52, 0.55, 0.51], "B": [0.56, 0.58, 0.57, 0.60], "C": [0.40, 0.47, 0.45, 0.52]}


# -- run health inside the groups --------------------------------------------------------------------------------
def collapsing(cfg, seed, peak, end, at=20):
    """A CNN run whose validation accuracy climbs to `peak` by epoch `at`, then sits at `end` (its test
    accuracy at the last epoch), with a sane training loss."""
    curve = {e: {"val_acc": peak * min(e, at) / at if e <= at else end, "train_loss": 3.0, "val_loss": 3.0}
             for e in range(1, cfg.epochs + 1)}
    return cfg, seed, "done", {cfg.epochs: {"acc": end, "loss": 4.0}}, curve


def test_collapsed_runs_are_flagged_kept_by_default_and_left_out_on_request():
    cfg = cnn(epochs=40)
    chance = 1 / 53
    runs = [collapsing(cfg, 0, 0.45, 0.44), collapsing(cfg, 1, 0.47, 0.46), collapsing(cfg, 2, 0.46, chance),
            collapsing(cfg, 3, 0.44, chance), collapsing(cfg, 4, 0.45, 0.45)]
    t = tables(*runs)
    sel = cmp.Selection("cnn", ("cnn/adam",), (40,), "test_acc")
    (g,) = cmp.extract_groups(t, "cnn", sel.variants, sel.epochs, sel.metric)[0]
    assert g.n == 5 and [s for s, h in g.flags] == [2, 3]
    assert {h.reason for _, h in g.flags} == {"collapsed"} and all(h.epoch == 21 for _, h in g.flags)
    (kept,) = cmp.extract_groups(t, "cnn", sel.variants, sel.epochs, sel.metric, exclude_flagged=True)[0]
    assert kept.n == 3 and kept.n_flagged_out == 2 and kept.seeds == (0, 1, 4)
    # at an epoch before the collapse nothing is flagged: health is judged up to the group's epoch
    early = cmp.run_health(t, cmp.runs_frame(t, "cnn"), epoch=20)
    assert not any(h.flagged for h in early.values())


def test_an_exploded_run_is_flagged_and_baselines_come_from_the_data_card():
    cfg = cnn(epochs=6)
    boom = {e: {"train_loss": 4.0 if e == 1 else 4.0 * 10 ** e, "val_loss": 9.0, "val_acc": 1 / 53}
            for e in range(1, 7)}
    t = tables((cfg, 0, "done", {6: {"acc": 1 / 53, "loss": 9.0}}, boom))
    (h,) = cmp.run_health(t, cmp.runs_frame(t, "cnn")).values()
    assert h.reason == "exploded" and h.epoch == 3            # 4e3 > 100 x 4.0, 4e2 is not
    from adlapp import datacards

    card = datacards.load("cnn")
    assert cmp.baselines("cnn", "test_acc") == {"chance": pytest.approx(1 / card.num_classes, abs=1e-6)}
    unet_card = datacards.load("unet")
    assert cmp.baselines("unet", "test_pixel_acc") == {"all background": unet_card.baselines["test"]
                                                        ["all_background"]["pixel_acc"]}
    assert cmp.baselines("unet", "test_loss") == {}


def test_seed_spread_per_budget_with_brown_forsythe_from_scipy():
    from scipy import stats as sps

    cfg = cnn(epochs=6, eval_at=(3,))
    at3, at6 = [0.50, 0.52, 0.51, 0.49], [0.40, 0.60, 0.45, 0.58]
    runs = [(cfg, s, "done", {3: {"acc": a, "loss": 0.5}, 6: {"acc": b, "loss": 0.5}},
             {e: {"val_acc": 0.5} for e in range(1, 7)}) for s, (a, b) in enumerate(zip(at3, at6, strict=True))]
    spread = cmp.seed_spread(tables(*runs), "cnn", ("cnn/adam",), "test_acc")
    assert list(spread.table["epoch"]) == [3, 6]
    assert list(spread.table["sd"]) == pytest.approx([np.std(at3, ddof=1), np.std(at6, ddof=1)])
    (row,) = spread.tests.to_dict("records")
    assert row["brown_forsythe_p"] == pytest.approx(sps.levene(at3, at6, center="median").pvalue)
    assert row["levene_p"] == pytest.approx(sps.levene(at3, at6, center="mean").pvalue)
    from adlapp import report

    *per_series, answer = report.spread_lines(spread)
    sd3, sd6 = np.std(at3, ddof=1), np.std(at6, ddof=1)
    assert per_series[0].startswith(
        f"Adam: sd {sd3:.4f} after epoch 3, {sd6:.4f} after epoch 6 (×{sd6 / sd3:.2f}; n = 4")
    assert "smaller at the last budget in 0 of 1 variants" in answer


def test_seed_spread_scores_each_budget_by_the_chosen_protocol_and_says_how_its_runs_relate():
    """Beside 6-epoch runs scored at 3 and 6, separate 3-epoch runs on other seeds: the protocol decides which
    runs score epoch 3 (their n and sd), and the reading says whether the budgets are the same runs, separate
    runs or both (Brown-Forsythe recomputed with scipy on exactly those runs)."""
    from scipy import stats as sps

    from adlapp import report

    long, short = cnn(epochs=6, eval_at=(3,)), cnn(epochs=3)
    at3, at6 = [0.50, 0.52, 0.51, 0.49], [0.40, 0.60, 0.45, 0.58]
    sep3 = [0.30, 0.55, 0.42, 0.61]
    runs = [(long, s, "done", {3: {"acc": a, "loss": 0.5}, 6: {"acc": b, "loss": 0.5}},
             {e: {"val_acc": 0.5} for e in range(1, 7)}) for s, (a, b) in enumerate(zip(at3, at6, strict=True))]
    runs += [(short, 10 + s, "done", {3: {"acc": a, "loss": 0.5}}, {e: {"val_acc": 0.5} for e in (1, 2, 3)})
             for s, a in enumerate(sep3)]
    t = tables(*runs)
    expected = {"shared": (at3, "same", "n = 4;", "the same runs scored again"),
                "separate": (sep3, "separate", "n = 4;", "its own runs"),
                "all": (at3 + sep3, "mixed", "n = 8 then 4;", "pooling runs trained only to that budget")}
    for protocol, (first, relation, n_words, reading) in expected.items():
        spread = cmp.seed_spread(t, "cnn", ("cnn/adam",), "test_acc", protocol=protocol)
        assert spread.protocol == protocol
        assert list(spread.table["n"]) == [len(first), 4], protocol
        assert list(spread.table["sd"]) == pytest.approx([np.std(first, ddof=1), np.std(at6, ddof=1)]), protocol
        (row,) = spread.tests.to_dict("records")
        assert row["runs"] == relation, protocol
        assert row["brown_forsythe_p"] == pytest.approx(sps.levene(first, at6, center="median").pvalue), protocol
        line, answer = report.spread_lines(spread)
        assert n_words in line and reading in answer, (protocol, line, answer)


def test_overfitting_finds_the_turn_of_the_mean_validation_loss():
    cfg = cnn(epochs=8)
    curves = {0: [3, 2, 1.0, 1.5, 2, 3, 4, 5], 1: [3, 2, 1.2, 1.1, 2, 3, 4, 6]}     # mean lowest at epoch 3
    runs = [(cfg, s, "done", {8: {"acc": 0.5, "loss": 1.0}},
             {e + 1: {"val_loss": v, "val_acc": 0.5} for e, v in enumerate(c)}) for s, c in curves.items()]
    (row,) = cmp.overfitting(tables(*runs), "cnn").to_dict("records")
    mean = np.mean(list(curves.values()), axis=0)
    assert row["min_epoch"] == int(np.argmin(mean)) + 1 == 3 and row["last_epoch"] == 8 and row["n"] == 2
    assert row["ratio"] == pytest.approx(mean[-1] / mean.min())
    from adlapp import report

    assert f"Adam: lowest at epoch 3, {mean[-1] / mean.min():.1f}× that by epoch 8" in report.overfitting_line(
        cmp.overfitting(tables(*runs), "cnn"), "cnn")
