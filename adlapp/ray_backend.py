"""Where runs train, second way: a Ray cluster (`--backend ray`, the sidebar's "Ray" choice).

`RayBackend` is a `jobs.Backend`: it queues runs in the store exactly as `LocalProcessBackend` does and keeps
ONE dispatcher process alive per store (`python -m adlapp worker --backend ray`, started like a local worker,
never inside Streamlit, registered as a pid file under `<store>/dispatchers/<host>/`). Neither class imports
ray or torch: the Streamlit process never talks to the cluster.

The dispatcher (`Dispatcher`, in that process) claims queued runs and submits each as a Ray generator task
(`train_stream`) that runs `adlapp.train.train` on a worker and yields one record per epoch: the epoch's
metrics and test metrics, the weights at a test epoch, the checkpoint whenever the trainer wrote one. The
dispatcher writes them into the local store with the runner's own per-epoch and finishing code, so workers on
other machines never open the SQLite file, and the checkpoint it writes before each epoch's rows keeps the
store's rule "never ahead of the checkpoint". What Ray does by itself is switched off where it would lie:

- Retries: with Ray's default a killed generator is re-run from epoch 0 and its streams are spliced. Tasks
  run with `max_retries=0`; every record carries the attempt id, and records of an older attempt are
  dropped. A crashed worker makes the run `interrupted` (rows kept up to its last epoch) and the dispatcher
  claims it again like any interrupted run, resuming from the checkpoint it holds; after MAX_CRASHES crashes
  in a row it is left `failed` (resumable by hand) instead of looping.
- A task asking for a GPU on a cluster without one waits forever, silently: the cluster's resources are
  checked first and such a request is refused with a message (`task_resources`).
- Workers ignore the driver's `sys.path`: the package is shipped with each task (`py_modules`).
- User data folders are read by the workers, so they must be on a path every node can read; the dispatcher
  asks the cluster before submitting a run on a folder. The built-in data are generated on the worker.

Cancel maps to `ray.cancel` (the task stops its training thread and exits; the run keeps the last checkpoint
the dispatcher received, so a resume may retrain the few epochs after it, to the same numbers on CPU).
Statuses, resume and thread counts behave as with local processes: a run trains with the thread count it
started with, and the same config and seed on CPU give identical numbers on either backend.
"""
from __future__ import annotations

import importlib.util
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

from adlapp.config import BUILTIN_DATASETS, EXPERIMENT_INFO, RunConfig, config_from_dict, config_to_dict
from adlapp.jobs import StoreQueueBackend, Submission, WorkerRegistry
from adlapp.store import CHECKPOINT_FILE, RunStore

__all__ = ["RayBackend", "Dispatcher", "DispatcherRegistry", "RayUnavailable", "RayRefused", "ray_available",
           "train_stream", "task_resources", "INSTALL_HINT"]

# Ray reports usage to its authors unless told not to; set before ray is imported anywhere in this process,
# and inherited by every process this one starts (the dispatcher, a local cluster's raylet and workers).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

INSTALL_HINT = "pip install -r requirements-ray.txt"
MAX_CRASHES = 3            # worker crashes in a row before a run is left `failed` instead of resubmitted
POLL_S = 0.5               # how long the dispatcher waits for a record before it looks at cancels and the queue
IDLE_EXIT_S = 60.0         # an idle dispatcher waits this long for new runs: starting a local cluster costs seconds
_CHECKOUT = Path(__file__).resolve().parent.parent
_PACKAGE = Path(__file__).resolve().parent


class RayUnavailable(RuntimeError):
    """Ray is not installed here; the message says how to install it."""


class RayRefused(RuntimeError):
    """The cluster cannot run what was asked (no GPU, a data folder its workers cannot read)."""


def ray_available() -> bool:
    """Is the optional `ray` package installed (without importing it)?"""
    return importlib.util.find_spec("ray") is not None


def _require_ray() -> None:
    if not ray_available():
        raise RayUnavailable(f"the Ray backend needs the optional package ray; install it with `{INSTALL_HINT}`")


