"""Streamlit pieces shared by the pages: the cached store, backend and bundles, chart options, the live view.

Everything here reads widgets, calls one adlapp function (planning, live, library, charts, report) or the
backend, and renders; UI copy and widget keys live here and in the pages. No torch: training is launched
through the backend (adlapp.jobs), which starts separate OS processes.
"""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from adlapp import charts, compare, datacards, estimate, exports, library, live, metrics, planning, report
from adlapp.config import COURSE_VARIANTS, PRECISIONS, display_name
from adlapp.devices import training_device
from adlapp.jobs import Backend, LocalProcessBackend, default_concurrency
from adlapp.ray_backend import INSTALL_HINT, RayBackend, ray_available
from adlapp.store import ACTIVE, ERROR_STATUSES, RunStore, RunTables


def _leave_legacy_pages_mode() -> None:
    """Make a page URL opened first on a fresh server (e.g. /cnn) run through app.py, as every later visit does.

    Streamlit treats a `pages/` folder next to the entry script as its legacy multipage mode until some
    session calls `st.navigation` ("As soon as any session of your app executes the st.navigation command,
    your app will ignore the pages/ directory (across all sessions)", st.navigation's documentation). Until
    then a page URL runs the page file alone: no app.py, so no sidebar and no navigation, and every file in
    pages/ (this one included) is listed as a page. The folder's name is fixed by the product, and Streamlit
    1.67 has no supported switch for this: `[client] showSidebarNavigation` only hides the legacy menu,
    and Streamlit's own advice is to name the folder differently. So, once per process, on the first import
    from a page run in legacy mode, this sets the one class attribute `st.navigation` itself sets to leave
    that mode, and reruns: the rerun runs app.py, whose `st.navigation` opens the requested page (same URL
    path, same page hash). If a future Streamlit drops the attribute, nothing is changed here and the first
    page URL shows the page alone until app.py has run once. Covered by tests/test_browser.py
    (`test_train_from_the_ui_watch_live_reload_mid_run` opens /cnn first on a fresh server); see also
    docs/streamlit.md.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:      # a Streamlit without this internal: nothing to fix
        return
    if getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_pages_mode()     # runs once per process, on the first import (from a page or app.py)

# Choices survive page switches and a browser reload (kept in the URL).
KEEP = {"persist_state": "session", "bind": "query-params"}
# charts.curves_spec sizes, in pixels. Vega-Lite facets have no "container" width, so each metric is its own
# chart in its own st.columns column: three side by side in the ~820 px main column of a 1280 px screen, one
# under the other where Streamlit stacks columns (screens under 640 px, e.g. a 400 px phone).
CURVES_SIZE = {"columns": 1, "width": 190, "height": 170}
POLL_S = 1.0          # live view refresh: one cheap incremental query per tick, so ≤ ~1-2 s behind
BANDS = {"min/max over seeds": "minmax", "mean ± 1 sd (ddof=1)": "sd", "no band": "none"}
WHERE = report.PLACE_WORDS                        # planning.PLACES, in the page's words
SMOOTH_HELP = ("TensorBoard's smoothing: an exponential moving average of the mean over seeds (and of each seed), "
               "debiased so the start is not pulled towards 0. 0 is off; the raw mean stays drawn, faint. Hover a "
               "point for the raw and the smoothed value. Drag or scroll a panel to pan or zoom the epochs; "
               "double-click resets.")
DEFAULT_SEEDS = "3"   # the seed box's default when nothing is cached: seeds 0, 1, 2
SEEDS_LABEL = "seeds: how many (3 means seeds 0, 1, 2) or which ones (0,5,7 or 0-4)"
SEEDS_HELP = ("One number alone is a **count**: 3 trains seeds 0, 1 and 2 (so 1 is seed 0, and 0 is not "
              "allowed). A list (0,5,7) or a range (0-4) names the seeds themselves; one particular seed is "
              "written with a comma: 7, is seed 7. Each seed is one training run of every variant.")
PLAN_HELP = {"where": "done (trained here): finished on this computer, saved in the app's run store. "
                      "done (shipped with the app): finished runs that came with the app (cached_runs/). "
                      "to train: nothing usable yet; the Train button trains these, and only these.",
             "details": "Which run a row's numbers come from when it is not the run asked for, e.g. a longer "
                        "run of the same training that was also test-scored at the epochs asked for; and where "
                        "a run that stopped early continues from.",
             "key": "The run's id: a hash of its settings and seed."}


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RunStore:
    return RunStore(path)


def store() -> RunStore:
    return _store(str(library.store_dir()))


@st.cache_resource(show_spinner=False)
def concurrency_default() -> int:
    return default_concurrency()


@st.cache_resource(show_spinner=False)
def _backend(path: str, concurrency: int) -> LocalProcessBackend:
    return LocalProcessBackend(_store(path), concurrency=concurrency)


@st.cache_resource(show_spinner=False)
def _ray_backend(path: str, concurrency: int) -> RayBackend:
    return RayBackend(_store(path), concurrency=concurrency)


BACKENDS = ("local processes", "Ray")     # the sidebar's "where runs train"
RAY_HELP = ("Local processes: each run trains in a background process on this computer. Ray: one dispatcher "
            "process sends the runs to a Ray cluster (the one named by $RAY_ADDRESS when the app started, else a "
            "local Ray cluster on this computer) and writes every epoch into this app's run store. Your own data "
            "folders must be readable at the same path on every Ray node. See docs/scale.md.")


def backend_choice() -> None:
    """The sidebar's "where runs train" radio; says how to install Ray when it is chosen but missing."""
    st.radio("where runs train", BACKENDS, key="backend_kind", horizontal=True, help=RAY_HELP)
    if st.session_state.get("backend_kind") == "Ray" and not ray_available():
        st.warning(f"Ray is not installed here, so runs train in local processes. Install it with "
                   f"`{INSTALL_HINT}` and restart the app.")


