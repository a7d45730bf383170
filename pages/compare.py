"""Compare: is a difference between variants real? Calibrated tests beside the course's z.

Thin: widgets -> one adlapp.compare analysis (numbers; every statistic from adlapp.stats) -> adlapp.charts
(pictures) and adlapp.report (words). Widget keys and UI copy live here.
"""
from dataclasses import replace

import pandas as pd
import streamlit as st

from adlapp import charts, datacards, questions, report
from adlapp import compare as cmp
from adlapp.config import display_name
from adlapp.metrics import compare_metrics, metric
from adlapp.store import RunTables
from pages import _common as ui

CORRECTIONS = {"holm": "Holm (default)", "bh": "Benjamini-Hochberg (FDR)", "none": "none"}
COLOUR = {"diff": "Δ (metric units)", "hedges_g": "Hedges' g"}
SELECTION_KEYS = ("sig_experiment", "sig_variants", "sig_epochs", "sig_metric", "sig_protocol")
PROTOCOL_WORDS = {"all": "every run scored there", "shared": "one run per seed, tested at each budget",
                  "separate": "separate runs per budget (as the report)"}
KEEP = ui.KEEP
PAIR_NUMBERS = ["a", "b", "family", "family_size", "test", "n_a", "n_b", "n_pairs", "mean_a", "mean_b", "diff",
                "ci_low", "ci_high", "ci_adj_low", "ci_adj_high", "p", "p_adjusted", "significant", "hedges_g",
                "z_seed"]             # every choice is kept in the session and in the URL (a reload, a shared link)


def widget_state(name: str, sel: cmp.Selection) -> dict:
    """The selection widgets' values for a (resolved) preset."""
    return {"sig_preset": name, "sig_experiment": sel.experiment, "sig_variants": list(sel.variants),
            "sig_epochs": list(sel.epochs), "sig_metric": sel.metric, "sig_protocol": sel.protocol}


def selection(state) -> cmp.Selection:
    """The widgets' selection; a course preset's explicit pairs hold until the selection is edited (Custom)."""
    preset = cmp.PRESETS.get(state["sig_preset"])
    return cmp.Selection(state["sig_experiment"], tuple(state["sig_variants"]), tuple(state["sig_epochs"]),
                         state["sig_metric"], pairs=preset.selection.pairs if preset else (),
                         cross=bool(state.get("sig_cross")), exclude_flagged=bool(state.get("sig_exclude")),
                         pair_seeds=bool(state.get("sig_pair_seeds")), protocol=state.get("sig_protocol", "all"))


def seeds_table(plans) -> pd.DataFrame:
    """report.plan_table with "epochs per run" numeric (empty where no run covers the epochs): a column of
    ints and "" fails Arrow's conversion, which Streamlit logs as an error before converting it to text."""
    table = report.plan_table(plans)
    if "epochs per run" in table.columns:
        table["epochs per run"] = pd.to_numeric(table["epochs per run"], errors="coerce").astype("Int64")
    return table


st.title("Compare variants")
st.markdown(report.PLAIN_INTRO)
with st.expander("Method: which test, which correction, and why"):
    st.markdown(report.METHOD_CAPTION)
    st.markdown(report.FAMILY_RULE)
ui.store().mark_stale()                    # a dead trainer's run must not count as a seed on its way
tables = RunTables.concat([ui.store().tables(), ui.cached().tables])     # store first: it wins on a key
opts = cmp.options(tables)


