"""adlapp.activations on the real course models: filter and feature-map shapes, hooks removed afterwards, and conv1's
feature maps equal to an independent recomputation with torch.nn.functional."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adlapp import activations
from adlapp.models import CourseCNN, UNet


@pytest.fixture
def cnn() -> CourseCNN:
    torch.manual_seed(0)
    return CourseCNN(num_classes=53)


def hooks_left(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_first_layer_filters_are_64_rgb_5x5_tiles_each_scaled_to_its_own_range(cnn):
    filters = activations.first_layer_filters(cnn)
    assert filters.shape == (64, 5, 5, 3)
    assert np.allclose(filters.min(axis=(1, 2, 3)), 0) and np.allclose(filters.max(axis=(1, 2, 3)), 1)
    w = cnn.conv1.weight.detach()[7].permute(1, 2, 0).numpy()            # filter 7, channels last
    assert np.allclose(filters[7], (w - w.min()) / (w.max() - w.min()), atol=1e-6)
    tiles = activations.filter_tiles(filters, scale=12)
    assert len(tiles) == 64 and tiles[0].shape == (60, 60, 3) and tiles[0].dtype == np.uint8


def test_cnn_feature_maps_have_the_course_shapes_and_hooks_are_removed(cnn):
    image = torch.randn(3, 28, 28)
    cnn.train()
    maps = activations.feature_maps(cnn, image)
    assert [m.layer for m in maps] == ["act1", "act2", "act3"]
    assert [m.maps.shape for m in maps] == [(64, 24, 24), (32, 20, 20), (32, 8, 8)]
    assert hooks_left(cnn) == 0 and cnn.training                   # left as it was: no hooks, train mode back
    with torch.no_grad():                                           # conv1 -> ELU recomputed without the model
        want = F.elu(F.conv2d(image[None], cnn.conv1.weight, cnn.conv1.bias))[0].numpy()
    np.testing.assert_allclose(maps[0].maps, want, rtol=1e-5, atol=1e-6)


def test_hooks_are_removed_even_when_the_forward_pass_fails(cnn):
    with pytest.raises(RuntimeError):
        activations.capture(cnn, torch.randn(1, 3, 12, 12), activations.CNN_LAYERS)   # too small for conv3
    assert hooks_left(cnn) == 0


def test_unet_feature_maps_are_the_first_encoder_and_last_decoder_blocks():
    torch.manual_seed(0)
    unet = UNet(in_channels=3, base_width=8, depth=3)
    assert activations.feature_layers(unet) == ("down.0", "merge.2")
    maps = activations.feature_maps(unet, torch.randn(3, 32, 32))
    assert [m.maps.shape for m in maps] == [(8, 32, 32), (8, 32, 32)]
    assert hooks_left(unet) == 0
    grid = activations.feature_grid(maps[0].maps, columns=4, scale=2)
    assert grid.shape == (2 * 64 + 1, 4 * 64 + 3) and grid.dtype == np.uint8


def test_activation_histograms_count_every_value_of_the_batch(cnn):
    x = torch.randn(5, 3, 28, 28)
    hist = activations.activation_histograms(cnn, x)
    per_layer = hist.groupby("layer", sort=False)
    assert list(per_layer.groups) == [activations.layer_title(n) for n in activations.CNN_LAYERS]
    assert per_layer["count"].sum().tolist() == [5 * 64 * 24 * 24, 5 * 32 * 20 * 20, 5 * 32 * 8 * 8]
    assert per_layer["values"].first().tolist() == per_layer["count"].sum().tolist()
    assert (hist["images"] == 5).all() and (per_layer.size() == activations.HISTOGRAM_BINS).all()
    spec = activations.histogram_chart(hist).to_dict()
    assert spec["spec"]["mark"]["type"] == "bar" and spec["facet"]["column"]["field"] == "layer"
