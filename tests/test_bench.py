"""`python -m adlapp bench`: both loops solve the same problem, the output has its promised shape, bad arguments
are refused; and the U-Net computes exactly what its reference formulation does, the guard any speed change to it
must pass. No test here asserts a timing."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adlapp import bench
from adlapp.cli import main
from adlapp.config import EXPERIMENT_INFO, variant
from adlapp.data import load_data
from adlapp.models import UNet, build_model
from adlapp.models.layers import activation_layer

CPU = torch.device("cpu")


def _tiny(name: str, epochs: int = 2):
    """The variant at test size: CNN on 1 card per class; U-Net on 4 images of 32 px, batch 4."""
    cfg = replace(variant(name), epochs=epochs, eval_at=())
    if cfg.experiment == "cnn":
        return replace(cfg, data=replace(cfg.data, train_per_class=1))
    return replace(cfg, batch_size=4, data=replace(cfg.data, n_train=4, image_size=32))


@pytest.mark.parametrize("name", ["cnn/bn-adam", "unet/normal", "unet/nearest-elu"])
def test_both_loops_train_the_same_steps(name):
    """Same seed, data, order and evaluation: the notebook loop ends with the engine's weights and test scores."""
    cfg = _tiny(name)
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    pair = bench.interleaved(cfg, 3, data, CPU, notebook_first=True)
    assert len(pair.notebook_epochs) == len(pair.adlapp_epochs) == cfg.epochs
    assert pair.notebook.tests == pair.adlapp.tests
    assert set(pair.notebook.tests) == ({"acc", "loss"} if cfg.experiment == "cnn" else {"pixel_acc", "f1", "loss"})
    assert pair.notebook.weights.keys() == pair.adlapp.weights.keys()
    assert all(torch.equal(pair.notebook.weights[k], pair.adlapp.weights[k]) for k in pair.notebook.weights)


def test_the_engine_first_order_reaches_the_same_result_and_learns():
    """Which loop runs the first epoch does not matter; and training changed the weights (no shortcut)."""
    cfg = _tiny("unet/normal", epochs=3)
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    first = bench.interleaved(cfg, 0, data, CPU, notebook_first=True)
    second = bench.interleaved(cfg, 0, data, CPU, notebook_first=False)
    assert first.adlapp.tests == second.notebook.tests == second.adlapp.tests
    torch.manual_seed(0)
    untrained = build_model(cfg, in_channels=3).state_dict()
    assert not torch.equal(untrained["head.weight"], second.notebook.weights["head.weight"])


def test_flop_count_matches_the_issue_numbers():
    """torch's FLOP counter: the course CNN costs 137.6 MFLOP per training image and the U-Net 218 (nearest 294)."""
    for name, train_mflop in (("cnn/bn-adam", 137.6), ("unet/normal", 218.0), ("unet/nearest", 294.0)):
        cfg = _tiny(name)                                  # FLOPs per image do not depend on the set's size
        cfg = replace(cfg, batch_size=8, data=replace(cfg.data, image_size=64))
        data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
        train_flops, eval_flops = bench.flops_per_image(cfg, data, CPU)
        assert train_flops / 1e6 == pytest.approx(train_mflop, abs=1.0), name
        assert 0 < eval_flops < train_flops / 2, name


