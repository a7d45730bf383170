"""Continuing a done run for N more epochs: a new run, equal to a fresh run of E+N epochs, the parent untouched.

Everything here trains for real (tiny sizes, CPU) through the runner and the store, and compares numbers with ==:
the learning rate is constant and the batch order comes from the generator saved in the checkpoint, so picking
up from the parent's last checkpoint must give exactly what training E+N epochs from the start gives.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
from conftest import tiny, train_into

from adlapp import cli, planning, runner
from adlapp.bundle import export_store, import_bundle
from adlapp.config import LIMITS, ConfigError, run_key
from adlapp.store import CHECKPOINT_FILE, RunStore, StoreError
from adlapp.train import _CHECKPOINT, checkpoint_state, train


def continue_and_train(store: RunStore, parent: str, more: int):
    """continue_run, then train the child the way a queue worker would; the Continuation."""
    child = store.continue_run(parent, more, command="pytest")
    assert child.status == "queued" and child.queued_now, child
    claimed = store.claim(child.key)
    assert claimed is not None
    key, cfg, seed = claimed
    status = runner.run_claimed(store, key, cfg, seed, device="cpu", flag=SimpleNamespace(set=False))
    assert status == "done", store.get(key)["error"]
    return child


def stored(store: RunStore, key: str, with_seconds: bool = False) -> tuple[dict, dict]:
    """{(epoch, name): value} of a run's epoch rows (seconds left out unless asked) and of its test rows."""
    tables = store.tables(keys=[key])
    epochs = {(int(e), n): v for e, n, v in tables.epochs[["epoch", "name", "value"]].itertuples(index=False)
              if with_seconds or n != "seconds"}
    tests = {(int(e), n): v for e, n, v in tables.tests[["epoch", "name", "value"]].itertuples(index=False)}
    return epochs, tests


def fresh(cfg, seed: int = 0) -> tuple[dict, dict]:
    """The same shape as `stored`, from a fresh run trained in memory (no store, no checkpoint)."""
    result = train(cfg, seed, device="cpu")
    assert result.status == "done"
    epochs = {(h["epoch"], n): v for h in result.history for n, v in h.items() if n not in ("epoch", "seconds")}
    tests = {(e, n): v for e, row in result.tests.items() for n, v in row.items()}
    return epochs, tests


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parent_snapshot(store: RunStore, key: str) -> tuple:
    """Everything of the parent a continuation could touch: row, rows, checkpoint and weights files."""
    row = {k: v for k, v in store.get(key).items() if k not in ("heartbeat",)}
    files = sorted((p.name, digest(p)) for folder in (store.checkpoint_dir(key), store.weights_dir(key))
                   for p in folder.glob("*"))
    return row, stored(store, key, with_seconds=True), files


@pytest.mark.parametrize("name, more", [("cnn/bn-adam", 2), ("unet/normal", 2)])
def test_a_continued_run_equals_a_fresh_longer_run_and_leaves_its_parent_alone(tmp_path, name, more):
    store = RunStore(tmp_path / "store")
    cfg = tiny(name)                                     # CNN: 2 epochs; U-Net: 3 epochs, test epochs 1, 2, 3
    (parent,) = train_into(store, cfg, seeds=(0,))
    assert checkpoint_state(store.checkpoint_dir(parent))["epoch"] == cfg.epochs      # kept, at the last epoch
    before = parent_snapshot(store, parent)

    planned_cfg, _, from_epoch, from_checkpoint = store.continuation(parent, more)
    assert (from_epoch, from_checkpoint) == (cfg.epochs, True)
    child = continue_and_train(store, parent, more)
    assert child.key == run_key(planned_cfg, 0)

    longer = replace(cfg, epochs=cfg.epochs + more, eval_at=cfg.test_epochs)
    assert child.key == run_key(longer, 0) != parent
    # The key a fresh request of E+N epochs scored at the parent's test epochs gets through the app's path.
    asked = planning.configure(cfg, planning.Toggles(), planning.Sizes(epochs=longer.epochs, eval_at=cfg.test_epochs))
    assert run_key(asked, 0) == child.key
    assert (child.from_epoch, child.epochs, child.from_checkpoint) == (cfg.epochs, cfg.epochs + more, True)
    assert stored(store, child.key) == fresh(longer)                 # every epoch and test row, ==
    assert set(t for t, _ in stored(store, child.key)[1]) == set(longer.test_epochs)
    # Its first E epochs are the parent's own rows (replayed from the checkpoint), seconds included.
    child_rows, _ = stored(store, child.key, with_seconds=True)
    parent_rows = before[1][0]
    assert {k: v for k, v in child_rows.items() if k[0] <= cfg.epochs} == parent_rows
    row = store.get(child.key)
    assert row["status"] == "done" and row["epochs"] == cfg.epochs + more
    assert f"continued from run {parent} at epoch {cfg.epochs}" in row["notes"]
    # The parent's weights files came along; the child wrote its own at its new last epoch.
    assert store.weight_epochs(child.key) == list(longer.test_epochs)
    for epoch in cfg.test_epochs:
        name_ = f"epoch-{epoch}.safetensors"
        assert digest(store.weights_dir(child.key) / name_) == digest(store.weights_dir(parent) / name_)
    assert parent_snapshot(store, parent) == before                  # the parent is exactly as it was


