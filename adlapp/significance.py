"""Data shaping for the Compare page: which numbers go into `adlapp.stats`, and what comes back out.

Pure functions on `RunTables` (no streamlit, no torch, no I/O). Every statistic is computed by
`adlapp.stats`; this module only chooses the values per group, decides which pairs can be tested, formats
tables and plans the missing seeds.

A *group* is one variant's finished runs scored at one evaluation epoch: `values` has shape `(n_runs,)`, one
value per seed, NaN for a run that diverged before that epoch (stats excludes and counts it). Groups can be
the same variant at two epochs ("normal at 200 vs normal at 1000", as in the course report).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from adlapp import stats
from adlapp.config import (COURSE_NAMES, EXPERIMENTS, VARIANTS, ConfigError, RunConfig, config_from_dict,
                           config_to_dict)
from adlapp.store import ACTIVE, FINISHED, RunTables

__all__ = [
    "ALPHA", "MIN_N", "CUSTOM", "METHOD_CAPTION", "OPTIONAL_STOPPING", "Metric", "METRICS", "Preset", "PRESETS",
    "Group", "Comparison", "PowerPlan", "SeedPlan", "CurveTest", "metric_by_key", "variant_name", "options",
    "preset_state", "default_preset", "sanitize_state", "extract_groups", "compare_groups", "pair_table",
    "power_plan", "missing_seeds", "seed_requests", "seed_ranges", "plan_table", "curve_significance",
]

ALPHA = 0.05
MIN_N = 3                           # below this a pair is shown but not tested (Welch df ~1, CI useless)
MAX_CURVE_POINTS = 200              # epochs tested along a curve; the family is the epochs shown
CUSTOM = "Custom"
_CORRECTION_LABEL = {"holm": "Holm", "bh": "BH", "none": "none"}
_RUN_ONLY = ("epochs", "eval_at", "checkpoint_every")   # config fields that don't change what is trained

METHOD_CAPTION = (
    "Default: Welch's t-test with Holm's correction over the pairs shown. Seeds are unpaired runs (the same "
    "seed number does not pair two variants), variants have unequal spread, and Welch stays calibrated at "
    "n = 3-10 seeds (3.6-4.7 % false positives at α = 0.05 in simulation). The course z = Δ/√(σa² + σb²) "
    "divides by the spread of single runs: it is a standardised difference (Cohen's d/√2), not a test. "
    "Read as a test it gets *less* significant as seeds are added (2.8 % → 0 % false positives, power at "
    "d = 2 falling from 32 % to 13 % between 3 and 10 seeds), and bootstrap percentile CIs give 19 % → 9 % "
    "false positives at n = 3 → 10."
)
OPTIONAL_STOPPING = (
    "Decide the number of seeds before running them and analyse once: adding seeds until a result turns "
    "significant (optional stopping) inflates false positives. Keep diverged and 'bad' seeds; they are data."
)


@dataclass(frozen=True)
class Metric:
    """One number per run: `source` "test" (tests table) or "val" (per-epoch table), row name `name`."""
    source: str
    name: str
    label: str
    higher_is_better: bool

    @property
    def key(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def curve_name(self) -> str:
        """The per-epoch validation metric that tracks this metric along training."""
        return self.name if self.source == "val" else f"val_{self.name}"

    @property
    def curve_label(self) -> str:
        return self.label if self.source == "val" else self.label.replace("test", "validation", 1)


METRICS: dict[str, tuple[Metric, ...]] = {
    "cnn": (Metric("test", "acc", "test accuracy", True), Metric("test", "loss", "test loss", False),
            Metric("val", "val_acc", "validation accuracy", True),
            Metric("val", "val_loss", "validation loss", False)),
    "unet": (Metric("test", "pixel_acc", "test pixel accuracy", True), Metric("test", "f1", "test F1", True),
             Metric("test", "loss", "test loss", False),
             Metric("val", "val_pixel_acc", "validation pixel accuracy", True),
             Metric("val", "val_f1", "validation F1", True), Metric("val", "val_loss", "validation loss", False)),
}


def metric_by_key(experiment: str, key: str) -> Metric:
    for m in METRICS[experiment]:
        if m.key == key:
            return m
    raise KeyError(f"metric {key!r}: not a {experiment} metric ({', '.join(m.key for m in METRICS[experiment])})")


def variant_name(variant: str) -> str:
    """The course report's name where there is one ("BN + Adam"), else the registry/label name."""
    return COURSE_NAMES.get(variant, variant)