class DispatcherRegistry(WorkerRegistry):
    """The dispatcher processes of one store on this host: `<store>/dispatchers/<host>/`, a sibling of the
    local workers' folder, so neither backend counts the other's processes as its own. It shares their
    lock (`<store>/workers.lock`), which lets a dispatcher leave without racing a caller that just
    counted it (see `Dispatcher.serve`)."""

    def __init__(self, store_root: str | os.PathLike) -> None:
        super().__init__(store_root)
        self.folder = self.root / "dispatchers" / self.folder.name


class RayBackend(StoreQueueBackend):
    """Queues runs in the store and keeps one dispatcher process alive to train them on a Ray cluster.

    `address` None: the dispatcher starts a local Ray cluster (or joins the one named by $RAY_ADDRESS).
    `concurrency`: runs in flight at once; `threads`: torch CPU threads per run (None: the cluster's CPUs
    shared between `concurrency` runs, as local workers share this machine's cores)."""

    def __init__(self, store: RunStore, concurrency: int | None = None, device: str = "auto",
                 address: str | None = None, threads: int | None = None) -> None:
        self.store = store
        self.concurrency = concurrency or 1
        self.device = device
        self.address = address
        self.threads = threads
        self.workers = DispatcherRegistry(store.root)

    def submit(self, requests: list[tuple[RunConfig, int]], command: str = "app") -> Submission:
        _require_ray()        # before anything is queued: nothing would drain it
        return super().submit(requests, command)   # cancel: the dispatcher sees the store's flag, ray.cancel

    def live_workers(self) -> list[int]:
        return self.workers.live()

    def ensure_workers(self) -> list[int]:
        """One dispatcher per store, however many runs are in flight (it holds `concurrency` of them)."""
        _require_ray()
        with self.workers.locked():
            self.store.mark_stale()
            return [] if self.workers.live() else [self._start_dispatcher()]

    def dispatcher_command(self) -> list[str]:
        command = [sys.executable, "-m", "adlapp", "worker", "--backend", "ray",
                   "--store", str(self.store.root.resolve()), "--device", self.device,
                   "--concurrency", str(self.concurrency)]
        if self.address:
            command += ["--ray-address", self.address]
        if self.threads:
            command += ["--threads", str(self.threads)]
        return command

    def _start_dispatcher(self) -> int:
        log_dir = self.store.root / "logs"
        log_dir.mkdir(exist_ok=True)
        with open(log_dir / f"dispatcher-{time.strftime('%Y%m%d-%H%M%S')}.log", "ab") as log:
            proc = subprocess.Popen(self.dispatcher_command(), cwd=_CHECKOUT, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
        self.workers.add(proc.pid)      # registered here too, so a caller right after this one counts it
        return proc.pid


# -- on the cluster --------------------------------------------------------------------------------------
def train_stream(config: dict, seed: int, device: str, threads: int, checkpoint: bytes | None, attempt: str,
                 checkpoint_every: int | None = None) -> Iterator[dict]:
    """The Ray task: train one run on this worker and yield its records (plain dicts of numbers and bytes).

    `start` (where and how it trains), one `epoch` record per epoch (replayed ones too, after a resume), then
    `end` (final status) or `failed` (the trainer raised; with the traceback). The checkpoint goes back
    whenever the trainer wrote one, in the record of the epoch it belongs to; the weights of a test epoch in
    that epoch's record. A run resumes with the thread count of its checkpoint, as `adlapp.runner` does.

    The trainer runs in a thread and this generator yields what it reports: `train` is callback-driven, and
    `ray.cancel` interrupts this (the task's main) thread, which then stops the trainer after its epoch and
    waits for it, so a reused worker never keeps training a cancelled run in the background."""
    import torch

    from adlapp import weights
    from adlapp.data import load_data, skipped_summary
    from adlapp.provenance import library_versions
    from adlapp.train import checkpoint_state, device_name, resolve_device, train

    cfg = config_from_dict(config)
    with tempfile.TemporaryDirectory(prefix="adlapp-ray-") as folder:
        ckpt_dir = Path(folder) / "checkpoint"
        ckpt_dir.mkdir()
        if checkpoint is not None:
            (ckpt_dir / CHECKPOINT_FILE).write_bytes(checkpoint)
        resumed = checkpoint_state(ckpt_dir)
        torch.set_num_threads(int((resumed or {}).get("threads") or threads))
        dev = resolve_device(device)
        skipped = ""
        if cfg.data.name not in BUILTIN_DATASETS:
            skipped = skipped_summary(load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task))
        yield {"attempt": attempt, "kind": "start", "host": socket.gethostname(), "pid": os.getpid(),
               "device": device_name(dev), "versions": library_versions(), "threads": torch.get_num_threads(),
               "resumed_from": (resumed or {}).get("epoch", 0), "resumed_device": (resumed or {}).get("device"),
               "skipped": skipped}

        records: queue.Queue = queue.Queue()
        stop = threading.Event()
        shipped = {"checkpoint": None}
        pending_weights: dict[int, bytes] = {}

        def on_weights(epoch: int, state_dict: dict) -> None:
            path = weights.save(state_dict, Path(folder) / weights.file_name(epoch))
            pending_weights[epoch] = path.read_bytes()
            path.unlink()

        def on_epoch(report) -> None:
            records.put({"attempt": attempt, "kind": "epoch", "epoch": report.epoch, "metrics": report.metrics,
                         "tests": report.tests, "replayed": report.replayed,
                         "weights": pending_weights.pop(report.epoch, None), "checkpoint": new_checkpoint()})

        def new_checkpoint() -> bytes | None:
            """The checkpoint file's bytes when the trainer wrote a new one since the last record (it is
            replaced atomically, so a new inode or mtime is a new checkpoint)."""
            path = ckpt_dir / CHECKPOINT_FILE
            try:
                stat = path.stat()
            except FileNotFoundError:
                return None
            mark = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if mark == shipped["checkpoint"] or (checkpoint is not None and shipped["checkpoint"] is None
                                                 and path.read_bytes() == checkpoint):
                shipped["checkpoint"] = mark
                return None
            shipped["checkpoint"] = mark
            return path.read_bytes()

        def run() -> None:
            try:
                result = train(cfg, seed, on_epoch=on_epoch, device=device, checkpoint_dir=ckpt_dir,
                               should_stop=stop.is_set, checkpoint_every=checkpoint_every, on_weights=on_weights)
                records.put({"attempt": attempt, "kind": "end", "status": result.status,
                             "diverged_epoch": result.diverged_epoch})
            except BaseException as e:  # noqa: BLE001 - any failure of the run is reported, never lost
                records.put({"attempt": attempt, "kind": "failed",
                             "error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"})
            records.put(None)

        trainer = threading.Thread(target=run, name="adlapp-train", daemon=True)
        trainer.start()
        try:
            while (record := records.get()) is not None:
                yield record
        finally:
            stop.set()                   # cancelled (KeyboardInterrupt) or abandoned: end the epoch, then stop
            trainer.join()