def question_section() -> None:
    """A question the report left open: its words, the answer these runs give (no training), and the runs it
    still lacks, queued on request with their cost."""
    titles = {q.id: q.title for q in questions.QUESTIONS}
    qid = st.selectbox("Answer a question from the report", list(titles), index=None, format_func=titles.get,
                       key="q_choice", placeholder="choose one of the report's open questions…", **KEEP)
    if qid is None:
        return
    q = questions.question(qid)
    st.markdown(f"> {q.quote}")
    ans = questions.answer(q, tables)
    (st.info if ans.status == "no data" else st.success if ans.status == "answered" else st.warning)(ans.headline)
    st.markdown("\n".join(f"- {line}" for line in ans.lines))
    if not ans.table.empty:
        st.dataframe(ans.table, hide_index=True)
        ui.table_downloads(ans.table, f"question_{qid}", f"q_{qid}_dl", caption=f"{q.title} (the numbers)")
    if ans.missing:
        st.caption("Not in these runs yet: " + "; ".join(ans.missing) + ".")
    requests = q.requests(questions.DEFAULT_SEEDS)
    planned = ui.make_plan(requests, ui.cached())
    if ui.train_controls(f"q_{qid}", requests, planned, ui.cached()):
        st.rerun()
    if queued := st.session_state.pop(f"q_{qid}_queued_msg", None):
        st.success(queued)


with st.container(border=True):
    question_section()
if not opts:
    st.info("No finished runs yet. Train some on the CNN or U-Net page, or add bundles to cached_runs/.")
    st.stop()



def from_url(key: str, options: list, fmt=str) -> list:
    """The options a bound widget's URL parameter names. The URL holds the labels the widget shows, and
    the widgets are bound only when drawn, after the page has worked out its selection: read them here."""
    by_label = {str(fmt(o)): o for o in options}
    return [by_label[v] for v in st.query_params.get_all(key) if v in by_label]


def url_selection() -> dict | None:
    """The selection widgets' values from the URL (a reload, a shared link); None without one."""
    named = from_url("sig_preset", [*cmp.PRESETS, cmp.CUSTOM])
    if not named and not st.query_params.get_all("sig_variants"):
        return None
    exp = (from_url("sig_experiment", list(opts)) or [list(opts)[0]])[0]
    name, sel = cmp.resolve(named[0] if named else cmp.CUSTOM, opts, exp)
    if name == cmp.CUSTOM:
        avail = opts[sel.experiment]
        keys = [m.key for m in compare_metrics(sel.experiment)]
        sel = replace(sel, variants=tuple(from_url("sig_variants", avail["variants"], display_name)) or sel.variants,
                      epochs=tuple(from_url("sig_epochs", avail["epochs"])) or sel.epochs,
                      metric=(from_url("sig_metric", keys, lambda k: metric(k).label) or [sel.metric])[0])
    return widget_state(name, sel)


state = st.session_state
if "sig_experiment" not in state:
    state.update(url_selection() or widget_state(*cmp.resolve(cmp.default_preset(opts), opts)))
kept = cmp.restrict(selection(state), opts)
if kept is None:                           # the experiment has no finished runs any more
    state.update(widget_state(*cmp.resolve(cmp.CUSTOM, opts)))
else:                                      # a multiselect raises on values the data no longer offers
    state.update({k: v for k, v in widget_state(state["sig_preset"], kept).items()
                  if k in SELECTION_KEYS and v != state[k]})


def apply_preset() -> None:
    if state["sig_preset"] != cmp.CUSTOM:          # choosing Custom keeps the current selection
        state.update(widget_state(*cmp.resolve(state["sig_preset"], opts, state["sig_experiment"])))


def to_custom(reset: bool = False) -> None:
    if reset:
        state.update(widget_state(*cmp.resolve(cmp.CUSTOM, opts, state["sig_experiment"])))
    state["sig_preset"] = cmp.CUSTOM


c1, c2, c3 = st.columns([2, 1, 2])
c1.selectbox("Preset", [*cmp.PRESETS, cmp.CUSTOM], key="sig_preset", on_change=apply_preset, **KEEP)
exp = c2.selectbox("Experiment", list(opts), key="sig_experiment", on_change=to_custom, args=(True,),
                   **KEEP)
c3.selectbox("Metric", [m.key for m in compare_metrics(exp)], key="sig_metric",
             format_func=lambda k: metric(k).label, on_change=to_custom, **KEEP)
