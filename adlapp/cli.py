"""`python -m adlapp …`: the headless entry point (GPU servers, scripts, producing cached_runs/).

Commands: train, resume, continue, runs, cancel, export, import, worker, compare (adlapp.compare_cli), report
(adlapp.study_report). Every bad argument exits non-zero with one clear line, and is refused before the store is
touched. torch is imported only by the commands that train. `train` and `resume` train in this process; `cancel`
and `worker` go through the job queue (adlapp.jobs), as the app does. `train --backend ray` trains on a Ray
cluster with this process as the driver; `worker --backend ray` is the store's Ray dispatcher (adlapp.ray_backend).
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shlex
import sqlite3
import sys
import time
from typing import Sequence

from adlapp.config import (
    ACTIVATIONS,
    BN_LAYERS,
    BN_POSITIONS,
    EXPERIMENT_INFO,
    EXPERIMENTS,
    LIMITS,
    OPTIMIZERS,
    PRECISIONS,
    UPSAMPLINGS,
    VARIANTS,
    ConfigError,
    RunConfig,
    base_config,
    parse_seeds,
)
from adlapp.jobs import LocalProcessBackend, WorkerRegistry
from adlapp.planning import Sizes, Toggles, configure, resolve_dataset, variant_config
from adlapp.provenance import git_commit
from adlapp.store import FINISHED, RESUMABLE, STATUSES, RunStore, StoreError

__all__ = ["main", "build_config"]


class CliError(Exception):
    """Reported as one line on stderr with exit status 2."""


# -- argument types: each refuses a bad value with one line, before anything is touched ---------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def _threads(text: str) -> int:
    value = _positive_int(text)
    if value > LIMITS["threads"]:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {LIMITS['threads']}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


def _seeds(text: str) -> list[int]:
    """The app's seed box rule (adlapp.config.parse_seeds): '3' is seeds 0,1,2; '0,5,7' exactly those;
    '0-4' seeds 0 to 4; one particular seed is '7,' or '7-7'."""
    seeds, error = parse_seeds(text)
    if error:
        raise argparse.ArgumentTypeError(error)
    return seeds


# -- the parser ---------------------------------------------------------------------------------------------
# Commands whose modules pull in scipy, altair and the whole analysis layer (~1.4 s of imports, more on a busy
# machine). They are imported only when chosen, so that `worker` and `train` -- the path between a click on
# "Train" and the first live point -- start without them. Each module has `add_parser(sub, summary)`, `run(args)`
# and the error class it reports with.
_LAZY_COMMANDS = {
    "compare": ("adlapp.compare_cli", "CompareError",
                "compare variants across seeds: the Compare page's tests, headless"),
    "report": ("adlapp.study_report", "ReportError",
               "write a self-contained study report (HTML, figures, tables) for a write-up"),
    "bench": ("adlapp.bench", "BenchError", "measure the training engine against a notebook-style loop"),
}


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the top-level parser has no options but --help)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m adlapp",
                                description="adlapp: train variants with several seeds and compare them honestly.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_resume, _add_continue, _add_runs, _add_cancel, _add_export, _add_import,
                _add_worker):
        add(sub)
    for name, (module, _, summary) in _LAZY_COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(sub, summary)
        else:                # listed in --help; its own options are parsed only when it is the one chosen
            sub.add_parser(name, help=summary)
    return p


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train one variant for one or more seeds into the store",
                       description="Train (or find already finished) runs of one variant. Runs that are "
                                   "already done in the store are not trained again.")
    t.add_argument("experiment", choices=EXPERIMENTS)
    t.add_argument("--variant", help=f"named variant: {', '.join(VARIANTS)} (or without the prefix)")
    t.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                   help="BatchNorm2d after conv2 and conv3 (CNN) or in every block (U-Net)")
    t.add_argument("--bn-position", choices=BN_POSITIONS,
                   help="CNN with --batchnorm: BN before the activation (the course) or after it")
    t.add_argument("--bn-layers", choices=BN_LAYERS,
                   help="CNN with --batchnorm: conv2-3 (the course), also conv1, and/or before the linear layer (+fc)")
    t.add_argument("--bn-affine", action=argparse.BooleanOptionalAction, default=None,
                   help="CNN with --batchnorm: learnable BN scale and shift (the course: no)")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="the engine: NHWC memory format (~1.5x faster U-Net steps on a CPU; other numbers, so a "
                        "new run)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="the engine: fp32 (default) or bf16 autocast of the forward pass (for CUDA; a new run)")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--lr", type=_positive_float, help=_default_help("learning rate", lambda c: c.optim.lr))
    t.add_argument("--momentum", type=_finite_float,
                   help=f"SGD momentum (default {base_config('cnn').optim.momentum:g})")
    t.add_argument("--weight-decay", type=_finite_float)
    t.add_argument("--activation", choices=ACTIVATIONS)
    t.add_argument("--upsampling", choices=UPSAMPLINGS, help="U-Net: transpose is the course's 'normal'")
    t.add_argument("--depth", type=_positive_int,
                   help=f"U-Net down-samplings (default {base_config('unet').model.depth})")
    t.add_argument("--base-width", type=_positive_int,
                   help=f"U-Net channels at the top level (default {base_config('unet').model.base_width})")
    t.add_argument("--batch-size", type=_positive_int, help=_default_help("batch size", lambda c: c.batch_size))
    t.add_argument("--seeds", type=_seeds, default=[0],
                   help="a count (3 = seeds 0,1,2), a list (0,4,9) or a range (0-4); one seed: 7, or 7-7")
    t.add_argument("--epochs", type=_positive_int, help=_default_help("epochs", lambda c: c.epochs))
    t.add_argument("--eval-at", type=_int_list, help="extra test evaluations, e.g. 200,400")
    t.add_argument("--dataset", help="cards, vessels, or a folder of your own images")
    t.add_argument("--train-per-class", type=_positive_int,
                   help=f"cards: training images per class ({base_config('cnn').data.train_per_class})")
    t.add_argument("--n-train", type=_positive_int,
                   help=f"vessels: training images ({base_config('unet').data.n_train})")
    t.add_argument("--image-size", type=_positive_int, help="vessels/segmentation folders: side in pixels")
    t.add_argument("--checkpoint-every", type=int, default=None,
                   help="epochs between checkpoints (default: adaptive, ~2%% of the training time; 0: only "
                        "when stopped). Does not change the numbers, so it is not part of the run's key")
    _add_device(t, threads_help="torch CPU threads (default: all cores)")
    t.add_argument("--store", help="store directory (default $ADLAPP_STORE or ./runs)")
    _add_backend(t, concurrency_help="--backend ray: seeds trained at once (default: the cluster's CPUs)")


def _add_resume(sub) -> None:
    u = sub.add_parser("resume", help="continue interrupted, cancelled or failed runs from their checkpoints",
                       description="Continue runs from their last checkpoint, in the foreground. A run "
                                   "resumes with the thread count it started with.")
    u.add_argument("keys", nargs="*", metavar="KEY", help="run ids (see `runs`)")
    u.add_argument("--all", action="store_true", help="every interrupted run in the store")
    _add_device(u, threads_help="torch CPU threads for runs that start afresh")
    u.add_argument("--checkpoint-every", type=int, default=None, help="as for train")
    u.add_argument("--store")


def _add_continue(sub) -> None:
    c = sub.add_parser("continue", help="train a done run for N more epochs, as a new run that shares its history",
                       description="Continue a done run for N more epochs from its last checkpoint. The result is a "
                                   "new run (the parent is left as it is): the same config and seed with E+N epochs, "
                                   "test-scored at the parent's test epochs, equal to a fresh run of E+N epochs. A "
                                   "parent without a checkpoint (e.g. imported from a bundle) is trained again from "
                                   "epoch 1, and the new run's notes say so.")
    c.add_argument("key", metavar="KEY", help="the done run's id (see `runs`)")
    c.add_argument("--epochs", type=_positive_int, required=True, metavar="N", help="how many more epochs")
    c.add_argument("--queue", action="store_true",
                   help="only queue the new run, for the app's trainer processes (or `worker`)")
    _add_device(c, threads_help="torch CPU threads when the run trains from epoch 1 (one continued from a "
                                "checkpoint uses the thread count it started with)")
    c.add_argument("--checkpoint-every", type=int, default=None, help="as for train")
    c.add_argument("--store")


def _add_runs(sub) -> None:
    r = sub.add_parser("runs", help="list runs in the store")
    r.add_argument("--store")
    r.add_argument("--json", action="store_true", help="one JSON record per run, with metrics")
    r.add_argument("--experiment", choices=EXPERIMENTS)
    r.add_argument("--status", choices=STATUSES)


def _add_cancel(sub) -> None:
    c = sub.add_parser("cancel", help="cancel queued or running runs (a running one stops after its epoch)")
    c.add_argument("keys", nargs="+", metavar="KEY", help="run ids (see `runs`)")
    c.add_argument("--store")


def _add_export(sub) -> None:
    e = sub.add_parser("export", help="write finished runs to a portable bundle (Parquet + JSON manifest)")
    e.add_argument("--out", required=True, help="bundle file to write (.zip)")
    e.add_argument("--store")
    e.add_argument("--experiment", choices=EXPERIMENTS)
    e.add_argument("--variant", action="append", help="only this variant (repeatable)")


def _add_import(sub) -> None:
    i = sub.add_parser("import", help="add the runs of a bundle to the store")
    i.add_argument("file")
    i.add_argument("--store")


def _add_worker(sub) -> None:
    w = sub.add_parser("worker", help="drain the store's queue (started by the app; rarely by hand)",
                       description="Drain the store's queue. --backend ray: the dispatcher, which trains the queued "
                                   "runs on a Ray cluster and writes their epochs into the store.")
    w.add_argument("--store")
    _add_device(w, threads_help="torch CPU threads")
    _add_backend(w, concurrency_help="--backend ray: runs in flight at once (default: the cluster's CPUs)")
    w.add_argument("--idle-exit", type=_finite_float, default=None, metavar="S",
                   help="seconds an idle worker (or --backend ray dispatcher) waits for new runs before it exits "
                        "(default: local 0, ray 60); a waiting worker has torch imported and its data built, so "
                        "the next run's first epoch starts at once")
    w.add_argument("--warm", choices=EXPERIMENTS, action="append", default=[],
                   help="build this experiment's built-in data set while waiting (repeatable)")


def _add_backend(parser: argparse.ArgumentParser, concurrency_help: str) -> None:
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="where runs train: this machine (local), or a Ray cluster (ray; needs "
                             "`pip install -r requirements-ray.txt`)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="--backend ray: the cluster to join, e.g. ray://head:10001 or head:6379 (default "
                             "$RAY_ADDRESS, else a local Ray cluster started for the command)")
    parser.add_argument("--concurrency", type=_positive_int, help=concurrency_help)


def _add_device(parser: argparse.ArgumentParser, threads_help: str) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, mps")
    parser.add_argument("--threads", type=_threads, help=threads_help)


def _default_help(what: str, value) -> str:
    """'learning rate (default 0.01 CNN, 0.001 U-Net)', read from each experiment's course base."""
    defaults = ", ".join(f"{value(base_config(e)):g} {EXPERIMENT_INFO[e].title}" for e in EXPERIMENTS)
    return f"{what} (default {defaults})"