def folder_readable(path: str) -> str | None:
    """Run on a worker: None when the data folder `path` can be listed there, else why not."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return f"no folder {folder} on Ray node {socket.gethostname()}"
    try:
        next(iter(os.scandir(folder)), None)
    except OSError as e:
        return f"{folder} cannot be read on Ray node {socket.gethostname()} ({e.strerror or e})"
    return None


def task_resources(device: str, cluster: dict[str, float], threads: int) -> dict[str, float]:
    """Ray resources of one training task: `threads` CPUs, and a GPU when the device needs one.

    Refuses (RayRefused) a CUDA device on a cluster without GPUs: Ray would keep such a task pending forever
    without an error. `auto` takes a GPU where the cluster has one, like the local trainer's auto."""
    gpus = float(cluster.get("GPU", 0) or 0)
    resources: dict[str, float] = {"num_cpus": threads}
    if device.startswith("cuda"):
        if gpus < 1:
            raise RayRefused(f"device {device!r}: the Ray cluster has no GPU (it offers {cluster.get('CPU', 0):g} "
                             "CPU(s) and 0 GPUs), and a task asking for one would wait forever; use --device cpu "
                             "or auto, or add GPU nodes to the cluster")
        resources["num_gpus"] = 1
    elif device == "auto" and gpus >= 1:
        resources["num_gpus"] = 1
    return resources


# -- the dispatcher (a process of its own, the driver of the Ray job) -------------------------------------
@dataclass
class _Attempt:
    key: str
    cfg: RunConfig
    seed: int
    attempt: str
    stream: Any                        # ray.ObjectRefGenerator
    recorded: int                      # epochs already in the store when it started (replays skip them)
    on_epoch: Callable[[Any], None]    # adlapp.runner's per-epoch recorder
    last_epoch: int = 0
    cancelling: bool = False
    notes: list[str] = field(default_factory=list)


