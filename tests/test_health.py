"""Tests for adlapp.health: each rule on hand-made histories (with its boundaries), the long->wide pivot of
flag_runs, the group note, the shape warning, and a tiny real CNN trained at an absurd learning rate."""
import math
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, tiny, train_into

from adlapp import health
from adlapp.config import base_config
from adlapp.health import Health, assess, flag_runs, group_note, shape_warning

# Any warning inside a test is a failure: NaN histories and degenerate groups must be handled, not warned about.
pytestmark = pytest.mark.filterwarnings("error")

CHANCE = 1 / 53


def hist(val_acc, train_loss=None, val_loss=None, first_epoch=1) -> pd.DataFrame:
    """A wide history: epochs first_epoch.., the score `val_acc`, losses defaulting to a healthy decline."""
    n = len(val_acc)
    epochs = np.arange(first_epoch, first_epoch + n)
    return pd.DataFrame({
        "epoch": epochs,
        "train_loss": np.linspace(4.0, 1.0, n) if train_loss is None else train_loss,
        "val_loss": np.linspace(4.0, 2.0, n) if val_loss is None else val_loss,
        "val_acc": val_acc,
        "seconds": np.full(n, 0.5),
    })


def collapsing(n=60, peak_at=30, fall_at=40, peak=0.45, end=CHANCE) -> list[float]:
    """Rises to ~0.4 with a peak of `peak` at epoch peak_at, then sits at `end` from epoch fall_at."""
    s = [min(0.4, 0.02 + 0.02 * e) for e in range(1, n + 1)]
    s[peak_at - 1] = peak
    return [v if e < fall_at else end for e, v in enumerate(s, start=1)]


# -- healthy ----------------------------------------------------------------------------------------------
def test_healthy_noisy_run_is_ok():
    rng = np.random.default_rng(0)
    e = np.arange(1, 201)
    acc = np.clip(0.55 * (1 - np.exp(-e / 20)) + rng.normal(0, 0.02, e.size), 0, 1)
    loss = 4 * np.exp(-e / 40) + 0.5 + np.abs(rng.normal(0, 0.3, e.size))
    h = assess(hist(acc, train_loss=loss), "val_acc", CHANCE)
    assert h == Health("ok") and not h.flagged and h.detail == ""


def test_never_learned_is_ok_with_a_remark():
    h = assess(hist([0.02, 0.03, 0.019, 0.025, 0.02, 0.019]), "val_acc", CHANCE)
    assert h.reason == "ok" and not h.flagged
    assert h.detail.startswith("never learned: validation accuracy peaked at 0.03")


def test_no_epochs():
    assert assess(hist([]), "val_acc", CHANCE) == Health("ok", None, "no epochs recorded")
    assert assess(hist([0.3, 0.4], first_epoch=5), "val_acc", CHANCE, upto=4).detail == \
        "no epochs recorded up to epoch 4"


def test_bad_arguments():
    with pytest.raises(ValueError, match="chance"):
        assess(hist([0.1]), "val_acc", 1.0)
    with pytest.raises(ValueError, match="chance"):
        assess(hist([0.1]), "val_acc", math.nan)
    with pytest.raises(ValueError, match="epoch"):
        assess(pd.DataFrame({"val_acc": [0.1]}), "val_acc", CHANCE)


# -- diverged ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("column, value, label", [
    ("train_loss", math.nan, "training loss"),
    ("val_loss", math.inf, "validation loss"),
    ("val_acc", math.nan, "validation accuracy"),
])
def test_diverged_on_any_non_finite(column, value, label):
    h = hist([0.1, 0.2, 0.3, 0.35, 0.4, 0.42])
    h.loc[h["epoch"] >= 4, column] = value
    got = assess(h, "val_acc", CHANCE)
    assert got == Health("diverged", 4, f"{label} not finite at epoch 4")
    assert got.flagged
    assert assess(h, "val_acc", CHANCE, upto=3) == Health("ok")      # the NaN lies after `upto`


