"""Home: what this is, and one click to open the course study from the bundles in cached_runs/."""
from dataclasses import replace
from functools import partial

import streamlit as st

from adlapp import charts, exports, library, questions, report, study_report
from adlapp import compare as cmp
from adlapp.metrics import best_metrics, by_row, figure_metrics, label, test_metrics
from pages import _common as ui

STUDY_PARAM = "study"
FIGURES = {"cnn": "Figure 1 reborn: CNN variants", "unet": "Figure 2 reborn: U-Net variants"}
PER_LINE = ("all", 2, 1)


@st.cache_data(show_spinner=False, max_entries=4)
def _reading(folder: str, signature: tuple, _tables) -> list[str]:
    """The reading for the bundles in `folder` as they are (`signature`): ~1 s, so once, not every rerun.
    The same analysis as the Compare page's presets (`compare.course_study`), told by `report`."""
    lines = report.course_reading(cmp.course_study(_tables))
    opts = cmp.options(_tables)
    lines += [line for exp in opts if (line := report.overfitting_line(cmp.overfitting(_tables, exp), exp))]
    if "unet" in opts:      # the report's last question: does the seed matter less at higher budgets?
        spread = cmp.seed_spread(_tables, "unet", opts["unet"]["variants"], "test_pixel_acc")
        if (said := report.spread_lines(spread)):
            lines.append("**Spread across seeds by budget** (U-Net test pixel accuracy; the report's last "
                         "question): " + " ".join(said))
    return lines


@st.cache_data(show_spinner=False, max_entries=4)
def _answers(folder: str, signature: tuple, _tables) -> list[tuple[str, str, str]]:
    """(question, status, headline) of each of the report's open questions, from these bundles: once per
    version of the bundles (~2 s)."""
    return [(a.question.title, a.status, a.headline) for a in questions.answers(_tables)]


@st.cache_data(show_spinner=False, max_entries=4)
def _sources(folder: str, signature: tuple) -> study_report.Provenance:
    """Which bundle each run came from: the source line baked into an exported figure."""
    return study_report.read_sources(None, folder)[1]


@st.cache_resource(show_spinner=False, max_entries=16)
def _figure(folder: str, signature: tuple, exp: str, view: tuple):
    """Figure `exp` of the course runs in these bundles, drawn with the display options `view` (0.2-0.3 s):
    built once per view for every visitor, and the default view already while Home waits for its click."""
    tables = cmp.course_tables(ui.cached_runs(folder, signature).tables)
    part = tables.select(set(tables.runs.loc[tables.runs["experiment"] == exp, "key"]))
    if part.runs.empty:
        return None
    log_x, log_y, shared_y, smooth, steps, columns = view
    return charts.figure_chart(part, exp, log_x=log_x, flags=cmp.run_health(part, cmp.runs_frame(part, exp)),
                               baselines=report.baseline_labels(cmp.baselines(exp, figure_metrics(exp)[1])),
                               smoothing=smooth, log_y=log_y, shared_y=shared_y, batches=steps, columns=columns,
                               width={1: 260, 2: 120}.get(columns))


DEFAULT_VIEW = (True, False, False, 0.0, None, None)     # the options' defaults below: log x, nothing else


def _warm_up() -> None:
    """The first visit loads the bundles and builds both figures while its reader looks for the button (~0.6 s
    on a busy machine), so the click pays only the page's rerun; later visitors find them cached."""
    folder = library.cached_runs_dir()
    signature = library.folder_signature(folder)
    for exp in FIGURES:
        _figure(str(folder), signature, exp, DEFAULT_VIEW)


@st.cache_data(show_spinner=False, max_entries=8)
def _figure_file(folder: str, signature: tuple, exp: str, view: tuple, fmt: str, _chart, caption: str,
                 source: str) -> bytes:
    """The figure as shown (`view`: the display options it was drawn with, part of the cache key), rendered
    offline with its title, caption and source (vl-convert, ~0.3-1 s): on the first click only."""
    return exports.render(_chart, FIGURES[exp], caption, source, formats=(fmt,))[fmt]


@st.cache_data(show_spinner=False, max_entries=2)
def _report_zip(folder: str, signature: tuple, log_x: bool) -> bytes:
    """adlapp.study_report of these bundles as a zip (~6 s): built when the download is clicked, then kept."""
    tables, prov = study_report.read_sources(None, folder)
    return study_report.report_zip(tables, replace(prov, command="the app's Home page (download)"), log_x=log_x)


