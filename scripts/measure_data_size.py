"""Does a larger built-in card set change the CNN's answers, and what does it cost per epoch?

    python scripts/measure_data_size.py queue  --store DIR [--sizes 60] [--seeds 3]
    python scripts/measure_data_size.py report --store DIR [--cached cached_runs] [--sizes 20 60] [--seeds 3]

The built-in cards train on 20 images per class (1,060 images), about 7x fewer than the public card set the
course used, and both experiments overfit on them. This script measures whether the report's CNN answers hold on
more data: the 2 x 2 of batch-norm x optimiser (Adam, SGD + momentum 0.9, both at lr 0.01) at each size.

`queue` asks the store for those runs; trainers drain it as usual (`python -m adlapp worker --store DIR`, or
scripts/make_cached_runs.py's workers when DIR is its store). Each size trains for the same number of optimiser
steps as the course's 200 epochs at 20 a class (200 x 17 = 3,400 steps; 60 a class: 68 epochs of 50 steps), so
the sizes differ in data, not in training budget.

`report` reads those runs from the store and, for 20 a class, the 200-epoch runs shipped in cached_runs/ (and
the store's, if any), and prints per size: median seconds per epoch, test accuracy per variant (mean +- sd,
ddof 1, n), and the four 2 x 2 contrasts with Welch's t, Holm-adjusted within each size (adlapp.stats).
No torch: it reads stored numbers only.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

import argparse
from dataclasses import replace

import pandas as pd

from adlapp import stats
from adlapp.config import CARD_CLASSES, RunConfig, batches_per_epoch, run_key, training_signature, variant
from adlapp.library import load_cached
from adlapp.store import RunStore, RunTables

VARIANTS = ("cnn/bn-adam", "cnn/adam", "cnn/bn-sgd", "cnn/sgd")
# The four contrasts the report's CNN questions turn on: a - b.
CONTRASTS = (("cnn/bn-adam", "cnn/adam", "BN helps Adam"), ("cnn/bn-sgd", "cnn/sgd", "BN helps SGD"),
             ("cnn/adam", "cnn/sgd", "Adam vs SGD, no BN"), ("cnn/bn-adam", "cnn/bn-sgd", "Adam vs SGD, with BN"))
COURSE_STEPS = 200 * batches_per_epoch(variant("cnn/adam"))       # 200 epochs at 20 a class


def config_at(name: str, per_class: int) -> RunConfig:
    """The registry variant on `per_class` cards a class, trained for the course's number of optimiser steps."""
    cfg = variant(name)
    sized = replace(cfg, data=replace(cfg.data, train_per_class=per_class))
    return replace(sized, epochs=max(1, round(COURSE_STEPS / batches_per_epoch(sized))))


def queue(store: RunStore, sizes: list[int], seeds: int) -> None:
    keys = []
    for per_class in sizes:
        for name in VARIANTS:
            cfg = config_at(name, per_class)
            for seed in range(seeds):
                key, status = store.enqueue(cfg, seed, command="python scripts/measure_data_size.py queue")
                keys.append(key)
                print(f"{name:12s} {per_class:4d}/class {cfg.epochs:4d} epochs seed {seed}: {status} ({key})")
    print(f"{len(keys)} runs asked for in {store.root}")


def _final_scores(tables: RunTables, cfg: RunConfig, seeds: int | None) -> tuple[list[float], list[float]]:
    """(test acc at the last epoch, seconds per epoch) of the done runs of `cfg`: every seed the tables hold,
    or seeds 0..seeds-1."""
    held = {int(s) for s in tables.runs["seed"]}
    keys = {run_key(cfg, s) for s in held if seeds is None or s < seeds}
    done = tables.runs[tables.runs["key"].isin(keys) & (tables.runs["status"] == "done")]["key"]
    tests = tables.tests[tables.tests["key"].isin(done) & (tables.tests["name"] == "acc")
                         & (tables.tests["epoch"] == cfg.epochs)].drop_duplicates("key")
    seconds = tables.epochs[tables.epochs["key"].isin(done) & (tables.epochs["name"] == "seconds")]["value"]
    return tests["value"].tolist(), seconds.tolist()


def report(tables: RunTables, sizes: list[int], seeds: int | None = None) -> None:
    """Per size: seconds per epoch, test accuracy per variant and the four contrasts (Welch, Holm over the
    contrasts of that size). `seeds`: read only seeds 0..seeds-1, so that sizes with different numbers of
    seeds can be compared at equal n (a p-value depends on n as much as on the effect)."""
    for per_class in sizes:
        configs = {name: config_at(name, per_class) for name in VARIANTS}
        scores, seconds = {}, []
        for name, cfg in configs.items():
            scores[name], secs = _final_scores(tables, cfg, seeds)
            seconds += secs
        n_images = per_class * CARD_CLASSES
        epochs = configs["cnn/adam"].epochs
        median = f"{pd.Series(seconds).median():.2f} s/epoch (median of {len(seconds)} epochs)" if seconds else "-"
        print(f"\n### {per_class} cards a class ({n_images:,} training images), {epochs} epochs; {median}\n")
        print("| variant | test acc: mean ± sd (n) |\n|---|---|")
        for name, values in scores.items():
            if not values:
                print(f"| {name} | no finished runs yet |")
                continue
            s = stats.summarize(values)
            print(f"| {name} | {s['mean']:.4f} ± {s['sd']:.4f} ({s['n']}) |")
        rows = [(label, stats.compare(scores[a], scores[b], names=(a, b))) for a, b, label in CONTRASTS
                if len(scores[a]) >= 2 and len(scores[b]) >= 2]
        if not rows:
            print("\n(fewer than 2 done seeds per variant: no contrasts yet)")
            continue
        adjusted = stats.holm([r["welch_p"] for _, r in rows])
        print("\n| contrast | Δ mean | 95 % CI (unadjusted) | Welch p | Holm p (4 contrasts) |\n|---|---|---|---|---|")
        for (label, r), p in zip(rows, adjusted, strict=True):
            print(f"| {label} | {r['diff']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
                  f"{r['welch_p']:.3g} | {p:.3g} |")
    sig = {training_signature(config_at(n, s)) for n in VARIANTS for s in sizes}
    print(f"\n({len(sig)} training set-ups read; runs from the store and cached_runs/)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("queue", "report"))
    p.add_argument("--store", required=True, help="run store directory")
    p.add_argument("--sizes", type=int, nargs="+", help="training images per class (queue: 60; report: 20 60)")
    p.add_argument("--seeds", type=int, help="queue: seeds 0..N-1 per variant and size (default 3); report: read "
                                          "only seeds 0..N-1 (default: every seed), to compare sizes at equal n")
    p.add_argument("--cached", default="cached_runs", help="report: the shipped bundles (the 20-a-class runs)")
    args = p.parse_args()
    store = RunStore(args.store)
    if args.action == "queue":
        queue(store, args.sizes or [60], args.seeds or 3)
    else:
        tables = RunTables.concat([store.tables(experiment="cnn"), load_cached(args.cached).tables])
        report(tables, args.sizes or [20, 60], args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
