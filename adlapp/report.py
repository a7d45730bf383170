"""Words: every formatter, sentence, caption and display table the app, the CLI and exports show.

Numbers come from adlapp.stats / adlapp.compare, pictures from adlapp.charts; this module turns numbers into
text, so that one value reads the same on every page ("p < 0.001", "0.565 ± 0.021", "3 min 05 s"). The Home
page's reading of the course study (`course_reading`) is here too, written from `compare.course_study`.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from adlapp import compare as cmp
from adlapp import course_report, datacards, health
from adlapp.config import EXPERIMENT_INFO, VARIANTS, base_config, display_name
from adlapp.metrics import by_row, label, test_metrics
from adlapp.store import FINISHED, RESUMABLE, RunTables

__all__ = [
    "MINUS", "decimals", "number", "p_value", "p_clause", "mean_sd", "duration", "plural", "seed_ranges",
    "CORRECTION_NAMES", "CORRECTION_SHORT", "PLAIN_INTRO", "METHOD_CAPTION", "TEST_NAMES", "RANK_NAMES", "test_name",
    "health_note", "OPTIONAL_STOPPING", "FAMILY_RULE",
    "family_phrase", "family_label", "adjusted", "delta_ci", "axis_label", "pair_sentence", "comparison_notes",
    "pair_table", "matrix_cell", "power_rule", "power_table", "power_caveat", "power_error", "power_caption",
    "plan_table", "queued_summary", "curve_message", "seed_progress_notes", "test_table", "course_table",
    "figure_heads", "test_note", "course_reading", "COURSE_TABLE_CAPTION", "test_set_note", "data_line", "our_choices",
    "capacity_note", "overfitting_line",
    "baseline_labels", "spread_lines",
]

MINUS = "\u2212"                    # a real minus sign: "−0.012" reads as a number, "-0.012" as a dash


# -- numbers as text -----------------------------------------------------------------------------------------
def decimals(*values: float) -> int:
    """Decimals that show at least 3 places and 2 significant digits of the largest magnitude."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 3
    return int(min(8, max(3, 1 - math.floor(math.log10(max(finite))))))


def number(x: float | None, places: int | None = None, sign: bool = False) -> str:
    """`x` with `places` decimals (default: `decimals(x)`), a real minus sign, never "−0.000"; "n/a" when
    missing or not finite. `sign` puts "+" before positive values (differences)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    places = decimals(x) if places is None else places
    if round(x, places) == 0:
        x = 0.0
    text = f"{x:+.{places}f}" if sign and x != 0 else f"{x:.{places}f}"
    return text.replace("-", MINUS)


def p_value(p: float | None) -> str:
    """"< 0.001", else 2 significant digits below 0.1 ("0.034") and 2 decimals above ("0.21")."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    if p < 0.1:
        return f"{p:.{1 - math.floor(math.log10(p))}f}"
    return f"{p:.2f}"


def p_clause(p: float | None) -> str:
    """"p = 0.034" or "p < 0.001", for running text."""
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def mean_sd(mean: float | None, sd: float | None, places: int = 3) -> str:
    """"0.565 ± 0.021"; just the mean when sd is undefined (one seed); "–" when there is no value."""
    if mean is None or not math.isfinite(mean):
        return "–"
    text = number(mean, places)
    return text + (f" ± {number(sd, places)}" if sd is not None and math.isfinite(sd) else "")


def duration(seconds: float | None) -> str:
    """"42 s", "3 min 05 s", "1 h 07 min"; "" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def plural(n: int, word: str) -> str:
    """"1 pair", "6 pairs"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def seed_ranges(seeds: Sequence[int]) -> str:
    """(0, 1, 2, 5, 7, 8) -> '0-2, 5, 7-8'."""
    out: list[str] = []
    for s in sorted(seeds):
        if out and s == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{s}"
        else:
            out.append(str(s))
    return ", ".join(out)


# -- the Compare page's words --------------------------------------------------------------------------------
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}
CORRECTION_SHORT = {"holm": "Holm", "bh": "BH", "none": "none"}

# The Compare page's plain-language intro (one breath), then the method in an expander (METHOD_CAPTION).
PLAIN_INTRO = (
    "Each variant was trained several times with different seeds (random initial weights and batch order). "
    "A difference between two variants is *significant* when it is larger than the seed-to-seed spread can "
    "explain by chance, after correcting for the number of pairs compared at once. *Not significant* means "
    "these seeds cannot tell the variants apart — not that they are equal. Everything is measured across "
    "seeds, on one fixed test set: the test set's own sampling error is not in these tests.")
METHOD_CAPTION = (
    "Independent groups: Welch's t-test (unequal spread allowed; it stays calibrated at n = 3-10 seeds: "
    "3.6-4.7 % false positives at α = 0.05 in simulation), Mann-Whitney beside it. The same runs scored at two "
    "epochs: the paired t-test, Wilcoxon's signed-rank test beside it. Same-seed runs of different variants "
    "share their initial weights and batch order, yet by default they are treated as unpaired (the "
    "conservative choice); 'pair variants by seed' tests them paired instead. p-values are corrected within "
    "each family of pairs (Holm by default); the CI next to an adjusted p is adjusted the same way (the level "
    "the correction tested that pair at, 1 − 0.05·p/p_adj), so it excludes 0 exactly when the pair is "
    "significant; the plain 95 % CI is in the table. Δ = a − b "
    "throughout. The course z = Δ/√(σa² + σb²) is a standardised difference, not a test: it equals Cohen's "
    "d/√2 only for equal n, and the report's σ may have been computed with ddof 0 or been a standard error. "
    "Read as a test it gets *less* significant as seeds are added (2.8 % → 0 % false positives between 3 "
    "and 10 seeds). Method and simulations: docs/statistics.md."
)
TEST_NAMES = {"welch": "Welch", "paired-t": "paired t"}
RANK_NAMES = {"welch": "Mann-Whitney", "paired-t": "Wilcoxon"}
FAMILY_RULE = (
    "Families: the pairs within one evaluation epoch are corrected together, one family per epoch; each "
    "variant against itself at two epochs is a family of its own; different variants at different epochs are "
    "compared only when you ask for them, again as a family of their own. The number of pairs a p-value was "
    "corrected over is shown next to it."
)
OPTIONAL_STOPPING = (
    "Decide the number of seeds before running them and analyse once: adding seeds until a result turns "
    "significant (optional stopping) inflates false positives. Keep diverged and 'bad' seeds; they are data."
)
_FAMILY_PHRASE = {"budgets": "comparing each variant with itself across epochs",
                  "cross": "of different variants at different epochs", "chosen": "chosen together"}
_FAMILY_LABEL = {"budgets": "same variant, two epochs", "cross": "other variant and epoch",
                 "chosen": "chosen pairs"}


