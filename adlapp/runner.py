"""Connects the trainer to the run store: provenance, one row set per epoch, final status, clean cancel.

Used by both the CLI (`python -m adlapp train`, in the foreground) and the queue workers started by
`adlapp.jobs` (in their own OS processes).
"""
from __future__ import annotations

import signal
import threading
import traceback
from typing import Callable

from adlapp.config import RunConfig
from adlapp.store import RunStore
from adlapp.provenance import git_commit, library_versions
from adlapp.train import EpochReport, device_name, resolve_device, train

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
                progress: Callable[[EpochReport], None] | None = None) -> str:
    """Train a run already claimed (status `running`) and record everything; returns the final status.

    An exception inside training marks the run `failed` with its message; the caller carries on with
    other runs. Ctrl-C marks it `interrupted` (resumable) and re-raises.
    """
    flag = flag or TerminationFlag()
    try:
        dev = resolve_device(device)
        store.set_provenance(key, device_name(dev), library_versions(), git_commit())

        def on_epoch(report: EpochReport) -> None:
            store.record_epoch(key, report.epoch, report.metrics, report.tests)
            if progress:
                progress(report)

        result = train(cfg, seed, on_epoch=on_epoch, device=device, checkpoint_dir=store.checkpoint_dir(key),
                       should_stop=lambda: flag.set or store.cancel_requested(key))
    except KeyboardInterrupt:
        store.finish(key, "interrupted", error="interrupted from the keyboard")
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, never lost
        detail = traceback.format_exc(limit=3)
        store.finish(key, "failed", error=f"{type(e).__name__}: {e}\n{detail}")
        return "failed"
    store.finish(key, result.status, diverged_epoch=result.diverged_epoch,
                 error=(f"training loss became non-finite at epoch {result.diverged_epoch}"
                        if result.status == "diverged" else None))
    if result.status in ("done", "diverged"):
        for f in store.checkpoint_dir(key).glob("*"):     # a finished run needs no checkpoint
            f.unlink(missing_ok=True)
    return result.status
