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

import pandas as pd

from adlapp import stats
from adlapp.bundle import read_bundle_dir
from adlapp.store import FINISHED

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
    bundles, errors = read_bundle_dir(folder)
    path.write_text(text[:state] + body + "\n".join(headline(bundles)) + "\n\n## Per bundle\n\n"
                    + "\n".join(summary_of(bundles, errors)).rstrip() + "\n")
    print(f"wrote {path}")


HEADLINE_TABLE = [
    "Every shipped run, at each test epoch. Mean ± sd over seeds (sd with ddof 1), n = seeds with a test score. A "
    "run that diverged (non-finite loss) before the test epoch has no score: it is counted in brackets beside n (a "
    "result, not a gap). Runs that collapsed to chance are in n; the Compare page flags them.", "",
    "| variant | runs of | test epoch | n | test accuracy (CNN) or pixel accuracy (U-Net) | test F1 (U-Net) |",
    "|---|---|---|---|---|---|"]


def headline(bundles: list) -> list[str]:
    """One table over every shipped run: per variant, run length and test epoch, the test score mean ± sd
    (ddof 1) and n, for CNN accuracy and U-Net pixel accuracy and F1. Runs of other lengths (the separate-budget
    runs) are rows of their own, never pooled with the shared 1000-epoch runs. A run that diverged before a test
    epoch has no score there: it is not in n, and the n cell counts it in brackets so that no run goes unseen."""
    if not bundles:
        return ["## Headline", "", *HEADLINE_TABLE]
    runs = pd.concat([b.tables.runs for b in bundles])
    tests = pd.concat([b.tables.tests for b in bundles])
    seconds = sum(b.tables.epochs.loc[b.tables.epochs["name"] == "seconds", "value"].sum() for b in bundles)
    out = ["## Headline", "",
           f"Behind it: {len(bundles)} bundles, {len(runs)} runs, {seconds / 3600:.1f} h of training in all (the sum "
           f"of every epoch's wall time; one thread per run, two runs at a time).", "", *HEADLINE_TABLE]
    finished = runs.loc[runs["status"].isin(FINISHED), ["key", "experiment", "variant", "epochs", "status"]]
    for (exp, variant, epochs, epoch), g in tests.merge(finished, on="key").groupby(
            ["experiment", "variant", "epochs", "epoch"]):
        scored = g.loc[g["name"] == TEST_METRIC[exp]]
        s = stats.summarize(scored["value"].to_numpy())
        lost = _diverged_unscored(finished[finished["epochs"] == epochs], variant, scored["key"])
        n_cell = f"{s['n']} (+{lost} diverged)" if lost else f"{s['n']}"
        f1 = g.loc[g["name"] == "f1", "value"].to_numpy()
        f1_cell = "–" if not len(f1) else "{mean:.4f} ± {sd:.4f}".format(**stats.summarize(f1))
        out.append(f"| {variant} | {epochs} | {epoch} | {n_cell} | {s['mean']:.4f} ± {s['sd']:.4f} | {f1_cell} |")
    return out


def _diverged_unscored(runs: pd.DataFrame, variant: str, scored_keys: pd.Series) -> int:
    """How many of `variant`'s runs diverged without a score among `scored_keys`: shown beside n, never lost."""
    mine = runs[(runs["variant"] == variant) & (runs["status"] == "diverged")]
    return int((~mine["key"].isin(scored_keys)).sum())


def summary(folder: str = "cached_runs") -> list[str]:
    return summary_of(*read_bundle_dir(folder))


def summary_of(bundles: list, errors: list) -> list[str]:
    """The per-bundle part: provenance, compute and the test score of each variant, bundle by bundle."""
    out: list[str] = []
    emit = out.append
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
            lost = _diverged_unscored(runs, variant, g["key"])
            more = f", +{lost} diverged before it" if lost else ""
            emit(f"| {variant} | {epoch} | {s['mean']:.4f} ± {s['sd']:.4f} ({s['n']}{more}) |")
        emit("")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