def family_phrase(family: str | None) -> str:
    """"at epoch 200", "comparing each variant with itself across epochs", ...; "" for no family."""
    if not family:
        return ""
    return f"at epoch {family.split(':', 1)[1]}" if family.startswith("epoch:") else _FAMILY_PHRASE[family]


def family_label(family: str) -> str:
    """Short: "epoch 200", "same variant, two epochs", "other variant and epoch", "chosen pairs"."""
    return f"epoch {family.split(':', 1)[1]}" if family.startswith("epoch:") else _FAMILY_LABEL[family]


def adjusted(row: dict[str, Any], correction: str = "holm") -> str:
    """"adjusted p = 0.012 (Holm over 6 pairs)": an adjusted p never without its family size."""
    return (f"adjusted {p_clause(row['p_adjusted'])} "
            f"({CORRECTION_SHORT[correction]} over {plural(int(row['family_size']), 'pair')})")


def delta_ci(row: dict[str, Any]) -> str:
    """'Δ = +0.012, 95 % CI [0.004, 0.020]' (no CI where the test has none); in a family of several pairs
    the CI adjusted like the p-value beside it, which excludes 0 exactly when the pair is significant:
    'Δ = +0.012, 95 % CI adjusted over 6 pairs [−0.001, 0.025]'."""
    m = int(row.get("family_size", 0) or 0)
    adjusted_ = m > 1 and np.isfinite(row.get("ci_adj_low", math.nan))
    lo, hi = (row["ci_adj_low"], row["ci_adj_high"]) if adjusted_ else (row["ci_low"], row["ci_high"])
    dec = decimals(row["diff"], lo, hi)
    out = f"Δ = {number(row['diff'], dec, sign=True)}"
    if np.isfinite(lo):
        out += f", 95 % CI{f' adjusted over {m} pairs' if adjusted_ else ''} [{number(lo, dec)}, {number(hi, dec)}]"
    return out


def test_name(row: dict[str, Any]) -> str:
    """"Welch" or "paired t": the test a pair row was tested with."""
    return TEST_NAMES.get(row.get("test", "welch"), "Welch")


def axis_label(g: cmp.Group) -> str:
    """'Adam (n=3, 1 diverged)': a group on a chart axis."""
    extra = f", {g.n_excluded} diverged" if g.n_excluded else ""
    return f"{g.label} (n={g.n}{extra})"


def _n_part(row: dict[str, Any]) -> str:
    text = f"n = {row['n_a']} each" if row["n_a"] == row["n_b"] else f"n = {row['n_a']} vs {row['n_b']}"
    n_excl = row["n_excluded_a"] + row["n_excluded_b"]
    if n_excl:
        where = ", ".join(f"{row[g]}: {row['n_excluded_' + g]}" for g in ("a", "b") if row["n_excluded_" + g])
        text += f" ({where} diverged run{'s' if n_excl > 1 else ''} excluded)"
    return text


def pair_sentence(row: dict[str, Any], correction: str = "holm", alpha: float = cmp.ALPHA) -> str:
    """One plain-language sentence for one pair: a row of `stats.pairwise` or of `Comparison.pairs` (whose
    `family` and `tested` it also reads)."""
    head = f"{row['a']} vs {row['b']}: {delta_ci(row)}"
    if not row.get("tested", True):
        small = [f"{row[g]} has n = {row['n_' + g]}" for g in ("a", "b") if row["n_" + g] < cmp.MIN_N]
        return (f"{head}, Hedges' g = {number(row['hedges_g'], 2)}; not tested because n < {cmp.MIN_N} "
                f"({', '.join(small)}); {_n_part(row)}.")
    if not row["testable"]:
        reasons = row["note"].split("; ")
        why = next((r for r in reasons if "no test" in r or "zero variance" in r), row["note"])
        return f"{head}, not tested ({why}); {_n_part(row)}."
    verdict = "significant" if row["significant"] else "not significant"
    p = p_clause(row.get("p", row["welch_p"]))
    test = test_name(row)
    if correction == "none":
        tail = f"{verdict} at α = {alpha:g}, uncorrected ({test} {p})"
    else:
        family = family_phrase(row.get("family"))
        tail = (f"{verdict} after {CORRECTION_NAMES[correction]} over {plural(int(row['family_size']), 'pair')}"
                f"{' ' + family if family else ''} ({test} {p}, adjusted {p_value(row['p_adjusted'])})")
    return f"{head}, {tail}; {_n_part(row)}."


def comparison_notes(res: cmp.Comparison) -> list[tuple[str, str]]:
    """(level, message) for the page: runs left out, diverged, pending or repeated seeds, groups too small to
    test, and pairs whose rank test cannot reach alpha."""
    what = res.metric.label if res.metric is not None else "value"
    notes: list[tuple[str, str]] = []
    for gap in res.gaps:
        if gap.lacking:
            notes.append(("info", f"{gap.label}: {gap.lacking} finished run(s) have no {what} at epoch "
                                  f"{gap.epoch} and are left out."))
        if gap.empty:
            notes.append(("info", f"{gap.label}: no finished run scored at epoch {gap.epoch}"
                                  + (f" ({gap.pending} queued or running)." if gap.pending else ".")))
    for g in res.groups:
        if g.n_excluded:
            notes.append(("warning", f"{g.label}: {g.n_excluded} diverged run(s) excluded (no finite value); "
                                     f"n = {g.n} of {g.values.size} runs."))
        if g.n_pending:
            notes.append(("info", f"{g.label}: {g.n_pending} more run(s) queued or running, not included yet."))
        if g.n_duplicates:
            notes.append(("info", f"{g.label}: {g.n_duplicates} run(s) repeat a seed of the same training "
                                  f"(e.g. a shorter and a longer run) and were counted once."))
    for g in res.groups:
        if g.flags:
            notes.append(("warning", health_note(g)))
        if (shape := health.shape_warning(g.values)):
            notes.append(("info", f"{g.label}: {shape}"))
    small = [f"{g.label} (n = {g.n})" for g in res.groups if g.n < cmp.MIN_N]
    if small:   # one warning naming every small group, not one near-identical box per group
        notes.append(("warning", f"Too few seeds in {', '.join(small)}: with n < {cmp.MIN_N} a t-test has about "
                                 f"one degree of freedom, so its p-value means nothing. Pairs involving them are "
                                 f"shown (Δ, g) but not tested and not in the correction family. Run more seeds."))
    pairs = res.pairs
    floors = pairs[pairs["tested"] & ~pairs["mwu_shown"]] if len(pairs) else pairs
    for (na, nb), part in floors.groupby(["n_a", "n_b"]):
        notes.append(("info", f"Mann-Whitney cannot reach p < {res.alpha:g} with n = {na} vs {nb} "
                              f"(smallest possible p = {number(part['mwu_min_p'].iloc[0], 3)}), so it is not "
                              f"shown for {plural(len(part), 'pair')}."))
    return notes


