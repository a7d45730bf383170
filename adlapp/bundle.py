"""Portable result bundles: a zip holding Parquet tables and a JSON manifest with provenance.

A bundle is how finished runs travel (export/import) and how `cached_runs/` ships the course study. It
contains no pickle and no checkpoint, so loading one never executes code, and reading needs only pandas and
pyarrow (no torch): the viewer pages load bundles in well under a second.

Layout inside the zip: manifest.json, runs.parquet, epochs.parquet, tests.parquet, and optionally
`weights/<run key>/epoch-<E>.safetensors` for runs that kept their model at test epoch E (tensors only, see
adlapp.weights; bundles written before weights existed have none and stay valid). Each weights member must
belong to a run of the bundle and one of its test epochs, match its checksum in the manifest, stay within
the caps below and pass `weights.check_file`, which parses the file without torch.

A bundle may come from anyone, so `read_bundle` is a trust boundary. Before anything is decompressed it checks
the sizes the zip directory and the Parquet footers state against the caps below, then reads each member with
a hard cap (a directory can lie). Every run must be a finished run whose key is the one its own config and
seed produce, and every column and metric row is checked for type, range and consistency with its run. One
bad value refuses the whole bundle with a single line (BundleError) naming the file, the run and the field:
nothing of a refused bundle reaches the store or the viewer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import platform
import re
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adlapp import weights as weights_mod
from adlapp.config import LIMITS, MAX_SEED, ConfigError, config_from_dict, is_run_key, run_key, variant_label
from adlapp.store import FINISHED, OPTIONAL_RUN_COLUMNS, RUN_COLUMNS, RunStore, RunTables, StoreError

__all__ = ["BUNDLE_FORMAT", "BundleError", "LoadedBundle", "write_bundle", "read_bundle", "read_bundle_dir",
           "export_store", "import_bundle"]

BUNDLE_FORMAT = "adlapp-bundle/1"
_TABLES = ("runs", "epochs", "tests")
_MEMBERS = ("manifest.json",) + tuple(f"{name}.parquet" for name in _TABLES)

_MiB = 2 ** 20

# -- Caps --------------------------------------------------------------------------------------------------
# Reference points: the course U-Net study, 20 runs and 100k metric rows, is a 732 KiB bundle (~7 bytes a row);
# a large legitimate study reaches ~10M metric rows in a few thousand runs, ~30-80 MB of Parquet (random-looking
# values compress worst). Each cap leaves 2-4x headroom over that and stays far below what would exhaust the
# memory of a laptop: the worst bundle that passes every cap needs about 1-2 GB while being checked.
MAX_BUNDLE_BYTES = 256 * _MiB           # the .zip file itself
MAX_ZIP_DIRECTORY_BYTES = 64 * 1024     # the 4 member entries take ~300 bytes; a huge directory is a bomb too
MAX_MANIFEST_BYTES = 8 * _MiB           # ~190 bytes of JSON a run: MAX_RUNS runs need ~4 MiB
MAX_PARQUET_BYTES = 256 * _MiB          # one Parquet member as stored in the zip (it is zstd-compressed inside)
MAX_COMPRESSION_RATIO = 100             # our writer stores members (1:1); deflated JSON reaches ~15:1, zeros 1000:1
_RATIO_FREE_BYTES = _MiB                # members this small cannot hurt whatever their ratio
MAX_TABLE_BYTES = 512 * _MiB            # one table's uncompressed Parquet pages, per the footer; 10M rows ~100 MiB
MAX_RUNS = 20_000                       # course study: 35 runs; 10M metric rows at 1000 epochs x 5 are 2,000 runs
MAX_METRIC_ROWS = 20_000_000            # per metrics table: 2x the largest legitimate study
MAX_METRIC_NAMES = 1_000                # distinct metric names in a table; the course records at most 5
MAX_TEXT_BYTES = 64 * 1024              # one text cell of the runs table (a config is ~400 bytes, a traceback ~4 KiB)
MAX_RUNS_TEXT_BYTES = 64 * _MiB         # all text of the runs table once decoded (Parquet dictionaries expand)
_READ_CHUNK = _MiB
# Weights: the course CNN's model is ~0.1 MiB, the U-Net's ~1-2 MiB a test epoch; a study of 35 runs keeps ~100.
MAX_WEIGHT_FILE_BYTES = 16 * _MiB       # one weights member (uncompressed)
MAX_WEIGHTS_BYTES = 192 * _MiB          # all weights members together (uncompressed)
MAX_WEIGHT_FILES = 2_000                # weights members in one bundle
_WEIGHT_DIRECTORY_BYTES = 256           # zip directory bytes allowed per weights member (~110 needed)
_WEIGHT_MEMBER = re.compile(r"weights/([0-9a-f]{16})/epoch-([1-9][0-9]{0,8})\.safetensors")

# Metric names: what the trainer writes (train_loss, val_pixel_acc, ...), never a path, markup or a megabyte.
_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Plausible ranges of the metrics the trainer records; NaN (a missing or diverged value) is always allowed.
_UNIT_INTERVAL_METRICS = ("acc", "pixel_acc", "f1", "val_acc", "val_pixel_acc", "val_f1",
                          "best_acc", "best_pixel_acc", "best_f1")
# Metrics whose value is an epoch of the same run, no later than the row's own (best_epoch: the epoch whose
# weights a test row scored): whole numbers from 1 to the row's epoch.
_EPOCH_METRICS = ("best_epoch",)

_TEXT_COLUMNS = ("key", "experiment", "variant", "status", "device", "source", "host", "error", "command",
                 "git_commit", "versions", "config", "notes")
_WHOLE_COLUMNS = {"seed": (0, MAX_SEED), "epochs": (1, LIMITS["epochs"]), "last_epoch": (1, LIMITS["epochs"]),
                  "pid": (0, 2 ** 63 - 1), "diverged_epoch": (1, LIMITS["epochs"]), "threads": (1, LIMITS["threads"])}
_TIME_COLUMNS = ("created", "started", "finished", "heartbeat")
_REQUIRED = ("key", "experiment", "variant", "seed", "epochs", "status", "last_epoch", "created", "config")
_SUMMARY = ("key", "experiment", "variant", "seed", "epochs", "status", "last_epoch")   # manifest["runs"] entries


class BundleError(ValueError):
    """A bundle is unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class LoadedBundle:
    path: Path
    manifest: dict[str, Any]
    tables: RunTables
    weights: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)   # key -> {test epoch: member name}


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def write_bundle(path: str | Path, tables: RunTables, provenance: dict[str, Any] | None = None,
                 weights: dict[str, dict[int, Path]] | None = None) -> Path:
    """Write `tables` to a bundle at `path`; the manifest records counts, checksums and provenance.

    `weights` (run key -> {test epoch: safetensors file}) adds those files as `weights/<key>/epoch-<E>...`."""
    path = Path(path)
    runs = tables.runs.reindex(columns=RUN_COLUMNS)
    epochs = tables.epochs[["key", "epoch", "name", "value"]].astype(
        {"epoch": "int32", "value": "float64"}).sort_values(["key", "epoch", "name"])
    tests = tables.tests[["key", "epoch", "name", "value"]].astype(
        {"epoch": "int32", "value": "float64"}).sort_values(["key", "epoch", "name"])
    blobs = {f"{name}.parquet": _parquet_bytes(df) for name, df in zip(_TABLES, (runs, epochs, tests), strict=True)}
    for key, files in sorted((weights or {}).items()):
        for epoch, file in sorted(files.items()):
            blobs[f"weights/{key}/{weights_mod.file_name(epoch)}"] = Path(file).read_bytes()
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