def test_diverged_as_the_store_records_it():
    # the trainer's last row: train_loss NaN, no validation metrics (NaN after the pivot)
    h = hist([0.1, 0.2, 0.3])
    h.loc[2, ["train_loss", "val_loss", "val_acc"]] = math.nan
    assert assess(h, "val_acc", CHANCE) == Health(
        "diverged", 3, "training loss, validation loss, validation accuracy not finite at epoch 3")


# -- exploded ---------------------------------------------------------------------------------------------
def test_exploded_boundary_is_strict():
    at = hist([0.1] * 4, train_loss=[2.0, 50.0, 200.0, 150.0])       # exactly 100 x the first: not exploded
    assert assess(at, "val_acc", CHANCE).reason == "ok"
    above = hist([0.1] * 4, train_loss=[2.0, 50.0, 200.5, 150.0])
    got = assess(above, "val_acc", CHANCE)
    assert (got.reason, got.epoch) == ("exploded", 3)
    assert got.detail == "training loss 200 at epoch 3, 100× epoch 1's 2"


def test_exploded_decimal_threshold_counts_as_at():
    h = hist([0.1] * 3, train_loss=[0.07, 7.000000000000001, 0.05])   # 100 * 0.07 in floating point
    assert assess(h, "val_acc", CHANCE).reason == "ok"


def test_exploded_by_absolute_ceiling_when_epoch_one_already_blew_up():
    # lr=1e6 on the full card data: epoch 1's mean loss is already ~9e30, so the relative rule cannot see it
    h = hist([0.015, 0.019, 0.011], train_loss=[8.9e30, 8.7e30, 8.5e30])
    got = assess(h, "val_acc", CHANCE)
    assert got == Health("exploded", 1, "training loss 8.9e+30 at epoch 1, above the 1e+06 ceiling")
    at_ceiling = hist([0.1] * 3, train_loss=[health.EXPLODE_LOSS] * 3)
    assert assess(at_ceiling, "val_acc", CHANCE).reason == "ok"


def test_exploded_with_zero_first_loss_uses_only_the_ceiling():
    h = hist([0.1] * 3, train_loss=[0.0, 5.0, 2e6])
    got = assess(h, "val_acc", CHANCE)
    assert (got.reason, got.epoch, got.detail) == ("exploded", 3, "training loss 2e+06 at epoch 3, above the "
                                                                   "1e+06 ceiling")


def test_exploded_respects_upto():
    h = hist([0.1] * 4, train_loss=[1.0, 1.0, 1.0, 1e10])
    assert assess(h, "val_acc", CHANCE, upto=3).reason == "ok"
    assert assess(h, "val_acc", CHANCE, upto=4).epoch == 4


# -- collapsed --------------------------------------------------------------------------------------------
def test_collapsed_like_the_shipped_adam_runs():
    got = assess(hist(collapsing()), "val_acc", CHANCE)
    assert (got.reason, got.epoch) == ("collapsed", 40)
    assert got.detail == ("validation accuracy peaked at 0.45 (epoch 30), then fell back to 0.0189 from epoch 40 "
                          "(chance 0.0189)")


def test_collapse_band_boundary():
    # chance 0 and peak 0.5: the band is <= 0.125 exactly
    inside = hist([0.1, 0.5, 0.3, 0.125, 0.125, 0.1, 0.0, 0.125])
    got = assess(inside, "val_acc", 0.0)
    assert (got.reason, got.epoch) == ("collapsed", 4)
    outside = hist([0.1, 0.5, 0.3, 0.125, 0.126, 0.1, 0.0, 0.125])
    assert assess(outside, "val_acc", 0.0).reason == "ok"


