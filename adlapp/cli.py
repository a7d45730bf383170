"""`python -m adlapp …`: the headless entry point (GPU servers, scripts, producing cached_runs/).

Commands: train, resume, runs, export, import, worker. Every bad argument exits non-zero with one clear
line, and is refused before the store is touched. torch is imported only by the commands that train.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from adlapp.config import (ACTIVATIONS, LIMITS, OPTIMIZERS, UPSAMPLINGS, VARIANTS, ConfigError, RunConfig,
                           base_config, parse_seeds, variant)
from adlapp.provenance import git_commit
from adlapp.store import RESUMABLE, STATUSES, RunStore, StoreError

__all__ = ["main", "build_config"]

BUILTIN_DATASETS = {"cards": "cnn", "vessels": "unet"}


class CliError(Exception):
    """Reported as one line on stderr with exit status 2."""


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
    """'3' means seeds 0,1,2; '0,5,7' means exactly those (the same rule as the app's seed box)."""
    seeds, error = parse_seeds(text)
    if error:
        raise argparse.ArgumentTypeError(error)
    return seeds


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m adlapp",
                                description="adlapp: train variants with several seeds and compare them honestly.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train one variant for one or more seeds into the store",
                       description="Train (or find already finished) runs of one variant. Runs that are "
                                   "already done in the store are not trained again.")
    t.add_argument("experiment", choices=["cnn", "unet"])
    t.add_argument("--variant", help=f"named variant: {', '.join(VARIANTS)} (or without the prefix)")
    t.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                   help="BatchNorm2d after conv2 and conv3 (CNN) or in every block (U-Net)")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--lr", type=_positive_float, help="learning rate (default 0.01 CNN, 0.001 U-Net)")
    t.add_argument("--momentum", type=_finite_float, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=_finite_float)
    t.add_argument("--activation", choices=ACTIVATIONS)
    t.add_argument("--upsampling", choices=UPSAMPLINGS, help="U-Net: transpose is the course's 'normal'")
    t.add_argument("--depth", type=_positive_int, help="U-Net down-samplings (default 3)")
    t.add_argument("--base-width", type=_positive_int, help="U-Net channels at the top level (default 8)")
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--seeds", type=_seeds, default=[0], help="a count (3 = seeds 0,1,2) or a list (0,4,9)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--eval-at", type=_int_list, help="extra test evaluations, e.g. 200,400")
    t.add_argument("--dataset", help="cards, vessels, or a folder of your own images")
    t.add_argument("--train-per-class", type=_positive_int, help="cards: training images per class (20)")
    t.add_argument("--n-train", type=_positive_int, help="vessels: training images (48)")
    t.add_argument("--image-size", type=_positive_int, help="vessels/segmentation folders: side in pixels")
    t.add_argument("--checkpoint-every", type=int, default=None,
                   help="epochs between checkpoints (default: adaptive, ~2%% of the training time; 0: only "
                        "when stopped). Does not change the numbers, so it is not part of the run's key")
    t.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, mps")
    t.add_argument("--threads", type=_threads, help="torch CPU threads (default: all cores)")
    t.add_argument("--store", help="store directory (default $ADLAPP_STORE or ./runs)")

    u = sub.add_parser("resume", help="continue interrupted, cancelled or failed runs from their checkpoints",
                       description="Continue runs from their last checkpoint, in the foreground. A run "
                                   "resumes with the thread count it started with.")
    u.add_argument("keys", nargs="*", metavar="KEY", help="run ids (see `runs`)")
    u.add_argument("--all", action="store_true", help="every interrupted run in the store")
    u.add_argument("--device", default="auto")
    u.add_argument("--threads", type=_threads, help="torch CPU threads for runs that start afresh")
    u.add_argument("--checkpoint-every", type=int, default=None, help="as for train")
    u.add_argument("--store")

    r = sub.add_parser("runs", help="list runs in the store")
    r.add_argument("--store")
    r.add_argument("--json", action="store_true", help="one JSON record per run, with metrics")
    r.add_argument("--experiment", choices=["cnn", "unet"])
    r.add_argument("--status", choices=STATUSES)

    e = sub.add_parser("export", help="write finished runs to a portable bundle (Parquet + JSON manifest)")
    e.add_argument("--out", required=True, help="bundle file to write (.zip)")
    e.add_argument("--store")
    e.add_argument("--experiment", choices=["cnn", "unet"])
    e.add_argument("--variant", action="append", help="only this variant (repeatable)")

    i = sub.add_parser("import", help="add the runs of a bundle to the store")
    i.add_argument("file")
    i.add_argument("--store")

    w = sub.add_parser("worker", help="drain the store's queue (started by the app; rarely by hand)")
    w.add_argument("--store")
    w.add_argument("--device", default="auto")
    w.add_argument("--threads", type=_threads, help="torch CPU threads")
    return p