@dataclass(frozen=True)
class Preset:
    experiment: str
    variants: tuple[str, ...]
    epochs: tuple[int, ...]           # evaluation epochs; unavailable ones fall back to the latest available
    metric: str                       # Metric.key


PRESETS: dict[str, Preset] = {
    "Course: CNN optimisers & BN": Preset("cnn", ("cnn/bn-adam", "cnn/adam", "cnn/sgd"), (200,), "test:acc"),
    "Course: U-Net variants at 200/400/1000": Preset(
        "unet", ("unet/normal", "unet/nearest", "unet/elu", "unet/nearest-elu"), (200, 400, 1000),
        "test:pixel_acc"),
    "Course: normal 200 vs 1000": Preset("unet", ("unet/normal",), (200, 1000), "test:pixel_acc"),
}


# -- runs as one parsed frame -------------------------------------------------------------------------
def _parse(config_json: Any, epochs: int) -> tuple[RunConfig | None, tuple[int, ...], str]:
    """(config or None, test epochs, training signature: the config without run-length fields)."""
    try:
        raw = json.loads(config_json) if isinstance(config_json, str) else dict(config_json)
    except (TypeError, ValueError):
        return None, (int(epochs),), ""
    sig = json.dumps({k: v for k, v in raw.items() if k not in _RUN_ONLY}, sort_keys=True)
    try:
        cfg = config_from_dict(raw)
    except (ConfigError, TypeError, ValueError):
        return None, (int(epochs),), sig
    return cfg, cfg.test_epochs, sig


def _runs(tables: RunTables, experiment: str) -> pd.DataFrame:
    """Runs of one experiment with parsed `cfg`, `test_epochs` and `train_sig` columns, in table order."""
    runs = tables.runs[tables.runs["experiment"] == experiment].copy()
    parsed = [_parse(c, e) for c, e in zip(runs["config"], runs["epochs"])]
    runs["cfg"] = [p[0] for p in parsed]
    runs["test_epochs"] = [p[1] for p in parsed]
    runs["train_sig"] = [p[2] for p in parsed]
    runs["seed"] = runs["seed"].astype(int)
    runs["epochs"] = runs["epochs"].astype(int)
    return runs.reset_index(drop=True)


def _variant_order(names: set[str]) -> list[str]:
    known = [v for v in VARIANTS if v in names]
    return known + sorted(names - set(known))


def options(tables: RunTables) -> dict[str, dict[str, list]]:
    """Per experiment with finished runs: {"variants": [...], "epochs": [...]} (evaluation epochs)."""
    out: dict[str, dict[str, list]] = {}
    for exp in EXPERIMENTS:
        runs = _runs(tables, exp)
        runs = runs[runs["status"].isin(FINISHED)]
        if runs.empty:
            continue
        epochs = sorted({e for t in runs["test_epochs"] for e in t})
        out[exp] = {"variants": _variant_order(set(runs["variant"])), "epochs": epochs}
    return out


