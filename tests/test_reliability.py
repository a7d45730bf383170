"""Reliability and safety of the store, trainer, runner, workers and CLI against bad input and crashes.

Each test reproduces a defect found by a reliability probe of the first slice (keys used as paths,
lost epochs after a kill, thread count not recorded, a lock failing a run, unbounded sizes, tracebacks
instead of one-line errors) on the real SQLite store and the real trainer at tiny sizes.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adlapp.config import run_key, variant
from adlapp.jobs import LocalProcessBackend
from adlapp.runner import run_claimed
from adlapp.store import RunStore, StoreError
from adlapp.train import checkpoint_state, train

ROOT = Path(__file__).resolve().parents[1]


def tiny_cnn(epochs: int = 4):
    return replace(variant("cnn/bn-adam"), epochs=epochs, data=replace(variant("cnn/bn-adam").data,
                                                                       train_per_class=1))


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adlapp", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def insert_raw_run(store: RunStore, key: str, status: str, seed="0", config: str | None = None) -> None:
    """A row that did not come from `enqueue` (a crafted import under the old code, or a hand-edited store)."""
    cfg = tiny_cnn(2)
    from adlapp.config import config_to_dict
    with sqlite3.connect(store.db_path) as db:
        db.execute("INSERT INTO runs (key, experiment, variant, config, seed, epochs, status, created, last_epoch) "
                   "VALUES (?,?,?,?,?,?,?,?,?)",
                   (key, "cnn", "cnn/bn-adam", config or json.dumps(config_to_dict(cfg)), seed, 2, status,
                    time.time(), 2))


# -- keys are never paths ---------------------------------------------------------------------------------
def test_a_path_like_key_is_never_trained_and_its_path_never_touched(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("precious")
    store = RunStore(tmp_path / "store")
    insert_raw_run(store, str(victim), "queued")
    insert_raw_run(store, "../../victim", "queued")
    assert store.claim() is None                      # both refused, none handed to a trainer
    rows = store.runs()
    assert set(rows["status"]) == {"failed"}
    assert rows["error"].str.contains("not a run key").all()
    with pytest.raises(StoreError, match="not a run key"):
        store.checkpoint_dir(str(victim))
    store.delete(str(victim))                         # deleting the row leaves the folder it names alone
    assert (victim / "thesis.txt").read_text() == "precious"


def test_a_stored_config_that_does_not_hash_to_its_key_is_not_trained(tmp_path):
    store = RunStore(tmp_path / "store")
    cfg = tiny_cnn(2)
    insert_raw_run(store, run_key(cfg, 5), "queued", seed=0)       # key of seed 5, row says seed 0
    assert store.claim() is None
    assert "do not hash to its key" in store.runs()["error"].iloc[0]


def test_a_text_seed_in_an_old_store_does_not_break_listing_or_deleting(tmp_path):
    store = RunStore(tmp_path / "store")
    insert_raw_run(store, "0123456789abcdef", "done", seed="zero")
    insert_raw_run(store, "fedcba9876543210", "done", config="{not json")
    out = cli("runs", "--store", str(store.root))
    assert out.returncode == 0, out.stderr
    listing = cli("runs", "--json", "--store", str(store.root))
    assert listing.returncode == 0, listing.stderr
    records = json.loads(listing.stdout)
    assert {r["seed"] for r in records} == {-1, 0}
    assert "not a whole number" in next(r for r in records if r["seed"] == -1)["error"]
    store.delete("0123456789abcdef")
    assert list(store.runs()["key"]) == ["fedcba9876543210"]


# -- checkpoints: on by default, ahead of the rows, outside the key -----------------------------------------
def test_checkpoints_are_written_by_default_before_each_epochs_rows(tmp_path):
    seen = []
    folder = tmp_path / "auto"

    def on_epoch(report):
        state = checkpoint_state(folder)
        seen.append((report.epoch, state and state["epoch"]))

    train(tiny_cnn(3), 0, on_epoch=on_epoch, device="cpu", checkpoint_dir=folder)
    # By default (adaptive) the first epoch is always checkpointed, before it is reported.
    assert seen[0] == (1, 1)
    seen.clear()
    folder = tmp_path / "every"
    train(tiny_cnn(3), 0, on_epoch=on_epoch, device="cpu", checkpoint_dir=folder, checkpoint_every=1)
    # Every epoch's checkpoint is on disk before its rows are reported, the last epoch's too (a done run keeps
    # it, to be continued for more epochs).
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_how_often_a_run_checkpoints_does_not_change_its_key_or_numbers(tmp_path):
    store = tmp_path / "store"
    args = ["train", "cnn", "--variant", "bn-adam", "--epochs", "3", "--train-per-class", "1", "--threads", "1",
            "--store", str(store)]
    first = cli(*args, "--checkpoint-every", "1")
    assert first.returncode == 0, first.stderr
    again = cli(*args, "--checkpoint-every", "0")
    assert "already done" in again.stderr, again.stderr
    assert len(RunStore(store).runs()) == 1


def test_resume_replays_epochs_the_store_missed_and_ends_like_an_uninterrupted_run(tmp_path):
    cfg = tiny_cnn(4)
    reference = train(cfg, 0, device="cpu")

    store = RunStore(tmp_path / "store")
    key, _ = store.enqueue(cfg, 0)
    store.claim(key)
    real_record = store.record_epoch

    def crash_at_3(k, epoch, metrics, tests=None):    # dies after epoch 3's checkpoint, before its rows
        if epoch == 3:
            raise RuntimeError("simulated crash between checkpoint and row commit")
        real_record(k, epoch, metrics, tests)

    store.record_epoch = crash_at_3
    assert run_claimed(store, key, cfg, 0, device="cpu", flag=SimpleNamespace(set=False)) == "failed"
    assert checkpoint_state(store.checkpoint_dir(key))["epoch"] == 3
    assert store.get(key)["last_epoch"] == 2
    store.record_epoch = real_record

    assert store.requeue([key]) == [key]
    store.claim(key)
    assert run_claimed(store, key, cfg, 0, device="cpu", flag=SimpleNamespace(set=False)) == "done"
    rows = store.tables(keys=[key]).epochs
    assert sorted(rows.loc[rows["name"] == "val_acc", "epoch"]) == [1, 2, 3, 4]
    for h in reference.history:
        for name in ("train_loss", "val_loss", "val_acc"):
            got = rows[(rows["epoch"] == h["epoch"]) & (rows["name"] == name)]["value"].item()
            assert got == h[name], (h["epoch"], name)
    assert "resumed from its checkpoint at epoch 3" in store.get(key)["notes"]


def test_a_resumed_run_keeps_the_thread_count_it_started_with(tmp_path):
    cfg = tiny_cnn(4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        reference = train(cfg, 0, device="cpu")
        store = RunStore(tmp_path / "store")
        key, _ = store.enqueue(cfg, 0)
        store.claim(key)
        flag = SimpleNamespace(set=False)

        def stop_after_2(report):
            flag.set = report.epoch >= 2
        assert run_claimed(store, key, cfg, 0, device="cpu", flag=flag, progress=stop_after_2) == "cancelled"
        assert store.get(key)["threads"] == 2

        torch.set_num_threads(1)                       # a worker with another thread count picks it up
        threads_seen = []
        store.requeue([key])
        store.claim(key)
        status = run_claimed(store, key, cfg, 0, device="cpu", flag=SimpleNamespace(set=False),
                             progress=lambda r: threads_seen.append(torch.get_num_threads()))
        assert status == "done"
        assert threads_seen and set(threads_seen) == {2}
        assert torch.get_num_threads() == 1            # the worker's own setting is restored afterwards
        assert "with 2 thread(s) as it started" in store.get(key)["notes"]
        tests = store.tables(keys=[key]).tests
        assert tests.loc[tests["name"] == "acc", "value"].item() == reference.tests[4]["acc"]
    finally:
        torch.set_num_threads(before)


# -- locks --------------------------------------------------------------------------------------------------
def test_a_writer_that_meets_a_long_lock_waits_instead_of_failing(tmp_path, monkeypatch):
    import adlapp.store as store_module

    store = RunStore(tmp_path / "store")
    key, _ = store.enqueue(tiny_cnn(2), 0)
    store.claim(key)
    held = threading.Event()

    def hold_lock():
        with sqlite3.connect(store.db_path, isolation_level=None) as db:
            db.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(2.5)
            db.execute("COMMIT")

    holder = threading.Thread(target=hold_lock)
    holder.start()
    held.wait()
    # The busy timeout (60 s in use) shortened to 0.3 s: the old code failed the epoch at this point.
    real_connect = sqlite3.connect
    monkeypatch.setattr(store_module.sqlite3, "connect",
                        lambda *a, **k: _short_busy(real_connect(*a, **k)))
    store.record_epoch(key, 1, {"train_loss": 1.0})
    monkeypatch.undo()
    holder.join()
    assert store.get(key)["last_epoch"] == 1


def _short_busy(db: sqlite3.Connection) -> sqlite3.Connection:
    class Conn:
        def execute(self, sql, *args):
            if sql.startswith("PRAGMA busy_timeout"):
                sql = "PRAGMA busy_timeout=300"
            return db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(db, name)
    return Conn()


def test_an_import_killed_midway_leaves_no_trace(course_bundles, tmp_path):
    store = RunStore(tmp_path / "store")
    slow_import = f"""
