"""Test scores at the best-validation epoch: the epoch is chosen by validation loss alone, the scores are what
that epoch's weights score, and they survive resume, divergence and a bundle round trip.

The configurations are tiny but chosen so that validation loss falls and then rises within a few epochs:
the best epoch then lies strictly before later test epochs, so the saved weights (not the current ones) are
scored. Both carry BatchNorm, whose running statistics are part of the weights that must be saved.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from adlapp import metrics
from adlapp.bundle import BundleError, export_store, import_bundle, read_bundle, write_bundle
from adlapp.config import variant
from adlapp.metrics import METRICS, by_row, compare_metrics, metric
from adlapp.store import RunStore, RunTables
from adlapp.train import _BestWeights, train
from tests.conftest import train_into

SCORES = {"cnn": ("acc", "loss"), "unet": ("pixel_acc", "f1", "loss")}


def bn_cnn():
    """Val loss falls to epoch 3 of 5, then rises (test epochs 2, 4, 5 -> best epochs 2, 3, 3)."""
    cfg = variant("cnn/bn-adam")
    return replace(cfg, epochs=5, eval_at=(2, 4), optim=replace(cfg.optim, lr=0.0025),
                   data=replace(cfg.data, train_per_class=1))


def bn_unet(epochs=12):
    """Val loss jumps around (test epochs 4, 8, 12 -> best epochs 1, 7, 9)."""
    cfg = variant("unet/elu")
    return replace(cfg, epochs=epochs, eval_at=(4, 8), batch_size=4, optim=replace(cfg.optim, lr=0.03),
                   model=replace(cfg.model, base_width=4, depth=2, batchnorm=True),
                   data=replace(cfg.data, n_train=4, image_size=32))


CONFIGS = {"cnn": bn_cnn, "unet": bn_unet}


def first_argmin(history, until):
    losses = [(h["val_loss"], h["epoch"]) for h in history if h["epoch"] <= until]
    return min(losses)[1]          # ties: the earlier epoch (tuples compare the epoch second)


class _Runs(dict):
    """Uninterrupted runs (seed 0) by configuration name, each trained when first asked for."""

    def __missing__(self, name):
        self[name] = train(CONFIGS[name](), 0, device="cpu")
        return self[name]


@pytest.fixture(scope="module")
def runs():
    return _Runs()


@pytest.mark.parametrize("name", CONFIGS)
def test_best_epoch_is_the_first_argmin_of_validation_loss_up_to_each_test_epoch(runs, name):
    result = runs[name]
    cfg = CONFIGS[name]()
    assert sorted(result.tests) == list(cfg.test_epochs)
    chosen = []
    for epoch, tests in result.tests.items():
        assert set(tests) == {*SCORES[name], *("best_" + s for s in SCORES[name]), "best_epoch"}
        assert tests["best_epoch"] == first_argmin(result.history, epoch)
        chosen.append(int(tests["best_epoch"]))
    # The configurations are meant to score saved weights, not only the current ones.
    assert any(b < e for b, e in zip(chosen, result.tests, strict=True)), chosen


@pytest.mark.parametrize("name", CONFIGS)
def test_best_scores_equal_a_run_trained_to_exactly_the_best_epoch(runs, name):
    result = runs[name]
    direct_runs = {}
    for epoch, tests in result.tests.items():
        b = int(tests["best_epoch"])
        if b not in direct_runs:
            short = replace(CONFIGS[name](), epochs=b, eval_at=())
            assert short.test_epochs == (b,)
            direct_runs[b] = train(short, 0, device="cpu")
        again = direct_runs[b]
        assert [h["val_loss"] for h in again.history] == [h["val_loss"] for h in result.history[:b]]
        direct = again.tests[b]
        for s in SCORES[name]:
            assert math.isclose(tests["best_" + s], direct[s], rel_tol=0, abs_tol=1e-6), (epoch, b, s)
        assert direct["best_epoch"] == b          # within 1..b the best is b itself


def test_resumed_run_gives_the_same_best_rows_as_an_uninterrupted_one(runs, tmp_path):
    full = runs["unet"]
    stops = iter([False, True])                   # stop after epoch 2; the best so far is epoch 1
    part = train(bn_unet(), 0, device="cpu", checkpoint_dir=tmp_path, should_stop=lambda: next(stops))
    assert part.status == "cancelled" and part.epochs_done == 2
    saved = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    assert saved["best_epoch"] == 1 and saved["best_val_loss"] == full.history[0]["val_loss"]
    assert any("running_mean" in k for k in saved["best_model"])      # BatchNorm statistics are kept
    resumed = train(bn_unet(), 0, device="cpu", checkpoint_dir=tmp_path)
    assert resumed.status == "done" and resumed.resumed_from == 2
    assert resumed.tests == full.tests            # every test row, best_* included, bit for bit
    assert resumed.tests[4]["best_epoch"] == 1    # scored from the weights the checkpoint carried


@pytest.mark.parametrize("stop_at", [1, 2])
def test_an_old_checkpoint_without_best_weights_still_resumes(runs, tmp_path, stop_at):
    """A checkpoint from before best tracking: its best epoch's weights are known only if that epoch is the
    checkpoint's own (stop after 1); otherwise (stop after 2, best 1) test epochs whose best lies before the
    checkpoint get no best_* rows. Every row written equals the uninterrupted run's."""
    full = runs["unet"]
    stops = iter([False] * (stop_at - 1) + [True])
    train(bn_unet(), 0, device="cpu", checkpoint_dir=tmp_path, should_stop=lambda: next(stops))
    path = tmp_path / "last.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    for k in ("best_model", "best_val_loss", "best_epoch"):
        del state[k]
    torch.save(state, path)
    resumed = train(bn_unet(), 0, device="cpu", checkpoint_dir=tmp_path)
    assert resumed.status == "done"
    for epoch, tests in resumed.tests.items():
        lost = stop_at == 2 and full.tests[epoch]["best_epoch"] < stop_at
        want = {k: v for k, v in full.tests[epoch].items() if not (lost and k.startswith("best_"))}
        assert tests == want, epoch
    assert ("best_epoch" in resumed.tests[4]) == (stop_at == 1)