def preset_state(name: str, opts: dict[str, dict[str, list]], experiment: str | None = None) -> dict[str, Any]:
    """Widget values for a preset, restricted to what the data has: keys sig_preset, sig_experiment,
    sig_variants, sig_epochs, sig_metric. "Custom" (or a preset whose experiment has no runs, which then
    becomes "Custom") keeps `experiment` and starts from its course variants at the latest epoch."""
    preset = PRESETS.get(name)
    if preset is None or preset.experiment not in opts:
        name = CUSTOM
        exp = experiment if experiment in opts else next(iter(opts))
        course = [p for p in PRESETS.values() if p.experiment == exp][:1]
        preset = course[0] if course else Preset(exp, (), (), METRICS[exp][0].key)
    exp, avail = preset.experiment, opts[preset.experiment]
    variants = [v for v in preset.variants if v in avail["variants"]] or avail["variants"]
    epochs = [e for e in preset.epochs if e in avail["epochs"]] or avail["epochs"][-1:]
    return {"sig_preset": name, "sig_experiment": exp, "sig_variants": variants, "sig_epochs": epochs,
            "sig_metric": preset.metric}


def default_preset(opts: dict[str, dict[str, list]]) -> str:
    """The first course preset whose experiment has finished runs, else "Custom"."""
    return next((n for n, p in PRESETS.items() if p.experiment in opts), CUSTOM)


def sanitize_state(state: dict[str, Any], opts: dict[str, dict[str, list]]) -> dict[str, Any]:
    """Fixes for stored widget values that the current data no longer offers (a multiselect raises on them)."""
    exp = state.get("sig_experiment")
    if exp not in opts:
        return preset_state(CUSTOM, opts)
    fixes: dict[str, Any] = {}
    for key, field_ in (("sig_variants", "variants"), ("sig_epochs", "epochs")):
        kept = [v for v in state.get(key, []) if v in opts[exp][field_]]
        if kept != list(state.get(key, [])):
            fixes[key] = kept
    if state.get("sig_metric") not in [m.key for m in METRICS[exp]]:
        fixes["sig_metric"] = METRICS[exp][0].key
    return fixes


# -- groups -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One variant's finished runs scored at one epoch. `values`: `(n_runs,)`, NaN where the run diverged."""
    variant: str
    epoch: int
    label: str
    values: np.ndarray
    seeds: tuple[int, ...]
    keys: tuple[str, ...]
    n_pending: int = 0                # queued/running runs that will add to this group, not included yet
    n_duplicates: int = 0             # runs repeating a seed of the same training, counted once
    n_configs: int = 1                # distinct trainings (data size, batch, ...) mixed in this group

    @property
    def n(self) -> int:
        return int(np.isfinite(self.values).sum())

    @property
    def n_excluded(self) -> int:
        return int(self.values.size - self.n)


def _lookup(tables: RunTables, metric: Metric, keys: set[str]) -> dict[tuple[str, int], float]:
    df = tables.tests if metric.source == "test" else tables.epochs
    df = df[(df["name"] == metric.name) & df["key"].isin(keys)]
    return {(k, int(e)): (math.nan if v is None else float(v))
            for k, e, v in zip(df["key"], df["epoch"], df["value"])}


def _covers(row: dict[str, Any], metric: Metric, epoch: int) -> bool:
    """Would this run produce a value at `epoch` (a test evaluation there, or a validation epoch)?"""
    return epoch in row["test_epochs"] if metric.source == "test" else epoch <= row["epochs"]


