"""adlapp.stacked: seeds trained as one vmapped model give what adlapp.train.train gives each seed alone.

Tolerance: STACKED_RTOL 1e-4 / STACKED_ATOL 1e-5 on every metric (train_loss, val_*, test rows, best_* rows) and,
for SGD, on every weight and BatchNorm statistic. Bit-identity is not expected: vmap's batched kernels (grouped
convolutions, batched matmuls) add up in another order. Measured on CPU at these tiny sizes (seeds 0-2):
  cnn/sgd, cnn/bn-sgd: metrics within 1e-6, weights within 9e-6 (rtol 1e-4 holds);
  unet/normal, unet with BN: metrics within 1.2e-7, weights within 2.5e-4 absolute (Adam, lr 1e-3: elements with
  near-zero gradients take up to about one lr-sized step either way, see below) -> Adam weights: atol = lr;
  cnn/bn-adam: train_loss within 7.2e-7, but val/test losses differ by up to 4.7e-3 (on losses of 4 to 10:
  relative <= 6.4e-4) and one test best_acc by one image. That is the floor of the config itself, not of stacking:
  the conv biases that feed a BatchNorm have a gradient that is zero in exact arithmetic, so what is computed is
  rounding noise, and Adam (g / sqrt(v)) turns noise into steps of up to lr = 0.01 (measured bias gap 0.03 after
  2 steps, running_mean gap 1.8e-3). adlapp.train.train itself, same seed, 1 thread vs 2, differs just as much
  (val_loss 5.3e-3, conv2.bias 0.027). So for BN + Adam the check is: train_loss at 1e-4, val/test losses at
  rtol 2e-3, accuracies within one image, the other weights within atol lr (measured 5.2e-5: conv3.weight), as
  for the U-Net.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import pytest
import torch
from conftest import tiny

from adlapp import bench
from adlapp.cli import main
from adlapp.stacked import STACKED_ATOL, STACKED_RTOL, train_stacked
from adlapp.train import train

SEEDS = (0, 1, 2)
CPU = torch.device("cpu")


def _unet_bn():
    cfg = tiny("unet/normal")
    return replace(cfg, model=replace(cfg.model, batchnorm=True))


def _diverging():
    """SGD at lr 20: every seed's loss overflows (separately: at epoch 4)."""
    cfg = tiny("cnn/sgd")
    return replace(cfg, epochs=5, optim=replace(cfg.optim, lr=20.0))


CONFIGS = {"cnn/sgd": lambda: tiny("cnn/sgd"), "cnn/bn-sgd": lambda: tiny("cnn/bn-sgd"),
           "cnn/bn-adam": lambda: tiny("cnn/bn-adam"), "unet/normal": lambda: tiny("unet/normal"),
           "unet/bn": _unet_bn, "diverging": _diverging}


@lru_cache(maxsize=None)
def _runs(name: str):
    """(cfg, separate results, stacked results, weights[(way, seed, epoch)]) for CONFIGS[name], seeds 0-2."""
    cfg = CONFIGS[name]()
    weights = {}

    def keep(way, seed, epoch, state):
        weights[(way, seed, epoch)] = {k: v.detach().clone() for k, v in state.items()}

    separate = [train(cfg, seed, device="cpu", on_weights=lambda e, st, s=seed: keep("separate", s, e, st))
                for seed in SEEDS]
    stacked = train_stacked(cfg, SEEDS, device="cpu", on_weights=lambda s, e, st: keep("stacked", s, e, st))
    return cfg, separate, stacked, weights


def _close(a: float, b: float, rtol: float = STACKED_RTOL, atol: float = STACKED_ATOL) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol + rtol * abs(b)


