"""A self-contained study report for a student's own write-up, and `python -m adlapp report`.

`write_report(out_dir, tables)` writes

    out_dir/index.html          the figures, test tables, the U-Net course table, the Compare page's table for
                                each course preset, the Home page's reading, and where it all came from
    out_dir/figures/*.png|svg|pdf   Figure 1 (CNN) and Figure 2 (U-Net) with title, caption and source baked in
    out_dir/tables/*.csv|md|tex     numeric tables (mean and sd as separate numbers) and the course table
    out_dir/provenance.json     the provenance section, machine-readable

Every number comes from the same adlapp calls the pages make (charts.figure_chart, report.test_table,
report.course_table, report.pair_table over compare.analyse of each course preset, report.course_reading of
compare.course_study plus the overfitting and spread lines), so the report says what Home and Compare say.
This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import argparse
import html
import io
import json
import re
import shlex
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

from adlapp import charts, exports, library, questions, report
from adlapp import compare as cmp
from adlapp.bundle import read_bundle_dir
from adlapp.config import EXPERIMENT_INFO, EXPERIMENTS, VARIANTS, display_name
from adlapp.metrics import by_row, figure_metrics, label, metric, test_metrics
from adlapp.provenance import git_commit, library_versions
from adlapp.store import RunStore, RunTables

__all__ = ["FIGURES", "ReportError", "Source", "Provenance", "read_sources", "source_line", "figure",
           "figure_caption", "reading", "markdown_inline", "write_report", "report_zip", "add_parser", "run"]

# file stem and title per experiment: the Home page's figure titles
FIGURES = {"cnn": ("figure-1-cnn", "Figure 1 reborn: CNN variants"),
           "unet": ("figure-2-unet", "Figure 2 reborn: U-Net variants")}


class ReportError(ValueError):
    """Nothing to report for the arguments given; one line for the user."""


@dataclass(frozen=True)
class Source:
    """Where runs were read from ("cached_runs/cnn-adam.zip", "run store /home/me/runs") and which run keys
    the report takes from it (a key in two sources counts for the first, as `RunTables.concat` keeps it)."""
    name: str
    keys: frozenset[str]


@dataclass(frozen=True)
class Provenance:
    sources: tuple[Source, ...] = ()
    command: str | None = None            # how the report was made, e.g. "python -m adlapp report --out r"
    skipped: tuple[str, ...] = field(default=())    # unreadable bundles, one line each


def read_sources(store: str | Path | None = None, cached: str | Path | None = None) -> tuple[RunTables, Provenance]:
    """The runs of the store folder (if it exists; reading creates no store) and of every bundle in `cached`
    (a cached_runs/ folder), the store first: it wins on a run key, as in `python -m adlapp compare`; among
    bundles the newest wins (`library.newest_first`), as in the app."""
    parts: list[tuple[str, RunTables]] = []
    skipped: list[str] = []
    if store is not None and Path(store).is_dir():
        parts.append((f"run store {store}", RunStore(store).tables()))
    if cached is not None and Path(cached).is_dir():
        loaded, skipped = read_bundle_dir(cached)
        loaded = library.newest_first(loaded)
        parts += [(f"{Path(cached).name}/{b.path.name}", b.tables) for b in loaded]
    seen: set[str] = set()
    sources = []
    for name, part in parts:
        mine = frozenset(part.runs["key"]) - seen
        seen |= mine
        if mine:
            sources.append(Source(name, mine))
    return RunTables.concat([p for _, p in parts]), Provenance(tuple(sources), skipped=tuple(skipped))


def _part(tables: RunTables, experiment: str) -> RunTables:
    return tables.select(set(tables.runs.loc[tables.runs["experiment"] == experiment, "key"]))


def source_line(tables: RunTables, experiment: str, provenance: Provenance | None = None) -> str:
    """"cached_runs/cnn-adam.zip, 5 runs, n = 5 seeds per variant": where the experiment's runs are from."""
    runs = cmp.runs_frame(tables, experiment)
    keys = set(runs["key"])
    where = [f"{s.name}, {report.plural(len(keys & s.keys), 'run')}"
             for s in (provenance.sources if provenance else ()) if keys & s.keys]
    seeds = runs.groupby("series")["seed"].nunique()
    lo, hi = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    n = f"n = {lo} seeds per variant" if lo == hi else f"n = {lo}–{hi} seeds per variant"
    return "; ".join(where or [report.plural(len(keys), "run")]) + f", {n}"


