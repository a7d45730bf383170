"""Where runs train: the `Backend` interface every caller uses, and its local implementation.

A `Backend` is the one object pages, the CLI's worker and the Compare page's "queue missing seeds" button use
to submit runs, cancel them, read their status and keep workers running. `LocalProcessBackend` queues runs in
the run store and drains the queue with local worker processes; a cluster backend (Ray, say) implements the
same five methods without touching pages or the trainer.

Why OS processes: Streamlit does not support threads in app code, `multiprocessing` children are orphaned
when a script rerun is interrupted, and a browser refresh wipes session state. A worker is
`python -m adlapp worker --store DIR`, started with `start_new_session=True` so it outlives reruns, page
switches, closed tabs and even the Streamlit server. It claims queued runs one at a time until none is left.

Live workers are known from a `WorkerRegistry`: one pid file per worker under `<store>/workers/<host>/`,
written by the process that starts it (so two quick callers cannot both start one) and removed by the worker
when it ends; a pid whose process is gone, or is now another process, is forgotten. This module never
imports torch.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adlapp.config import RunConfig
from adlapp.devices import cuda_gpus
from adlapp.processes import pid_alive, start_ticks
from adlapp.store import RunStore

__all__ = ["Backend", "StoreQueueBackend", "LocalProcessBackend", "Submission", "WorkerRegistry",
           "default_concurrency", "WARM_IDLE_S"]

# The folder `python -m adlapp` must run from for a worker to import this package (the checkout).
_CHECKOUT = Path(__file__).resolve().parent.parent


# How long a local trainer process waits for more work after the queue empties: long enough for a user who
# just watched a run to launch the next one into a warm process, short enough not to hold memory for long.
WARM_IDLE_S = 120.0


def default_concurrency() -> int:
    """One trainer per CUDA GPU, one on CPU (two CPU trainers would only fight over the same cores)."""
    return max(1, len(cuda_gpus()))


@dataclass(frozen=True)
class Submission:
    queued: list[str]          # keys newly queued
    existing: dict[str, str]   # key -> status of runs that already existed (done, running, queued)


class Backend(ABC):
    """Submit, cancel and watch runs, and keep workers running. Keys are run keys (`adlapp.config.run_key`)."""

    concurrency: int           # runs that train at once

    @abstractmethod
    def submit(self, requests: list[tuple[RunConfig, int]], command: str = "app") -> Submission:
        """Queue every (config, seed) that is neither finished nor active yet, then make sure workers run.
        `command` is recorded with each new run as its provenance."""

    @abstractmethod
    def cancel(self, key: str) -> str:
        """Stop a run: a queued one is cancelled at once ("cancelled"), a running one after its current epoch
        ("cancelling"); any other run is left alone and its status returned. KeyError for an unknown key."""

    @abstractmethod
    def status(self, keys: list[str]) -> dict[str, str]:
        """key -> status (adlapp.store.STATUSES) of the known runs among `keys`."""

    @abstractmethod
    def ensure_workers(self) -> list[int]:
        """Start workers until `concurrency` are alive; the ids (pids) of those started now."""

    @abstractmethod
    def live_workers(self) -> list[int]:
        """The ids (pids) of the workers alive now."""


class StoreQueueBackend(Backend):
    """A backend whose queue is the run store: runs are queued as store rows and cancelled through the store's
    flag, whatever then trains them (local worker processes, a Ray dispatcher). Subclasses set `store` and
    implement the workers."""

    store: RunStore

    def submit(self, requests: list[tuple[RunConfig, int]], command: str = "app") -> Submission:
        queued, existing = [], {}
        for cfg, seed in requests:
            key, status = self.store.enqueue(cfg, seed, command=command)
            if status == "queued" and key not in existing:
                queued.append(key)
            else:
                existing[key] = status
        if queued:
            self.ensure_workers()
        return Submission(queued, existing)

    def cancel(self, key: str) -> str:
        return self.store.request_cancel(key)      # the worker (or dispatcher) sees the flag after its epoch

    def status(self, keys: list[str]) -> dict[str, str]:
        return self.store.statuses(keys) if keys else {}


class LocalProcessBackend(StoreQueueBackend):
    """Runs queued work in local worker processes that share one store."""

    def __init__(self, store: RunStore, concurrency: int | None = None, device: str = "auto",
                 idle_exit: float = WARM_IDLE_S) -> None:
        self.store = store
        self.concurrency = concurrency or default_concurrency()
        self.device = device
        self.idle_exit = idle_exit
        self.workers = WorkerRegistry(store.root)

    def live_workers(self) -> list[int]:
        return self.workers.live()

    def ensure_workers(self) -> list[int]:
        """Count-then-start runs under the registry's exclusive lock: without it, callers arriving together
        (two tabs, a rerun during a click) each counted too few workers and each started one."""
        with self.workers.locked():
            self.store.mark_stale()
            missing = self.concurrency - len(self.workers.live())
            return [self._start_worker(i) for i in range(max(0, missing))]

    def prewarm(self, experiment: str) -> list[int]:
        """Start the trainer processes now, before anything is queued, with torch imported and `experiment`'s
        built-in data built: a run submitted within `idle_exit` seconds starts its first epoch at once
        (a cold start costs ~2 s of imports, ~2 s of data and the process start before the first epoch)."""
        with self.workers.locked():
            missing = self.concurrency - len(self.workers.live())
            return [self._start_worker(i, warm=(experiment,)) for i in range(max(0, missing))]

    def _start_worker(self, index: int, warm: tuple[str, ...] = ()) -> int:
        threads = max(1, (os.cpu_count() or 1) // self.concurrency)
        log_dir = self.store.root / "logs"
        log_dir.mkdir(exist_ok=True)
        with open(log_dir / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{index}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "adlapp", "worker", "--store", str(self.store.root.resolve()),
                 "--device", self.device, "--threads", str(threads), "--idle-exit", f"{self.idle_exit:g}",
                 *(arg for exp in warm for arg in ("--warm", exp))],
                cwd=_CHECKOUT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        # Registered here, not only by the child, so a caller right after this one counts it.
        self.workers.add(proc.pid)
        return proc.pid


class WorkerRegistry:
    """The worker processes of one store on this host: a pid file each under `<store>/workers/<host>/`.

    A file holds the pid and its start time (`adlapp.processes.start_ticks`), so a pid reused by another
    process after a crash or a reboot is not taken for a worker. A store nobody may write (shared read-only)
    has no live workers of ours."""

    def __init__(self, store_root: str | os.PathLike) -> None:
        self.root = Path(store_root)
        host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
        self.folder = self.root / "workers" / host

    def add(self, pid: int) -> None:
        """Record `pid` as a worker (idempotent: the starter and the worker itself both add it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"pid": pid, "started": start_ticks(pid), "registered": time.time()}
        tmp = self.folder / f".{pid}.{os.getpid()}.tmp"    # the starter and the worker both write
        tmp.write_text(json.dumps(record))
        tmp.replace(self.folder / f"{pid}.json")     # atomic: a reader never sees half a file

    def remove(self, pid: int) -> None:
        (self.folder / f"{pid}.json").unlink(missing_ok=True)

    def live(self) -> list[int]:
        """Pids of registered workers still running; the files of dead ones are removed."""
        alive = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            pid, started = _read_record(path)
            if pid is not None and pid_alive(pid, started):
                alive.append(pid)
            else:
                try:
                    path.unlink(missing_ok=True)
                except OSError:                          # a read-only store: leave it
                    pass
        return alive

    @contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock on the store's worker set (a `flock` on `<store>/workers.lock`)."""
        with open(self.root / "workers.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def registered(self, pid: int) -> Iterator[None]:
        """`pid` is a worker for the duration (the worker command wraps its loop in this)."""
        self.add(pid)
        try:
            yield
        finally:
            self.remove(pid)


def _read_record(path: Path) -> tuple[int | None, int | None]:
    try:
        record = json.loads(path.read_text())
        started = record.get("started")
        return int(record["pid"]), (int(started) if started is not None else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