c1, c2 = st.columns([3, 2])
c1.multiselect("Variants", opts[exp]["variants"], key="sig_variants", on_change=to_custom,
               format_func=display_name, **KEEP)
c2.multiselect("Evaluation epochs (test scored, or validation value, after that epoch)", opts[exp]["epochs"],
               key="sig_epochs", on_change=to_custom, **KEEP)
c1, c2, c3 = st.columns([3, 2, 2])
correction = c1.radio("Correction within each family", list(CORRECTIONS), format_func=CORRECTIONS.get,
                      key="sig_correction", horizontal=True, **KEEP)
colour = c2.radio("Colour the matrix by", list(COLOUR), format_func=COLOUR.get, key="sig_colour",
                  horizontal=True, **KEEP)
c3.toggle("Also pair other variants at other epochs", key="sig_cross",
          help="Different variants at different evaluation epochs: compared only when asked for, corrected as a "
               "family of their own.", **KEEP)
c1, c2 = st.columns(2)
c1.toggle("Leave out runs that collapsed or exploded", key="sig_exclude",
          help="Off (default): every seed counts, flagged ones too: they are results. On: collapsed and exploded "
               "runs (see the notes) are left out, and every group says how many.", **KEEP)
c2.toggle("Pair variants by seed", key="sig_pair_seeds",
          help="Runs with the same seed start from the same initial weights and see the batches in the same order "
               "in every variant (common random numbers). Paired by seed, the paired t-test removes what the "
               "seed does to both; off (default), the groups are treated as independent, which is conservative.",
          **KEEP)

if cmp.has_budget_protocols(tables, exp):
    st.radio("Budgets scored by", list(PROTOCOL_WORDS), format_func=PROTOCOL_WORDS.get, key="sig_protocol",
             horizontal=True, on_change=to_custom, **KEEP,
             help="Some variants have runs of several lengths that are scored at the same epoch. Shared: only each "
                  "variant's longest runs, tested inside the run at every budget (budgets paired by seed). "
                  "Separate: only runs trained exactly that many epochs (independent budgets, Welch). Every: all "
                  "of them together.")
sel = selection(state)
m = metric(sel.metric)
res = cmp.analyse(tables, sel, correction)
st.caption(report.data_line(sel.experiment))
for level, text in report.comparison_notes(res):
    getattr(st, level)(text)
if capacity := report.capacity_note(sel.experiment, sel.variants):
    st.caption(capacity)
if len(res.groups) < 2 or res.pairs.empty:
    st.info("Choose at least two groups (variants × evaluation epochs) that have finished runs.")
    st.stop()

wide = len(res.groups) <= 5                        # more groups: matrix and strip plot one above the other
left, right = st.columns([3, 2]) if wide else (st.container(), st.container())
with left:
    st.markdown(f"**{len(res.pairs)} pair(s)**, Δ = row − column; ★ and a black frame: significant after "
                f"{CORRECTIONS[correction].split(' (')[0]} (α = {cmp.ALPHA:g}) within the pair's family; "
                f"\"adj. p (of m)\": adjusted over the m pairs of its family, the interval above it adjusted "
                f"the same way. Hover a cell for every number.")
    st.altair_chart(charts.matrix_chart(res, colour, m.higher_is_better), key="chart_sig_matrix", width="content")
with right:
    baselines = cmp.baselines(sel.experiment, m.key)
    st.altair_chart(charts.strip_chart(res, m.label, baselines=report.baseline_labels(baselines)),
                    key="chart_sig_strip", width="stretch")
    if baselines:
        st.caption("Dashed: " + "; ".join(f"{k} {report.number(v, 3)}" for k, v in baselines.items())
                   + " — what a model that learned nothing scores on these data.")
st.dataframe(report.pair_table(res.pairs, correction), hide_index=True)
ui.table_downloads(res.pairs[PAIR_NUMBERS], f"compare_{sel.experiment}_{sel.metric}", "sig_pairs_dl",
                   caption=f"Pairwise comparisons of {m.label}, {report.CORRECTION_NAMES[correction]} within families")