# -- one config from the arguments: the app's path (adlapp.planning) ----------------------------------------
def build_config(args: argparse.Namespace) -> RunConfig:
    """The variant (or the experiment's course base) with every given toggle, size and the data set applied,
    through the same `adlapp.planning` functions the app's pages use. ConfigError names a bad value."""
    if args.dataset is not None and not args.dataset.strip():
        raise CliError("--dataset: empty; give cards, vessels or a folder")
    start = (variant_config(args.variant, args.experiment) if args.variant is not None
             else base_config(args.experiment))
    toggles = Toggles(batchnorm=args.batchnorm, bn_position=args.bn_position, bn_layers=args.bn_layers,
                      bn_affine=args.bn_affine, activation=args.activation, upsampling=args.upsampling,
                      depth=args.depth, base_width=args.base_width, optimizer=args.optimizer, lr=args.lr,
                      momentum=args.momentum, weight_decay=args.weight_decay,
                      channels_last=args.channels_last, precision=args.precision)
    sizes = Sizes(epochs=args.epochs, eval_at=None if args.eval_at is None else tuple(args.eval_at),
                  batch_size=args.batch_size, train_per_class=args.train_per_class, n_train=args.n_train,
                  image_size=args.image_size)
    return configure(start, toggles, sizes, resolve_dataset(args.dataset or "", args.experiment))


