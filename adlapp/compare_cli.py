"""`python -m adlapp compare`: the Compare page's numbers, headless.

It reads the store and cached_runs/ the way the app's Compare page does (the store first: it wins on a run
key), builds one `compare.Selection` (a course preset, or variants x epochs x metric), and runs the same
`compare.analyse`, so that families, tests and adjusted p-values are those of the Compare page and of the
Home reading for the same selection. `--json` prints

    {"selection": {...}, "families": [{"name", "correction", "size", "pairs": [{"a", "b", "at_a", "at_b", "test",
     "n_a", "n_b", "diff", "ci_low", "ci_high", "p", "p_adj", "significant", ...}]}],
     "groups": [{"variant", "at", "n", "values", "seeds", "flags": {seed: reason}, ...}],
     "baselines": {name: value}, "data": "...", "gaps": [...]}

with Δ = a − b, 95 % CIs, `test` "welch" or "paired-t", NaN written as null. Without `--json`, a readable table.
This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from adlapp import compare as cmp
from adlapp import datacards, library, stats
from adlapp.config import EXPERIMENTS, VARIANTS, display_name
from adlapp.metrics import compare_metrics, metric
from adlapp.store import RunStore, RunTables

__all__ = ["add_parser", "run", "comparison_record"]


class CompareError(Exception):
    """A selection the data cannot answer; one line for the user."""


def add_parser(sub, summary: str) -> None:
    c = sub.add_parser("compare", help=summary,
                       description="Welch's or the paired t-test per pair, corrected within each family, "
                                   "exactly as the Compare page and the Home reading compute them.")
    c.add_argument("--experiment", choices=EXPERIMENTS, required=True)
    c.add_argument("--preset", help="a course preset by name (as on the Compare page); other options narrow it")
    c.add_argument("--metric", help="what to compare, e.g. test_acc, test_pixel_acc, test_f1, test_loss, val_acc "
                                    "(the names of `runs --json`, with their split); default: the preset's")
    c.add_argument("--at", help="evaluation epochs, comma-separated (e.g. 200,1000); default: the preset's")
    c.add_argument("--variants", nargs="+", metavar="VARIANT",
                   help="variant keys (cnn/adam) or display names (Adam); default: the preset's")
    c.add_argument("--store", help="the run store folder (default: $ADLAPP_STORE or runs/)")
    c.add_argument("--no-cached", action="store_true", help="leave out the bundles in cached_runs/")
    c.add_argument("--exclude-flagged", action="store_true",
                   help="leave out runs that collapsed or exploded (adlapp.health); counted in the output")
    c.add_argument("--pair-seeds", action="store_true",
                   help="pair different variants by seed (same initial weights and batch order): paired t-test")
    c.add_argument("--cross", action="store_true", help="also compare different variants at different epochs")
    c.add_argument("--correction", choices=stats.CORRECTIONS, default="holm")
    c.add_argument("--json", action="store_true", help="one JSON object (see the module docstring)")


def _tables(args: argparse.Namespace) -> RunTables:
    if args.store is not None and not Path(args.store).is_dir():
        raise CompareError(f"--store {args.store}: no such folder")
    folder = Path(args.store) if args.store is not None else library.store_dir()
    parts = [RunStore(folder).tables()] if folder.is_dir() else []      # reading creates no store
    if not args.no_cached:
        parts.append(library.load_cached(library.cached_runs_dir()).tables)
    return RunTables.concat(parts)


def _variant(text: str, experiment: str) -> str:
    by_name = {display_name(v).lower(): v for v in VARIANTS if v.startswith(experiment + "/")}
    if text in VARIANTS or "/" in text:
        return text
    if text.lower() in by_name:
        return by_name[text.lower()]
    raise CompareError(f"--variants {text!r}: not a {experiment} variant; known: "
                       + ", ".join(f"{v} ({display_name(v)})" for v in VARIANTS if v.startswith(experiment + "/")))


def selection(args: argparse.Namespace, opts: dict) -> cmp.Selection:
    """The selection the arguments ask for, checked against what the runs offer."""
    if args.experiment not in opts:
        raise CompareError(f"no finished {args.experiment} runs to compare (store"
                           f"{'' if args.no_cached else ' and cached_runs/'})")
    if args.preset is not None and args.preset not in cmp.PRESETS:
        raise CompareError(f"--preset {args.preset!r}: unknown; presets are " + "; ".join(cmp.PRESETS))
    if args.preset is not None and cmp.PRESETS[args.preset].selection.experiment != args.experiment:
        raise CompareError(f"--preset {args.preset!r} is a {cmp.PRESETS[args.preset].selection.experiment} preset")
    _, sel = cmp.resolve(args.preset or cmp.CUSTOM, opts, args.experiment)
    avail = opts[args.experiment]
    if args.metric is not None:
        keys = [m.key for m in compare_metrics(args.experiment)]
        if args.metric not in keys:
            raise CompareError(f"--metric {args.metric!r}: not compared for {args.experiment}; choose from "
                               + ", ".join(keys))
        sel = replace(sel, metric=args.metric)
    if args.at is not None:
        try:
            at = tuple(dict.fromkeys(int(x) for x in args.at.split(",") if x.strip()))
        except ValueError:
            raise CompareError(f"--at {args.at!r}: give epochs as whole numbers, e.g. 200,1000") from None
        missing = [e for e in at if e not in avail["epochs"] and metric(sel.metric).source == "test"]
        if not at or missing:
            raise CompareError(f"--at {args.at!r}: the runs are scored at epochs "
                               + ", ".join(map(str, avail["epochs"])))
        sel = replace(sel, epochs=at)
    if args.variants:
        variants = tuple(dict.fromkeys(_variant(v, args.experiment) for v in args.variants))
        unknown = [v for v in variants if v not in avail["variants"]]
        if unknown:
            raise CompareError(f"--variants {unknown[0]}: no finished runs; the runs have "
                               + ", ".join(avail["variants"]))
        sel = replace(sel, variants=variants, pairs=tuple(p for p in sel.pairs if set(p) <= set(variants)))
    return replace(sel, exclude_flagged=args.exclude_flagged, pair_seeds=args.pair_seeds, cross=args.cross)


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def comparison_record(res: cmp.Comparison, sel: cmp.Selection) -> dict:
    """The JSON object of one analysis (see the module docstring)."""
    by_label = {g.label: g for g in res.groups}
    families: dict[str, dict] = {}
    for r in res.pairs.to_dict("records"):
        a, b = by_label[r["a"]], by_label[r["b"]]
        fam = families.setdefault(r["family"], {"name": r["family"], "correction": res.correction, "size": 0,
                                                "pairs": []})
        fam["size"] = max(fam["size"], int(r["family_size"]))
        fam["pairs"].append({
            "a": a.variant, "b": b.variant, "a_label": a.label, "b_label": b.label, "at_a": a.epoch, "at_b": b.epoch,
            "test": r["test"], "paired_by": r["paired_by"] or None, "tested": bool(r["tested"]),
            "n_a": int(r["n_a"]), "n_b": int(r["n_b"]), "n_pairs": int(r["n_pairs"]) or None,
            "mean_a": _num(r["mean_a"]), "mean_b": _num(r["mean_b"]), "diff": _num(r["diff"]),
            "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]),
            "ci_adj_low": _num(r["ci_adj_low"]), "ci_adj_high": _num(r["ci_adj_high"]),
            "p": _num(r["p"]), "p_adj": _num(r["p_adjusted"]), "significant": bool(r["significant"]),
            "rank_p": _num(r["wilcoxon_p"] if r["test"] == "paired-t" else r["mwu_p"]),
            "hedges_g": _num(r["hedges_g"]), "course_z": _num(r["z_seed"]), "note": r["note"] or None})
    groups = [{"variant": g.variant, "series": g.training, "label": g.label, "at": g.epoch, "n": g.n,
               "values": [_num(x) for x in g.values], "seeds": [int(s) for s in g.seeds],
               "mean": _num(np.nanmean(g.values)) if g.n else None,
               "sd": _num(np.nanstd(g.values, ddof=1)) if g.n > 1 else None,
               "flags": {str(s): h.reason for s, h in g.flags}, "n_flagged_out": g.n_flagged_out,
               "n_pending": g.n_pending} for g in res.groups]
    card = datacards.load(sel.experiment)
    m = metric(sel.metric)
    baselines = cmp.baselines(sel.experiment, m.key)
    return {"selection": {"experiment": sel.experiment, "variants": list(sel.variants), "at": list(sel.epochs),
                          "metric": sel.metric, "metric_label": m.label, "exclude_flagged": sel.exclude_flagged,
                          "pair_seeds": sel.pair_seeds, "cross": sel.cross, "pairs": [list(p) for p in sel.pairs]},
            "families": list(families.values()), "groups": groups,
            "baselines": {k: _num(v) for k, v in baselines.items()},
            "data": card.summary_line() if card is not None else None,
            "gaps": [{"label": g.label, "at": g.epoch, "lacking": g.lacking, "empty": g.empty, "pending": g.pending}
                     for g in res.gaps]}


def _table(rec: dict) -> str:
    sel = rec["selection"]
    lines = [f"{sel['experiment']}: {sel['metric_label']} ({sel['metric']}), Δ = a − b, 95 % CI, "
             f"{rec['families'][0]['correction'] if rec['families'] else 'holm'} within each family"]
    if rec["data"]:
        lines.append(rec["data"])
    lines.append("")
    lines.append(f"{'group':34} {'n':>3} {'mean':>9} {'sd':>9}  flags")
    for g in rec["groups"]:
        flags = ", ".join(f"seed {s} {r}" for s, r in g["flags"].items())
        lines.append(f"{g['label']:34} {g['n']:>3} {_fmt(g['mean']):>9} {_fmt(g['sd']):>9}  {flags}")
    for fam in rec["families"]:
        lines.append("")
        lines.append(f"family {fam['name']} ({fam['size']} tested pair(s), {fam['correction']})")
        for p in fam["pairs"]:
            lines.append(f"  {p['a_label']} vs {p['b_label']}: Δ {_fmt(p['diff'], sign=True)} "
                         f"[{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}], {p['test']} p {_fmt(p['p'])}, "
                         f"adjusted p {_fmt(p['p_adj'])}"
                         f"{' significant' if p['significant'] else '' if p['tested'] else ' (not tested: n < 3)'}")
    if rec["baselines"]:
        lines.append("")
        lines.append("baselines: " + ", ".join(f"{k} {_fmt(v)}" for k, v in rec["baselines"].items()))
    return "\n".join(lines)


def _fmt(x, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.4g}" if sign else f"{x:.4g}"


def run(args: argparse.Namespace) -> int:
    tables = _tables(args)
    opts = cmp.options(tables)
    sel = selection(args, opts)
    res = cmp.analyse(tables, sel, args.correction)
    rec = comparison_record(res, sel)
    if args.json:
        json.dump(rec, sys.stdout, indent=1, allow_nan=False)
        print()
    else:
        print(_table(rec))
    return 0
