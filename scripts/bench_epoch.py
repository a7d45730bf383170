"""Seconds per training epoch of the course variants on this machine, side by side in one run.

    python scripts/bench_epoch.py [--epochs 3] [--threads 1 2]

Prints one line per (variant, threads): median s/epoch over the measured epochs (the first epoch is
a warm-up and not counted) and the ratio to the first row. Use it for sizing, not as a test.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

import argparse
import statistics
from dataclasses import replace

import torch

from adlapp.config import variant
from adlapp.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", default=["cnn/bn-adam", "cnn/sgd", "unet/normal", "unet/nearest"])
    args = p.parse_args()
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


if __name__ == "__main__":
    main()
