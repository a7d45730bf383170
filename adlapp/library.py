"""The finished runs the app can show without training: where the store and cached_runs/ are, the bundles in
cached_runs/ (with a signature that changes when a file there does), and bundles as bytes for the Runs page's
download and upload. The bundle format itself, its checks and the store import/export are adlapp.bundle's.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adlapp.bundle import BundleError, LoadedBundle, export_store, import_bundle, read_bundle_dir
from adlapp.store import RunStore, RunTables

__all__ = ["PROJECT_ROOT", "CachedRuns", "store_dir", "cached_runs_dir", "folder_signature", "load_cached",
           "import_cached", "export_bytes", "import_bytes", "newest_first"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent      # the checkout: app.py, runs/, cached_runs/


def store_dir() -> Path:
    """$ADLAPP_STORE, else runs/ next to the app (not the current directory, which may be anywhere)."""
    return Path(os.environ.get("ADLAPP_STORE") or PROJECT_ROOT / "runs")


def cached_runs_dir() -> Path:
    """$ADLAPP_CACHED_RUNS, else cached_runs/ next to the app."""
    return Path(os.environ.get("ADLAPP_CACHED_RUNS") or PROJECT_ROOT / "cached_runs")


# -- cached_runs/ -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedRuns:
    tables: RunTables
    bundles: pd.DataFrame         # file, runs, experiments, variants, created
    errors: list[str]             # one line per unreadable bundle (skipped), naming the file


def folder_signature(folder: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of every bundle: a cache key that changes when a bundle is added or replaced."""
    out = []
    for p in sorted(Path(folder).glob("*.zip")):
        try:
            s = p.stat()
        except OSError:
            continue
        out.append((p.name, s.st_size, s.st_mtime_ns))
    return tuple(out)


def load_cached(folder: str | os.PathLike) -> CachedRuns:
    """Every readable bundle in `folder`, merged; unreadable ones are reported and skipped.

    A run (key) in several bundles is taken from the newest (manifest `created`): a study regenerated piece by
    piece replaces an older bundle's runs as each new bundle lands, with no run counted twice."""
    loaded, errors = read_bundle_dir(folder) if Path(folder).is_dir() else ([], [])
    loaded = newest_first(loaded)
    return CachedRuns(RunTables.concat([b.tables for b in loaded]), _bundle_rows(loaded), errors)


def newest_first(loaded: list[LoadedBundle]) -> list[LoadedBundle]:
    """Bundles newest first (manifest `created`, then name): the order in which a run key is taken."""
    return sorted(loaded, key=lambda b: (str(b.manifest.get("created", "")), b.path.name), reverse=True)


def import_cached(store: RunStore, folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Copy every readable bundle in `folder` into the store (no training); (new keys, error lines)."""
    added, errors = [], []
    for path in sorted(Path(folder).glob("*.zip")):
        try:
            added += import_bundle(store, path)
        except BundleError as e:
            errors.append(str(e))
    return added, errors


def _bundle_rows(loaded: list[LoadedBundle]) -> pd.DataFrame:
    """One row per bundle (newest first); `replaced` counts its runs that a newer bundle holds too."""
    rows, seen = [], set()
    for b in loaded:
        runs = b.tables.runs
        keys = set(runs["key"])
        rows.append({"file": b.path.name, "runs": len(runs), "replaced": len(keys & seen),
                     "experiments": ", ".join(sorted(set(runs["experiment"]))),
                     "variants": ", ".join(sorted(set(runs["variant"]))),
                     "created": b.manifest.get("created", "")})
        seen |= keys
    return pd.DataFrame(rows, columns=["file", "runs", "replaced", "experiments", "variants", "created"])


# -- bundles as bytes (download, upload) --------------------------------------------------------------------
def export_bytes(store: RunStore) -> bytes:
    """A bundle of every finished run in the store, as bytes (for a download). Raises BundleError if none."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_store(store, Path(tmp) / "runs.zip", provenance={"command": "app: Runs page export"})
        return path.read_bytes()


def import_bytes(store: RunStore, name: str, data: bytes) -> list[str]:
    """Import an uploaded bundle; returns the keys of runs new to the store. Raises BundleError naming it.

    `name` is whatever the browser sent, so it is never used as a path: the bytes go to a file in a private
    temporary folder whose name keeps only the safe characters of the upload's last path component (the store
    records it as the runs' source), and messages show the name with control characters replaced.
    """
    display = "".join(c if c.isprintable() else "?" for c in str(name))[:200] or "upload"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _safe_file_name(name)
        path.write_bytes(data)
        try:
            return import_bundle(store, path)
        except BundleError as e:
            raise BundleError(str(e).replace(str(path), display)) from None


def _safe_file_name(name: str) -> str:
    """The upload's last path component with only letters, digits and " ._+-()" kept, without leading dots,
    at most 150 bytes: never "..", never a path that escapes the folder, under every file system's limit."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in " ._+-()" else "_" for c in base).strip().lstrip(".")
    safe = safe.encode()[:150].decode(errors="ignore").strip()
    return safe or "upload.zip"