def _command_line() -> str:
    """How this process was invoked, recorded with each run and bundle as its provenance."""
    return "python -m adlapp " + shlex.join(sys.argv[1:])


def _check_checkpoint_every(value: int | None) -> None:
    if value is not None and value < 0:
        raise CliError(f"--checkpoint-every {value}: must be >= 0")


def _prepare_training(device: str, threads: int | None) -> None:
    """Refuse a missing device before the store is touched (no `failed` row for a typo), set threads."""
    import torch

    from adlapp.train import resolve_device  # imports torch: only when training

    try:
        resolve_device(device)
    except ValueError as e:
        raise CliError(str(e)) from None
    if threads:
        torch.set_num_threads(threads)


def _cmd_train(args: argparse.Namespace) -> int:
    from adlapp.runner import TerminationFlag  # imports torch: only when training

    if args.backend == "ray":
        return _train_on_ray(args)
    cfg = build_config(args)
    _check_checkpoint_every(args.checkpoint_every)
    _prepare_training(args.device, args.threads)
    _load_data_now(cfg)
    store = RunStore(args.store)
    store.mark_stale()
    command, flag = _command_line(), TerminationFlag()
    finals = []
    for seed in args.seeds:
        final = _train_seed(store, cfg, seed, command, args, flag)
        if final == "cancelled":
            return 130
        finals.append(final)
    return 1 if "failed" in finals else 0