def test_collapse_band_decimal_boundary():
    # chance 0.2, peak 0.6: band = 0.2 + 0.25 * 0.4 = 0.3 (0.30000000000000004 in floating point)
    h = hist([0.6] + [0.3] * 5)
    assert assess(h, "val_acc", 0.2).reason == "collapsed"


def test_learned_boundary():
    # chance 0: "learned" needs a peak >= 0.10 of the way to 1
    assert assess(hist([0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]), "val_acc", 0.0).reason == "collapsed"
    below = assess(hist([0.0, 0.0999, 0.0, 0.0, 0.0, 0.0, 0.0]), "val_acc", 0.0)
    assert below.reason == "ok" and below.detail.startswith("never learned")
    # chance 1/53: the margin is 0.1 * 52/53; a decimal typed at it counts as reaching it
    peak = CHANCE + 0.1 * (1 - CHANCE)
    assert assess(hist([peak] + [CHANCE] * 5), "val_acc", CHANCE).reason == "collapsed"
    assert assess(hist([peak - 1e-6] + [CHANCE] * 5), "val_acc", CHANCE).reason == "ok"


def test_collapse_window():
    w = health.COLLAPSE_WINDOW
    exactly = assess(hist([0.5] + [0.0] * w), "val_acc", 0.0)
    assert (exactly.reason, exactly.epoch) == ("collapsed", 2)
    one_short = hist([0.3, 0.5] + [0.0] * (w - 1))
    assert assess(one_short, "val_acc", 0.0).reason == "ok"
    few = hist([0.5, 0.0, 0.0])                        # fewer epochs than the window: all of them, peak included
    assert assess(few, "val_acc", 0.0).reason == "ok"
    spike = hist([0.5] + [0.0] * 10 + [0.3] + [0.0] * (w - 2))   # a spike inside the last window
    assert assess(spike, "val_acc", 0.0).reason == "ok"


def test_collapse_epoch_is_the_start_of_the_final_collapse():
    # fell at 10, recovered at 20, fell for good at 30 (like shipped seed 3 of plain Adam)
    s = [0.4] * 9 + [0.02] * 10 + [0.4] * 10 + [0.02] * 10
    got = assess(hist(s), "val_acc", CHANCE)
    assert (got.reason, got.epoch) == ("collapsed", 30)
    assert assess(hist(s), "val_acc", CHANCE, upto=25).reason == "ok"      # recovered by then
    assert assess(hist(s), "val_acc", CHANCE, upto=19).epoch == 10


def test_upto_cuts_before_the_collapse():
    h = hist(collapsing(n=60, fall_at=40))
    assert assess(h, "val_acc", CHANCE, upto=39) == Health("ok")
    assert assess(h, "val_acc", CHANCE, upto=43).reason == "ok"      # only 4 epochs at chance so far
    assert assess(h, "val_acc", CHANCE, upto=44).epoch == 40
    assert assess(h, "val_acc", CHANCE, upto=1000).epoch == 40


def test_unsorted_history():
    h = hist(collapsing()).sample(frac=1.0, random_state=0)
    assert assess(h, "val_acc", CHANCE).epoch == 40


def test_segmentation_f1_with_chance_zero():
    h = pd.DataFrame({"epoch": range(1, 10), "train_loss": 0.5, "val_loss": 0.5,
                      "val_f1": [0.1, 0.5, 0.7, 0.72, 0.0, 0.0, 0.0, 0.0, 0.0], "val_pixel_acc": 0.9})
    got = assess(h, "val_f1", 0.0)
    assert (got.reason, got.epoch) == ("collapsed", 5) and got.detail.startswith("validation F1 peaked at 0.72")
    assert assess(h, "val_acc", 0.0) == Health("ok")                 # no such column: nothing to check


