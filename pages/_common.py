"""Streamlit pieces shared by the pages: the cached store, backend and bundles, chart options, the live view.

Everything here reads widgets, calls one adlapp function (planning, live, library, charts, report) or the
backend, and renders; UI copy and widget keys live here and in the pages. No torch: training is launched
through the backend (adlapp.jobs), which starts separate OS processes.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from adlapp import charts, compare, library, live, metrics, planning, report
from adlapp.config import display_name
from adlapp.jobs import Backend, LocalProcessBackend, default_concurrency
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
POLL_S = 1.0          # live view refresh: one cheap incremental query per tick, so ≤ ~1-2 s behind
BANDS = {"min/max over seeds": "minmax", "mean ± 1 sd (ddof=1)": "sd", "no band": "none"}
WHERE = {"store": "finished (store)", "cached": "finished (cached_runs/)", "training": "training / queued",
         "missing": "to train"}                   # planning.PLACES, in the page's words
DEFAULT_SEEDS = "3"   # the seed box's default: seeds 0, 1, 2
SEEDS_LABEL = "seeds: a count (3), a list (0,1,2) or a range (0-4)"


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


def backend() -> Backend:
    """The one backend every page submits, cancels and watches runs through, at the sidebar's concurrency."""
    concurrency = int(st.session_state.get("concurrency") or concurrency_default())
    return _backend(str(library.store_dir()), concurrency)


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached(folder: str, signature: tuple) -> library.CachedRuns:
    return library.load_cached(folder)


def cached() -> library.CachedRuns:
    """The bundles in cached_runs/, re-read only when a file there changes; unreadable ones are named."""
    folder = library.cached_runs_dir()
    result = _cached(str(folder), library.folder_signature(folder))
    for err in result.errors:
        st.warning(f"Skipped an unreadable bundle in cached_runs/: {err}")
    return result


def chart_options(prefix: str) -> dict:
    c1, c2, c3, c4 = st.columns(4)
    return {"log_x": c1.checkbox("log-scale epochs", value=True, key=f"{prefix}_log_x", **KEEP),
            "band": BANDS[c2.selectbox("band", list(BANDS), key=f"{prefix}_band", **KEEP)],
            "seeds": c3.checkbox("show every seed", value=False, key=f"{prefix}_show_seeds", **KEEP),
            "complete_only": c4.checkbox("only epochs all seeds reached", value=False, key=f"{prefix}_complete",
                                         **KEEP)}


def variant_checkboxes(experiment: str) -> list[str]:
    """One checkbox per registry variant of the experiment, all ticked by default; the ticked names."""
    return [n for n in planning.registry_names(experiment)
            if st.checkbox(f"{display_name(n)} (`{n}`)", value=True, key=f"{experiment}_v_{n.split('/')[1]}",
                           **KEEP)]


def launch_or_load(choice: planning.StudyChoice, extra=None) -> None:
    """The shared tail of the CNN and U-Net pages: validate, show what exists, train what is missing, watch."""
    requests, errors = planning.make_requests(choice)
    for e in errors:
        st.error(e)
    if errors:
        st.stop()
    cache = cached()
    planned = make_plan(requests, cache)
    show_plan(planned)
    if train_button(choice.experiment, requests, planned):
        planned = make_plan(requests, cache)
    live_results(choice.experiment, choice.experiment, planned, cache, extra=extra)


def show_plan(planned: pd.DataFrame) -> None:
    st.caption(report.plan_summary(planned))
    view = planned.assign(where=planned["where"].map(WHERE))
    view = view[["variant", "seed", "epochs", "where", "status", "key"]]
    st.dataframe(view, hide_index=True, height=min(38 + 35 * len(view), 300))


def make_plan(requests: list[planning.Request], cache: library.CachedRuns) -> pd.DataFrame:
    s = store()
    s.mark_stale()                 # a trainer that died must not look like it is still running
    return planning.plan(requests, s.runs(), cache.tables.runs)


def train_button(prefix: str, requests: list, planned: pd.DataFrame) -> bool:
    """'Train missing runs' submits only the runs the plan marks missing; nothing else is ever retrained.
    Returns True when it queued something (the caller re-plans)."""
    missing = planning.missing_requests(requests, planned)
    label = "Train missing runs" + (f" ({len(missing)})" if missing else ": none missing")
    if not st.button(label, key=f"{prefix}_train_btn", type="primary", disabled=not missing):
        return False
    jobs = backend()
    sub = jobs.submit(missing, command=f"app:{prefix}")
    st.success(f"Queued {len(sub.queued)} run(s); {jobs.concurrency} trainer process(es) work the queue. "
               "They keep going if you switch pages or close the tab; cancel them on the Runs page.")
    return True


def live_results(prefix: str, experiment: str, planned: pd.DataFrame, cache: library.CachedRuns,
                 extra=None) -> None:
    """Curves, progress and test metrics of the planned runs, refreshed in place while any of them trains."""
    keys = sorted(planned.loc[planned["where"] != "cached", "key"])
    from_cache = cache.tables.select(set(planned.loc[planned["where"] == "cached", "key"]))
    tail = st.session_state.get(f"{prefix}_tail")
    if tail is None or tail.keys != keys:
        tail = st.session_state[f"{prefix}_tail"] = live.LiveTail(store(), keys)
    opts = chart_options(prefix)
    active = bool(planned["where"].eq("training").any())
    if planned["status"].eq("queued").any() and not backend().live_workers():
        st.warning("Some of these runs are queued but no trainer process is running; start one on the Runs page.")

    @st.fragment(run_every=POLL_S if active else None)
    def refresh() -> None:
        if active:
            store().mark_stale()
        tail.poll()
        mine = tail.tables()
        tables = RunTables.concat([mine, from_cache])
        now_active = mine.runs[mine.runs["status"].isin(ACTIVE)]
        if len(now_active):
            show_progress(live.progress(now_active, tail.frame))
        render_results(prefix, experiment, tables, opts)
        if extra:
            extra(tables)
        if active and now_active.empty:
            st.rerun()            # everything finished: redraw the page once, which also stops the polling

    refresh()


def show_progress(prog: pd.DataFrame, limit: int = 12) -> None:
    for r in prog.head(limit).to_dict("records"):
        st.progress(r["fraction"], text=r["text"])
    if len(prog) > limit:
        st.caption(f"… and {len(prog) - limit} more active run(s); see Runs.")


def render_results(prefix: str, experiment: str, tables: RunTables, opts: dict) -> None:
    frame = charts.curve_frame(tables, metrics.curve_metrics(experiment), seeds=opts["seeds"],
                               complete_only=opts["complete_only"])
    spec = charts.curves_spec(frame, log_x=opts["log_x"], band=opts["band"], seeds=opts["seeds"])
    if spec is None:
        st.info("No epochs recorded yet for these runs.")
        return
    st.vega_lite_chart(frame, spec, width="content")     # cached spec + fresh data: cheap every poll
    for note in report.seed_progress_notes(tables):
        st.caption(note)
    errors = tables.runs[tables.runs["status"].isin(ERROR_STATUSES) & tables.runs["error"].notna()]
    for r in errors.to_dict("records"):
        st.error(f"{r['variant']} seed {int(r['seed'])} {r['status']}: {str(r['error']).splitlines()[0]}")
    table = report.test_table(compare.test_summary(tables, metrics.test_metrics(experiment)), experiment)
    if len(table):
        st.markdown("**Test metrics** — mean ± sd over seeds (ddof=1), n seeds, every seed's value; ★ best")
        st.dataframe(table, hide_index=True)