def test_a_parent_without_a_checkpoint_is_trained_again_from_epoch_one_and_says_so(tmp_path):
    trained = RunStore(tmp_path / "trained")
    cfg = tiny("cnn/adam")
    (parent,) = train_into(trained, cfg, seeds=(0,))
    export_store(trained, tmp_path / "runs.zip", provenance={"command": "pytest"})
    store = RunStore(tmp_path / "store")
    assert import_bundle(store, tmp_path / "runs.zip") == [parent]          # an imported run: no checkpoint
    assert not (store.checkpoint_dir(parent) / CHECKPOINT_FILE).exists()

    planned_cfg, _, from_epoch, from_checkpoint = store.continuation(parent, 1)
    assert (planned_cfg.epochs, from_epoch, from_checkpoint) == (3, 0, False)     # costs all 3 epochs
    assert store.runs()["key"].tolist() == [parent]                               # asking queued nothing
    child = store.continue_run(parent, 1)
    assert child.status == "queued" and not child.from_checkpoint and child.key == run_key(planned_cfg, 0)
    assert not any(store.weights_dir(child.key).glob("*"))          # it will write weights of its own
    note = store.get(child.key)["notes"]
    assert f"continued from run {parent} at epoch 2, which kept no checkpoint" in note
    assert "only on the same device and thread count" in note and "cpu" in note

    key, cfg_child, seed = store.claim(child.key)
    assert runner.run_claimed(store, key, cfg_child, seed, device="cpu", flag=SimpleNamespace(set=False)) == "done"
    # Same device and thread count here, so even retrained from epoch 1 it equals the fresh longer run.
    assert stored(store, child.key) == fresh(replace(cfg, epochs=3, eval_at=(2,)))


def test_a_child_already_there_is_reported_not_trained_again(tmp_path):
    store = RunStore(tmp_path / "store")
    cfg = tiny("cnn/sgd")
    (parent,) = train_into(store, cfg, seeds=(0,))
    first = continue_and_train(store, parent, 1)
    again = store.continue_run(parent, 1)
    assert (again.key, again.status, again.queued_now) == (first.key, "done", False)
    queued = store.continue_run(parent, 3)
    twice = store.continue_run(parent, 3)
    assert queued.queued_now and (twice.key, twice.status, twice.queued_now) == (queued.key, "queued", False)
    assert len(store.runs()) == 3                                    # parent, done child, one queued child


def test_refusals_name_the_problem(tmp_path):
    store = RunStore(tmp_path / "store")
    cfg = tiny("cnn/sgd")
    (done,) = train_into(store, cfg, seeds=(0,))
    queued, _ = store.enqueue(cfg, 1)
    with pytest.raises(KeyError, match="0123456789abcdef: not in the store"):
        store.continue_run("0123456789abcdef", 1)
    with pytest.raises(StoreError, match=f"run {queued}: is queued; only a done run can be continued"):
        store.continue_run(queued, 1)
    most = LIMITS["epochs"] - cfg.epochs
    for bad in (0, -3, most + 1, 2.5, True):
        with pytest.raises(ConfigError, match=f"must be a whole number from 1 to {most}"):
            store.continue_run(done, bad)
    assert store.continue_run(done, most).epochs == LIMITS["epochs"]      # the bound itself is allowed
    assert _CHECKPOINT == CHECKPOINT_FILE == planning.CHECKPOINT_FILE      # one file name, read three ways


def test_a_diverged_run_keeps_no_checkpoint_and_cannot_be_continued(tmp_path):
    store = RunStore(tmp_path / "store")
    cfg = replace(tiny("cnn/sgd"), optim=replace(tiny("cnn/sgd").optim, lr=1e6), epochs=4)
    key, _ = store.enqueue(cfg, 0)
    store.claim(key)
    assert runner.run_claimed(store, key, cfg, 0, device="cpu", flag=SimpleNamespace(set=False)) == "diverged"
    assert not any(store.checkpoint_dir(key).glob("*"))
    with pytest.raises(StoreError, match="is diverged; only a done run can be continued"):
        store.continue_run(key, 1)


# -- the command line -----------------------------------------------------------------------------------------
def run_cli(capsys, *args) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture
def no_sigterm_handler(monkeypatch):
    """The foreground command installs a SIGTERM handler; keep pytest's own."""
    monkeypatch.setattr(runner, "TerminationFlag", lambda: SimpleNamespace(set=False))