# -- reading: helpers --------------------------------------------------------------------------------------
def _show(value: Any, limit: int = 40) -> str:
    """A value for an error line: repr (so control characters are escaped), cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _clip(text: str, limit: int = 120) -> str:
    """Free text (an exception's message) for an error line: escaped to one line, cut to `limit` characters."""
    text = repr(str(text))[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def _run_label(key: Any) -> str:
    """How an error line names a run: the first 16 characters of its key, repr-escaped."""
    return repr(key[:16]) if isinstance(key, str) else _show(key, 20)


def _check_zip_directory(path: Path, f: BinaryIO, size: int) -> None:
    """Refuse a zip whose central directory is large or zip64 before zipfile parses it into memory.

    zipfile reads the whole directory into one ZipInfo per entry: millions of tiny entries in a small file
    would cost gigabytes. The end-of-directory record states the entry count and size; zipfile finds it the same
    way (the last signature in the final 64 KiB + 22 bytes), so both read the same record."""
    tail_len = min(size, 22 + 65_535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise BundleError(f"{path}: not a zip file (no end-of-directory record)")
    _, _, _, _, entries, dir_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        raise BundleError(f"{path}: zip64 archive; a bundle is never that large")
    if (entries > 2 * len(_MEMBERS) + MAX_WEIGHT_FILES
            or dir_size > MAX_ZIP_DIRECTORY_BYTES + MAX_WEIGHT_FILES * _WEIGHT_DIRECTORY_BYTES):
        raise BundleError(f"{path}: zip directory of {entries:,} entries / {dir_size:,} bytes; a bundle has "
                          f"{len(_MEMBERS)} members and at most {MAX_WEIGHT_FILES:,} weights files")


def _check_members(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The four members and any weights files, each checked from the directory alone: nothing else, no
    duplicates, sizes and compression ratios within the caps, no encryption, a compression method zipfile reads."""
    names = zf.namelist()
    unknown = sorted(n for n in set(names) - set(_MEMBERS) if not _WEIGHT_MEMBER.fullmatch(n))
    if unknown:
        raise BundleError(f"{path}: unexpected member {_show(unknown[0])}; a bundle holds only "
                          f"{', '.join(_MEMBERS)} and weights/<run key>/epoch-<E>.safetensors files")
    for name in _MEMBERS:
        if names.count(name) != 1:
            raise BundleError(f"{path}: {name} appears {names.count(name)} times; expected once")
    weight_names = [n for n in names if n not in _MEMBERS]
    if len(weight_names) != len(set(weight_names)):
        twice = next(n for n in weight_names if weight_names.count(n) > 1)
        raise BundleError(f"{path}: {twice} appears {weight_names.count(twice)} times; expected once")
    if len(weight_names) > MAX_WEIGHT_FILES:
        raise BundleError(f"{path}: {len(weight_names):,} weights files; at most {MAX_WEIGHT_FILES:,}")
    infos = {info.filename: info for info in zf.infolist()}
    total = sum(infos[n].file_size for n in weight_names)
    if total > MAX_WEIGHTS_BYTES:
        raise BundleError(f"{path}: weights files of {total:,} bytes uncompressed; at most {MAX_WEIGHTS_BYTES:,}")
    for name, info in infos.items():
        cap = (MAX_MANIFEST_BYTES if name == "manifest.json" else MAX_PARQUET_BYTES if name in _MEMBERS
               else MAX_WEIGHT_FILE_BYTES)
        if info.flag_bits & 0x1:
            raise BundleError(f"{path}: {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleError(f"{path}: {name} uses zip compression method {info.compress_type}; "
                              f"expected stored or deflated")
        if info.file_size > cap:
            raise BundleError(f"{path}: {name} is {info.file_size:,} bytes uncompressed; at most {cap:,}")
        if info.file_size > _RATIO_FREE_BYTES and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
            raise BundleError(f"{path}: {name} expands {info.file_size / max(info.compress_size, 1):,.0f}-fold; "
                              f"at most {MAX_COMPRESSION_RATIO}-fold (a zip bomb?)")
    return infos


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytearray:
    """The member's bytes, streamed, refusing as soon as more than `cap` arrive whatever the directory said."""
    data = bytearray()
    with zf.open(info) as f:
        while chunk := f.read(min(_READ_CHUNK, cap + 1 - len(data))):
            data += chunk
    if len(data) > cap:
        raise BundleError(f"{path}: {info.filename} holds more than {cap:,} bytes")
    return data


def _check_manifest(path: Path, raw: bytearray) -> dict[str, Any]:
    """The manifest's structure (its run list is compared with the runs table later)."""
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as e:     # ValueError covers bad UTF-8 and bad JSON alike
        raise BundleError(f"{path}: manifest.json is not JSON ({type(e).__name__}: {_clip(e, 80)})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest.json holds a JSON {type(manifest).__name__}; expected an object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: format {_show(manifest.get('format'))}, expected {BUNDLE_FORMAT!r}")
    counts, sums = manifest.get("counts"), manifest.get("sha256")
    if not isinstance(counts, dict) or set(counts) != {"runs", "epoch_rows", "test_rows"} or any(
            not _is_int(v) or v < 0 for v in counts.values()):
        raise BundleError(f"{path}: manifest counts {_show(counts, 80)}: expected whole numbers of runs, "
                          f"epoch_rows and test_rows")
    if not isinstance(sums, dict) or any(not isinstance(sums.get(f"{n}.parquet"), str) for n in _TABLES):
        raise BundleError(f"{path}: manifest sha256 {_show(sums, 80)}: expected a checksum per table")
    if not isinstance(manifest.get("runs"), list):
        raise BundleError(f"{path}: manifest runs {_show(manifest.get('runs'))}: expected a list")
    if not isinstance(manifest.get("created"), str) or len(manifest["created"]) > 64:
        raise BundleError(f"{path}: manifest created {_show(manifest.get('created'))}: expected a date")
    if not isinstance(manifest.get("provenance"), dict):
        raise BundleError(f"{path}: manifest provenance {_show(manifest.get('provenance'))}: expected an object")
    return manifest


def _open_parquet(path: Path, name: str, blob: bytearray, max_rows: int, rows: int, text: list[str]
                  ) -> pq.ParquetFile:
    """A ParquetFile whose footer has been checked: row count (= the manifest's), uncompressed size, columns.

    `text` columns are read as dictionaries: a dictionary page may repeat one long string for millions of rows
    at almost no cost in the file, so strings are only expanded after their dictionary has been checked."""
    pf = pq.ParquetFile(pa.BufferReader(pa.py_buffer(blob)))
    meta = pf.metadata
    if meta.num_rows > max_rows:
        raise BundleError(f"{path}: {name} states {meta.num_rows:,} rows; at most {max_rows:,}")
    if meta.num_rows != rows:
        raise BundleError(f"{path}: {name} holds {meta.num_rows:,} rows, the manifest says {rows:,}")
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > MAX_TABLE_BYTES:
        raise BundleError(f"{path}: {name} states {size:,} bytes uncompressed; at most {MAX_TABLE_BYTES:,}")
    schema = pf.schema_arrow
    if len(set(schema.names)) != len(schema.names):
        raise BundleError(f"{path}: {name} has duplicate column names")
    stringy = [c for c in text if c in schema.names and _is_text_type(schema.field(c).type)]
    return pq.ParquetFile(pa.BufferReader(pa.py_buffer(blob)), read_dictionary=stringy) if stringy else pf


def _is_text_type(t: pa.DataType) -> bool:
    """Arrow text, plain or dictionary-encoded."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_whole(value: Any) -> int | None:
    """`value` as an int when it is a whole number (an int, or a float such as 3.0 that pandas makes of an int
    column with gaps); None for anything else, bools and text included."""
    if _is_int(value):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _read_column(pf: pq.ParquetFile, column: str) -> pa.Array:
    """One column as a single array (dictionaries unified across row groups)."""
    table = pf.read(columns=[column])
    col = table.column(0)
    if pa.types.is_dictionary(col.type):
        col = table.unify_dictionaries().column(0)
    elif _is_text_type(col.type):     # text that Parquet did not hand back as a dictionary
        col = col.dictionary_encode()
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


# -- reading: the runs table -------------------------------------------------------------------------------
def _check_runs_text(path: Path, table: pa.Table) -> None:
    """Bound every text cell and the decoded text of the whole table before any string is expanded.
    `table` has one chunk per column, text columns as dictionaries."""
    total = 0
    for column in table.column_names:
        col = table.column(column)
        if not col.num_chunks or not pa.types.is_dictionary(col.type):
            continue
        chunk = col.chunk(0)
        lengths = pc.binary_length(chunk.dictionary).to_numpy(zero_copy_only=False).astype(np.int64)
        idx = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        cell = lengths[idx] if len(lengths) else np.zeros(len(idx), dtype=np.int64)
        if chunk.null_count:
            cell[chunk.is_null().to_numpy(zero_copy_only=False)] = 0
        total += int(cell.sum())
        if len(cell) and cell.max() > MAX_TEXT_BYTES:
            row = int(np.argmax(cell))
            key = table.column("key")[row].as_py() if "key" in table.column_names else None
            raise BundleError(f"{path}: run {_run_label(key)}: {column} holds {int(cell.max()):,} bytes of text; "
                              f"at most {MAX_TEXT_BYTES:,}")
    if total > MAX_RUNS_TEXT_BYTES:
        raise BundleError(f"{path}: runs.parquet holds {total:,} bytes of text; at most {MAX_RUNS_TEXT_BYTES:,}")


def _check_run(where: str, rec: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
    """One runs row, checked and cleaned; also its test epochs. `where` is the error prefix naming the run."""
    def bad(field: str, why: str) -> BundleError:
        return BundleError(f"{where}: {field} {_show(rec.get(field))}: {why}")

    for field in _REQUIRED:
        if rec.get(field) is None:
            raise BundleError(f"{where}: {field}: missing")
    out: dict[str, Any] = {}
    for field in _TEXT_COLUMNS:
        value = rec.get(field)
        if value is not None and not isinstance(value, str):
            raise bad(field, "must be text")
        out[field] = value
    for field, (low, high) in _WHOLE_COLUMNS.items():
        value = rec.get(field)
        whole = _as_whole(value)
        if value is not None and (whole is None or not low <= whole <= high):
            raise bad(field, f"must be a whole number from {low} to {high:,}")
        out[field] = whole
    for field in _TIME_COLUMNS:
        value = rec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise bad(field, "must be a finite number (seconds since 1970)")
        out[field] = None if value is None else float(value)
    if out["versions"] is not None:
        try:
            versions = json.loads(out["versions"])
        except (ValueError, RecursionError):
            versions = None
        if not isinstance(versions, dict):
            raise bad("versions", "must be a JSON object")
    if out["status"] not in FINISHED:
        raise bad("status", f"only finished runs ({', '.join(FINISHED)}) can be imported")

    try:
        cfg = config_from_dict(json.loads(out["config"]))
    except (ValueError, RecursionError, TypeError) as e:   # ConfigError and JSONDecodeError are ValueErrors
        why = _clip(e) if isinstance(e, ConfigError) else f"not JSON ({type(e).__name__})"
        raise BundleError(f"{where}: config: {why}") from None
    if out["experiment"] != cfg.experiment:
        raise bad("experiment", f"the config says {cfg.experiment!r}")
    if out["variant"] != variant_label(cfg):
        raise bad("variant", f"the config makes it {variant_label(cfg)!r}")
    if out["epochs"] != cfg.epochs:
        raise bad("epochs", f"the config says {cfg.epochs}")
    if out["key"] != run_key(cfg, out["seed"]):
        raise bad("key", "is not the run key of the row's config and seed")
    epochs, last = out["epochs"], out["last_epoch"]
    if not last <= epochs:
        raise bad("last_epoch", f"must be from 1 to the run's {epochs} epochs")
    if out["status"] == "done":
        if last != epochs:
            raise bad("last_epoch", f"a done run reached its last epoch ({epochs})")
        if out["diverged_epoch"] is not None:
            raise bad("diverged_epoch", "a done run did not diverge")
    elif out["diverged_epoch"] is None or not out["diverged_epoch"] <= last:
        raise bad("diverged_epoch", f"a diverged run needs the epoch it diverged at, from 1 to {last}")
    out["pid"] = None             # a process id means nothing on another machine
    return out, cfg.test_epochs


def _read_runs(path: Path, blob: bytearray, rows: int) -> tuple[pd.DataFrame, dict[str, tuple[int, ...]]]:
    """The checked runs table (clean dtypes, every RUN_COLUMN present) and each run's test epochs."""
    pf = _open_parquet(path, "runs.parquet", blob, MAX_RUNS, rows, list(_TEXT_COLUMNS))
    schema = pf.schema_arrow
    missing = [c for c in RUN_COLUMNS if c not in schema.names and c not in OPTIONAL_RUN_COLUMNS]
    if missing:
        raise BundleError(f"{path}: runs table lacks column(s) {', '.join(missing)}")
    present = [c for c in RUN_COLUMNS if c in schema.names]
    for c in present:       # only flat scalars: nested or binary columns could hide anything
        t = schema.field(c).type
        flat = (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t)
                or pa.types.is_floating(t) or _is_text_type(t))
        if not flat:
            raise BundleError(f"{path}: runs.parquet column {c!r} has type {t}; expected text or numbers")
    table = pf.read(columns=present).unify_dictionaries().combine_chunks()
    _check_runs_text(path, table)
    records = table.to_pylist()

    clean, test_epochs = [], {}
    for rec in records:
        key = rec.get("key")
        where = f"{path}: run {_run_label(key)}"
        if not is_run_key(key):
            raise BundleError(f"{where}: key: not a run key (16 lowercase hex digits)")
        if key in test_epochs:
            raise BundleError(f"{where}: key: appears twice in the runs table")
        out, test_epochs[key] = _check_run(where, rec)
        clean.append(out)

    def column(name: str) -> pd.Series:
        values = [r[name] for r in clean]
        if name in ("seed", "epochs", "last_epoch"):
            return pd.Series(values, dtype="int64")
        if name in _TIME_COLUMNS:
            return pd.Series(values, dtype="float64")
        if name in _WHOLE_COLUMNS or all(v is None for v in values):
            return pd.Series(values, dtype="object")      # ints or None, as SQLite gives nullable integers
        return pd.Series(values, dtype="str")
    return pd.DataFrame({name: column(name) for name in RUN_COLUMNS}), test_epochs


# -- reading: the metric tables ----------------------------------------------------------------------------
def _metric_ranges(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of each metric name's plausible values."""
    low = np.full(len(names), -np.inf)
    high = np.full(len(names), np.inf)
    for i, name in enumerate(names):
        if name in _UNIT_INTERVAL_METRICS:
            low[i], high[i] = 0.0, 1.0
        elif name == "seconds" or name == "loss" or name.endswith("_loss"):
            low[i] = 0.0      # +inf stays possible: a loss overflowing is how a run diverges
        elif name in _EPOCH_METRICS:
            low[i] = 1.0      # the upper bound is the row's epoch, checked per row
    return low, high


def _read_metrics(path: Path, table_name: str, blob: bytearray, rows: int, runs: pd.DataFrame,
                  test_epochs: dict[str, tuple[int, ...]] | None) -> pd.DataFrame:
    """A checked metrics table (key, epoch, name, value), vectorised: 10M rows take a few seconds.

    `test_epochs` given (the tests table): each row's epoch must be one its run scores the test split at;
    otherwise any epoch from 1 to the run's epochs."""
    name = f"{table_name}.parquet"
    pf = _open_parquet(path, name, blob, MAX_METRIC_ROWS, rows, ["key", "name"])
    schema = pf.schema_arrow
    missing = [c for c in ("key", "epoch", "name", "value") if c not in schema.names]
    if missing:
        raise BundleError(f"{path}: {name} lacks column(s) {', '.join(missing)}")
    n = pf.metadata.num_rows

    # Keys: rank each run key in sorted order, so that the sorted tables write_bundle makes give increasing
    # (key, epoch, name) codes and duplicates are ruled out in one pass.
    keys = _read_column(pf, "key")
    run_keys = np.sort(runs["key"].to_numpy(dtype=object)).astype(str)
    if n and not pa.types.is_dictionary(keys.type):
        raise BundleError(f"{path}: {name} column 'key' has type {keys.type}; expected text")
    if keys.null_count:
        raise BundleError(f"{path}: {name}: a row has no key")
    key_idx = keys.indices.to_numpy(zero_copy_only=False).astype(np.int64) if n else np.zeros(0, np.int64)
    key_values = keys.dictionary.to_pylist() if n else []
    used = np.flatnonzero(np.bincount(key_idx, minlength=len(key_values)))
    key_rank_of = pd.Index(run_keys).get_indexer([str(key_values[i]) for i in used])
    unknown = used[key_rank_of < 0]
    if len(unknown):
        raise BundleError(f"{path}: {name}: run {_run_label(key_values[unknown[0]])}: key: not a run of this "
                          f"bundle")
    lookup = np.full(len(key_values), -1, dtype=np.int64)
    lookup[used] = key_rank_of
    key_rank = lookup[key_idx]

    def where(row: int, field: str, value: Any = None, show: bool = True) -> str:
        """Error prefix naming the file, table, run and field (and value) of row `row`."""
        shown = f" {_show(value)}" if show else ""
        return f"{path}: {name}: run {_run_label(key_values[key_idx[row]])}: {field}{shown}"

    def present(column: pa.Array, field: str) -> pa.Array:
        """`column`, unless a row has no value in it (the first such row is named)."""
        if column.null_count:
            row = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise BundleError(f"{where(row, field, show=False)}: missing")
        return column

    # The other columns' types come from the footer, before their data is read.
    for column, ok in (("epoch", lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)),
                       ("name", _is_text_type),
                       ("value", lambda t: pa.types.is_integer(t) or pa.types.is_floating(t))):
        t = schema.field(column).type
        if n and not (ok(t) or pa.types.is_null(t)):
            raise BundleError(f"{where(0, column, show=False)}: stored as {t}; expected "
                              f"{'text' if column == 'name' else 'numbers'}")

    # Epochs: whole numbers from 1 to the run's epochs (tests: one of the run's test epochs).
    epoch_col = present(_read_column(pf, "epoch"), "epoch")
    raw = epoch_col.to_numpy(zero_copy_only=False) if n else np.zeros(0, np.int64)
    if raw.dtype.kind == "f":
        whole = np.isfinite(raw) & (raw == np.floor(raw)) & (np.abs(raw) <= 2 ** 53)
        if not whole.all():
            row = int(np.argmin(whole))
            raise BundleError(f"{where(row, 'epoch', raw[row].item())}: must be a whole number")
    elif raw.dtype.kind == "u" and len(raw) and raw.max() > np.iinfo(np.int64).max:
        row = int(np.argmax(raw))
        raise BundleError(f"{where(row, 'epoch', raw[row].item())}: must be a whole number from 1 to the run's "
                          f"epochs")
    epoch = raw.astype(np.int64)
    by_key = runs.set_index("key")["epochs"]
    run_epochs = by_key.reindex(run_keys).to_numpy(dtype=np.int64)
    bad = (epoch < 1) | (epoch > run_epochs[key_rank])
    if bad.any():
        row = int(np.argmax(bad))
        raise BundleError(f"{where(row, 'epoch', int(epoch[row]))}: must be from 1 to the run's "
                          f"{run_epochs[key_rank[row]]} epochs")
    stride = int(run_epochs.max()) + 1 if len(run_epochs) else 1
    pair = key_rank * stride + epoch
    if test_epochs is not None and n:
        allowed = np.concatenate([rank * stride + np.asarray(test_epochs[k], dtype=np.int64)
                                  for rank, k in enumerate(run_keys)])      # sorted: rank-major, epochs sorted
        at = np.minimum(np.searchsorted(allowed, pair), len(allowed) - 1)
        bad = allowed[at] != pair
        if bad.any():
            row = int(np.argmax(bad))
            raise BundleError(f"{where(row, 'epoch', int(epoch[row]))}: the run's config scores the test split "
                              f"only after epoch(s) {', '.join(map(str, test_epochs[str(key_values[key_idx[row]])]))}")

    # Names: short identifiers, checked on the dictionary before any string is expanded.
    names = present(_read_column(pf, "name"), "name")
    name_idx = names.indices.to_numpy(zero_copy_only=False).astype(np.int64) if n else np.zeros(0, np.int64)
    name_values = names.dictionary.to_pylist() if n else []
    used = np.flatnonzero(np.bincount(name_idx, minlength=len(name_values)))
    if len(used) > MAX_METRIC_NAMES:
        raise BundleError(f"{path}: {name}: {len(used):,} distinct metric names; at most {MAX_METRIC_NAMES:,}")
    for i in used:
        if not isinstance(name_values[i], str) or not _METRIC_NAME.fullmatch(name_values[i]):
            row = int(np.argmax(name_idx == i))
            raise BundleError(f"{where(row, 'name', name_values[i])}: must be a metric name matching "
                              f"{_METRIC_NAME.pattern}")
    known = sorted({name_values[i] for i in used})
    lookup = np.full(len(name_values), -1, dtype=np.int64)
    lookup[used] = pd.Index(known).get_indexer([name_values[i] for i in used])
    name_rank = lookup[name_idx]

    # One row per (key, epoch, name).
    code = pair * max(len(known), 1) + name_rank
    if len(code) > 1 and not bool(np.all(code[1:] > code[:-1])):
        ordered = np.sort(code)
        dup = ordered[1:] == ordered[:-1]
        if dup.any():
            row = int(np.flatnonzero(code == ordered[1:][dup][0])[1])
            raise BundleError(f"{where(row, 'name', name_values[name_idx[row]])}: appears twice at epoch "
                              f"{int(epoch[row])}")

    # Values: numbers (NaN = missing) within each known metric's range.
    value_col = _read_column(pf, "value")
    value = (pc.cast(value_col, pa.float64()).to_numpy(zero_copy_only=False) if n
             else np.zeros(0, dtype=np.float64))
    low, high = _metric_ranges(known)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isnan(value) | ((value >= low[name_rank]) & (value <= high[name_rank])))
    if bad.any():
        row = int(np.argmax(bad))
        lo, hi = low[name_rank[row]], high[name_rank[row]]
        raise BundleError(f"{where(row, name_values[name_idx[row]], value[row].item())}: must be in "
                          f"[{lo:g}, {hi:g}]")
    is_epoch = np.isin(name_rank, [i for i, m in enumerate(known) if m in _EPOCH_METRICS])
    with np.errstate(invalid="ignore"):
        bad = is_epoch & ~(np.isnan(value) | ((value == np.floor(value)) & (value <= epoch)))
    if bad.any():
        row = int(np.argmax(bad))
        raise BundleError(f"{where(row, name_values[name_idx[row]], value[row].item())}: must be a whole epoch "
                          f"from 1 to the row's epoch {int(epoch[row])}")

    return pa.table({
        "key": keys.dictionary_decode() if n else pa.array([], pa.string()),
        "epoch": pa.array(epoch, pa.int64()),
        "name": names.dictionary_decode() if n else pa.array([], pa.string()),
        "value": pa.array(value, pa.float64()),
    }).to_pandas()


def _check_summary(path: Path, manifest: dict[str, Any], runs: pd.DataFrame) -> None:
    """manifest["runs"] lists each run as the runs table has it, in the same order."""
    listed = manifest["runs"]
    if len(listed) != len(runs):
        raise BundleError(f"{path}: the manifest lists {len(listed)} runs, the runs table holds {len(runs)}")
    for entry, row in zip(listed, runs[list(_SUMMARY)].to_dict("records"), strict=True):
        if not isinstance(entry, dict):
            raise BundleError(f"{path}: manifest run {_show(entry)}: expected an object")
        for field in _SUMMARY:
            want = row[field] if isinstance(row[field], str) else int(row[field])
            got = entry.get(field)
            if type(got) is not type(want) or got != want:
                raise BundleError(f"{path}: run {_run_label(row['key'])}: manifest {field} {_show(got)} differs "
                                  f"from the runs table ({_show(want)})")


def read_bundle(path: str | Path) -> LoadedBundle:
    """Read and verify one bundle: sizes, checksums, counts, and every run and metric row (see the module
    docstring). Raises BundleError, one line naming the file (and the run and field at fault)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BundleError(f"{path}: not a file")
        if size > MAX_BUNDLE_BYTES:
            raise BundleError(f"{path}: {size:,} bytes; a bundle is at most {MAX_BUNDLE_BYTES:,}")
        with open(path, "rb") as f:
            _check_zip_directory(path, f, size)
            with zipfile.ZipFile(f) as zf:
                infos = _check_members(path, zf)
                manifest = _check_manifest(path, _read_member(path, zf, infos["manifest.json"], MAX_MANIFEST_BYTES))
                counts = manifest["counts"]

                def blob(table: str) -> bytearray:
                    # One member in memory at a time: each is parsed (and dropped) before the next is read.
                    member = f"{table}.parquet"
                    data = _read_member(path, zf, infos[member], MAX_PARQUET_BYTES)
                    if hashlib.sha256(data).hexdigest() != manifest["sha256"][member]:
                        raise BundleError(f"{path}: {member} does not match its checksum in the manifest")
                    return data

                runs, test_epochs = _read_runs(path, blob("runs"), counts["runs"])
                epochs = _read_metrics(path, "epochs", blob("epochs"), counts["epoch_rows"], runs, None)
                tests = _read_metrics(path, "tests", blob("tests"), counts["test_rows"], runs, test_epochs)
                weights = _check_weights(path, zf, infos, manifest, runs, test_epochs)
        _check_summary(path, manifest, runs)
    except BundleError:
        raise
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, zlib.error, struct.error, EOFError, OSError, ValueError, TypeError, KeyError,
            IndexError, OverflowError, NotImplementedError, RuntimeError, RecursionError, pa.ArrowException) as e:
        # A damaged zip or Parquet file: any of these may come out of zipfile, zlib or pyarrow.
        raise BundleError(f"{path}: not a readable adlapp bundle ({type(e).__name__}: {_clip(e, 160)})") from None
    return LoadedBundle(path, manifest, RunTables(runs, epochs, tests), weights)


def _check_weights(path: Path, zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], manifest: dict[str, Any],
                   runs: pd.DataFrame, test_epochs: dict[str, tuple[int, ...]]) -> dict[str, dict[int, str]]:
    """Every weights member: a run of this bundle, one of its test epochs (no later than its last epoch),
    its manifest checksum, and a well-formed safetensors file. Returns key -> {epoch: member name}."""
    sums = manifest["sha256"]
    listed = sorted(n for n in sums if isinstance(n, str) and n.startswith("weights/"))
    missing = [n for n in listed if n not in infos]
    if missing:
        raise BundleError(f"{path}: the manifest lists {_show(missing[0], 80)}, which the bundle lacks")
    last = dict(zip(runs["key"], runs["last_epoch"].astype(int), strict=True))
    found: dict[str, dict[int, str]] = {}
    for name in sorted(n for n in infos if n not in _MEMBERS):
        key, epoch = _WEIGHT_MEMBER.fullmatch(name).groups()
        epoch = int(epoch)
        if key not in test_epochs:
            raise BundleError(f"{path}: {name}: run {_run_label(key)}: key: not a run of this bundle")
        if epoch not in test_epochs[key] or epoch > last[key]:
            raise BundleError(f"{path}: {name}: run {_run_label(key)}: epoch {epoch}: the run scores the test "
                              f"split only after epoch(s) {', '.join(map(str, test_epochs[key]))} (and reached "
                              f"epoch {last[key]})")
        if not isinstance(sums.get(name), str):
            raise BundleError(f"{path}: {name} has no checksum in the manifest")
        data = _read_member(path, zf, infos[name], MAX_WEIGHT_FILE_BYTES)
        if hashlib.sha256(data).hexdigest() != sums[name]:
            raise BundleError(f"{path}: {name} does not match its checksum in the manifest")
        try:
            weights_mod.check_file(data, MAX_WEIGHT_FILE_BYTES)
        except weights_mod.WeightsError as e:
            raise BundleError(f"{path}: {name}: not a valid weights file ({_clip(e, 200)})") from None
        found.setdefault(key, {})[epoch] = name
    return found


def _bundle_weights(bundle: LoadedBundle) -> Callable[[list[str]], Iterator[tuple[str, int, bytes]]]:
    """For the store's staged import: the checked weights files of the runs it adds, read again from the zip
    and compared with the manifest checksums once more (the file may have changed since it was checked)."""
    def files(keys: list[str]) -> Iterator[tuple[str, int, bytes]]:
        wanted = [(k, e, n) for k in keys for e, n in sorted(bundle.weights.get(k, {}).items())]
        if not wanted:
            return
        path = bundle.path
        try:
            with zipfile.ZipFile(path) as zf:
                for key, epoch, name in wanted:
                    data = _read_member(path, zf, zf.getinfo(name), MAX_WEIGHT_FILE_BYTES)
                    if hashlib.sha256(data).hexdigest() != bundle.manifest["sha256"][name]:
                        raise BundleError(f"{path}: {name} changed while it was imported")
                    yield key, epoch, bytes(data)
        except (zipfile.BadZipFile, zlib.error, KeyError, OSError, EOFError) as e:
            raise BundleError(f"{path}: weights unreadable during import ({type(e).__name__}: {_clip(e, 160)})"
                              ) from None
    return files


def read_weights(bundle: LoadedBundle, key: str, epoch: int) -> bytes:
    """The safetensors bytes of one run's weights at one epoch in a bundle `read_bundle` accepted, read again
    from the zip with its size cap and compared with the manifest checksum. BundleError when the bundle does
    not carry them or the file changed."""
    member = bundle.weights.get(key, {}).get(int(epoch))
    if member is None:
        raise BundleError(f"{bundle.path}: no weights for run {key} at epoch {epoch}")
    one = dataclasses.replace(bundle, weights={key: {int(epoch): member}})
    (_, _, blob), = list(_bundle_weights(one)([key]))
    return blob


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
                 provenance: dict[str, Any] | None = None, weights: bool | None = None,
                 keys: list[str] | None = None, weight_keys: set[str] | None = None) -> Path:
    """Export finished runs (by default) matching the filters (`keys`: only these runs). Raises BundleError
    when nothing matches.

    weights: True carries each run's stored weights (BundleError when they exceed the weights caps), False
    leaves them out, None (default) carries them when they fit the caps and otherwise leaves them all out,
    saying so in the manifest's provenance, so a large study still exports as before. `weight_keys` limits
    the weights carried to those runs (a shipped study keeps one seed's models per variant, not every one)."""
    runs = store.runs(experiment=experiment)
    runs = runs[runs["status"].isin(statuses)]
    if variants:
        runs = runs[runs["variant"].isin(variants)]
    if keys is not None:
        runs = runs[runs["key"].isin(set(keys))]
    if runs.empty:
        raise BundleError(f"{store.db_path}: no runs match (experiment={experiment}, variants={variants}, "
                          f"status in {list(statuses)})")
    files = _stored_weights(store, runs) if weights is not False else {}
    if weight_keys is not None:
        files = {k: v for k, v in files.items() if k in weight_keys}
    too_big = _weights_over_caps(files)
    if too_big and weights:
        raise BundleError(f"{store.db_path}: the runs' weights {too_big}; export them without weights")
    if too_big:
        provenance = {**(provenance or {}), "weights": f"left out: {too_big}"}
        files = {}
    return write_bundle(out, store.tables(keys=list(runs["key"])), provenance, files)


def _stored_weights(store: RunStore, runs: pd.DataFrame) -> dict[str, dict[int, Path]]:
    """Each run's weights files that an import accepts: its test epochs up to its last epoch."""
    files = {}
    for r in runs.to_dict("records"):
        try:
            allowed = set(config_from_dict(json.loads(r["config"])).test_epochs)
            stored = store.weight_epochs(r["key"])
        except (ValueError, TypeError, StoreError):    # a row no import would accept anyway
            continue
        epochs = [e for e in stored if e in allowed and e <= int(r["last_epoch"])]
        if epochs:
            folder = store.weights_dir(r["key"])
            files[r["key"]] = {e: folder / weights_mod.file_name(e) for e in epochs}
    return files


def _weights_over_caps(files: dict[str, dict[int, Path]]) -> str | None:
    """Why these weights files could not travel in one bundle (None: they can)."""
    sizes = [p.stat().st_size for by_epoch in files.values() for p in by_epoch.values()]
    if len(sizes) > MAX_WEIGHT_FILES:
        return f"are {len(sizes):,} files; a bundle holds at most {MAX_WEIGHT_FILES:,}"
    if sizes and max(sizes) > MAX_WEIGHT_FILE_BYTES:
        return f"include a {max(sizes):,}-byte file; at most {MAX_WEIGHT_FILE_BYTES:,} each"
    if sum(sizes) > MAX_WEIGHTS_BYTES:
        return f"total {sum(sizes):,} bytes; at most {MAX_WEIGHTS_BYTES:,}"
    return None


def import_bundle(store: RunStore, path: str | Path) -> list[str]:
    """Add a bundle's runs to the store (existing run keys are kept as they are); returns the new keys.
    The whole bundle is checked first (`read_bundle`): a refused bundle adds nothing."""
    bundle = read_bundle(path)
    return store.insert_tables(bundle.tables, source=f"bundle:{Path(path).name}",
                               weights=_bundle_weights(bundle) if bundle.weights else None)
