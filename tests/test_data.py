"""Built-in data generators, folder loaders and the `load_data` entry point, on real components."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlapp.config import DataConfig
from adlapp.data import (
    ClassificationData,
    DataError,
    SegmentationData,
    clear_cache,
    describe_data,
    load_data,
    load_image_folder,
    load_segmentation_folder,
    make_cards,
    make_vessels,
)


@pytest.fixture(scope="module")
def cards() -> ClassificationData:
    return make_cards()


@pytest.fixture(scope="module")
def vessels() -> SegmentationData:
    return make_vessels()


def _splits(d: ClassificationData | SegmentationData) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)]


def _same(a: ClassificationData | SegmentationData, b: ClassificationData | SegmentationData) -> bool:
    pairs = zip(_splits(a), _splits(b), strict=True)
    return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in pairs)


# --- cards ---------------------------------------------------------------------------------------

def test_cards_shapes_dtypes_and_exact_balance(cards: ClassificationData) -> None:
    assert cards.num_classes == 53 and len(set(cards.class_names)) == 53
    assert "joker" in cards.class_names and "ace of spades" in cards.class_names
    for (x, y), n in zip(_splits(cards), (1060, 265, 265), strict=True):
        assert x.shape == (n, 3, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert torch.isfinite(x).all()
        assert torch.equal(torch.bincount(y, minlength=53), torch.full((53,), n // 53))
    # Standardised with train statistics.
    assert cards.train_x.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (cards.train_x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    assert cards.skipped == ()


def test_cards_splits_differ(cards: ClassificationData) -> None:
    assert not torch.equal(cards.val_x, cards.test_x)
    assert not torch.equal(cards.train_x[:265], cards.val_x)


def test_cards_deterministic() -> None:
    a, b = make_cards(2, 1, seed=3), make_cards(2, 1, seed=3)
    assert _same(a, b)
    assert not torch.equal(a.train_x, make_cards(2, 1, seed=4).train_x)


def test_cards_train_size_leaves_eval_splits_alone() -> None:
    a, b = make_cards(1, 1, seed=0), make_cards(3, 1, seed=0)
    assert len(b.train_y) == 3 * 53
    # Standardisation differs with the train split, so compare the raw labels and the pixel order.
    assert torch.equal(a.val_y, b.val_y)
    ra = a.val_x * torch.tensor(a.std).view(1, 3, 1, 1) + torch.tensor(a.mean).view(1, 3, 1, 1)
    rb = b.val_x * torch.tensor(b.std).view(1, 3, 1, 1) + torch.tensor(b.mean).view(1, 3, 1, 1)
    assert torch.allclose(ra, rb, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"train_per_class": 0}, {"eval_per_class": -1}, {"seed": -1},
                                    {"train_per_class": 2.5}])
def test_cards_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(DataError, match=next(iter(kwargs))):
        make_cards(**kwargs)


# --- vessels -------------------------------------------------------------------------------------

def test_vessels_shapes_and_foreground(vessels: SegmentationData) -> None:
    for (x, y), n in zip(_splits(vessels), (48, 16, 16), strict=True):
        assert x.shape == (n, 3, 64, 64) and x.dtype == torch.float32
        assert y.shape == (n, 1, 64, 64) and y.dtype == torch.float32
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
        assert 0.08 <= y.mean().item() <= 0.18
        per_image = y.mean(dim=(1, 2, 3))
        assert per_image.min() > 0.05 and per_image.max() < 0.2
    assert vessels.train_x.mean(dim=(0, 2, 3)).abs().max() < 1e-3


def test_vessels_deterministic_and_size() -> None:
    a = make_vessels(2, 1, 1, size=32, seed=5)
    assert _same(a, make_vessels(2, 1, 1, size=32, seed=5))
    assert not torch.equal(a.train_y, make_vessels(2, 1, 1, size=32, seed=6).train_y)
    assert a.train_x.shape == (2, 3, 32, 32) and a.train_y.shape == (2, 1, 32, 32)


def test_vessels_image_tracks_mask(vessels: SegmentationData) -> None:
    # Vessels absorb green: foreground pixels are darker on average, so the task is learnable.
    g, m = vessels.train_x[:, 1:2], vessels.train_y.bool()
    assert g[m].mean() < g[~m].mean() - 0.5


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"n_val": 0}, {"seed": -2}])
def test_vessels_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(DataError, match=next(iter(kwargs))):
        make_vessels(**kwargs)


# --- folder helpers ------------------------------------------------------------------------------

def _png(path: Path, value: int = 128, size: int = 8, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    if mode == "RGB":
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    else:
        arr = np.zeros((size, size), np.uint8)
        arr[: size // 2] = value
    Image.fromarray(arr).save(path)
    return path


def _class_tree(root: Path, classes=("b", "a"), splits=("train", "valid", "test"), n: int = 2) -> Path:
    for s in splits:
        for i, c in enumerate(classes):
            for k in range(n):
                _png(root / s / c / f"{k}.png", value=10 * i + k)
    return root


def _seg_tree(root: Path, splits=("train", "val", "test"), n: int = 2) -> Path:
    for s in splits:
        for k in range(n):
            _png(root / s / "images" / f"im{k}.png", value=k)
            _png(root / s / "masks" / f"im{k}.png", value=255, mode="L")
    return root


# --- classification folders ----------------------------------------------------------------------

def test_image_folder_loads(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards")
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    d = load_image_folder(root)
    assert d.class_names == ("a", "b")
    assert d.train_x.shape == (4, 3, 28, 28) and d.train_x.dtype == torch.float32
    assert d.train_y.dtype == torch.int64 and sorted(d.train_y.tolist()) == [0, 0, 1, 1]
    assert d.val_x.shape == d.test_x.shape == (4, 3, 28, 28)
    assert d.skipped == ()


def test_image_folder_skips_corrupt_file(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards")
    bad = root / "train" / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n definitely not a png")
    d = load_image_folder(root)
    assert d.skipped == (str(bad),)
    assert len(d.train_y) == 4


def test_image_folder_all_unreadable_class_is_error(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards")
    for f in (root / "test" / "b").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(DataError, match=re.escape(str(root / "test" / "b"))):
        load_image_folder(root)


def test_image_folder_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_image_folder(tmp_path / "file")


def test_image_folder_missing_split_lists_found(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards", splits=("train", "test"))
    with pytest.raises(DataError, match="valid") as err:
        load_image_folder(root)
    assert str(root) in str(err.value) and "found: test, train" in str(err.value)


def test_image_folder_split_without_classes(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards", splits=("train", "valid"))
    (root / "test").mkdir()
    with pytest.raises(DataError, match=re.escape(str(root / "test"))):
        load_image_folder(root)


def test_image_folder_empty_class(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards")
    for f in (root / "valid" / "a").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=re.escape(str(root / "valid" / "a"))):
        load_image_folder(root)


def test_image_folder_class_mismatch_names_classes(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards")
    _png(root / "test" / "c" / "0.png")
    with pytest.raises(DataError, match=re.escape(str(root / "test"))) as err:
        load_image_folder(root)
    assert "extra c" in str(err.value)


def test_image_folder_accepts_val_spelling(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards", splits=("train", "val", "test"))
    assert len(load_image_folder(root).val_y) == 4


# --- segmentation folders ------------------------------------------------------------------------

def test_segmentation_folder_loads(tmp_path: Path) -> None:
    d = load_segmentation_folder(_seg_tree(tmp_path / "seg"), size=16)
    assert d.train_x.shape == (2, 3, 16, 16) and d.train_y.shape == (2, 1, 16, 16)
    assert d.train_y.dtype == torch.float32 and set(torch.unique(d.train_y).tolist()) == {0.0, 1.0}
    assert d.train_y.mean().item() == pytest.approx(0.5)    # top half of every mask is foreground


def test_segmentation_folder_missing_masks_dir(tmp_path: Path) -> None:
    root = _seg_tree(tmp_path / "seg")
    for f in (root / "val" / "masks").iterdir():
        f.unlink()
    (root / "val" / "masks").rmdir()
    with pytest.raises(DataError, match=re.escape(str(root / "val"))):
        load_segmentation_folder(root)


def test_segmentation_folder_missing_split(tmp_path: Path) -> None:
    root = _seg_tree(tmp_path / "seg", splits=("train", "val"))
    with pytest.raises(DataError, match=re.escape(str(root))) as err:
        load_segmentation_folder(root)
    assert "test" in str(err.value)


def test_segmentation_folder_unmatched_stems(tmp_path: Path) -> None:
    root = _seg_tree(tmp_path / "seg")
    orphan = _png(root / "train" / "masks" / "lonely.png", mode="L")
    with pytest.raises(DataError, match="lonely") as err:
        load_segmentation_folder(root)
    assert str(orphan) in str(err.value)
    orphan.unlink()
    image = _png(root / "test" / "images" / "solo.png")
    with pytest.raises(DataError, match="solo") as err:
        load_segmentation_folder(root)
    assert str(image) in str(err.value)


def test_segmentation_folder_empty_split(tmp_path: Path) -> None:
    root = _seg_tree(tmp_path / "seg")
    for kind in ("images", "masks"):
        for f in (root / "test" / kind).iterdir():
            f.unlink()
    with pytest.raises(DataError, match=re.escape(str(root / "test"))):
        load_segmentation_folder(root)


def test_segmentation_folder_corrupt_file(tmp_path: Path) -> None:
    root = _seg_tree(tmp_path / "seg")
    bad = root / "train" / "masks" / "im1.png"
    bad.write_bytes(b"garbage")
    d = load_segmentation_folder(root, size=8)
    assert d.skipped == (str(bad),) and len(d.train_x) == 1
    (root / "train" / "images" / "im0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=re.escape(str(root / "train"))):
        load_segmentation_folder(root, size=8)


# --- load_data / describe_data -------------------------------------------------------------------

def test_load_data_builtin_dispatch_and_cache() -> None:
    clear_cache()
    cfg = DataConfig(name="cards", train_per_class=1, seed=7)
    a = load_data(cfg, "classification")
    assert isinstance(a, ClassificationData) and len(a.train_y) == 53
    assert load_data(DataConfig(name="cards", train_per_class=1, seed=7), "classification") is a
    # Fields that do not shape the cards (image_size, n_train) do not force a rebuild ...
    assert load_data(DataConfig(name="cards", train_per_class=1, seed=7, image_size=32, n_train=3),
                     "classification") is a
    # ... fields that do, do.
    assert load_data(DataConfig(name="cards", train_per_class=1, seed=8), "classification") is not a
    v = load_data(DataConfig(name="vessels", n_train=2, image_size=32), "segmentation")
    assert isinstance(v, SegmentationData) and v.train_x.shape == (2, 3, 32, 32)
    info = describe_data(DataConfig(name="vessels", n_train=2, image_size=32), "segmentation")
    assert info["train"] == 2 and info["val"] == info["test"] == 16
    assert 0.08 <= info["foreground_fraction"] <= 0.18
    assert describe_data(cfg, "classification")["num_classes"] == 53


def test_load_data_folders(tmp_path: Path) -> None:
    cls_root, seg_root = _class_tree(tmp_path / "c"), _seg_tree(tmp_path / "s")
    c = load_data(DataConfig(name=str(cls_root)), "classification")
    assert isinstance(c, ClassificationData) and c.class_names == ("a", "b")
    s = load_data(DataConfig(name=str(seg_root), image_size=16), "segmentation")
    assert isinstance(s, SegmentationData) and s.train_x.shape[-1] == 16
    assert load_data(DataConfig(name=str(seg_root), image_size=16), "segmentation") is s


@pytest.mark.parametrize("name,task,needle", [
    ("cards", "segmentation", "cards"),
    ("vessels", "classification", "vessels"),
    ("cards", "regression", "regression"),
    ("/no/such/folder", "classification", "/no/such/folder"),
])
def test_load_data_errors(name: str, task: str, needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        load_data(DataConfig(name=name), task)