def extract_groups(tables: RunTables, experiment: str, variants: Sequence[str], epochs: Sequence[int],
                   metric: Metric) -> tuple[list[Group], list[tuple[str, str]]]:
    """One group per (variant, epoch), in that order, plus (level, message) notes for the page.

    Finished runs (done, diverged) that are scored at the epoch belong to the group. A diverged run with no
    value there contributes NaN, so `adlapp.stats` excludes and counts it. Queued/running runs are counted
    in `n_pending` only. Two runs with the same seed and the same training (e.g. a 200- and a 1000-epoch run)
    are one sample, not two: the first is kept. Groups without any run are left out with a note.
    """
    runs = _runs(tables, experiment)
    runs = runs[runs["variant"].isin(variants)]
    values = _lookup(tables, metric, set(runs["key"]))
    multi = len(set(epochs)) > 1
    groups: list[Group] = []
    notes: list[tuple[str, str]] = []
    for v in variants:
        mine = runs[runs["variant"] == v].to_dict("records")
        for e in epochs:
            label = f"{variant_name(v)} @ {e}" if multi else variant_name(v)
            here = [r for r in mine if _covers(r, metric, e)]
            done = [r for r in here if r["status"] in FINISHED]
            pending = sum(r["status"] in ACTIVE for r in here)
            seen: set[tuple[str, int]] = set()
            vals, seeds, keys = [], [], []
            # a done run without the value (metric not recorded) says nothing; a diverged one is NaN
            lacking = [r for r in done if (r["key"], e) not in values and r["status"] != "diverged"]
            usable = [r for r in done if r not in lacking]
            for r in sorted(usable, key=lambda r: not np.isfinite(values.get((r["key"], e), math.nan))):
                if (r["train_sig"], r["seed"]) in seen:
                    continue
                seen.add((r["train_sig"], r["seed"]))
                vals.append(values.get((r["key"], e), math.nan))
                seeds.append(r["seed"])
                keys.append(r["key"])
            if lacking:
                notes.append(("info", f"{label}: {len(lacking)} finished run(s) have no {metric.label} "
                                      f"at epoch {e} and are left out."))
            if not keys:
                notes.append(("info", f"{label}: no finished run scored at epoch {e}"
                                      + (f" ({pending} queued or running)." if pending else ".")))
                continue
            g = Group(v, e, label, np.asarray(vals, dtype=float), tuple(seeds), tuple(keys), pending,
                      len(usable) - len(keys), len({r["train_sig"] for r in usable}))
            groups.append(g)
            notes.extend(_group_notes(g))
    small = [f"{g.label} (n = {g.n})" for g in groups if g.n < MIN_N]
    if small:   # one warning naming every small group, not one near-identical box per group
        notes.append(("warning", f"Too few seeds in {', '.join(small)}: with n < {MIN_N} a t-test has about "
                                 f"one degree of freedom, so its p-value means nothing. Pairs involving them are "
                                 f"shown (Δ, g) but not tested and not in the correction family. Run more seeds."))
    return groups, notes


def _group_notes(g: Group) -> list[tuple[str, str]]:
    out = []
    if g.n_excluded:
        out.append(("warning", f"{g.label}: {g.n_excluded} diverged run(s) excluded (no finite value); "
                               f"n = {g.n} of {g.values.size} runs."))
    if g.n_pending:
        out.append(("info", f"{g.label}: {g.n_pending} more run(s) queued or running, not included yet."))
    if g.n_duplicates:
        out.append(("info", f"{g.label}: {g.n_duplicates} run(s) repeat a seed of the same training "
                            f"(e.g. a shorter and a longer run) and were counted once."))
    if g.n_configs > 1:
        out.append(("warning", f"{g.label}: mixes {g.n_configs} different trainings (data size, batch size, "
                               f"...); compare like with like."))
    return out


# -- the comparison -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """summary: one row per group. points: one row per finite seed value. pairs: one row per pair."""
    summary: pd.DataFrame
    points: pd.DataFrame
    pairs: pd.DataFrame
    notes: list[tuple[str, str]] = field(default_factory=list)
    groups: tuple[Group, ...] = ()

    def pair_labels(self) -> list[str]:
        return [f"{a} vs {b}" for a, b in zip(self.pairs["a"], self.pairs["b"])]

    def pair_groups(self, i: int) -> tuple[Group, Group]:
        """The two groups of the i-th pair (a, b)."""
        by_label = {g.label: g for g in self.groups}
        return by_label[self.pairs["a"].iloc[i]], by_label[self.pairs["b"].iloc[i]]


def _axis_label(g: Group) -> str:
    extra = f", {g.n_excluded} diverged" if g.n_excluded else ""
    return f"{g.label} (n={g.n}{extra})"


