"""scripts/measure_data_size.py: equal optimiser steps at every data size, and a report whose statistics are
Welch's t with Holm over the four contrasts (checked against scipy and statsmodels, not against adlapp.stats).

The report only reads stored numbers, so the runs here are written into a real store through its own API (the
full-size runs take minutes each; training is tested elsewhere)."""
import re

import numpy as np
import pytest
import scipy.stats as sps
from conftest import load_script
from statsmodels.stats.multitest import multipletests

from adlapp.config import CARD_CLASSES, batches_per_epoch, run_key, variant
from adlapp.store import RunStore

mds = load_script("measure_data_size")


@pytest.mark.parametrize("per_class", [20, 60, 144])
def test_every_size_trains_the_course_number_of_optimiser_steps(per_class):
    for name in mds.VARIANTS:
        cfg = mds.config_at(name, per_class)
        assert cfg.data.train_per_class == per_class
        per_epoch = batches_per_epoch(cfg)
        assert per_epoch == -(-per_class * CARD_CLASSES // cfg.batch_size)             # ceil(images / batch)
        assert abs(cfg.epochs * per_epoch - 200 * 17) <= per_epoch / 2                 # the nearest whole epoch
    # At the course's own size it is the course run itself, so the shipped 200-epoch runs are the ones read.
    assert all(run_key(mds.config_at(n, 20), 0) == run_key(variant(n), 0) for n in mds.VARIANTS)


def _write_run(store: RunStore, cfg, seed: int, acc: float, seconds: float) -> None:
    key, _ = store.enqueue(cfg, seed, command="pytest")
    assert store.claim(key)[0] == key
    for epoch in range(1, cfg.epochs + 1):
        tests = {"acc": acc, "loss": 1.0} if epoch == cfg.epochs else None
        store.record_epoch(key, epoch, {"train_loss": 1.0, "val_loss": 1.0, "val_acc": acc, "seconds": seconds}, tests)
    store.finish(key, "done")


def test_the_report_is_welch_with_holm_over_the_four_contrasts(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    rng = np.random.default_rng(7)
    means = {"cnn/bn-adam": 0.60, "cnn/adam": 0.40, "cnn/bn-sgd": 0.65, "cnn/sgd": 0.45}
    accs = {name: [float(m + 0.03 * rng.standard_normal()) for _ in range(4)] for name, m in means.items()}
    for name, values in accs.items():
        for seed, acc in enumerate(values):
            _write_run(store, mds.config_at(name, 60), seed, acc, seconds=2.0 + seed)
    mds.report(store.tables(experiment="cnn"), [60])
    out = capsys.readouterr().out
    assert "### 60 cards a class (3,180 training images), 68 epochs; 3.50 s/epoch (median of" in out
    assert f"| cnn/sgd | {np.mean(accs['cnn/sgd']):.4f} ± {np.std(accs['cnn/sgd'], ddof=1):.4f} (4) |" in out

    raw = [sps.ttest_ind(accs[a], accs[b], equal_var=False).pvalue for a, b, _ in mds.CONTRASTS]
    holm = multipletests(raw, method="holm")[1]
    for (a, b, label), p, adj in zip(mds.CONTRASTS, raw, holm, strict=True):
        row = re.search(rf"^\| {re.escape(label)} \| ([+-][0-9.]+) \| .* \| (\S+) \| (\S+) \|$", out, re.M)
        assert row, label
        assert float(row[1]) == pytest.approx(np.mean(accs[a]) - np.mean(accs[b]), abs=1e-4)
        assert float(row[2]) == pytest.approx(p, rel=1e-2) and float(row[3]) == pytest.approx(adj, rel=1e-2)

    mds.report(store.tables(experiment="cnn"), [60], seeds=2)          # equal n across sizes: seeds 0-1 only
    out = capsys.readouterr().out
    assert f"| cnn/adam | {np.mean(accs['cnn/adam'][:2]):.4f} ± {np.std(accs['cnn/adam'][:2], ddof=1):.4f} (2) |" in out


def test_a_size_without_runs_says_so(tmp_path, capsys):
    mds.report(RunStore(tmp_path / "store").tables(experiment="cnn"), [60])
    out = capsys.readouterr().out
    assert "| cnn/bn-adam | no finished runs yet |" in out and "no contrasts yet" in out
