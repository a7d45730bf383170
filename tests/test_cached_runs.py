"""The bundles shipped in cached_runs/: they load without torch, are complete, and match their manifests."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adlapp.bundle import read_bundle
from adlapp.config import VARIANTS, config_from_dict, run_key

CACHED = Path(__file__).resolve().parents[1] / "cached_runs"
EXPECTED = {
    "course-cnn.zip": (["cnn/bn-adam", "cnn/adam", "cnn/sgd"], 200, {"train_loss", "val_loss", "val_acc"},
                       {200: {"acc", "loss"}}),
    "course-unet.zip": (["unet/normal", "unet/nearest", "unet/elu", "unet/nearest-elu"], 1000,
                        {"train_loss", "val_loss", "val_f1", "val_pixel_acc"},
                        {200: {"f1", "pixel_acc", "loss"}, 400: {"f1", "pixel_acc", "loss"},
                         1000: {"f1", "pixel_acc", "loss"}}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundle_is_complete_and_consistent(name):
    bundle = read_bundle(CACHED / name)          # verifies checksums and counts against the manifest
    variants, epochs, epoch_metrics, test_metrics = EXPECTED[name]
    runs = bundle.tables.runs
    assert sorted(runs["variant"].unique()) == sorted(variants)
    seeds = runs.groupby("variant")["seed"].apply(lambda s: sorted(s))
    assert all(len(s) >= 3 for s in seeds), seeds
    assert len({tuple(s) for s in seeds}) == 1, "every variant has the same seeds"
    assert [r["key"] for r in bundle.manifest["runs"]] == list(runs["key"])
    for run in runs.to_dict("records"):
        cfg = config_from_dict(json.loads(run["config"]))
        assert run["key"] == run_key(cfg, run["seed"]) and cfg.epochs == epochs
        assert cfg == VARIANTS[run["variant"]]()     # exactly the registry variant, course protocol
        assert run["device"] and run["command"].startswith("python -m adlapp train")
        assert run["git_commit"] and "torch" in json.loads(run["versions"])
        mine = bundle.tables.epochs[bundle.tables.epochs["key"] == run["key"]]
        wide = mine.pivot(index="epoch", columns="name", values="value")
        if run["status"] == "done":
            assert list(wide.index) == list(range(1, epochs + 1))
            assert epoch_metrics | {"seconds"} == set(wide.columns)
            assert not wide.isna().any().any()
            tests = bundle.tables.tests[bundle.tables.tests["key"] == run["key"]]
            got = {int(e): set(g["name"]) for e, g in tests.groupby("epoch")}
            assert got == test_metrics and not tests["value"].isna().any()
        else:
            assert run["status"] == "diverged" and run["diverged_epoch"] == wide.index.max()


def test_loading_all_cached_bundles_does_not_import_torch():
    code = ("import sys; from adlapp.bundle import read_bundle_dir; b, e = read_bundle_dir(sys.argv[1]); "
            "assert len(b) >= 2 and not e, e; assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(CACHED)], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_cached_bundles_are_small():
    assert sum(p.stat().st_size for p in CACHED.glob("*.zip")) < 5 * 2 ** 20