def compare_groups(groups: Sequence[Group], correction: stats.Correction = "holm",
                   alpha: float = ALPHA) -> Comparison:
    """Every pair of groups. Pairs where both groups have n >= MIN_N go through `stats.pairwise` together
    (so the correction family is exactly the tested pairs shown); the others get `stats.compare`'s Δ, CI and
    g with no p-value. Mann-Whitney p is blanked where it cannot reach alpha (`mwu_min_p >= alpha`)."""
    labels = [g.label for g in groups]
    by_label = {g.label: g for g in groups}
    summary = pd.DataFrame([{"label": g.label, "axis_label": _axis_label(g), "variant": g.variant,
                             "epoch": g.epoch, **stats.summarize(g.values), "n_pending": g.n_pending}
                            for g in groups])
    points = pd.DataFrame([{"label": g.label, "axis_label": _axis_label(g), "variant": variant_name(g.variant),
                            "seed": s, "value": float(x)}
                           for g in groups for s, x in zip(g.seeds, g.values) if np.isfinite(x)],
                          columns=["label", "axis_label", "variant", "seed", "value"])
    big = {g.label: g.values for g in groups if g.n >= MIN_N}
    tested = stats.pairwise(big, correction, alpha) if len(big) >= 2 else None
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if a in big and b in big:
                row = tested[(tested["a"] == a) & (tested["b"] == b)].iloc[0].to_dict()
                row["tested"] = True
            else:
                row = {"a": a, "b": b, **stats.compare(by_label[a].values, by_label[b].values, alpha=alpha,
                                                         names=(a, b))}
                row.update(welch_p=math.nan, mwu_p=math.nan, p_adjusted=math.nan, significant=False,
                           tested=False, family_size=0, sentence=_untested_sentence(row, by_label))
            row["mwu_shown"] = bool(row["tested"] and row["mwu_min_p"] < alpha)
            if not row["mwu_shown"]:
                row["mwu_p"] = math.nan
            rows.append(row)
    pairs = pd.DataFrame(rows)
    notes: list[tuple[str, str]] = []
    if pairs.empty:
        return Comparison(summary, points, pairs, notes, tuple(groups))
    pairs["axis_a"] = [_axis_label(by_label[a]) for a in pairs["a"]]
    pairs["axis_b"] = [_axis_label(by_label[b]) for b in pairs["b"]]
    floors = pairs[pairs["tested"] & ~pairs["mwu_shown"]]
    for (na, nb), part in floors.groupby(["n_a", "n_b"]):
        notes.append(("info", f"Mann-Whitney cannot reach p < {alpha:g} with n = {na} vs {nb} "
                              f"(smallest possible p = {part['mwu_min_p'].iloc[0]:.3f}), so it is not shown "
                              f"for {len(part)} pair(s)."))
    return Comparison(summary, points, pairs, notes, tuple(groups))


def _num(x: float, digits: int = 3, sign: bool = True) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return (f"{x:+.{digits}g}" if sign else f"{x:.{digits}g}").replace("-", "\u2212")


def _untested_sentence(row: dict[str, Any], by_label: dict[str, Group]) -> str:
    small = [f"{k} has n = {by_label[k].n}" for k in (row["a"], row["b"]) if by_label[k].n < MIN_N]
    excl = row["n_excluded_a"] + row["n_excluded_b"]
    return (f"{row['a']} vs {row['b']}: Δ = {_num(row['diff'])}, Hedges' g = {_num(row['hedges_g'], 2)}; "
            f"not tested because n < {MIN_N} ({', '.join(small)}); n = {row['n_a']} vs {row['n_b']}"
            + (f" ({excl} diverged run(s) excluded)." if excl else "."))


def _p(p: float) -> str:
    """As in stats' sentences: '< 0.001', 2 significant digits below 0.1, else 2 decimals."""
    if p is None or not np.isfinite(p):
        return ""
    if p < 0.001:
        return "< 0.001"
    return f"{p:.{1 - math.floor(math.log10(p))}f}" if p < 0.1 else f"{p:.2f}"