def _figure_downloads(exp: str, chart, part, view: tuple) -> None:
    folder = library.cached_runs_dir()
    sig = library.folder_signature(folder)
    source = study_report.source_line(part, exp, _sources(str(folder), sig))
    cols = st.columns([1, 1, 8])
    for col, (fmt, mime) in zip(cols, {"png": "image/png", "svg": "image/svg+xml"}.items(), strict=False):
        col.download_button(fmt.upper(), partial(_figure_file, str(folder), sig, exp, view, fmt, chart,
                                                 study_report.figure_caption(exp), source),
                            file_name=f"{study_report.FIGURES[exp][0]}.{fmt}", mime=mime, key=f"home_{fmt}_{exp}",
                            on_click="ignore", icon=":material/download:",
                            help=f"This figure as {fmt.upper()}, with its title, caption and data source in it")


st.title("Deep-learning variants, several seeds, compared honestly")
st.markdown(
    "This lab retrains the experiments of a deep-learning course report — a CNN with and without batch-norm, "
    "Adam vs SGD; a U-Net with transposed-convolution vs nearest-neighbour upsampling, ReLU vs ELU — with "
    "several seeds each, shows the curves live while they train, and reports every number with the number "
    "of seeds behind it (spreads are standard deviations with ddof=1).\n\n"
    "- **CNN** and **U-Net**: pick variants, seeds, epochs and data; runs that already exist are loaded, "
    "only missing ones are trained (in separate processes that survive page switches and closed tabs).\n"
    "- **Runs**: every run with its status and progress; cancel, delete, import and export bundles.\n"
    "- **Open the course study** below loads the finished runs shipped in `cached_runs/` — no training.")

# Opened, the study stays open: in the session (page switches) and in the URL, ?study=open (a reload).
if st.query_params.get(STUDY_PARAM) == "open":
    st.session_state["home_open"] = True
if st.button("Open the course study", key="home_open_btn", type="primary"):
    st.session_state["home_open"] = True
if not st.session_state.get("home_open"):
    _warm_up()
    st.stop()
if st.query_params.get(STUDY_PARAM) != "open":
    st.query_params[STUDY_PARAM] = "open"      # back from another page: the URL says so again

folder = library.cached_runs_dir()
cache = ui.cached()
everything = cache.tables
tables = cmp.course_tables(everything)       # the report's variants, one run per seed: its figures and table
if everything.runs.empty:
    st.info("No cached runs yet: cached_runs/ holds no readable bundle. Train the study on the CNN and U-Net "
            "pages (or with `python -m adlapp train …`) and export it with `python -m adlapp export`.")
    st.stop()

st.caption(f"Loaded {len(everything.runs)} run(s) from {len(cache.bundles)} bundle(s) in cached_runs/: "
           + ", ".join(cache.bundles["file"]) + f". The course figures and table use the {len(tables.runs)} runs "
           "of the report's own variants; the others answer its open questions (below).")
st.info("**These runs were trained on data generated in code**, not on the public card and retina data sets of "
        "the course report: the models and comparisons are the report's, the numbers are a new experiment. "
        "Where the report has a number for the same cell, it is shown beside ours and labelled as the report's.")
if not tables.tests["name"].isin([m for exp in ("cnn", "unet") for m in best_metrics(exp)]).any():
    st.caption("Not recorded in these runs: the test scores at the best-validation epoch (the weights with the "
               "lowest validation loss). These runs predate them; runs trained now record them, and the "
               "scores here are all at the last epoch of each budget.")
c1, c2, c3, c4 = st.columns(4)
log_x = c1.checkbox("log-scale epochs", value=True, key="home_log_x", **ui.KEEP)
log_y = c2.checkbox("log-scale loss", value=False, key="home_log_y", **ui.KEEP)
shared_y = c3.checkbox("same y scale across variants", value=False, key="home_shared_y", **ui.KEEP)
smooth = c4.slider("smoothing (EMA)", 0.0, 0.99, value=0.0, step=0.01, key="home_smooth", help=ui.SMOOTH_HELP,
                   **ui.KEEP)
c1, c2 = st.columns(2)
x_batches = c1.checkbox("x axis in batches", value=False, key="home_x_batches", help=ui.BATCHES_HELP, **ui.KEEP)
per_line = c2.selectbox("variants per line", PER_LINE, key="home_per_line", **ui.KEEP,
                        help="All side by side (the report's layout) needs ~950 px; on a phone choose 1 or 2: each "
                             "row then wraps after that many variants.")
