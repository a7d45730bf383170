"""The run store: one SQLite database (WAL mode) shared by trainer processes, the CLI and the app.

Why SQLite: several trainer processes append per-epoch rows while the UI polls; WAL lets readers read during a
write, every epoch is one short atomic transaction (a crash loses at most the epoch in flight), and runs can be
queried across experiments (120k metric rows written in 1,200 commits took 0.25 s when this was chosen).

Layout under the store directory: `runs.sqlite` (+ WAL files), `checkpoints/<run key>/` and
`weights/<run key>/epoch-<E>.safetensors` (the model at each test epoch E, see adlapp.weights); the job queue
(adlapp.jobs) keeps its worker registry in `workers/` and their logs in `logs/`. Old stores also hold a
`workers` table, no longer used.
Metrics are stored long (run, epoch, name, value) because the set of metrics differs between experiments;
an autoincrement id lets the UI read only rows it has not seen yet.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from adlapp.config import (
    LIMITS,
    ConfigError,
    RunConfig,
    check_run_key,
    config_from_dict,
    config_to_dict,
    is_run_key,
    run_key,
    variant_label,
)
from adlapp.processes import pid_alive
from adlapp.weights import epoch_of, file_name

__all__ = ["RunStore", "RunTables", "STATUSES", "FINISHED", "ACTIVE", "RESUMABLE", "ERROR_STATUSES", "RUN_COLUMNS",
           "OPTIONAL_RUN_COLUMNS", "CONTINUABLE", "CHECKPOINT_FILE", "Continuation", "default_store_dir",
           "StoreError"]

STATUSES = ("queued", "running", "done", "failed", "cancelled", "diverged", "interrupted", "importing")
FINISHED = ("done", "diverged")              # a finished run is a result; it is never retrained
ACTIVE = ("queued", "running")
RESUMABLE = ("failed", "cancelled", "interrupted")   # asked for again, these continue from their checkpoint
ERROR_STATUSES = ("failed", "diverged")      # ended with an error message a user should read (training's own)
IMPORTING = "importing"                      # rows of a bundle import in progress: reserved, not yet a result
CONTINUABLE = "done"                         # the one status that may be continued for more epochs (continue_run)
CHECKPOINT_FILE = "last.pt"                  # adlapp.train's checkpoint in checkpoint_dir(key), looked at without torch
STALE_AFTER_S = 120.0                        # heartbeat age after which a run on another host is presumed dead
LOCK_WAIT_S = 900.0                          # a writer waits this long for the write lock before giving up
IMPORT_CHUNK_ROWS = 20_000                   # metric rows per import transaction: the write lock is held ~50 ms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    status TEXT NOT NULL,
    last_epoch INTEGER NOT NULL DEFAULT 0,
    device TEXT, versions TEXT, command TEXT, git_commit TEXT, source TEXT NOT NULL DEFAULT 'local',
    host TEXT, pid INTEGER,
    created REAL NOT NULL, started REAL, finished REAL, heartbeat REAL,
    error TEXT, diverged_epoch INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    threads INTEGER, notes TEXT
);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL, epoch INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    UNIQUE (key, epoch, name)
);
CREATE TABLE IF NOT EXISTS test_metrics (
    key TEXT NOT NULL, epoch INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (key, epoch, name)
);
CREATE INDEX IF NOT EXISTS epoch_metrics_key ON epoch_metrics (key, epoch);
"""

RUN_COLUMNS = ["key", "experiment", "variant", "seed", "epochs", "status", "last_epoch", "device", "source",
               "created", "started", "finished", "heartbeat", "pid", "host", "error", "diverged_epoch",
               "command", "git_commit", "versions", "config", "threads", "notes"]
# Columns added after the first bundles were written: a bundle or store without them is still valid.
# threads: torch CPU threads the run trained with (results depend on it); notes: what a user should know
# about the run that is not an error, e.g. a resume under different conditions or skipped data files.
OPTIONAL_RUN_COLUMNS = ("threads", "notes")


class StoreError(RuntimeError):
    """The store directory or database cannot be used; the message names the path."""


def default_store_dir(explicit: str | os.PathLike | None = None) -> Path:
    """`--store DIR`, else $ADLAPP_STORE, else ./runs/."""
    return Path(explicit or os.environ.get("ADLAPP_STORE") or "runs")