# -- precedence -------------------------------------------------------------------------------------------
def test_precedence_diverged_over_exploded_over_collapsed():
    s = collapsing(n=60, fall_at=40)
    loss = [4.0] * 45 + [1e9] * 15                                     # explodes at 46, after the collapse
    exploded = assess(hist(s, train_loss=loss), "val_acc", CHANCE)
    assert (exploded.reason, exploded.epoch) == ("exploded", 46)
    loss[55] = math.nan
    assert assess(hist(s, train_loss=loss), "val_acc", CHANCE) == Health(
        "diverged", 56, "training loss not finite at epoch 56")
    assert assess(hist(s, train_loss=loss), "val_acc", CHANCE, upto=45).reason == "collapsed"


# -- flag_runs: the long -> wide pivot ----------------------------------------------------------------------
def long_rows(key, frame):
    return frame.melt(id_vars="epoch", var_name="name", value_name="value").assign(key=key)


def test_flag_runs_pivots_the_store_rows():
    healthy = hist(np.linspace(0.1, 0.55, 50))
    collapsed = hist(collapsing(n=50, fall_at=40))
    diverged = pd.DataFrame({"epoch": range(1, 11), "train_loss": np.linspace(0.7, 0.3, 10),
                             "val_loss": 0.4, "val_f1": np.linspace(0.2, 0.7, 10), "val_pixel_acc": 0.9})
    rows = pd.concat([long_rows("a", healthy), long_rows("b", collapsed), long_rows("c", diverged),
                      pd.DataFrame({"key": ["c", "c"], "epoch": [11, 11], "name": ["train_loss", "seconds"],
                                    "value": [None, 1.0]})], ignore_index=True)      # NULL as the store keeps it
    rows = rows.sample(frac=1.0, random_state=1)[["key", "epoch", "name", "value"]]   # any row order
    runs = pd.DataFrame({"key": ["a", "b", "c", "d"], "experiment": ["cnn", "cnn", "unet", "cnn"],
                         "status": ["done", "done", "diverged", "queued"]})
    flags = flag_runs(runs, rows, {"cnn": CHANCE, "unet": 0.0})
    assert list(flags) == ["a", "b", "c", "d"]
    assert flags["a"] == Health("ok")
    assert flags["b"] == assess(collapsed, "val_acc", CHANCE) and flags["b"].epoch == 40
    assert flags["c"] == Health("diverged", 11, "training loss, validation loss, validation F1 not finite at "
                                                "epoch 11")
    assert flags["d"] == Health("ok", None, "no epochs recorded")
    early = flag_runs(runs, rows, {"cnn": CHANCE, "unet": 0.0}, upto=10)
    assert [h.reason for h in early.values()] == ["ok", "ok", "ok", "ok"]
    assert flag_runs(runs.iloc[:2], rows, CHANCE)["b"].reason == "collapsed"     # one chance for all


def test_flag_runs_refuses_unknown_experiments():
    runs = pd.DataFrame({"key": ["a"], "experiment": ["gan"]})
    rows = long_rows("a", hist([0.1, 0.2]))
    with pytest.raises(KeyError, match="no score column"):
        flag_runs(runs, rows, 0.1)
    with pytest.raises(KeyError, match="no chance level"):
        flag_runs(runs, rows, {"cnn": 0.1}, score_by_experiment={"gan": "val_acc"})


def test_flag_runs_is_fast_enough_for_a_large_study():
    rng = np.random.default_rng(0)
    frames = [long_rows(f"k{i:02d}", hist(np.clip(rng.normal(0.4, 0.05, 1000), 0, 1))) for i in range(50)]
    rows = pd.concat(frames, ignore_index=True)[["key", "epoch", "name", "value"]]
    runs = pd.DataFrame({"key": [f"k{i:02d}" for i in range(50)], "experiment": "cnn"})
    flags = flag_runs(runs, rows, CHANCE)                 # 250,000 rows; well under a second
    assert len(flags) == 50 and not any(h.flagged for h in flags.values())