def build_config(args: argparse.Namespace) -> RunConfig:
    """The variant (or the experiment's course base) with every given toggle applied on top."""
    try:
        cfg = variant(args.variant) if args.variant is not None else base_config(args.experiment)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if cfg.experiment != args.experiment:
        raise CliError(f"--variant {args.variant}: belongs to {cfg.experiment}, not {args.experiment}")
    model = {k: v for k, v in {"batchnorm": args.batchnorm, "activation": args.activation,
                               "upsampling": args.upsampling, "depth": args.depth,
                               "base_width": args.base_width}.items() if v is not None}
    optim = {k: v for k, v in {"name": args.optimizer, "lr": args.lr, "momentum": args.momentum,
                               "weight_decay": args.weight_decay}.items() if v is not None}
    data = {k: v for k, v in {"name": args.dataset, "train_per_class": args.train_per_class,
                              "n_train": args.n_train, "image_size": args.image_size}.items() if v is not None}
    top = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size}.items() if v is not None}
    if args.eval_at is not None:
        top["eval_at"] = tuple(args.eval_at)
    if "name" in data:
        name = data["name"].strip()
        if not name:
            raise CliError("--dataset: empty; give cards, vessels or a folder")
        if name in BUILTIN_DATASETS:
            if BUILTIN_DATASETS[name] != cfg.experiment:
                raise CliError(f"--dataset {name}: is for {BUILTIN_DATASETS[name]}, not {cfg.experiment}")
        elif not Path(name).expanduser().is_dir():
            raise CliError(f"--dataset {name}: not a built-in data set (cards, vessels) nor an existing folder")
        else:
            data["name"] = str(Path(name).expanduser().resolve())
    try:
        return replace(cfg, model=replace(cfg.model, **model), optim=replace(cfg.optim, **optim),
                       data=replace(cfg.data, **data), **top)
    except ConfigError as e:
        raise CliError(str(e)) from None


def _prepare_training(device: str, threads: int | None) -> None:
    """Refuse a missing device before the store is touched (no `failed` row for a typo), set threads."""
    import torch

    from adlapp.train import resolve_device   # imports torch: only when training

    try:
        resolve_device(device)
    except ValueError as e:
        raise CliError(str(e)) from None
    if threads:
        torch.set_num_threads(threads)