def backend() -> Backend:
    """The one backend every page submits, cancels and watches runs through: the sidebar's choice of where
    runs train (local processes unless Ray is chosen and installed), at the sidebar's concurrency."""
    concurrency = int(st.session_state.get("concurrency") or concurrency_default())
    if st.session_state.get("backend_kind") == "Ray" and ray_available():
        return _ray_backend(str(library.store_dir()), concurrency)
    return _backend(str(library.store_dir()), concurrency)


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_runs(folder: str, signature: tuple) -> library.CachedRuns:
    """The bundles in `folder` as `signature` (library.folder_signature) says they are: read once per change,
    shared by every session."""
    return library.load_cached(folder)


def cached() -> library.CachedRuns:
    """The bundles in cached_runs/, re-read only when a file there changes; unreadable ones are named."""
    folder = library.cached_runs_dir()
    result = cached_runs(str(folder), library.folder_signature(folder))
    for err in result.errors:
        st.warning(f"Skipped an unreadable bundle in cached_runs/: {err}")
    return result


def chart_options(prefix: str) -> dict:
    """The curve options, keyed by the page prefix and kept in the URL. smoothing: TensorBoard's debiased EMA
    weight (charts.ema; 0 = off, the raw mean stays faint under the smoothed line); log_y: loss panels only."""
    c1, c2, c3 = st.columns(3)
    c4, c5, c6 = st.columns(3)
    return {"log_x": c1.checkbox("log-scale epochs", value=True, key=f"{prefix}_log_x", **KEEP),
            "band": BANDS[c2.selectbox("band", list(BANDS), key=f"{prefix}_band", **KEEP)],
            "seeds": c3.checkbox("show every seed", value=False, key=f"{prefix}_show_seeds", **KEEP),
            "complete_only": c4.checkbox("only epochs all seeds reached", value=False, key=f"{prefix}_complete",
                                         **KEEP),
            "smoothing": c5.slider("smoothing (EMA)", 0.0, 0.99, value=0.0, step=0.01, key=f"{prefix}_smooth",
                                   help=SMOOTH_HELP, **KEEP),
            "log_y": c6.checkbox("log-scale loss", value=False, key=f"{prefix}_log_y",
                                 help="A log y axis on the loss panels; the score panels stay linear.", **KEEP),
            "x_batches": c1.checkbox("x axis in batches", value=False, key=f"{prefix}_x_batches", help=BATCHES_HELP,
                                     **KEEP)}


