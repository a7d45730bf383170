"""Regenerates cached_runs/ in pieces: one bundle per variant (or per protocol), each written as soon as its
runs are done, so a study that takes longer than one sitting is never lost.

    python scripts/make_cached_runs.py                # every missing piece; 2 workers x 1 thread
    python scripts/make_cached_runs.py --list         # the pieces, their runs and which bundles exist
    python scripts/make_cached_runs.py --only cnn-bn-sgd unet-normal --workers 1 --threads 2

How it works: every run of every missing piece is queued in one store (runs/cached-study by default), in
the order of PIECES; `--workers` trainer processes (`python -m adlapp worker`) drain that queue; this script
polls the store and exports a piece to cached_runs/<piece>.zip the moment all its runs are finished (weights
of seed 0 only: the models the Predictions page shows, ~0.4-0.5 MB per test epoch). Run it again after an
interruption: pieces whose bundle exists are skipped, finished runs are found in the store, and runs killed
mid-way resume from their checkpoints. A bundle replaces the same runs in an older bundle (the app takes each
run from the newest bundle), so the study can be regenerated piece by piece.

Why two single-thread workers: on this 2-core CPU the course models are too small for two threads to halve an
epoch; two runs side by side finish more epochs per hour (measured: see cached_runs/README.md).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adlapp import questions  # noqa: E402
from adlapp.bundle import export_store  # noqa: E402
from adlapp.config import RunConfig, run_key, variant  # noqa: E402
from adlapp.planning import separate_budget_runs  # noqa: E402
from adlapp.provenance import git_commit  # noqa: E402
from adlapp.store import RunStore  # noqa: E402

SEEDS = tuple(range(questions.DEFAULT_SEEDS))
SWEEP_SEEDS = tuple(range(questions.SWEEP_SEEDS))


@dataclass(frozen=True)
class Piece:
    name: str                                   # bundle file stem
    question: str                               # what it answers (README and --list)
    runs: tuple[tuple[RunConfig, int], ...]     # (config, seed)


def _seeds(name: str, seeds: tuple[int, ...] = SEEDS) -> tuple[tuple[RunConfig, int], ...]:
    cfg = variant(name)
    return tuple((cfg, s) for s in seeds)


def _sweep(optimizer: str) -> tuple[tuple[RunConfig, int], ...]:
    """The lr sweep the "Is SGD worse, or un-tuned?" question reads (adlapp.questions), without the course
    rate 0.01: that is the course variant's own piece, with its 5 seeds."""
    return tuple((cfg, s) for cfg in questions.sweep_configs() if cfg.optim.name == optimizer
                 and cfg.optim.lr != variant("cnn/adam").optim.lr for s in SWEEP_SEEDS)


# In priority order: the pieces that answer new questions first, then the course variants again (now with
# best-validation scores and weights), then the costlier protocols.
PIECES: tuple[Piece, ...] = (
    Piece("cnn-bn-sgd", "Does BN help SGD too? (completes the 2 x 2)", _seeds("cnn/bn-sgd")),
    Piece("cnn-bn-after-adam", "Where does BN go: after the activation?", _seeds("cnn/bn-after-adam")),
    Piece("cnn-bn-all-adam", "Where does BN go: also on conv1 and before the linear layer?",
          _seeds("cnn/bn-all-adam")),
    Piece("unet-normal", "U-Net: the course's four variants", _seeds("unet/normal")),
    Piece("unet-nearest", "U-Net: the course's four variants", _seeds("unet/nearest")),
    Piece("unet-elu", "U-Net: the course's four variants", _seeds("unet/elu")),
    Piece("unet-nearest-elu", "U-Net: the course's four variants", _seeds("unet/nearest-elu")),
    Piece("cnn-bn-adam", "The course CNN variants (figure 1)", _seeds("cnn/bn-adam")),
    Piece("cnn-adam", "The course CNN variants (figure 1)", _seeds("cnn/adam")),
    Piece("cnn-sgd", "The course CNN variants (figure 1)", _seeds("cnn/sgd")),
    Piece("cnn-bn-affine-adam", "Where does BN go: affine or not?", _seeds("cnn/bn-affine-adam")),
    Piece("unet-normal-separate", "Separate runs per budget, as the report did (Normal)",
          tuple(separate_budget_runs(variant("unet/normal"), SEEDS, (200, 400, 1000)))),
    Piece("unet-nearest-separate", "Separate runs per budget, as the report did (Nearest Neighbor)",
          tuple(separate_budget_runs(variant("unet/nearest"), SEEDS, (200, 400, 1000)))),
    Piece("cnn-lr-sweep-sgd", "Is SGD worse, or un-tuned? lr sweep", _sweep("sgd")),
    Piece("cnn-lr-sweep-adam", "Is SGD worse, or un-tuned? lr sweep", _sweep("adam")),
)