def test_cli_continue_trains_in_the_foreground_or_only_queues(tmp_path, capsys, no_sigterm_handler, monkeypatch):
    store = RunStore(tmp_path / "store")
    cfg = tiny("cnn/bn-adam")
    (parent,) = train_into(store, cfg, seeds=(0,))
    args = ["continue", parent, "--epochs", "1", "--store", str(store.root), "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", ["adlapp", *args])              # what the run records as its command
    code, err = run_cli(capsys, *args)
    child = run_key(replace(cfg, epochs=3, eval_at=(2,)), 0)
    assert code == 0, err
    assert f"{child} seed=0 (run {parent} continued to 3 epochs, from its checkpoint at epoch 2): done" in err
    assert stored(store, child) == fresh(replace(cfg, epochs=3, eval_at=(2,)))
    assert store.get(child)["command"] == f"python -m adlapp continue {parent} --epochs 1 --store {store.root} " \
                                          "--device cpu"
    code, err = run_cli(capsys, "continue", parent, "--epochs", "1", "--store", str(store.root))
    assert code == 0 and "already done, not trained again" in err

    code, err = run_cli(capsys, "continue", parent, "--epochs", "4", "--queue", "--store", str(store.root))
    queued = run_key(replace(cfg, epochs=6, eval_at=(2,)), 0)
    assert code == 0 and f"{queued} seed=0" in err and "queued for the trainer processes" in err
    assert store.get(queued)["status"] == "queued" and store.get(queued)["last_epoch"] == 0
    code, err = run_cli(capsys, "continue", parent, "--epochs", "4", "--queue", "--store", str(store.root))
    assert code == 0 and err.endswith(": already queued\n") and len(store.runs()) == 3


def test_cli_continue_refuses_with_one_line(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    queued, _ = store.enqueue(tiny("cnn/sgd"), 0)
    for key, epochs, message in [
            ("0123456789abcdef", "1", "run 0123456789abcdef: not in the store"),
            (queued, "1", f"run {queued}: is queued; only a done run can be continued")]:
        code, err = run_cli(capsys, "continue", key, "--epochs", epochs, "--store", str(store.root), "--queue")
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"python -m adlapp continue: error: {message}"), err
    for bad in ("0", "x"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["continue", queued, "--epochs", bad, "--store", str(store.root)])
        assert exit_.value.code == 2
        assert "--epochs" in capsys.readouterr().err
    assert store.get(queued)["status"] == "queued" and len(store.runs()) == 1       # nothing was touched


def test_cli_continue_refuses_too_many_epochs(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    (done,) = train_into(store, tiny("cnn/sgd"), seeds=(0,))
    code, err = run_cli(capsys, "continue", done, "--epochs", str(LIMITS["epochs"]), "--queue",
                        "--store", str(store.root))
    assert code == 2 and f"must be a whole number from 1 to {LIMITS['epochs'] - 2}" in err
    assert err.count("\n") == 1 and len(store.runs()) == 1


# -- the Runs page ----------------------------------------------------------------------------------------------
def test_the_runs_page_queues_the_continuation_of_a_done_run(app_env, monkeypatch):
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    from adlapp import jobs

    started = []
    monkeypatch.setattr(jobs.LocalProcessBackend, "ensure_workers", lambda self: started.append(1) or [])
    monkeypatch.setattr(jobs.LocalProcessBackend, "live_workers", lambda self: [])
    store = RunStore(app_env / "store")
    cfg = tiny("cnn/adam")
    (done,) = train_into(store, cfg, seeds=(0,))
    waiting, _ = store.enqueue(cfg, 1)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="runs_continue_sel")
    assert picker.options == [f"Adam seed 0 · {done[:8]}"] and waiting[:8] not in " ".join(picker.options)
    assert at.button(key="runs_continue_btn").disabled                  # nothing chosen yet
    picker.set_value(done).run()
    at.number_input(key="runs_continue_epochs").set_value(3).run()
    assert at.button(key="runs_continue_btn").proto.label == "Continue for 3 more epochs"
    # Costed at the 3 epochs it trains, not at the child's 5: it picks up from the parent's checkpoint.
    assert any(c.value.startswith("The new run picks up at epoch 2 and trains epochs 3-5. Training 1 run × 3 epochs "
                                  "takes") for c in at.caption), [c.value for c in at.caption]
    at.button(key="runs_continue_btn").click().run()
    assert not at.exception, at.exception
    child = run_key(replace(cfg, epochs=5, eval_at=(2,)), 0)
    assert any(f"continued to 5 epochs ({child[:8]}): queued as a new run; it picks up from the checkpoint at "
               "epoch 2" in s.value for s in at.success), [s.value for s in at.success]
    row = store.get(child)
    assert row["status"] == "queued" and row["command"] == "app"
    assert row["notes"] == f"continued from run {done} at epoch 2"
    assert checkpoint_state(store.checkpoint_dir(child))["epoch"] == 2 and started       # a trainer is asked for
    assert child in set(at.dataframe[0].value["key"])                  # shown at once in the table
    at.button(key="runs_continue_btn").click().run()                    # again: already on its way, not twice
    assert any("already queued" in i.value for i in at.info) and len(store.runs()) == 3