def _ray_dispatcher(args: argparse.Namespace, store: RunStore, flag, idle: bool = False):
    """A connected adlapp.ray_backend.Dispatcher for these arguments; a missing Ray, or a cluster that cannot
    run the device (no GPU), is one clear line."""
    from adlapp.ray_backend import Dispatcher, RayRefused, RayUnavailable

    if args.ray_address is not None and not args.ray_address.strip():
        raise CliError("--ray-address: empty; give the cluster's address or leave it out for a local cluster")
    try:
        dispatcher = Dispatcher(store, address=args.ray_address, concurrency=args.concurrency, device=args.device,
                                threads=args.threads, checkpoint_every=getattr(args, "checkpoint_every", None),
                                flag=flag, log=lambda line: print(line, file=sys.stderr, flush=True))
    except RayUnavailable as e:
        raise CliError(str(e)) from None
    try:
        dispatcher.connect()
    except RayRefused as e:
        dispatcher.close()
        raise CliError(str(e)) from None
    return dispatcher


def _train_on_ray(args: argparse.Namespace) -> int:
    """`train --backend ray`: queue the seeds, then train them on the cluster from this process (the driver),
    writing every epoch into the store here. The device is checked against the cluster, not this machine."""
    from adlapp.runner import TerminationFlag  # imports torch: only when training

    cfg = build_config(args)
    _check_checkpoint_every(args.checkpoint_every)
    _load_data_now(cfg)
    store = RunStore(args.store)
    store.mark_stale()
    flag = TerminationFlag()
    dispatcher = _ray_dispatcher(args, store, flag)
    try:
        command, pending = _command_line(), []
        for seed in args.seeds:
            key, status = store.enqueue(cfg, seed, command=command)
            if status in FINISHED:
                print(f"{key} seed={seed}: already {status}, not trained again", file=sys.stderr)
            else:
                pending.append((key, seed, status))

        def claim():
            while pending:
                key, seed, status = pending.pop(0)
                claimed = store.claim(key, pid=os.getpid())
                if claimed is not None:
                    return claimed
                print(f"{key} seed={seed}: {status} in another process, skipped", file=sys.stderr)
            return None
        finals = dispatcher.serve(claim)
    finally:
        dispatcher.close()
    if "cancelled" in finals.values():
        return 130
    return 1 if {"failed", "interrupted"} & set(finals.values()) else 0


def _load_data_now(cfg: RunConfig) -> None:
    """A data folder whose files cannot be read is a clear error now, not a failed run later (loading is
    cached in-process, so training reuses it); skipped unreadable files are reported once."""
    from adlapp.data import DataError, load_data, skipped_summary

    try:
        data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    except DataError as e:
        raise CliError(str(e)) from None
    if skipped_summary(data):
        print(f"{cfg.data.name}: {skipped_summary(data)}", file=sys.stderr)