BATCHES_HELP = ("Label the x axis in optimiser steps (batches) instead of epochs, as the course report's figure did "
                "(it noted its axis was \"off by a factor of 3\"). The title gives the conversion: one epoch is "
                "⌈training images / batch size⌉ batches. Only for runs that share one conversion.")


def batches_axis(tables: RunTables, experiment: str, wanted: bool) -> int | None:
    """Batches per epoch for an x axis in batches, when asked for and every run shares one; else None (and
    a caption saying why the axis stays in epochs)."""
    if not wanted:
        return None
    steps = compare.batches_per_epoch(tables, experiment)
    if steps is None:
        st.caption("The x axis stays in epochs: these runs differ in batches per epoch (data size or batch size), "
                   "or trained on a folder.")
    return steps


ENGINE_HELP = ("How the arithmetic is done. Channels-last stores images and weights pixel by pixel (NHWC): "
               "~1.5x faster U-Net steps on a CPU. bf16 autocast runs the forward pass in bfloat16 (weights, "
               "optimiser and loss stay fp32): ~2x faster on a CUDA GPU, slower on many CPUs. Both change the "
               "numbers, so these runs are new runs, labelled apart and never pooled with fp32 ones (the shipped "
               "study is fp32, contiguous).")


def engine_controls(prefix: str) -> dict:
    """The Advanced expander's engine options: Toggles fields, applied to every variant of the page."""
    channels_last = st.checkbox("channels-last memory format", value=False, key=f"{prefix}_channels_last",
                                help=ENGINE_HELP, **KEEP)
    precision = st.selectbox("precision", PRECISIONS, key=f"{prefix}_precision", help=ENGINE_HELP, **KEEP)
    return {"channels_last": channels_last, "precision": precision}


def default_seeds(experiment: str) -> str:
    """The seed box's default: the seeds the shipped study (cached_runs/) has for this experiment, so that a
    page opened untouched shows the same numbers as Home and Compare; "3" when nothing is shipped."""
    seeds = planning.study_seeds(experiment, cached().tables.runs)
    return planning.seeds_text(seeds) if seeds else DEFAULT_SEEDS


def seeds_input(experiment: str) -> str:
    """The seeds field, with a caption under it that says which seeds the text means."""
    text = st.text_input(SEEDS_LABEL, value=default_seeds(experiment), key=f"{experiment}_seeds",
                         help=SEEDS_HELP, **KEEP)
    seeds, problem = planning.parse_seeds(text)
    if not problem:
        shipped = [s for s in planning.study_seeds(experiment, cached().tables.runs) if s not in seeds]
        more = (f" — the shipped study also has seed(s) {report.seed_ranges(shipped)}; type "
                f"{planning.seeds_text(sorted(set(seeds) | set(shipped)))} to include them") if shipped else ""
        st.caption(report.seeds_echo(seeds) + more)
    return text


def variant_checkboxes(experiment: str) -> list[str]:
    """One checkbox per registry variant of the experiment, the course's ticked by default (the others answer
    the report's open questions, see the Compare page); the ticked names."""
    return [n for n in planning.registry_names(experiment)
            if st.checkbox(f"{display_name(n)} (`{n}`)" + ("" if n in COURSE_VARIANTS else " · open question"),
                           value=n in COURSE_VARIANTS, key=f"{experiment}_v_{n.split('/')[1]}", **KEEP)]


def launch_or_load(choice: planning.StudyChoice, extra=None) -> None:
    """The shared tail of the CNN and U-Net pages: validate, show what exists and what training the rest costs,
    train what is missing, watch. Everything below the choices is one fragment that polls the store while any
    planned run trains, so the plan, its summary and the Train button change with the runs, not only the
    progress bars and the chart."""
    prefix = choice.experiment
    requests, errors = planning.make_requests(choice)
    for e in errors:
        st.error(e)
    if errors:
        st.button("Train missing runs", key=f"{prefix}_train_btn", type="primary", disabled=True,
                  help="Fix the choices marked in red above first: nothing is trained from an invalid choice.")
        st.stop()
    cache = cached()
    first = make_plan(requests, cache)
    active = bool(first["where"].eq("training").any())
    queued = st.session_state.pop(f"{prefix}_queued_msg", None)
    if queued:
        st.success(queued)

    @st.fragment(run_every=POLL_S if active else None)
    def study() -> None:
        planned = first if st.session_state.get(f"{prefix}_fresh_plan") else make_plan(requests, cache)
        st.session_state[f"{prefix}_fresh_plan"] = False
        show_plan(planned)
        if train_controls(prefix, requests, planned, cache):
            st.rerun()            # the whole page, so that this fragment starts polling
        still = live_results(prefix, choice.experiment, planned, cache, extra=extra)
        if active and not still:
            st.rerun()            # everything finished: redraw the page once, which also stops the polling

    st.session_state[f"{prefix}_fresh_plan"] = True     # the first run of the fragment reuses `first`
    study()


