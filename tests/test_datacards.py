"""Data cards: the shipped files equal what the generators give now, the baselines are right by an independent
count and by the trainer's own `evaluate`, and the reader is torch-free and survives broken files."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from adlapp import datacards
from adlapp.config import EXPERIMENT_INFO, EXPERIMENTS, VARIANTS, DataConfig, base_config, config_to_dict
from adlapp.data import load_data
from adlapp.data.describe import (
    CAPTION,
    CARD_TILE,
    GUTTER,
    card_json,
    classification_baselines,
    datacard,
    describe,
    parameter_counts,
    sample_strip,
    seg_tile,
    segmentation_baselines,
)
from adlapp.models import build_model
from adlapp.train import evaluate

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "cached_runs" / "datacards"


def _data(experiment: str):
    return load_data(base_config(experiment).data, EXPERIMENT_INFO[experiment].task)


@pytest.fixture(scope="module", params=EXPERIMENTS)
def card(request) -> datacards.DataCard:
    loaded = datacards.load(request.param, SHIPPED, strict=True)
    assert loaded is not None, f"no shipped card for {request.param}: run scripts/make_datacards.py"
    return loaded


# -- the shipped files are what the generators give now ------------------------------------------------------
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_shipped_json_is_what_describe_computes_now(experiment):
    fresh = datacard(experiment)
    shipped = (SHIPPED / f"{experiment}.json").read_text(encoding="utf-8")
    assert shipped == card_json(fresh), "cached_runs/datacards is stale: run python scripts/make_datacards.py"
    parsed = json.loads(shipped)
    assert parsed["config"] == config_to_dict(base_config(experiment))["data"]
    described = describe(base_config(experiment).data, EXPERIMENT_INFO[experiment].task)
    for key in ("splits", "image_shape", "config_hash", "generated", "task"):
        assert parsed[key] == described[key], key


def test_card_fields(card):
    cfg = base_config(card.experiment)
    data = _data(card.experiment)
    assert card.generated and card.name == cfg.data.name
    assert card.source.startswith(f"generated in code by adlapp/data/{cfg.data.name}.py: ")
    assert card.task == EXPERIMENT_INFO[card.experiment].task
    assert card.image_shape == tuple(data.train_x.shape[1:])
    assert card.splits == {"train": len(data.train_x), "val": len(data.val_x), "test": len(data.test_x)}
    assert card.sample_png is not None


# -- baselines, recomputed independently ---------------------------------------------------------------------
def test_classification_baselines_by_hand():
    train_y = np.array([0, 1, 1, 2, 2])                      # tie between 1 and 2: the lower index wins
    got = classification_baselines(train_y, np.array([1, 1, 2, 0]), num_classes=4)
    assert got == {"chance": 0.25, "majority": 0.5}


def test_segmentation_baselines_by_hand():
    y = np.zeros((2, 1, 2, 2), np.float32)
    y[0, 0, 0, 0] = 1.0                                      # 1 foreground pixel of 8
    assert segmentation_baselines(y) == {"pixel_acc": 7 / 8, "f1": 0.0}
    assert segmentation_baselines(np.zeros((1, 1, 2, 2))) == {"pixel_acc": 1.0, "f1": 1.0}   # evaluate's convention


def test_cnn_baselines_match_a_numpy_count():
    card = datacards.load("cnn", SHIPPED, strict=True)
    data = _data("cnn")
    train_y = data.train_y.numpy()
    counts = np.bincount(train_y, minlength=data.num_classes)
    majority = int(np.flatnonzero(counts == counts.max())[0])
    assert card.majority_class == majority and card.num_classes == data.num_classes == 53
    assert card.chance == pytest.approx(1 / 53)
    for split, y in (("val", data.val_y.numpy()), ("test", data.test_y.numpy())):
        assert card.baseline(f"{split}_acc") == pytest.approx(float(np.mean(y == majority)), abs=1e-6)
        assert card.baseline("acc", split=split) == card.baseline(f"{split}_acc")
        assert card.class_counts[split] == np.bincount(y, minlength=53).tolist()
    assert card.baseline("test_acc_best") == card.baseline("test_acc")
    assert card.baseline("test_f1") is None and card.baseline("test_loss") is None


def test_unet_baselines_match_a_numpy_count():
    card = datacards.load("unet", SHIPPED, strict=True)
    data = _data("unet")
    for split, y in (("train", data.train_y), ("val", data.val_y), ("test", data.test_y)):
        fg = y.numpy() > 0.5
        assert card.foreground_fraction[split] == pytest.approx(fg.mean(), abs=1e-6)
        if split == "train":
            continue
        assert fg.any()                                      # so an all-background F1 is 0
        assert card.baseline(f"{split}_pixel_acc") == pytest.approx(1 - fg.mean(), abs=1e-6)
        assert card.baseline(f"{split}_f1") == 0.0
    assert card.chance is None and card.baseline("test_acc") is None
    assert card.baseline("test_pixel_acc_best") == card.baseline("test_pixel_acc")


class _Constant(nn.Module):
    """Predicts the same thing for every input: class `label` (classification) or background (segmentation)."""

    def __init__(self, num_classes: int | None = None, label: int = 0) -> None:
        super().__init__()
        self.num_classes, self.label = num_classes, label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_classes is None:
            return torch.full((len(x), 1, *x.shape[2:]), -10.0)                 # (B, 1, H, W) logits < 0
        return nn.functional.one_hot(torch.full((len(x),), self.label), self.num_classes).float()


@pytest.mark.parametrize("split", ["val", "test"])
def test_baselines_equal_the_trainers_evaluate_of_a_constant_model(split):
    cnn, unet = datacards.load("cnn", SHIPPED, strict=True), datacards.load("unet", SHIPPED, strict=True)
    d = _data("cnn")
    x, y = getattr(d, f"{split}_x"), getattr(d, f"{split}_y")
    scores = evaluate(_Constant(d.num_classes, cnn.majority_class), base_config("cnn"), x, y)
    assert cnn.baseline(f"{split}_acc") == pytest.approx(scores["acc"], abs=1e-6)
    d = _data("unet")
    x, y = getattr(d, f"{split}_x"), getattr(d, f"{split}_y")
    scores = evaluate(_Constant(), base_config("unet"), x, y)
    assert unet.baseline(f"{split}_pixel_acc") == pytest.approx(scores["pixel_acc"], abs=1e-6)
    assert unet.baseline(f"{split}_f1") == scores["f1"]


# -- parameter counts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_counts_match_the_real_models(name):
    cfg = VARIANTS[name]()
    data = _data(cfg.experiment)
    kwargs = ({"num_classes": data.num_classes} if cfg.experiment == "cnn"
              else {"in_channels": data.train_x.shape[1]})
    model = build_model(cfg, **kwargs)
    card = datacards.load(cfg.experiment, SHIPPED, strict=True)
    assert card.parameters[name] == sum(p.numel() for p in model.parameters())


def test_parameter_counts_cover_each_experiments_variants_and_upsampling_changes_them():
    for experiment in EXPERIMENTS:
        assert sorted(parameter_counts(experiment)) == sorted(v for v in VARIANTS if v.startswith(f"{experiment}/"))
    unet = datacards.load("unet", SHIPPED, strict=True).parameters
    assert unet["unet/normal"] != unet["unet/nearest"]       # a transposed 2x2 conv vs resize + 3x3 conv
    assert unet["unet/normal"] == unet["unet/elu"]           # an activation has no parameters


# -- the reader ----------------------------------------------------------------------------------------------
def test_reader_does_not_import_torch():
    code = ("import sys; import adlapp.datacards as d; c = d.load('cnn'); assert c is not None; "
            "c.summary_line(); assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={k: v for k, v in os.environ.items() if k != "ADLAPP_CACHED_RUNS"})
    assert out.stdout.strip() == "ok", out.stderr


def test_summary_lines():
    cnn, unet = datacards.load("cnn", SHIPPED), datacards.load("unet", SHIPPED)
    assert cnn.summary_line() == ("Data: 53 classes of generated 28×28 cards (1,060 train / 265 val / 265 test), "
                                  "made in code — not the public card set the course report used.")
    fg = 100 * unet.foreground_fraction["train"]
    assert unet.summary_line() == ("Data: generated 64×64 vessel images with masks (48 train / 16 val / 16 test; "
                                   f"{fg:.1f}% foreground pixels in train), made in code — not real fundus "
                                   "photographs.")


def test_matches_compares_the_data_config():
    card = datacards.load("cnn", SHIPPED)
    cfg = base_config("cnn")
    assert card.matches(config_to_dict(cfg)["data"]) and card.matches(config_to_dict(cfg)) and card.matches(cfg.data)
    assert not card.matches(config_to_dict(cfg)["data"] | {"train_per_class": 5})
    assert not card.matches(DataConfig(name="vessels")) and not card.matches("cards") and not card.matches(None)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sample_strip_decodes_with_the_documented_layout(experiment):
    png = (SHIPPED / f"{experiment}.png").read_bytes()
    assert len(png) < 60_000
    img = Image.open(io.BytesIO(png))
    img.load()
    cfg = base_config(experiment)
    if experiment == "cnn":
        n = 8
        assert img.size == (GUTTER + n * (CARD_TILE + GUTTER), GUTTER + CARD_TILE + CAPTION)
    else:
        pairs, side = 4, seg_tile(cfg.data.image_size)
        assert side == 128
        assert img.size == (GUTTER + pairs * (2 * side + 3 * GUTTER), GUTTER + side + CAPTION)
    assert datacards.load(experiment, SHIPPED).sample_png == png


def test_sample_strip_undoes_the_standardisation():
    data = _data("cnn")
    img = Image.open(io.BytesIO(sample_strip(base_config("cnn").data, "classification", n=1)))
    assert img.mode == "RGB"                                   # small enough to keep full colour
    tile = np.asarray(img)[GUTTER:GUTTER + CARD_TILE:3, GUTTER:GUTTER + CARD_TILE:3].astype(float)   # (28, 28, 3)
    raw = (data.train_x[0].numpy() * np.reshape(data.std, (3, 1, 1)) + np.reshape(data.mean, (3, 1, 1)))
    expected = np.clip(raw, 0, 1).transpose(1, 2, 0) * 255
    assert np.abs(tile - expected).max() <= 0.51               # only the rounding to 8 bits


def test_regenerating_gives_identical_bytes(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_datacards
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    first = {p.name: p.read_bytes() for p in make_datacards.write_cards(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in make_datacards.write_cards(tmp_path / "b")}
    assert first == second and sorted(first) == ["cnn.json", "cnn.png", "unet.json", "unet.png"]
    for name in ("cnn.json", "unet.json"):
        assert first[name] == (SHIPPED / name).read_bytes()


def test_a_folder_is_described_from_its_files(tmp_path):
    """An unbalanced two-class folder: the majority baseline is no longer chance, and a long class name is cut."""
    long_name = "a class name far too long to fit under one small tile"
    for split, per_class in (("train", {long_name: 3, "b": 1}), ("valid", {long_name: 1, "b": 2}),
                             ("test", {long_name: 2, "b": 2})):
        for name, count in per_class.items():
            folder = tmp_path / "my cards" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 40), (40 * i, 200, 90)).save(folder / f"{i}.png")
    cfg = DataConfig(name=str(tmp_path / "my cards"))
    card = describe(cfg, "classification")
    assert not card["generated"] and card["label"] == "my cards" and card["stands_in_for"] is None
    assert card["splits"] == {"train": 4, "val": 3, "test": 4} and card["majority_class"] == 0
    assert card["baselines"]["val"] == {"chance": 0.5, "majority": 1 / 3}
    assert card["class_counts"]["train"] == [3, 1]
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "cnn.json").write_text(card_json(card | {"experiment": "cnn", "parameters": {}}))
    loaded = datacards.load("cnn", tmp_path / "cards", strict=True)
    assert loaded.summary_line() == "Data: 2 classes of 28×28 images from my cards (4 train / 3 val / 4 test)."
    assert loaded.matches(cfg) and not loaded.matches(base_config("cnn").data)
    img = Image.open(io.BytesIO(sample_strip(cfg, "classification", n=8)))
    assert img.size == (GUTTER + 4 * (CARD_TILE + GUTTER), GUTTER + CARD_TILE + CAPTION)   # only 4 to show


# -- broken or missing files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"experiment": "cnn"}',
                                     b'{"experiment": "unet", "task": "segmentation"}'])
def test_a_broken_card_is_none_or_one_clear_line(tmp_path, content):
    (tmp_path / "cnn.json").write_bytes(content)
    assert datacards.load("cnn", tmp_path) is None
    with pytest.raises(datacards.DataCardError) as err:
        datacards.load("cnn", tmp_path, strict=True)
    assert "cnn.json" in str(err.value) and "\n" not in str(err.value)


def test_missing_cards_and_odd_names_are_none(tmp_path):
    assert datacards.load("cnn", tmp_path) is None and datacards.load("cnn", tmp_path, strict=True) is None
    assert datacards.load("../cnn", SHIPPED) is None and datacards.load("cnn", tmp_path / "nowhere") is None


def test_a_card_without_its_png_still_loads(tmp_path):
    (tmp_path / "unet.json").write_bytes((SHIPPED / "unet.json").read_bytes())
    card = datacards.load("unet", tmp_path, strict=True)
    assert card is not None and card.sample_png is None


def test_default_folder_follows_the_cached_runs_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(tmp_path))
    assert datacards.default_folder() == tmp_path / "datacards"
    assert datacards.load("cnn") is None
    (tmp_path / "datacards").mkdir()
    (tmp_path / "datacards" / "cnn.json").write_bytes((SHIPPED / "cnn.json").read_bytes())
    assert datacards.load("cnn").config_hash == datacards.load("cnn", SHIPPED).config_hash
