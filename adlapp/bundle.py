"""Portable result bundles: a zip holding Parquet tables and a JSON manifest with provenance.

A bundle is how finished runs travel (export/import) and how `cached_runs/` ships the course study. It
contains no pickle and no checkpoint, so loading one never executes code, and reading needs only pandas and
pyarrow (no torch): the viewer pages load bundles in well under a second.

Layout inside the zip: manifest.json, runs.parquet, epochs.parquet, tests.parquet.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from adlapp.store import RUN_COLUMNS, RunStore, RunTables

__all__ = ["BUNDLE_FORMAT", "BundleError", "LoadedBundle", "write_bundle", "read_bundle", "read_bundle_dir",
           "export_store", "import_bundle"]

BUNDLE_FORMAT = "adlapp-bundle/1"
_TABLES = ("runs", "epochs", "tests")


class BundleError(ValueError):
    """A bundle is unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class LoadedBundle:
    path: Path
    manifest: dict[str, Any]
    tables: RunTables


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def write_bundle(path: str | Path, tables: RunTables, provenance: dict[str, Any] | None = None) -> Path:
    """Write `tables` to a bundle at `path`; the manifest records counts, checksums and provenance."""
    path = Path(path)
    runs = tables.runs.reindex(columns=RUN_COLUMNS)
    epochs = tables.epochs[["key", "epoch", "name", "value"]].astype(
        {"epoch": "int32", "value": "float64"}).sort_values(["key", "epoch", "name"])
    tests = tables.tests[["key", "epoch", "name", "value"]].astype(
        {"epoch": "int32", "value": "float64"}).sort_values(["key", "epoch", "name"])
    blobs = {f"{name}.parquet": _parquet_bytes(df) for name, df in zip(_TABLES, (runs, epochs, tests))}
    manifest = {
        "format": BUNDLE_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": [{"key": r["key"], "experiment": r["experiment"], "variant": r["variant"], "seed": int(r["seed"]),
                  "epochs": int(r["epochs"]), "status": r["status"], "last_epoch": int(r["last_epoch"])}
                 for r in runs.to_dict("records")],
        "counts": {"runs": len(runs), "epoch_rows": len(epochs), "test_rows": len(tests)},
        "sha256": {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()},
        "provenance": {"exported_by": f"adlapp on {platform.node() or 'unknown host'}", **(provenance or {})},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:   # parquet is already compressed
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name, blob in blobs.items():
            zf.writestr(name, blob)
    tmp.replace(path)
    return path


def read_bundle(path: str | Path) -> LoadedBundle:
    """Read and verify one bundle (checksums, counts, columns). Raises BundleError naming the file."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            if manifest.get("format") != BUNDLE_FORMAT:
                raise BundleError(f"{path}: format {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
            frames = {}
            for name in _TABLES:
                blob = zf.read(f"{name}.parquet")
                if hashlib.sha256(blob).hexdigest() != manifest["sha256"][f"{name}.parquet"]:
                    raise BundleError(f"{path}: {name}.parquet does not match its checksum in the manifest")
                frames[name] = pd.read_parquet(io.BytesIO(blob))
    except BundleError:
        raise
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise BundleError(f"{path}: not a readable adlapp bundle ({type(e).__name__}: {e})") from None
    missing = set(RUN_COLUMNS) - set(frames["runs"].columns)
    if missing:
        raise BundleError(f"{path}: runs table lacks column(s) {', '.join(sorted(missing))}")
    counts = {"runs": len(frames["runs"]), "epoch_rows": len(frames["epochs"]), "test_rows": len(frames["tests"])}
    if counts != manifest.get("counts"):
        raise BundleError(f"{path}: table sizes {counts} differ from the manifest {manifest.get('counts')}")
    return LoadedBundle(path, manifest, RunTables(frames["runs"], frames["epochs"], frames["tests"]))


def read_bundle_dir(folder: str | Path) -> tuple[list[LoadedBundle], list[str]]:
    """Every `*.zip` bundle in `folder`, sorted by name, and one error line per unreadable one (skipped)."""
    loaded, errors = [], []
    for path in sorted(Path(folder).glob("*.zip")):
        try:
            loaded.append(read_bundle(path))
        except BundleError as e:
            errors.append(str(e))
    return loaded, errors


def export_store(store: RunStore, out: str | Path, experiment: str | None = None,
                 variants: list[str] | None = None, statuses: tuple[str, ...] = ("done", "diverged"),
                 provenance: dict[str, Any] | None = None) -> Path:
    """Export finished runs (by default) matching the filters. Raises BundleError when nothing matches."""
    runs = store.runs(experiment=experiment)
    runs = runs[runs["status"].isin(statuses)]
    if variants:
        runs = runs[runs["variant"].isin(variants)]
    if runs.empty:
        raise BundleError(f"{store.db_path}: no runs match (experiment={experiment}, variants={variants}, "
                          f"status in {list(statuses)})")
    return write_bundle(out, store.tables(keys=list(runs["key"])), provenance)


def import_bundle(store: RunStore, path: str | Path) -> list[str]:
    """Add a bundle's runs to the store (existing run keys are kept as they are); returns the new keys."""
    bundle = read_bundle(path)
    return store.insert_tables(bundle.tables, source=f"bundle:{Path(path).name}")