def health_note(g: cmp.Group) -> str:
    """'Adam @ 200: 3 of 5 seeds collapsed (seeds 1, 2, 4: validation accuracy fell back to chance after
    learning); kept in every number here — tick "leave out flagged runs" to test without them.'"""
    total = g.n + g.n_excluded + g.n_flagged_out
    reasons: dict[str, list[int]] = {}
    for seed, h in g.flags:
        reasons.setdefault(h.reason, []).append(seed)
    what = ", ".join(f"{len(seeds)} {reason} (seed{'s' if len(seeds) > 1 else ''} {seed_ranges(seeds)})"
                     for reason, seeds in reasons.items())
    detail = "; ".join(f"seed {seed}: {h.detail}" for seed, h in g.flags[:3] if h.detail)
    if g.n_flagged_out:
        tail = (f"the {plural(g.n_flagged_out, 'flagged run')} collapsed or exploded "
                f"{'is' if g.n_flagged_out == 1 else 'are'} left out: n = {g.n} here")
    else:
        tail = "kept in every number here (they are results); leave them out to see what changes"
    return f"{g.label}: of {total} seeds, {what}. {detail + '. ' if detail else ''}{tail.capitalize()}."


def pair_table(pairs: pd.DataFrame, correction: str = "holm", alpha: float = cmp.ALPHA) -> pd.DataFrame:
    """The per-pair table of the Compare page as display strings, the course z next to the calibrated numbers
    and the family (with its size) next to the adjusted p."""
    adj = f"p adjusted ({CORRECTION_SHORT[correction]})"
    rows = []
    for r in pairs.to_dict("records"):
        why = "" if r["tested"] else f"not tested (n < {cmp.MIN_N})"
        dec = decimals(r["diff"], r["ci_low"], r["ci_high"])
        paired = r.get("test") == "paired-t"
        if paired:
            rank = why or p_value(r["wilcoxon_p"])
        else:
            rank = (p_value(r["mwu_p"]) if r["mwu_shown"] else
                    why or f"cannot reach {alpha:g} (min p {number(r['mwu_min_p'], 3)})")
        m = int(r["family_size"]) if r["tested"] else 0
        adj_dec = decimals(r["diff"], r["ci_adj_low"], r["ci_adj_high"])
        rows.append({
            "pair (Δ = a − b)": f"{r['a']} vs {r['b']}",
            "n": (f"{int(r['n_pairs'])} pairs" if paired else f"{r['n_a']} vs {r['n_b']}"),
            "test": ({"runs": "paired t (same runs)", "seeds": "paired t (by seed)"}.get(r["paired_by"], "paired t")
                     if paired else "Welch"),
            "Δ": number(r["diff"], dec, sign=True),
            "95 % CI of Δ": (f"[{number(r['ci_low'], dec)}, {number(r['ci_high'], dec)}]"
                             if np.isfinite(r["ci_low"]) else "n/a"),
            "p": why or p_value(r["p"]),
            adj: why or p_value(r["p_adjusted"]),
            "95 % CI adjusted like p (excludes 0 ⇔ significant)": (
                f"[{number(r['ci_adj_low'], adj_dec)}, {number(r['ci_adj_high'], adj_dec)}]"
                if np.isfinite(r["ci_adj_low"]) and m > 1 else ("same as 95 % CI" if m == 1 else "n/a")),
            "family (pairs corrected over)": (f"{family_label(r['family'])} · {plural(m, 'pair')}" if r["tested"]
                                              else family_label(r["family"])),
            f"significant (α = {alpha:g})": ("yes" if r["significant"] else "no") if r["tested"] else "",
            "Hedges' g": number(r["hedges_g"], 2, sign=True),
            "P(a > b)": number(r["prob_improvement"], 2),
            "rank test p (Mann-Whitney / Wilcoxon)": rank,
            "course z = d/√2 (standardised Δ, not a test)": number(r["z_seed"], 2, sign=True),
        })
    return pd.DataFrame(rows)


def matrix_cell(row: dict[str, Any], compact: bool) -> str:
    """The text in one cell of the pair matrix: Δ (★ when significant), its CI adjusted like the p (it excludes
    0 exactly when the cell is starred), g, p → adjusted p (family size)."""
    star = "★ " if row["significant"] else ""
    delta = f"{star}Δ {number(row['diff'], sign=True)}"
    if not row["tested"]:
        g = "" if compact else f"\ng {number(row['hedges_g'], 2)}"
        return f"{delta}{g}\nn < {cmp.MIN_N}: not tested"
    adj = f"adj. {p_value(row['p_adjusted'])} (of {int(row['family_size'])})"
    if compact:
        return f"{delta}\n{adj}"
    lo, hi = ((row["ci_adj_low"], row["ci_adj_high"]) if np.isfinite(row.get("ci_adj_low", math.nan))
              else (row["ci_low"], row["ci_high"]))        # the interval adjusted like the p beside it
    dec = decimals(lo, hi)
    return (f"{delta}\n[{number(lo, dec)}, {number(hi, dec)}]\n"
            f"g {number(row['hedges_g'], 2)}\np {p_value(row['p'])} → {adj}")


# -- how many seeds ------------------------------------------------------------------------------------------
def power_rule(comparisons: int) -> str:
    """The test level of a power curve: "uncorrected" or "Bonferroni over 6 pairs"."""
    return "uncorrected" if comparisons == 1 else f"Bonferroni over {comparisons} pairs"


def power_table(plan: cmp.PowerPlan) -> pd.DataFrame:
    """One row per test level: seeds per group for 80 % and 90 % power."""
    rows = []
    for k, part in plan.needed.groupby("comparisons", sort=False):
        level = (f"α = {plan.alpha:g}, uncorrected" if k == 1
                 else f"α = {plan.alpha:g}/{k} (Bonferroni over {k} pairs)")
        rows.append({"test level": level, **{f"{t:.0%} power": int(n)
                                             for t, n in zip(part["power"], part["seeds"], strict=True)}})
    return pd.DataFrame(rows)


def power_caveat(plan: cmp.PowerPlan) -> str:
    return (f"The spread (and any observed Δ) here comes from n = {plan.n_a} and {plan.n_b} seeds. An effect "
            f"estimated from so few seeds is very noisy and biased upward (only the lucky-looking differences "
            f"get followed up), so the seed counts below are optimistic when Δ is the observed one. Prefer the "
            f"smallest difference that would matter to you.")


def power_error(plan: cmp.PowerPlan) -> str:
    return {"no_spread": "No spread to plan with: a group needs at least 2 seeds with different values.",
            "no_delta": "Enter a difference larger than 0."}.get(plan.error, "")


def power_caption(plan: cmp.PowerPlan) -> str:
    dec = decimals(plan.delta, plan.sd)
    family = (f"the pair's family has {plan.comparisons} pairs, so its test runs at α/{plan.comparisons} "
              f"(Bonferroni)" if plan.comparisons > 1 else "the pair is a family of its own: no correction")
    return (f"d = Δ / pooled sd = {number(plan.delta, dec)} / {number(plan.sd, dec)} = {number(plan.d, 2)} "
            f"(sd with ddof = 1); {family}.")