@dataclass(frozen=True)
class Continuation:
    """What `RunStore.continue_run` did. `queued_now`: this call queued the child (`status` "queued"); else
    `status` is the one it already had (done: it is already there; queued or running: on its way).
    `from_checkpoint`: it picks up at the parent's last epoch; False: it trains from epoch 1 (the parent kept
    no checkpoint, e.g. it was imported from a bundle)."""
    key: str
    status: str
    queued_now: bool
    parent: str
    seed: int
    from_epoch: int          # the parent's last epoch
    epochs: int              # the child's: from_epoch + the epochs asked for
    from_checkpoint: bool


@dataclass(frozen=True)
class RunTables:
    """Finished or live results in one shape, whether read from the store or from a bundle.

    runs: one row per run (RUN_COLUMNS). epochs: long rows (key, epoch, name, value).
    tests: long rows (key, epoch, name, value), `epoch` being the epoch after which the test split was scored.
    """
    runs: pd.DataFrame
    epochs: pd.DataFrame
    tests: pd.DataFrame

    @staticmethod
    def empty() -> "RunTables":
        return RunTables(pd.DataFrame(columns=RUN_COLUMNS),
                         pd.DataFrame(columns=["key", "epoch", "name", "value"]),
                         pd.DataFrame(columns=["key", "epoch", "name", "value"]))

    @staticmethod
    def concat(parts: list["RunTables"]) -> "RunTables":
        """Union of several tables; when a run key appears twice the first occurrence wins."""
        parts = [p for p in parts if len(p.runs)]
        if not parts:
            return RunTables.empty()
        runs = pd.concat([p.runs for p in parts], ignore_index=True).drop_duplicates("key")
        seen: set[str] = set()
        epochs, tests = [], []
        for p in parts:
            mine = set(p.runs["key"]) - seen
            epochs.append(p.epochs[p.epochs["key"].isin(mine)])
            tests.append(p.tests[p.tests["key"].isin(mine)])
            seen |= mine
        return RunTables(runs.reset_index(drop=True),
                         pd.concat(epochs, ignore_index=True) if epochs else RunTables.empty().epochs,
                         pd.concat(tests, ignore_index=True) if tests else RunTables.empty().tests)

    def select(self, keys: set[str] | list[str]) -> "RunTables":
        keys = set(keys)
        return RunTables(self.runs[self.runs["key"].isin(keys)].reset_index(drop=True),
                         self.epochs[self.epochs["key"].isin(keys)].reset_index(drop=True),
                         self.tests[self.tests["key"].isin(keys)].reset_index(drop=True))