# -- group_note -------------------------------------------------------------------------------------------
def test_group_note():
    ok, col = Health("ok"), Health("collapsed", 40, "")
    assert group_note({0: col, 1: col, 2: ok, 3: col, 4: ok}, 5) == "3 of 5 seeds collapsed"
    assert group_note([Health("exploded", 2), Health("diverged", 3), ok], 3) == "1 of 3 seeds exploded, 1 diverged"
    assert group_note([col, Health("diverged", 3)], 4) == "1 of 4 seeds collapsed, 1 diverged"
    assert group_note([ok, ok, Health("ok", None, "never learned: ...")], 3) == ""
    assert group_note([], 3) == ""
    assert group_note([col], 1) == "1 of 1 seed collapsed"
    with pytest.raises(ValueError, match="n=1"):
        group_note([col, col], 1)


# -- shape_warning ----------------------------------------------------------------------------------------
def test_shape_warning_on_two_clusters_and_not_on_a_normal_group():
    warn = shape_warning([0.45, 0.44, 0.019, 0.019, 0.02])
    assert warn == ("two clusters (0.019–0.02 and 0.44–0.45): the t-test assumes roughly normal values; "
                    "see the rank test")
    assert shape_warning([0.56, 0.55, 0.58, 0.57, 0.54]) == ""


def test_shape_warning_on_one_collapsed_seed():
    warn = shape_warning([0.56, 0.55, 0.58, 0.57, 0.02])
    assert warn.startswith("0.02 is an outlier (Grubbs' test, p < 0.01)") and warn.endswith("see the rank test")


@pytest.mark.parametrize("values", [[0.5, 0.02], [0.5, np.nan, 0.02, np.inf], [0.5, 0.5, 0.5, 0.5], []])
def test_shape_warning_silent_without_a_shape(values):
    assert shape_warning(values) == ""


def test_shape_warning_ignores_diverged_runs():
    assert shape_warning([0.56, 0.55, np.nan, 0.58, 0.57, 0.54]) == ""


def test_shape_warning_is_rare_on_normal_groups():
    rng = np.random.default_rng(0)
    for n, most in ((4, 0.07), (5, 0.045), (8, 0.025)):
        rate = np.mean([shape_warning(x) != "" for x in rng.normal(0.5, 0.02, (1000, n))])
        assert rate < most, (n, rate)


# -- the module stays light -------------------------------------------------------------------------------
def test_health_imports_neither_torch_nor_streamlit():
    code = ("import sys, adlapp.health; "
            "sys.exit(any(m.split('.')[0] in ('torch', 'streamlit') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# -- real training --------------------------------------------------------------------------------------
@pytest.fixture
def one_torch_thread():
    """Tiny models train faster on one thread, above all on a busy machine; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_real_runs_absurd_lr_is_flagged_and_sane_is_not(tmp_path, one_torch_thread):
    from adlapp.runner import run_claimed  # imports torch
    from adlapp.store import RunStore

    store = RunStore(tmp_path / "store")
    sane = tiny("cnn/adam")
    assert sane.optim == base_config("cnn").optim                      # the course's Adam at lr 0.01
    # 4 batches in the one epoch: the weights blow up inside it, as at full size (the ceiling rule's case)
    absurd = replace(sane, epochs=1, batch_size=16, optim=replace(sane.optim, lr=1e6))
    ok_key, = train_into(store, sane, seeds=(0,))
    bad_key, _ = store.enqueue(absurd, 0, command="pytest")      # not train_into: it may end "diverged" too
    assert store.claim(bad_key) is not None
    status = run_claimed(store, bad_key, absurd, 0, device="cpu", flag=SimpleNamespace(set=False))
    assert status in ("done", "diverged")
    tables = store.tables()
    flags = flag_runs(tables.runs, tables.epochs, {"cnn": CHANCE})
    assert flags[bad_key].reason in ("exploded", "diverged"), flags[bad_key]
    assert flags[bad_key].epoch == 1
    assert not flags[ok_key].flagged, flags[ok_key]