def _seeds_sentence(plan: cmp.PowerPlan) -> str:
    if plan.error:
        text = power_error(plan)
        return f"No seeds can be planned from it: {text[0].lower()}{text[1:]}"
    level = f"α = {plan.alpha:g}/{plan.comparisons}" if plan.comparisons > 1 else f"α = {plan.alpha:g}"
    return ("Detecting a difference that size with 80 % power would take about "
            f"{plan.recommended} seeds per group (d = {number(plan.d, 2)}, {level}); an effect size from "
            f"{plan.current_n} seeds is noisy, so take that as a rough guide.")


def plan_table(plans: Sequence[cmp.SeedPlan]) -> pd.DataFrame:
    """One row per series: seeds present, seeds to queue, the run length they will be trained for."""
    def note(p: cmp.SeedPlan) -> str:
        if p.config is None:
            return "no run of this variant covers the selected epochs"
        return f"{p.n_configs} run lengths; repeating the most common" if p.n_configs > 1 else ""

    return pd.DataFrame([{"variant": p.series, "seeds present": len(p.present), "present": seed_ranges(p.present),
                          "to queue": seed_ranges(p.missing), "runs to queue": len(p.missing),
                          "epochs per run": p.config.epochs if p.config else "", "note": note(p)} for p in plans])


def queued_summary(plans: Sequence[cmp.SeedPlan]) -> str:
    """'Adam seeds 3-4; SGD seeds 2': what a click on "Queue" asked for."""
    return "; ".join(f"{p.series} seeds {seed_ranges(p.missing)}" for p in plans if p.missing)


def curve_message(cur: cmp.CurveTest) -> str:
    """What the significance-along-the-curve test did, or why it could not."""
    if cur.same_runs:
        return ("Both groups are the same runs (one variant at two epochs): pick a pair of two different "
                "variants for the curve test.")
    (la, lb), (na, nb) = cur.labels, cur.n
    note = f" ({cur.n_diverged} diverged run(s) left out.)" if cur.n_diverged else ""
    if cur.tests.empty:
        return (f"Not enough complete {cur.metric.label} curves: n = {na} ({la}) and {nb} ({lb}); each needs 2 or "
                f"more.{note}")
    k = len(cur.tests)
    msg = (f"{cur.metric.label}: {la} (n = {na}) vs {lb} (n = {nb}), Welch at {k} epochs, "
           f"{CORRECTION_SHORT[cur.correction]} over those {k}; significant at {int(cur.tests['significant'].sum())}."
           f"{note}")
    if min(na, nb) < cmp.MIN_N:
        msg += f" With n < {cmp.MIN_N} the test has almost no power."
    return msg


# -- curves and test tables ----------------------------------------------------------------------------------
_ENDED_EARLY = RESUMABLE + tuple(s for s in FINISHED if s != "done")     # failed, cancelled, ..., diverged


def seed_progress_notes(tables: RunTables) -> list[str]:
    """One sentence per series whose seeds have not all reached the same epoch, and one per seed that ended
    early (failed, cancelled, interrupted, diverged)."""
    lab = cmp.series_table(tables.runs)
    if lab.empty:
        return []
    runs = tables.runs.merge(lab[["key", "series"]], on="key")
    reached = tables.epochs.groupby("key")["epoch"].max() if len(tables.epochs) else pd.Series(dtype=int)
    notes = []
    for series, g in runs.groupby("series", sort=False):
        got = [int(reached.get(k, 0)) for k in g["key"]]
        if len(set(got)) > 1:
            lo, hi = min(got), max(got)
            notes.append(f"{series}: seeds have reached epochs {lo}–{hi}; after epoch {lo} the mean (dashed) "
                         f"covers only the seeds that got there (see n in the tooltip).")
        for r in g[g["status"].isin(_ENDED_EARLY)].to_dict("records"):
            at = r.get("diverged_epoch")
            where = f" at epoch {int(at)}" if at is not None and at == at else ""
            notes.append(f"{series} seed {int(r['seed'])} {r['status']}{where}.")
    return notes


def _short(row: str) -> str:
    """A test metric without "test " ("accuracy"), for heads that already say "test"."""
    return label("test", row).replace("test ", "", 1)


