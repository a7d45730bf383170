"""Tests for adlapp.stats: oracle checks against scipy/statsmodels plus hand-checkable cases."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from adlapp import stats

# Any warning inside a test is a failure: degenerate inputs must be handled before scipy sees them.
pytestmark = pytest.mark.filterwarnings("error")

PAIRS = {
    "3v3": ([0.971, 0.975, 0.969], [0.962, 0.968, 0.966]),
    "3v5": ([0.976, 0.977, 0.975], [0.974, 0.979, 0.972, 0.976, 0.973]),
    "3v5 ties": ([0.976, 0.977, 0.977], [0.976, 0.975, 0.977, 0.974, 0.976]),
    "5v5 ties": ([1.0, 2.0, 2.0, 3.0, 5.0], [2.0, 3.0, 3.0, 4.0, 6.0]),
    "2v4": ([10.0, 12.5], [9.0, 9.5, 11.0, 8.0]),
    "8v6": (list(np.linspace(0.1, 0.8, 8) ** 2), [0.3, 0.1, 0.25, 0.6, 0.05, 0.4]),
}


@pytest.mark.parametrize("key", PAIRS)
def test_compare_matches_scipy(key):
    a, b = PAIRS[key]
    res = stats.compare(a, b)
    welch = sps.ttest_ind(a, b, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert res["testable"]
    assert res["n_a"] == len(a) and res["n_b"] == len(b)
    assert res["diff"] == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert res["sd_a"] == pytest.approx(np.std(a, ddof=1), rel=1e-12)
    assert res["sd_b"] == pytest.approx(np.std(b, ddof=1), rel=1e-12)
    assert res["welch_t"] == pytest.approx(welch.statistic, rel=1e-9)
    assert res["welch_df"] == pytest.approx(welch.df, rel=1e-9)
    assert res["welch_p"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert res["ci_low"] == pytest.approx(ci.low, rel=1e-9)
    assert res["ci_high"] == pytest.approx(ci.high, rel=1e-9)
    mwu = sps.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    assert res["mwu_p"] == pytest.approx(mwu.pvalue, rel=1e-12)
    assert res["prob_improvement"] == pytest.approx(mwu.statistic / (len(a) * len(b)), rel=1e-12)


@pytest.mark.parametrize("key", PAIRS)
def test_effect_sizes_match_formulas(key):
    a, b = (np.asarray(x) for x in PAIRS[key])
    na, nb = a.size, b.size
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    res = stats.compare(a, b)
    d = (a.mean() - b.mean()) / sp
    assert stats.pooled_sd(a, b) == pytest.approx(sp, rel=1e-12)
    assert res["cohens_d"] == pytest.approx(d, rel=1e-12)
    assert res["hedges_g"] == pytest.approx(d * (1 - 3 / (4 * (na + nb) - 9)), rel=1e-12)
    z = (a.mean() - b.mean()) / math.sqrt(a.var(ddof=1) + b.var(ddof=1))
    assert res["z_seed"] == pytest.approx(z, rel=1e-12)


def test_hand_checkable_z_t_d():
    # means 2 and 4, both sds 1 (ddof=1): z = -2 / sqrt(2), t = -2 / sqrt(2/3), d = -2, df = 4
    res = stats.compare([1, 2, 3], [3, 4, 5])
    assert res["z_seed"] == pytest.approx(-math.sqrt(2))
    assert res["welch_t"] == pytest.approx(-2 / math.sqrt(2 / 3))
    assert res["welch_df"] == pytest.approx(4.0)
    assert res["cohens_d"] == pytest.approx(-2.0)
    assert res["hedges_g"] == pytest.approx(-2.0 * (1 - 3 / 15))
    assert res["prob_improvement"] == pytest.approx(1 / 9 * 0.5)   # only the (3, 3) pair ties


@pytest.mark.parametrize("key", ["3v3", "5v5 ties"])
def test_equal_n_identities(key):
    a, b = PAIRS[key]
    res = stats.compare(a, b)
    n = len(a)
    assert res["welch_t"] == pytest.approx(math.sqrt(n) * res["z_seed"], rel=1e-12)
    assert res["cohens_d"] == pytest.approx(math.sqrt(2) * res["z_seed"], rel=1e-12)


def test_prob_improvement_extremes():
    assert stats.compare([5, 6, 7], [1, 2, 3])["prob_improvement"] == 1.0
    assert stats.compare([1, 2, 3], [5, 6, 7])["prob_improvement"] == 0.0
    assert stats.compare([1, 2, 3], [1, 2, 3])["prob_improvement"] == 0.5
    assert stats.compare([1, 2, 3], [1, 2, 3])["mwu_p"] == pytest.approx(1.0)


@pytest.mark.parametrize("na, nb, expected", [
    (3, 3, 0.1), (3, 4, 2 / 35), (4, 3, 2 / 35), (3, 5, 2 / 56), (4, 4, 2 / 70), (5, 5, 2 / 252), (1, 1, 1.0),
])
def test_mwu_min_p(na, nb, expected):
    res = stats.compare(np.arange(na, dtype=float), np.arange(nb, dtype=float) + 100)
    assert res["mwu_min_p"] == pytest.approx(expected)
    if na >= 2 and nb >= 2 and max(na, nb) <= 8:
        # complete separation without ties: scipy's exact test sits exactly on the floor
        assert res["mwu_p"] == pytest.approx(expected)


def test_mwu_min_p_reference_numbers():
    for (na, nb), approx in {(3, 3): 0.1, (3, 4): 0.0571, (4, 4): 0.0286, (5, 5): 0.00794}.items():
        assert stats.compare(np.arange(na), np.arange(nb) + 10)["mwu_min_p"] == pytest.approx(approx, abs=1e-4)


def test_small_n_note_mentions_rank_floor():
    res = stats.compare([0.9, 0.91, 0.92], [0.8, 0.81, 0.82])
    assert "rank test cannot reach p<0.05 with n=3 vs 3 (min p = 0.100)" in res["note"]
    assert "rank test" not in stats.compare(np.arange(5), np.arange(5) + 10)["note"]


def test_zero_variance_both_groups_no_absurd_p():
    # [0.9]*3 has sd ~1e-17 in floating point; scipy would give t ~ 1e15 and p ~ 6e-31
    res = stats.compare([0.9] * 3, [0.8] * 3)
    assert math.isnan(res["welch_p"]) and math.isnan(res["welch_t"]) and math.isnan(res["z_seed"])
    assert not res["testable"]
    assert res["sd_a"] == 0.0 and res["sd_b"] == 0.0
    assert res["diff"] == pytest.approx(0.1)
    assert "zero variance in both groups" in res["note"]
    assert res["prob_improvement"] == 1.0
    # ties push scipy to the normal approximation, which undercuts the exact floor; the note says so
    assert res["mwu_p"] < res["mwu_min_p"]
    assert "normal approximation" in res["note"]


def test_zero_variance_equal_means():
    res = stats.compare([0.9] * 3, [0.9] * 4)
    assert res["welch_p"] == 1.0 and res["testable"]
    assert res["diff"] == 0.0
    assert res["mwu_p"] == 1.0


def test_zero_variance_one_group_is_welch_with_other_df():
    a, b = [0.9] * 3, [0.80, 0.82, 0.81, 0.83]
    res = stats.compare(a, b)
    assert res["sd_a"] == 0.0
    assert res["welch_df"] == pytest.approx(3.0)     # all variance from b: df = n_b - 1
    se = np.std(b, ddof=1) / 2
    t = (0.9 - np.mean(b)) / se
    assert res["welch_t"] == pytest.approx(t)
    assert res["welch_p"] == pytest.approx(2 * sps.t.sf(abs(t), 3))
    assert "zero variance in a" in res["note"]


@pytest.mark.parametrize("a, b, who", [([0.9], [0.8, 0.81, 0.79], "a"), ([0.8, 0.81], [0.7], "b"),
                                       ([0.9], [0.8], "a")])
def test_n_equals_one(a, b, who):
    res = stats.compare(a, b)
    assert not res["testable"]
    for key in ("welch_p", "welch_t", "welch_df", "mwu_p", "ci_low", "ci_high", "hedges_g", "cohens_d",
                "z_seed"):
        assert math.isnan(res[key]), key
    assert f"n=1 in {who}: no test possible" in res["note"]
    assert res["diff"] == pytest.approx(np.mean(a) - np.mean(b))


def test_nan_and_inf_are_excluded_and_counted():
    a = [0.9, np.nan, 0.92, 0.91]
    b = [0.8, np.inf, -np.inf, 0.82, 0.81]
    res = stats.compare(a, b)
    assert (res["n_a"], res["n_excluded_a"], res["n_b"], res["n_excluded_b"]) == (3, 1, 3, 2)
    clean = stats.compare([0.9, 0.92, 0.91], [0.8, 0.82, 0.81])
    assert res["welch_p"] == clean["welch_p"]
    assert "excluded from a" in res["note"] and "excluded from b" in res["note"]


def test_all_nan_group():
    res = stats.compare([np.nan, np.nan], [1.0, 2.0])
    assert res["n_a"] == 0 and res["n_excluded_a"] == 2
    assert math.isnan(res["mean_a"]) and math.isnan(res["prob_improvement"])
    assert "no finite values in a" in res["note"]


def test_compare_rejects_2d():
    with pytest.raises(ValueError, match="1-D"):
        stats.compare(np.zeros((2, 3)), [1.0, 2.0])


def test_holm_reference():
    assert stats.holm([0.04, 0.001, 0.03, 0.2]) == pytest.approx([0.09, 0.004, 0.09, 0.2])


@pytest.mark.parametrize("p", [[0.01, 0.02, 0.03, 0.04, 0.05], [0.5, 0.001, 0.2, 0.049, 0.9, 0.012], [0.3]])
def test_corrections_match_statsmodels(p):
    assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist())
    assert stats.bh(p) == pytest.approx(multipletests(p, method="fdr_bh")[1].tolist())
    assert stats.adjust(p, "none") == pytest.approx(p)


def test_corrections_leave_nan_out_of_family():
    p = [0.04, np.nan, 0.001, 0.03, 0.2]
    out = stats.holm(p)
    assert math.isnan(out[1])
    assert [out[i] for i in (0, 2, 3, 4)] == pytest.approx([0.09, 0.004, 0.09, 0.2])
    assert math.isnan(stats.bh([np.nan])[0])
    assert stats.holm([]) == []


def test_adjust_rejects_unknown_method():
    with pytest.raises(ValueError):
        stats.adjust([0.1], "hs")


GROUPS = {
    "normal": [0.976, 0.977, 0.975],
    "nearest": [0.975, 0.976, 0.974],
    "ELU": [0.978, 0.979, 0.977, 0.980, 0.978],
    "nearest_elu": [0.977, 0.976, 0.978],
}


def test_pairwise_shape_order_and_holm():
    df = stats.pairwise(GROUPS)
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 6
    assert list(zip(df["a"], df["b"], strict=True))[:3] == [("normal", "nearest"), ("normal", "ELU"),
                                                ("normal", "nearest_elu")]
    assert (df["family_size"] == 6).all()
    assert df["p_adjusted"].tolist() == pytest.approx(stats.holm(df["welch_p"].tolist()))
    assert (df["significant"] == (df["p_adjusted"] < 0.05)).all()
    for col in ("a", "b", "diff", "ci_low", "welch_p", "mwu_min_p", "hedges_g", "prob_improvement", "z_seed",
                "testable", "note", "p_adjusted", "significant", "family_size"):
        assert col in df.columns
    assert "sentence" not in df.columns                          # words are adlapp.report's (test_report.py)
    row = df.iloc[1]
    assert row["diff"] == pytest.approx(np.mean(GROUPS["normal"]) - np.mean(GROUPS["ELU"]))


def test_pairwise_bh_and_none():
    bh = stats.pairwise(GROUPS, correction="bh")
    assert bh["p_adjusted"].tolist() == pytest.approx(stats.bh(bh["welch_p"].tolist()))
    none = stats.pairwise(GROUPS, correction="none")
    assert none["p_adjusted"].tolist() == pytest.approx(none["welch_p"].tolist())
    with pytest.raises(ValueError):
        stats.pairwise(GROUPS, correction="bonferroni")


def test_pairwise_untestable_pairs_leave_the_family():
    groups = {**GROUPS, "single": [0.97], "const_a": [0.9] * 3, "const_b": [0.8] * 3}
    df = stats.pairwise(groups)
    assert len(df) == 21
    untested = df[~df["testable"]]
    # 6 pairs involve "single", plus const_a vs const_b
    assert len(untested) == 7
    assert (df["family_size"] == 14).all()
    assert untested["p_adjusted"].isna().all() and not untested["significant"].any()
    one = df[(df["a"] == "normal") & (df["b"] == "single")].iloc[0]["note"]
    assert "n=1 in single: no test possible" in one
    const = df[(df["a"] == "const_a") & (df["b"] == "const_b")].iloc[0]["note"]
    assert "zero variance in both groups" in const


def test_pairwise_counts_excluded_runs():
    df = stats.pairwise({"A": [0.9, 0.91, np.nan, 0.92], "B": [0.8, 0.81, 0.82]})
    assert df.iloc[0]["n_excluded_a"] == 1 and "excluded from A" in df.iloc[0]["note"]


def test_adjust_within_families():
    p = [0.04, 0.001, np.nan, 0.03, 0.2]
    adjusted, sizes = stats.adjust_within(p, ["x", "y", "x", "x", "y"])
    assert [adjusted[i] for i in (0, 3)] == pytest.approx(stats.holm([0.04, 0.03]))
    assert [adjusted[i] for i in (1, 4)] == pytest.approx(stats.holm([0.001, 0.2]))
    assert math.isnan(adjusted[2]) and sizes == [2, 2, 2, 2, 2]
    same, _ = stats.adjust_within(p, [0] * 5, "bh")
    assert same == pytest.approx(stats.bh(p), nan_ok=True)
    with pytest.raises(ValueError, match="labels"):
        stats.adjust_within([0.1], ["a", "b"])


def test_pairwise_degenerate_inputs():
    assert len(stats.pairwise({"only": [1.0, 2.0]})) == 0
    assert len(stats.pairwise({})) == 0


SEEDS_REFERENCE = {0.5: 64, 0.8: 26, 1.0: 17, 1.5: 9, 2.0: 6, 3.0: 4}


@pytest.mark.parametrize("d, expected", SEEDS_REFERENCE.items())
def test_seeds_needed_reference(d, expected):
    oracle = math.ceil(TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1.0,
                                                   alternative="two-sided"))
    assert oracle == expected
    assert stats.seeds_needed(d) == expected


def test_seeds_needed_bonferroni_and_is_minimal():
    assert stats.seeds_needed(2.0, comparisons=6) == 8
    assert stats.seeds_needed(2.0, alpha=0.05 / 6) == 8
    n = stats.seeds_needed(0.7, power=0.9)
    assert stats.power(0.7, n) >= 0.9 > stats.power(0.7, n - 1)


def test_seeds_needed_huge_effect_and_minimum():
    assert stats.seeds_needed(10.0) == 2                        # solve_power alone fails to converge here
    assert stats.seeds_needed(5.0) == 3


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf")])
def test_seeds_needed_rejects_bad_effect(bad):
    with pytest.raises(ValueError, match="effect_size"):
        stats.seeds_needed(bad)


def test_seeds_needed_rejects_bad_args():
    with pytest.raises(ValueError):
        stats.seeds_needed(1.0, power=1.0)
    with pytest.raises(ValueError):
        stats.seeds_needed(1.0, comparisons=0)


def test_power_matches_statsmodels_and_is_monotone():
    assert stats.power(2.0, 3) == pytest.approx(TTestIndPower().power(2.0, nobs1=3, alpha=0.05))
    assert stats.power(2.0, 3, comparisons=6) == pytest.approx(
        TTestIndPower().power(2.0, nobs1=3, alpha=0.05 / 6))
    curve = stats.power_curve(1.0)
    assert list(curve.columns) == ["n", "power"]
    assert curve["n"].tolist() == list(range(2, 31))
    assert curve["power"].is_monotonic_increasing
    assert curve["power"].iloc[-1] > 0.8 > curve["power"].iloc[0]
    assert stats.power(0.0, 10) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        stats.power(1.0, 1)


def test_summarize():
    x = [0.9, 0.92, np.nan, 0.94]
    s = stats.summarize(x)
    lo, hi = sps.t.interval(0.95, 2, loc=0.92, scale=0.02 / math.sqrt(3))
    assert (s["n"], s["n_excluded"]) == (3, 1)
    assert s["mean"] == pytest.approx(0.92) and s["sd"] == pytest.approx(0.02)
    assert (s["min"], s["max"]) == (0.9, 0.94)
    assert s["ci_low"] == pytest.approx(lo) and s["ci_high"] == pytest.approx(hi)
    one = stats.summarize([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["sd"]) and math.isnan(one["ci_low"])
    empty = stats.summarize([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["max"])
    assert stats.summarize([0.9] * 3)["sd"] == 0.0


def test_welch_over_epochs():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(5, 12))                      # (n_seeds, n_epochs)
    b = rng.normal(1.5, 1.0, size=(3, 12))
    a[2, 4] = np.nan                                            # a diverged epoch value
    df = stats.welch_over_epochs(a, b)
    assert len(df) == 12 and df["epoch"].tolist() == list(range(1, 13))
    for j in (0, 4, 11):
        res = stats.compare(a[:, j], b[:, j])
        assert df.loc[j, "diff"] == pytest.approx(res["diff"])
        assert df.loc[j, "welch_p"] == pytest.approx(res["welch_p"])
    assert df.loc[4, "n_a"] == 4
    assert df["p_adjusted"].tolist() == pytest.approx(stats.holm(df["welch_p"].tolist()))
    assert (df["significant"] == (df["p_adjusted"] < 0.05)).all()
    labelled = stats.welch_over_epochs(a, b, correction="bh", epochs=range(10, 130, 10))
    assert labelled["epoch"].tolist()[-1] == 120
    assert labelled["p_adjusted"].tolist() == pytest.approx(stats.bh(df["welch_p"].tolist()))


def test_welch_over_epochs_shape_errors():
    with pytest.raises(ValueError, match="same number of epochs"):
        stats.welch_over_epochs(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2-D"):
        stats.welch_over_epochs(np.zeros(3), np.zeros(3))


def test_welch_over_epochs_identical_start_does_not_warn():
    # every seed starts at the same value: epoch 1 has zero variance in both groups
    a = np.array([[0.1, 0.5, 0.6], [0.1, 0.55, 0.62], [0.1, 0.52, 0.61]])
    b = np.array([[0.1, 0.4, 0.5], [0.1, 0.42, 0.52], [0.1, 0.41, 0.55]])
    df = stats.welch_over_epochs(a, b)
    assert df.loc[0, "welch_p"] == 1.0
    assert df["welch_p"].notna().all()


def test_no_streamlit_or_torch_import():
    import adlapp.stats as mod
    source = Path(mod.__file__).read_text()
    assert "import streamlit" not in source and "import torch" not in source
    assert set(mod.__all__) >= {"compare", "holm", "bh", "pairwise", "seeds_needed", "power", "power_curve",
                                "pooled_sd", "summarize", "welch_over_epochs"}
    assert "def _sentence" not in source and "import report" not in source     # numbers only: no words