def _check_metrics(name: str, loose: bool = False) -> None:
    cfg, separate, stacked, _ = _runs(name)
    assert [r.seed for r in stacked] == list(SEEDS)
    for one, many in zip(separate, stacked, strict=True):
        assert (many.status, many.diverged_epoch, many.epochs_done) == (one.status, one.diverged_epoch, one.epochs_done)
        assert len(many.history) == len(one.history)
        for h1, h2 in zip(one.history, many.history, strict=True):
            assert h1.keys() == h2.keys()
            for key in h1:
                if key == "seconds":
                    continue
                if loose and key == "val_loss":
                    assert _close(h1[key], h2[key], rtol=2e-3), (one.seed, h1["epoch"], key, h1[key], h2[key])
                elif loose and key == "val_acc":
                    assert abs(h1[key] - h2[key]) <= 1.01 / 265, (one.seed, key)   # one validation image
                else:
                    assert _close(h1[key], h2[key]), (one.seed, h1["epoch"], key, h1[key], h2[key])
        if one.status == "done":
            assert set(one.tests) == set(cfg.test_epochs)
        assert one.tests.keys() == many.tests.keys()
        for epoch, rows in one.tests.items():
            assert rows.keys() == many.tests[epoch].keys()
            for key, value in rows.items():
                other = many.tests[epoch][key]
                if loose and key.endswith("loss"):
                    assert _close(value, other, rtol=2e-3), (one.seed, epoch, key, value, other)
                elif loose and key.endswith("acc"):
                    assert abs(value - other) <= 1.01 / 265, (one.seed, epoch, key, value, other)
                else:
                    assert _close(value, other), (one.seed, epoch, key, value, other)


def _check_weights(name: str, atol: float = STACKED_ATOL, skip: tuple[str, ...] = ()) -> None:
    cfg, separate, _, weights = _runs(name)
    for one in separate:
        a, b = weights[("separate", one.seed, cfg.epochs)], weights[("stacked", one.seed, cfg.epochs)]
        assert a.keys() == b.keys()
        for key in a:
            if key not in skip:
                assert torch.allclose(a[key].double(), b[key].double(), rtol=STACKED_RTOL, atol=atol), (one.seed, key)


@pytest.mark.parametrize("name", ["cnn/sgd", "cnn/bn-sgd", "unet/normal", "unet/bn"])
def test_stacked_training_gives_the_separate_runs_metrics_and_weights(name):
    _check_metrics(name)
    cfg = CONFIGS[name]()
    _check_weights(name, atol=cfg.optim.lr if cfg.optim.name == "adam" else STACKED_ATOL)


def test_bn_adam_agrees_as_closely_as_the_config_allows():
    """See the module docstring: BN + Adam turns rounding noise in the pre-BN conv biases into lr-sized steps."""
    _check_metrics("cnn/bn-adam", loose=True)
    cfg, separate, stacked, weights = _runs("cnn/bn-adam")
    for one, many in zip(separate, stacked, strict=True):
        for h1, h2 in zip(one.history, many.history, strict=True):
            assert _close(h1["train_loss"], h2["train_loss"])
    pre_bn_biases = ("conv2.bias", "conv3.bias")
    _check_weights("cnn/bn-adam", atol=cfg.optim.lr, skip=(*pre_bn_biases, "bn2.running_mean", "bn3.running_mean"))
    steps = cfg.epochs * math.ceil(53 / cfg.batch_size)
    for seed in SEEDS:
        a, b = weights[("separate", seed, cfg.epochs)], weights[("stacked", seed, cfg.epochs)]
        for key in pre_bn_biases:
            assert (a[key] - b[key]).abs().max() <= 2 * cfg.optim.lr * steps
        for key in ("bn2.running_mean", "bn3.running_mean"):
            assert torch.allclose(a[key], b[key], atol=1e-2)


def test_batchnorm_running_statistics_are_per_seed():
    """Each seed's running mean/var evolve from its own batches: they differ between seeds and match that seed's
    separate run (and evaluation used them: the val metrics above match)."""
    cfg, _, _, weights = _runs("cnn/bn-sgd")
    _check_metrics("cnn/bn-sgd")
    for key in ("bn2.running_mean", "bn2.running_var", "bn3.running_mean", "bn3.running_var"):
        stacked = [weights[("stacked", s, cfg.epochs)][key] for s in SEEDS]
        assert not torch.allclose(stacked[0], stacked[1]) and not torch.allclose(stacked[1], stacked[2]), key
        for seed, value in zip(SEEDS, stacked, strict=True):
            assert torch.allclose(value, weights[("separate", seed, cfg.epochs)][key], rtol=STACKED_RTOL,
                                  atol=STACKED_ATOL), (seed, key)
        assert all(int(weights[("stacked", s, cfg.epochs)][key.rsplit(".", 1)[0] + ".num_batches_tracked"])
                   == cfg.epochs for s in SEEDS)