def test_table(summary: pd.DataFrame, experiment: str, baselines: dict[str, dict[str, float]] | None = None,
               series_health: dict[str, tuple[int, list]] | None = None,
               metric_rows: Sequence[str] | None = None) -> pd.DataFrame:
    """Display table of `compare.test_summary`: one row per series × test epoch; per metric 'mean ± sd'
    (ddof=1; sd needs n ≥ 2), n seeds, and every seed's value. The best mean in each column (per test epoch)
    is marked ★, best meaning the metric's own direction (lower loss), unless it does no better than a
    trivial predictor: `baselines` (test row name -> {"chance": …}, from `compare.baselines`) adds one row per
    baseline, and a mean at or below it is marked "≤ baseline" instead. `series_health`
    (`compare.series_health`) adds a "runs flagged" column: "3 of 5 seeds collapsed". `metric_rows`: the test
    rows to show (default `metrics.test_metrics`; the best-validation table passes `best_metrics` and
    "best_epoch", which gets no star)."""
    rows_ = tuple(metric_rows) if metric_rows is not None else test_metrics(experiment)
    summ = summary[summary["metric"].isin(rows_)]
    if summ.empty:
        return pd.DataFrame()
    baselines = baselines or {}
    floor = {m: max(b.values()) for m, b in baselines.items() if b}
    seeds = sorted({s for vals in summ["values"] for s in vals})
    best: dict[tuple[int, str], float] = {}
    for (epoch, m), g in summ.groupby(["epoch", "metric"]):
        ok = g["mean"].dropna()
        if len(g) > 1 and len(ok) and by_row("test", m).unit != "epoch":
            best[(epoch, m)] = ok.max() if by_row("test", m).higher_is_better else ok.min()
    rows = []
    for (_, series, epoch), g in summ.groupby(["order", "series", "epoch"]):
        row: dict[str, Any] = {"variant": series, "test epoch": int(epoch), "n": int(g["n"].max())}
        if series_health is not None:
            n_runs, flagged = series_health.get(series, (0, []))
            row["runs flagged (whole run)"] = health.group_note(flagged, max(n_runs, len(flagged))) or "none"
        by = {r["metric"]: r for r in g.to_dict("records")}
        for m in rows_:
            r = by.get(m)
            cell = "–" if r is None else mean_sd(r["mean"], r["sd"], 4)
            if r is not None and r["n"] < row["n"]:
                cell += f" (n={r['n']})"
            trivial = r is not None and m in floor and np.isfinite(r["mean"]) and r["mean"] <= floor[m] + 1e-9
            if trivial:
                cell += " ≤ baseline"
            elif r is not None and best.get((epoch, m)) == r["mean"]:
                cell += " ★"
            row[f"{label('test', m)} (mean ± sd)"] = cell
        for m in rows_:
            for s in seeds:
                r = by.get(m)
                row[f"{m} · seed {s}"] = r["values"].get(s) if r is not None else None
        rows.append(row)
    names = list(dict.fromkeys(n for b in baselines.values() for n in b))
    for name in names:                 # the trivial predictors, as rows under the variants
        row = {"variant": f"baseline: {name}", "test epoch": None, "n": None}
        for m in rows_:
            value = baselines.get(m, {}).get(name)
            row[f"{label('test', m)} (mean ± sd)"] = number(value, 4) if value is not None else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def course_table(summary: pd.DataFrame, metric: str = "pixel_acc", with_f1: bool = True) -> pd.DataFrame:
    """The course report's U-Net table from `compare.test_summary`: one row per series of the registry's U-Net
    variants (display names); per test epoch (200/400/1000) our 'mean ± sd (n=k)', our F1 beside it (the report
    gave accuracy only; F1 says whether the vessels were found at all), and the report's own number for the
    same cell, labelled as the report's (its data were the public vessel images, not ours)."""
    unet = [v for v in VARIANTS if v.startswith("unet/")]
    summ = summary[(summary["metric"] == metric) & summary["variant"].isin(unet)]
    if summ.empty:
        return pd.DataFrame()
    f1 = summary[(summary["metric"] == "f1") & summary["variant"].isin(unet)] if with_f1 else summary.iloc[:0]
    epochs = sorted(summ["epoch"].unique())
    rows = []
    for (_, series), g in summ.groupby(["order", "series"]):
        by = dict(zip(g["epoch"], g.to_dict("records"), strict=True))
        f1_by = {r["epoch"]: r for r in f1[f1["series"] == series].to_dict("records")}
        variant = g["variant"].iloc[0]
        row: dict[str, str] = {"type / epochs": series}
        for e in epochs:
            row[f"{e}: pixel acc. (ours)"] = ("–" if e not in by else
                                              f"{mean_sd(by[e]['mean'], by[e]['sd'])} (n={by[e]['n']})")
            if with_f1:
                row[f"{e}: F1 (ours)"] = "–" if e not in f1_by else mean_sd(f1_by[e]["mean"], f1_by[e]["sd"])
            theirs = course_report.report_cell(variant, e) if series == display_name(variant) else None
            row[f"{e}: pixel acc. (report)"] = "–" if theirs is None else f"{theirs:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("type / epochs")


COURSE_TABLE_CAPTION = (
    "Ours: mean ± sd (ddof=1) over n seeds on the generated vessel images. Report: the course report's table, "
    f"mean over {course_report.SEEDS} seeds on the public retina images, three significant digits, its sd "
    f"given only as {course_report.UNET_SD_RANGE[0]}-{course_report.UNET_SD_RANGE[1]}. Different data: compare "
    "the pattern, not the numbers.")


def data_line(experiment: str) -> str:
    """'Data: 53 classes of generated 28×28 cards (…), made in code — not the public card set the course
    report used.' from the experiment's data card; a plain fallback without one."""
    card = datacards.load(experiment)
    if card is not None:
        return card.summary_line()
    return (f"Data: {EXPERIMENT_INFO[experiment].dataset}, generated in code by adlapp/data — not the public "
            "data set the course report used.")


def our_choices(experiment: str) -> str:
    """What the course report does not give and this app chose, said as ours, with parameter counts."""
    card = datacards.load(experiment)
    params = card.parameters if card is not None else {}
    if experiment == "cnn":
        c = base_config("cnn")
        text = (f"The CNN's layers, Adam or SGD (momentum 0.9) at lr {c.optim.lr:g}, {c.epochs} epochs and 3 seeds "
                f"are the report's; batch size {c.batch_size} and {c.data.train_per_class} training images per "
                "class are this app's choices.")
        if params:
            n = sorted(set(params.values()))
            text += (f" Every variant has {n[0]:,} trainable parameters (batch-norm without affine terms adds "
                     "none)." if len(n) == 1 else "")
        return text
    u = base_config("unet")
    text = (f"The report gives no U-Net architecture or hyperparameters: depth {u.model.depth}, base width "
            f"{u.model.base_width}, {u.optim.name.capitalize()} at lr {u.optim.lr:g}, batch size {u.batch_size}, "
            f"{u.data.n_train} training images of {u.data.image_size}×{u.data.image_size} are this app's "
            "choices, not the course set-up.")
    if params.get("unet/normal") and params.get("unet/nearest"):
        a, b = params["unet/normal"], params["unet/nearest"]
        text += (f" Nearest-neighbour upsampling (resize + 3×3 conv) has {b:,} parameters, transposed conv "
                 f"{a:,}: {100 * (b - a) / a:+.0f} %, so upsampling mode and capacity change together.")
    return text


def baseline_labels(baselines: dict[str, float]) -> dict[str, float]:
    """{"chance": 0.0189} -> {"chance 0.019": 0.0189}: a baseline's label on a chart says its value."""
    return {f"{name} {number(value, 3)}": value for name, value in baselines.items()}


SPREAD_RUNS_WORDS = {
    "same": "the budgets being the same runs scored again (not independent groups, as the test assumes), these "
            "are descriptions, not tests",
    "separate": "each budget here being its own runs (independent groups, as the test assumes), a large p is "
                "still no evidence of equal spread: the test has little power",
    "mixed": "some budgets pooling runs trained only to that budget with longer runs scored there (neither the "
             "same runs nor independent groups), these are descriptions, not tests; scoring the budgets by one "
             "protocol gives a cleaner reading",
}


def spread_lines(spread: cmp.SeedSpread) -> list[str]:
    """Per series: the sd across seeds at the first and the last budget (ratio), the n behind each, with
    Brown-Forsythe's p; then the course report's question answered for these runs: in how many series the
    spread is smaller at the last budget than at the first, and how far the test can be read, from how the
    budgets' runs relate (`SeedSpread.tests.runs`: the same runs, separate runs, or both)."""
    out, smaller = [], 0
    for t in spread.tests.to_dict("records"):
        rows = spread.table[spread.table["series"] == t["series"]].sort_values("epoch")
        first, last = rows.iloc[0], rows.iloc[-1]
        ratio = last["sd"] / first["sd"] if first["sd"] > 0 else math.nan
        smaller += bool(ratio < 1)
        n = (f"n = {int(last['n'])}" if first["n"] == last["n"]
             else f"n = {int(first['n'])} then {int(last['n'])}")
        out.append(f"{t['series']}: sd {number(first['sd'], 4)} after epoch {int(first['epoch'])}, "
                   f"{number(last['sd'], 4)} after epoch {int(last['epoch'])} (×{number(ratio, 2)}; {n}; "
                   f"Brown-Forsythe {p_clause(t['brown_forsythe_p'])})")
    if not out:
        return []
    relations = set(spread.tests["runs"])
    relation = relations.pop() if len(relations) == 1 else "mixed"
    answer = (f"The report saw the seed matter *less* at higher budgets; here the spread is smaller at the last "
              f"budget in {smaller} of {len(out)} variants. With this few seeds, and "
              f"{SPREAD_RUNS_WORDS[relation]}.")
    return [line + "." for line in out] + [answer]


