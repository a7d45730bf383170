"""A markdown summary of the bundles in cached_runs/: provenance, compute used and headline numbers.

    python scripts/summarize_cached.py [FOLDER]            # print it
    python scripts/summarize_cached.py --readme [FOLDER]   # rewrite FOLDER/README.md's state table and summary

`--readme` keeps README.md up to "## State of the regeneration" and the paragraphs under its table as they are,
rewrites the table from scripts/make_cached_runs.py's pieces (shipped: its bundle exists) and replaces everything
from "## Headline" (or "## Per bundle") on with the headline table over all bundles and the per-bundle summary.
Run it after each piece lands. Reads the bundles without torch.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

import json

from adlapp import stats
from adlapp.bundle import read_bundle_dir

TEST_METRIC = {"cnn": "acc", "unet": "pixel_acc"}


def main(*args: str) -> None:
    if args and args[0] == "--readme":
        return write_readme(*args[1:])
    for line in summary(*args):
        print(line)


def write_readme(folder: str = "cached_runs") -> None:
    from make_cached_runs import PIECES  # scripts/ is this file's folder, first on sys.path

    path = Path(folder) / "README.md"
    text = path.read_text()
    state = text.index("## State of the regeneration")
    per_bundle = text.index("## Headline") if "## Headline" in text else text.index("## Per bundle")
    notes = [line for line in text[state:per_bundle].splitlines()[1:] if not line.startswith("|")]
    table = ["| piece | runs | state |", "|---|---|---|"] + [
        f"| {p.name} ({p.question}) | {len(p.runs)} | "
        f"{'shipped' if (Path(folder) / f'{p.name}.zip').exists() else 'to train'} |" for p in PIECES]
    while notes and not notes[0].strip():
        notes.pop(0)
    body = "\n".join(["## State of the regeneration", "", *table, "", *notes]).rstrip() + "\n\n"
    bundles, _ = read_bundle_dir(folder)
    path.write_text(text[:state] + body + "\n".join(headline(bundles)) + "\n\n## Per bundle\n\n"
                    + "\n".join(summary(folder)).rstrip() + "\n")
    print(f"wrote {path}")


def headline(bundles: list) -> list[str]:
    """One table over every shipped run: per variant, run length and test epoch, the test score mean ± sd
    (ddof 1) and n, for CNN accuracy and U-Net pixel accuracy and F1. Runs of other lengths (the separate-budget
    runs) are rows of their own, never pooled with the shared 1000-epoch runs."""
    frames = [(b.tables.runs[b.tables.runs["status"].isin(["done", "diverged"])], b.tables.tests) for b in bundles]
    out = ["## Headline", "",
           "Every shipped run, at each test epoch. Mean ± sd over seeds (sd with ddof 1), n = seeds. "
           "Diverged runs count (they are results); the Compare page flags collapsed ones.", "",
           "| variant | runs of | test epoch | n | test accuracy (CNN) or pixel accuracy (U-Net) | test F1 (U-Net) |",
           "|---|---|---|---|---|---|"]
    rows: dict[tuple, dict[str, list[float]]] = {}
    for runs, tests in frames:
        merged = tests.merge(runs[["key", "experiment", "variant", "epochs"]], on="key")
        for r in merged.itertuples():
            if r.name in ("acc", "pixel_acc", "f1"):
                group = rows.setdefault((r.experiment, r.variant, int(r.epochs), int(r.epoch)), {})
                group.setdefault(r.name, []).append(float(r.value))
    for (exp, variant, epochs, epoch), values in sorted(rows.items()):
        main_scores = values.get(TEST_METRIC[exp], [])
        s = stats.summarize(main_scores)
        f1 = stats.summarize(values["f1"]) if "f1" in values else None
        out.append(f"| {variant} | {epochs} | {epoch} | {s['n']} | {s['mean']:.4f} ± {s['sd']:.4f} | "
                   + (f"{f1['mean']:.4f} ± {f1['sd']:.4f} |" if f1 else "– |"))
    return out


def summary(folder: str = "cached_runs") -> list[str]:
    out: list[str] = []
    emit = out.append
    bundles, errors = read_bundle_dir(folder)
    for err in errors:
        emit(f"- unreadable: {err}")
    for b in bundles:
        runs, epochs, tests = b.tables.runs, b.tables.epochs, b.tables.tests
        seconds = epochs[epochs["name"] == "seconds"].groupby("key")["value"].sum()
        devices = sorted(set(runs["device"]))
        versions = json.loads(runs["versions"].iloc[0])
        emit(f"### {b.path.name}\n")
        per_variant = ", ".join(f"{v} × {n}" for v, n in runs["variant"].value_counts(sort=False).items())
        statuses = {k: int(v) for k, v in runs["status"].value_counts().items()}
        emit(f"- {len(runs)} runs: {per_variant}; seeds {sorted(set(runs['seed']))}; statuses {statuses}")
        emit(f"- device: {', '.join(devices)}; torch {versions.get('torch')}, python {versions.get('python')}; "
              f"git commit {runs['git_commit'].iloc[0]}")
        emit(f"- training wall time: {seconds.sum() / 3600:.2f} h in total, "
              f"{seconds.median() / 60:.1f} min median per run")
        emit(f"- command (per run): `{runs['command'].iloc[0]}`")
        emit(f"- bundle: {b.path.stat().st_size / 1024:.0f} KiB, exported by "
              f"`{b.manifest['provenance'].get('command')}`\n")
        exp = runs["experiment"].iloc[0]
        metric = TEST_METRIC[exp]
        merged = tests[tests["name"] == metric].merge(runs[["key", "variant"]], on="key")
        emit(f"| variant | test epoch | test {metric}: mean ± sd (n) |\n|---|---|---|")
        for (variant, epoch), g in merged.groupby(["variant", "epoch"]):
            s = stats.summarize(g["value"].to_numpy())
            emit(f"| {variant} | {epoch} | {s['mean']:.4f} ± {s['sd']:.4f} ({s['n']}) |")
        emit("")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
