"""The training loop reads nothing back to the host per batch, yet gives exactly the numbers of a plain loop.

`plain_run` below is written independently of adlapp.train, the way a notebook would: one `loss.item()` per
batch, a stop at the first non-finite batch loss, evaluation in batches of 256 summing `loss.item() * len`.
The engine keeps its sums on the device and reads them once per epoch and split; on CPU every number must be
equal (==, not approximately), and divergence must be reported at the same epoch.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny

from adlapp import train as engine
from adlapp.config import EXPERIMENT_INFO
from adlapp.data import load_data
from adlapp.models import build_model


def plain_scores(cfg, model, x, y, batch: int = 256) -> dict[str, float]:
    model.eval()
    total, correct, tp, fp, fn = 0.0, 0, 0, 0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits, yb = model(x[i:i + batch]), y[i:i + batch]
            if cfg.experiment == "cnn":
                total += F.cross_entropy(logits, yb).item() * len(yb)
                correct += int((logits.argmax(1) == yb).sum().item())
            else:
                total += F.binary_cross_entropy_with_logits(logits, yb).item() * len(yb)
                pred, truth = logits > 0, yb > 0.5
                correct += int((pred == truth).sum().item())
                tp += int((pred & truth).sum().item())
                fp += int((pred & ~truth).sum().item())
                fn += int((~pred & truth).sum().item())
    model.train()
    if cfg.experiment == "cnn":
        return {"loss": total / len(x), "acc": correct / len(x)}
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {"loss": total / len(x), "pixel_acc": correct / y.numel(), "f1": f1}


def plain_run(cfg, seed: int):
    """(history, tests, diverged_epoch): per-epoch train/val numbers and test scores (no best_* rows)."""
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    torch.manual_seed(seed)
    model = (build_model(cfg, num_classes=data.num_classes) if cfg.experiment == "cnn"
             else build_model(cfg, in_channels=data.train_x.shape[1]))
    o = cfg.optim
    optimizer = (torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay) if o.name == "adam"
                 else torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay))
    order_rng = torch.Generator().manual_seed(seed)
    criterion = F.cross_entropy if cfg.experiment == "cnn" else F.binary_cross_entropy_with_logits
    x, y = data.train_x, data.train_y
    history, tests = [], {}
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(x), generator=order_rng)
        running, seen = 0.0, 0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = criterion(model(x[idx]), y[idx])
            if not math.isfinite(loss.item()):
                history.append({"epoch": epoch, "train_loss": math.nan})
                return history, tests, epoch
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(idx)
            seen += len(idx)
        val = plain_scores(cfg, model, data.val_x, data.val_y)
        history.append({"epoch": epoch, "train_loss": running / seen, **{"val_" + k: v for k, v in val.items()}})
        if epoch in cfg.test_epochs:
            tests[epoch] = plain_scores(cfg, model, data.test_x, data.test_y)
    return history, tests, None


def engine_numbers(result):
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in result.history]
    tests = {e: {k: v for k, v in row.items() if not k.startswith("best_")} for e, row in result.tests.items()}
    return history, tests, result.diverged_epoch


def same(a, b) -> bool:
    """== that also takes NaN for NaN (a diverged epoch's train_loss)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(p, q) for p, q in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("cfg", [
    replace(tiny("cnn/bn-adam"), epochs=3, eval_at=(1,)),          # validation and test splits of 265: 2 batches
    tiny("cnn/sgd"),
    tiny("unet/normal"),                                            # test epochs 1, 2, 3
    tiny("unet/nearest-elu"),
], ids=["cnn-bn-adam", "cnn-sgd", "unet-normal", "unet-nearest-elu"])
def test_the_engine_gives_exactly_the_numbers_of_a_plain_per_batch_loop(cfg):
    expected = plain_run(cfg, 0)
    got = engine_numbers(engine.train(cfg, 0, device="cpu"))
    assert got[2] is None and got == expected


@pytest.mark.parametrize("name", ["cnn/sgd", "unet/normal"])
def test_divergence_is_reported_at_the_same_epoch_as_a_per_batch_check(name):
    cfg = tiny(name)
    cfg = replace(cfg, epochs=4, optim=replace(cfg.optim, lr=1e6))
    history, tests, diverged = plain_run(cfg, 0)
    assert diverged is not None                                    # the config really diverges
    result = engine.train(cfg, 0, device="cpu")
    assert result.status == "diverged" and result.epochs_done == diverged
    assert same(engine_numbers(result), (history, tests, diverged))   # rows up to it equal, none after


@pytest.fixture
def host_reads(monkeypatch):
    """Counts reads of a tensor's value into Python made by adlapp.train's own code (each one waits for a GPU).
    Calls from elsewhere (e.g. Adam reading its CPU step counter) are not the loop's and are not counted."""
    calls = []

    def counting(method):
        def wrapper(self, *args, **kwargs):
            if sys._getframe(1).f_globals.get("__name__") == engine.__name__:
                calls.append(method.__name__)
            return method(self, *args, **kwargs)
        return wrapper

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    return calls


def test_one_host_read_per_epoch_and_per_split_whatever_the_batch_count(host_reads):
    cfg = tiny("cnn/sgd")                                          # 53 training images
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    reads = {}
    for batch_size in (4, 53):                                     # 14 batches, then 1
        small = replace(cfg, batch_size=batch_size)
        model, optimizer, shuffle = engine._build(small, 0, torch.device("cpu"), data)
        order = torch.randperm(len(data.train_x), generator=shuffle)
        host_reads.clear()
        loss = engine._train_one_epoch(small, model, optimizer, data.train_x, data.train_y, order)
        assert math.isfinite(loss)
        reads[("train", batch_size)] = list(host_reads)
        host_reads.clear()
        engine.evaluate(model, small, data.val_x, data.val_y, batch_size=batch_size)
        reads[("eval", batch_size)] = list(host_reads)
    assert reads[("train", 4)] == reads[("train", 53)] == ["item"]
    assert reads[("eval", 4)] == reads[("eval", 53)] == ["tolist"]


def test_evaluation_batches_256_on_cpu_and_large_ones_on_an_accelerator():
    # On CPU the float sum of batch losses depends on the batching, and recorded studies were made at 256.
    assert engine.eval_batch_size(torch.empty(265, 3, 28, 28)) == 256
    # "meta" stands in for an accelerator (no GPU needed): whole course splits, fewer large images a batch.
    assert engine.eval_batch_size(torch.empty(265, 3, 28, 28, device="meta")) == 1024
    assert engine.eval_batch_size(torch.empty(64, 1, 64, 64, device="meta")) == 1024
    assert engine.eval_batch_size(torch.empty(64, 3, 512, 512, device="meta")) == 21
    cfg = tiny("cnn/adam")
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=data.num_classes)
    modes = []
    model.register_forward_hook(lambda *_: modes.append(torch.is_inference_mode_enabled()))
    assert engine.evaluate(model, cfg, data.val_x, data.val_y) == plain_scores(cfg, model, data.val_x, data.val_y)
    assert modes[:2] == [True, True]                   # 265 images: 2 batches, no autograd bookkeeping in either
    assert model.training                              # left in training mode, as it was