FINISHED = ("done", "diverged")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default=str(ROOT / "runs" / "cached-study"))
    p.add_argument("--out", default=str(ROOT / "cached_runs"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="*", help="piece names (default: every missing piece)")
    p.add_argument("--list", action="store_true", help="show the pieces and exit")
    p.add_argument("--poll", type=float, default=20.0, help="seconds between store polls")
    args = p.parse_args()

    out = Path(args.out)
    names = {piece.name for piece in PIECES}
    unknown = set(args.only or ()) - names
    if unknown:
        p.error(f"unknown piece(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    chosen = [piece for piece in PIECES if not args.only or piece.name in args.only]
    if args.list:
        for piece in chosen:
            epochs = sum(cfg.epochs for cfg, _ in piece.runs)
            state = "present" if (out / f"{piece.name}.zip").exists() else "missing"
            print(f"{piece.name:24s} {len(piece.runs):3d} runs {epochs:6d} epochs  {state:8s} {piece.question}")
        return 0
    todo = [piece for piece in chosen if not (out / f"{piece.name}.zip").exists()]
    if not todo:
        print("every chosen piece is already in", out)
        return 0

    store = RunStore(args.store)
    command = f"python scripts/make_cached_runs.py (commit {git_commit() or 'unknown'})"
    for piece in todo:
        for cfg, seed in piece.runs:
            store.enqueue(cfg, seed, command=f"{command}: piece {piece.name}")
    # Pieces in PIECES order, each piece's seeds together: a run resumed from an earlier session was queued
    # again just now and would otherwise wait behind every run queued before it, holding its piece back.
    store.queue_first([run_key(cfg, seed) for piece in todo for cfg, seed in piece.runs])
    print(f"{len(todo)} piece(s) to make, {sum(len(x.runs) for x in todo)} runs; store {store.root}", flush=True)

    logs = Path(args.store)
    workers: list[subprocess.Popen] = []
    started = time.time()
    while todo:
        workers = [w for w in workers if w.poll() is None]
        todo = [piece for piece in todo if not _export_if_done(store, piece, out, started)]
        if not todo:
            break
        pending = _statuses(store, todo)
        stuck = {k: s for k, s in pending.items() if s in ("failed", "cancelled")}
        if stuck and len(stuck) == sum(s not in FINISHED for s in pending.values()):
            print(f"stopped: runs not trainable: {stuck}", flush=True)
            return 1
        while len(workers) < args.workers and any(s in ("queued", "interrupted") for s in pending.values()):
            log = open(logs / f"worker-{len(workers)}.log", "a")    # noqa: SIM115 - lives as long as the worker
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "adlapp", "worker", "--store", args.store, "--threads", str(args.threads),
                 "--device", args.device], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)}))
            time.sleep(2)                                  # let it claim before the next one looks
        time.sleep(args.poll)
    print(f"all pieces made in {(time.time() - started) / 3600:.2f} h", flush=True)
    return 0


def _statuses(store: RunStore, pieces: list[Piece]) -> dict[str, str]:
    keys = [run_key(cfg, seed) for piece in pieces for cfg, seed in piece.runs]
    return store.statuses(keys)


def _export_if_done(store: RunStore, piece: Piece, out: Path, started: float) -> bool:
    keys = [run_key(cfg, seed) for cfg, seed in piece.runs]
    statuses = store.statuses(keys)
    if any(statuses.get(k) not in FINISHED for k in keys):
        return False
    first_seed = min(seed for _, seed in piece.runs)
    weight_keys = {run_key(cfg, seed) for cfg, seed in piece.runs if seed == first_seed}
    target = out / f"{piece.name}.zip"
    tmp = target.with_suffix(".zip.part")
    export_store(store, tmp, keys=keys, weight_keys=weight_keys, weights=True,
                 provenance={"command": f"python scripts/make_cached_runs.py --only {piece.name}",
                             "git_commit": git_commit(), "piece": piece.name, "question": piece.question})
    tmp.replace(target)
    print(f"{time.strftime('%H:%M:%S')} wrote {target.name} ({target.stat().st_size / 1024:.0f} KiB, "
          f"{len(keys)} runs) after {(time.time() - started) / 60:.1f} min", flush=True)
    return True


if __name__ == "__main__":
    sys.exit(main())
