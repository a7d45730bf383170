"""Every registry variant builds, runs forward and backward with the right shapes and finite values."""
import itertools

import pytest
import torch

from adlapp.config import ACTIVATIONS, UPSAMPLINGS, VARIANTS, variant
from adlapp.models import CourseCNN, UNet, build_model, describe


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_registry_variant_forward_backward(name):
    cfg = variant(name)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=53)
    x = torch.randn(4, 3, 28, 28) if cfg.experiment == "cnn" else torch.randn(2, 3, 32, 32)
    out = model(x)
    expected = (4, 53) if cfg.experiment == "cnn" else (2, 1, 32, 32)
    assert out.shape == expected
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("batchnorm,activation,upsampling",
                         list(itertools.product([False, True], ACTIVATIONS, UPSAMPLINGS)))
def test_every_unet_toggle_combination(batchnorm, activation, upsampling):
    model = UNet(base_width=4, depth=2, upsampling=upsampling, activation=activation, batchnorm=batchnorm)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("batchnorm,activation", list(itertools.product([False, True], ACTIVATIONS)))
def test_every_cnn_toggle_combination(batchnorm, activation):
    assert CourseCNN(batchnorm=batchnorm, activation=activation)(torch.randn(2, 3, 28, 28)).shape == (2, 53)


def test_describe_shows_the_512_walk():
    rows = describe(CourseCNN(batchnorm=True), (3, 28, 28))
    sides = [r["output_shape"][-1] for r in rows if r["type"] in ("Conv2d", "MaxPool2d")]
    assert sides == [24, 20, 10, 8, 4]
    assert [r for r in rows if r["type"] == "Flatten"][0]["output_shape"] == (512,)
    fc = [r for r in rows if r["type"] == "Linear"][0]
    assert fc["params"] == 512 * 53 + 53
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in CourseCNN(batchnorm=True).parameters())


def test_batchnorm_is_affine_free_and_before_activation():
    model = CourseCNN(batchnorm=True)
    names = [n for n, _ in model.named_children()]
    assert names.index("bn2") == names.index("conv2") + 1 and names.index("act2") == names.index("bn2") + 1
    assert model.bn2.affine is False and model.bn3.affine is False
    assert isinstance(CourseCNN(batchnorm=False).bn2, torch.nn.Identity)


def test_unet_upsampling_toggle_changes_the_layers():
    normal = build_model(variant("unet/normal"))
    nearest = build_model(variant("unet/nearest"))
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in normal.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in nearest.modules())
    assert any(isinstance(m, torch.nn.Upsample) and m.mode == "nearest" for m in nearest.modules())
    elu = build_model(variant("unet/elu"))
    assert any(isinstance(m, torch.nn.ELU) for m in elu.modules())
    assert not any(isinstance(m, torch.nn.ELU) for m in normal.modules())