for exp, title in FIGURES.items():
    part = tables.select(set(tables.runs.loc[tables.runs["experiment"] == exp, "key"]))
    if part.runs.empty:
        continue
    st.subheader(title)
    ui.data_card(exp)
    score = figure_metrics(exp)[1]
    base = cmp.baselines(exp, score)
    st.caption("Per variant a column: mean over seeds (line) inside the min/max band of the seeds; column "
               "heads give the final test metrics as mean ± sd (ddof=1) with n seeds. Diamonds on the "
               f"{label('epoch', figure_metrics(exp)[1])} row: {charts.figure_marker(exp).label} after each "
               "epoch the test split was scored at, mean ± sd (error bar); hover for n.")
    view = (log_x, log_y, shared_y, smooth, ui.batches_axis(part, exp, x_batches),
            None if per_line == "all" else int(per_line))
    if (chart := _figure(str(folder), library.folder_signature(folder), exp, view)) is not None:
        st.altair_chart(chart, width="content")
        _figure_downloads(exp, chart, part, view)
    if base:
        st.caption(f"Dashed on the {label('epoch', score)} row: " + "; ".join(
            f"{k} {report.number(v, 3)}" for k, v in base.items()) + " (a model that learned nothing). "
            "Red crosses: runs flagged below, where they collapsed or exploded.")
    for line in ui.health_lines(part, exp):
        st.warning(line)
    for note in report.seed_progress_notes(part):
        st.caption(note)
    summary = cmp.test_summary(part, test_metrics(exp))
    if exp == "unet" and len(course := report.course_table(summary)):
        st.markdown("**U-Net test pixel accuracy and F1 by epoch budget** (the report's table), ours beside the "
                    "report's")
        st.table(course)
        st.caption(report.COURSE_TABLE_CAPTION)
    baselines = {m: cmp.baselines(exp, by_row("test", m).key) for m in test_metrics(exp)}
    with st.expander(f"All {exp.upper()} test metrics, every seed, and the baselines"):
        st.dataframe(report.test_table(summary, exp, baselines, cmp.series_health(part, exp)), hide_index=True)
        ui.table_downloads(exports.test_summary_table(part, test_metrics(exp)), f"{exp}_test_metrics",
                           f"home_{exp}_test_dl", caption=f"{exp.upper()} test metrics over seeds (sd with ddof = 1)")
        ui.best_table(part, exp, baselines)

st.subheader("What the numbers say")
st.caption("Generated from these runs, across seeds on one fixed test set: Welch's t-test for different "
           "variants, the paired t-test for one variant's runs scored at two budgets, Holm's correction within "
           "each family of pairs (the pairs at one evaluation epoch; one variant across epochs; the pairs a claim "
           "names), Δ = a − b with its 95 % CI (adjusted like the p beside it, so it excludes 0 exactly when the "
           "pair is significant), sd "
           "with ddof=1, every seed kept (flagged ones too). Every pair, each seed's value and how many seeds you "
           "would need are on the Compare page, whose presets \"Course: …\" give the same numbers, as does "
           "`python -m adlapp compare --preset …`.")
lines = _reading(str(folder), library.folder_signature(folder), tables) or ["No finished runs to compare yet."]
st.markdown("\n".join(f"- {line}" for line in lines))
st.download_button("Download this study report (zip)",
                   partial(_report_zip, str(folder), library.folder_signature(folder), log_x),
                   file_name="study-report.zip", mime="application/zip", key="home_report_zip", on_click="ignore",
                   icon=":material/download:",
                   help="index.html with the figures, test tables, the course presets' tests, this reading and "
                        "where the runs came from; the figures as PNG, SVG and PDF; the tables as CSV, Markdown "
                        "and LaTeX. `python -m adlapp report --out DIR` writes the same (with your store's runs too).")
st.page_link("pages/compare.py", label="Compare variants: the details", icon=":material/compare_arrows:")

st.subheader("The report's open questions")
st.caption("Questions the course report raised and could not answer, each answered from the shipped runs with the "
           "same statistics (Holm within each question's pairs). Every answer, its table and the runs it still "
           "lacks are on the Compare page under \"Answer a question from the report\".")
for title, status, headline in _answers(str(folder), library.folder_signature(folder), everything):
    tail = {"partial": " *(some of its runs are not in the shipped study yet)*",
            "no data": ""}.get(status, "")
    st.markdown(f"- **{title}** {headline}{tail}")
