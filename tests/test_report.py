"""adlapp.report: formatters, the Compare page's sentences, notes and tables, and the Home reading.

The reading is checked on runs written through a real RunStore (enqueue → claim → record_epoch → finish).
Every number a sentence must quote is computed here by adlapp.stats itself (the oracle), so the words can
only pass by showing stats' numbers: Δ, CI, adjusted p with its family size, n, seeds needed, the course z.
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from adlapp import compare as cmp
from adlapp import report, stats
from adlapp.config import COURSE_NAMES, variant
from adlapp.metrics import metric
from adlapp.store import RunStore, RunTables

pytestmark = pytest.mark.filterwarnings("error")


# -- formatters ------------------------------------------------------------------------------------------------
def test_one_way_to_write_a_number_and_a_p_value():
    assert report.p_value(0.0004) == "< 0.001" and report.p_value(0.0342) == "0.034" and report.p_value(0.214) == "0.21"
    assert report.p_clause(0.0004) == "p < 0.001" and report.p_clause(0.0342) == "p = 0.034"
    assert report.p_value(math.nan) == "n/a"
    assert report.number(-0.0123, sign=True) == "\u22120.012" and report.number(0.0123, sign=True) == "+0.012"
    assert report.number(-0.00001, 3) == "0.000"                       # never "−0.000"
    assert report.mean_sd(0.5653, 0.0207) == "0.565 ± 0.021" and report.mean_sd(0.5, math.nan) == "0.500"
    assert report.seed_ranges((0, 1, 2, 5, 7, 8)) == "0-2, 5, 7-8"
    assert report.plural(1, "pair") == "1 pair" and report.plural(6, "pair") == "6 pairs"


# -- pair sentences --------------------------------------------------------------------------------------------
GROUPS = {
    "normal": [0.976, 0.977, 0.975],
    "nearest": [0.975, 0.976, 0.974],
    "ELU": [0.978, 0.979, 0.977, 0.980, 0.978],
    "nearest_elu": [0.977, 0.976, 0.978],
}


def sentences(groups, correction="holm"):
    return [report.pair_sentence(r, correction) for r in stats.pairwise(groups, correction).to_dict("records")]


def test_pair_sentences():
    s = sentences(GROUPS)
    # two significant digits on the largest of |Δ|, |CI ends| (here 0.0033), so 4 decimals
    assert s[0].startswith("normal vs nearest: \u0394 = +0.0010, 95 % CI [\u22120.0013, 0.0033], not significant")
    assert "after Holm over 6 pairs (Welch p = " in s[0] and s[0].endswith("n = 3 each.")
    assert s[1].endswith("n = 3 vs 5.")
    assert "\u2212" in s[1]                                     # a real minus sign for a negative Δ
    # strongly separated pair: tiny p is written as "< 0.001"
    (sep,) = sentences({"A": [0.10, 0.11, 0.12, 0.10, 0.11], "B": [0.90, 0.91, 0.92, 0.90, 0.91]})
    assert "significant after Holm over 1 pair (Welch p < 0.001, adjusted < 0.001)" in sep
    assert "not significant" not in sep
    assert "uncorrected (Welch p = " in sentences(GROUPS, "none")[0]


def test_untestable_and_excluded_pairs_say_why():
    s = sentences({**GROUPS, "single": [0.97], "const_a": [0.9] * 3, "const_b": [0.8] * 3})
    one = next(x for x in s if x.startswith("normal vs single"))
    assert "not tested (n=1 in single: no test possible)" in one and one.endswith("n = 3 vs 1.")
    const = next(x for x in s if x.startswith("const_a vs const_b"))
    assert "zero variance in both groups" in const
    (excl,) = sentences({"A": [0.9, 0.91, np.nan, 0.92], "B": [0.8, 0.81, 0.82]})
    assert "(A: 1 diverged run excluded)" in excl


def groups_of(d, epoch=3):
    return [cmp.Group("cnn/x", epoch, k, np.asarray(v, dtype=float), tuple(range(len(v))), (), series=k)
            for k, v in d.items()]


CMP_GROUPS = {"A": [0.971, 0.975, 0.969], "B": [0.962, 0.968, 0.966, 0.960, 0.963], "C": [0.95, 0.97]}


def test_compare_sentences_are_stats_sentences_with_their_family():
    res = cmp.compare_groups(groups_of(CMP_GROUPS), "holm")
    ab, ac = (report.pair_sentence(r) for r in res.pairs.to_dict("records")[:2])
    ref = stats.pairwise({"A": CMP_GROUPS["A"], "B": CMP_GROUPS["B"]}, "holm").iloc[0].to_dict()
    assert ab == report.pair_sentence({**ref, "family": "epoch:3"})       # the same numbers, the same words
    assert "after Holm over 1 pair at epoch 3 (Welch p = " in ab
    assert "not tested because n < 3 (C has n = 2)" in ac and "Hedges' g = " in ac


def test_notes_name_what_was_left_out():
    res = cmp.Comparison(tuple(groups_of({"A": [0.5, np.nan, 0.6, 0.7], "B": [0.1, 0.2]})), pd.DataFrame(),
                         pd.DataFrame(), cmp.compare_groups(groups_of({"A": [1.0, 2.0, 3.0]})).pairs,
                         gaps=(cmp.Gap("Adam", 3, lacking=1), cmp.Gap("SGD", 3, empty=True),
                               cmp.Gap("BN + Adam", 3, empty=True, pending=2)),
                         metric=metric("test_acc"))
    notes = report.comparison_notes(res)
    assert notes[:3] == [("info", "Adam: 1 finished run(s) have no test accuracy at epoch 3 and are left out."),
                         ("info", "SGD: no finished run scored at epoch 3."),
                         ("info", "BN + Adam: no finished run scored at epoch 3 (2 queued or running).")]
    assert any("1 diverged run(s) excluded" in m for _, m in notes)
    (small,) = [m for level, m in notes if "Too few seeds" in m]
    assert "B (n = 2)" in small and "A (n = 3)" not in small
    assert report.axis_label(res.groups[0]) == "A (n=3, 1 diverged)"


def test_pair_table_shows_course_z_next_to_welch_and_the_family_next_to_adjusted_p():
    res = cmp.compare_groups(groups_of({"A": CMP_GROUPS["A"], "B": CMP_GROUPS["B"]}), "bh")
    row = report.pair_table(res.pairs, "bh").iloc[0]
    ref = stats.compare(CMP_GROUPS["A"], CMP_GROUPS["B"])
    assert row["course z = d/√2 (standardised Δ, not a test)"] == report.number(ref["z_seed"], 2, sign=True)
    assert row["test"] == "Welch"
    assert f"Welch p = {row['p']}" in report.pair_sentence(res.pairs.iloc[0].to_dict(), "bh")
    assert float(row["p"]) == pytest.approx(ref["welch_p"], abs=5e-4)
    assert "p adjusted (BH)" in row.index
    assert row["family (pairs corrected over)"] == "epoch 3 · 1 pair"


def test_rank_test_floor_is_said_not_shown():
    res = cmp.compare_groups(groups_of({"A": CMP_GROUPS["A"], "B": CMP_GROUPS["B"][:3]}))
    assert any("smallest possible p = 0.100" in m for _, m in report.comparison_notes(res))
    table = report.pair_table(res.pairs, "holm")
    assert table.loc[0, "rank test p (Mann-Whitney / Wilcoxon)"] == "cannot reach 0.05 (min p 0.100)"
    assert table.loc[0, "n"] == "3 vs 3"


def test_matrix_cells_carry_the_family_size():
    res = cmp.compare_groups(groups_of(CMP_GROUPS))
    cells = [report.matrix_cell(r, compact) for r in res.pairs.to_dict("records") for compact in (True, False)]
    assert cells[0].endswith(f"adj. {report.p_value(res.pairs['p_adjusted'].iloc[0])} (of 1)")
    assert "n < 3: not tested" in cells[2] and "\ng " in cells[3]


# -- how many seeds --------------------------------------------------------------------------------------------
def test_power_words():
    a, b = groups_of({"A": CMP_GROUPS["A"], "B": CMP_GROUPS["B"]})
    plan = cmp.power_plan(a, b, None, comparisons=3)
    table = report.power_table(plan)
    assert list(table["test level"]) == ["α = 0.05, uncorrected", "α = 0.05/3 (Bonferroni over 3 pairs)"]
    for p in (0.8, 0.9):
        assert list(table[f"{p:.0%} power"]) == [stats.seeds_needed(plan.d, 0.05, p, k) for k in (1, 3)]
    assert {report.power_rule(k) for k in plan.curve["comparisons"]} == {"uncorrected", "Bonferroni over 3 pairs"}
    assert "biased upward" in report.power_caveat(plan) and report.power_error(plan) == ""
    flat = groups_of({"A": [0.5, 0.5, 0.5], "B": [0.5, 0.5, 0.5]})
    assert "No spread" in report.power_error(cmp.power_plan(*flat, None, 1))
    assert report.power_error(cmp.power_plan(a, b, 0.0, 1)) == "Enter a difference larger than 0."


def test_plan_table():
    cfg = variant("cnn/adam")
    plans = [cmp.SeedPlan("cnn/adam", cfg, (0, 2, 5, 7), (1, 3), "Adam"),
             cmp.SeedPlan("cnn/sgd", cfg, (0, 1, 2), (3, 4, 5), "SGD", n_configs=2),
             cmp.SeedPlan("cnn/bn-adam", None, (), (), "BN + Adam", 0)]
    table = report.plan_table(plans)
    assert list(table["to queue"]) == ["1, 3", "3-5", ""] and list(table["present"]) == ["0, 2, 5, 7", "0-2", ""]
    assert list(table["variant"]) == ["Adam", "SGD", "BN + Adam"]
    assert "repeating the most common" in table["note"].iloc[1] and "covers" in table["note"].iloc[2]
    assert report.queued_summary(plans) == "Adam seeds 1, 3; SGD seeds 3-5"


def test_curve_messages():
    base = dict(curves=pd.DataFrame(), metric=metric("val_acc"), labels=("Adam", "SGD"),
                variants=("cnn/adam", "cnn/sgd"))
    assert "same runs" in report.curve_message(cmp.CurveTest(tests=pd.DataFrame(), same_runs=True, **base))
    few = report.curve_message(cmp.CurveTest(tests=pd.DataFrame(), n=(1, 3), n_diverged=1, **base))
    assert few.startswith("Not enough complete validation accuracy curves: n = 1 (Adam)")
    assert "1 diverged run(s) left out" in few
    tests = pd.DataFrame({"epoch": [1, 2], "significant": [True, False]})
    ok = report.curve_message(cmp.CurveTest(tests=tests, n=(2, 3), **base))
    assert "Welch at 2 epochs, Holm over those 2; significant at 1." in ok and "almost no power" in ok


# -- the Home reading ------------------------------------------------------------------------------------------
def record(store: RunStore, name: str, seed: int, tests: dict[int, dict[str, float]]) -> str:
    """One finished run of the registry variant `name` with test metrics {epoch: {metric: value}}."""
    key, _ = store.enqueue(variant(name), seed, command="pytest")
    assert store.claim(key) is not None
    for epoch, metrics in sorted(tests.items()):
        store.record_epoch(key, epoch, {}, tests=metrics)
    store.finish(key, "done")
    return key


def cnn_store(tmp_path, accs: dict[str, list[float]]) -> RunTables:
    store = RunStore(tmp_path / "store")
    for name, values in accs.items():
        for seed, acc in enumerate(values):
            record(store, name, seed, {200: {"acc": acc, "loss": 1 - acc}})
    return store.tables()


def reading(tables: RunTables) -> list[str]:
    return report.course_reading(cmp.course_study(tables))


def minus(text: str) -> str:
    return text.replace("-", "\u2212")


KEY_OF = {name: key for key, name in COURSE_NAMES.items()}


def test_clearly_separated_variants_are_significant_with_ci_adjusted_p_and_n(tmp_path):
    accs = {"cnn/bn-adam": [0.80, 0.81, 0.82], "cnn/adam": [0.60, 0.62, 0.61], "cnn/sgd": [0.40, 0.41, 0.43]}
    lines = reading(cnn_store(tmp_path, accs))
    head = lines[0]
    assert head.startswith("**CNN, test accuracy after epoch 200**")
    assert "n = 3 per variant" in head and "Holm over 3 pairs" in head
    assert "3 of 3 pairs differ significantly" in head
    oracle = stats.pairwise({"BN + Adam": accs["cnn/bn-adam"], "Adam": accs["cnn/adam"], "SGD": accs["cnn/sgd"]})
    assert oracle["significant"].all()
    for r in oracle.to_dict("records"):
        line = next(s for s in lines if s.startswith(f"{r['a']} is higher than {r['b']}:"))
        # next to an adjusted p, the CI adjusted like it: Welch's at level 1 - 0.05 * p / p_adjusted
        a, b = accs[KEY_OF[r["a"]]], accs[KEY_OF[r["b"]]]
        lo, hi = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(
            1 - 0.05 * r["welch_p"] / r["p_adjusted"])
        assert f"Δ = +{r['diff']:.3f}, 95 % CI adjusted over 3 pairs [{lo:.3f}, {hi:.3f}]" in line
        assert f"adjusted {report.p_clause(r['p_adjusted'])} (Holm over 3 pairs)" in line and "n = 3 vs 3" in line
    assert not any("not significant" in s.lower() for s in lines)


def test_overlapping_variants_are_not_significant_and_get_the_seeds_needed(tmp_path):
    accs = {"cnn/bn-adam": [0.50, 0.56, 0.53], "cnn/adam": [0.52, 0.55, 0.49], "cnn/sgd": [0.51, 0.54, 0.58]}
    line, *against = reading(cnn_store(tmp_path, accs))
    # the report: Adam beats SGD; here Adam's mean is lower: said, with "not significantly"
    assert against == [s for s in against if s.startswith("Opposite to the report")] and len(against) == 1
    assert "Adam scores lower than SGD" in against[0] and "not significantly" in against[0]
    oracle = stats.pairwise({"BN + Adam": accs["cnn/bn-adam"], "Adam": accs["cnn/adam"], "SGD": accs["cnn/sgd"]})
    assert not oracle["significant"].any()
    assert "no difference is significant" in line and "n = 3 per variant" in line
    clearest = oracle.loc[oracle["cohens_d"].abs().idxmax()]
    assert f"The clearest difference is {clearest['a']} vs {clearest['b']}:" in line
    needed = stats.seeds_needed(abs(clearest["cohens_d"]), alpha=0.05, power=0.8, comparisons=3)
    assert f"about {needed} seeds per group" in line and "α = 0.05/3" in line
    assert "noisy" in line


def test_unet_budgets_the_reports_z_and_the_elu_loss_claim(tmp_path):
    store = RunStore(tmp_path / "store")
    normal = {200: [0.970, 0.974, 0.972], 400: [0.971, 0.975, 0.972], 1000: [0.973, 0.971, 0.976]}
    elu = {200: [0.971, 0.973, 0.975], 400: [0.972, 0.974, 0.973], 1000: [0.972, 0.975, 0.974]}
    loss = {"unet/normal": [0.080, 0.082, 0.081], "unet/elu": [0.050, 0.051, 0.053]}      # at 200
    for name, pix in (("unet/normal", normal), ("unet/elu", elu)):
        for seed in range(3):
            record(store, name, seed, {e: {"pixel_acc": pix[e][seed], "f1": 0.7,
                                           "loss": loss[name][seed] if e == 200 else 0.07} for e in pix})
    lines = reading(store.tables())
    budgets = [s for s in lines if s.startswith("**U-Net, test pixel accuracy after epoch")]
    assert [s.split("epoch ")[1].split("**")[0] for s in budgets] == ["200", "400", "1000"]
    assert all("Holm over 1 pair" in s for s in budgets)
    assert not any("@" in s for s in budgets)                    # the title names the epoch

    [z_line] = [s for s in lines if s.startswith("**Normal, 1000 vs 200 epochs**")]
    res = stats.compare(normal[1000], normal[200])
    z = minus(f"{res['z_seed']:.2f}")
    assert f"z = Δ/√(σa² + σb²) = {z} here (the report: +0.17σ" in z_line
    # the same three runs scored after 200 and 1000 epochs: the paired t-test (scipy's ttest_rel)
    paired = scipy_stats.ttest_rel(normal[1000], normal[200])
    assert "not significant" in z_line and f"paired t {report.p_clause(paired.pvalue)}" in z_line
    assert "Wilcoxon signed-rank" in z_line and "(Holm over 1 pair)" in z_line and "3 runs" in z_line
    assert "the test is paired" in z_line

    [claim] = [s for s in lines if "ELU gives a lower test loss" in s]
    diff = minus(f"{stats.compare(loss['unet/elu'], loss['unet/normal'])['diff']:+.3f}")
    assert "supported by these seeds" in claim and "not supported" not in claim
    assert f"Using ELU vs Normal: Δ = {diff}" in claim and "significantly lower" in claim
    assert "Holm over 1 pair" in claim and "after epoch 200" in claim


def test_two_seeds_are_shown_but_not_tested(tmp_path):
    accs = {"cnn/adam": [0.50, 0.60], "cnn/sgd": [0.40, 0.45]}
    [line] = reading(cnn_store(tmp_path, accs))
    assert "n = 2 per variant" in line and "not tested" in line and "significant" not in line
    d = abs(stats.compare(accs["cnn/adam"], accs["cnn/sgd"])["cohens_d"])
    assert f"about {stats.seeds_needed(d, comparisons=1)} seeds per group" in line


def test_no_finished_runs_reads_nothing(tmp_path):
    assert reading(RunTables.empty()) == []
    store = RunStore(tmp_path / "store")
    store.enqueue(variant("cnn/adam"), 0)                       # queued, not a result
    assert reading(store.tables()) == []


def test_identical_seeds_are_not_tested_and_say_why(tmp_path):
    accs = {"cnn/bn-adam": [0.7, 0.7, 0.7], "cnn/adam": [0.6, 0.6, 0.6]}     # zero spread: Welch undefined
    assert not stats.compare(accs["cnn/bn-adam"], accs["cnn/adam"])["testable"]
    [line] = reading(cnn_store(tmp_path, accs))
    assert "not tested, since the seeds of each variant agree exactly" in line and "Δ = +0.100" in line
    assert "No seeds can be planned" in line and "nan" not in line.lower()


def test_what_the_data_are_our_choices_and_the_test_sets_own_error():
    from adlapp import datacards

    card = datacards.load("cnn")
    assert report.data_line("cnn").startswith("Data: 53 classes of generated 28×28 cards")
    assert "not the public card set" in report.data_line("cnn")
    unet = datacards.load("unet")
    a, b = unet.parameters["unet/normal"], unet.parameters["unet/nearest"]
    words = report.our_choices("unet")
    assert "this app's choices, not the course set-up" in words
    assert f"{b:,} parameters, transposed conv {a:,}: {100 * (b - a) / a:+.0f} %" in words
    # the binomial SE of an accuracy on the 265 test cards, at the largest of the observed means' SEs
    se = math.sqrt(0.565 * 0.435 / card.splits["test"])
    note = report.test_set_note(card, "test_acc", [0.565, 0.183])
    assert f"± {se:.3f}" in note and "265 test images" in note
    assert report.test_set_note(unet, "test_pixel_acc", [0.94]) == ""       # pixels are not independent draws


def test_the_test_table_marks_means_at_the_baseline_and_counts_flagged_seeds():
    from adlapp.health import Health

    summary = pd.DataFrame([
        {"series": "Normal", "variant": "unet/normal", "order": 0, "epoch": 5, "metric": "pixel_acc", "n": 3,
         "mean": 0.883, "sd": 0.0, "values": {0: 0.883, 1: 0.883, 2: 0.883}},
        {"series": "Using ELU", "variant": "unet/elu", "order": 2, "epoch": 5, "metric": "pixel_acc", "n": 3,
         "mean": 0.95, "sd": 0.01, "values": {0: 0.94, 1: 0.95, 2: 0.96}}])
    baselines = {"pixel_acc": {"all background": 0.883}, "f1": {"all background": 0.0}, "loss": {}}
    flagged = {"Normal": (3, [Health("collapsed", 4, "")] * 2), "Using ELU": (3, [])}
    table = report.test_table(summary, "unet", baselines, flagged).set_index("variant")
    col = "test pixel accuracy (mean ± sd)"
    assert table.loc["Normal", col].endswith("≤ baseline") and "★" not in table.loc["Normal", col]
    assert table.loc["Using ELU", col].endswith("★")
    assert table.loc["baseline: all background", col] == "0.8830"
    assert table.loc["Normal", "runs flagged (whole run)"] == "2 of 3 seeds collapsed"
    assert table.loc["Using ELU", "runs flagged (whole run)"] == "none"


def test_capacity_is_said_where_upsampling_modes_are_compared():
    from adlapp import datacards

    params = datacards.load("unet").parameters
    note = report.capacity_note("unet", ["unet/normal", "unet/nearest"])
    more = 100 * (params["unet/nearest"] - params["unet/normal"]) / params["unet/normal"]
    assert f"Nearest Neighbor has {params['unet/nearest']:,} trainable parameters, {more:.0f} % more" in note
    assert report.capacity_note("unet", ["unet/normal", "unet/elu"]) == ""        # same architecture
    assert report.capacity_note("cnn", ["cnn/adam", "cnn/bn-adam"]) == ""         # BN without affine terms
