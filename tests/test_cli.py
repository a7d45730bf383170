"""`python -m adlapp` as a user runs it: real processes, real store, clear errors."""
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adlapp.cli import _parser, build_config
from adlapp.config import variant
from adlapp.jobs import Backend, LocalProcessBackend, WorkerRegistry
from adlapp.planning import StudyChoice, Toggles, make_requests
from adlapp.processes import start_ticks
from adlapp.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def adlapp(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "adlapp", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_train_then_runs_json(tmp_path):
    store = str(tmp_path / "store")
    out = adlapp("train", "cnn", "--variant", "bn-adam", "--seeds", "2", "--epochs", "2",
                 "--train-per-class", "2", "--store", store)
    assert out.returncode == 0, out.stderr
    records = json.loads(adlapp("runs", "--json", "--store", store).stdout)
    assert [r["status"] for r in records] == ["done", "done"]
    assert sorted(r["seed"] for r in records) == [0, 1]
    for r in records:
        assert r["variant"] == "cnn/bn-adam" and r["epochs_recorded"] == 2
        assert set(r["final"]) >= {"train_loss", "val_loss", "val_acc"}
        assert set(r["test"]["2"]) == {"acc", "loss", "best_acc", "best_loss", "best_epoch"}
    again = adlapp("train", "cnn", "--variant", "bn-adam", "--seeds", "2", "--epochs", "2",
                   "--train-per-class", "2", "--store", store)
    assert again.returncode == 0 and again.stderr.count("already done") == 2
    table = adlapp("runs", "--store", store).stdout
    assert "cnn/bn-adam" in table and "done" in table


@pytest.mark.parametrize("args,needle", [
    (["train", "cnn", "--epochs", "0"], "--epochs"),
    (["train", "cnn", "--lr", "-0.1"], "--lr"),
    (["train", "cnn", "--variant", "resnet"], "resnet"),
    (["train", "cnn", "--dataset", "/no/such/folder"], "/no/such/folder"),
    (["train", "cnn", "--dataset", "vessels"], "vessels"),
    (["train", "unet", "--variant", "bn-adam"], "bn-adam"),
    (["train", "cnn", "--seeds", "0"], "--seeds"),
    (["train", "cnn", "--seeds", "4-2"], "--seeds"),
    (["import", "/no/such/bundle.zip"], "bundle.zip"),
    (["compare", "--experiment", "cnn", "--metric", "test_f1"], "--metric 'test_f1'"),
    (["compare", "--experiment", "cnn", "--at", "7"], "--at '7'"),
    (["compare", "--experiment", "cnn", "--at", "x"], "whole numbers"),
    (["compare", "--experiment", "cnn", "--variants", "resnet"], "resnet"),
    (["compare", "--experiment", "unet", "--preset", "Course: CNN optimisers & BN"], "is a cnn preset"),
    (["compare", "--experiment", "cnn", "--preset", "nope"], "unknown; presets are"),
])
def test_invalid_arguments_exit_nonzero_with_one_clear_line(tmp_path, args, needle):
    out = adlapp(*args, "--store", str(tmp_path))
    assert out.returncode != 0
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert needle in lines[-1], out.stderr
    assert "Traceback" not in out.stderr


def test_every_command_has_help():
    for cmd in ([], ["train"], ["runs"], ["cancel"], ["export"], ["import"], ["worker"], ["compare"], ["report"],
                ["bench"]):
        out = adlapp(*cmd, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout
    listing = adlapp("--help").stdout
    for lazy in ("compare", "report", "bench"):       # listed with their summary without being imported
        assert lazy in listing


def test_the_training_commands_start_without_the_analysis_layer():
    """`worker` and `train` sit between a click on Train and the first live point: parsing them must not import
    scipy, altair or the comparison code (that was ~1.4 s of a cold start)."""
    probe = ("import sys; from adlapp import cli\n"
             "for command in ('worker', 'train', 'resume', 'continue'): cli._parser(command)\n"
             "print(sorted(m for m in ('scipy', 'altair', 'adlapp.compare', 'adlapp.study_report', 'adlapp.bench')"
             " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_seeds_are_a_count_a_list_or_a_range():
    def seeds(text):
        return _parser().parse_args(["train", "cnn", "--seeds", text]).seeds

    assert seeds("5") == [0, 1, 2, 3, 4]         # a count: what `--seeds 5` in cached_runs/ provenance meant
    assert seeds("0,4,9") == [0, 4, 9]
    assert seeds("0-4") == [0, 1, 2, 3, 4]
    assert seeds("7,") == seeds("7-7") == [7]    # one particular seed


@pytest.mark.parametrize("args,choice", [
    (["unet", "--variant", "nearest", "--epochs", "1000", "--eval-at", "400,200", "--n-train", "4"],
     StudyChoice("unet", variants=("unet/nearest",), budgets="200,400,1000", n_train=4, seeds=(0,))),
    (["cnn", "--variant", "cnn/sgd", "--lr", "0.05", "--epochs", "3", "--batch-size", "16"],
     StudyChoice("cnn", variants=("cnn/sgd",), epochs=3, batch_size=16, seeds=(0,),
                 common=Toggles(lr=0.05))),
    (["cnn", "--dataset", "cards", "--no-batchnorm", "--optimizer", "adam"],
     StudyChoice("cnn", variants=("cnn/adam",), dataset="cards", seeds=(0,))),
])
def test_the_cli_and_the_app_build_the_same_config(args, choice):
    """One path from choices to a RunConfig (adlapp.planning): the same choice is the same run key."""
    (cfg, _), = make_requests(choice)[0]
    assert build_config(_parser().parse_args(["train", *args])) == cfg


def _card_folder(root: Path, classes=("ace of spades", "two of hearts", "joker"), per_split=3):
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for i, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for j in range(per_split):
                img = rng.integers(0, 80, (40, 30, 3), dtype=np.uint8)
                img[:, :, i] += 150                               # a learnable colour cue per class
                Image.fromarray(img).save(d / f"{j}.{'png' if j % 2 else 'jpg'}")


def test_train_on_a_card_layout_folder(tmp_path):
    _card_folder(tmp_path / "cards")
    store = str(tmp_path / "store")
    out = adlapp("train", "cnn", "--dataset", str(tmp_path / "cards"), "--seeds", "1", "--epochs", "2",
                 "--batch-size", "4", "--store", store)
    assert out.returncode == 0, out.stderr
    (rec,) = json.loads(adlapp("runs", "--json", "--store", store).stdout)
    assert rec["status"] == "done" and rec["config"]["data"]["name"] == str((tmp_path / "cards").resolve())


def test_bad_folder_layout_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "cards" / "train" / "joker").mkdir(parents=True)
    out = adlapp("train", "cnn", "--dataset", str(tmp_path / "cards"), "--store", str(tmp_path / "s"))
    assert out.returncode == 2 and str(tmp_path / "cards") in out.stderr and "Traceback" not in out.stderr


def test_export_import_round_trip(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert adlapp("train", "cnn", "--variant", "sgd", "--seeds", "1", "--epochs", "1",
                  "--train-per-class", "1", "--store", a).returncode == 0
    out = adlapp("export", "--out", str(tmp_path / "x.zip"), "--store", a)
    assert out.returncode == 0, out.stderr
    assert "imported 1 new run" in adlapp("import", str(tmp_path / "x.zip"), "--store", b).stdout
    assert json.loads(adlapp("runs", "--json", "--store", b).stdout)[0]["status"] == "done"


def _wait(store, key, statuses, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = store.get(key)["status"]
        if status in statuses:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{key} still {store.get(key)['status']}")


def test_queue_worker_process_trains_and_cancel_is_clean(tmp_path):
    store = RunStore(tmp_path)
    backend = LocalProcessBackend(store, concurrency=1, device="cpu")
    quick = replace(variant("cnn/adam"), epochs=1, data=replace(variant("cnn/adam").data, train_per_class=1))
    slow = replace(quick, epochs=500)
    sub = backend.submit([(quick, 0), (slow, 0)])
    assert len(sub.queued) == 2
    assert _wait(store, sub.queued[0], ("done",)) == "done"
    _wait(store, sub.queued[1], ("running",))
    deadline = time.time() + 60
    while store.get(sub.queued[1])["last_epoch"] < 1 and time.time() < deadline:
        time.sleep(0.2)
    assert backend.cancel(sub.queued[1]) == "cancelling"
    assert _wait(store, sub.queued[1], ("cancelled",)) == "cancelled"
    assert backend.submit([(quick, 0)]).existing == {sub.queued[0]: "done"}   # never retrained
    assert backend.status(sub.queued) == {sub.queued[0]: "done", sub.queued[1]: "cancelled"}
    assert isinstance(backend, Backend) and backend.status([]) == {}


def test_cancel_goes_through_the_queue(tmp_path):
    store = RunStore(tmp_path)
    key, _ = store.enqueue(replace(variant("cnn/adam"), epochs=1), 0)     # queued; no worker started
    out = adlapp("cancel", key, "--store", str(tmp_path))
    assert out.returncode == 0 and out.stdout.strip() == f"{key}: cancelled", out.stderr
    assert store.get(key)["status"] == "cancelled"
    out = adlapp("cancel", "0123456789abcdef", "--store", str(tmp_path))
    assert out.returncode == 2 and "0123456789abcdef" in out.stderr and "Traceback" not in out.stderr


def test_worker_registry_forgets_dead_and_reused_pids(tmp_path):
    registry = WorkerRegistry(tmp_path)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        registry.add(alive.pid)
        registry.add(dead.pid)
        assert registry.live() == [alive.pid]
        assert sorted(p.name for p in registry.folder.iterdir()) == [f"{alive.pid}.json"]   # the dead one's file
        if start_ticks(os.getpid()) is not None:        # /proc: a pid now held by another process is not ours
            record = registry.folder / f"{alive.pid}.json"
            record.write_text(json.dumps({"pid": alive.pid, "started": start_ticks(alive.pid) - 1}))
            assert registry.live() == [] and not record.exists()
        with registry.registered(alive.pid):
            assert registry.live() == [alive.pid]
        assert registry.live() == []
    finally:
        alive.kill()
        alive.wait()
