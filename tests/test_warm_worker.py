"""A warm trainer process: started before anything is queued (torch imported, the built-in data built), it
claims a run the moment it is queued, waits --idle-exit seconds for more, and leaves under the registry's lock
so that a run queued as it leaves is never stranded. No timing asserted: the latency is measured by
scripts/bench_latency.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, tiny, tiny_cnn_page
from streamlit.testing.v1 import AppTest

from adlapp.jobs import LocalProcessBackend, WorkerRegistry
from adlapp.store import RunStore


def wait_until(what: str, check, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()):
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_worker(store: RunStore, *args: str) -> subprocess.Popen:
    log = open(store.root / "worker.log", "ab")       # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "adlapp", "worker", "--store", str(store.root), "--threads", "1",
                             "--device", "cpu", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_a_warm_worker_takes_a_run_queued_later_and_waits_for_the_next(tmp_path):
    store = RunStore(tmp_path / "store")
    proc = start_worker(store, "--idle-exit", "120", "--warm", "cnn")
    try:
        wait_until("the worker to be ready", lambda: b"ready" in (store.root / "worker.log").read_bytes())
        assert WorkerRegistry(store.root).live() == [proc.pid]
        key, _ = store.enqueue(tiny("cnn/adam"), 0, command="pytest")          # queued after it started
        wait_until("the run to finish", lambda: store.get(key)["status"] == "done")
        assert proc.poll() is None and WorkerRegistry(store.root).live() == [proc.pid]    # still there, warm
        second, _ = store.enqueue(tiny("cnn/adam"), 1, command="pytest")
        wait_until("the second run to finish", lambda: store.get(second)["status"] == "done")
        assert b"training " + second.encode() in (store.root / "worker.log").read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert WorkerRegistry(store.root).live() == []


def test_an_idle_worker_leaves_and_unregisters(tmp_path):
    store = RunStore(tmp_path / "store")
    proc = start_worker(store, "--idle-exit", "0.5")
    assert proc.wait(120) == 0
    assert WorkerRegistry(store.root).live() == []


def test_prewarm_starts_the_trainers_once(tmp_path):
    store = RunStore(tmp_path / "store")
    jobs = LocalProcessBackend(store, concurrency=1, device="cpu", idle_exit=60)
    try:
        first = jobs.prewarm("cnn")
        assert len(first) == 1 and jobs.prewarm("cnn") == [] and jobs.live_workers() == first
        log = next((store.root / "logs").glob("worker-*.log"))
        wait_until("the warm worker to be ready", lambda: b"data built: cnn" in log.read_bytes())
    finally:
        for pid in jobs.live_workers():
            os.kill(pid, signal.SIGTERM)
    wait_until("the worker to leave", lambda: not jobs.live_workers())


def test_the_cnn_page_warms_a_trainer_when_runs_are_missing(app_env, monkeypatch):
    monkeypatch.setenv("ADLAPP_WARM_WORKERS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/cnn.py").run()
    tiny_cnn_page(at, seeds="1", epochs=1)
    assert not at.exception, at.exception
    assert "Train missing runs (3)" in at.button(key="cnn_train_btn").label   # the 3 course variants, untrained ...
    store = RunStore(app_env / "store")
    assert WorkerRegistry(store.root).live()                                       # ... but a trainer waits
    assert store.runs().empty
