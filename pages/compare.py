"""Compare: is a difference between variants real? Calibrated tests beside the course's z (notes/statistics.md).

Thin: widgets -> adlapp.significance (data shaping; every number comes from adlapp.stats) -> charts.
"""
import streamlit as st

from adlapp import significance as sig
from adlapp import significance_charts as charts
from adlapp.jobs import LocalProcessBackend
from adlapp.store import RunTables
from pages import _common as ui

CORRECTIONS = {"holm": "Holm (default)", "bh": "Benjamini-Hochberg (FDR)", "none": "none"}
COLOUR = {"diff": "Δ (metric units)", "hedges_g": "Hedges' g"}

st.title("Compare variants")
st.caption(sig.METHOD_CAPTION)
ui.store().mark_stale()                    # a dead trainer's run must not count as a seed on its way
tables = RunTables.concat([ui.store().tables(), ui.cached().tables])     # store first: it wins on a key
opts = sig.options(tables)
if not opts:
    st.info("No finished runs yet. Train some on the CNN or U-Net page, or add bundles to cached_runs/.")
    st.stop()

state = st.session_state
if "sig_experiment" not in state:
    state.update(sig.preset_state(sig.default_preset(opts), opts))
state.update(sig.sanitize_state(dict(state), opts))


def apply_preset() -> None:
    if state["sig_preset"] != sig.CUSTOM:          # choosing Custom keeps the current selection
        state.update(sig.preset_state(state["sig_preset"], opts, state["sig_experiment"]))


def to_custom(reset: bool = False) -> None:
    if reset:
        state.update(sig.preset_state(sig.CUSTOM, opts, state["sig_experiment"]))
    state["sig_preset"] = sig.CUSTOM


c1, c2, c3 = st.columns([2, 1, 2])
c1.selectbox("Preset", [*sig.PRESETS, sig.CUSTOM], key="sig_preset", on_change=apply_preset)
exp = c2.selectbox("Experiment", list(opts), key="sig_experiment", on_change=to_custom, args=(True,))
metric = sig.metric_by_key(exp, c3.selectbox("Metric", [m.key for m in sig.METRICS[exp]], key="sig_metric",
                                             format_func=lambda k: sig.metric_by_key(exp, k).label,
                                             on_change=to_custom))
c1, c2 = st.columns([3, 2])
variants = c1.multiselect("Variants", opts[exp]["variants"], key="sig_variants", on_change=to_custom,
                          format_func=sig.variant_name)
epochs = c2.multiselect("Evaluation epochs (test scored, or validation value, after that epoch)",
                        opts[exp]["epochs"], key="sig_epochs", on_change=to_custom)
c1, c2 = st.columns(2)
correction = c1.radio("Correction over the pairs shown", list(CORRECTIONS), format_func=CORRECTIONS.get,
                      key="sig_correction", horizontal=True)
colour = c2.radio("Colour the matrix by", list(COLOUR), format_func=COLOUR.get, key="sig_colour",
                  horizontal=True)

groups, notes = sig.extract_groups(tables, exp, variants, epochs, metric)
if len(groups) < 2:
    for level, text in notes:
        getattr(st, level)(text)
    st.info("Choose at least two groups (variants × evaluation epochs) that have finished runs.")
    st.stop()
res = sig.compare_groups(groups, correction)
for level, text in notes + res.notes:
    getattr(st, level)(text)

wide = len(groups) <= 5                             # more groups: matrix and strip plot one above the other
left, right = st.columns([3, 2]) if wide else (st.container(), st.container())
with left:
    st.markdown(f"**{len(res.pairs)} pair(s)**, Δ = row − column; ★ and a black frame: significant after "
                f"{CORRECTIONS[correction].split(' (')[0]} (α = {sig.ALPHA:g}). Hover a cell for every number.")
    st.altair_chart(charts.matrix_chart(res.pairs, list(res.summary["axis_label"]), colour,
                                        metric.higher_is_better, correction), key="chart_sig_matrix",
                    width="content")
with right:
    st.altair_chart(charts.strip_chart(res.points, res.summary, metric.label), key="chart_sig_strip",
                    width="stretch")
st.dataframe(sig.pair_table(res.pairs, correction), hide_index=True)
st.markdown("\n".join(f"- {s}" for s in res.pairs["sentence"]))

st.subheader("How many seeds do I need?")
labels = res.pair_labels()
if state.get("sig_pair") not in labels:
    state["sig_pair"] = labels[0]
pair = labels.index(st.selectbox("Pair", labels, key="sig_pair"))
a, b = res.pair_groups(pair)
observed = abs(res.pairs["diff"].iloc[pair])
delta = st.number_input(f"Smallest difference that matters ({metric.label}); empty: the observed "
                        f"|Δ| = {observed:.4g}", min_value=0.0, value=None, format="%.4f", key="sig_delta",
                        placeholder=f"{observed:.4g}")
plan = sig.power_plan(a, b, delta, comparisons=len(res.pairs))
st.warning(plan.caveat)
if plan.error:
    st.error(plan.error)
else:
    st.caption(f"d = Δ / pooled sd = {plan.delta:.4g} / {plan.sd:.4g} = {plan.d:.3g} (sd with ddof = 1).")
    c1, c2 = st.columns([1, 1])
    c1.markdown("**Seeds per group needed**")
    c1.table(plan.table.set_index(plan.table.columns[0]))   # static table: narrow columns are never clipped
    c2.altair_chart(charts.power_chart(plan.curve, plan.current_n), key="chart_sig_power", width="stretch")
default_n = min(100, max(2, plan.recommended or max(g.values.size for g in groups)))
if state.get("sig_target_default") != default_n:     # a new recommendation replaces the old default
    state["sig_target_default"] = state["sig_target_n"] = default_n
target = st.number_input("Seeds per group to have (default: 80 % power at the corrected level)", min_value=2,
                         max_value=100, key="sig_target_n")
seed_plans = sig.missing_seeds(tables, exp, variants, epochs, metric, int(target))
st.dataframe(sig.plan_table(seed_plans), hide_index=True)
st.caption(sig.OPTIONAL_STOPPING)
requests = sig.seed_requests(seed_plans)
if st.button(f"Queue the {len(requests)} missing run(s)", key="sig_queue_btn", disabled=not requests):
    sub = LocalProcessBackend(ui.store(), concurrency=state.get("concurrency")).submit(requests, "app:compare")
    queued = "; ".join(f"{sig.variant_name(p.variant)} seeds {sig.seed_ranges(p.missing)}"
                       for p in seed_plans if p.missing)
    st.success(f"Queued {len(sub.queued)} run(s): {queued}. "
               f"{len(sub.existing)} already existed. Follow them on the Runs page.")

if st.toggle("Significance along the validation curve", key="sig_curve"):
    cur = sig.curve_significance(tables, exp, a.variant, b.variant, metric, correction)
    st.caption(cur.message)
    if len(cur.tests):
        st.altair_chart(charts.curve_chart(cur.curves, cur.tests, metric.curve_label), key="chart_sig_curve",
                        width="content")
