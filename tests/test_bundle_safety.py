"""Bundles from anyone: every crafted bundle is refused whole, with one line, before it reaches the store.

Crafted bundles start from real exports (the `course_bundles` fixture: runs really trained) and rewrite their
tables or manifest the way an attacker would, checksums, counts and manifest included, so each test reaches the
check it is about. Zip bombs are written in 1 MiB blocks so the test itself never holds the gigabyte.
"""
import hashlib
import io
import json
import math
import struct
import time
import tracemalloc
import zipfile
import zlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adlapp import bundle as bundle_mod
from adlapp.bundle import BUNDLE_FORMAT, BundleError, import_bundle, read_bundle, read_bundle_dir, write_bundle
from adlapp.config import VARIANTS, config_to_dict, run_key, variant_label
from adlapp.store import RUN_COLUMNS, RunStore, RunTables
from tests.conftest import tiny

MiB = 2 ** 20
TABLES = ("runs", "epochs", "tests")
SUMMARY = ["key", "experiment", "variant", "seed", "epochs", "status", "last_epoch"]


# -- crafting ----------------------------------------------------------------------------------------------
def raw_tables(path):
    """The tables of a bundle exactly as stored, without any of read_bundle's checks."""
    with zipfile.ZipFile(path) as zf:
        return [pd.read_parquet(io.BytesIO(zf.read(f"{name}.parquet"))) for name in TABLES]


def parquet(table) -> bytes:
    buf = io.BytesIO()
    if isinstance(table, pa.Table):
        pq.write_table(table, buf, compression="zstd")
    else:
        table.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def members_for(runs, epochs, tests, **manifest_changes) -> dict[str, bytes]:
    """Bundle members for these tables with a manifest that agrees with them (counts, checksums, run list)."""
    blobs = {f"{name}.parquet": parquet(t) for name, t in zip(TABLES, (runs, epochs, tests), strict=True)}
    listed = (json.loads(runs.reindex(columns=SUMMARY).to_json(orient="records"))
              if isinstance(runs, pd.DataFrame) else [])
    manifest = {"format": BUNDLE_FORMAT, "created": "2026-01-01T00:00:00Z", "provenance": {"command": "crafted"},
                "runs": listed, "counts": {"runs": len(runs), "epoch_rows": len(epochs), "test_rows": len(tests)},
                "sha256": {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()}}
    manifest.update(manifest_changes)
    return {"manifest.json": json.dumps(manifest).encode(), **blobs}


def pack(path, runs, epochs, tests, **manifest_changes):
    return write_zip(path, members_for(runs, epochs, tests, **manifest_changes))


def refused(path, *words):
    """read_bundle refuses `path` with one line naming the file and each of `words`; returns the line."""
    with pytest.raises(BundleError) as err:
        read_bundle(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    for word in words:
        assert word in msg, msg
    return msg


def as_object(df, column):
    df[column] = df[column].astype(object)
    return df


def raw_zip(path, entries, extra_entries=0):
    """A zip written by hand: entries are (name, method, flags, crc, compressed size, uncompressed size, write),
    `write(f)` streaming the compressed bytes. `extra_entries` empty members are appended to the directory."""
    central = []
    with open(path, "wb") as f:
        for name, method, flags, crc, csize, usize, write in entries:
            offset, name_b = f.tell(), name.encode()
            f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc, csize, usize,
                                len(name_b), 0) + name_b)
            write(f)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0, crc, csize,
                                       usize, len(name_b), 0, 0, 0, 0, 0, offset) + name_b)
        for i in range(extra_entries):
            name_b = f"x{i}".encode()
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name_b),
                                       0, 0, 0, 0, 0, 0) + name_b)
        start = f.tell()
        f.write(b"".join(central))
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), f.tell() - start,
                            start, 0))
    return path


def stored(name, data: bytes):
    return (name, zipfile.ZIP_STORED, 0, zlib.crc32(data), len(data), len(data), lambda f: f.write(data))


