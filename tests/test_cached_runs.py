"""The bundles shipped in cached_runs/: they load without torch, are complete, and match their manifests.

The study is made in pieces (scripts/make_cached_runs.py: one bundle per variant or protocol, each written
when its runs finish). Each bundle is checked against the script's definition of its piece: exactly its runs,
with best-validation rows and the weights of its first seed.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

from adlapp.bundle import read_bundle
from adlapp.config import config_from_dict, run_key

ROOT = Path(__file__).resolve().parents[1]
CACHED = ROOT / "cached_runs"
EPOCH_METRICS = {"cnn": {"train_loss", "val_loss", "val_acc"},
                 "unet": {"train_loss", "val_loss", "val_f1", "val_pixel_acc"}}
TEST_METRICS = {"cnn": {"acc", "loss"}, "unet": {"f1", "pixel_acc", "loss"}}
BEST = {"cnn": {"best_acc", "best_loss", "best_epoch"},
        "unet": {"best_f1", "best_pixel_acc", "best_loss", "best_epoch"}}
# Everything shipped stays small enough to clone quickly: ~0.4 MB per CNN piece (one seed's weights), ~1.7 MB
# per U-Net piece (weights at its 3 test epochs); the full study is ~15 MB.
MAX_TOTAL_BYTES = 24 * 2 ** 20


PIECES = {p.name: p for p in load_script("make_cached_runs").PIECES}
BUNDLES = sorted(p.name for p in CACHED.glob("*.zip"))


def test_every_shipped_bundle_is_a_piece():
    assert BUNDLES
    for name in BUNDLES:
        assert name.removesuffix(".zip") in PIECES, name


def _check_run(bundle, run, test_metrics: set[str]) -> None:
    cfg = config_from_dict(json.loads(run["config"]))
    exp = cfg.experiment
    assert run["key"] == run_key(cfg, run["seed"])
    assert run["device"] and run["git_commit"] and "torch" in json.loads(run["versions"])
    mine = bundle.tables.epochs[bundle.tables.epochs["key"] == run["key"]]
    wide = mine.pivot(index="epoch", columns="name", values="value")
    if run["status"] != "done":
        assert run["status"] == "diverged" and run["diverged_epoch"] == wide.index.max()
        return
    assert list(wide.index) == list(range(1, cfg.epochs + 1))
    assert EPOCH_METRICS[exp] | {"seconds"} == set(wide.columns)
    assert not wide.isna().any().any()
    tests = bundle.tables.tests[bundle.tables.tests["key"] == run["key"]]
    got = {int(e): set(g["name"]) for e, g in tests.groupby("epoch")}
    assert got == {e: TEST_METRICS[exp] | test_metrics for e in cfg.test_epochs}
    assert not tests["value"].isna().any()


@pytest.mark.parametrize("name", BUNDLES)
def test_a_piece_holds_exactly_its_runs_with_best_scores_and_its_first_seeds_weights(name):
    bundle = read_bundle(CACHED / name)          # verifies checksums and counts against the manifest
    piece = PIECES[name.removesuffix(".zip")]
    expected = {run_key(cfg, seed) for cfg, seed in piece.runs}
    runs = bundle.tables.runs
    assert set(runs["key"]) == expected and len(runs) == len(piece.runs)
    assert bundle.manifest["provenance"]["piece"] == piece.name
    for run in runs.to_dict("records"):
        assert run["command"].startswith("python scripts/make_cached_runs.py")
        _check_run(bundle, run, BEST[run["experiment"]])
    first = min(seed for _, seed in piece.runs)
    with_weights = {run_key(cfg, seed): cfg.test_epochs for cfg, seed in piece.runs if seed == first}
    assert {k: tuple(sorted(v)) for k, v in bundle.weights.items()} == with_weights


def test_loading_all_cached_bundles_does_not_import_torch():
    code = ("import sys; from adlapp.bundle import read_bundle_dir; b, e = read_bundle_dir(sys.argv[1]); "
            "assert len(b) >= 2 and not e, e; assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(CACHED)], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_cached_bundles_are_small():
    assert sum(p.stat().st_size for p in CACHED.glob("*.zip")) < MAX_TOTAL_BYTES


def test_no_two_bundles_hold_the_same_run():
    """Pieces are disjoint: a run in two bundles would be read from whichever loads last. (While the pieces
    replaced the older course bundles, a test here checked that every run trained again, sessions later, by a
    later commit, under other load, equalled the older bundle's bit for bit; all 35 did. Run
    scripts/check_reproducible.py to repeat that check on this machine.)"""
    seen: dict[str, str] = {}
    for name in BUNDLES:
        for key in read_bundle(CACHED / name).tables.runs["key"]:
            assert key not in seen, f"run {key} is in {seen[key]} and {name}"
            seen[key] = name