class RunStore:
    """All reads and writes of runs. Each call opens a short-lived connection, so one RunStore may be shared
    by Streamlit threads and every process can have its own; SQLite's busy timeout serialises writers."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = default_store_dir(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store directory {self.root}: cannot be created ({e.strerror})") from None
        if not self.root.is_dir():
            raise StoreError(f"store directory {self.root}: is not a directory")
        self.db_path = self.root / "runs.sqlite"
        self.host = socket.gethostname()
        # A store someone shared read-only (a directory or database we may not write) is opened read-only:
        # it can be listed and exported, and every write says why it is refused.
        self.read_only = not os.access(self.root, os.W_OK) or (
            self.db_path.exists() and not os.access(self.db_path, os.W_OK))
        if self.read_only and not self.db_path.exists():
            raise StoreError(f"store directory {self.root}: is read-only and holds no runs.sqlite")
        try:
            if self.read_only:
                with self._connect() as db:
                    db.execute("SELECT count(*) FROM runs").fetchone()
            else:
                with self._connect() as db:
                    db.executescript(_SCHEMA)
                    _add_missing_columns(db)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"store database {self.db_path}: {e}") from None

    # -- plumbing ---------------------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            db = _open_read_only(self.db_path)
        else:
            db = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        try:
            if not self.read_only:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: durable at checkpoints, never corrupt
                db.execute("PRAGMA busy_timeout=60000")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StoreError(f"store {self.db_path}: is read-only (no permission to write); nothing was changed")
        with self._connect() as db:
            _begin_immediate(db, self.db_path)
            try:
                yield db
            except sqlite3.OperationalError as e:
                db.execute("ROLLBACK")
                raise StoreError(f"store {self.db_path}: {e}") from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def checkpoint_dir(self, key: str) -> Path:
        """`checkpoints/<key>/`. The key is checked to be a run key first: a path built from stored data
        must never point outside the store (a crafted key like `../../home` would otherwise be deleted)."""
        try:
            return self.root / "checkpoints" / check_run_key(key)
        except ConfigError as e:
            raise StoreError(f"store {self.db_path}: {e}") from None

    def weights_dir(self, key: str) -> Path:
        """`weights/<key>/`, one safetensors file per test epoch; the key is checked like `checkpoint_dir`'s."""
        try:
            return self.root / "weights" / check_run_key(key)
        except ConfigError as e:
            raise StoreError(f"store {self.db_path}: {e}") from None

    def weight_epochs(self, key: str) -> list[int]:
        """The test epochs whose weights are stored for `key`, ascending ([] for none)."""
        folder = self.weights_dir(key)
        if not folder.is_dir():
            return []
        return sorted(e for e in (epoch_of(f.name) for f in folder.iterdir()) if e is not None)

    # -- writing --------------------------------------------------------------------------------------
    def enqueue(self, cfg: RunConfig, seed: int, command: str = "", source: str = "local") -> tuple[str, str]:
        """Ask for (cfg, seed). Returns (key, status): an existing finished or active run is returned as it is;
        a failed, cancelled or interrupted one is queued again (its checkpoint lets it resume)."""
        key = run_key(cfg, seed)
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
            if row and row[0] in FINISHED + ACTIVE + (IMPORTING,):
                return key, row[0]
            _queue(db, key, cfg, seed, command, source, now, exists=row is not None)
        return key, "queued"

    def queue_first(self, keys: list[str]) -> list[str]:
        """Make the queued runs among `keys` the next ones claimed, in the order given, ahead of every other
        queued run (their `created` set just before the oldest queued one's). A script that asks for many runs
        in priority order calls it after enqueueing: a run queued *again* (resumed) would otherwise wait behind
        everything queued since its first request. Returns the keys that were queued and moved."""
        with self._transaction() as db:
            queued = {k for (k,) in db.execute("SELECT key FROM runs WHERE status='queued'")}
            moving = list(dict.fromkeys(k for k in keys if k in queued))
            if not moving:
                return []
            (oldest,) = db.execute("SELECT MIN(created) FROM runs WHERE status='queued'").fetchone()
            for i, key in enumerate(moving):
                db.execute("UPDATE runs SET created=? WHERE key=?", (oldest - 1e-3 * (len(moving) - i), key))
        return moving

    def continuation(self, parent: str, more_epochs: int) -> tuple[RunConfig, int, int, bool]:
        """What `continue_run(parent, more_epochs)` would queue, without queueing it: the child's config and
        seed, the epoch it picks up from (the parent's last; 0 when the parent kept no checkpoint and the child
        trains from epoch 1) and whether it picks up from a checkpoint. So a page can cost only the epochs the
        child trains. Raises what continue_run raises."""
        cfg, child_cfg, seed, _, _ = self._continuation(parent, more_epochs)
        from_checkpoint = (self.checkpoint_dir(parent) / CHECKPOINT_FILE).is_file()
        return child_cfg, seed, cfg.epochs if from_checkpoint else 0, from_checkpoint

    def _continuation(self, parent: str, more_epochs: int) -> tuple[RunConfig, RunConfig, int, Any, Any]:
        """The done parent's config, its child's config, the seed and the parent's device and threads; the
        checks of continue_run."""
        with self._connect() as db:
            row = db.execute("SELECT status, config, seed, device, threads FROM runs WHERE key=?",
                             (parent,)).fetchone()
        if row is None:
            raise KeyError(f"run {parent}: not in the store {self.db_path}")
        status, config_json, seed, device, threads = row
        if status != CONTINUABLE:
            raise StoreError(f"run {parent}: is {status}; only a {CONTINUABLE} run can be continued")
        problem, parsed = _check_stored_run(parent, config_json, seed)
        if problem:
            raise StoreError(f"run {parent}: cannot be continued: {problem}")
        _, cfg, seed = parsed
        most = LIMITS["epochs"] - cfg.epochs
        if isinstance(more_epochs, bool) or not isinstance(more_epochs, int) or not 1 <= more_epochs <= most:
            raise ConfigError(f"more epochs={more_epochs!r}: must be a whole number from 1 to {most} (run {parent} "
                              f"has {cfg.epochs} epochs; a run has at most {LIMITS['epochs']:,})"
                              if most else f"run {parent}: already has the most epochs a run may have "
                                           f"({LIMITS['epochs']:,})")
        child_cfg = replace(cfg, epochs=cfg.epochs + more_epochs, eval_at=cfg.test_epochs)
        return cfg, child_cfg, seed, device, threads

    def continue_run(self, parent: str, more_epochs: int, command: str = "") -> Continuation:
        """Queue the continuation of the done run `parent` for `more_epochs` more epochs, as a NEW run.

        The child is the parent's config and seed with `epochs = E + more_epochs` and `eval_at` = the parent's
        test epochs (its last epoch E stays a test epoch): exactly the run key of a fresh request for that many
        epochs scored at those epochs, which it equals. The learning rate is constant and the batch order comes
        from the generator saved in the checkpoint, so picking up from the parent's last-epoch checkpoint
        (copied, with the parent's weights files, into the child's folders; the trainer replays its history
        into the store) gives exactly the numbers training E + N epochs from scratch would. A parent without
        a checkpoint (imported from a bundle, or finished before done runs kept one) makes a child that trains
        from epoch 1; its first E epochs repeat the parent's only on the same device and thread count, and
        its note says so. The parent is never changed.

        A child that already exists is returned with its status (done: already there; queued or running:
        already on its way); a failed, cancelled or interrupted one is queued again and resumes from its own
        checkpoint, else from the parent's. KeyError: unknown parent; StoreError: the parent is not done (or
        its stored row is not a valid run); ConfigError: `more_epochs` outside 1 to LIMITS["epochs"] - E.
        """
        cfg, child_cfg, seed, device, threads = self._continuation(parent, more_epochs)
        child = run_key(child_cfg, seed)
        parent_checkpoint = self.checkpoint_dir(parent) / CHECKPOINT_FILE
        outcome = dict(key=child, parent=parent, seed=seed, from_epoch=cfg.epochs, epochs=child_cfg.epochs)
        # One write transaction around the check, the copy and the queueing: no worker can claim the child
        # before its checkpoint is in place, and two callers continuing the same run queue it once.
        with self._transaction() as db:
            existing = db.execute("SELECT status FROM runs WHERE key=?", (child,)).fetchone()
            if existing and existing[0] not in RESUMABLE:
                own = (self.checkpoint_dir(child) / CHECKPOINT_FILE).is_file()
                return Continuation(status=existing[0], queued_now=False,
                                    from_checkpoint=own or parent_checkpoint.is_file(), **outcome)
            own = existing is not None and (self.checkpoint_dir(child) / CHECKPOINT_FILE).is_file()
            from_checkpoint = own or parent_checkpoint.is_file()
            if not own:
                self._seed_child_folders(parent, child, with_checkpoint=parent_checkpoint.is_file())
            _queue(db, child, child_cfg, seed, command, "local", time.time(), exists=existing is not None)
            if existing is None:
                note = f"continued from run {parent} at epoch {cfg.epochs}"
                if not from_checkpoint:
                    trained = ", ".join(str(x) for x in (_text_or_none(device),
                                                         _threads_text(threads)) if x) or "unknown"
                    note += (f", which kept no checkpoint: trained again from epoch 1, so its first {cfg.epochs} "
                             f"epochs repeat the parent's only on the same device and thread count "
                             f"(the parent's: {trained})")
                db.execute("UPDATE runs SET notes=? WHERE key=?", (note, child))
        return Continuation(status="queued", queued_now=True, from_checkpoint=from_checkpoint, **outcome)

    def _seed_child_folders(self, parent: str, child: str, with_checkpoint: bool) -> None:
        """A child about to be queued owns nothing yet: clear its folders (left over by a continuation that died
        before queueing), then copy the parent's checkpoint and weights files. Without a checkpoint the child
        retrains from epoch 1 and writes its own weights, so none are copied. Each file is copied under a
        temporary name and renamed: a crash never leaves half a checkpoint."""
        for folder in (self.checkpoint_dir(child), self.weights_dir(child)):
            shutil.rmtree(folder, ignore_errors=True)
        if not with_checkpoint:
            return
        copies = [(self.checkpoint_dir(parent) / CHECKPOINT_FILE, self.checkpoint_dir(child) / CHECKPOINT_FILE)]
        copies += [(self.weights_dir(parent) / file_name(e), self.weights_dir(child) / file_name(e))
                   for e in self.weight_epochs(parent)]
        for source, target in copies:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(target)

    def claim(self, key: str | None = None, pid: int | None = None,
              interrupted: bool = False) -> tuple[str, RunConfig, int] | None:
        """Atomically move one queued run (the oldest, or `key`) to running for this process.

        With `interrupted`, a run whose trainer died (status `interrupted`) is taken when nothing is queued,
        so a worker resumes it from its checkpoint. A row whose config does not parse, or does not hash to
        its own key, is never trained: it is marked `failed` with the reason and the next one is taken.
        """
        statuses = ("queued", "interrupted") if interrupted else ("queued",)
        while True:
            with self._transaction() as db:
                if key is None:
                    row = db.execute(
                        f"SELECT key, config, seed FROM runs WHERE status IN ({','.join('?' * len(statuses))}) "
                        "ORDER BY status='interrupted', created, key LIMIT 1", statuses).fetchone()
                else:
                    row = db.execute("SELECT key, config, seed FROM runs WHERE status='queued' AND key=?",
                                     (key,)).fetchone()
                if row is None:
                    return None
                problem, parsed = _check_stored_run(*row)
                now = time.time()
                if problem:
                    db.execute("UPDATE runs SET status='failed', error=?, finished=?, pid=NULL WHERE key=?",
                               (f"not trained: {problem}", now, row[0]))
                else:
                    db.execute("UPDATE runs SET status='running', pid=?, host=?, started=COALESCE(started, ?), "
                               "heartbeat=?, cancel_requested=0 WHERE key=?",
                               (pid or os.getpid(), self.host, now, now, row[0]))
            if not problem:
                return parsed
            if key is not None:
                return None

    def requeue(self, keys: list[str] | None = None) -> list[str]:
        """Queue resumable runs again (`keys`, or every interrupted one); returns the keys queued. Finished
        and active runs are left as they are."""
        with self._transaction() as db:
            if keys is None:
                keys = [k for (k,) in db.execute("SELECT key FROM runs WHERE status='interrupted'")]
            queued = []
            for k in keys:
                row = db.execute("SELECT status FROM runs WHERE key=?", (k,)).fetchone()
                if row is None:
                    raise KeyError(f"run {k}: not in the store {self.db_path}")
                if row[0] in RESUMABLE:
                    db.execute("UPDATE runs SET status='queued', error=NULL, cancel_requested=0, pid=NULL, "
                               "finished=NULL WHERE key=?", (k,))
                    queued.append(k)
        return queued

    def set_provenance(self, key: str, device: str, versions: dict[str, str], git_commit: str | None,
                       threads: int | None = None) -> None:
        """Where and how the run trains. `threads` is kept from the run's first start: a resume must use
        the same count (CPU results depend on it), so the first value is the one that describes the run."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET device=?, versions=?, git_commit=?, threads=COALESCE(threads, ?) "
                       "WHERE key=?", (device, json.dumps(versions, sort_keys=True), git_commit, threads, key))

    def add_note(self, key: str, note: str) -> None:
        """Append one line a user should read about this run (not an error: e.g. how it was resumed)."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET notes=CASE WHEN notes IS NULL OR notes='' THEN ? ELSE notes || char(10) "
                       "|| ? END WHERE key=?", (note, note, key))

    def record_epoch(self, key: str, epoch: int, metrics: dict[str, float],
                     tests: dict[str, float] | None = None) -> None:
        """One atomic transaction per epoch: its metrics, optional test metrics, progress and heartbeat."""
        now = time.time()
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO epoch_metrics (key, epoch, name, value) VALUES (?,?,?,?)",
                           [(key, epoch, k, _finite_or_none(v)) for k, v in metrics.items()])
            if tests:
                db.executemany("INSERT OR REPLACE INTO test_metrics (key, epoch, name, value) VALUES (?,?,?,?)",
                               [(key, epoch, k, _finite_or_none(v)) for k, v in tests.items()])
            db.execute("UPDATE runs SET last_epoch=?, heartbeat=? WHERE key=?", (epoch, now, key))

    def heartbeat(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET heartbeat=? WHERE key=?", (time.time(), key))

    def finish(self, key: str, status: str, error: str | None = None, diverged_epoch: int | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status={status!r}: must be one of {', '.join(STATUSES)}")
        with self._transaction() as db:
            db.execute("UPDATE runs SET status=?, error=?, diverged_epoch=?, finished=?, pid=NULL WHERE key=?",
                       (status, error, diverged_epoch, time.time(), key))

    def request_cancel(self, key: str) -> str:
        """Queued runs are cancelled at once; running ones are flagged and the trainer stops after its epoch."""
        with self._transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
            if row is None:
                raise KeyError(f"run {key}: not in the store {self.db_path}")
            if row[0] == "queued":
                db.execute("UPDATE runs SET status='cancelled', finished=? WHERE key=?", (time.time(), key))
                return "cancelled"
            if row[0] == "running":
                db.execute("UPDATE runs SET cancel_requested=1 WHERE key=?", (key,))
                return "cancelling"
            return row[0]

    def cancel_requested(self, key: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE key=?", (key,)).fetchone()
        return bool(row and row[0])

    def delete(self, key: str) -> None:
        """Remove a run, its checkpoints and its weights. A running run must be cancelled first."""
        with self._transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
            if row is None:
                raise KeyError(f"run {key}: not in the store {self.db_path}")
            if row[0] == "running":
                raise StoreError(f"run {key}: is running; cancel it before deleting")
            for table in ("epoch_metrics", "test_metrics", "runs"):
                db.execute(f"DELETE FROM {table} WHERE key=?", (key,))
        if is_run_key(key):      # a malformed key never had a checkpoint folder, and must not name a path
            shutil.rmtree(self.checkpoint_dir(key), ignore_errors=True)
            shutil.rmtree(self.weights_dir(key), ignore_errors=True)

    def insert_tables(self, tables: RunTables, source: str,
                      weights: Callable[[list[str]], Iterable[tuple[str, int, bytes]]] | None = None) -> list[str]:
        """Import finished runs (a validated bundle). Runs already present are left untouched; returns new keys.

        A large bundle must not hold the write lock for long (a trainer waiting on it would stall), yet a
        half-imported run must never look like a result. So the import is staged: one short transaction
        reserves the new keys as `importing` rows, the metric rows follow in chunks of IMPORT_CHUNK_ROWS,
        then the weights files, and one short final transaction turns the reserved rows into the bundle's
        finished runs. If the import fails, its rows and weights are removed; if the process dies,
        `mark_stale` removes them.

        `weights(new_keys)` yields (key, epoch, safetensors bytes) for those runs, already checked by the caller.
        """
        runs = tables.runs.drop_duplicates("key")
        new = self._reserve(runs, source)
        if not new:
            return []
        try:
            self._insert_metrics(tables, new)
            if weights is not None:
                self._write_weights(new, weights(new))
            self._publish(runs[runs["key"].isin(new)], source)
        except BaseException:
            self._drop_importing(new)
            raise
        return new

    def _write_weights(self, keys: list[str], files: Iterable[tuple[str, int, bytes]]) -> None:
        """Write imported weights files into the reserved runs' folders (left over folders are cleared first:
        a key new to the store owns nothing yet)."""
        for key in keys:
            shutil.rmtree(self.weights_dir(key), ignore_errors=True)
        allowed = set(keys)
        for key, epoch, data in files:
            if key not in allowed:
                raise StoreError(f"store {self.db_path}: weights for run {key!r}, which this import does not add")
            folder = self.weights_dir(key)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / file_name(epoch)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)

    def _reserve(self, runs: pd.DataFrame, source: str) -> list[str]:
        """Insert the runs not in the store yet as `importing` rows owned by this process; their keys."""
        now = time.time()
        with self._transaction() as db:
            have = {r[0] for r in db.execute("SELECT key FROM runs")}
            new = [k for k in runs["key"] if k not in have]
            db.executemany("INSERT INTO runs (key, experiment, variant, config, seed, epochs, status, source, "
                           "created, pid, host, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           [(r["key"], r["experiment"], r["variant"], r["config"], int(r["seed"]),
                             int(r["epochs"]), IMPORTING, source, now, os.getpid(), self.host, now)
                            for r in runs[runs["key"].isin(new)].to_dict("records")])
        return new

    def _insert_metrics(self, tables: RunTables, keys: list[str]) -> None:
        """The epoch and test rows of `keys`, IMPORT_CHUNK_ROWS rows a transaction."""
        for table, df in (("epoch_metrics", tables.epochs), ("test_metrics", tables.tests)):
            part = df.loc[df["key"].isin(keys), ["key", "epoch", "name", "value"]]
            rows = [(k, int(e), n, _finite_or_none(v)) for k, e, n, v in part.itertuples(index=False)]
            for i in range(0, len(rows), IMPORT_CHUNK_ROWS):
                with self._transaction() as db:
                    db.executemany(f"INSERT OR REPLACE INTO {table} (key, epoch, name, value) VALUES (?,?,?,?)",
                                   rows[i:i + IMPORT_CHUNK_ROWS])

    def _publish(self, runs: pd.DataFrame, source: str) -> None:
        """Turn the reserved rows into the bundle's finished runs, in one transaction."""
        columns = [c for c in RUN_COLUMNS if c != "key"]
        with self._transaction() as db:
            for rec in runs.to_dict("records"):
                rec = {c: _sql_value(rec.get(c)) for c in RUN_COLUMNS}
                rec.update(source=source, pid=None)
                db.execute(f"UPDATE runs SET {', '.join(c + '=?' for c in columns)} WHERE key=? AND status=?",
                           [rec[c] for c in columns] + [rec["key"], IMPORTING])

    def _drop_importing(self, keys: list[str]) -> None:
        """Remove the rows of an import that did not complete (only rows still marked `importing`)."""
        with self._transaction() as db:
            mine = [k for k in keys if (db.execute("SELECT status FROM runs WHERE key=?", (k,)).fetchone()
                                        or (None,))[0] == IMPORTING]
            for table in ("epoch_metrics", "test_metrics", "runs"):
                db.executemany(f"DELETE FROM {table} WHERE key=?", [(k,) for k in mine])
        for key in mine:
            if is_run_key(key):
                shutil.rmtree(self.weights_dir(key), ignore_errors=True)

    def mark_stale(self) -> list[str]:
        """Runs that say `running` but whose process is gone become `interrupted` (resumable); the reserved
        rows of an import whose process is gone are removed. A read-only store is left as it is."""
        if self.read_only:
            return []
        now = time.time()
        stale = []
        with self._transaction() as db:
            dead_imports = [
                key for key, pid, host, beat in db.execute(
                    "SELECT key, pid, host, heartbeat FROM runs WHERE status=?", (IMPORTING,)).fetchall()
                if ((not pid_alive(pid)) if host == self.host else (now - (beat or 0) > STALE_AFTER_S))]
            for table in ("epoch_metrics", "test_metrics", "runs"):
                db.executemany(f"DELETE FROM {table} WHERE key=?", [(k,) for k in dead_imports])
            for key in dead_imports:
                if is_run_key(key):
                    shutil.rmtree(self.weights_dir(key), ignore_errors=True)
            for key, pid, host, beat in db.execute(
                    "SELECT key, pid, host, heartbeat FROM runs WHERE status='running'").fetchall():
                dead = (not pid_alive(pid)) if host == self.host else (now - (beat or 0) > STALE_AFTER_S)
                if dead:
                    stale.append(key)
            for key in stale:
                db.execute("UPDATE runs SET status='interrupted', pid=NULL, "
                           "error='the trainer process ended without reporting' WHERE key=?", (key,))
        return stale

    # -- reading ----------------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        df = self.runs(keys=[key])
        return None if df.empty else df.iloc[0].to_dict()

    def runs(self, experiment: str | None = None, status: str | None = None,
             keys: list[str] | None = None) -> pd.DataFrame:
        where, args = [], []
        if experiment:
            where.append("experiment=?")
            args.append(experiment)
        if status:
            where.append("status=?")
            args.append(status)
        if keys is not None:
            where.append(f"key IN ({','.join('?' * len(keys))})")
            args.extend(keys)
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._connect() as db:
            df = pd.read_sql_query(sql + " ORDER BY created, key", db, params=args)
        return _readable_runs(df)

    def statuses(self, keys: list[str]) -> dict[str, str]:
        with self._connect() as db:
            rows = db.execute(f"SELECT key, status FROM runs WHERE key IN ({','.join('?' * len(keys))})",
                              keys).fetchall()
        return dict(rows)

    def epoch_metrics(self, keys: list[str] | None = None, since_id: int = 0) -> tuple[pd.DataFrame, int]:
        """Long per-epoch rows with id > since_id, and the largest id seen (pass it back next poll)."""
        sql = "SELECT id, key, epoch, name, value FROM epoch_metrics WHERE id > ?"
        args: list[Any] = [since_id]
        if keys is not None:
            sql += f" AND key IN ({','.join('?' * len(keys))})"
            args.extend(keys)
        with self._connect() as db:
            df = pd.read_sql_query(sql + " ORDER BY id", db, params=args)
        last = int(df["id"].max()) if len(df) else since_id
        return df.drop(columns="id"), last

    def test_metrics(self, keys: list[str] | None = None) -> pd.DataFrame:
        sql = "SELECT key, epoch, name, value FROM test_metrics"
        args: list[Any] = []
        if keys is not None:
            sql += f" WHERE key IN ({','.join('?' * len(keys))})"
            args.extend(keys)
        with self._connect() as db:
            return pd.read_sql_query(sql + " ORDER BY key, epoch, name", db, params=args)

    def tables(self, keys: list[str] | None = None, experiment: str | None = None) -> RunTables:
        runs = self.runs(experiment=experiment, keys=keys)
        ks = list(runs["key"])
        epochs, _ = self.epoch_metrics(ks)
        return RunTables(runs, epochs, self.test_metrics(ks))