def pair_table(pairs: pd.DataFrame, correction: stats.Correction, alpha: float = ALPHA) -> pd.DataFrame:
    """The per-pair table of the page as display strings, the course z next to the calibrated numbers."""
    adj = f"p adjusted ({_CORRECTION_LABEL[correction]})"
    rows = []
    for r in pairs.to_dict("records"):
        why = "" if r["tested"] else f"not tested (n < {MIN_N})"
        rows.append({
            "pair (Δ = a − b)": f"{r['a']} vs {r['b']}",
            "n": f"{r['n_a']} vs {r['n_b']}",
            "Δ": _num(r["diff"], 4),
            "95 % CI of Δ (Welch)": (f"[{_num(r['ci_low'], 3, False)}, {_num(r['ci_high'], 3, False)}]"
                                     if np.isfinite(r["ci_low"]) else "n/a"),
            "course z = d/√2 (standardised Δ, not a test)": _num(r["z_seed"], 3),
            "Welch p": _p(r["welch_p"]) or why or "n/a",
            adj: _p(r["p_adjusted"]) or why or "n/a",
            f"significant (α = {alpha:g})": ("yes" if r["significant"] else "no") if r["tested"] else "",
            "Hedges' g": _num(r["hedges_g"], 3),
            "P(a > b)": "n/a" if not np.isfinite(r["prob_improvement"]) else f"{r['prob_improvement']:.2f}",
            "Mann-Whitney p": (_p(r["mwu_p"]) if r["mwu_shown"] else
                               why or f"cannot reach {alpha:g} (min p {r['mwu_min_p']:.3f})"),
        })
    return pd.DataFrame(rows)


# -- how many seeds -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerPlan:
    delta: float                      # smallest difference that matters, metric units
    sd: float                         # pooled sd (ddof=1) of the pair
    d: float                          # delta / sd
    current_n: int
    comparisons: int
    table: pd.DataFrame               # one row per test level: seeds per group for "80% power", "90% power"
    curve: pd.DataFrame               # n, power, rule
    error: str = ""
    caveat: str = ""
    recommended: int = 0              # seeds per group for 80 % power at the corrected level; 0 if unknown


def power_plan(a: Group, b: Group, delta: float | None, comparisons: int, alpha: float = ALPHA,
               ns: Sequence[int] = range(2, 31)) -> PowerPlan:
    """Seeds per group for 80 % / 90 % power, with and without Bonferroni over `comparisons` pairs
    (Bonferroni alpha/m: a slightly conservative stand-in for Holm), and the power curve over `ns`.

    `delta` None means the observed |Δ| of the pair. Effect size d = delta / pooled sd (ddof=1), both
    from `adlapp.stats`; seed counts from `stats.seeds_needed`, the curve from `stats.power_curve`.
    """
    sd = stats.pooled_sd(a.values, b.values)
    observed = abs(float(np.nanmean(a.values) - np.nanmean(b.values))) if a.n and b.n else math.nan
    delta = observed if delta is None else float(delta)
    m = max(1, int(comparisons))
    current = min(a.n, b.n)
    caveat = (f"The spread (and any observed Δ) here comes from n = {a.n} and {b.n} seeds. An effect "
              f"estimated from so few seeds is very noisy and biased upward (only the lucky-looking "
              f"differences get followed up), so the seed counts below are optimistic when Δ is the "
              f"observed one. Prefer the smallest difference that would matter to you.")
    empty = pd.DataFrame(columns=["n", "power", "rule"])
    if not (np.isfinite(sd) and sd > 0):
        return PowerPlan(delta, sd, math.nan, current, m, pd.DataFrame(), empty,
                         "No spread to plan with: a group needs at least 2 seeds with different values.",
                         caveat)
    if not (np.isfinite(delta) and delta > 0):
        return PowerPlan(delta, sd, math.nan, current, m, pd.DataFrame(), empty,
                         "Enter a difference larger than 0.", caveat)
    d = delta / sd
    levels = [(1, f"α = {alpha:g}, uncorrected", "uncorrected")]
    if m > 1:
        levels.append((m, f"α = {alpha:g}/{m} (Bonferroni over {m} pairs)", f"Bonferroni over {m} pairs"))
    table = pd.DataFrame([{"test level": rule, **{f"{target:.0%} power": stats.seeds_needed(d, alpha, target, k)
                                                  for target in (0.8, 0.9)}} for k, rule, _ in levels])
    curve = pd.concat([stats.power_curve(d, ns, alpha, k).assign(rule=short) for k, _, short in levels],
                      ignore_index=True)
    return PowerPlan(delta, sd, d, current, m, table, curve, "", caveat,
                     recommended=stats.seeds_needed(d, alpha, 0.8, m))


