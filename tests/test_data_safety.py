"""Defects a reliability probe found in the data folder paths, each checked on real files.

Unreadable images are skipped but reported (`skipped_summary`); a one-class set is refused; error
messages list a few names, never a whole directory; an upload's name is never used as a path; `~` is
expanded; an OS error while scanning a folder is a one-line message, not a traceback.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adlapp import library, planning
from adlapp.bundle import BundleError
from adlapp.config import DataConfig
from adlapp.data import DataError, clear_cache, load_data, load_image_folder, load_segmentation_folder
from adlapp.folder_layout import check_dataset_folder
from adlapp.store import RunStore

# A name far beyond NAME_MAX (255 bytes): the OS refuses to even stat it (ENAMETOOLONG), as root too.
TOO_LONG = "x" * 300


def _png(path: Path, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (8, 8, 3) if mode == "RGB" else (8, 8)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def _truncated_png(path: Path) -> Path:
    """A real 8x8 PNG cut in half: the header opens, decoding the pixels fails."""
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(buf, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _class_tree(root: Path, classes=("a", "b"), splits=("train", "valid", "test")) -> Path:
    for s in splits:
        for i, c in enumerate(classes):
            for k in range(2):
                _png(root / s / c / f"{k}.png", seed=10 * i + k)
    return root


def _seg_tree(root: Path) -> Path:
    for s in ("train", "val", "test"):
        for k in range(2):
            _png(root / s / "images" / f"im{k}.png", seed=k)
            _png(root / s / "masks" / f"im{k}.png", seed=k, mode="L")
    return root


def _names_before_more(message: str) -> list[str]:
    """The names a message lists after 'found: ' in a capped listing 'x, y, z and N more'."""
    listing = re.search(r"found: (.*?) and \d+ more", message)
    assert listing, message
    return listing.group(1).split(", ")


# --- 1. unreadable files are skipped *and* reportable -------------------------------------------------

def test_skipped_summary_names_unreadable_files_relative_to_the_data_folder(tmp_path: Path) -> None:
    from adlapp.data import skipped_summary  # imported here: the other defects' tests must not depend on it

    root = _class_tree(tmp_path / "cards")
    bad = [_truncated_png(root / "train" / "a" / "cut.png"),
           _truncated_png(root / "train" / "b" / "cut.png"),
           root / "valid" / "a" / "junk.jpg",
           root / "test" / "b" / "zero.png"]
    bad[2].write_bytes(b"\xff\xd8 not really a jpeg")
    bad[3].write_bytes(b"")
    d = load_image_folder(root)
    assert sorted(d.skipped) == sorted(str(p) for p in bad)          # still skipped, still recorded
    assert len(d.train_y) == len(d.val_y) == len(d.test_y) == 4       # the readable files all loaded
    assert skipped_summary(d) == ("skipped 4 unreadable image file(s): train/a/cut.png, train/b/cut.png, "
                                  "valid/a/junk.jpg and 1 more")
    assert skipped_summary(d, limit=10).endswith("valid/a/junk.jpg, test/b/zero.png")
    # Outside the data folder (a moved set, say) the full path is the only honest name.
    elsewhere = skipped_summary(replace(d, root=str(tmp_path / "other")), limit=1)
    assert elsewhere == f"skipped 4 unreadable image file(s): {bad[0]} and 3 more"


def test_skipped_summary_segmentation_and_nothing_skipped(tmp_path: Path) -> None:
    from adlapp.data import make_cards, skipped_summary

    root = _seg_tree(tmp_path / "seg")
    assert skipped_summary(load_segmentation_folder(root, size=8)) is None
    _truncated_png(root / "val" / "masks" / "im1.png")
    assert skipped_summary(load_segmentation_folder(root, size=8)) == \
        "skipped 1 unreadable image file(s): val/masks/im1.png"
    assert skipped_summary(make_cards(1, 1)) is None                 # generated sets skip nothing


# --- 2. one class is refused ----------------------------------------------------------------------------

def test_one_class_folder_is_refused_by_loader_and_layout_check(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards", classes=("joker",))
    with pytest.raises(DataError, match="at least two classes") as err:
        load_image_folder(root)
    assert str(root / "train") in str(err.value) and "joker" in str(err.value)
    problem = check_dataset_folder(root, "cnn")
    assert problem is not None and "at least two classes" in problem and str(root / "train") in problem
    # The app's request builder uses the same check, so nothing can be launched on it.
    reqs, errors = planning.make_requests(planning.StudyChoice("cnn", variants=("cnn/adam",), dataset=str(root)))
    assert reqs == [] and any("at least two classes" in e for e in errors), errors
    # Two classes are enough.
    _class_tree(root, classes=("joker", "queen"))
    assert load_image_folder(root).class_names == ("joker", "queen")
    assert check_dataset_folder(root, "cnn") is None


def _break(root: Path, how: str) -> tuple[Path, str]:
    """A folder broken one way, and the experiment whose layout it breaks."""
    if how == "missing split":
        _class_tree(root, splits=("train", "test"))
    elif how == "extra class":
        _class_tree(root)
        _png(root / "test" / "zed" / "0.png")
    elif how == "empty class":
        _class_tree(root)
        for f in (root / "valid" / "b").iterdir():
            f.unlink()
    elif how in ("mask without image", "duplicate stem"):
        _seg_tree(root)
        _png(root / "train" / "masks" / ("lonely.png" if how == "mask without image" else "im0.jpg"), mode="L")
        return root, "unet"
    elif how == "no masks folder":
        _seg_tree(root)
        for f in (root / "test" / "masks").iterdir():
            f.unlink()
        (root / "test" / "masks").rmdir()
        return root, "unet"
    return root, "cnn"


@pytest.mark.parametrize("how", ["missing split", "extra class", "empty class", "mask without image",
                                 "duplicate stem", "no masks folder"])
def test_loader_and_pre_launch_check_say_the_same_thing(tmp_path: Path, how: str) -> None:
    # One layout checker (adlapp.folder_layout) behind both: the page's sentence is the loader's message.
    root, experiment = _break(tmp_path / "data", how)
    load = load_image_folder if experiment == "cnn" else load_segmentation_folder
    with pytest.raises(DataError) as err:
        load(root)
    message = str(err.value)
    assert str(root) in message
    assert check_dataset_folder(root, experiment) == message[0].upper() + message[1:] + "."


# --- 3. listings in messages are capped -----------------------------------------------------------------

def _junk_folder(root: Path, n: int = 40) -> Path:
    for i in range(n):
        (root / f"junk{i:02d}").mkdir(parents=True)
        (root / f"file{i:02d}.txt").write_text("x")
    return root


def test_missing_split_lists_at_most_five_entries(tmp_path: Path) -> None:
    root = _junk_folder(tmp_path / "etc_like")
    with pytest.raises(DataError, match=re.escape(str(root))) as err:
        load_image_folder(root)
    message = str(err.value)
    assert _names_before_more(message) == [f"junk{i:02d}" for i in range(5)]
    assert "and 35 more" in message and "junk05" not in message
    with pytest.raises(DataError) as err:
        load_segmentation_folder(root)
    assert "and 35 more" in str(err.value) and "junk05" not in str(err.value)
    for experiment in ("cnn", "unet"):
        problem = check_dataset_folder(root, experiment)
        assert _names_before_more(problem) == [f"junk{i:02d}" for i in range(5)], problem
        assert "and 35 more" in problem and "junk05" not in problem


def test_other_listings_are_capped_too(tmp_path: Path) -> None:
    # A split with many extra classes.
    root = _class_tree(tmp_path / "cards")
    for i in range(30):
        (root / "test" / f"c{i:02d}").mkdir()
    with pytest.raises(DataError, match="extra c00, c01, c02, c03, c04 and 25 more$"):
        load_image_folder(root)
    assert check_dataset_folder(root, "cnn").endswith("c00, c01, c02, c03, c04 and 25 more.")
    # A segmentation split folder with no masks folder but many others.
    seg = _seg_tree(tmp_path / "seg")
    for f in (seg / "test" / "masks").iterdir():
        f.unlink()
    (seg / "test" / "masks").rmdir()
    _junk_folder(seg / "test", n=20)
    with pytest.raises(DataError, match=re.escape(str(seg / "test"))) as err:
        load_segmentation_folder(seg)
    assert _names_before_more(str(err.value)) == ["images", "junk00", "junk01", "junk02", "junk03"]
    assert "and 16 more" in str(err.value)


def test_capped_list() -> None:
    from adlapp.folder_layout import capped_list

    assert capped_list([]) == "nothing"
    assert capped_list(["a", "b"]) == "a, b"
    assert capped_list([str(i) for i in range(5)]) == "0, 1, 2, 3, 4"
    assert capped_list([str(i) for i in range(6)]) == "0, 1, 2, 3, 4 and 1 more"
    assert capped_list(iter("abcd"), limit=2) == "a, b and 2 more"


def test_layout_module_stays_torch_free() -> None:
    # The viewer pages import planning (which checks folders), the live view and cached runs: none may pull torch in.
    code = ("import adlapp.planning, adlapp.live, adlapp.folder_layout, adlapp.library, sys; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr


# --- 4. an upload's name is never a path ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "/", "a/..", "..\\..", "nul\x00.zip", "x" * 400 + ".zip",
                                  "é" * 200 + ".zip", " . "])
def test_import_bytes_with_hostile_names_raises_bundle_error(tmp_path: Path, name: str) -> None:
    store = RunStore(tmp_path / "store")
    with pytest.raises(BundleError) as err:
        library.import_bytes(store, name, b"this is not a zip file")
    message = str(err.value)
    # The reason's wording is bundle.py's; what matters here is whose name the message gives.
    assert tempfile.gettempdir() not in message                       # the temp path is replaced ...
    assert message.startswith(name.replace("\x00", "?")[:200] + ":")  # ... by the user's name, made printable
    assert store.runs().empty


def test_import_bytes_message_has_no_control_characters(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as err:
        library.import_bytes(RunStore(tmp_path / "store"), "evil\nline.zip", b"junk")
    assert "\n" not in str(err.value) and str(err.value).startswith("evil?line.zip:")


def test_import_bytes_round_trip_keeps_the_upload_name_as_source(tmp_path: Path) -> None:
    from conftest import tiny, train_into  # trains one tiny CNN run for real (imports torch)

    source = RunStore(tmp_path / "a")
    (key,) = train_into(source, tiny("cnn/adam"), seeds=(0,))
    bundle = library.export_bytes(source)
    target = RunStore(tmp_path / "b")
    assert library.import_bytes(target, "../../elsewhere/..\\my runs (1).zip", bundle) == [key]
    runs = target.runs()
    assert list(runs["key"]) == [key] and set(runs["source"]) == {"bundle:my runs (1).zip"}
    assert library.import_bytes(target, "..", bundle) == []          # same runs again: nothing new, no error


# --- 5. ~ is expanded -----------------------------------------------------------------------------------

def test_home_relative_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _class_tree(tmp_path / "cards")
    _seg_tree(tmp_path / "seg")
    d = load_image_folder("~/cards")
    assert d.class_names == ("a", "b") and d.root == str(tmp_path / "cards")
    assert len(load_segmentation_folder("~/seg", size=8).train_x) == 2
    assert check_dataset_folder("~/cards", "cnn") is None
    assert check_dataset_folder("~/seg", "unet") is None
    clear_cache()
    assert load_data(DataConfig(name="~/cards"), "classification").class_names == ("a", "b")
    clear_cache()
    # A missing folder is reported under its expanded name, which is where the user should look.
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        load_image_folder("~/nope")
    assert check_dataset_folder("~/nope", "cnn") == f"Data folder {tmp_path / 'nope'} does not exist."


# --- an OS error while scanning is a message, not a traceback -------------------------------------------

def test_path_the_os_rejects_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / TOO_LONG
    for load in (load_image_folder, load_segmentation_folder):
        with pytest.raises(DataError, match="cannot be read"):
            load(path)
    problem = check_dataset_folder(path, "cnn")
    assert problem is not None and "cannot be read" in problem
    with pytest.raises(DataError, match="not a usable path"):
        load_data(DataConfig(name=str(path)), "classification")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every folder")
def test_unlistable_folder_is_a_data_error(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "cards")
    (root / "valid").chmod(0)
    try:
        with pytest.raises(DataError, match="cannot be read"):
            load_image_folder(root)
        assert "cannot be read" in check_dataset_folder(root, "cnn")
    finally:
        (root / "valid").chmod(0o755)