st.markdown("\n".join(f"- {report.pair_sentence(r, correction)}" for r in res.pairs.to_dict("records")))
if note := report.test_set_note(datacards.load(sel.experiment), m.key, list(res.summary.get("mean", []))):
    st.caption(note)

with st.expander("Spread across seeds at each evaluation epoch (the report's last question)"):
    scored = m if m.split == "test" else next(x for x in compare_metrics(sel.experiment) if x.split == "test")
    spread = cmp.seed_spread(tables, sel.experiment, sel.variants, scored, sel.exclude_flagged, sel.protocol)
    if (chart := charts.spread_chart(spread)) is not None:
        st.altair_chart(chart, key="chart_sig_spread", width="stretch")
    for line in report.spread_lines(spread):
        st.markdown(f"- {line}")

st.subheader("How many seeds do I need?")
labels = res.pair_labels()
if state.get("sig_pair") not in labels:
    state["sig_pair"] = labels[0]
pair = labels.index(st.selectbox("Pair", labels, key="sig_pair"))
a, b = res.pair_groups(pair)
observed = abs(res.pairs["diff"].iloc[pair])
delta = st.number_input(f"Smallest difference that matters ({m.label}); empty: the observed "
                        f"|Δ| = {report.number(observed)}", min_value=0.0, value=None, format="%.4f",
                        key="sig_delta", placeholder=report.number(observed))
plan = cmp.power_plan(a, b, delta, comparisons=res.family_pairs(pair))
st.warning(report.power_caveat(plan))
if plan.error:
    st.error(report.power_error(plan))
else:
    st.caption(report.power_caption(plan))
    c1, c2 = st.columns([1, 1])
    c1.markdown("**Seeds per group needed**")
    table = report.power_table(plan)
    c1.table(table.set_index(table.columns[0]))   # static table: narrow columns are never clipped
    c2.altair_chart(charts.power_chart(plan), key="chart_sig_power", width="stretch")
default_n = min(100, max(2, plan.recommended or max(g.values.size for g in res.groups)))
if state.get("sig_target_default") != default_n:     # a new recommendation replaces the old default
    state["sig_target_default"] = state["sig_target_n"] = default_n
target = st.number_input("Seeds per group to have (default: 80 % power at the corrected level)", min_value=2,
                         max_value=100, key="sig_target_n")
seed_plans = cmp.missing_seeds(tables, sel.experiment, sel.variants, sel.epochs, m, int(target))
st.dataframe(seeds_table(seed_plans), hide_index=True)
st.caption(report.OPTIONAL_STOPPING)
requests = cmp.seed_requests(seed_plans)
jobs = ui.backend()
confirmed = True
if requests:
    cost, device = ui.training_cost(requests, ui.cached())
    st.caption(report.cost_sentence(cost, device), help=f"Estimated from {cost.basis}.")
    if cost.needs_confirmation:      # a new estimate (other runs, other length) asks again: the key names it
        confirmed = st.checkbox(report.confirm_label(cost),
                                key=f"sig_queue_confirm_{len(requests)}_{round(cost.seconds)}")
if st.button(f"Queue the {len(requests)} missing run(s)", key="sig_queue_btn", disabled=not (requests and confirmed)):
    sub = jobs.submit(requests, "app:compare")
    st.success(f"Queued {len(sub.queued)} run(s): {report.queued_summary(seed_plans)}. "
               f"{len(sub.existing)} already existed. Follow them on the Runs page.")

if st.toggle("Significance along the validation curve", key="sig_curve", **KEEP):
    cur = cmp.curve_test(tables, sel.experiment, a, b, m, correction)
    st.caption(report.curve_message(cur))
    if len(cur.tests):
        st.altair_chart(charts.curve_test_chart(cur), key="chart_sig_curve", width="content")