def show_plan(planned: pd.DataFrame) -> None:
    st.caption(report.plan_summary(planned))
    view = pd.DataFrame({"variant": planned["variant"], "seed": planned["seed"], "epochs": planned["epochs"],
                         "where": planned["where"].map(WHERE), "status": planned["status"],
                         "details": [report.plan_detail(r) for r in planned.to_dict("records")],
                         "key": planned["key"]})
    config = {c: st.column_config.TextColumn(c, help=h) for c, h in PLAN_HELP.items()}
    st.dataframe(view, hide_index=True, height=min(38 + 35 * len(view), 300), column_config=config)


def make_plan(requests: list[planning.Request], cache: library.CachedRuns) -> pd.DataFrame:
    s = store()
    s.mark_stale()                 # a trainer that died must not look like it is still running
    return planning.plan(requests, s.runs(), cache.tables.runs,
                         has_checkpoint=lambda key: (s.checkpoint_dir(key) / planning.CHECKPOINT_FILE).is_file())


@st.cache_data(show_spinner=False, max_entries=8)
def _recorded_seconds(path: str, keys: tuple[str, ...]) -> pd.DataFrame:
    rows, _ = _store(path).epoch_metrics(list(keys))
    return rows[rows["name"] == "seconds"].reset_index(drop=True)


def training_cost(missing: list[planning.Request], cache: library.CachedRuns,
                  planned: pd.DataFrame | None = None,
                  done_epochs: dict[str, int] | None = None) -> tuple[estimate.Cost, str]:
    """What training `missing` costs on this machine, from the seconds per epoch recorded in the store and in
    cached_runs/ (runs in `planned` that resume, and runs in `done_epochs` (key -> epochs already trained),
    count only their remaining epochs); and the device label the trainer will record. Pair with
    report.cost_sentence(cost, device)."""
    device = estimate.device_label(training_device())
    runs = store().runs(status="done")
    secs = _recorded_seconds(str(library.store_dir()), tuple(sorted(runs["key"]))) if len(runs) else None
    tables = RunTables.concat([RunTables(runs, secs if secs is not None else RunTables.empty().epochs,
                                         RunTables.empty().tests), cache.tables])
    cost = estimate.training_cost(missing, tables.runs, tables.epochs, device, parallel=backend().concurrency,
                                  done_epochs={**(planning.resumed_epochs(planned) if planned is not None else {}),
                                               **(done_epochs or {})})
    return cost, device


def warm_up(experiment: str) -> None:
    """Runs are missing, so a click on Train is likely: start the local trainer processes now (torch imported,
    the built-in data built), so that the first epoch starts at the click. $ADLAPP_WARM_WORKERS=0 turns it off
    (the tests do, except the one that checks it)."""
    jobs = backend()
    if os.environ.get("ADLAPP_WARM_WORKERS", "1") != "0" and hasattr(jobs, "prewarm"):
        jobs.prewarm(experiment)