def _cmd_train(args: argparse.Namespace) -> int:
    from adlapp.data import DataError, load_data, skipped_summary
    from adlapp.runner import TerminationFlag, run_claimed   # imports torch: only when training

    cfg = build_config(args)
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise CliError(f"--checkpoint-every {args.checkpoint_every}: must be >= 0")
    _prepare_training(args.device, args.threads)
    try:   # a bad data folder is a clear error now, not a failed run later (loading is cached in-process)
        data = load_data(cfg.data, "classification" if cfg.experiment == "cnn" else "segmentation")
    except DataError as e:
        raise CliError(str(e)) from None
    if skipped_summary(data):
        print(f"{cfg.data.name}: {skipped_summary(data)}", file=sys.stderr)
    store = RunStore(args.store)
    store.mark_stale()
    command = "python -m adlapp " + shlex.join(sys.argv[1:])
    flag = TerminationFlag()
    failures = 0
    for seed in args.seeds:
        key, status = store.enqueue(cfg, seed, command=command)
        if status in ("done", "diverged"):
            source = store.get(key)["source"]
            origin = "" if source == "local" else f" (from {source})"
            print(f"{key} seed={seed}: already {status}{origin}, not trained again", file=sys.stderr)
            continue
        claimed = store.claim(key)
        if claimed is None:
            print(f"{key} seed={seed}: {status} in another process, skipped", file=sys.stderr)
            continue
        final = run_claimed(store, key, cfg, seed, device=args.device, flag=flag,
                            progress=_progress_bar(f"{cfg.experiment} seed {seed}", cfg.epochs),
                            checkpoint_every=args.checkpoint_every)
        print(f"{key} seed={seed}: {final}", file=sys.stderr)
        failures += final == "failed"
        if final == "cancelled":
            return 130
    return 1 if failures else 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from adlapp.runner import TerminationFlag, run_claimed   # imports torch: only when training

    if bool(args.keys) == bool(args.all):
        raise CliError("name the runs to resume (their ids, see `runs`) or give --all, not both")
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise CliError(f"--checkpoint-every {args.checkpoint_every}: must be >= 0")
    _prepare_training(args.device, args.threads)
    store = RunStore(args.store)
    store.mark_stale()
    for key in args.keys:
        row = store.get(key)
        if row is None:
            raise CliError(f"run {key}: not in the store {store.db_path}")
        if row["status"] not in RESUMABLE:
            raise CliError(f"run {key}: is {row['status']}; only {', '.join(RESUMABLE)} runs can be resumed")
    keys = store.requeue(args.keys or None)
    if not keys:
        print(f"nothing to resume in {store.db_path}", file=sys.stderr)
        return 0
    flag = TerminationFlag()
    failures = 0
    for key in keys:
        claimed = store.claim(key)
        if claimed is None:
            print(f"{key}: taken by another process or not trainable ({store.get(key)['error']})",
                  file=sys.stderr)
            continue
        _, cfg, seed = claimed
        final = run_claimed(store, key, cfg, seed, device=args.device, flag=flag,
                            progress=_progress_bar(f"{cfg.experiment} seed {seed}", cfg.epochs),
                            checkpoint_every=args.checkpoint_every)
        how = _text(store.get(key)["notes"]) or "started afresh"
        print(f"{key} seed={seed}: {final} ({how})", file=sys.stderr)
        failures += final == "failed"
        if final == "cancelled":
            return 130
    return 1 if failures else 0


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
    tables = store.tables(experiment=experiment)
    runs = tables.runs if status is None else tables.runs[tables.runs["status"] == status]
    last = (tables.epochs.sort_values("epoch").groupby(["key", "name"]).tail(1)
            if len(tables.epochs) else tables.epochs)
    n_epochs = tables.epochs.groupby("key")["epoch"].nunique().to_dict() if len(tables.epochs) else {}
    out = []
    for r in runs.to_dict("records"):
        mine = last[last["key"] == r["key"]]
        tests = tables.tests[tables.tests["key"] == r["key"]]
        out.append({
            "id": r["key"], "experiment": r["experiment"], "variant": r["variant"], "seed": int(r["seed"]),
            "epochs": int(r["epochs"]), "epochs_recorded": int(n_epochs.get(r["key"], 0)),
            "status": r["status"], "device": _text(r["device"]), "threads": _int_or_none(r["threads"]),
            "error": _text(r["error"]), "notes": _text(r["notes"]),
            "config": _json_or_text(r["config"]),
            "final": {n: _num(v) for n, v in zip(mine["name"], mine["value"])},
            "test": {str(int(ep)): {n: _num(v) for n, v in zip(g["name"], g["value"])}
                     for ep, g in tests.groupby("epoch")},
        })
    return out


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


def _cmd_export(args: argparse.Namespace) -> int:
    from adlapp.bundle import export_store

    store = RunStore(args.store)
    provenance = {"command": "python -m adlapp " + shlex.join(sys.argv[1:]), "git_commit": git_commit()}
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


def _cmd_worker(args: argparse.Namespace) -> int:
    from adlapp.runner import TerminationFlag, run_claimed

    _prepare_training(args.device, args.threads)
    store = RunStore(args.store)
    store.register_worker(os.getpid())
    flag = TerminationFlag()
    try:
        while not flag.set:
            store.mark_stale()     # a trainer that died becomes `interrupted`, and is resumed below
            claimed = store.claim(pid=os.getpid(), interrupted=True)
            if claimed is None:
                return 0
            key, cfg, seed = claimed
            print(f"worker {os.getpid()}: training {key} ({cfg.experiment}, seed {seed})", flush=True)
            status = run_claimed(store, key, cfg, seed, device=args.device, flag=flag)
            print(f"worker {os.getpid()}: {key} {status}", flush=True)
        return 0
    finally:
        store.unregister_worker(os.getpid())


_COMMANDS = {"train": _cmd_train, "resume": _cmd_resume, "runs": _cmd_runs, "export": _cmd_export,
             "import": _cmd_import, "worker": _cmd_worker}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from adlapp.bundle import BundleError
    try:
        return _COMMANDS[args.command](args)
    except (CliError, ConfigError, StoreError, BundleError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"python -m adlapp {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:       # e.g. a store file that is not a database, or a full disk
        print(f"python -m adlapp {args.command}: error: store database: {e}", file=sys.stderr)
        return 2
    except OSError as e:             # e.g. no space left, no permission to write the bundle or checkpoint
        print(f"python -m adlapp {args.command}: error: {e.strerror or e}"
              f"{f' ({e.filename})' if e.filename else ''}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"python -m adlapp {args.command}: error: out of memory; ask for smaller sizes", file=sys.stderr)
        return 2