def test_a_diverging_seed_is_reported_at_the_same_epoch():
    cfg, separate, stacked, _ = _runs("diverging")
    assert all(r.status == "diverged" for r in separate)
    _check_metrics("diverging")
    for one, many in zip(separate, stacked, strict=True):
        assert many.diverged_epoch == one.diverged_epoch == many.epochs_done
        assert math.isnan(many.history[-1]["train_loss"]) and set(many.history[-1]) == {"epoch", "train_loss",
                                                                                          "seconds"}
        assert many.diverged_epoch not in many.tests


def test_a_diverged_seed_is_dropped_and_the_others_go_on(monkeypatch):
    """Seed 1 alone gets broken weights after its first epoch (NaN in one conv weight): it is reported diverged at
    epoch 2 and dropped from the stack; seeds 0 and 2 train on, exactly as they do without it."""
    import adlapp.stacked as stacked_module

    cfg = replace(tiny("cnn/bn-sgd"), epochs=3)
    base = train_stacked(cfg, (0, 2), device="cpu")
    real_stack = stacked_module._Stack
    calls = {"n": 0}

    class BreakSeed1(real_stack):
        def step(self, x, y):
            calls["n"] += 1
            if calls["n"] == 2:                            # epoch 2's first step (one batch an epoch)
                with torch.no_grad():
                    self.params["conv1.weight"][1, 0, 0, 0, 0] = math.nan
            return super().step(x, y)

    monkeypatch.setattr(stacked_module, "_Stack", BreakSeed1)
    runs = train_stacked(cfg, (0, 1, 2), device="cpu")
    assert (runs[1].status, runs[1].diverged_epoch, len(runs[1].history)) == ("diverged", 2, 2)
    assert [r.status for r in (runs[0], runs[2])] == ["done", "done"]
    for got, want in zip((runs[0], runs[2]), base, strict=True):
        assert got.tests.keys() == want.tests.keys()
        for h1, h2 in zip(got.history, want.history, strict=True):
            assert all(_close(h1[k], h2[k]) for k in h1 if k != "seconds")
        for epoch, rows in want.tests.items():
            assert all(_close(rows[k], got.tests[epoch][k]) for k in rows)


def test_bad_seed_lists_are_refused():
    with pytest.raises(ValueError, match="no seeds"):
        train_stacked(tiny("cnn/sgd"), [], device="cpu")
    with pytest.raises(ValueError, match="repeat"):
        train_stacked(tiny("cnn/sgd"), [1, 1], device="cpu")


def test_bench_stacked_is_a_cuda_feature():
    cfg = replace(tiny("unet/normal"), eval_at=())
    lines = bench.stacked_lines(cfg, [0, 1], CPU)
    assert lines == ["stacked: skipped: stacked training (--stacked) is a CUDA feature; on cpu it is slower than "
                     "separate runs"]
    lines = bench.stacked_lines(cfg, [0, 1], CPU, cuda_only=False)     # what CUDA prints, here on CPU
    assert len(lines) == 2 and "speedup_stacked_vs_engine=" in lines[0]
    assert lines[1].endswith("(GPU kernels need not be deterministic, and BN + Adam amplifies rounding: see "
                             "adlapp.stacked)") and "within rtol 0.0001 / atol 1e-05: yes" in lines[1]


def test_bench_accepts_the_stacked_flag(capsys):
    assert main(["bench", "--stacked", "--seeds", "0"]) == 2           # parsed; refused for the seeds only
    assert "--seeds 0: must be a whole number" in capsys.readouterr().err
