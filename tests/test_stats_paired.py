"""Tests for adlapp.stats' paired test, level-`level` CIs and spread test: oracles scipy and statsmodels."""
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import oneway  # a module: pytest would collect its test_scale_oneway as a test
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from adlapp import stats

# Any warning inside a test is a failure: degenerate inputs must be handled before scipy sees them.
pytestmark = pytest.mark.filterwarnings("error")


def _random_pairs(seed: int, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.5, 0.05, n)
    return a, a - shift + rng.normal(0.0, 0.02, n)         # the same runs scored twice: correlated


PAIRS = {
    "n3": _random_pairs(0, 3, 0.01),
    "n5": _random_pairs(1, 5, 0.03),
    "n8 no effect": _random_pairs(2, 8, 0.0),
    "n20": _random_pairs(3, 20, 0.01),
    "n60 asymptotic": _random_pairs(4, 60, 0.005),        # scipy's "auto" switches to the normal approximation
    "ties": ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.5, 1.5, 2.0, 4.5, 4.0, 7.0]),   # |differences| tie
}


@pytest.mark.parametrize("key", PAIRS)
def test_paired_matches_scipy_and_statsmodels(key):
    a, b = PAIRS[key]
    res = stats.paired(a, b)
    ref = sps.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    d = np.asarray(a) - np.asarray(b)
    assert set(res) == set(stats.PAIRED_KEYS)
    assert res["testable"] and res["n"] == len(a) and res["n_excluded"] == 0
    assert res["mean_a"] == pytest.approx(np.mean(a), rel=1e-12)
    assert res["mean_b"] == pytest.approx(np.mean(b), rel=1e-12)
    assert res["diff"] == pytest.approx(d.mean(), rel=1e-9, abs=1e-15)
    assert res["sd_diff"] == pytest.approx(d.std(ddof=1), rel=1e-9)
    assert res["t"] == pytest.approx(ref.statistic, rel=1e-9)
    assert res["df"] == ref.df
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert res["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b, method="auto").pvalue, rel=1e-12)
    assert res["dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-9)
    t, p, df = DescrStatsW(d).ttest_mean()
    assert (res["t"], res["p"], res["df"]) == pytest.approx((t, p, df), rel=1e-9)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx(DescrStatsW(d).tconfint_mean(0.05), rel=1e-9)


def test_paired_hand_checkable():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3), dz = 2; all positive: exact signed-rank p = 2/8
    res = stats.paired([2, 4, 6], [1, 2, 3])
    assert res["diff"] == 2.0 and res["sd_diff"] == 1.0
    assert res["t"] == pytest.approx(2 * math.sqrt(3))
    assert res["dz"] == pytest.approx(2.0)
    assert res["wilcoxon_p"] == pytest.approx(0.25)
    assert res["wilcoxon_min_p"] == pytest.approx(0.25)
    assert "signed-rank test cannot reach p<0.05 with 3 non-zero differences (min p = 0.250)" in res["note"]


def test_paired_rank_floor_by_n():
    assert stats.paired(*PAIRS["n5"])["wilcoxon_min_p"] == pytest.approx(1 / 16)
    res = stats.paired(*_random_pairs(5, 6, 0.05))
    assert res["wilcoxon_min_p"] == pytest.approx(1 / 32)
    assert "cannot reach" not in res["note"]


def test_paired_drops_incomplete_pairs():
    a = [0.50, np.nan, 0.61, 0.55, np.inf, 0.58]
    b = [0.48, 0.40, np.nan, 0.50, 0.52, 0.51]
    res = stats.paired(a, b, names=("epoch 1000", "epoch 200"))
    keep = [0, 3, 5]
    ref = sps.ttest_rel(np.take(a, keep), np.take(b, keep))
    assert res["n"] == 3 and res["n_excluded"] == 3
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert res["mean_a"] == pytest.approx(np.mean(np.take(a, keep)))
    assert res["note"].startswith("3 pairs with a non-finite value (diverged run) excluded")
    nan_omit = sps.ttest_rel([0.50, np.nan, 0.61, 0.55, 0.58], [0.48, 0.40, np.nan, 0.50, 0.51], nan_policy="omit")
    assert res["p"] == pytest.approx(nan_omit.pvalue, rel=1e-9)


@pytest.mark.parametrize("a, b, note", [
    ([0.5], [0.4], "n=1 pair: no test possible"),
    ([0.5, np.nan], [np.nan, 0.4], "no complete pairs: no test possible"),
    ([], [], "no complete pairs: no test possible"),
])
def test_paired_too_few(a, b, note):
    res = stats.paired(a, b)
    assert not res["testable"]
    assert note in res["note"]
    for k in ("ci_low", "ci_high", "t", "df", "p", "wilcoxon_p", "dz", "sd_diff"):
        assert math.isnan(res[k]), k


def test_paired_all_zero_differences():
    res = stats.paired([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], names=("BN", "no BN"))
    assert res["testable"]
    assert (res["t"], res["p"], res["wilcoxon_p"]) == (0.0, 1.0, 1.0)
    assert (res["diff"], res["ci_low"], res["ci_high"]) == (0.0, 0.0, 0.0)
    assert math.isnan(res["dz"]) and math.isnan(res["wilcoxon_min_p"])
    assert res["note"] == "BN equals no BN in every pair: no difference at all (signed-rank p = 1)"


def test_paired_floating_point_residue_is_zero():
    res = stats.paired([0.1 + 0.2, 0.7 + 0.1, 1.1 + 2.2], [0.3, 0.8, 3.3])
    assert res["diff"] == 0.0 and res["p"] == 1.0 and res["wilcoxon_p"] == 1.0


def test_paired_constant_nonzero_difference():
    a = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    res = stats.paired(a, a - 0.25)                    # every pair differs by exactly 0.25
    assert not res["testable"]
    assert math.isnan(res["t"]) and math.isnan(res["p"]) and math.isnan(res["ci_low"])
    assert res["diff"] == pytest.approx(0.25)
    assert res["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, a - 0.25).pvalue)
    assert "every pair differs by the same amount" in res["note"]


def test_paired_some_zero_differences():
    a = [0.50, 0.60, 0.55, 0.70, 0.65, 0.62, 0.58]
    b = [0.50, 0.58, 0.50, 0.70, 0.61, 0.55, 0.59]
    res = stats.paired(a, b)
    assert res["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b, zero_method="wilcox", method="auto").pvalue,
                                              rel=1e-12)
    assert res["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9)
    assert "2 zero differences left out of the signed-rank test" in res["note"]
    assert res["wilcoxon_min_p"] == pytest.approx(2 / 2 ** 5)


def test_paired_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="same length"):
        stats.paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        stats.paired([[1, 2], [3, 4]], [[1, 2], [3, 4]])


UNPAIRED = {
    "3v3": ([0.971, 0.975, 0.969], [0.962, 0.968, 0.966]),
    "3v5": ([0.976, 0.977, 0.975], [0.974, 0.979, 0.972, 0.976, 0.973]),
    "5v4 nan": ([0.1, 0.4, np.nan, 0.35, 0.2, 0.3], [0.5, 0.45, 0.6, np.inf, 0.52]),
}


@pytest.mark.parametrize("key", UNPAIRED)
@pytest.mark.parametrize("m", [1, 3, 6])
def test_mean_diff_ci_welch_bonferroni(key, m):
    a, b = UNPAIRED[key]
    fa, fb = (np.asarray(x)[np.isfinite(x)] for x in (a, b))
    level = 1 - 0.05 / m
    ref = sps.ttest_ind(fa, fb, equal_var=False).confidence_interval(level)
    got = stats.mean_diff_ci(a, b, level)
    assert got == pytest.approx((ref.low, ref.high), rel=1e-9)
    sm = CompareMeans(DescrStatsW(fa), DescrStatsW(fb)).tconfint_diff(alpha=1 - level, usevar="unequal")
    assert got == pytest.approx(sm, rel=1e-9)
    if m == 1:
        res = stats.compare(a, b)
        assert got == pytest.approx((res["ci_low"], res["ci_high"]), rel=1e-12)
    wider = stats.mean_diff_ci(a, b, 1 - 0.05 / (m + 1))
    assert wider[0] < got[0] and wider[1] > got[1]


@pytest.mark.parametrize("key", ["n5", "n20", "ties"])
@pytest.mark.parametrize("m", [1, 4])
def test_mean_diff_ci_paired(key, m):
    a, b = PAIRS[key]
    level = 1 - 0.05 / m
    ref = sps.ttest_rel(a, b).confidence_interval(level)
    got = stats.mean_diff_ci(a, b, level, paired=True)
    assert got == pytest.approx((ref.low, ref.high), rel=1e-9)
    if m == 1:
        res = stats.paired(a, b)
        assert got == pytest.approx((res["ci_low"], res["ci_high"]), rel=1e-12)


def test_mean_diff_ci_degenerate():
    nan2 = (True, True)
    assert tuple(map(math.isnan, stats.mean_diff_ci([0.5], [0.4, 0.3], 0.95))) == nan2
    assert tuple(map(math.isnan, stats.mean_diff_ci([0.5, 0.6], [0.4, 0.5], 0.95, paired=True))) == nan2
    assert tuple(map(math.isnan, stats.mean_diff_ci([0.9] * 3, [0.8] * 3, 0.95))) == nan2   # exact difference
    assert stats.mean_diff_ci([0.9] * 3, [0.9] * 3, 0.99) == (0.0, 0.0)
    assert stats.mean_diff_ci([0.9, 0.8], [0.9, 0.8], 0.99, paired=True) == (0.0, 0.0)
    for level in (0.0, 1.0, 95):
        with pytest.raises(ValueError, match="level"):
            stats.mean_diff_ci([1, 2], [3, 4], level)


GROUPS = {
    "3 groups": [[0.55, 0.56, 0.57, 0.54, 0.58], [0.4, 0.02, 0.45, 0.02, 0.04], [0.43, 0.45, 0.44, 0.42, 0.45]],
    "unequal n": [[1.0, 2.0, 3.0, 4.5], [2.0, 4.0, 6.0, 9.0], [0.1, 0.2, 0.4]],
    "random": [np.random.default_rng(7).normal(0, s, n) for s, n in ((1, 6), (3, 8), (1.5, 5), (0.5, 10))],
}


@pytest.mark.parametrize("key", GROUPS)
def test_spread_test_matches_scipy_and_statsmodels(key):
    groups = GROUPS[key]
    res = stats.spread_test(groups)
    assert set(res) == set(stats.SPREAD_KEYS)
    assert res["testable"] and res["groups_tested"] == len(groups) and res["note"] == ""
    assert res["n"] == [len(g) for g in groups]
    assert res["sd"] == pytest.approx([np.std(g, ddof=1) for g in groups], rel=1e-12)
    for key_, center in (("brown_forsythe", "median"), ("levene", "mean")):
        ref = sps.levene(*groups, center=center)
        assert res[f"{key_}_w"] == pytest.approx(ref.statistic, rel=1e-9)
        assert res[f"{key_}_p"] == pytest.approx(ref.pvalue, rel=1e-9)
        sm = oneway.test_scale_oneway(groups, method="equal", center=center, transform="abs")
        assert res[f"{key_}_p"] == pytest.approx(sm.pvalue, rel=1e-9)


def test_spread_test_drops_non_finite_and_small_groups():
    groups = [[1.0, 2.0, np.nan, 3.0, 4.5], [2.0, 4.0, 6.0, 9.0, np.inf], [np.nan, 7.0], [0.1, 0.2, 0.4]]
    res = stats.spread_test(groups)
    assert res["n"] == [4, 4, 1, 3] and res["n_excluded"] == [1, 1, 1, 0]
    assert math.isnan(res["sd"][2]) and res["groups_tested"] == 3
    ref = sps.levene([1.0, 2.0, 3.0, 4.5], [2.0, 4.0, 6.0, 9.0], [0.1, 0.2, 0.4], center="median")
    assert res["brown_forsythe_p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert "1 group(s) with fewer than 2 values left out" in res["note"]
    assert "1 non-finite value (diverged run) excluded from group 0" in res["note"]


@pytest.mark.parametrize("groups", [[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0], [4.0]], [[np.nan, 1.0], [2.0]], []])
def test_spread_test_needs_two_groups(groups):
    res = stats.spread_test(groups)
    assert not res["testable"]
    assert math.isnan(res["brown_forsythe_p"]) and math.isnan(res["levene_p"])
    assert "fewer than 2 groups with n>=2: no test possible" in res["note"]


def test_spread_test_zero_spread_everywhere():
    res = stats.spread_test([[0.9, 0.9, 0.9], [0.8, 0.8, 0.8, 0.8]])
    assert res["testable"] and res["brown_forsythe_p"] == 1.0 and res["levene_p"] == 1.0
    assert res["sd"] == [0.0, 0.0]
    assert res["note"] == "zero variance in every group: the spreads are equal"


def test_spread_test_two_values_per_group_is_degenerate():
    # with 2 values both lie |x1 - x2| / 2 from the centre: no within-group variation, scipy would divide by 0
    res = stats.spread_test([[1.0, 2.0], [2.0, 5.0], [0.0, 0.5]])
    assert not res["testable"] and math.isnan(res["levene_w"])
    assert "the same within every group" in res["note"]


def test_spread_test_one_constant_group_is_fine():
    groups = [[0.019, 0.019, 0.019], [0.55, 0.57, 0.52, 0.6]]
    res = stats.spread_test(groups)
    assert res["brown_forsythe_p"] == pytest.approx(sps.levene(*groups, center="median").pvalue, rel=1e-9)