def _train_seed(store: RunStore, cfg: RunConfig, seed: int, command: str, args: argparse.Namespace,
                flag) -> str | None:
    """Train one seed in the foreground unless it is finished or another process has it; its final status."""
    key, status = store.enqueue(cfg, seed, command=command)
    if status in FINISHED:
        source = store.get(key)["source"]
        origin = "" if source == "local" else f" (from {source})"
        print(f"{key} seed={seed}: already {status}{origin}, not trained again", file=sys.stderr)
        return None
    if store.claim(key) is None:
        print(f"{key} seed={seed}: {status} in another process, skipped", file=sys.stderr)
        return None
    final = _run_in_foreground(store, key, cfg, seed, args, flag)
    print(f"{key} seed={seed}: {final}", file=sys.stderr)
    return final


def _run_in_foreground(store: RunStore, key: str, cfg: RunConfig, seed: int, args: argparse.Namespace,
                       flag) -> str:
    """Train a claimed run with a progress bar on a terminal; its final status."""
    from adlapp.runner import run_claimed  # imports torch: only when training

    return run_claimed(store, key, cfg, seed, device=args.device, flag=flag,
                       progress=_progress_bar(f"{cfg.experiment} seed {seed}", cfg.epochs),
                       checkpoint_every=args.checkpoint_every)


def _cmd_resume(args: argparse.Namespace) -> int:
    from adlapp.runner import TerminationFlag  # imports torch: only when training

    if bool(args.keys) == bool(args.all):
        raise CliError("name the runs to resume (their ids, see `runs`) or give --all, not both")
    _check_checkpoint_every(args.checkpoint_every)
    _prepare_training(args.device, args.threads)
    store = RunStore(args.store)
    store.mark_stale()
    _check_resumable(store, args.keys)
    keys = store.requeue(args.keys or None)
    if not keys:
        print(f"nothing to resume in {store.db_path}", file=sys.stderr)
        return 0
    flag = TerminationFlag()
    finals = []
    for key in keys:
        final = _resume_one(store, key, args, flag)
        if final == "cancelled":
            return 130
        finals.append(final)
    return 1 if "failed" in finals else 0


def _cmd_continue(args: argparse.Namespace) -> int:
    """Queue the continuation (RunStore.continue_run), then train it in the foreground unless --queue."""
    _check_checkpoint_every(args.checkpoint_every)
    if not args.queue:
        _prepare_training(args.device, args.threads)
    store = RunStore(args.store)
    store.mark_stale()
    child = store.continue_run(args.key, args.epochs, command=_command_line())
    what = (f"{child.key} seed={child.seed} (run {child.parent} continued to {child.epochs} epochs, "
            + (f"from its checkpoint at epoch {child.from_epoch})" if child.from_checkpoint
               else "trained again from epoch 1: the parent kept no checkpoint)"))
    if child.status in FINISHED:
        print(f"{what}: already {child.status}, not trained again", file=sys.stderr)
        return 0
    if not child.queued_now:
        print(f"{what}: already {child.status}", file=sys.stderr)
        return 0
    if args.queue:
        print(f"{what}: queued for the trainer processes", file=sys.stderr)
        return 0
    claimed = store.claim(child.key)
    if claimed is None:
        print(f"{what}: taken by another process, skipped", file=sys.stderr)
        return 0
    from adlapp.runner import TerminationFlag  # imports torch: only when training

    _, cfg, seed = claimed
    final = _run_in_foreground(store, child.key, cfg, seed, args, TerminationFlag())
    print(f"{what}: {final}", file=sys.stderr)
    return 130 if final == "cancelled" else 1 if final == "failed" else 0


def _check_resumable(store: RunStore, keys: list[str]) -> None:
    for key in keys:
        row = store.get(key)
        if row is None:
            raise CliError(f"run {key}: not in the store {store.db_path}")
        if row["status"] not in RESUMABLE:
            raise CliError(f"run {key}: is {row['status']}; only {', '.join(RESUMABLE)} runs can be resumed")


def _resume_one(store: RunStore, key: str, args: argparse.Namespace, flag) -> str | None:
    claimed = store.claim(key)
    if claimed is None:
        print(f"{key}: taken by another process or not trainable ({store.get(key)['error']})", file=sys.stderr)
        return None
    _, cfg, seed = claimed
    final = _run_in_foreground(store, key, cfg, seed, args, flag)
    how = _text(store.get(key)["notes"]) or "started afresh"
    print(f"{key} seed={seed}: {final} ({how})", file=sys.stderr)
    return final