class Dispatcher:
    """Claims runs from the store, trains them as Ray generator tasks, writes their records into the store.

    `connect()` joins (or starts) the cluster; `serve(claim)` runs until `claim` has nothing left and every
    submitted run ended (then, with `idle_exit_s`, waits that long for new runs). `flag.set` (SIGTERM) cancels
    the runs in flight, like a local worker's cancel. `log` receives one line per event."""

    def __init__(self, store: RunStore, address: str | None = None, concurrency: int | None = None,
                 device: str = "auto", threads: int | None = None, checkpoint_every: int | None = None,
                 flag: Any = None, log: Callable[[str], None] = print) -> None:
        _require_ray()
        self.store = store
        self.address = address
        self.device = device
        self.concurrency = concurrency
        self.threads = threads
        self.checkpoint_every = checkpoint_every
        self.flag = flag or SimpleNamespace(set=False)
        self.log = log
        self.inflight: dict[str, _Attempt] = {}
        self.crashes: dict[str, int] = {}
        self.retry: list[str] = []            # crashed runs to resubmit, oldest first
        self.finals: dict[str, str] = {}
        self._folders: dict[str, str | None] = {}
        self._started_ray = False
        self._commit: str | None = None

    # -- the cluster ------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster at `address` ($RAY_ADDRESS when None; a new local cluster when neither names one),
        unless this process is already connected, then check it can run `device` (RayRefused)."""
        import ray

        if not ray.is_initialized():
            # py_modules can only name a local folder at the job level; a caller that connected this process
            # itself must ship the package the same way (or have it installed on every node).
            ray.init(address=self.address, include_dashboard=False, logging_level="WARNING",
                     runtime_env={"py_modules": [str(_PACKAGE)], "env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}})
            self._started_ray = True
        from adlapp.provenance import git_commit

        self._commit = git_commit()       # the checkout whose package every task gets (py_modules)
        cluster = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = int(cluster.get("CPU", 0))
        smallest = min((int(n["Resources"].get("CPU", 0)) for n in nodes), default=cpus) or 1
        self.concurrency = self.concurrency or max(1, cpus)
        self.threads = self.threads or max(1, min(smallest, cpus // self.concurrency))
        self.resources = task_resources(self.device, cluster, self.threads)
        self.log(f"dispatcher {os.getpid()}: Ray cluster with {cpus} CPU(s), {cluster.get('GPU', 0):g} GPU(s) on "
                 f"{len(nodes)} node(s); {self.concurrency} run(s) at once, {self.threads} thread(s) each")

    def close(self) -> None:
        import ray

        if self._started_ray:
            ray.shutdown()            # a local cluster this process started goes with it

    # -- the loop ---------------------------------------------------------------------------------------
    def serve(self, claim: Callable[[], tuple[str, RunConfig, int] | None], idle_exit_s: float | None = None,
              registry: DispatcherRegistry | None = None) -> dict[str, str]:
        """Train what `claim` hands out, `concurrency` at a time; key -> final status of each run ended here.

        Before leaving for lack of work, it takes the registry's lock, looks at the queue once more and
        unregisters under the lock: a caller who counted this dispatcher as alive cannot queue a run that
        nobody then trains."""
        import ray

        idle_since: float | None = None
        claim_after = 0.0
        while True:
            if self.flag.set:
                self._stop_all("cancelled", None)
                return self.finals
            exhausted = time.monotonic() < claim_after   # an empty queue is asked again only every POLL_S
            while not exhausted and len(self.inflight) < (self.concurrency or 1):
                claimed = self._reclaim() or claim()
                if claimed is None:
                    exhausted, claim_after = True, time.monotonic() + POLL_S
                    break
                try:
                    self._start(*claimed)
                except Exception as e:  # noqa: BLE001 - a run that cannot be submitted fails; the others go on
                    self._end(claimed[0], "failed", f"not submitted to Ray: {type(e).__name__}: {_first_lines(e)}")
            if not self.inflight:
                idle_since = idle_since or time.monotonic()
                if exhausted and (idle_exit_s is None or time.monotonic() - idle_since >= idle_exit_s):
                    if registry is None:
                        return self.finals
                    with registry.locked():
                        if self.store.runs(status="queued").empty:
                            registry.remove(os.getpid())
                            return self.finals
                    idle_since = None
                time.sleep(POLL_S)
                continue
            idle_since = None
            self._forward_cancels()
            streams = {id(a.stream): a for a in self.inflight.values()}
            ready, _ = ray.wait([a.stream for a in streams.values()], num_returns=1, timeout=POLL_S)
            for stream in ready:
                self._advance(streams[id(stream)])

    def _reclaim(self) -> tuple[str, RunConfig, int] | None:
        """A run this dispatcher saw crash, queued again and claimed for a new attempt (None when there is none,
        or another process took it first): the dispatcher, not Ray, decides to resubmit."""
        while self.retry:
            key = self.retry.pop(0)
            if self.store.requeue([key]):
                claimed = self.store.claim(key, pid=os.getpid())
                if claimed is not None:
                    return claimed
        return None

    def _start(self, key: str, cfg: RunConfig, seed: int) -> None:
        """Submit one claimed run, from the checkpoint the store holds for it (if any)."""
        import ray

        from adlapp.runner import epoch_recorder

        problem = self._data_problem(cfg)
        if problem:
            self._end(key, "failed", f"data folder {cfg.data.name!r} is not readable on the Ray workers: {problem}. "
                                     "User data must be on a path every Ray node can read (a shared mount at the "
                                     "same path); the built-in data sets are generated on the workers")
            return
        ckpt = self.store.checkpoint_dir(key) / CHECKPOINT_FILE
        row = self.store.get(key) or {}
        threads = _whole(row.get("threads")) or self.threads or 1
        recorded = int(row.get("last_epoch") or 0)
        attempt = uuid.uuid4().hex[:12]
        task = ray.remote(train_stream).options(
            max_retries=0, name=f"adlapp-{key}", **task_resources(self.device, ray.cluster_resources(), threads))
        stream = task.remote(config_to_dict(cfg), seed, self.device, threads,
                             ckpt.read_bytes() if ckpt.is_file() else None, attempt, self.checkpoint_every)
        self.inflight[key] = _Attempt(key, cfg, seed, attempt, stream, recorded,
                                      epoch_recorder(self.store, key, recorded, None))
        self.log(f"{key}: submitted (attempt {attempt}, seed {seed}, {threads} thread(s), from epoch {recorded})")

    def _data_problem(self, cfg: RunConfig) -> str | None:
        """Why the workers cannot read the run's data folder (asked once per folder), or None."""
        if cfg.data.name in BUILTIN_DATASETS:
            return None
        if cfg.data.name not in self._folders:
            import ray

            probe = ray.remote(folder_readable).options(num_cpus=0, max_retries=0)
            self._folders[cfg.data.name] = ray.get(probe.remote(cfg.data.name))
        return self._folders[cfg.data.name]

    def _forward_cancels(self) -> None:
        import ray

        for att in self.inflight.values():
            if not att.cancelling and self.store.cancel_requested(att.key):
                ray.cancel(att.stream)
                att.cancelling = True
                self.log(f"{att.key}: cancel requested, task cancelled after epoch {att.last_epoch}")

    def _advance(self, att: _Attempt) -> None:
        """Take the next record of a run's stream, or its end."""
        import ray
        from ray.exceptions import RayError, RayTaskError, RuntimeEnvSetupError, TaskCancelledError

        try:
            record = ray.get(next(att.stream))
        except StopIteration:
            if att.cancelling:        # ray.cancel can end the stream before TaskCancelledError surfaces
                self._end(att.key, "cancelled", None)
            else:
                self._crashed(att, "its task ended without a final record")
            return
        except TaskCancelledError:
            self._end(att.key, "cancelled" if att.cancelling else "interrupted",
                      None if att.cancelling else "its Ray task was cancelled outside adlapp")
            return
        except (RayTaskError, RuntimeEnvSetupError) as e:
            self._end(att.key, "failed", f"the Ray task failed: {_first_lines(e)}")
            return
        except RayError as e:         # the worker, its node or the object holding a record is gone
            if att.cancelling:        # the cancel we sent may end the worker's task this way too
                self._end(att.key, "cancelled", None)
            else:
                self._crashed(att, f"{type(e).__name__}: {_first_lines(e)}")
            return
        if record.get("attempt") != att.attempt:
            return                    # a record of an older attempt: never spliced into this one
        try:
            self._record(att, record)
        except Exception as e:  # noqa: BLE001 - a store that cannot be written fails the run, like the runner
            ray.cancel(att.stream)
            self._end(att.key, "failed", f"{type(e).__name__}: {e}")

    def _record(self, att: _Attempt, record: dict) -> None:
        from adlapp.runner import finish_run

        kind = record["kind"]
        if kind == "start":
            self._started(att, record)
        elif kind == "epoch":
            if record["checkpoint"] is not None:    # before the epoch's rows: the store is never ahead of it
                _write_atomically(self.store.checkpoint_dir(att.key) / CHECKPOINT_FILE, record["checkpoint"])
            if record["weights"] is not None:
                from adlapp.weights import file_name

                path = self.store.weights_dir(att.key) / file_name(record["epoch"])
                if not path.exists():             # as the runner: a file written before a crash is kept
                    _write_atomically(path, record["weights"])
            att.on_epoch(SimpleNamespace(epoch=record["epoch"], metrics=record["metrics"], tests=record["tests"],
                                         replayed=record["replayed"]))
            att.last_epoch = max(att.last_epoch, int(record["epoch"]))
        elif kind == "end":
            self.inflight.pop(att.key, None)
            self.crashes.pop(att.key, None)
            finish_run(self.store, att.key, SimpleNamespace(status=record["status"],
                                                         diverged_epoch=record["diverged_epoch"]),
                    self.store.checkpoint_dir(att.key))
            self.finals[att.key] = record["status"]
            self.log(f"{att.key}: {record['status']} (attempt {att.attempt})")
        elif kind == "failed":
            self._end(att.key, "failed", record["error"])

    def _started(self, att: _Attempt, record: dict) -> None:
        """Provenance and notes, as `adlapp.runner` records them for a local run."""
        self.store.set_provenance(att.key, record["device"], record["versions"], self._commit, record["threads"])
        if record["resumed_from"]:
            note = f"resumed from its checkpoint at epoch {record['resumed_from']}"
            before = record["resumed_device"]
            if before and before != record["device"]:
                note += (f"; it started on {before} and continues on {record['device']}, so its numbers differ "
                         "from an uninterrupted run's")
            self.store.add_note(att.key, note)
        notes = (self.store.get(att.key) or {}).get("notes")
        if record["skipped"] and record["skipped"] not in (notes if isinstance(notes, str) else ""):
            self.store.add_note(att.key, record["skipped"])
        self.log(f"{att.key}: attempt {att.attempt} on Ray worker {record['host']} pid {record['pid']} "
                 f"({record['device']}, {record['threads']} thread(s))")

    def _crashed(self, att: _Attempt, why: str) -> None:
        """A worker crash: `interrupted` with its rows up to its last epoch, then resubmitted (`_reclaim`) from the
        checkpoint the store holds; after MAX_CRASHES in a row, `failed`."""
        crashes = self.crashes[att.key] = self.crashes.get(att.key, 0) + 1
        if crashes >= MAX_CRASHES:
            self._end(att.key, "failed", f"its Ray worker died {crashes} times in a row (last: {why}); "
                                         "resume it when the cluster is healthy")
            return
        self._end(att.key, "interrupted", f"its Ray worker ended during epoch {att.last_epoch + 1} ({why})")
        self.retry.append(att.key)

    def _end(self, key: str, status: str, error: str | None) -> None:
        self.inflight.pop(key, None)
        self.store.finish(key, status, error=error)
        self.finals[key] = status
        self.log(f"{key}: {status}" + (f" ({error.splitlines()[0]})" if error else ""))

    def _stop_all(self, status: str, error: str | None) -> None:
        import ray

        for att in list(self.inflight.values()):
            ray.cancel(att.stream)
            self._end(att.key, status, error)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)                  # a crash never leaves half a file under the real name


def _whole(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def _first_lines(error: BaseException, lines: int = 6) -> str:
    return "\n".join(str(error).strip().splitlines()[:lines])
