"""Kill -9 a trainer at random points, resume it, and check that nothing was lost or changed.

    python scripts/fault_injection.py [--kills 12] [--epochs 12] [--checkpoint-every N] [--seed 0] [--json]

1. Trains a small CNN run uninterrupted (the reference) in its own store.
2. Trains the same run in a second store with `python -m adlapp train`, SIGKILLs the process group at a
   random moment after it has recorded a new epoch, and continues with `python -m adlapp resume --all`,
   killed again the same way, `--kills` times; the last resume runs to the end.
3. After every kill: `PRAGMA integrity_check` must say ok and every row committed before the kill must
   still be there with the same value once the run has finished. At the end every metric row and test
   score must equal the reference's exactly (same thread count, CPU).

It prints one line per kill (epoch reached, checkpoint resumed from, epochs trained again) and a summary;
`--checkpoint-every 0` shows the old behaviour (no checkpoint until asked to stop: every kill restarts
from epoch 1). Exits 1 if any check fails. Uses only this machine: no network, bounded in time.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "cnn", "--variant", "bn-adam", "--train-per-class", "2", "--seeds", "1", "--threads", "1"]
METRICS = ("train_loss", "val_loss", "val_acc")      # `seconds` is wall time, the one column allowed to differ


def adlapp(args: list[str], store: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "adlapp", *args, "--store", str(store)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            **popen)


def rows(store: Path) -> dict[tuple[int, str], float]:
    with sqlite3.connect(store / "runs.sqlite") as db:
        return {(e, n): v for e, n, v in db.execute("SELECT epoch, name, value FROM epoch_metrics")
                if n in METRICS}


def tests(store: Path) -> dict[tuple[int, str], float]:
    with sqlite3.connect(store / "runs.sqlite") as db:
        return {(e, n): v for e, n, v in db.execute("SELECT epoch, name, value FROM test_metrics")}


def last_epoch(store: Path) -> int:
    if not (store / "runs.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(store / "runs.sqlite") as db:
            row = db.execute("SELECT max(epoch) FROM epoch_metrics").fetchone()
    except sqlite3.OperationalError:          # the trainer is creating the store right now
        return 0
    return int(row[0] or 0)


def checkpoint_epoch(store: Path) -> int:
    """Epoch of the run's checkpoint, read the way the trainer reads it (tensors only, no unpickling)."""
    import torch

    found = list((store / "checkpoints").glob("*/last.pt"))
    if not found:
        return 0
    return int(torch.load(found[0], map_location="cpu", weights_only=True)["epoch"])


def integrity(store: Path) -> str:
    with sqlite3.connect(store / "runs.sqlite") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def run(kills: int, epochs: int, checkpoint_every: int | None, seed: int, timeout_s: float) -> dict:
    rng = random.Random(seed)
    extra = ["--epochs", str(epochs)]
    every = [] if checkpoint_every is None else ["--checkpoint-every", str(checkpoint_every)]
    with tempfile.TemporaryDirectory() as tmp:
        ref, store = Path(tmp) / "reference", Path(tmp) / "killed"
        adlapp(TRAIN + extra, ref).wait(timeout=timeout_s)
        reference, reference_tests = rows(ref), tests(ref)

        failures: list[str] = []
        kills_log: list[dict] = []
        committed: dict[tuple[int, str], float] = {}
        deadline = time.monotonic() + timeout_s
        for attempt in range(kills + 1):
            cmd = TRAIN + extra + every if attempt == 0 else ["resume", "--all", "--threads", "1"] + every
            before = last_epoch(store)
            resumed_from = checkpoint_epoch(store) if attempt else 0
            proc = adlapp(cmd, store)
            if attempt == kills:                       # the last one runs to the end
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                break
            while last_epoch(store) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)                       # wait for a new epoch of this attempt ...
            time.sleep(rng.uniform(0.0, 1.0))          # ... then kill at a random point of what follows
            if proc.poll() is not None:
                failures.append(f"attempt {attempt}: the trainer ended before it could be killed")
                break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reached = last_epoch(store)
            kills_log.append({"kill": attempt + 1, "rows_before": before, "resumed_from": resumed_from,
                              "reached": reached})
            if integrity(store) != "ok":
                failures.append(f"kill {attempt + 1}: integrity_check says {integrity(store)}")
            committed.update(rows(store))

        final, final_tests = rows(store), tests(store)
        lost = [k for k in committed if k not in final]
        if lost:
            failures.append(f"{len(lost)} committed row(s) missing after resume, e.g. {lost[:3]}")
        changed = [k for k, v in committed.items() if k in final and final[k] != v]
        if changed:
            failures.append(f"{len(changed)} committed row(s) changed value, e.g. {changed[:3]}")
        if final != reference:
            diff = sorted(k for k in reference if final.get(k) != reference[k])
            failures.append(f"{len(diff)} metric row(s) differ from the uninterrupted run, e.g. {diff[:3]}")
        if final_tests != reference_tests:
            failures.append(f"test scores differ: {final_tests} vs {reference_tests}")
        if integrity(store) != "ok":
            failures.append("final integrity_check failed")
    # Epochs a kill costs: what had been recorded minus where the next attempt resumed from.
    per_kill = [k["reached"] - nxt["resumed_from"] for k, nxt in zip(kills_log[:-1], kills_log[1:], strict=True)]
    every_label = "adaptive" if checkpoint_every is None else checkpoint_every
    return {"kills": len(kills_log), "epochs": epochs, "checkpoint_every": every_label,
            "log": kills_log, "epochs_lost_per_kill": per_kill,
            "mean_epochs_lost_per_kill": (sum(per_kill) / len(per_kill)) if per_kill else 0.0,
            "failures": failures}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=12)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--checkpoint-every", type=int, default=None, help="default: the trainer's adaptive rule")
    p.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole experiment")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    report = run(args.kills, args.epochs, args.checkpoint_every, args.seed, args.timeout)
    if args.json:
        print(json.dumps(report))
    else:
        for k in report["log"]:
            print(f"kill {k['kill']:2}: store had {k['rows_before']:3} epochs, resumed from checkpoint "
                  f"{k['resumed_from']:3}, reached {k['reached']:3} when killed")
        print(f"checkpoint_every={report['checkpoint_every']}: {report['kills']} kills, epochs lost per kill "
              f"{report['epochs_lost_per_kill']} (mean {report['mean_epochs_lost_per_kill']:.2f})")
        print("FAILED: " + "; ".join(report["failures"]) if report["failures"] else
              "ok: integrity ok after every kill, no committed row lost, final metrics equal the reference")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