def train_controls(prefix: str, requests: list, planned: pd.DataFrame, cache: library.CachedRuns) -> bool:
    """What training the missing runs costs, a confirmation above estimate.CONFIRM_ABOVE_S, and 'Train missing
    runs', which submits only the runs the plan marks missing: nothing else is ever retrained. While runs of the
    plan train and none is missing, the button says so and is disabled. True when it queued something."""
    missing = planning.missing_requests(requests, planned)
    training = int(planned["where"].eq("training").sum())
    if not missing:
        label = (f"Training {training} run(s)… (progress below)" if training
                 else "Train missing runs: none missing")
        st.button(label, key=f"{prefix}_train_btn", type="primary", disabled=True)
        return False
    cost, device = training_cost(missing, cache, planned)
    st.caption(report.cost_sentence(cost, device), help=f"Estimated from {cost.basis}.")
    warm_up(missing[0][0].experiment)
    ok = True
    if cost.needs_confirmation:
        ok = st.checkbox(report.confirm_label(cost), key=f"{prefix}_confirm_{len(missing)}_{round(cost.seconds)}")
    label = f"Train missing runs ({len(missing)})"
    if training:
        st.caption(f"{training} run(s) of this study are training already; this adds the {len(missing)} missing.")
    if not st.button(label, key=f"{prefix}_train_btn", type="primary", disabled=not ok,
                     help=None if ok else "Tick the box above first: this training takes a while."):
        return False
    jobs = backend()
    sub = jobs.submit(missing, command=f"app:{prefix}")
    where = (f"{jobs.concurrency} run(s) at a time on Ray" if st.session_state.get("backend_kind") == "Ray"
             and ray_available() else f"{jobs.concurrency} trainer process(es) work the queue")
    st.session_state[f"{prefix}_queued_msg"] = (
        f"Queued {len(sub.queued)} run(s); {where}. They keep going if you switch pages or close the tab; cancel "
        "them on the Runs page.")
    return True


def live_results(prefix: str, experiment: str, planned: pd.DataFrame, cache: library.CachedRuns,
                 extra=None) -> bool:
    """Curves, progress and test metrics of the runs that serve the plan, each cut to what was asked for (a
    longer run shows only the epochs and test budgets requested). True while any of them is queued or running."""
    keys = sorted(set(planned.loc[planned["where"] != "cached", "run"]))
    from_cache = cache.tables.select(set(planned.loc[planned["where"] == "cached", "run"]))
    tail = st.session_state.get(f"{prefix}_tail")
    if tail is None or tail.keys != keys:
        tail = st.session_state[f"{prefix}_tail"] = live.LiveTail(store(), keys)
    opts = chart_options(prefix)
    if planned["status"].eq("queued").any() and not backend().live_workers():
        st.warning("Some of these runs are queued but no trainer process is running; start one on the Runs page.")
    tail.poll()
    mine = tail.tables()
    tables = planning.served_tables(RunTables.concat([mine, from_cache]), planned)
    now_active = mine.runs[mine.runs["status"].isin(ACTIVE)]
    if len(now_active):
        show_progress(live.progress(now_active, tail.frame))
    render_results(prefix, experiment, tables, opts)
    if extra:
        extra(tables)
    return bool(len(now_active))


def show_progress(prog: pd.DataFrame, limit: int = 12) -> None:
    for r in prog.head(limit).to_dict("records"):
        st.progress(r["fraction"], text=r["text"])
    if len(prog) > limit:
        st.caption(f"… and {len(prog) - limit} more active run(s); see Runs.")


def render_results(prefix: str, experiment: str, tables: RunTables, opts: dict) -> None:
    smoothing = float(opts.get("smoothing", 0.0))
    frame = charts.curve_frame(tables, metrics.curve_metrics(experiment), seeds=opts["seeds"],
                               complete_only=opts["complete_only"], smoothing=smoothing)
    if frame.empty:
        st.info("No epochs recorded yet for these runs.")
        return
    shown = set(frame["metric"])
    panels = [p for p in (metrics.label("epoch", m) for m in metrics.curve_metrics(experiment)) if p in shown]
    steps = batches_axis(tables, experiment, bool(opts.get("x_batches")))
    for column, panel in zip(st.columns(len(panels)), panels, strict=True):
        spec = charts.curves_spec(frame[frame["metric"] == panel], log_x=opts["log_x"], band=opts["band"],
                                  seeds=opts["seeds"], smoothing=smoothing, log_y=bool(opts.get("log_y", False)),
                                  batches=steps, **CURVES_SIZE)
        spec["transform"] = [{"filter": {"field": "metric", "equal": panel}}, *spec.get("transform", [])]
        column.vega_lite_chart(frame, spec, width="content")   # cached spec + fresh data: cheap every poll
    for note in report.seed_progress_notes(tables):
        st.caption(note)
    errors = tables.runs[tables.runs["status"].isin(ERROR_STATUSES) & tables.runs["error"].notna()]
    for r in errors.to_dict("records"):
        st.error(f"{display_name(r['variant'])} seed {int(r['seed'])} {r['status']}: "
                 f"{str(r['error']).splitlines()[0]}")
    for line in health_lines(tables, experiment):
        st.warning(line)
    baselines = {m: compare.baselines(experiment, metrics.by_row("test", m).key)
                 for m in metrics.test_metrics(experiment)}
    table = report.test_table(compare.test_summary(tables, metrics.test_metrics(experiment)), experiment, baselines,
                              compare.series_health(tables, experiment))
    if len(table):
        st.markdown("**Test metrics** — mean ± sd over seeds (ddof=1), n seeds, every seed's value; ★ best, "
                    "unless no better than the trivial predictor in the baseline rows")
        st.dataframe(table, hide_index=True)
        table_downloads(exports.test_summary_table(tables, metrics.test_metrics(experiment)),
                        f"{experiment}_test_metrics", f"{experiment}_test_dl",
                        caption=f"{experiment.upper()} test metrics over seeds (sd with ddof = 1)")
    best_table(tables, experiment, baselines)


