"""The Ray backend on a real local Ray cluster: the real store, the real trainer, tiny sizes.

Skipped, with the reason shown, where the optional `ray` package is missing (CI installs requirements-ray.txt).
Each cluster is started by the code under test (the CLI's driver, or the dispatcher process the backend starts)
and shut down by it; nothing here waits for a fixed time: every wait polls the store until a state is reached.
"""
from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import tiny

from adlapp import cli
from adlapp.ray_backend import INSTALL_HINT, RayBackend, RayRefused, RayUnavailable, task_resources
from adlapp.store import CHECKPOINT_FILE, RunStore

pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt (CI installs it)")

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
SLOW = 300          # seconds a state may take to arrive on a busy 2-core machine before a test gives up


def cnn(epochs: int):
    return replace(tiny("cnn/bn-adam"), epochs=epochs)


def local_reference(tmp_path: Path, cfg, seed: int) -> RunStore:
    """The same run trained by adlapp.runner in this process at 1 thread, as a local worker would."""
    import torch

    from adlapp.runner import run_claimed

    store = RunStore(tmp_path / f"local-{cfg.epochs}-{seed}")
    key, _ = store.enqueue(cfg, seed, command="pytest")
    store.claim(key)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_claimed(store, key, cfg, seed, device="cpu", flag=SimpleNamespace(set=False)) == "done"
    finally:
        torch.set_num_threads(before)
    return store


def results(store: RunStore, key: str) -> tuple[list, list, dict]:
    """Every recorded number of a run except wall-clock seconds, and its weights files' bytes."""
    tables = store.tables(keys=[key])
    epochs = tables.epochs[tables.epochs["name"] != "seconds"].sort_values(["epoch", "name"])
    tests = tables.tests.sort_values(["epoch", "name"])
    files = {p.name: p.read_bytes() for p in sorted(store.weights_dir(key).glob("*.safetensors"))}
    return (list(epochs[["epoch", "name", "value"]].itertuples(index=False, name=None)),
            list(tests[["epoch", "name", "value"]].itertuples(index=False, name=None)), files)