def capacity_note(experiment: str, variants: Sequence[str]) -> str:
    """When the selected variants differ in trainable parameters (the U-Net's nearest-neighbour upsampling
    adds a 3×3 conv where transposed conv has a 2×2 one), say by how much: a difference between them is
    the upsampling *and* the capacity. '' when they are equal or unknown."""
    card = datacards.load(experiment)
    counts = {v: card.parameters[v] for v in variants if card is not None and v in card.parameters}
    if len(set(counts.values())) < 2:
        return ""
    lo, hi = min(counts.values()), max(counts.values())
    big = ", ".join(display_name(v) for v, n in counts.items() if n == hi)
    return (f"Capacity differs: {big} ha{'s' if ',' not in big else 've'} {hi:,} trainable parameters, "
            f"{100 * (hi - lo) / lo:.0f} % more than the {lo:,} of "
            + ", ".join(display_name(v) for v, n in counts.items() if n == lo)
            + ": a difference between them is the upsampling and the capacity together.")


def overfitting_line(table: pd.DataFrame, experiment: str) -> str:
    """'**Overfitting (U-Net)**: the mean validation loss is lowest at epoch 97 for Normal and ends 11.9×
    higher at epoch 1000; …' from `compare.overfitting`. '' when nothing rises (ratio below 1.5)."""
    rising = table[table["ratio"] >= 1.5]
    if rising.empty:
        return ""
    parts = [f"{r['series']}: lowest at epoch {r['min_epoch']}, {number(r['ratio'], 1)}× that by epoch "
             f"{r['last_epoch']} (n = {r['n']})" for r in rising.to_dict("records")]
    return (f"**Overfitting ({EXPERIMENT_INFO[experiment].title})**: the mean validation loss turns up long before "
            f"the end — " + "; ".join(parts) + ". Scores at a budget's last epoch therefore include this; the "
            "best-validation scores (recorded by runs trained now) do not.")


def test_set_note(card, metric_key: str, means: Sequence[float]) -> str:
    """The test set's own sampling error, which no test across seeds contains: for an accuracy on N test
    images, the binomial standard error √(p(1 − p)/N) at the groups' observed means (the largest of them
    is quoted). '' where it does not apply (pixel scores: neighbouring pixels are not independent draws;
    losses) or without a data card."""
    means = [float(m) for m in means if m is not None and np.isfinite(m)]
    if card is None or not means or not metric_key.endswith("acc") or "pixel" in metric_key \
            or card.task != "classification":
        return ""
    n = int(card.splits.get("test" if metric_key.startswith("test") else "val", 0))
    if n <= 0:
        return ""
    se = max(math.sqrt(max(p * (1 - p), 0.0) / n) for p in means)
    lo, hi = min(means), max(means)
    at = f"an accuracy of {number(lo, 3)}" if len(means) == 1 or lo == hi else \
        f"accuracies of {number(lo, 3)}-{number(hi, 3)}"
    return (f"Across seeds, on this fixed test set: the {n:,} test images are one sample, so {at} carry a "
            f"sampling error of up to ± {number(se, 3)} (binomial SE) from the test set itself. The tests here "
            f"compare seeds on the same images and do not include it: they say whether the variants differ on "
            f"these images, not on new ones.")


def figure_heads(summary: pd.DataFrame, experiment: str) -> dict[str, str]:
    """series -> 'BN + Adam / test after epoch 200 (n=3): / accuracy 0.412 ± 0.020 / loss 2.110 ± 0.050'
    (one line each) at each series' last test epoch: the column heads of the course figures."""
    heads = {}
    for series, g in summary.groupby("series", sort=False):
        g = g[g["epoch"] == g["epoch"].max()]
        by = {r["metric"]: r for r in g.to_dict("records")}
        bits = [f"{_short(m)} {mean_sd(by[m]['mean'], by[m]['sd'])}" for m in test_metrics(experiment) if m in by]
        n = int(g["n"].max()) if len(g) else 0
        heads[series] = "\n".join([series, f"test after epoch {int(g['epoch'].max())} (n={n}):", *bits])
    return heads


def test_note(by: dict[str, dict], experiment: str, n: int) -> str:
    """'accuracy 0.412 ± 0.020 · loss 2.110 ± 0.050 (n=2)': every test metric at one epoch, n where it differs
    from the marker's `n`."""
    return " · ".join(f"{_short(m)} {mean_sd(by[m]['mean'], by[m]['sd'])}"
                      + (f" (n={by[m]['n']})" if by[m]["n"] != n else "")
                      for m in test_metrics(experiment) if m in by)


# -- the Home reading ----------------------------------------------------------------------------------------
def course_reading(findings: Sequence[cmp.Finding]) -> list[str]:
    """Short markdown sentences, one list item each, on what `compare.course_study` found.

    Per variant family at an evaluation epoch: which differences are significant after the correction within
    that family (Δ with its 95 % CI, adjusted p with its family size, n per group); where none is, the seeds
    per group 80 % power would need for the clearest observed difference. For U-Net also the report's
    Normal 200-vs-1000 comparison with its z = d/√2, and its claim about ELU and test loss. [] for no findings.
    """
    out: list[str] = []
    for f in findings:
        if f.family.startswith("epoch:"):
            out += _family(f)
        elif f.family == "budgets":
            out += _budget_pair(f)
        elif f.family == "chosen":
            out += _claim(f)
    return out


def _n_pair(r: dict) -> str:
    return f"n = {r['n_a']} vs {r['n_b']}"


def _n_groups(groups: Sequence[cmp.Group]) -> str:
    ns = {g.n for g in groups}
    text = (f"n = {ns.pop()} per variant" if len(ns) == 1
            else "n = " + ", ".join(f"{g.n} ({g.label})" for g in groups))
    excluded = sum(g.n_excluded for g in groups)
    return text + (f", {excluded} diverged run(s) excluded" if excluded else "")


def _family(f: cmp.Finding) -> list[str]:
    """The variants at one epoch: every pair, corrected within the family."""
    lines = _family_lines(f)
    flagged = [f"{g.training}: {health.group_note([h for _, h in g.flags], g.n + g.n_excluded + g.n_flagged_out)}"
               for g in f.groups if g.flags]
    if flagged:
        lines.append("Flagged runs, kept in these numbers (they are results): " + "; ".join(flagged)
                     + ". A collapsed run ends near chance after learning; see the figure's red crosses.")
    return lines