def best_table(tables: RunTables, experiment: str, baselines: dict) -> None:
    """The test scores of the weights with the lowest validation loss up to each budget, beside the last
    epoch's: overfitting made visible. Runs recorded before the trainer kept them have none: said so."""
    rows = (*metrics.best_metrics(experiment), "best_epoch")
    summary = compare.test_summary(tables, rows)
    if summary.empty:
        if len(tables.tests):
            st.caption("These runs do not record test scores at the best-validation epoch (they were trained "
                       "before the trainer kept the best weights); the scores above are at each budget's last "
                       "epoch.")
        return
    st.markdown("**Test metrics at the best-validation epoch** — the weights with the lowest validation loss up "
                "to each budget (chosen on the validation split, never the test split), scored on the test "
                "split; compare with the last-epoch table above to see what overfitting costs.")
    best_baselines = {f"best_{m}": b for m, b in baselines.items()}
    st.dataframe(report.test_table(summary, experiment, best_baselines, metric_rows=rows), hide_index=True)


def table_downloads(numbers: pd.DataFrame, stem: str, key: str, caption: str | None = None) -> None:
    """CSV (numeric columns: mean and sd apart, not the '±' display), Markdown and LaTeX copies of a table,
    for a student's report. Built only when clicked."""
    if numbers.empty:
        return
    files = {"CSV": (lambda: exports.table_csv(numbers), "csv", "text/csv"),
             "Markdown": (lambda: exports.table_markdown(numbers), "md", "text/markdown"),
             "LaTeX": (lambda: exports.table_latex(numbers, caption=caption), "tex", "application/x-tex")}
    for col, (name, (make, ext, mime)) in zip(st.columns([1, 1, 1, 5]), files.items(), strict=False):
        col.download_button(name, make, file_name=f"{stem}.{ext}", mime=mime, key=f"{key}_{ext}",
                            on_click="ignore", icon=":material/download:",
                            help=f"This table's numbers as {name} (mean and sd as separate numeric columns)")


def health_lines(tables: RunTables, experiment: str) -> list[str]:
    """One line per run adlapp.health flags (collapsed, exploded, diverged), over all its recorded epochs."""
    runs = compare.runs_frame(tables, experiment)
    flags = compare.run_health(tables, runs)
    return [f"{r['series']} seed {r['seed']}: {flags[r['key']].reason} — {flags[r['key']].detail}. It stays in "
            "every mean and test (it is a result); the Compare page can leave flagged runs out."
            for r in runs.to_dict("records") if r["key"] in flags and flags[r["key"]].flagged]


def data_card(experiment: str) -> None:
    """What the data are, said before any number: one line, and the samples and our own choices on demand."""
    st.caption(report.data_line(experiment))
    card = datacards.load(experiment)
    with st.expander("What the data are, and which settings are ours"):
        if card is not None and card.sample_png:
            st.image(card.sample_png, caption=f"Training samples of the generated {card.label}, as the model "
                                              "sees them (standardisation undone).")
        if card is not None:
            st.markdown(card.source[:1].upper() + card.source[1:])
        st.markdown(report.our_choices(experiment))