def zeros_deflated(name, mib: int):
    """A member of `mib` MiB of zeros, deflated: one 1 MiB block compressed once and repeated (a full flush
    makes each copy a self-contained run of deflate blocks)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(MiB)) + comp.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    chunk = bytes(MiB)
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)

    def write(f):
        for _ in range(mib):
            f.write(block)
        f.write(final)
    return (name, zipfile.ZIP_DEFLATED, 0, crc, len(block) * mib + len(final), mib * MiB, write)


def peak_python_memory(fn):
    """Run `fn`, return (its exception or None, peak bytes Python and numpy allocated meanwhile, seconds)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
        error = None
    except Exception as e:  # noqa: BLE001 - the caller asserts which
        error = e
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak, seconds


@pytest.fixture
def cnn(course_bundles):
    return raw_tables(course_bundles / "cnn.zip")


@pytest.fixture
def unet(course_bundles):
    return raw_tables(course_bundles / "unet.zip")


# -- run rows ----------------------------------------------------------------------------------------------
def _key(value):
    def mutate(runs, epochs, tests):
        old = runs.at[0, "key"]
        for t in (runs, epochs, tests):     # the metric rows follow, so only the key itself is at fault
            t["key"] = t["key"].astype(object).where(t["key"] != old, value)
    return mutate


def _set(column, value, row=0):
    def mutate(runs, epochs, tests):
        as_object(runs, column).at[row, column] = value
    return mutate


def _config(change):
    def mutate(runs, epochs, tests):
        cfg = json.loads(runs.at[0, "config"])
        change(cfg)
        runs["config"] = runs["config"].astype(object)
        runs.at[0, "config"] = json.dumps(cfg)
    return mutate


def _astype(column, dtype):
    def mutate(runs, epochs, tests):
        runs[column] = runs[column].astype(dtype)
    return mutate


def _fill(column, value):
    def mutate(runs, epochs, tests):
        runs[column] = value
    return mutate


def _another_runs_config(runs, epochs, tests):
    """Rows faked under a real key: run 0 claims run 2's config (another variant), key kept."""
    for column in ("config", "variant"):
        runs[column] = runs[column].astype(object)
        runs.at[0, column] = runs.at[2, column]