def figure(tables: RunTables, experiment: str, log_x: bool = True):
    """The Home page's course figure of `experiment` (health flags, chance/majority baselines), or None.
    `tables` as given: pass `compare.course_tables(...)` for the report's own study, as Home does."""
    part = _part(tables, experiment)
    if part.runs.empty:
        return None
    flags = cmp.run_health(part, cmp.runs_frame(part, experiment))
    base = cmp.baselines(experiment, figure_metrics(experiment)[1])
    return charts.figure_chart(part, experiment, log_x=log_x, baselines=report.baseline_labels(base), flags=flags)


def figure_caption(experiment: str) -> str:
    """What the figure shows, in the words of the Home page's caption."""
    score = figure_metrics(experiment)[1]
    base = cmp.baselines(experiment, score)
    text = (f"Per variant a column: mean over seeds (line) inside the min/max band of the seeds; rows "
            f"{label('epoch', figure_metrics(experiment)[0])} and {label('epoch', score)}. Column heads: final test "
            f"metrics as mean ± sd (ddof=1) with n seeds. Diamonds: {charts.figure_marker(experiment).label} after "
            "each epoch the test split was scored at, mean ± sd (error bar).")
    if base:
        text += (" Dashed: " + "; ".join(f"{k} {report.number(v, 3)}" for k, v in base.items())
                 + " (a model that learned nothing). Red crosses: runs that collapsed or exploded (kept in the means).")
    return text + " " + report.data_line(experiment)


def reading(tables: RunTables, findings: Sequence[cmp.Finding] | None = None) -> list[str]:
    """The Home page's reading ("What the numbers say"), line by line, in Markdown: the same calls.
    `findings`: `compare.course_study(tables)` when the caller has it already."""
    lines = report.course_reading(cmp.course_study(tables) if findings is None else findings)
    opts = cmp.options(tables)
    lines += [line for exp in opts if (line := report.overfitting_line(cmp.overfitting(tables, exp), exp))]
    if "unet" in opts:
        spread = cmp.seed_spread(tables, "unet", opts["unet"]["variants"], "test_pixel_acc")
        if (said := report.spread_lines(spread)):
            lines.append("**Spread across seeds by budget** (U-Net test pixel accuracy; the report's last "
                         "question): " + " ".join(said))
    return lines


# -- HTML -----------------------------------------------------------------------------------------------------
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])")


def markdown_inline(text: str) -> str:
    """**bold**, *italic* and `code` as HTML; everything else escaped."""
    out = []
    for i, piece in enumerate(_CODE.split(text)):      # odd pieces are code spans
        esc = html.escape(piece)
        out.append(f"<code>{esc}</code>" if i % 2 else _ITALIC.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>",
                                                                                        esc)))
    return "".join(out)


