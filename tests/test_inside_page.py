"""The "Inside the models" page and adlapp.anatomy: the tables are the real models' truth, the CNN's spatial walk is
right for every size (checked against PyTorch, micrograd-style), a size that breaks a model is explained, not raised,
and every toggle combination the page offers renders."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from adlapp import anatomy, datacards
from adlapp.config import ACTIVATIONS, UPSAMPLINGS, base_config, variant
from adlapp.models import CourseCNN, build_model, describe

APP = str(ROOT / "app.py")
WALK_28 = [("input", 28), ("conv1 5×5", 24), ("conv2 5×5", 20), ("pool1 2×2", 10), ("conv3 3×3", 8),
           ("pool2 2×2", 4), ("flatten", 512)]


def numel(cfg) -> int:
    return sum(p.numel() for p in build_model(cfg).parameters())


# -- the CNN's walk, by arithmetic ------------------------------------------------------------------------------
def test_walk_of_the_course_size():
    assert anatomy.cnn_walk(28) == WALK_28
    assert anatomy.walk_text(WALK_28) == ("28 →conv1 5×5→ 24 →conv2 5×5→ 20 →pool1 2×2→ 10 →conv3 3×3→ 8 "
                                          "→pool2 2×2→ 4; flatten 4·4·32 = 512 features")


def test_walk_of_32_explains_the_fixed_linear_layer():
    with pytest.raises(anatomy.AnatomyError) as e:
        anatomy.cnn_walk(32)
    assert "with 32×32 inputs the last feature map is 5×5×32 = 800 features" in str(e.value)
    assert "linear layer takes 512 (4×4×32)" in str(e.value) and "only fits 28×28 inputs" in str(e.value)
    assert e.value.walk[-2:] == [("pool2 2×2", 5), ("flatten", 800)]


def test_walk_of_a_size_too_small_for_the_convolutions():
    with pytest.raises(anatomy.AnatomyError) as e:
        anatomy.cnn_walk(12)
    assert "shrunk to 2×2 before conv3 3×3" in str(e.value) and "at least 16×16" in str(e.value)
    assert e.value.walk == [("input", 12), ("conv1 5×5", 8), ("conv2 5×5", 4), ("pool1 2×2", 2)]
    for bad in (0, -3, True, 2.5):
        with pytest.raises(anatomy.AnatomyError):
            anatomy.cnn_walk(bad)


def test_pooling_rounds_down_so_28_to_31_fit():
    assert anatomy.cnn_fitting_sizes() == (28, 29, 30, 31)
    assert anatomy.cnn_walk(31)[-3:] == [("conv3 3×3", 9), ("pool2 2×2", 4), ("flatten", 512)]


def test_walk_agrees_with_pytorch_for_every_small_size():
    """The oracle: the arithmetic walk fits exactly when the real CourseCNN runs, and its sides are PyTorch's."""
    model = CourseCNN().eval()
    for n in range(1, 41):
        try:
            walk = anatomy.cnn_walk(n)
        except anatomy.AnatomyError:
            walk = None
        try:
            rows = describe(model, (3, n, n))
        except RuntimeError:
            rows = None
        assert (walk is None) == (rows is None), n
        if rows is not None:
            sides = [r["output_shape"][-1] for r in rows if r["type"] in ("Conv2d", "MaxPool2d")]
            assert [s for _, s in walk[1:-1]] == sides, n


# -- the tables, from the real models ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cnn/adam", "cnn/bn-adam"])
def test_cnn_layer_table_is_the_real_model(name):
    cfg = variant(name)
    table = anatomy.layer_table(cfg)
    assert list(table.columns) == anatomy.COLUMNS
    row = table.set_index("layer")
    assert row.loc["flatten", "output shape"] == "512"
    assert row.loc["flatten", "what it does"] == "flatten: 32·4·4 = 512 features"
    assert row.loc["fc", "what it does"] == "linear 512→53" and row.loc["fc", "output shape"] == "53"
    assert row.loc["conv1", "what it does"] == "5×5 convolution, 3→64 channels"
    assert row.loc["pool1", "what it does"] == "max-pool 2×2: halves H and W"
    assert int(table["parameters"].sum()) == anatomy.total_parameters(cfg) == numel(cfg) == 92_533
    if cfg.model.batchnorm:    # affine=False: normalises, adds nothing
        assert row.loc["bn2", "what it does"] == "batch-norm without affine terms: normalises, adds no parameters"
        assert row.loc["bn2", "parameters"] == row.loc["bn3", "parameters"] == 0


def test_layer_table_refuses_a_breaking_size_with_words():
    with pytest.raises(anatomy.AnatomyError, match="800 features"):
        anatomy.layer_table(base_config("cnn"), (3, 32, 32))
    with pytest.raises(anatomy.AnatomyError, match="multiple of 2\\^3 = 8"):
        anatomy.layer_table(base_config("unet"), (3, 60, 60))


def test_unet_levels_and_upsampling_parameters():
    cfg = base_config("unet")
    levels = anatomy.unet_levels(cfg).set_index("block")
    assert levels.loc["encoder level 0", "output shape"] == "8×64×64"
    assert levels.loc["bottleneck", "output shape"] == "64×8×8"
    assert levels.loc["decoder level 2: upsample", "output shape"] == "32×16×16"
    assert levels.loc["head", "output shape"] == "1×64×64"
    assert int(levels["parameters"].sum()) == numel(cfg)
    modes = anatomy.upsampling_comparison(cfg).set_index("upsampling")
    t, n = modes.loc["transpose", "total parameters"], modes.loc["nearest", "total parameters"]
    assert (t, n) == (numel(cfg), numel(replace(cfg, model=replace(cfg.model, upsampling="nearest"))))
    assert n - t == 5 * (64 * 32 + 32 * 16 + 16 * 8) and modes.loc["nearest", "vs transposed conv"] == "+11.1 %"
    assert "3×3 convolution" in anatomy.nearest_vs_transpose(cfg) and f"{n - t:,}" in anatomy.nearest_vs_transpose(cfg)


