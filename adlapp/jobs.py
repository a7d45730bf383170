"""Launching training outside the UI process: a queue in the run store, drained by worker processes.

Why OS processes: Streamlit does not support threads in app code, `multiprocessing` children are orphaned
when a script rerun is interrupted, and a browser refresh wipes session state. A worker is
`python -m adlapp worker --store DIR`, started with `start_new_session=True` so it outlives reruns, page
switches, closed tabs and even the Streamlit server. It claims queued runs one at a time until none is left.

The backend interface (submit, cancel, ensure_workers) is small on purpose, so that a cluster backend can
replace `LocalProcessBackend` without touching pages or the trainer. This module never imports torch.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from adlapp.config import RunConfig
from adlapp.devices import cuda_gpus
from adlapp.store import RunStore

__all__ = ["LocalProcessBackend", "Submission", "default_concurrency"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_concurrency() -> int:
    """One trainer per CUDA GPU, one on CPU (two CPU trainers would only fight over the same cores)."""
    return max(1, len(cuda_gpus()))


@dataclass(frozen=True)
class Submission:
    queued: list[str]          # keys newly queued
    existing: dict[str, str]   # key -> status of runs that already existed (done, running, queued)


class LocalProcessBackend:
    """Runs queued work in local worker processes that share one store."""

    def __init__(self, store: RunStore, concurrency: int | None = None, device: str = "auto") -> None:
        self.store = store
        self.concurrency = concurrency or default_concurrency()
        self.device = device

    def submit(self, requests: list[tuple[RunConfig, int]], command: str = "app") -> Submission:
        """Queue every (config, seed) not finished or active yet, then make sure workers are running."""
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
        return self.store.request_cancel(key)

    def ensure_workers(self) -> list[int]:
        """Start workers until `concurrency` are alive; returns the pids started now.

        Count-then-start is done under an exclusive file lock on the store: without it, callers arriving
        together (two tabs, a rerun during a click) each counted too few workers and each started one."""
        with open(self.store.root / "workers.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._start_missing_workers()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _start_missing_workers(self) -> list[int]:
        self.store.mark_stale()
        alive = self.store.live_workers()
        started = []
        threads = max(1, (os.cpu_count() or 1) // self.concurrency)
        log_dir = self.store.root / "logs"
        log_dir.mkdir(exist_ok=True)
        for _ in range(self.concurrency - len(alive)):
            log = open(log_dir / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{len(started)}.log", "ab")
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            proc = subprocess.Popen(
                [sys.executable, "-m", "adlapp", "worker", "--store", str(self.store.root.resolve()),
                 "--device", self.device, "--threads", str(threads)],
                cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env)
            log.close()
            # Registered here, not only in the child, so two quick calls cannot both start a worker.
            self.store.register_worker(proc.pid)
            started.append(proc.pid)
        return started