import time, adlapp.store as s
s.IMPORT_CHUNK_ROWS = 10                    # many small transactions, slowed down: time to kill it midway
real = s.RunStore._transaction
def slow(self):
    time.sleep(0.2)
    return real(self)
s.RunStore._transaction = slow
from adlapp.bundle import import_bundle
import_bundle(s.RunStore({str(store.root)!r}), {str(course_bundles / 'unet.zip')!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", slow_import], cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = store.runs()
        if len(runs) and (runs["status"] == "importing").all() and len(store.epoch_metrics()[0]):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the import never showed its reserved rows")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(store.epoch_metrics()[0]) > 0           # it had written some metric rows
    store.mark_stale()
    assert store.runs().empty and store.epoch_metrics()[0].empty and store.test_metrics().empty
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    from adlapp.bundle import import_bundle
    assert len(import_bundle(store, course_bundles / "unet.zip")) == 8   # and a new import works


# -- workers ------------------------------------------------------------------------------------------------
def test_simultaneous_callers_start_one_worker_for_concurrency_one(tmp_path):
    store = RunStore(tmp_path / "store")
    store.enqueue(tiny_cnn(30), 0)                      # keeps the worker busy while the callers race
    barrier = threading.Barrier(3)
    started: list[int] = []

    def call():
        barrier.wait()
        started.extend(LocalProcessBackend(RunStore(store.root), concurrency=1, device="cpu").ensure_workers())

    callers = [threading.Thread(target=call) for _ in range(3)]
    try:
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert len(started) == 1
    finally:
        for pid in started:
            os.kill(pid, signal.SIGTERM)


def test_a_worker_resumes_an_interrupted_run(tmp_path):
    store = RunStore(tmp_path / "store")
    cfg = tiny_cnn(3)
    key, _ = store.enqueue(cfg, 0)
    store.claim(key, pid=999_999_999)                   # a trainer pid that does not exist: it died
    assert store.mark_stale() == [key]
    out = cli("worker", "--store", str(store.root), "--device", "cpu", "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert store.get(key)["status"] == "done"


# -- one-line errors and bounds -----------------------------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--seeds", "10000000000"], "at most 100"),
    (["--seeds", "0,99999999999999999999"], "seeds must be distinct whole numbers"),
    (["--seeds", ","], "give a count"),
    (["--epochs", "100000000"], "epochs=100000000"),
    (["--epochs", str(2 ** 64)], "epochs="),
    (["--train-per-class", "10000000"], "train_per_class=10000000"),
    (["--weight-decay", "nan"], "must be a finite number"),
    (["--weight-decay", "inf"], "must be a finite number"),
    (["--threads", "100000"], "at most 256"),
    (["--variant", ""], "variant=''"),
    (["--dataset", ""], "--dataset: empty"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device="),
])
def test_bad_training_arguments_are_one_line_errors_before_the_store_exists(tmp_path, args, says):
    store = tmp_path / "store"
    out = cli("train", "cnn", "--epochs", "1", "--store", str(store), *args) if "--epochs" not in args else \
        cli("train", "cnn", "--store", str(store), *args)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]               # argparse may print its usage first
    assert last.startswith("python -m adlapp train: error") and says in last, out.stderr
    assert "Traceback" not in out.stderr
    assert not (store / "runs.sqlite").exists()


def test_tilde_in_a_dataset_path_is_expanded(tmp_path):
    home = tmp_path / "home"
    (home / "mycards").mkdir(parents=True)
    out = cli("train", "cnn", "--dataset", "~/mycards", "--store", str(tmp_path / "s"), env={"HOME": str(home)})
    assert out.returncode == 2
    assert "not a built-in data set" not in out.stderr         # found the folder; its layout is the problem
    assert str(home / "mycards") in out.stderr, out.stderr


def test_runs_json_is_strict_even_for_a_stored_nan(tmp_path):
    store = RunStore(tmp_path / "store")
    cfg_json = json.dumps({"experiment": "cnn", "optim": {"weight_decay": float("nan")}})
    insert_raw_run(store, "00000000000000aa", "failed", config=cfg_json)
    out = cli("runs", "--json", "--store", str(store.root))
    assert out.returncode == 0, out.stderr

    def refuse(constant):
        raise ValueError(constant)
    records = json.loads(out.stdout, parse_constant=refuse)
    assert records[0]["config"]["optim"]["weight_decay"] is None


def test_a_store_path_that_is_not_a_database_is_a_one_line_error(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "runs.sqlite").write_bytes(b"x" * 4096)
    out = cli("runs", "--store", str(tmp_path / "store"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "runs.sqlite" in out.stderr


@pytest.fixture
def read_only_store(tmp_path):
    """A store with one finished run, seen through a read-only bind mount (root ignores file modes)."""
    store = RunStore(tmp_path / "rw")
    insert_raw_run(store, "0123456789abcdef", "done")
    with sqlite3.connect(store.db_path) as db:           # leave a WAL behind, as a live store would
        db.execute("PRAGMA journal_mode=WAL")
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(store.root), str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {mounted.stderr.decode().strip()}")
    try:
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_read_only_store_can_be_listed_and_refuses_writes_clearly(read_only_store):
    out = cli("runs", "--json", "--store", str(read_only_store))
    assert out.returncode == 0, out.stderr
    assert [r["id"] for r in json.loads(out.stdout)] == ["0123456789abcdef"]
    store = RunStore(read_only_store)
    assert store.read_only
    with pytest.raises(StoreError, match="read-only"):
        store.enqueue(tiny_cnn(2), 0)


def test_the_runs_page_lists_and_deletes_a_row_with_a_text_seed(app_env):
    from streamlit.testing.v1 import AppTest

    store = RunStore(app_env / "store")
    insert_raw_run(store, "0123456789abcdef", "done", seed="zero")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert "the stored seed is not a whole number" in at.dataframe[0].value["error"].iloc[0]
    at.multiselect(key="runs_delete_sel").select("0123456789abcdef").run()
    at.checkbox(key="runs_delete_confirm").check().run()
    at.button(key="runs_delete_btn").click().run()
    assert not at.exception, at.exception
    assert store.runs().empty


def test_kill_minus_nine_at_random_points_then_resume_loses_nothing():
    """The fault-injection script at CI size (3 kills); `scripts/fault_injection.py --kills 12` is the full one."""
    out = subprocess.run([sys.executable, "scripts/fault_injection.py", "--kills", "3", "--epochs", "6", "--json",
                          "--timeout", "300"], cwd=ROOT, capture_output=True, text=True, timeout=400)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["failures"] == [] and out.returncode == 0, report
    assert report["kills"] == 3
    assert all(k["resumed_from"] >= 1 for k in report["log"][1:]), report["log"]   # never from scratch


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs, filled up after the store is created in it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        RunStore(mnt / "store")
        with open(mnt / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        yield mnt / "store"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_a_one_line_error_and_the_store_stays_intact(full_disk, course_bundles):
    out = cli("import", str(course_bundles / "unet.zip"), "--store", str(full_disk))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "full" in out.stderr
    (full_disk.parent / "filler").unlink()            # space again: nothing half-imported may remain visible
    store = RunStore(full_disk)
    store.mark_stale()
    assert store.runs().empty and store.epoch_metrics()[0].empty
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