def wait_for(what: str, predicate, timeout: float = SLOW):
    """Poll until `predicate()` is truthy; its value. Fails naming `what` if it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


# -- without a cluster --------------------------------------------------------------------------------------
def test_a_gpu_request_on_a_cluster_without_gpus_is_refused():
    with pytest.raises(RayRefused, match="has no GPU.*wait forever"):
        task_resources("cuda", {"CPU": 2.0}, threads=1)
    assert task_resources("cuda", {"CPU": 8.0, "GPU": 1.0}, threads=2) == {"num_cpus": 2, "num_gpus": 1}
    assert task_resources("auto", {"CPU": 2.0}, threads=1) == {"num_cpus": 1}       # auto on CPUs: no GPU asked
    assert task_resources("auto", {"CPU": 8.0, "GPU": 2.0}, threads=1)["num_gpus"] == 1


def test_without_ray_the_backend_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr("adlapp.ray_backend.ray_available", lambda: False)
    store = RunStore(tmp_path / "store")
    with pytest.raises(RayUnavailable, match=re.escape(INSTALL_HINT)):
        RayBackend(store).submit([(cnn(2), 0)])
    assert store.runs().empty                         # nothing queued that nobody would train


# -- the CLI as the driver (a local cluster in this process, shut down by the command) -----------------------
def test_cli_train_on_ray_gives_the_local_backends_numbers(tmp_path, monkeypatch):
    args = ["train", "cnn", "--variant", "bn-adam", "--epochs", "3", "--train-per-class", "1", "--seeds", "2",
            "--threads", "1"]
    on_ray_args = args + ["--store", str(tmp_path / "ray"), "--backend", "ray", "--concurrency", "2"]
    monkeypatch.setattr("sys.argv", ["adlapp", *on_ray_args])          # the command recorded with each run
    assert cli.main(on_ray_args) == 0
    assert cli.main(args + ["--store", str(tmp_path / "local")]) == 0
    on_ray, local = RunStore(tmp_path / "ray"), RunStore(tmp_path / "local")
    runs = on_ray.runs()
    assert sorted(runs["key"]) == sorted(local.runs()["key"]) and len(runs) == 2
    for row in runs.to_dict("records"):
        assert (row["status"], row["last_epoch"], row["threads"], row["device"]) == ("done", 3, 1, "cpu")
        assert "--backend ray" in row["command"]
        assert results(on_ray, row["key"]) == results(local, row["key"])    # every number and weights byte
        assert (on_ray.checkpoint_dir(row["key"]) / CHECKPOINT_FILE).is_file()   # done runs can be continued


def test_cli_refuses_a_gpu_run_on_a_cluster_without_gpus(tmp_path, capsys):
    code = cli.main(["train", "cnn", "--epochs", "2", "--train-per-class", "1", "--device", "cuda",
                     "--backend", "ray", "--store", str(tmp_path / "store")])
    assert code == 2
    assert "the Ray cluster has no GPU" in capsys.readouterr().err
    assert RunStore(tmp_path / "store").runs().empty


# -- the app's path: RayBackend starts one dispatcher process for the store ----------------------------------
@pytest.fixture(scope="module")
def on_ray(tmp_path_factory):
    """A store and its RayBackend (2 runs at once, 1 thread each, on CPU); the dispatcher it starts is stopped
    at the end (SIGTERM: it cancels what is in flight and shuts its local cluster down)."""
    root = tmp_path_factory.mktemp("ray")
    store = RunStore(root / "store")
    jobs = RayBackend(store, concurrency=2, device="cpu", threads=1)
    yield SimpleNamespace(store=store, jobs=jobs, root=root)
    for pid in jobs.live_workers():
        os.kill(pid, signal.SIGTERM)
    wait_for("the dispatcher to exit", lambda: not jobs.live_workers())


def dispatcher_log(store: RunStore) -> str:
    return "".join(p.read_text() for p in sorted((store.root / "logs").glob("dispatcher-*.log")))


def test_epochs_stream_into_the_store_while_the_run_trains(on_ray, tmp_path):
    store, jobs = on_ray.store, on_ray.jobs
    cfg = cnn(12)
    sub = jobs.submit([(cfg, 0)], command="pytest:stream")
    (key,) = sub.queued
    assert jobs.status([key])[key] in ("queued", "running")
    assert len(jobs.live_workers()) == 1
    assert jobs.ensure_workers() == []                 # one dispatcher per store, however many runs

    def partial():
        row = store.get(key)
        if row["status"] != "running" or not 0 < row["last_epoch"] < cfg.epochs:
            return None
        rows, _ = store.epoch_metrics([key])
        return row, rows
    row, rows = wait_for("a run part-way through", partial)
    assert set(rows["epoch"]) == set(range(1, row["last_epoch"] + 1))        # every epoch so far, no more
    wait_for("the run to finish", lambda: jobs.status([key])[key] == "done")
    final = store.get(key)
    assert (final["last_epoch"], final["threads"], final["device"], final["command"]) == (
        cfg.epochs, 1, "cpu", "pytest:stream")
    assert results(store, key) == results(local_reference(tmp_path, cfg, 0), key)


def test_cancel_stops_a_running_run_and_keeps_its_epochs(on_ray):
    store, jobs = on_ray.store, on_ray.jobs
    cfg = cnn(400)
    (key,) = jobs.submit([(cfg, 1)], command="pytest:cancel").queued
    wait_for("the run's first epoch", lambda: store.get(key)["last_epoch"] >= 1)
    assert jobs.cancel(key) == "cancelling"
    wait_for("the run to be cancelled", lambda: jobs.status([key])[key] == "cancelled")
    row = store.get(key)
    assert 1 <= row["last_epoch"] < cfg.epochs
    rows, _ = store.epoch_metrics([key])
    assert set(rows["epoch"]) == set(range(1, row["last_epoch"] + 1))
    assert (store.checkpoint_dir(key) / CHECKPOINT_FILE).is_file()      # what a resume continues from
    assert f"{key}: cancelled" in dispatcher_log(store)


def test_a_killed_worker_leaves_the_run_interrupted_then_it_resumes_to_the_same_numbers(on_ray, tmp_path):
    store, jobs = on_ray.store, on_ray.jobs
    cfg = cnn(24)
    (key,) = jobs.submit([(cfg, 2)], command="pytest:kill").queued
    found = wait_for("the Ray worker's pid in the dispatcher's log",
                     lambda: re.search(rf"{key}: attempt \w+ on Ray worker \S+ pid (\d+)", dispatcher_log(store)))
    # An epoch in the store means its checkpoint is there too (the dispatcher writes it first).
    wait_for("an epoch in the store", lambda: store.get(key)["last_epoch"] >= 1)
    killed_at = store.get(key)["last_epoch"]
    assert killed_at < cfg.epochs, "the run finished before it could be killed: make it longer"
    os.kill(int(found.group(1)), signal.SIGKILL)
    wait_for("the run to be marked interrupted", lambda: f"{key}: interrupted" in dispatcher_log(store))
    wait_for("the resumed run to finish", lambda: jobs.status([key])[key] == "done")
    row = store.get(key)
    assert "resumed from its checkpoint at epoch" in row["notes"]
    attempts = re.findall(rf"{key}: attempt (\w+) on Ray worker", dispatcher_log(store))
    assert len(set(attempts)) == 2                                        # a new attempt, not Ray's own retry
    assert results(store, key) == results(local_reference(tmp_path, cfg, 2), key)
