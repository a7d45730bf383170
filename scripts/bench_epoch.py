"""Seconds per training epoch of the course variants on this machine, side by side in one run.

    python scripts/bench_epoch.py [--epochs 3] [--threads 1 2] [--checkpoints]

Prints one line per (variant, threads): median s/epoch over the measured epochs (the first epoch is
a warm-up and not counted) and the ratio to the first row. Use it for sizing, not as a test.

With --checkpoints it measures instead what the default (adaptive) checkpointing costs: each variant is
trained without checkpoints and with them, interleaved (A B A B) so that machine noise hits both, and
the line gives the median whole-run seconds of each and their ratio.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from adlapp.config import variant
from adlapp.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", default=["cnn/bn-adam", "cnn/sgd", "unet/normal", "unet/nearest"])
    p.add_argument("--checkpoints", action="store_true", help="cost of the default checkpointing")
    p.add_argument("--repeats", type=int, default=3, help="--checkpoints: A/B pairs per variant")
    args = p.parse_args()
    if args.checkpoints:
        return checkpoint_cost(args)
    base = None
    print(f"{'variant':18} {'threads':>7} {'s/epoch':>8} {'ratio':>6}")
    for name in args.variants:
        for threads in args.threads:
            torch.set_num_threads(threads)
            cfg = replace(variant(name), epochs=args.epochs, eval_at=())
            result = train(cfg, 0, device="cpu")
            per_epoch = statistics.median(h["seconds"] for h in result.history[1:])
            base = base or per_epoch
            print(f"{name:18} {threads:>7} {per_epoch:8.3f} {per_epoch / base:6.2f}", flush=True)


def checkpoint_cost(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads[0])
    print(f"{'variant':18} {'epochs':>6} {'no ckpt s':>9} {'ckpt s':>8} {'ratio':>6} {'ckpts':>5}")
    for name in args.variants:
        cfg = replace(variant(name), epochs=args.epochs, eval_at=())
        plain, saved, writes = [], [], 0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            train(cfg, 0, device="cpu")
            plain.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                count = []
                t0 = time.perf_counter()
                train(cfg, 0, device="cpu", checkpoint_dir=tmp,
                      on_epoch=lambda r, d=tmp, c=count: c.append(Path(d, "last.pt").stat().st_mtime_ns))
                saved.append(time.perf_counter() - t0)
                writes = len(set(count))
        a, b = statistics.median(plain), statistics.median(saved)
        print(f"{name:18} {args.epochs:>6} {a:9.2f} {b:8.2f} {b / a:6.3f} {writes:>5}", flush=True)


if __name__ == "__main__":
    main()