def _progress_bar(label: str, total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="epoch", disable=not sys.stderr.isatty(), leave=True)

    def update(report) -> None:
        bar.n = report.epoch
        shown = {k: round(v, 4) for k, v in report.metrics.items() if k != "seconds"}
        bar.set_postfix(shown, refresh=True)
        if report.epoch >= report.epochs:
            bar.close()
    return update


def _records(store: RunStore, experiment: str | None, status: str | None) -> list[dict]:
    """One JSON-ready record per run: its row, the last value of each epoch metric, the test metrics."""
    tables = store.tables(experiment=experiment)
    runs = tables.runs if status is None else tables.runs[tables.runs["status"] == status]
    last = (tables.epochs.sort_values("epoch").groupby(["key", "name"]).tail(1)
            if len(tables.epochs) else tables.epochs)
    n_epochs = tables.epochs.groupby("key")["epoch"].nunique().to_dict() if len(tables.epochs) else {}
    return [_record(r, last[last["key"] == r["key"]], tables.tests[tables.tests["key"] == r["key"]],
                    int(n_epochs.get(r["key"], 0)), _weight_epochs(store, r["key"]))
            for r in runs.to_dict("records")]


def _weight_epochs(store: RunStore, key: str) -> list[int]:
    """Test epochs with stored weights; [] for a row whose key is not a run key (it can have none)."""
    try:
        return store.weight_epochs(key)
    except StoreError:
        return []


def _record(r: dict, last, tests, epochs_recorded: int, weight_epochs: list[int]) -> dict:
    return {
        "id": r["key"], "experiment": r["experiment"], "variant": r["variant"], "seed": int(r["seed"]),
        "epochs": int(r["epochs"]), "epochs_recorded": epochs_recorded,
        "status": r["status"], "device": _text(r["device"]), "threads": _int_or_none(r["threads"]),
        "error": _text(r["error"]), "notes": _text(r["notes"]),
        "config": _json_or_text(r["config"]),
        "final": _named_values(last),
        "test": {str(int(ep)): _named_values(g) for ep, g in tests.groupby("epoch")},
        "weights": weight_epochs,
    }


def _named_values(rows) -> dict[str, float | None]:
    return {n: _num(v) for n, v in zip(rows["name"], rows["value"], strict=True)}


def _num(v) -> float | None:
    return None if v is None or v != v else float(v)


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def _int_or_none(v) -> int | None:
    return None if v is None or v != v else int(v)


def _json_or_text(text):
    """A stored config as JSON; one that does not parse (a store written by hand) stays text, so that
    listing the runs never fails because of one bad row."""
    try:
        return _strict(json.loads(text))
    except (TypeError, ValueError):
        return text


