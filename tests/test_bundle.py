"""Bundles: round trip through Parquet + manifest, verification, and import into the real store."""
import json
import zipfile
from dataclasses import replace

import pytest

from adlapp.bundle import BundleError, export_store, import_bundle, read_bundle, read_bundle_dir
from adlapp.config import variant
from adlapp.store import RunStore


def _filled_store(root, n=2):
    store = RunStore(root)
    for seed in range(n):
        key, _ = store.enqueue(replace(variant("cnn/sgd"), epochs=2), seed)
        store.claim(key)
        for e in (1, 2):
            store.record_epoch(key, e, {"train_loss": 1.0 / e + seed, "val_acc": 0.1 * e},
                               tests={"acc": 0.3, "loss": 2.0} if e == 2 else None)
        store.finish(key, "done")
    return store


def test_round_trip_and_import(tmp_path):
    src = _filled_store(tmp_path / "a")
    path = export_store(src, tmp_path / "b.zip", provenance={"command": "test"})
    bundle = read_bundle(path)
    assert bundle.manifest["counts"] == {"runs": 2, "epoch_rows": 8, "test_rows": 4}
    assert bundle.manifest["provenance"]["command"] == "test"
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["epochs.parquet", "manifest.json", "runs.parquet", "tests.parquet"]
    dst = RunStore(tmp_path / "c")
    assert len(import_bundle(dst, path)) == 2
    assert import_bundle(dst, path) == []                 # importing twice adds nothing
    a, b = src.tables(), dst.tables()
    assert sorted(a.epochs["value"]) == sorted(b.epochs["value"])
    assert set(b.runs["source"]) == {"bundle:b.zip"}


def test_export_with_nothing_matching_is_an_error(tmp_path):
    with pytest.raises(BundleError, match="no runs match"):
        export_store(RunStore(tmp_path / "s"), tmp_path / "x.zip")


def test_tampered_and_garbage_bundles_are_rejected_and_skipped(tmp_path):
    good = export_store(_filled_store(tmp_path / "a"), tmp_path / "dir" / "good.zip")
    (tmp_path / "dir" / "garbage.zip").write_bytes(b"not a zip")
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["counts"]["runs"] = 99
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tmp_path / "dir" / "tampered.zip", "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    loaded, errors = read_bundle_dir(tmp_path / "dir")
    assert [b.path.name for b in loaded] == ["good.zip"]
    assert len(errors) == 2 and any("garbage.zip" in e for e in errors) and any("tampered.zip" in e for e in errors)
