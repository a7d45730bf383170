"""Print a markdown summary of the bundles in cached_runs/: provenance, compute used and headline numbers.

    python scripts/summarize_cached.py [FOLDER]

Used to write cached_runs/README.md after regenerating the bundles; reads them without torch.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

import json

from adlapp import stats
from adlapp.bundle import read_bundle_dir

TEST_METRIC = {"cnn": "acc", "unet": "pixel_acc"}


def main(folder: str = "cached_runs") -> None:
    bundles, errors = read_bundle_dir(folder)
    for err in errors:
        print(f"- unreadable: {err}")
    for b in bundles:
        runs, epochs, tests = b.tables.runs, b.tables.epochs, b.tables.tests
        seconds = epochs[epochs["name"] == "seconds"].groupby("key")["value"].sum()
        devices = sorted(set(runs["device"]))
        versions = json.loads(runs["versions"].iloc[0])
        print(f"### {b.path.name}\n")
        per_variant = ", ".join(f"{v} × {n}" for v, n in runs["variant"].value_counts(sort=False).items())
        statuses = {k: int(v) for k, v in runs["status"].value_counts().items()}
        print(f"- {len(runs)} runs: {per_variant}; seeds {sorted(set(runs['seed']))}; statuses {statuses}")
        print(f"- device: {', '.join(devices)}; torch {versions.get('torch')}, python {versions.get('python')}; "
              f"git commit {runs['git_commit'].iloc[0]}")
        print(f"- training wall time: {seconds.sum() / 3600:.2f} h in total, "
              f"{seconds.median() / 60:.1f} min median per run")
        print(f"- command (per run): `{runs['command'].iloc[0]}`")
        print(f"- bundle: {b.path.stat().st_size / 1024:.0f} KiB, exported by "
              f"`{b.manifest['provenance'].get('command')}`\n")
        exp = runs["experiment"].iloc[0]
        metric = TEST_METRIC[exp]
        merged = tests[tests["name"] == metric].merge(runs[["key", "variant"]], on="key")
        print(f"| variant | test epoch | test {metric}: mean ± sd (n) |\n|---|---|---|")
        for (variant, epoch), g in merged.groupby(["variant", "epoch"]):
            s = stats.summarize(g["value"].to_numpy())
            print(f"| {variant} | {epoch} | {s['mean']:.4f} ± {s['sd']:.4f} ({s['n']}) |")
        print()


if __name__ == "__main__":
    main(*sys.argv[1:])