# -- which seeds are missing --------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedPlan:
    variant: str
    config: RunConfig | None          # the training to repeat; None when no run's config could be read
    present: tuple[int, ...]          # seeds already finished or on their way, for every selected epoch
    missing: tuple[int, ...]          # seeds to queue
    note: str = ""


def missing_seeds(tables: RunTables, experiment: str, variants: Sequence[str], epochs: Sequence[int],
                  metric: Metric, target_n: int) -> list[SeedPlan]:
    """For each variant: which seeds to queue so that every selected (variant, epoch) group reaches
    `target_n` seeds.

    The config is the most common one among the variant's finished runs that cover all selected epochs
    (ties: the earliest run). A seed is present when a finished or queued/running run of the same training
    covers every selected epoch with it; diverged seeds count as present (they are results, not to be
    replaced). Missing seeds are the smallest non-negative integers not present, so failed, cancelled or
    interrupted seeds are asked for again (the store resumes them).
    """
    runs = _runs(tables, experiment)
    out = []
    for v in dict.fromkeys(variants):
        mine = runs[(runs["variant"] == v) & runs["cfg"].notna()].to_dict("records")
        usable = [r for r in mine if all(_covers(r, metric, e) for e in epochs)]
        finished = [r for r in usable if r["status"] in FINISHED] or usable
        if not finished:
            out.append(SeedPlan(v, None, (), (), "no run of this variant covers the selected epochs"))
            continue
        counts = pd.Series([_canonical(r["cfg"]) for r in finished]).value_counts(sort=False)
        cfg = next(r["cfg"] for r in finished if _canonical(r["cfg"]) == counts.idxmax())
        sig = next(r["train_sig"] for r in finished if r["cfg"] == cfg)
        present = sorted({r["seed"] for r in usable
                          if r["train_sig"] == sig and r["status"] in FINISHED + ACTIVE})
        need = max(0, int(target_n) - len(present))
        missing, s = [], 0
        while len(missing) < need:
            if s not in present:
                missing.append(s)
            s += 1
        note = f"{len(counts)} different configs; repeating the most common" if len(counts) > 1 else ""
        out.append(SeedPlan(v, cfg, tuple(present), tuple(missing), note))
    return out


def _canonical(cfg: RunConfig) -> str:
    return json.dumps(config_to_dict(cfg), sort_keys=True)


def seed_requests(plans: Sequence[SeedPlan]) -> list[tuple[RunConfig, int]]:
    """The (config, seed) pairs to submit: exactly the missing seeds."""
    return [(p.config, s) for p in plans if p.config is not None for s in p.missing]


def seed_ranges(seeds: Sequence[int]) -> str:
    """(0, 1, 2, 5, 7, 8) -> '0-2, 5, 7-8'."""
    out: list[str] = []
    for s in sorted(seeds):
        if out and s == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{s}"
        else:
            out.append(str(s))
    return ", ".join(out)


def plan_table(plans: Sequence[SeedPlan]) -> pd.DataFrame:
    """One row per variant: seeds present, seeds to queue, the run length they will be trained for."""
    return pd.DataFrame([{"variant": variant_name(p.variant), "seeds present": len(p.present),
                          "present": seed_ranges(p.present), "to queue": seed_ranges(p.missing),
                          "runs to queue": len(p.missing), "epochs per run": p.config.epochs if p.config else "",
                          "note": p.note} for p in plans])


