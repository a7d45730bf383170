"""Connects the trainer to the run store: provenance, one row set per epoch, final status, clean cancel.

Used by both the CLI (`python -m adlapp train` / `resume`, in the foreground) and the queue workers started
by `adlapp.jobs` (in their own OS processes).

A run resumed from its checkpoint trains with the thread count it started with: on CPU the numbers depend
on it (the same run at 1 and 2 threads ends at different accuracies), so a continuation under another
count would be a hybrid of two runs. When the device differs, the run continues and a note says so.
"""
from __future__ import annotations

import signal
import threading
import traceback
from pathlib import Path
from typing import Callable

import torch

from adlapp import weights
from adlapp.config import EXPERIMENT_INFO, RunConfig, check_run_key
from adlapp.data import DataError, load_data, skipped_summary
from adlapp.provenance import git_commit, library_versions
from adlapp.store import CONTINUABLE, FINISHED, RunStore
from adlapp.train import EpochReport, checkpoint_state, device_name, resolve_device, train

__all__ = ["run_claimed", "TerminationFlag"]


class TerminationFlag:
    """Turns SIGTERM into a flag the training loop checks after each epoch, so `kill` means a clean
    `cancelled` with a checkpoint instead of a run stuck at `running` forever."""

    def __init__(self) -> None:
        self.set = False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.set = True


def run_claimed(store: RunStore, key: str, cfg: RunConfig, seed: int, device: str = "auto",
                flag: TerminationFlag | None = None,
                progress: Callable[[EpochReport], None] | None = None,
                checkpoint_every: int | None = None) -> str:
    """Train a run already claimed (status `running`) and record everything; returns the final status.

    An exception inside training marks the run `failed` with its message; the caller carries on with
    other runs. Ctrl-C marks it `interrupted` (resumable) and re-raises.
    """
    check_run_key(key)
    flag = flag or TerminationFlag()
    own_threads = torch.get_num_threads()
    ckpt_dir = store.checkpoint_dir(key)
    try:
        recorded = _prepare_run(store, key, cfg, device, ckpt_dir)
        result = train(cfg, seed, on_epoch=epoch_recorder(store, key, recorded, progress), device=device,
                       checkpoint_dir=ckpt_dir, should_stop=lambda: flag.set or store.cancel_requested(key),
                       checkpoint_every=checkpoint_every, on_weights=_weights_writer(store, key))
    except KeyboardInterrupt:
        store.finish(key, "interrupted", error="interrupted from the keyboard")
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, never lost
        detail = traceback.format_exc(limit=3)
        store.finish(key, "failed", error=f"{type(e).__name__}: {e}\n{detail}")
        return "failed"
    finally:
        torch.set_num_threads(own_threads)
    finish_run(store, key, result, ckpt_dir)
    return result.status


def _prepare_run(store: RunStore, key: str, cfg: RunConfig, device: str, ckpt_dir: Path) -> int:
    """Before training: the device, the resume conditions, provenance and data notes; the epochs already
    recorded in the store (a resumed run replays them without writing them twice)."""
    dev = resolve_device(device)
    row = store.get(key) or {}
    _match_resume_conditions(store, key, row, checkpoint_state(ckpt_dir), device_name(dev))
    store.set_provenance(key, device_name(dev), library_versions(), git_commit(), torch.get_num_threads())
    _note_skipped_files(store, key, cfg)
    return int(row.get("last_epoch") or 0)


def epoch_recorder(store: RunStore, key: str, recorded: int,
                    progress: Callable[[EpochReport], None] | None) -> Callable[[EpochReport], None]:
    """The trainer's per-epoch callback: one row set per epoch into the store, then the progress display."""
    def on_epoch(report: EpochReport) -> None:
        if report.replayed and report.epoch <= recorded:
            return               # already in the store
        store.record_epoch(key, report.epoch, report.metrics, report.tests)
        if progress and not report.replayed:
            progress(report)
    return on_epoch


def _weights_writer(store: RunStore, key: str) -> Callable[[int, dict], None]:
    """The trainer's per-test-epoch callback: the model's weights as `weights/<key>/epoch-E.safetensors`.
    A file already there (written before a crash or cancel, then retrained to the same weights) is kept."""
    folder = store.weights_dir(key)

    def on_weights(epoch: int, state_dict: dict) -> None:
        path = folder / weights.file_name(epoch)
        if not path.exists():
            weights.save(state_dict, path)
    return on_weights


def finish_run(store: RunStore, key: str, result, ckpt_dir: Path) -> None:
    """Record the final status. A done run keeps its last-epoch checkpoint: it is what lets the run be continued
    for more epochs (RunStore.continue_run) exactly. A diverged run cannot be continued, so its checkpoint
    goes (its weights folder is elsewhere, kept)."""
    store.finish(key, result.status, diverged_epoch=result.diverged_epoch,
                 error=(f"training loss became non-finite at epoch {result.diverged_epoch}"
                        if result.status == "diverged" else None))
    if result.status in FINISHED and result.status != CONTINUABLE:
        for f in ckpt_dir.glob("*"):
            f.unlink(missing_ok=True)


def _match_resume_conditions(store: RunStore, key: str, row: dict, ckpt: dict | None, device: str) -> None:
    """Before resuming from `ckpt`: use the run's own thread count, and note a change of device."""
    if ckpt is None:
        return
    threads = ckpt.get("threads") or _present(row.get("threads"))
    note = f"resumed from its checkpoint at epoch {ckpt['epoch']}"
    if threads and int(threads) != torch.get_num_threads():
        note += f" with {int(threads)} thread(s) as it started (this trainer uses {torch.get_num_threads()})"
        torch.set_num_threads(int(threads))
    # The checkpoint names the device it was written on; the row's is the last start's, and a continued run's
    # row has none before it starts (its checkpoint is its parent's).
    before = ckpt.get("device") or _present(row.get("device"))
    if before and before != device:
        note += (f"; it started on {before} and continues on {device}, so its numbers differ from an "
                 "uninterrupted run's")
    store.add_note(key, note)


def _note_skipped_files(store: RunStore, key: str, cfg: RunConfig) -> None:
    """Unreadable files of a user folder are left out of training; say so on the run, once."""
    try:
        data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    except DataError:
        return                      # train() raises it again, and the run fails with the message
    summary = skipped_summary(data)
    notes = _present((store.get(key) or {}).get("notes")) or ""
    if summary and summary not in notes:
        store.add_note(key, summary)


def _present(value: object) -> object:
    """A store cell, or None where it is NULL (pandas reads those as None or NaN)."""
    return None if value is None or value != value else value