def test_a_diverged_run_scores_no_best_weights_after_it_diverges(monkeypatch):
    import adlapp.train as train_module

    real = train_module._train_one_epoch
    calls = []

    def diverge_at_3(*args):
        calls.append(1)
        return math.nan if len(calls) == 3 else real(*args)

    monkeypatch.setattr(train_module, "_train_one_epoch", diverge_at_3)
    result = train(bn_unet(6), 0, device="cpu")   # test epochs 4 and 6: both after the divergence
    assert result.status == "diverged" and result.diverged_epoch == 3
    assert result.tests == {}
    cfg = replace(bn_unet(6), eval_at=(2,))
    calls.clear()
    result = train(cfg, 0, device="cpu")
    assert sorted(result.tests) == [2] and result.tests[2]["best_epoch"] in (1, 2)


def test_best_weights_keep_the_earlier_epoch_on_ties_and_ignore_nan():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    best = _BestWeights()
    best.update(model, 1, math.nan)
    assert best.state is None and best.epoch == 0
    best.update(model, 2, 0.5)
    saved = best.state["0.weight"].clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)                  # training moves on: the saved copy must not follow
    best.update(model, 3, 0.5)                     # a tie keeps epoch 2
    best.update(model, 4, math.inf)
    assert best.epoch == 2 and torch.equal(best.state["0.weight"], saved)
    assert "1.running_var" in best.state           # buffers too
    best.update(model, 5, 0.25)
    assert best.epoch == 5 and torch.equal(best.state["0.weight"], model[0].weight)


def test_the_metrics_registry_names_the_new_rows():
    for experiment, scores in SCORES.items():
        assert metrics.test_metrics(experiment) == scores      # the last-epoch tables are unchanged
        assert set(metrics.best_metrics(experiment)) == {"best_" + s for s in scores}
        for s in scores:
            m = by_row("test", "best_" + s)
            assert m.key == f"test_{s}_best" and m.label == f"{by_row('test', s).label} at the best-validation epoch"
            assert m.higher_is_better == by_row("test", s).higher_is_better and "compare" in m.views
            assert m.curve_key == by_row("test", s).curve_key
        for m in compare_metrics(experiment):      # every compared metric has a curve the Compare page can draw
            assert metric(m.curve_key).source == "epoch"
    epoch = METRICS["best_epoch"]
    assert (epoch.row, epoch.label, epoch.unit, epoch.views) == ("best_epoch", "best-validation epoch", "epoch",
                                                                 frozenset({"detail"}))


def test_bundle_round_trip_keeps_best_rows_and_checks_them(tmp_path):
    store = RunStore(tmp_path / "src")
    cfg = bn_unet(6)
    (key,) = train_into(store, cfg, seeds=(0,))
    src = store.tables(keys=[key]).tests
    assert {"best_f1", "best_pixel_acc", "best_loss", "best_epoch"} <= set(src["name"])
    path = export_store(store, tmp_path / "b.zip")
    dst = RunStore(tmp_path / "dst")
    assert import_bundle(dst, path) == [key]
    got = dst.tables(keys=[key]).tests

    def rows(df):
        return sorted(zip(df["epoch"], df["name"], df["value"], strict=True))
    assert rows(got) == rows(src)

    tables = read_bundle(path).tables

    def with_test_row(name, epoch, value):
        tests = tables.tests.copy()
        at = (tests["name"] == name) & (tests["epoch"] == epoch)
        tests.loc[at, "value"] = value
        return write_bundle(tmp_path / f"{name}-{value}.zip", RunTables(tables.runs, tables.epochs, tests))

    for name, value, says in (("best_epoch", 5.0, "from 1 to the row's epoch 4"),
                              ("best_epoch", 1.5, "whole epoch"),
                              ("best_epoch", 0.0, "must be in [1, inf]"),
                              ("best_f1", 1.5, "must be in [0, 1]"),
                              ("best_loss", -1.0, "must be in [0, inf]")):
        with pytest.raises(BundleError, match=r"best_\w+ .*" + says.replace("[", r"\[").replace("]", r"\]")):
            read_bundle(with_test_row(name, 4, value))
    assert read_bundle(with_test_row("best_epoch", 4, 4.0))          # its own epoch is allowed