def _strict(value):
    """NaN and infinities become null: `runs --json` always emits strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _cmd_runs(args: argparse.Namespace) -> int:
    store = RunStore(args.store)
    store.mark_stale()
    records = _records(store, args.experiment, args.status)
    if args.json:
        json.dump(_strict(records), sys.stdout, indent=1, allow_nan=False)
        print()
        return 0
    if not records:
        print(f"no runs in {store.db_path}")
        return 0
    head = f"{'id':16}  {'variant':18} {'seed':>4} {'epochs':>9}  {'status':11} {'test (last epoch)'}"
    print(head)
    for rec in records:
        last_test = rec["test"].get(str(rec["epochs"]), {})
        test = " ".join(f"{k}={v:.4f}" for k, v in last_test.items() if v is not None)
        print(f"{rec['id']:16}  {rec['variant']:18} {rec['seed']:>4} "
              f"{rec['epochs_recorded']:>4}/{rec['epochs']:<4}  {rec['status']:11} {test}")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    backend = LocalProcessBackend(RunStore(args.store), concurrency=1)
    for key in args.keys:
        print(f"{key}: {backend.cancel(key)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from adlapp.bundle import export_store

    store = RunStore(args.store)
    provenance = {"command": _command_line(), "git_commit": git_commit()}
    path = export_store(store, args.out, experiment=args.experiment, variants=args.variant,
                        provenance=provenance)
    print(f"wrote {path}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from adlapp.bundle import import_bundle

    store = RunStore(args.store)
    added = import_bundle(store, args.file)
    print(f"imported {len(added)} new run(s) from {args.file} into {store.db_path}")
    return 0


IDLE_POLL_S = 0.25      # how often an idle worker looks at the queue: a new run waits at most this long


def _cmd_worker(args: argparse.Namespace) -> int:
    """Claim queued (then interrupted) runs one at a time until none is left, registered as a worker of the
    store's queue (adlapp.jobs) for as long as it runs."""
    from adlapp.runner import TerminationFlag, run_claimed  # imports torch: only when training

    if args.backend == "ray":
        return _dispatch_on_ray(args)
    _prepare_training(args.device, args.threads)
    store = RunStore(args.store)
    flag = TerminationFlag()
    registry = WorkerRegistry(store.root)
    idle_exit = max(0.0, args.idle_exit or 0.0)
    for exp in args.warm:                # load_data is cached per process: the first run finds it built
        _load_data_now(base_config(exp))
    if idle_exit:
        print(f"worker {os.getpid()}: ready (torch imported, data built: {', '.join(args.warm) or 'none'}); "
              f"waits {idle_exit:g} s for runs", flush=True)
    with registry.registered(os.getpid()):
        idle_since = time.monotonic()
        while not flag.set:
            store.mark_stale()     # a trainer that died becomes `interrupted`, and is resumed below
            claimed = store.claim(pid=os.getpid(), interrupted=True)
            if claimed is None:
                if time.monotonic() - idle_since < idle_exit:
                    time.sleep(IDLE_POLL_S)
                    continue
                # Leave under the registry's lock, having looked once more: a submitter counts workers under
                # the same lock, so a run queued now either is claimed here or finds no worker and starts one.
                with registry.locked():
                    claimed = store.claim(pid=os.getpid(), interrupted=True)
                    if claimed is None:
                        registry.remove(os.getpid())
                        break
            key, cfg, seed = claimed
            print(f"worker {os.getpid()}: training {key} ({cfg.experiment}, seed {seed})", flush=True)
            status = run_claimed(store, key, cfg, seed, device=args.device, flag=flag)
            print(f"worker {os.getpid()}: {key} {status}", flush=True)
            idle_since = time.monotonic()
    return 0


def _dispatch_on_ray(args: argparse.Namespace) -> int:
    """`worker --backend ray`: the store's dispatcher (adlapp.ray_backend), registered for as long as it runs,
    which leaves once the queue has been empty for --idle-exit seconds."""
    from adlapp.ray_backend import IDLE_EXIT_S, DispatcherRegistry
    from adlapp.runner import TerminationFlag  # imports torch: only when training

    store = RunStore(args.store)
    flag = TerminationFlag()
    registry = DispatcherRegistry(store.root)
    with registry.registered(os.getpid()):
        dispatcher = _ray_dispatcher(args, store, flag)
        try:
            def claim():
                store.mark_stale()     # a run whose dispatcher died becomes `interrupted`, and is resumed here
                return store.claim(pid=os.getpid(), interrupted=True)
            dispatcher.serve(claim, idle_exit_s=IDLE_EXIT_S if args.idle_exit is None else args.idle_exit,
                             registry=registry)
        finally:
            dispatcher.close()
    return 0


_COMMANDS = {"train": _cmd_train, "resume": _cmd_resume, "continue": _cmd_continue, "runs": _cmd_runs,
             "cancel": _cmd_cancel, "export": _cmd_export, "import": _cmd_import, "worker": _cmd_worker}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen_command(argv)
    args = _parser(command).parse_args(argv)
    from adlapp.bundle import BundleError
    reported: tuple[type[BaseException], ...] = (CliError, ConfigError, StoreError, BundleError, KeyError)
    if args.command in _LAZY_COMMANDS:
        module_name, error_name, _ = _LAZY_COMMANDS[args.command]
        module = importlib.import_module(module_name)
        run, reported = module.run, reported + (getattr(module, error_name),)
    else:
        run = _COMMANDS[args.command]
    try:
        return run(args)
    except reported as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"python -m adlapp {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:       # e.g. a store file that is not a database, or a full disk
        print(f"python -m adlapp {args.command}: error: store database: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `… --json | head`: the reader left; nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:             # e.g. no space left, no permission to write the bundle or checkpoint
        print(f"python -m adlapp {args.command}: error: {e.strerror or e}"
              f"{f' ({e.filename})' if e.filename else ''}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"python -m adlapp {args.command}: error: out of memory; ask for smaller sizes", file=sys.stderr)
        return 2