def _queue(db: sqlite3.Connection, key: str, cfg: RunConfig, seed: int, command: str, source: str, now: float,
           exists: bool) -> None:
    """Inside a write transaction: a new run row as `queued`, or an existing resumable one queued again."""
    if exists:
        db.execute("UPDATE runs SET status='queued', error=NULL, cancel_requested=0, pid=NULL, "
                   "finished=NULL, created=? WHERE key=?", (now, key))
    else:
        db.execute("INSERT INTO runs (key, experiment, variant, config, seed, epochs, status, command, "
                   "source, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (key, cfg.experiment, variant_label(cfg), json.dumps(config_to_dict(cfg)),
                    int(seed), cfg.epochs, "queued", command, source, now))


def _text_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v.strip() else None


def _threads_text(v: Any) -> str | None:
    return f"{int(v)} thread(s)" if isinstance(v, (int, float)) and v == v else None


def _finite_or_none(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _sql_value(v: Any) -> Any:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        return v.item()
    return v


def _begin_immediate(db: sqlite3.Connection, path: Path) -> None:
    """Take the write lock up front (no deadlock on a read-to-write upgrade), waiting up to LOCK_WAIT_S.

    The busy timeout already waits 60 s per attempt; a trainer that still finds the store locked (a long
    write by another process) tries again instead of failing its run. Nothing has been written yet when
    BEGIN fails, so retrying it is always safe."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise StoreError(f"store {path}: {e}") from None
            if time.monotonic() > deadline:
                raise StoreError(f"store {path}: still locked by another process after "
                                 f"{LOCK_WAIT_S:.0f} s") from None
            time.sleep(0.5)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Stores made before a column existed get it added (as NULL), so old stores keep working."""
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for column, kind in (("threads", "INTEGER"), ("notes", "TEXT")):
        if column not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")


def _check_stored_run(key: str, config_json: str, seed: Any) -> tuple[str | None, Any]:
    """(None, (key, config, seed)) when a stored row is a run this project would make; else (reason, None).

    Guards the trainer against rows that did not come from `enqueue` (an old or hand-edited store)."""
    if not is_run_key(key):
        return "its key is not a run key", None
    try:
        cfg = config_from_dict(json.loads(config_json))
        if run_key(cfg, seed) != key:
            return "its config and seed do not hash to its key", None
    except (ConfigError, TypeError, ValueError) as e:
        return f"its stored config is invalid ({e})", None
    return None, (key, cfg, int(seed))


def _readable_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Run rows with whole-number columns that every reader can `int()`.

    Imports and `enqueue` only ever write valid rows, but a store written by an older version (or by hand)
    may hold a text seed; such a row is shown with seed -1 and an error saying why, instead of crashing
    every listing, including the Runs page where it can be deleted."""
    for column in ("seed", "epochs", "last_epoch"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            df.loc[bad, "error"] = f"the stored {column} is not a whole number"
            values = values.where(~bad, -1)
        df[column] = values.astype("int64")
    return df


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. A WAL database is read through its -shm index when one exists; without one
    (it cannot be created in a read-only folder) the file is opened as immutable, which sees what was
    checkpointed into the main file: everything, once the last writer has closed cleanly."""
    uri = f"file:{path.resolve()}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
