"""Home: what this is, and one click to open the course study from the bundles in cached_runs/."""
import streamlit as st

from adlapp import charts, library, report
from adlapp import compare as cmp
from adlapp.metrics import figure_metrics, label, test_metrics
from pages import _common as ui

STUDY_PARAM = "study"
FIGURES = {"cnn": "Figure 1 reborn: CNN variants", "unet": "Figure 2 reborn: U-Net variants"}


@st.cache_data(show_spinner=False, max_entries=4)
def _reading(folder: str, signature: tuple, _tables) -> list[str]:
    """The reading for the bundles in `folder` as they are (`signature`): ~1 s, so once, not every rerun.
    The same analysis as the Compare page's presets (`compare.course_study`), told by `report`."""
    return report.course_reading(cmp.course_study(_tables))


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
    st.stop()
if st.query_params.get(STUDY_PARAM) != "open":
    st.query_params[STUDY_PARAM] = "open"      # back from another page: the URL says so again

cache = ui.cached()
tables = cache.tables
if tables.runs.empty:
    st.info("No cached runs yet: cached_runs/ holds no readable bundle. Train the study on the CNN and U-Net "
            "pages (or with `python -m adlapp train …`) and export it with `python -m adlapp export`.")
    st.stop()

st.caption(f"Loaded {len(tables.runs)} run(s) from {len(cache.bundles)} bundle(s) in cached_runs/: "
           + ", ".join(cache.bundles["file"]))
log_x = st.checkbox("log-scale epochs", value=True, key="home_log_x", **ui.KEEP)
for exp, title in FIGURES.items():
    part = tables.select(set(tables.runs.loc[tables.runs["experiment"] == exp, "key"]))
    if part.runs.empty:
        continue
    st.subheader(title)
    st.caption("Per variant a column: mean over seeds (line) inside the min/max band of the seeds; column "
               "heads give the final test metrics as mean ± sd (ddof=1) with n seeds. Diamonds on the "
               f"{label('epoch', figure_metrics(exp)[1])} row: {charts.figure_marker(exp).label} after each "
               "epoch the test split was scored at, mean ± sd (error bar); hover for n.")
    if (chart := charts.figure_chart(part, exp, log_x=log_x)) is not None:
        st.altair_chart(chart, width="content")
    for note in report.seed_progress_notes(part):
        st.caption(note)
    summary = cmp.test_summary(part, test_metrics(exp))
    if exp == "unet" and len(course := report.course_table(summary)):
        st.markdown("**U-Net test pixel accuracy by epoch budget** (the report's table), mean ± sd (n seeds)")
        st.table(course)
    with st.expander(f"All {exp.upper()} test metrics, every seed"):
        st.dataframe(report.test_table(summary, exp), hide_index=True)

st.subheader("What the numbers say")
st.caption("Generated from these runs: Welch's t-test with Holm's correction within each family of pairs "
           "(the pairs at one evaluation epoch; one variant across epochs; the pairs a claim names), Δ with its "
           "95 % CI, sd with ddof=1. Every pair, each seed's value and how many seeds you would need are on the "
           "Compare page, whose presets \"Course: …\" give the same numbers.")
folder = library.cached_runs_dir()
lines = _reading(str(folder), library.folder_signature(folder), tables) or ["No finished runs to compare yet."]
st.markdown("\n".join(f"- {line}" for line in lines))
st.page_link("pages/compare.py", label="Compare variants: the details", icon=":material/compare_arrows:")