def _family_lines(f: cmp.Finding) -> list[str]:
    res = f.comparison
    experiment = cmp.PRESETS[f.preset].selection.experiment
    title = f"**{EXPERIMENT_INFO[experiment].title}, {res.metric.label} after epoch {f.epoch}**"
    groups = f.groups
    if len(groups) < 2:
        return [f"{title}: fewer than two variants have finished runs here; nothing to compare."]
    pairs = [_by_series(r, groups) for r in f.pairs.to_dict("records")]
    tested = [r for r in pairs if r["tested"] and np.isfinite(r["p"])]
    hits = [r for r in tested if r["significant"]]
    m = len(tested)
    tests = " and ".join(sorted({test_name(r) for r in tested}) or ["Welch"]).replace("Welch", "Welch's")
    method = f"{tests} t-test, {CORRECTION_SHORT[res.correction]} over {plural(m, 'pair')}, α = {res.alpha:g}"
    if not tested:
        why = (f"a t-test on fewer than {cmp.MIN_N} seeds has about one degree of freedom"
               if min(g.n for g in groups) < cmp.MIN_N else "the seeds of each variant agree exactly (no spread)")
        return [f"{title} ({_n_groups(groups)}): not tested, since {why}. " + _clearest(f)]
    if not hits:
        return [f"{title} ({_n_groups(groups)}; {method}): no difference is significant (these seeds cannot "
                "tell the variants apart). " + _clearest(f), *_against_report(f, experiment)]
    verdict = f"{len(hits)} of {m} pairs differ significantly" if m > 1 else "the difference is significant"
    lines = [f"{title} ({_n_groups(groups)}; {method}): {verdict}."]
    lines += _against_report(f, experiment)
    for r in hits:
        word = "higher" if r["diff"] > 0 else "lower"
        lines.append(f"{r['a']} is {word} than {r['b']}: {delta_ci(r)}, {adjusted(r, res.correction)}; "
                     f"{_n_pair(r)}.")
    rest = [r for r in pairs if not r["significant"]]
    if rest:
        lines.append("Not significant: " + "; ".join(
            f"{r['a']} vs {r['b']} ({delta_ci(r)}, "
            + (f"{adjusted(r, res.correction)})" if np.isfinite(r["p_adjusted"]) else "not tested)")
            for r in rest) + ".")
    return lines


def _against_report(f: cmp.Finding, experiment: str) -> list[str]:
    """Where the report states an ordering of a pair in this family and our mean difference points the other
    way: say so (significant or not), so nobody reads our numbers as confirming the report."""
    by_label = {g.label: g for g in f.comparison.groups}
    out = []
    for r in f.pairs.to_dict("records"):
        a, b = by_label[r["a"]], by_label[r["b"]]
        d = course_report.direction(experiment, f.comparison.metric.key, a.variant, b.variant, f.epoch)
        if d is None or not np.isfinite(r["diff"]) or a.training != display_name(a.variant) \
                or b.training != display_name(b.variant):
            continue
        ours_higher = r["diff"] > 0 if a.variant == d.a else r["diff"] < 0      # is d.a higher than d.b here?
        if ours_higher != d.higher:
            strength = "significantly" if r["significant"] else "not significantly"
            out.append(f"Opposite to the report ('{d.words}'): here {display_name(d.a)} scores "
                       f"{'higher' if ours_higher else 'lower'} than {display_name(d.b)} on "
                       f"{f.comparison.metric.label} ({strength}; different data and set-up).")
    return out


def _by_series(r: dict[str, Any], groups: Sequence[cmp.Group]) -> dict[str, Any]:
    """The pair named by its series ("Normal", not "Normal @ 200"), for a sentence that names the epoch."""
    name = {g.label: g.training for g in groups}
    return {**r, "a": name.get(r["a"], r["a"]), "b": name.get(r["b"], r["b"])}


def _clearest(f: cmp.Finding) -> str:
    """The pair with the largest standardised difference, and the seeds 80 % power would need for it."""
    if f.clearest is None or f.plan is None:
        return ""
    r = _by_series(f.comparison.pairs.iloc[f.clearest].to_dict(), f.groups)
    p = f", {adjusted(r, f.comparison.correction)}" if np.isfinite(r["p_adjusted"]) else ""
    return f"The clearest difference is {r['a']} vs {r['b']}: {delta_ci(r)}{p}. " + _seeds_sentence(f.plan)


def _flipped(r: dict[str, Any]) -> dict[str, Any]:
    """The pair read the other way round (b − a)."""
    return {**r, "a": r["b"], "b": r["a"], "diff": -r["diff"], "ci_low": -r["ci_high"], "ci_high": -r["ci_low"],
            "z_seed": -r["z_seed"], "n_a": r["n_b"], "n_b": r["n_a"]}


def _budget_pair(f: cmp.Finding) -> list[str]:
    """One variant after the shorter vs the longer budget: the report's z, kept as a standardised difference."""
    res = f.comparison
    i = int(f.pairs.index[0])
    a, b = res.pair_groups(i)
    r = res.pairs.iloc[i].to_dict()
    if a.epoch < b.epoch:                                  # read as longer − shorter, as the report did
        a, b, r = b, a, _flipped(r)
    paired = r.get("test") == "paired-t"
    n = f"{int(r['n_pairs'])} runs" if paired else _n_pair(r)
    if r["tested"]:
        verdict = "significant" if r["significant"] else "not significant"
        rank = (f", Wilcoxon signed-rank {p_clause(r['wilcoxon_p'])}" if paired and np.isfinite(r["wilcoxon_p"])
                else "")
        test = f"{test_name(r)} {p_clause(r['p'])}{rank}, {adjusted(r, res.correction)}, {n}: {verdict}"
    else:
        test = f"{n}: not tested (n < {cmp.MIN_N})"
    how = (" The same runs are scored at both epochs, so the test is paired (each run against itself)."
           if paired else " Different runs at the two epochs: Welch's test for independent groups.")
    text = (f"**{a.training}, {a.epoch} vs {b.epoch} epochs** (the report's comparison; {res.metric.label} "
            f"after {a.epoch} minus after {b.epoch}): {delta_ci(r)}; {test}.{how} The report's z = "
            f"Δ/√(σa² + σb²) = {number(r['z_seed'], 2)} here (the report: +{course_report.NORMAL_Z:g}σ on its "
            f"data): a standardised difference, not a test.")
    if np.isfinite(r["diff"]) and r["diff"] < 0 < course_report.NORMAL_Z:
        text += (" Opposite to the report: here the longer training scores lower (see the overfitting line "
                 "below: the validation loss rises long before epoch 1000).")
    if np.isfinite(r["z_seed"]) and not r["significant"] and f.plan is not None and not paired:
        text += " " + _seeds_sentence(f.plan)     # the plan is for independent groups: not said of a paired test
    return [text]