@pytest.mark.parametrize("experiment", ["cnn", "unet"])
def test_variant_parameters_match_the_shipped_data_card(experiment):
    card = datacards.load(experiment, folder=ROOT / "cached_runs" / "datacards")
    table = anatomy.variant_parameters(experiment)
    assert dict(zip(table["registry name"], table["parameters"], strict=True)) == card.parameters


# -- the page ------------------------------------------------------------------------------------------------------
def inside() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/inside.py").run()
    assert not at.exception, at.exception
    return at


def frames(at: AppTest) -> list:
    return [d.value for d in at.dataframe]


def test_page_shows_the_course_cnn(app_env):
    at = inside()
    assert at.title[0].value == "Inside the models"
    layers = next(f for f in frames(at) if "layer" in f.columns)
    assert "flatten: 32·4·4 = 512 features" in set(layers["what it does"])
    assert "linear 512→53" in set(layers["what it does"])
    total = numel(base_config("cnn"))
    assert int(layers["parameters"].sum()) == total
    assert any(f"**{total:,} parameters**" in m.value for m in at.markdown)
    assert any("28 →conv1 5×5→ 24" in m.value and "4·4·32 = 512" in m.value for m in at.markdown)
    assert any("after conv2 and conv3, before the nonlinearity" in m.value for m in at.markdown)
    assert not at.error
    grid = at.get("image")[0].proto.imgs                 # one image list: the first card of every class
    assert len(grid) == 53 and grid[0].caption == "ace of clubs"
    assert all(w.key.startswith("inside_") for kind in ("radio", "toggle", "selectbox", "number_input")
               for w in getattr(at.main, kind))


def test_page_explains_a_size_that_breaks_the_cnn(app_env):
    at = inside()
    at.number_input(key="inside_cnn_size").set_value(32).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "5×5×32 = 800 features" in at.error[0].value and "512" in at.error[0].value
    assert not any("layer" in f.columns for f in frames(at))
    assert any("flatten 5·5·32 = 800 features" in c.value for c in at.caption)
    at.number_input(key="inside_cnn_size").set_value(29).run()      # rounds down to the same 4×4: it fits
    assert not at.exception and not at.error


def test_page_unet_lists_both_upsampling_modes(app_env):
    at = inside()
    at.radio(key="inside_experiment").set_value("unet").run()
    assert not at.exception, at.exception
    modes = next(f for f in frames(at) if "upsampling" in f.columns).set_index("upsampling")
    assert {"transpose", "nearest"} <= set(modes.index)
    assert modes.loc["transpose", "total parameters"] != modes.loc["nearest", "total parameters"]
    assert any("134,265 instead of 120,825" in m.value for m in at.markdown)
    variants = next(f for f in frames(at) if "registry name" in f.columns)
    assert set(variants["parameters"]) == {120_825, 134_265}
    pairs = [[i.caption for i in el.proto.imgs] for el in at.get("image")]
    assert pairs == [["image", "mask"]] * 4
    at.number_input(key="inside_unet_size").set_value(60).run()
    assert not at.exception and "multiple of 2^3 = 8" in at.error[0].value


def test_page_every_toggle_combination(app_env):
    at = inside()
    for bn, act in itertools.product([False, True], ACTIVATIONS):
        at.toggle(key="inside_cnn_bn").set_value(bn)
        at.selectbox(key="inside_cnn_activation").set_value(act).run()
        assert not at.exception and not at.error, (bn, act)
        layers = next(f for f in frames(at) if "layer" in f.columns)
        assert int(layers["parameters"].sum()) == 92_533, (bn, act)
    at.radio(key="inside_experiment").set_value("unet").run()
    for bn, act, up in itertools.product([False, True], ACTIVATIONS, UPSAMPLINGS):
        at.toggle(key="inside_unet_bn").set_value(bn)
        at.selectbox(key="inside_unet_activation").set_value(act)
        at.selectbox(key="inside_unet_upsampling").set_value(up).run()
        assert not at.exception and not at.error, (bn, act, up)
        cfg = base_config("unet")
        cfg = replace(cfg, model=replace(cfg.model, batchnorm=bn, activation=act, upsampling=up))
        assert any(f"**{numel(cfg):,} parameters**" in m.value for m in at.markdown), (bn, act, up)


def test_building_models_leaves_the_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    anatomy.layer_table(base_config("unet"))
    assert torch.equal(torch.rand(3), expected)


def test_page_bn_placement_toggles_update_the_table_and_the_count(app_env):
    """Where BN goes (the report's open question): the layer table and the parameter count follow the toggles."""
    at = inside()
    at.toggle(key="inside_cnn_bn").set_value(True).run()
    at.radio(key="inside_cnn_bn_position").set_value("after")
    at.selectbox(key="inside_cnn_bn_layers").set_value("conv1-3+fc")
    at.toggle(key="inside_cnn_bn_affine").set_value(True).run()
    assert not at.exception and not at.error
    layers = next(f for f in frames(at) if "layer" in f.columns)
    order = list(layers["layer"])
    assert order.index("act2") < order.index("bn2") and "bn1" in order and "bn_fc" in order
    expected = 92_533 + 2 * (64 + 32 + 32 + 512)          # γ and β per normalised channel or feature
    assert int(layers["parameters"].sum()) == expected
    assert any(f"**{expected:,} parameters**" in m.value for m in at.markdown)
    assert "flatten: 32·4·4 = 512 features" in set(layers["what it does"])