def _html_table(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_html(index=index, border=0, classes="t", na_rep="–", escape=True,
                      float_format=lambda x: f"{x:.4g}")


_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
img{max-width:100%;height:auto;border:1px solid #eee}.t{border-collapse:collapse;font-size:.85em;margin:.5em 0 1em}
.t th,.t td{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
.t th{background:#f6f6f6}.cap{color:#555;font-size:.9em}.scroll{overflow-x:auto}code{background:#f3f3f3;
padding:0 .2em}"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# -- the report -----------------------------------------------------------------------------------------------
def _restrict(tables: RunTables, experiments: Sequence[str] | None, variants: Sequence[str] | None) -> RunTables:
    runs = tables.runs
    if experiments:
        runs = runs[runs["experiment"].isin(list(experiments))]
    if variants:
        runs = runs[runs["variant"].isin(list(variants))]
    if runs.empty:
        what = (f" of experiment(s) {', '.join(experiments)}" if experiments else "") + (
            f" of variant(s) {', '.join(variants)}" if variants else "")
        raise ReportError(f"no runs{what} to report; the runs have "
                          + (", ".join(sorted(set(tables.runs["variant"]))) or "nothing"))
    return tables.select(set(runs["key"]))


def _pairs_csv(pairs: pd.DataFrame, preset: str, metric: str) -> pd.DataFrame:
    out = pairs.copy()
    out.insert(0, "metric", metric)
    out.insert(0, "preset", preset)
    return out


def write_report(out_dir: str | Path, tables: RunTables, experiments: Sequence[str] | None = None,
                 variants: Sequence[str] | None = None, provenance: Provenance | None = None,
                 log_x: bool = True) -> Path:
    """Write the study report of `tables` (only `experiments` / `variants`, registry keys like "cnn/adam", when
    given) into `out_dir` (created; files of an earlier report there are replaced). Returns out_dir/index.html.
    Raises ReportError when no run is left to report."""
    out = Path(out_dir)
    tables = _restrict(tables, experiments, variants)
    provenance = provenance or Provenance()
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    everything = tables
    # The course figures, tables, presets and reading show the report's own study (its variants, one run per
    # seed); runs that answer its open questions get their own section. Variants asked for by name are shown.
    tables = tables if variants else cmp.course_tables(tables)
    exps = [e for e in EXPERIMENTS if (tables.runs["experiment"] == e).any()]
    body: list[str] = []

    body.append("<h2>Figures</h2>")
    for exp in exps:
        stem, title = FIGURES.get(exp, (f"figure-{exp}", f"{EXPERIMENT_INFO[exp].title} variants"))
        chart = figure(tables, exp, log_x)
        if chart is None:
            continue
        caption, source = figure_caption(exp), source_line(tables, exp, provenance)
        for fmt, data in exports.render(chart, title, caption, source).items():
            (out / "figures" / f"{stem}.{fmt}").write_bytes(data)
        body.append(f"<h3>{html.escape(title)}</h3><p><img src=\"figures/{stem}.png\" alt=\"{html.escape(title)}\">"
                    f"</p><p class=\"cap\">Download: <a href=\"figures/{stem}.png\">PNG</a> · "
                    f"<a href=\"figures/{stem}.svg\">SVG</a> · <a href=\"figures/{stem}.pdf\">PDF</a> (title, "
                    "caption and source are part of the image).</p>")

    numeric = exports.test_summary_table(tables)
    _write_table(out, "test_summary", numeric)
    body.append("<h2>Test scores</h2><p class=\"cap\">Per variant and test epoch: mean ± sd (ddof=1) over n seeds, "
                "every seed's value, and the trivial predictors (baselines). ★ best mean in its column. Numbers: "
                "<a href=\"tables/test_summary.csv\">test_summary.csv</a> (n, mean, sd, min, max per series, epoch "
                "and metric; also <a href=\"tables/test_summary.md\">.md</a>, "
                "<a href=\"tables/test_summary.tex\">.tex</a>).</p>")
    for exp in exps:
        part = _part(tables, exp)
        summary = cmp.test_summary(part, test_metrics(exp))
        baselines = {m: cmp.baselines(exp, by_row("test", m).key) for m in test_metrics(exp)}
        table = report.test_table(summary, exp, baselines, cmp.series_health(part, exp))
        if len(table):
            body.append(f"<h3>{html.escape(EXPERIMENT_INFO[exp].title)}</h3><div class=\"scroll\">"
                        f"{_html_table(table)}</div>")
        if exp == "unet" and len(course := report.course_table(summary)):
            _write_table(out, "unet_course_table", course, csv=False)
            body.append("<h3>U-Net test pixel accuracy and F1 by epoch budget (the report's table)</h3>"
                        f"<div class=\"scroll\">{_html_table(course, index=True)}</div>"
                        f"<p class=\"cap\">{markdown_inline(report.COURSE_TABLE_CAPTION)} Also as "
                        "<a href=\"tables/unet_course_table.md\">.md</a> and "
                        "<a href=\"tables/unet_course_table.tex\">.tex</a>.</p>")

    body.append("<h2>Significance tests: the course presets</h2>"
                f"<p class=\"cap\">{markdown_inline(report.METHOD_CAPTION)}</p>")
    opts = cmp.options(tables)
    findings = cmp.course_study(tables)
    analysed = {f.preset: f.comparison for f in findings}     # the same resolve + analyse: not done twice
    for name, preset in cmp.PRESETS.items():
        if preset.selection.experiment not in opts:
            continue
        _, sel = cmp.resolve(name, opts)
        res = analysed[name] if name in analysed else cmp.analyse(tables, sel)
        body.append(f"<h3>{html.escape(name)}</h3><p class=\"cap\">{html.escape(metric(sel.metric).label)}, "
                    f"after epoch(s) {', '.join(map(str, sel.epochs))}; variants "
                    f"{html.escape(', '.join(display_name(v) for v in sel.variants))}.</p>")
        if res.pairs.empty:
            body.append("<p>No pair to compare here.</p>")
            continue
        stem = f"compare_{_slug(name)}"
        _write_table(out, stem, _pairs_csv(res.pairs, name, sel.metric), markdown=False, latex=False)
        body.append(f"<div class=\"scroll\">{_html_table(report.pair_table(res.pairs, res.correction))}</div>"
                    f"<p class=\"cap\">Numbers: <a href=\"tables/{stem}.csv\">{stem}.csv</a>.</p>")

    lines = reading(tables, findings) or ["No finished runs to compare yet."]
    body.append("<h2>What the numbers say</h2><ul>"
                + "".join(f"<li>{markdown_inline(line)}</li>" for line in lines) + "</ul>")

    if not variants:
        body += _questions_html(out, everything)

    prov = _provenance(everything, exps, provenance)
    (out / "provenance.json").write_text(json.dumps(prov, indent=1), "utf-8")
    body.append(_provenance_html(prov))

    index = out / "index.html"
    index.write_text("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Study report</title>"
                     f"<style>{_CSS}</style></head><body><h1>Study report: deep-learning variants, several seeds"
                     f"</h1><p class=\"cap\">Generated {html.escape(prov['generated'])} by adlapp from "
                     f"{report.plural(len(tables.runs), 'run')}. {markdown_inline(report.PLAIN_INTRO)}</p>"
                     + "\n".join(body) + "</body></html>\n", "utf-8")
    return index


def _questions_html(out: Path, tables: RunTables) -> list[str]:
    """The report's open questions, each answered from `tables` (adlapp.questions), its numbers as CSV."""
    parts = ["<h2>The report's open questions</h2><p class=\"cap\">Each answered from these runs with the "
             "Compare page's statistics (Holm within each question's pairs); the Compare page also queues the "
             "runs a question still lacks.</p>"]
    for ans in questions.answers(tables):
        q = ans.question
        parts.append(f"<h3>{html.escape(q.title)}</h3><p class=\"cap\">{html.escape(q.quote)}</p>"
                     f"<p><strong>{markdown_inline(ans.headline)}</strong></p>")
        if ans.lines:
            parts.append("<ul>" + "".join(f"<li>{markdown_inline(line)}</li>" for line in ans.lines) + "</ul>")
        if not ans.table.empty:
            stem = f"question_{q.id}"
            _write_table(out, stem, ans.table, markdown=False, latex=False)
            parts.append(f"<p class=\"cap\">Numbers: <a href=\"tables/{stem}.csv\">{stem}.csv</a>.</p>")
        if ans.missing:
            parts.append(f"<p class=\"cap\">Not in these runs yet: {html.escape('; '.join(ans.missing))}.</p>")
    return parts


def _write_table(out: Path, stem: str, df: pd.DataFrame, csv: bool = True, markdown: bool = True,
                 latex: bool = True) -> None:
    if csv:
        (out / "tables" / f"{stem}.csv").write_text(exports.table_csv(df), "utf-8")
    if markdown:
        (out / "tables" / f"{stem}.md").write_text(exports.table_markdown(df), "utf-8")
    if latex:
        (out / "tables" / f"{stem}.tex").write_text(exports.table_latex(df), "utf-8")


def _texts(values) -> list[str]:
    return sorted({str(v) for v in values if isinstance(v, str) and v})


def _provenance(tables: RunTables, exps: Sequence[str], provenance: Provenance) -> dict:
    runs = tables.runs
    per_exp = {}
    for exp in exps:
        mine = runs[runs["experiment"] == exp]
        per_exp[exp] = {
            "runs": len(mine), "variants": sorted(set(mine["variant"]), key=cmp.variant_rank),
            "seeds": sorted(int(s) for s in set(mine["seed"])),
            "devices": _texts(mine["device"]), "trained_at_commits": _texts(mine["git_commit"]),
            "statuses": {str(k): int(v) for k, v in mine["status"].value_counts().items()},
            "data": report.data_line(exp)}
    return {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": provenance.command, "code_commit": git_commit(), "versions": library_versions(),
            "sources": [{"name": s.name, "runs": len(s.keys & set(runs["key"]))} for s in provenance.sources],
            "skipped": list(provenance.skipped), "experiments": per_exp}


def _provenance_html(prov: dict) -> str:
    items = [f"Made by adlapp at git commit <code>{html.escape(prov['code_commit'] or 'unknown (not a checkout)')}"
             "</code>" + (f" with <code>{html.escape(prov['command'])}</code>" if prov["command"] else "") + ".",
             "Libraries where this report was made: "
             + html.escape(", ".join(f"{k} {v}" for k, v in prov["versions"].items())) + "."]
    items += [f"{html.escape(s['name'])}: {report.plural(s['runs'], 'run')}." for s in prov["sources"]]
    items += [f"Skipped (unreadable): {html.escape(s)}" for s in prov["skipped"]]
    for exp, e in prov["experiments"].items():
        items.append(f"<strong>{html.escape(EXPERIMENT_INFO[exp].title)}</strong>: {report.plural(e['runs'], 'run')} "
                     f"of {html.escape(', '.join(display_name(v) for v in e['variants']))}; seeds "
                     f"{html.escape(report.seed_ranges(e['seeds']))}; device(s) "
                     f"{html.escape(', '.join(e['devices']) or 'not recorded')}; trained at commit(s) "
                     f"{html.escape(', '.join(c[:12] for c in e['trained_at_commits']) or 'not recorded')}; "
                     + html.escape(", ".join(f"{n} {s}" for s, n in e["statuses"].items())) + ". "
                     + html.escape(e["data"]))
    return ("<h2>Provenance</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
            "<p class=\"cap\">Also in <a href=\"provenance.json\">provenance.json</a>.</p>")


def report_zip(tables: RunTables, provenance: Provenance | None = None, folder: str = "study-report",
               **kwargs) -> bytes:
    """The report (`write_report`'s arguments) as a zip, in memory, its files under `folder/`."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / folder
        write_report(root, tables, provenance=provenance, **kwargs)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(tmp).as_posix())
    return buf.getvalue()


# -- python -m adlapp report ------------------------------------------------------------------------------------
def add_parser(sub, summary: str) -> None:
    r = sub.add_parser("report", help=summary,
                       description="Figures (PNG, SVG, PDF) with title, caption and source, the test tables, "
                                   "the course presets' significance tests, the Home page's reading and the "
                                   "provenance, from the store and cached_runs/, into one folder.")
    r.add_argument("--out", required=True, help="folder to write (created; an earlier report's files are replaced)")
    r.add_argument("--experiment", nargs="+", choices=EXPERIMENTS, help="only these experiments (default: all)")
    r.add_argument("--variants", nargs="+", metavar="VARIANT",
                   help="only these variants: keys (cnn/adam), short keys (adam) or display names (Adam)")
    r.add_argument("--store", help="the run store folder (default: $ADLAPP_STORE or runs/)")
    r.add_argument("--no-cached", action="store_true", help="leave out the bundles in cached_runs/")
    r.add_argument("--linear-x", action="store_true", help="linear epoch axis in the figures (default: log)")


def _variant(text: str) -> str:
    """A variant key as the runs store it: "cnn/adam" (or any "experiment/name"), "adam" or "Adam"."""
    if text in VARIANTS or "/" in text:
        return text
    names = {**{v.split("/", 1)[-1]: v for v in VARIANTS}, **{display_name(v).lower(): v for v in VARIANTS}}
    found = names.get(text) or names.get(text.lower())
    if found is None:
        raise ReportError(f"--variants {text!r}: unknown; known: "
                          + ", ".join(f"{v} ({display_name(v)})" for v in VARIANTS))
    return found


def _command(args: argparse.Namespace) -> str:
    words = ["python", "-m", "adlapp", "report", "--out", str(args.out)]
    words += ["--experiment", *args.experiment] if args.experiment else []
    words += ["--variants", *args.variants] if args.variants else []
    words += ["--store", str(args.store)] if args.store is not None else []
    words += [flag for flag, on in (("--no-cached", args.no_cached), ("--linear-x", args.linear_x)) if on]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.store is not None and not Path(args.store).is_dir():
        raise ReportError(f"--store {args.store}: no such folder")
    variants = [_variant(v) for v in args.variants] if args.variants else None
    tables, prov = read_sources(args.store if args.store is not None else library.store_dir(),
                                None if args.no_cached else library.cached_runs_dir())
    for line in prov.skipped:
        print(f"skipped an unreadable bundle: {line}", file=sys.stderr)
    prov = Provenance(prov.sources, _command(args), prov.skipped)
    if tables.runs.empty:
        raise ReportError("no runs to report: the store and cached_runs/ hold none"
                          if not args.no_cached else "no runs to report in the store (--no-cached)")
    index = write_report(args.out, tables, args.experiment, variants, prov, log_x=not args.linear_x)
    files = [p for p in index.parent.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {index} ({len(files)} files, {size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
    return 0