RUN_CASES = {
    "path-like key ../../x": (_key("../../x"), "'../../x': key"),
    "absolute path key": (_key("/tmp/adlapp-victim"), "'/tmp/adlapp-vict': key"),
    "key with a newline": (_key("00000000\n../../etc/passwd"), "'00000000\\n../../e'"),
    "uppercase key": (_key("F99D8518A08AFCC0"), "key"),
    "key of another seed": (_set("seed", 99), "key"),
    "key of another config": (_another_runs_config, "key"),
    "queued": (_set("status", "queued"), "status"),
    "running": (_set("status", "running"), "status"),
    "failed": (_set("status", "failed"), "status"),
    "unknown status": (_set("status", "hacked"), "status"),
    "text seed": (_astype("seed", str), "seed '0'"),
    "bool seed": (_astype("seed", bool), "seed"),
    "fractional seed": (_set("seed", 0.5), "seed"),
    "negative seed": (_set("seed", -1), "seed"),
    "non-JSON config": (_set("config", "{not json"), "config"),
    "config with an unknown field": (_config(lambda c: c["model"].update(dropout=0.5)), "unknown field"),
    "config with NaN lr": (_config(lambda c: c["optim"].update(lr=math.nan)), "lr=nan"),
    "config not an object": (_set("config", "[1, 2]"), "config"),
    "NULL experiment": (_set("experiment", None), "experiment: missing"),
    "NULL config": (_set("config", None), "config: missing"),
    "experiment not the config's": (_set("experiment", "unet"), "experiment"),
    "variant not the config's": (_set("variant", "cnn/made-up"), "variant"),
    "epochs not the config's": (_set("epochs", 3), "epochs"),
    "last_epoch 0": (_set("last_epoch", 0), "last_epoch"),
    "done short of its epochs": (_set("last_epoch", 1), "last_epoch"),
    "diverged without an epoch": (_set("status", "diverged"), "diverged_epoch"),
    "NaN created": (_set("created", math.nan), "created"),
    "infinite finished": (_set("finished", math.inf), "finished"),
    "text timestamp": (_astype("started", str), "started"),
    "versions a list": (_set("versions", "[1]"), "versions"),
    "versions not JSON": (_set("versions", "numpy 2"), "versions"),
    "threads 0": (_set("threads", 0), "threads"),
    "host a number": (_fill("host", 5), "host 5"),
    "huge text cell": (_set("error", "x" * 100_000), "error"),
    "field name with a newline": (_config(lambda c: c["model"].update({"a\nb": 1})), "unknown field(s) a\\nb"),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_bad_run_rows_refuse_the_bundle(case, cnn, tmp_path):
    runs, epochs, tests = cnn
    mutate, expected = RUN_CASES[case]
    mutate(runs, epochs, tests)
    path = pack(tmp_path / "crafted.zip", runs, epochs, tests)
    refused(path, "run ", expected)


def test_duplicate_run_key_is_refused(cnn, tmp_path):
    runs, epochs, tests = cnn
    runs = pd.concat([runs, runs.iloc[:1]], ignore_index=True)
    refused(pack(tmp_path / "dup.zip", runs, epochs, tests), repr(runs.at[0, "key"]), "twice")


def test_crafted_rows_written_by_write_bundle_are_refused(cnn, tmp_path):
    """write_bundle recomputes checksums and the manifest, as an attacker's tool would."""
    runs, epochs, tests = cnn
    runs = as_object(runs, "status")
    runs.at[1, "status"] = "queued"
    path = write_bundle(tmp_path / "w.zip", RunTables(runs, epochs, tests))
    refused(path, repr(runs.at[1, "key"]), "status 'queued'", "only finished runs")


def test_path_key_import_leaves_the_store_and_the_filesystem_alone(cnn, tmp_path):
    """A key naming a folder would have become checkpoints/<key>, removed by a later delete."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    runs, epochs, tests = cnn
    _key(str(victim))(runs, epochs, tests)
    path = pack(tmp_path / "evil.zip", runs, epochs, tests)
    store = RunStore(tmp_path / "store")
    with pytest.raises(BundleError, match="key"):
        import_bundle(store, path)
    assert store.runs().empty and store.get(str(victim)) is None
    assert (victim / "precious.txt").read_text() == "keep me"


def test_refused_import_leaves_the_store_unchanged(course_bundles, unet, tmp_path):
    store = RunStore(tmp_path / "store")
    added = import_bundle(store, course_bundles / "cnn.zip")
    assert len(added) == sum(n.startswith("cnn/") for n in VARIANTS) * 2        # every CNN variant, 2 seeds
    before = store.tables()
    runs, epochs, tests = unet                      # 8 new, valid runs ...
    _set("status", "running", row=5)(runs, epochs, tests)     # ... and one that a worker would train
    with pytest.raises(BundleError, match="status"):
        import_bundle(store, pack(tmp_path / "mixed.zip", runs, epochs, tests))
    after = store.tables()
    for a, b in zip((before.runs, before.epochs, before.tests), (after.runs, after.epochs, after.tests),
                    strict=True):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert not set(runs["key"]) & set(after.runs["key"])


# -- metric rows -------------------------------------------------------------------------------------------
def _epochs(change):
    def mutate(epochs, tests):
        return change(epochs), tests
    return mutate


def _tests(change):
    def mutate(epochs, tests):
        return epochs, change(tests)
    return mutate


def _cell(column, value, name=None, row=0):
    def change(df):
        df = as_object(df, column)
        at = df.index[df["name"] == name][0] if name else row
        df.at[at, column] = value
        if column == "value":
            df["value"] = df["value"].astype(float)
        return df
    return change


METRIC_CASES = {
    "text epoch": (_epochs(lambda d: d.assign(epoch=d["epoch"].astype(str))), "epochs.parquet", "epoch"),
    "epoch 0": (_epochs(_cell("epoch", 0)), "epochs.parquet", "epoch 0"),
    "epoch past the run": (_epochs(_cell("epoch", 3)), "epochs.parquet", "epoch 3"),
    "fractional epoch": (_epochs(lambda d: d.assign(epoch=d["epoch"].astype(float) + 0.5)), "epochs.parquet",
                         "epoch 1.5"),
    "missing epoch": (_epochs(lambda d: d.assign(epoch=d["epoch"].astype("Int64").mask(d.index == 0))),
                      "epochs.parquet", "epoch"),
    "key of no run": (_epochs(_cell("key", "0123456789abcdef")), "epochs.parquet", "'0123456789abcdef': key"),
    "path-like key": (_epochs(_cell("key", "../../x")), "epochs.parquet", "'../../x': key"),
    "missing key": (_epochs(_cell("key", None)), "epochs.parquet", "key"),
    "path-like name": (_epochs(_cell("name", "../x")), "epochs.parquet", "name '../x'"),
    "capitalised name": (_epochs(_cell("name", "Acc")), "epochs.parquet", "name 'Acc'"),
    "long name": (_epochs(_cell("name", "a" * 65)), "epochs.parquet", "name"),
    "text value": (_epochs(lambda d: d.assign(value=d["value"].astype(str))), "epochs.parquet", "value"),
    "duplicate row": (_epochs(lambda d: pd.concat([d, d.iloc[[3]]], ignore_index=True)), "epochs.parquet",
                      "twice"),
    "val_acc 1.5": (_epochs(_cell("value", 1.5, name="val_acc")), "epochs.parquet", "val_acc 1.5"),
    "negative train_loss": (_epochs(_cell("value", -1.0, name="train_loss")), "epochs.parquet", "train_loss"),
    "negative seconds": (_epochs(_cell("value", -2.0, name="seconds")), "epochs.parquet", "seconds"),
    "test acc 1.5": (_tests(_cell("value", 1.5, name="acc")), "tests.parquet", "acc 1.5"),
    "test acc -inf": (_tests(_cell("value", -math.inf, name="acc")), "tests.parquet", "acc"),
    "test at a non-test epoch": (_tests(_cell("epoch", 1)), "tests.parquet", "epoch 1"),
}


@pytest.mark.parametrize("case", sorted(METRIC_CASES))
def test_bad_metric_rows_refuse_the_bundle(case, cnn, tmp_path):
    runs, epochs, tests = cnn
    mutate, table, expected = METRIC_CASES[case]
    epochs, tests = mutate(epochs, tests)
    refused(pack(tmp_path / "crafted.zip", runs, epochs, tests), table, expected)


def test_metric_rows_name_their_run(cnn, tmp_path):
    runs, epochs, tests = cnn
    at = epochs.index[epochs["name"] == "val_acc"][-1]
    epochs.at[at, "value"] = 7.0
    refused(pack(tmp_path / "m.zip", runs, epochs, tests), f"run {epochs.at[at, 'key']!r}", "val_acc 7.0",
            "[0, 1]")


# -- legitimate variations are accepted ----------------------------------------------------------------------
def test_round_trip_of_a_real_export(course_bundles, tmp_path):
    for name in ("cnn.zip", "unet.zip"):
        first = read_bundle(course_bundles / name)
        runs = first.tables.runs
        assert list(runs.columns) == RUN_COLUMNS
        assert {runs[c].dtype for c in ("seed", "epochs", "last_epoch")} == {np.dtype("int64")}
        assert runs["pid"].isna().all()
        for t in (first.tables.epochs, first.tables.tests):
            assert t["epoch"].dtype == np.dtype("int64") and t["value"].dtype == np.dtype("float64")
        again = read_bundle(write_bundle(tmp_path / name, first.tables, provenance={"command": "round trip"}))
        for a, b in zip(first.tables.__dict__.values(), again.tables.__dict__.values(), strict=True):
            pd.testing.assert_frame_equal(a, b)
        store = RunStore(tmp_path / f"store-{name}")
        assert sorted(import_bundle(store, tmp_path / name)) == sorted(runs["key"])
        assert sorted(store.tables().epochs["value"]) == sorted(first.tables.epochs["value"])


def test_older_bundles_without_optional_columns_still_load(cnn, tmp_path):
    runs, epochs, tests = cnn
    runs = runs.drop(columns=["threads", "notes"], errors="ignore")
    loaded = read_bundle(pack(tmp_path / "old.zip", runs, epochs, tests))
    assert loaded.tables.runs["threads"].isna().all() and loaded.tables.runs["notes"].isna().all()


def test_a_diverged_run_with_float_typed_gaps_is_accepted(cnn, tmp_path):
    """How a store's DataFrame holds a diverged run among done ones: diverged_epoch float with NaN gaps."""
    runs, epochs, tests = cnn
    key = runs.at[0, "key"]
    runs = as_object(runs, "status")
    runs.at[0, "status"] = "diverged"
    runs.at[0, "last_epoch"] = 1
    runs["diverged_epoch"] = [1.0] + [math.nan] * (len(runs) - 1)
    runs["threads"] = [2.0] + [math.nan] * (len(runs) - 1)
    epochs = epochs[(epochs["key"] != key) | (epochs["epoch"] == 1)].copy()
    epochs.loc[(epochs["key"] == key) & (epochs["name"] != "seconds"), "value"] = math.nan
    tests = tests[tests["key"] != key]
    got = read_bundle(pack(tmp_path / "diverged.zip", runs, epochs, tests)).tables.runs
    assert got.at[0, "diverged_epoch"] == 1 and type(got.at[0, "diverged_epoch"]) is int
    assert got.at[0, "threads"] == 2 and got.at[1, "diverged_epoch"] is None


def test_runs_without_test_rows_and_a_foreign_pid_are_accepted(cnn, tmp_path):
    """Every run diverged at epoch 1, before its only test epoch (2): the tests table is empty."""
    runs, epochs, tests = cnn
    runs = as_object(runs, "status")
    runs["status"], runs["last_epoch"], runs["diverged_epoch"], runs["pid"] = "diverged", 1, 1, 4242
    epochs = epochs[epochs["epoch"] == 1]
    path = pack(tmp_path / "early.zip", runs, epochs, tests.iloc[:0])
    loaded = read_bundle(path)
    assert loaded.tables.tests.empty and list(loaded.tables.tests.columns) == ["key", "epoch", "name", "value"]
    assert loaded.tables.runs["pid"].isna().all()
    store = RunStore(tmp_path / "store")
    assert len(import_bundle(store, path)) == len(runs)
    assert store.runs()["pid"].isna().all() and set(store.runs()["status"]) == {"diverged"}


def test_shipped_bundles_validate():
    """cached_runs/ is read, every check included, on every viewer start (its time: scripts/bench_latency.py;
    no timing here, the machine is shared)."""
    from tests.test_cached_runs import CACHED

    paths = sorted(CACHED.glob("*.zip"))
    assert paths and all(len(read_bundle(path).tables.runs) for path in paths)


def test_a_large_study_validates_in_seconds(tmp_path):
    """1M metric rows of 50 runs × 4,000 epochs: vectorised checks, no per-row Python."""
    n_runs, n_epochs, names = 50, 4_000, ["seconds", "train_loss", "val_f1", "val_loss", "val_pixel_acc"]
    cfg = replace(tiny("unet/normal"), epochs=n_epochs, eval_at=(1_000, 2_000))
    rows = []
    for seed in range(n_runs):
        rows.append({"key": run_key(cfg, seed), "experiment": "unet", "variant": variant_label(cfg), "seed": seed,
                     "epochs": n_epochs, "status": "done", "last_epoch": n_epochs, "created": 1.0e9,
                     "config": json.dumps(config_to_dict(cfg))})
    runs = pd.DataFrame(rows).reindex(columns=RUN_COLUMNS)
    keys = np.repeat(runs["key"].to_numpy(), n_epochs * len(names))
    epoch = np.tile(np.repeat(np.arange(1, n_epochs + 1), len(names)), n_runs)
    epochs = pd.DataFrame({"key": keys, "epoch": epoch, "name": np.tile(names, n_runs * n_epochs),
                           "value": np.random.default_rng(0).random(len(keys))})
    tests = pd.DataFrame([{"key": k, "epoch": e, "name": "f1", "value": 0.5} for k in runs["key"]
                          for e in cfg.test_epochs])
    path = write_bundle(tmp_path / "large.zip", RunTables(runs, epochs, tests))
    t0 = time.perf_counter()
    loaded = read_bundle(path)
    assert time.perf_counter() - t0 < 10
    assert len(loaded.tables.epochs) == 1_000_000 and len(loaded.tables.tests) == 3 * n_runs
    epochs.loc[999_999, "value"] = -1.0                  # the very last row: every check ran through
    bad = write_bundle(tmp_path / "bad.zip", RunTables(runs, epochs, tests))
    refused(bad, f"{epochs.at[999_999, 'name']} -1.0")


# -- manifest and zip ----------------------------------------------------------------------------------------
MANIFEST_CASES = {
    "a JSON list": (lambda m: [m], "JSON list"),
    "not JSON": (lambda m: "{", "not JSON"),
    "another format": (lambda m: {**m, "format": "other/9"}, "format"),
    "no counts": (lambda m: {k: v for k, v in m.items() if k != "counts"}, "counts"),
    "text counts": (lambda m: {**m, "counts": {k: str(v) for k, v in m["counts"].items()}}, "counts"),
    "wrong counts": (lambda m: {**m, "counts": {**m["counts"], "runs": 99}}, "manifest says 99"),
    "no checksums": (lambda m: {**m, "sha256": None}, "sha256"),
    "a wrong checksum": (lambda m: {**m, "sha256": {**m["sha256"], "runs.parquet": "0" * 64}}, "checksum"),
    "runs not a list": (lambda m: {**m, "runs": {}}, "runs"),
    "a run listed differently": (lambda m: {**m, "runs": [{**m["runs"][0], "seed": 7}] + m["runs"][1:]},
                                 "manifest seed 7"),
    "no provenance": (lambda m: {k: v for k, v in m.items() if k != "provenance"}, "provenance"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_bad_manifests_are_refused(case, cnn, tmp_path):
    change, expected = MANIFEST_CASES[case]
    members = members_for(*cnn)
    manifest = change(json.loads(members["manifest.json"]))
    members["manifest.json"] = manifest.encode() if isinstance(manifest, str) else json.dumps(manifest).encode()
    refused(write_zip(tmp_path / "m.zip", members), expected)


def test_unknown_and_duplicate_members_are_refused(cnn, tmp_path):
    members = members_for(*cnn)
    refused(write_zip(tmp_path / "extra.zip", {**members, "../../evil.sh": b"#!"}), "unexpected member")
    entries = [stored(n, b) for n, b in members.items()] + [stored("runs.parquet", members["runs.parquet"])]
    refused(raw_zip(tmp_path / "dup.zip", entries), "runs.parquet appears 2 times")
    encrypted = [(n, m, 1, c, cs, us, w) for n, m, _, c, cs, us, w in (stored(n, b) for n, b in members.items())]
    refused(raw_zip(tmp_path / "enc.zip", encrypted), "encrypted")


def test_a_huge_zip_directory_is_refused_before_parsing(cnn, tmp_path):
    entries = [stored(n, b) for n, b in members_for(*cnn).items()]
    refused(raw_zip(tmp_path / "dir.zip", entries, extra_entries=5_000), "zip directory of 5,004 entries")


def test_an_oversized_bundle_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.zip"
    with open(path, "wb") as f:
        f.truncate(bundle_mod.MAX_BUNDLE_BYTES + 1)        # sparse: no disk or memory spent
    error, _, seconds = peak_python_memory(lambda: read_bundle(path))
    assert isinstance(error, BundleError) and "at most" in str(error) and seconds < 1


@pytest.mark.parametrize("mib, expected", [(1024, "uncompressed"), (200, "expands")])
def test_zip_bombs_are_refused_from_the_directory(mib, expected, cnn, tmp_path):
    """1 GiB of zeros (over the member cap) and 200 MiB (under it, but 1000:1) in a ~1 MB file: refused
    quickly without inflating them; the old reader reached 2.2 GB before refusing."""
    members = members_for(*cnn)
    entries = [stored(n, members[n]) for n in ("manifest.json", "runs.parquet", "tests.parquet")]
    path = raw_zip(tmp_path / "bomb.zip", entries + [zeros_deflated("epochs.parquet", mib)])
    assert path.stat().st_size < 2 * MiB
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("epochs.parquet").file_size == mib * MiB
    error, peak, seconds = peak_python_memory(lambda: read_bundle(path))
    assert peak < 32 * MiB and seconds < 2, (peak, seconds, error)
    assert isinstance(error, BundleError) and "epochs.parquet" in str(error) and expected in str(error), error


def test_a_directory_understating_a_member_is_refused_unread(cnn, tmp_path):
    """The directory says 1,000 bytes; the data inflates to 1 GiB. Reading stops at the stated size."""
    members = members_for(*cnn)
    entries = [stored(n, members[n]) for n in ("manifest.json", "runs.parquet", "tests.parquet")]
    name, method, flags, crc, csize, _, write = zeros_deflated("epochs.parquet", 1024)
    path = raw_zip(tmp_path / "liar.zip", entries + [(name, method, flags, crc, csize, 1_000, write)])
    error, peak, seconds = peak_python_memory(lambda: read_bundle(path))
    assert peak < 32 * MiB and seconds < 2, (peak, seconds, error)
    assert isinstance(error, BundleError) and "epochs.parquet" in str(error), error


def test_parquet_claiming_too_many_rows_is_refused_from_its_footer(cnn, tmp_path):
    """30M null rows compress to ~250 KB of Parquet; the footer's row count refuses them unread."""
    runs, _, tests = cnn
    epochs = pa.table({c: pa.nulls(30_000_000) for c in ("key", "epoch", "name", "value")})
    path = pack(tmp_path / "rows.zip", runs, epochs, tests)
    assert path.stat().st_size < 2 * MiB
    error, peak, seconds = peak_python_memory(lambda: read_bundle(path))
    assert peak < 32 * MiB and seconds < 2, (peak, seconds, error)
    assert isinstance(error, BundleError) and "30,000,000 rows" in str(error), error
    assert 30_000_000 > bundle_mod.MAX_METRIC_ROWS


def test_parquet_stating_too_many_uncompressed_bytes_is_refused(cnn, tmp_path, monkeypatch):
    runs, epochs, tests = cnn
    path = pack(tmp_path / "big.zip", runs, epochs, tests)
    monkeypatch.setattr(bundle_mod, "MAX_TABLE_BYTES", 1_000)
    refused(path, "bytes uncompressed")


def test_dictionary_strings_are_checked_before_they_expand(cnn, tmp_path):
    """One 512 KiB name in a Parquet dictionary, used by 4,000 rows: 2 GiB once decoded, ~1 MB stored."""
    runs, epochs, tests = cnn
    n = 4_000
    big = pa.table({"key": pa.array([runs.at[0, "key"]] * n), "epoch": pa.array([1] * n, pa.int32()),
                    "name": pa.array(["a" * (512 * 1024)] * n).dictionary_encode(),
                    "value": pa.array([0.5] * n)})
    members = members_for(runs, big, tests)
    path = write_zip(tmp_path / "dict.zip", members)
    assert path.stat().st_size < 2 * MiB
    error, peak, seconds = peak_python_memory(lambda: read_bundle(path))
    assert isinstance(error, BundleError) and "name 'aaaa" in str(error), error
    assert peak < 32 * MiB and seconds < 2, (peak, seconds)


def test_bundle_dir_skips_crafted_bundles_with_one_line_each(course_bundles, cnn, tmp_path):
    folder = tmp_path / "cached_runs"
    folder.mkdir()
    for name in ("cnn.zip", "unet.zip"):
        (folder / name).write_bytes((course_bundles / name).read_bytes())
    runs, epochs, tests = cnn
    _set("status", "queued")(runs, epochs, tests)
    pack(folder / "queued.zip", runs, epochs, tests)
    write_zip(folder / "list.zip", {**members_for(*raw_tables(course_bundles / "cnn.zip")), "manifest.json": b"[]"})
    loaded, errors = read_bundle_dir(folder)
    assert [b.path.name for b in loaded] == ["cnn.zip", "unet.zip"]
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert any("queued.zip" in e and "status" in e for e in errors) and any("list.zip" in e for e in errors)
