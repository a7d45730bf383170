"""The real SQLite run store: queue semantics, dedup by run key, cancel, stale runs, concurrent writers."""
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from adlapp.config import run_key, variant
from adlapp.store import RunStore, RunTables, StoreError


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "store")


def tiny(name="cnn/adam", **kw):
    return replace(variant(name), epochs=3, **kw)


def test_store_location_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("ADLAPP_STORE", str(tmp_path / "env"))
    assert RunStore().root == tmp_path / "env"
    assert RunStore(tmp_path / "explicit").root == tmp_path / "explicit"
    monkeypatch.delenv("ADLAPP_STORE")
    monkeypatch.chdir(tmp_path)
    assert RunStore().root.name == "runs"


def test_store_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="f"):
        RunStore(tmp_path / "f")


def test_enqueue_dedups_by_run_key(store):
    cfg = tiny()
    key, status = store.enqueue(cfg, 0)
    assert (key, status) == (run_key(cfg, 0), "queued")
    assert store.enqueue(cfg, 0) == (key, "queued")
    assert store.claim() [0] == key
    store.record_epoch(key, 1, {"train_loss": 1.0})
    store.finish(key, "done")
    assert store.enqueue(cfg, 0) == (key, "done")        # done is returned, not retrained
    assert len(store.runs()) == 1


def test_failed_and_cancelled_runs_are_requeued(store):
    key, _ = store.enqueue(tiny(), 1)
    store.claim(key)
    store.finish(key, "failed", error="boom")
    assert store.enqueue(tiny(), 1) == (key, "queued")
    assert store.get(key)["error"] is None


def test_claim_is_oldest_first_and_exclusive(store):
    k0, _ = store.enqueue(tiny(), 0)
    k1, _ = store.enqueue(tiny(), 1)
    assert store.claim()[0] == k0
    assert store.claim()[0] == k1
    assert store.claim() is None
    assert set(store.runs()["status"]) == {"running"}


def test_a_resumed_run_can_be_put_back_at_the_head_of_the_queue(store):
    """A run queued again (say, interrupted in an earlier session) goes to the back; queue_first puts a list of
    runs first, in its order, ahead of everything else queued, and leaves running and done runs alone."""
    early, _ = store.enqueue(tiny(), 0)
    store.claim(early)
    store.finish(early, "cancelled")
    later = [store.enqueue(tiny(), seed)[0] for seed in (1, 2, 3)]
    running, _ = store.enqueue(tiny(), 4)
    store.claim(running)
    assert store.enqueue(tiny(), 0) == (early, "queued")          # queued again: now the newest in the queue
    assert store.queue_first([early, later[2], running, "0" * 16]) == [early, later[2]]
    claimed = [store.claim()[0] for _ in range(4)]
    assert claimed == [early, later[2], later[0], later[1]]
    assert store.claim() is None


def test_record_epoch_and_incremental_reads(store):
    key, _ = store.enqueue(tiny(), 0)
    store.claim(key)
    store.record_epoch(key, 1, {"train_loss": 2.0, "val_acc": 0.1})
    df, cursor = store.epoch_metrics([key])
    assert len(df) == 2
    store.record_epoch(key, 2, {"train_loss": 1.5, "val_acc": 0.2}, tests={"acc": 0.25, "loss": 1.7})
    new, cursor2 = store.epoch_metrics([key], since_id=cursor)
    assert sorted(new["epoch"].unique()) == [2] and cursor2 > cursor
    assert store.get(key)["last_epoch"] == 2
    tests = store.test_metrics([key])
    assert dict(zip(tests["name"], tests["value"], strict=True)) == {"acc": 0.25, "loss": 1.7}


def test_non_finite_metric_is_stored_as_missing(store):
    key, _ = store.enqueue(tiny(), 0)
    store.record_epoch(key, 1, {"train_loss": float("nan")})
    df, _ = store.epoch_metrics([key])
    assert df["value"].isna().all()


def test_cancel_queued_and_running(store):
    kq, _ = store.enqueue(tiny(), 0)
    kr, _ = store.enqueue(tiny(), 1)
    store.claim(kr)
    assert store.request_cancel(kq) == "cancelled"
    assert store.request_cancel(kr) == "cancelling"
    assert store.cancel_requested(kr) and not store.cancel_requested(kq)
    with pytest.raises(StoreError, match="running"):
        store.delete(kr)
    store.delete(kq)
    assert store.get(kq) is None


def test_dead_process_makes_run_interrupted(store):
    key, _ = store.enqueue(tiny(), 0)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.claim(key, pid=proc.pid)
    assert store.mark_stale() == [key]
    assert store.get(key)["status"] == "interrupted"
    assert store.enqueue(tiny(), 0) == (key, "queued")       # interrupted work can be queued again


WRITER = textwrap.dedent("""
    import sys
    from dataclasses import replace
    from adlapp.config import variant
    from adlapp.store import RunStore
    store = RunStore(sys.argv[1]); seed = int(sys.argv[2])
    key, _ = store.enqueue(replace(variant("cnn/adam"), epochs=200), seed)
    store.claim(key)
    for epoch in range(1, 201):
        store.record_epoch(key, epoch, {"train_loss": 1.0 / epoch, "val_loss": 2.0, "val_acc": 0.5})
    store.finish(key, "done")
""")


def test_three_concurrent_writer_processes_lose_nothing(store):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), str(s)],
                              stderr=subprocess.PIPE, text=True) for s in range(3)]
    polls = 0
    while any(p.poll() is None for p in procs):          # read while they write, like the UI
        store.epoch_metrics()
        store.runs()
        polls += 1
    errors = [p.stderr.read() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    df, _ = store.epoch_metrics()
    assert len(df) == 3 * 200 * 3
    assert set(store.runs()["status"]) == {"done"}
    assert polls > 0


def test_tables_concat_keeps_first_copy_of_a_run(store):
    key, _ = store.enqueue(tiny(), 0)
    store.record_epoch(key, 1, {"train_loss": 1.0})
    t = store.tables()
    both = RunTables.concat([t, t])
    assert len(both.runs) == 1 and len(both.epochs) == 1