def _claim(f: cmp.Finding) -> list[str]:
    """The report: 'when running fewer epochs the ELU activation gives a significantly lower final test-loss
    across the board'. ELU vs ReLU for each upsampling at the smallest budget, corrected over those pairs."""
    res = f.comparison
    rows = f.pairs.to_dict("records")
    m = int(max((r["family_size"] for r in rows), default=0))
    parts, lower = [], 0
    for r in rows:
        if not np.isfinite(r["p_adjusted"]):
            parts.append(f"{r['a']} vs {r['b']}: {delta_ci(r)}, not tested (n < {cmp.MIN_N})")
            continue
        if r["significant"] and r["diff"] < 0:
            lower += 1
        how = ("significantly lower" if r["diff"] < 0 else "significantly higher") if r["significant"] \
            else "not significant"
        parts.append(f"{r['a']} vs {r['b']}: {delta_ci(r)}, {adjusted(r, res.correction)}, {_n_pair(r)}, {how}")
    if m == 0:
        verdict = "not testable with these seeds"
    elif lower == len(rows):
        verdict = "supported by these seeds"
    elif lower:
        verdict = "only partly supported"
    else:
        verdict = "not supported by these seeds"
    epoch = res.groups[0].epoch if res.groups else ""
    head = (f"**The report's claim that ELU gives a lower test loss at fewer epochs**, {res.metric.label} after "
            f"epoch {epoch} (Welch's t-test, {CORRECTION_SHORT[res.correction]} over {plural(m, 'pair')}): "
            f"{verdict}. ")
    return [head + "; ".join(parts) + "."]


# -- runs, plans and progress --------------------------------------------------------------------------------
# Words about runs: the plan of a study, what training it costs, a run's progress line, a run's label in
# pickers. Numbers come from adlapp.planning, adlapp.estimate and adlapp.live.
__all__ += ["PLACE_WORDS", "plan_summary", "plan_detail", "seeds_echo", "about", "device_words", "cost_sentence",
            "confirm_label", "progress_line", "run_label"]

# adlapp.planning.PLACES in a student's words: where a requested run's result comes from.
PLACE_WORDS = {"store": "done (trained here)", "cached": "done (shipped with the app)",
               "training": "training or waiting", "missing": "to train"}


def plan_summary(planned) -> str:
    """'9 run(s): 3 trained here, 3 shipped with the app, 1 training or waiting, 2 to train.' for the frame
    adlapp.planning.plan returns (its `where` column)."""
    counts = planned["where"].value_counts()
    parts = [f"{counts.get('store', 0)} trained here", f"{counts.get('cached', 0)} shipped with the app",
             f"{counts.get('training', 0)} training or waiting", f"{counts.get('missing', 0)} to train"]
    return f"{len(planned)} run(s): " + ", ".join(parts) + "."


def plan_detail(row: dict) -> str:
    """The plan table's "details" of one row of adlapp.planning.plan: which run serves a request when it is
    not the run asked for, and where a run to train resumes."""
    run, key = str(row.get("run") or ""), str(row.get("key") or "")
    resume = int(row.get("resume_from") or 0)
    if row.get("where") == "missing":
        if resume:
            return f"resumes from its checkpoint (epoch {resume} of {int(row['epochs'])} recorded)"
        if row.get("status") in RESUMABLE:
            return f"{row['status']} before its first checkpoint: starts again from epoch 1"
        return ""
    if run and run != key:
        scored = ", ".join(str(e) for e in row.get("run_test_epochs") or ())
        return (f"uses the {int(row['run_epochs']):,}-epoch run {run[:8]}"
                + (f" (test-scored after epochs {scored})" if scored else ""))
    return ""


def seeds_echo(seeds: Sequence[int]) -> str:
    """'→ 3 seeds: 0, 1, 2' (or '→ 1 seed: 7', '→ 10 seeds: 0-9'): what a typed seed field means."""
    seeds = list(seeds)
    listed = ", ".join(map(str, seeds)) if len(seeds) <= 6 else seed_ranges(seeds)
    return f"→ {plural(len(seeds), 'seed')}: {listed}"


def about(seconds: float) -> str:
    """A rough duration: '≈ 40 s', '≈ 70 min', '≈ 3.5 h'."""
    if not math.isfinite(seconds) or seconds < 90:
        return f"≈ {max(1, round(seconds)) if math.isfinite(seconds) else '?'} s"
    if seconds < 90 * 60:
        return f"≈ {round(seconds / 60)} min"
    return f"≈ {seconds / 3600:.1f} h"


def device_words(device: str) -> str:
    """The run table's device label as a student reads it: 'cpu' -> 'this CPU', 'cuda (NVIDIA H200)' ->
    'this GPU (NVIDIA H200)'."""
    if device.startswith("cuda"):
        name = device[device.find("(") + 1:-1] if "(" in device else ""
        return f"this GPU ({name})" if name else "this GPU"
    if device == "mps":
        return "this Mac's GPU"
    return "this CPU"


def cost_sentence(cost, device: str = "cpu") -> str:
    """'Training 14 runs × 1,000 epochs takes ≈ 70 min on this CPU.' for an adlapp.estimate.Cost; runs that
    resume train fewer epochs, which reads '14 runs, 9,400 epochs in all'."""
    if not cost.runs:
        return "Nothing to train."
    each = cost.epochs // cost.runs if cost.epochs % cost.runs == 0 else None
    size = (f"{plural(cost.runs, 'run')} × {each:,} epoch{'' if each == 1 else 's'}" if each is not None
            else f"{plural(cost.runs, 'run')}, {cost.epochs:,} epochs in all")
    return f"Training {size} takes {about(cost.seconds)} on {device_words(device)}."


def confirm_label(cost) -> str:
    """The tick box that stands between a long training and its button: 'I understand this takes ≈ 70 min'."""
    return f"I understand this takes {about(cost.seconds)}"


def progress_line(variant: str, seed: int, status: str, epoch: int, epochs: int,
                  sec_per_epoch: float | None = None, eta_s: float | None = None) -> str:
    """'Adam seed 0: running, epoch 4 of 10, 2.00 s/epoch, ETA 12 s' (the ETA only while running)."""
    text = f"{variant} seed {seed}: {status}, epoch {epoch} of {epochs}"
    if sec_per_epoch is not None:
        text += f", {sec_per_epoch:.2f} s/epoch"
    if eta_s is not None and status == "running":
        text += f", ETA {duration(eta_s)}"
    return text


def run_label(row: dict) -> str:
    """'Adam seed 0 · 1a2b3c4d': one run in a picker. No status in it, so the entry stays the same while the
    run moves from queued to running; the variant's display name, as on every other page."""
    seed = row["seed"]
    seed = int(seed) if isinstance(seed, (int, float)) and seed == seed else seed
    return f"{display_name(str(row['variant']))} seed {seed} · {str(row['key'])[:8]}"