# -- significance along the curve ---------------------------------------------------------------------
@dataclass(frozen=True)
class CurveTest:
    curves: pd.DataFrame              # label, epoch, mean, lo, hi, n
    tests: pd.DataFrame               # stats.welch_over_epochs rows
    message: str = ""


def _curve_matrix(tables: RunTables, runs: pd.DataFrame, variant: str, name: str) -> tuple[pd.DataFrame, int]:
    """`(n_seeds, n_epochs)` of one variant's done runs (one run per seed and training), and how many
    diverged runs were left out."""
    mine = runs[(runs["variant"] == variant) & runs["status"].isin(FINISHED)]
    mine = mine.drop_duplicates(["train_sig", "seed"])
    diverged = int((mine["status"] == "diverged").sum())
    keys = list(mine.loc[mine["status"] == "done", "key"])
    rows = tables.epochs[(tables.epochs["name"] == name) & tables.epochs["key"].isin(keys)]
    wide = rows.pivot_table(index="key", columns="epoch", values="value", aggfunc="first")
    return wide.astype(float), diverged


def curve_significance(tables: RunTables, experiment: str, variant_a: str, variant_b: str, metric: Metric,
                       correction: stats.Correction = "holm", alpha: float = ALPHA,
                       max_points: int = MAX_CURVE_POINTS) -> CurveTest:
    """Welch at each epoch of the validation curve (`stats.welch_over_epochs`), corrected over the epochs
    shown. Only epochs where every done run of both variants has a finite value are used, thinned evenly to
    at most `max_points` (the last epoch is always kept). Diverged runs are left out and counted."""
    empty = CurveTest(pd.DataFrame(), pd.DataFrame())
    if variant_a == variant_b:
        return CurveTest(empty.curves, empty.tests, "Both groups are the same runs (one variant at two epochs): "
                                                    "pick a pair of two different variants for the curve test.")
    runs = _runs(tables, experiment)
    name = metric.curve_name
    (wa, da), (wb, db) = (_curve_matrix(tables, runs, v, name) for v in (variant_a, variant_b))
    common = [e for e in wa.columns.intersection(wb.columns)
              if wa[e].notna().all() and wb[e].notna().all()]
    la, lb = variant_name(variant_a), variant_name(variant_b)
    note = f" ({da + db} diverged run(s) left out.)" if da + db else ""
    if len(wa) < 2 or len(wb) < 2 or not common:
        return CurveTest(empty.curves, empty.tests, f"Not enough complete {name} curves: n = {len(wa)} "
                                                    f"({la}) and {len(wb)} ({lb}); each needs 2 or more.{note}")
    common = sorted(common)
    idx = np.unique(np.linspace(0, len(common) - 1, min(max_points, len(common))).round().astype(int))
    shown = [common[i] for i in idx]
    tests = stats.welch_over_epochs(wa[shown].to_numpy(), wb[shown].to_numpy(), correction, alpha, shown)
    curves = pd.concat([pd.DataFrame({"label": lab, "epoch": shown, "mean": w[shown].mean().to_numpy(),
                                      "lo": w[shown].min().to_numpy(), "hi": w[shown].max().to_numpy(),
                                      "n": len(w)})
                        for lab, w in ((la, wa), (lb, wb))], ignore_index=True)
    msg = (f"{metric.curve_label}: {la} (n = {len(wa)}) vs {lb} (n = {len(wb)}), "
           f"Welch at {len(shown)} epochs, "
           f"{_CORRECTION_LABEL[correction]} over those {len(shown)}; significant at "
           f"{int(tests['significant'].sum())}.{note}")
    if min(len(wa), len(wb)) < MIN_N:
        msg += f" With n < {MIN_N} the test has almost no power."
    return CurveTest(curves, tests, msg)