def test_cli_prints_the_report_and_ends_with_the_speedup(capsys):
    code = main(["bench", "--experiment", "unet", "--seeds", "2", "--epochs", "2", "--n-train", "4",
                 "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_notebook=\d+\.\d{3}", lines[-1]), lines[-1]
    assert float(lines[-1].split("=")[1]) > 0
    assert "final test scores identical: yes; final weights identical: yes" in out
    assert re.search(r"218\.\d MFLOP per training image", out)
    assert re.search(r"fp32 matmul rate on cpu: \d+\.\d GFLOP/s", out)
    for loop in ("notebook", "adlapp"):
        summary = next(line for line in lines if line.startswith(loop + " "))
        assert re.search(r"\d+ images/s, \d\.\d{3} s/epoch, \d+\.\d GFLOP/s = \d+ % of matmul, "
                         r"peak memory \d+\.\d MiB, final test pixel_acc 0\.\d{4}, f1 0\.\d{4}", summary), summary
    per_seed = [line.split() for line in lines if re.match(r"\s+[01] (notebook|adlapp) ", line)]
    assert [(row[0], row[1]) for row in per_seed] == [("0", "notebook"), ("0", "adlapp"), ("1", "notebook"),
                                                      ("1", "adlapp")]
    assert per_seed[0][-2:] == per_seed[1][-2:] and per_seed[2][-2:] == per_seed[3][-2:]   # same final scores


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds 0: must be a whole number from 1 to 100"),
    (["--epochs", "1"], "--epochs 1: must be at least 2"),
    (["--threads", "0"], "--threads 0: must be a whole number"),
    (["--experiment", "unet", "--train-per-class", "2"], "--train-per-class: only for --experiment cnn"),
    (["--experiment", "cnn", "--n-train", "2"], "--n-train: only for --experiment unet"),
    (["--experiment", "unet", "--variant", "bn-adam"], "variant='unet/bn-adam': unknown"),
    (["--profile", "-1"], "--profile -1"),
])
def test_bad_arguments_are_refused_with_one_line(capsys, argv, message):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m adlapp bench: error: ") and message in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: --device cuda is valid here")
def test_missing_cuda_is_refused(capsys):
    assert main(["bench", "--device", "cuda"]) == 2
    assert "--device cuda: " in capsys.readouterr().err


def test_argparse_refuses_unknown_choices(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--experiment", "gan"])
    assert stop.value.code == 2


# -- a speed change to the U-Net must keep its numbers -------------------------------------------------------
class _ReferenceDoubleConv(nn.Sequential):
    """adlapp.models.unet.DoubleConv as first written (out-of-place activations): the reference for bit-identity.
    A faster U-Net (an in-place ReLU, a fused op, a cat that writes in place) must give the same outputs,
    gradients and BatchNorm statistics, bit for bit, on CPU, and keep its state_dict keys."""

    def __init__(self, c_in: int, c_out: int, activation: str, batchnorm: bool) -> None:
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers.append(nn.Conv2d(c, c_out, kernel_size=3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(activation_layer(activation))
        super().__init__(*layers)


def _reference_unet(**kw) -> UNet:
    """The same U-Net with every DoubleConv swapped for the reference block (same names, same weights)."""
    model = UNet(**kw)
    for blocks in (model.down, model.merge):
        for i, block in enumerate(blocks):
            convs = [m for m in block if isinstance(m, nn.Conv2d)]
            old = _ReferenceDoubleConv(convs[0].in_channels, convs[0].out_channels, kw.get("activation", "relu"),
                                    kw.get("batchnorm", False))
            old.load_state_dict(block.state_dict())
            blocks[i] = old
    return model


@pytest.mark.parametrize("kw", [{}, {"upsampling": "nearest"}, {"activation": "elu"}, {"batchnorm": True},
                                {"upsampling": "bilinear", "batchnorm": True, "depth": 2}])
def test_unet_outputs_and_gradients_are_bit_identical_to_the_reference(kw):
    torch.manual_seed(0)
    now = UNet(**kw)
    before = _reference_unet(**kw)
    before.load_state_dict(now.state_dict())
    assert list(before.state_dict()) == list(now.state_dict())        # stored weights keep loading
    x = torch.randn(4, 3, 32, 32)
    y = (torch.rand(4, 1, 32, 32) > 0.8).float()
    outputs = []
    for model in (before, now):
        out = model(x)
        F.binary_cross_entropy_with_logits(out, y).backward()
        outputs.append(out.detach())
    assert torch.equal(outputs[0], outputs[1])
    for (name, p), q in zip(before.named_parameters(), now.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name
    if kw.get("batchnorm"):
        for (name, b), c in zip(before.named_buffers(), now.buffers(), strict=True):
            assert torch.equal(b, c), name
