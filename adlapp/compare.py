"""The numbers behind the Compare page and the Home reading: series, groups, pairs, families, seed plans.

Pure functions on `RunTables`: no streamlit, no torch, no I/O and no English (sentences, captions and display
tables are adlapp.report's, charts adlapp.charts'). Every statistic comes from adlapp.stats.

Vocabulary, each defined once here:
- *series*: the runs that belong together, one variant trained one way. Runs are in one series when they have
  the same variant and the same `config.training_signature` (the config without epochs/eval_at: a 200-epoch
  run is the first 200 epochs of a 1000-epoch run). `series_table` is that rule; curves, test tables,
  Compare groups, the Home reading and the summaries all use it. A seed counts once per series.
- *group*: one series scored at one evaluation epoch; `values` has shape `(n_runs,)`, one value per seed, NaN
  for a run that diverged before that epoch (stats excludes and counts it).
- *pair*: two groups, Δ = a − b.
- *family*: the pairs corrected together (`family_of`). By default the pairs within one evaluation epoch form
  one family per epoch, and the pairs of one series with itself at two epochs form their own family; pairs
  of different series at different epochs are compared only when asked for (`Selection.cross`), in a family
  of their own; pairs listed explicitly (`Selection.pairs`) form one family.
- *selection*: what to compare; a *preset* is a named selection, resolved against the data by `resolve`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from adlapp import datacards, health, stats
from adlapp.config import (
    COURSE_VARIANTS,
    EXPERIMENT_INFO,
    EXPERIMENTS,
    RUN_ONLY_FIELDS,
    VARIANTS,
    ConfigError,
    RunConfig,
    config_from_dict,
    config_to_dict,
    display_name,
    training_signature,
)
from adlapp.config import batches_per_epoch as steps_per_epoch
from adlapp.health import Health
from adlapp.metrics import Metric, compare_metrics, metric
from adlapp.store import ACTIVE, FINISHED, RunTables

__all__ = [
    "ALPHA", "CI_LEVEL", "MIN_N", "MAX_CURVE_POINTS", "MAX_PRESET_EPOCHS", "CUSTOM", "variant_rank", "series_table",
    "one_per_seed",
    "runs_frame", "test_summary", "options", "Selection", "Preset", "PRESETS", "default_preset", "resolve",
    "restrict", "Group", "Gap", "extract_groups", "run_health", "series_health", "chance_levels", "baselines",
    "family_of", "pairing", "BUDGET_RULES", "has_budget_protocols", "course_tables", "batches_per_epoch",
    "Comparison", "compare_groups", "analyse", "SeedSpread", "seed_spread", "overfitting",
    "PowerPlan", "power_plan", "SeedPlan", "missing_seeds", "seed_requests", "CurveTest", "curve_test",
    "Finding", "READING", "course_study",
]

ALPHA = 0.05
CI_LEVEL = 0.95                     # every CI of a single pair; a family's simultaneous CI widens it (Bonferroni)
MIN_N = 3                           # below this a pair is shown but not tested (Welch df ~1, CI useless)
MAX_CURVE_POINTS = 200              # epochs tested along a curve; the family is the epochs shown
MAX_PRESET_EPOCHS = 3               # a preset whose course epochs are not in the data takes at most this many
CUSTOM = "Custom"


# -- series: which runs belong together ------------------------------------------------------------------------
def _config_dict(config: Any) -> dict[str, Any] | None:
    try:
        d = json.loads(config) if isinstance(config, str) else config
    except (TypeError, ValueError):
        return None
    return dict(d) if isinstance(d, dict) else None


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
    return out


def variant_rank(variant: str) -> tuple[int, str]:
    """Display order of variants: the registry's order, then any other label alphabetically."""
    names = list(VARIANTS)
    return (names.index(variant), "") if variant in names else (len(names), variant)


def series_table(runs: pd.DataFrame) -> pd.DataFrame:
    """key -> series label, variant, display order, training signature and seed, one row per run in `runs`.

    The one rule for which runs belong together: same variant and same `config.training_signature`. The
    label is the variant's display name; where runs of one variant were trained in more than one way (data
    size, batch size, ...), each way is its own series, labelled with the settings that differ
    ("Adam (train_per_class=1)"). Runs that differ only in epochs or eval_at are one series.
    """
    cols = ["key", "series", "variant", "order", "signature", "seed"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    configs = [_config_dict(c) for c in runs["config"]]
    sigs = [training_signature(c) if c is not None else "" for c in configs]
    variants = [str(v) for v in runs["variant"]]
    labels = [display_name(v) for v in variants]
    by_variant: dict[str, list[int]] = {}
    for i, v in enumerate(variants):
        by_variant.setdefault(v, []).append(i)
    for v, idx in by_variant.items():
        if len({sigs[i] for i in idx}) < 2:
            continue
        flat = {i: _flat({k: x for k, x in (configs[i] or {}).items() if k not in RUN_ONLY_FIELDS}) for i in idx}
        fields = sorted({f for i in idx for f in flat[i]
                         if len({json.dumps(flat[j].get(f), default=str) for j in idx}) > 1})
        for i in idx:
            labels[i] = (f"{display_name(v)} ("
                         + ", ".join(f"{f.split('.')[-1]}={flat[i].get(f)}" for f in fields) + ")")
    out = pd.DataFrame({"key": runs["key"].to_numpy(), "series": labels, "variant": variants, "signature": sigs,
                        "seed": pd.to_numeric(runs["seed"], errors="coerce").to_numpy()})
    ranked = sorted(set(zip(out["variant"], out["series"], strict=True)),
                    key=lambda vs: (variant_rank(vs[0]), vs[1]))
    rank = {s: i for i, (_, s) in enumerate(ranked)}
    out["order"] = out["series"].map(rank)
    return out[cols]


def one_per_seed(rows: pd.DataFrame, by: Sequence[str], best_first: pd.Series | None = None) -> pd.DataFrame:
    """A seed counts once per series: of the rows that share `by` (which holds "series" and "seed", e.g. a
    200- and a 1000-epoch run of one training), keep the first after sorting by `best_first` descending
    (stable, so ties keep table order)."""
    if best_first is not None:
        rows = rows.iloc[np.argsort(-np.asarray(best_first, dtype=float), kind="stable")]
    return rows.drop_duplicates(list(by))


def _parse(config: Any, epochs: int) -> tuple[RunConfig | None, tuple[int, ...]]:
    d = _config_dict(config)
    try:
        cfg = config_from_dict(d) if d is not None else None
    except (ConfigError, TypeError, ValueError):
        cfg = None
    return cfg, (cfg.test_epochs if cfg is not None else (int(epochs),))


def runs_frame(tables: RunTables, experiment: str) -> pd.DataFrame:
    """The experiment's runs in table order with `series`, `order`, `signature`, a parsed `cfg` (None when
    the stored config no longer parses) and `test_epochs`."""
    runs = tables.runs[tables.runs["experiment"] == experiment].reset_index(drop=True)
    lab = series_table(runs)
    runs = runs.assign(series=lab["series"].to_numpy(), order=lab["order"].to_numpy(),
                       signature=lab["signature"].to_numpy())
    parsed = [_parse(c, e) for c, e in zip(runs["config"], runs["epochs"], strict=True)]
    runs["cfg"] = [p[0] for p in parsed]
    runs["test_epochs"] = [p[1] for p in parsed]
    runs["seed"] = runs["seed"].astype(int)
    runs["epochs"] = runs["epochs"].astype(int)
    return runs


def test_summary(tables: RunTables, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Test metrics per series, test epoch and metric (stored row name): n, mean, sd (ddof=1) and every seed's
    value {seed: value}. A seed counts once per series (a finite value preferred)."""
    cols = ["series", "variant", "order", "epoch", "metric", "n", "mean", "sd", "values"]
    lab = series_table(tables.runs)
    t = tables.tests
    if lab.empty or t.empty:
        return pd.DataFrame(columns=cols)
    if metrics is not None:
        t = t[t["name"].isin(list(metrics))]
    t = t.merge(lab, on="key").astype({"value": float})
    t = one_per_seed(t, ["series", "seed", "epoch", "name"], np.isfinite(t["value"]))
    rows = []
    for (order, series, variant, epoch, name), g in t.groupby(["order", "series", "variant", "epoch", "name"]):
        v = g["value"]
        fin = v[np.isfinite(v)]
        rows.append({"series": series, "variant": variant, "order": int(order), "epoch": int(epoch),
                     "metric": name, "n": int(len(fin)), "mean": float(fin.mean()) if len(fin) else math.nan,
                     "sd": float(fin.std(ddof=1)) if len(fin) > 1 else math.nan,
                     "values": {int(s): float(x) for s, x in zip(g["seed"], v, strict=True)}})
    return pd.DataFrame(rows, columns=cols)


def options(tables: RunTables) -> dict[str, dict[str, list]]:
    """Per experiment with finished runs: {"variants": [...], "epochs": [...]} (evaluation epochs)."""
    out: dict[str, dict[str, list]] = {}
    for exp in EXPERIMENTS:
        runs = runs_frame(tables, exp)
        runs = runs[runs["status"].isin(FINISHED)]
        if runs.empty:
            continue
        epochs = sorted({e for t in runs["test_epochs"] for e in t})
        out[exp] = {"variants": sorted(set(runs["variant"]), key=variant_rank), "epochs": epochs}
    return out


# -- selections and presets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """What to compare: every (series of a variant) x epoch is a group; families follow `family_of`."""
    experiment: str
    variants: tuple[str, ...]
    epochs: tuple[int, ...]           # evaluation epochs
    metric: str                       # adlapp.metrics key, e.g. "test_acc"
    pairs: tuple[tuple[str, str], ...] = ()   # explicit (variant a, variant b) pairs at each epoch: one family
    cross: bool = False               # also different series at different epochs, in a family of their own
    exclude_flagged: bool = False     # leave out runs adlapp.health flags (collapsed, exploded) at that epoch
    pair_seeds: bool = False          # pair different series by seed (common random numbers): paired t
    protocol: str = "all"             # which runs score a budget: see BUDGET_RULES


@dataclass(frozen=True)
class Preset:
    selection: Selection
    fallback: str = "latest"          # epochs when the course's are not in the data: latest | every | ends | first


_UNET4 = ("unet/normal", "unet/nearest", "unet/elu", "unet/nearest-elu")
PRESETS: dict[str, Preset] = {
    "Course: CNN optimisers & BN": Preset(
        Selection("cnn", ("cnn/bn-adam", "cnn/adam", "cnn/sgd"), (200,), "test_acc")),
    "Course: U-Net variants at 200/400/1000": Preset(
        Selection("unet", _UNET4, (200, 400, 1000), "test_pixel_acc", protocol="shared"), "every"),
    "Course: normal 200 vs 1000": Preset(Selection("unet", ("unet/normal",), (200, 1000), "test_pixel_acc",
                                                   protocol="shared"), "ends"),
    # The report: "when running fewer epochs the ELU activation gives a significantly lower final test-loss
    # across the board". ELU vs ReLU for each upsampling at the smallest budget; Δ = ELU − ReLU.
    "Course: ELU vs ReLU test loss at 200": Preset(
        Selection("unet", _UNET4, (200,), "test_loss", protocol="shared",
                  pairs=(("unet/elu", "unet/normal"), ("unet/nearest-elu", "unet/nearest"))), "first"),
}


def default_preset(opts: dict[str, dict[str, list]]) -> str:
    """The first course preset whose experiment has finished runs, else CUSTOM."""
    return next((n for n, p in PRESETS.items() if p.selection.experiment in opts), CUSTOM)


def _epochs(course: Sequence[int], avail: Sequence[int], fallback: str) -> tuple[int, ...]:
    have = [e for e in course if e in avail]
    avail = list(avail)
    if fallback == "ends":
        return tuple(course) if len(have) == len(course) else tuple(dict.fromkeys(avail[:1] + avail[-1:]))
    if have:
        return tuple(have)
    return tuple({"every": avail[-MAX_PRESET_EPOCHS:], "first": avail[:1]}.get(fallback, avail[-1:]))


def resolve(name: str, opts: dict[str, dict[str, list]], experiment: str | None = None) -> tuple[str, Selection]:
    """(preset name, selection) restricted to what the data has. A preset whose experiment has no runs, and
    CUSTOM, become CUSTOM: `experiment` (else the first with runs) from its first course preset, without
    explicit pairs. Variants missing from the data are dropped (all available ones if none is left);
    epochs follow the preset's fallback."""
    preset = PRESETS.get(name)
    if preset is None or preset.selection.experiment not in opts:
        name = CUSTOM
        exp = experiment if experiment in opts else next(iter(opts))
        course = [p for p in PRESETS.values() if p.selection.experiment == exp][:1]
        preset = course[0] if course else Preset(Selection(exp, (), (), compare_metrics(exp)[0].key))
        preset = replace(preset, selection=replace(preset.selection, pairs=()))
    sel, avail = preset.selection, opts[preset.selection.experiment]
    variants = tuple(v for v in sel.variants if v in avail["variants"]) or tuple(avail["variants"])
    pairs = tuple(p for p in sel.pairs if set(p) <= set(variants))
    return name, replace(sel, variants=variants, epochs=_epochs(sel.epochs, avail["epochs"], preset.fallback),
                         pairs=pairs)


def restrict(sel: Selection, opts: dict[str, dict[str, list]]) -> Selection | None:
    """`sel` without what the data no longer offers (None when its experiment has no finished runs)."""
    if sel.experiment not in opts:
        return None
    avail = opts[sel.experiment]
    keys = [m.key for m in compare_metrics(sel.experiment)]
    variants = tuple(v for v in sel.variants if v in avail["variants"])
    return replace(sel, variants=variants, epochs=tuple(e for e in sel.epochs if e in avail["epochs"]),
                   metric=sel.metric if sel.metric in keys else keys[0],
                   pairs=tuple(p for p in sel.pairs if set(p) <= set(variants)))


# Which runs of a series score it at an evaluation epoch E (adlapp.planning.PROTOCOLS says what each costs):
#   all:      every finished run scored at E (its own end, or a test epoch inside a longer run);
#   shared:   only the series' longest runs, scored inside the run: the budgets are the same runs, paired;
#   separate: only runs trained exactly E epochs: every budget from its own runs, as the course report did.
# With one run length per series (the CNN study) the three are the same.
BUDGET_RULES: tuple[str, ...] = ("all", "shared", "separate")


def _budget_rows(rows: list[dict[str, Any]], epoch: int, protocol: str) -> list[dict[str, Any]]:
    if protocol == "shared":
        longest = max((r["epochs"] for r in rows), default=0)
        return [r for r in rows if r["epochs"] == longest]
    if protocol == "separate":
        return [r for r in rows if r["epochs"] == epoch]
    if protocol != "all":
        raise ValueError(f"protocol={protocol!r}: must be one of {', '.join(BUDGET_RULES)}")
    return rows


def batches_per_epoch(tables: RunTables, experiment: str) -> int | None:
    """The optimiser steps per epoch all of the experiment's runs share (config.batches_per_epoch), or None
    when they differ or one trained on a folder: an x axis in batches needs one conversion for every curve."""
    runs = runs_frame(tables, experiment)
    values = {steps_per_epoch(c) if c is not None else None for c in runs["cfg"]}
    return values.pop() if len(values) == 1 else None


def course_tables(tables: RunTables) -> RunTables:
    """The runs that reproduce the report's own study: the variants it trained (config.COURSE_VARIANTS), and per
    series only its longest runs (one run per seed, scored at every budget, as the course figures are drawn),
    so that question-answering runs (other variants, separate budget runs, lr sweeps) never enter Figure 1 or
    the course table."""
    keys: set[str] = set()
    for exp in EXPERIMENTS:
        runs = runs_frame(tables, exp)
        runs = runs[runs["variant"].isin(COURSE_VARIANTS)]
        for _, g in runs.groupby("series", sort=False):
            keys |= set(g.loc[g["epochs"] == g["epochs"].max(), "key"])
    return tables.select(keys)


def has_budget_protocols(tables: RunTables, experiment: str) -> bool:
    """Do some series hold runs of different lengths that score one epoch (so the protocols differ)?"""
    runs = runs_frame(tables, experiment)
    runs = runs[runs["status"].isin(FINISHED)]
    for _, g in runs.groupby("series"):
        lengths = set(g["epochs"])
        if len(lengths) > 1 and any(e in t for e in lengths for t in g["test_epochs"] if e < max(t)):
            return True
    return False


# -- groups ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One series' finished runs scored at one epoch. `values`: `(n_runs,)`, NaN where the run diverged."""
    variant: str
    epoch: int
    label: str
    values: np.ndarray
    seeds: tuple[int, ...]
    keys: tuple[str, ...]
    n_pending: int = 0                # queued/running runs that will add to this group, not included yet
    n_duplicates: int = 0             # runs repeating a seed of the same series, counted once
    series: str = ""                  # the series label; "" means the variant is the series
    flags: tuple[tuple[int, Health], ...] = ()   # (seed, health) of every flagged run, kept or left out
    n_flagged_out: int = 0            # flagged runs left out (Selection.exclude_flagged), not in `values`

    @property
    def n(self) -> int:
        return int(np.isfinite(self.values).sum())

    @property
    def n_excluded(self) -> int:
        return int(self.values.size - self.n)

    @property
    def training(self) -> str:
        """The series: groups with the same `training` are the same runs scored at different epochs."""
        return self.series or self.variant

    def by_seed(self) -> dict[int, tuple[str, float]]:
        """seed -> (run key, value) of the runs in `values`."""
        keys = self.keys if len(self.keys) == len(self.seeds) else ("",) * len(self.seeds)   # "": key unknown
        return {s: (k, float(x)) for s, k, x in zip(self.seeds, keys, self.values, strict=True)}


@dataclass(frozen=True)
class Gap:
    """Runs that could have been in a group and are not: `lacking` finished runs without the value, or no
    finished run at all (`empty`, with `pending` queued or running)."""
    label: str
    epoch: int
    lacking: int = 0
    empty: bool = False
    pending: int = 0


def _metric(m: Metric | str) -> Metric:
    return m if isinstance(m, Metric) else metric(m)


def _lookup(tables: RunTables, m: Metric, keys: set[str]) -> dict[tuple[str, int], float]:
    df = tables.tests if m.source == "test" else tables.epochs
    df = df[(df["name"] == m.row) & df["key"].isin(keys)]
    return {(k, int(e)): (math.nan if v is None else float(v))
            for k, e, v in zip(df["key"], df["epoch"], df["value"], strict=True)}


def _covers(row: dict[str, Any], m: Metric, epoch: int) -> bool:
    """Would this run produce a value at `epoch` (a test evaluation there, or a per-epoch row)?"""
    return epoch in row["test_epochs"] if m.source == "test" else epoch <= row["epochs"]


def extract_groups(tables: RunTables, experiment: str, variants: Sequence[str], epochs: Sequence[int],
                   metric_: Metric | str, exclude_flagged: bool = False, protocol: str = "all"
                   ) -> tuple[list[Group], list[Gap]]:
    """One group per (variant, series, epoch), in that order, plus the gaps the page reports.

    Finished runs (done, diverged) scored at the epoch belong to the group; a diverged one without a value
    there is NaN, so `adlapp.stats` excludes and counts it. A done run without the value says nothing and is
    a gap. Queued/running runs are counted in `n_pending` only. A seed counts once per series (the first
    run with a finite value is kept). A (variant, epoch) without any finished run is a gap, not a group.
    Every run is checked by adlapp.health over its epochs up to the group's epoch; flagged runs (collapsed,
    exploded, diverged) are listed in `Group.flags` and, with `exclude_flagged`, collapsed and exploded ones
    are left out of `values` and counted in `n_flagged_out` (a diverged run is NaN either way).
    `protocol` (BUDGET_RULES) chooses which runs of a series score each epoch.
    """
    m = _metric(metric_)
    runs = runs_frame(tables, experiment)
    runs = runs[runs["variant"].isin(list(variants))]
    values = _lookup(tables, m, set(runs["key"]))
    health_at = {e: run_health(tables, runs, e) for e in dict.fromkeys(epochs)}
    multi = len(set(epochs)) > 1
    groups: list[Group] = []
    gaps: list[Gap] = []
    for v in variants:
        mine = runs[runs["variant"] == v].sort_values("order", kind="stable")
        for series in list(dict.fromkeys(mine["series"])) or [display_name(v)]:
            rows = mine[mine["series"] == series].to_dict("records")
            for e in epochs:
                label = f"{series} @ {e}" if multi else series
                group, gap = _group(_budget_rows(rows, e, protocol), v, series, e, label, m, values, health_at[e],
                                    exclude_flagged)
                gaps += [gap] if gap else []
                groups += [group] if group else []
    return groups, gaps


def run_health(tables: RunTables, runs: pd.DataFrame, epoch: int | None = None) -> dict[str, Health]:
    """key -> Health of each run in `runs` over its epochs up to `epoch` (None: all), from its per-epoch rows
    (adlapp.health). Chance is the data's (adlapp.datacards): 1/classes for the cards' validation accuracy,
    0 for the vessels' validation F1 (what predicting background everywhere scores)."""
    if runs.empty:
        return {}
    epochs = tables.epochs[tables.epochs["key"].isin(set(runs["key"]))]
    levels = chance_levels(runs)
    out: dict[str, Health] = {}
    for level in set(levels.values()):
        mine = runs[runs["key"].map(levels) == level]
        out.update(health.flag_runs(mine, epochs[epochs["key"].isin(set(mine["key"]))], level, upto=epoch))
    return out


def series_health(tables: RunTables, experiment: str) -> dict[str, tuple[int, list[Health]]]:
    """series -> (finished seeds, Health of its flagged runs) over every recorded epoch: what the test tables
    say next to a mean ("3 of 5 seeds collapsed"). A seed counts once per series, as everywhere."""
    runs = runs_frame(tables, experiment)
    runs = runs[runs["status"].isin(FINISHED)].drop_duplicates(["series", "seed"])
    flags = run_health(tables, runs)
    return {series: (len(g), [flags[k] for k in g["key"] if k in flags and flags[k].flagged])
            for series, g in runs.groupby("series", sort=False)}


def chance_levels(runs: pd.DataFrame) -> dict[str, float]:
    """key -> the validation score a model that learned nothing gets on that run's data: 0 for segmentation
    F1 (background everywhere), 1/classes for classification on data a data card describes (the cards have
    53 classes whatever the training-set size). Unknown (a folder data set): 0, so a run is called collapsed
    only when its score fell below a quarter of its peak, which any fall to a chance level of 1/classes
    below that also is."""
    cards = {e: datacards.load(e) for e in set(runs["experiment"])}
    out: dict[str, float] = {}
    for key, exp, config in zip(runs["key"], runs["experiment"], runs["config"], strict=True):
        name = ((_config_dict(config) or {}).get("data") or {}).get("name")
        card = cards.get(exp)
        if exp in EXPERIMENT_INFO and EXPERIMENT_INFO[exp].task == "segmentation":
            out[key] = 0.0
        elif card is not None and card.chance is not None and card.name == name:
            out[key] = card.chance
        else:
            out[key] = 0.0
    return out


BASELINE_NAMES = {"chance": "chance", "majority": "majority class", "all_background": "all background"}


def baselines(experiment: str, metric_key: str, split: str | None = None) -> dict[str, float]:
    """What trivial predictors score on the built-in data for this metric, from the experiment's data card
    (computed from the generated data, not typed in): {"chance": 1/53, "majority class": …} for accuracy,
    {"all background": …} for pixel accuracy and F1; {} for losses, or without a card. `split` overrides the
    metric's own split (a validation curve against its test metric's baseline)."""
    card = datacards.load(experiment)
    if card is None:
        return {}
    m = metric(metric_key)
    split = split or ("test" if m.split == "test" else "val")
    value = card.baseline(m.key, split) if m.split in ("val", "test") else None
    if value is None:
        return {}
    if card.task == "classification":       # balanced classes: the majority class scores chance, one line
        same = card.chance is not None and abs(card.chance - value) < 1e-6
        return {"chance": value} if same else {"chance": card.chance, "majority class": value}
    return {"all background": value}


def _group(rows: list[dict], variant: str, series: str, epoch: int, label: str, m: Metric,
           values: dict[tuple[str, int], float], flags: dict[str, Health] | None = None,
           exclude_flagged: bool = False) -> tuple[Group | None, Gap | None]:
    flags = flags or {}
    here = [r for r in rows if _covers(r, m, epoch)]
    done = [r for r in here if r["status"] in FINISHED]
    pending = sum(r["status"] in ACTIVE for r in here)
    lacking = [r for r in done if (r["key"], epoch) not in values and r["status"] != "diverged"]
    usable = [r for r in done if r not in lacking]
    usable.sort(key=lambda r: not np.isfinite(values.get((r["key"], epoch), math.nan)))
    kept: list[dict] = []
    for r in usable:                                  # a seed counts once: the first run, a finite value first
        if all(k["seed"] != r["seed"] for k in kept):
            kept.append(r)
    flagged = tuple((int(r["seed"]), flags[r["key"]]) for r in kept if r["key"] in flags and flags[r["key"]].flagged)
    out = {seed for seed, h in flagged if h.reason != "diverged"} if exclude_flagged else set()
    n_out = sum(r["seed"] in out for r in kept)
    kept = [r for r in kept if r["seed"] not in out]
    if not kept:
        return None, Gap(label, epoch, len(lacking), True, pending)
    group = Group(variant, epoch, label, np.asarray([values.get((r["key"], epoch), math.nan) for r in kept]),
                  tuple(r["seed"] for r in kept), tuple(r["key"] for r in kept), pending,
                  len(usable) - len(kept) - n_out, series, flagged, n_out)
    return group, (Gap(label, epoch, len(lacking)) if lacking else None)


# -- pairs and families ----------------------------------------------------------------------------------------
def family_of(a: Group, b: Group, cross: bool = False) -> str | None:
    """The family a pair is corrected in: "epoch:E" (both at epoch E), "budgets" (one series at two epochs),
    "cross" (different series at different epochs; only when `cross`), else None (not compared)."""
    if a.epoch == b.epoch:
        return f"epoch:{a.epoch}"
    if a.training == b.training:
        return "budgets"
    return "cross" if cross else None


def _candidates(groups: Sequence[Group], pairs: Sequence[tuple[str, str]],
                cross: bool) -> list[tuple[Group, Group, str]]:
    if pairs:
        return [(a, b, "chosen") for va, vb in pairs for a in groups for b in groups
                if a.variant == va and b.variant == vb and a.epoch == b.epoch]
    out = []
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            fam = family_of(a, b, cross)
            if fam is not None:
                out.append((a, b, fam))
    return out


@dataclass(frozen=True)
class Comparison:
    """groups (and the gaps next to them); summary: one row per group (`stats.summarize`); points: one row per
    finite seed value; pairs: one row per compared pair with its `family` and `family_size`."""
    groups: tuple[Group, ...]
    summary: pd.DataFrame
    points: pd.DataFrame
    pairs: pd.DataFrame
    correction: stats.Correction = "holm"
    alpha: float = ALPHA
    gaps: tuple[Gap, ...] = ()
    metric: Metric | None = None

    def pair_labels(self) -> list[str]:
        return [f"{a} vs {b}" for a, b in zip(self.pairs["a"], self.pairs["b"], strict=True)]

    def pair_groups(self, i: int) -> tuple[Group, Group]:
        """The two groups of the i-th pair (a, b)."""
        by_label = {g.label: g for g in self.groups}
        return by_label[self.pairs["a"].iloc[i]], by_label[self.pairs["b"].iloc[i]]

    def family_pairs(self, i: int) -> int:
        """How many pairs share the i-th pair's family (tested or not): the comparisons to plan seeds for."""
        return int((self.pairs["family"] == self.pairs["family"].iloc[i]).sum())


_PAIR_COLUMNS = ["a", "b", "family", "test", "paired_by", *stats.COMPARE_KEYS, "n_pairs", "p", "wilcoxon_p", "dz",
                 "p_adjusted", "significant", "family_size", "ci_adj_low", "ci_adj_high", "tested", "mwu_shown"]


def pairing(a: Group, b: Group, pair_seeds: bool = False) -> str:
    """How the two groups' values are matched: "runs" when they are the same runs scored twice (every
    finite seed of either is in both, with the same run key: one series at two epochs), "seeds" when asked
    to pair different runs by seed (`pair_seeds`: same-seed runs share initial weights and batch order
    across variants), "" when they are independent samples."""
    fa = {s: k for s, (k, x) in a.by_seed().items() if np.isfinite(x)}
    fb = {s: k for s, (k, x) in b.by_seed().items() if np.isfinite(x)}
    if fa and fa == fb and all(fa.values()):
        return "runs"
    if pair_seeds and a.training != b.training and len(set(fa) & set(fb)) >= 2:
        return "seeds"
    return ""


def _matched(a: Group, b: Group) -> tuple[np.ndarray, np.ndarray]:
    """The values of the seeds both groups have, in seed order: `(n_common,)` each."""
    va, vb = a.by_seed(), b.by_seed()
    common = sorted(set(va) & set(vb))
    return np.asarray([va[s][1] for s in common]), np.asarray([vb[s][1] for s in common])


def _pair_row(a: Group, b: Group, family: str, paired_by: str, alpha: float) -> dict[str, Any]:
    """Welch (independent groups) or the paired t-test (matched values) with its Wilcoxon signed-rank p.
    The descriptive columns and Hedges' g are the groups' either way; Δ, CI and p are the test's."""
    row = {"a": a.label, "b": b.label, "family": family, "paired_by": paired_by,
           **stats.compare(a.values, b.values, alpha=alpha, names=(a.label, b.label)),
           "n_pairs": 0, "wilcoxon_p": math.nan, "dz": math.nan}
    if not paired_by:
        row.update(test="welch", p=row["welch_p"])
        row["tested"] = a.n >= MIN_N and b.n >= MIN_N
        return row
    xa, xb = _matched(a, b)
    pt = stats.paired(xa, xb, alpha=alpha, names=(a.label, b.label))
    row.update(test="paired-t", p=pt["p"], welch_p=math.nan, mwu_p=math.nan, n_pairs=pt["n"], diff=pt["diff"],
               ci_low=pt["ci_low"], ci_high=pt["ci_high"], wilcoxon_p=pt["wilcoxon_p"], dz=pt["dz"],
               note="; ".join(n for n in (row["note"], pt["note"]) if n))
    row["tested"] = pt["n"] >= MIN_N
    return row


def compare_groups(groups: Sequence[Group], correction: stats.Correction = "holm", alpha: float = ALPHA,
                   pairs: Sequence[tuple[str, str]] = (), cross: bool = False, gaps: Sequence[Gap] = (),
                   metric_: Metric | str | None = None, pair_seeds: bool = False) -> Comparison:
    """Every pair `family_of` admits (or the explicit `pairs`), corrected within its family.

    The test follows `pairing`: the paired t-test (Wilcoxon signed-rank beside it) for the same runs scored
    twice and, with `pair_seeds`, for different series matched by seed; Welch (Mann-Whitney beside it)
    otherwise. Column `test` says which ("welch" | "paired-t") and `p` is its p-value. A pair is tested when
    both groups (paired: the matched pairs) have n >= MIN_N; the family is exactly its tested pairs
    (`stats.adjust_within`). Untested pairs keep Δ, CI and g with no p-value. Mann-Whitney's p is blanked
    where it cannot reach alpha (`mwu_min_p >= alpha`). `ci_adj_low/high` is Δ's CI adjusted like its p
    (`_adjusted_ci`): it excludes 0 exactly when the pair is significant."""
    summary = pd.DataFrame([{"label": g.label, "variant": g.variant, "series": g.training, "epoch": g.epoch,
                             **stats.summarize(g.values), "n_pending": g.n_pending} for g in groups])
    points = pd.DataFrame([{"label": g.label, "variant": g.variant, "series": g.training, "seed": s,
                            "value": float(x)}
                           for g in groups for s, x in zip(g.seeds, g.values, strict=True) if np.isfinite(x)],
                          columns=["label", "variant", "series", "seed", "value"])
    rows = []
    by_label = {g.label: g for g in groups}
    for a, b, fam in _candidates(groups, pairs, cross):
        row = _pair_row(a, b, fam, pairing(a, b, pair_seeds), alpha)
        if not row["tested"]:
            row.update(welch_p=math.nan, mwu_p=math.nan, p=math.nan, wilcoxon_p=math.nan)
        rows.append(row)
    adjusted, sizes = stats.adjust_within([r["p"] for r in rows], [r["family"] for r in rows], correction)
    for r, p, size in zip(rows, adjusted, sizes, strict=True):
        r.update(p_adjusted=p, significant=bool(np.isfinite(p) and p < alpha), family_size=size if r["tested"] else 0)
        r["mwu_shown"] = bool(r["tested"] and r["test"] == "welch" and r["mwu_min_p"] < alpha)
        if not r["mwu_shown"]:
            r["mwu_p"] = math.nan
        r["ci_adj_low"], r["ci_adj_high"] = _adjusted_ci(r, by_label, alpha)
    return Comparison(tuple(groups), summary, points, pd.DataFrame(rows, columns=_PAIR_COLUMNS), correction,
                      alpha, tuple(gaps), _metric(metric_) if metric_ is not None else None)


def _adjusted_ci(row: dict[str, Any], groups: dict[str, Group], alpha: float) -> tuple[float, float]:
    """Δ's CI at the level the correction effectively tested this pair at: 1 - alpha * p / p_adjusted. For
    Bonferroni that is 1 - alpha/m; for Holm and BH the pair's own step. It excludes 0 exactly when the
    adjusted p is below alpha, so the interval shown next to an adjusted p never contradicts it (a plain 95 %
    CI can exclude 0 beside "not significant"). Without a correction it is the plain CI."""
    p, p_adj = row["p"], row["p_adjusted"]
    if not row["tested"] or not (np.isfinite(p) and np.isfinite(p_adj)):
        return math.nan, math.nan
    factor = max(1.0, p_adj / p) if p > 0 else float(max(1, row["family_size"]))
    a, b = groups[row["a"]], groups[row["b"]]
    xa, xb = _matched(a, b) if row["paired_by"] else (a.values, b.values)
    return stats.mean_diff_ci(xa, xb, 1 - alpha / factor, paired=bool(row["paired_by"]))


def analyse(tables: RunTables, sel: Selection, correction: stats.Correction = "holm",
            alpha: float = ALPHA) -> Comparison:
    """The Compare page's, the Home reading's and the `compare` CLI's one analysis: the selection's groups,
    pairs and families."""
    groups, gaps = extract_groups(tables, sel.experiment, sel.variants, sel.epochs, sel.metric, sel.exclude_flagged,
                                  sel.protocol)
    return compare_groups(groups, correction, alpha, sel.pairs, sel.cross, gaps, sel.metric, sel.pair_seeds)


# -- how many seeds --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerPlan:
    delta: float                      # smallest difference that matters, metric units
    sd: float                         # pooled sd (ddof=1) of the pair
    d: float                          # delta / sd
    n_a: int
    n_b: int
    comparisons: int                  # pairs in the family (Bonferroni level alpha / comparisons)
    needed: pd.DataFrame              # comparisons, power (0.8, 0.9), seeds: seeds per group at each test level
    curve: pd.DataFrame               # n, power, comparisons
    alpha: float = ALPHA
    error: str = ""                   # "" | "no_spread" | "no_delta"
    recommended: int = 0              # seeds per group for 80 % power at the corrected level; 0 if unknown

    @property
    def current_n(self) -> int:
        return min(self.n_a, self.n_b)


def power_plan(a: Group, b: Group, delta: float | None, comparisons: int, alpha: float = ALPHA,
               ns: Sequence[int] = range(2, 31)) -> PowerPlan:
    """Seeds per group for 80 % / 90 % power, uncorrected and at Bonferroni alpha / `comparisons` (a slightly
    conservative stand-in for Holm), and the power curve over `ns` at both levels.

    `delta` None means the observed |Δ| of the pair. Effect size d = delta / pooled sd (ddof=1); seed counts
    from `stats.seeds_needed`, the curve from `stats.power_curve`.
    """
    sd = stats.pooled_sd(a.values, b.values)
    observed = abs(float(np.nanmean(a.values) - np.nanmean(b.values))) if a.n and b.n else math.nan
    delta = observed if delta is None else float(delta)
    m = max(1, int(comparisons))
    empty = pd.DataFrame(columns=["comparisons", "power", "seeds"]), pd.DataFrame(columns=["n", "power",
                                                                                           "comparisons"])
    if not (np.isfinite(sd) and sd > 0):
        return PowerPlan(delta, sd, math.nan, a.n, b.n, m, *empty, alpha, "no_spread")
    if not (np.isfinite(delta) and delta > 0):
        return PowerPlan(delta, sd, math.nan, a.n, b.n, m, *empty, alpha, "no_delta")
    d = delta / sd
    levels = [1, m] if m > 1 else [1]
    needed = pd.DataFrame([{"comparisons": k, "power": target, "seeds": stats.seeds_needed(d, alpha, target, k)}
                           for k in levels for target in (0.8, 0.9)])
    curve = pd.concat([stats.power_curve(d, ns, alpha, k).assign(comparisons=k) for k in levels],
                      ignore_index=True)
    return PowerPlan(delta, sd, d, a.n, b.n, m, needed, curve, alpha,
                     recommended=stats.seeds_needed(d, alpha, 0.8, m))


# -- which seeds are missing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedPlan:
    variant: str
    config: RunConfig | None          # the training to repeat; None when no run's config could be read
    present: tuple[int, ...]          # seeds already finished or on their way, for every selected epoch
    missing: tuple[int, ...]          # seeds to queue
    series: str = ""
    n_configs: int = 1                # run lengths (epochs, eval_at) among the series' finished runs


def missing_seeds(tables: RunTables, experiment: str, variants: Sequence[str], epochs: Sequence[int],
                  metric_: Metric | str, target_n: int) -> list[SeedPlan]:
    """For each series of each variant: which seeds to queue so that every selected (series, epoch) group
    reaches `target_n` seeds.

    The config is the most common one among the series' finished runs that cover all selected epochs (ties:
    the earliest run). A seed is present when a finished or queued/running run of the series covers every
    selected epoch with it; diverged seeds count as present (they are results, not to be replaced). Missing
    seeds are the smallest non-negative integers not present, so failed, cancelled or interrupted seeds are
    asked for again (the store resumes them). A variant with no run covering the epochs gets a plan with
    config None.
    """
    m = _metric(metric_)
    runs = runs_frame(tables, experiment)
    out = []
    for v in dict.fromkeys(variants):
        mine = runs[(runs["variant"] == v) & runs["cfg"].notna()].sort_values("order", kind="stable")
        usable = [r for r in mine.to_dict("records") if all(_covers(r, m, e) for e in epochs)]
        if not usable:
            out.append(SeedPlan(v, None, (), (), display_name(v), 0))
            continue
        for series in dict.fromkeys(r["series"] for r in usable):
            ours = [r for r in usable if r["series"] == series]
            finished = [r for r in ours if r["status"] in FINISHED] or ours
            counts = pd.Series([_canonical(r["cfg"]) for r in finished]).value_counts(sort=False)
            cfg = next(r["cfg"] for r in finished if _canonical(r["cfg"]) == counts.idxmax())
            present = sorted({r["seed"] for r in ours if r["status"] in FINISHED + ACTIVE})
            need = max(0, int(target_n) - len(present))
            missing, s = [], 0
            while len(missing) < need:
                if s not in present:
                    missing.append(s)
                s += 1
            out.append(SeedPlan(v, cfg, tuple(present), tuple(missing), series, len(counts)))
    return out


def _canonical(cfg: RunConfig) -> str:
    return json.dumps(config_to_dict(cfg), sort_keys=True)


def seed_requests(plans: Sequence[SeedPlan]) -> list[tuple[RunConfig, int]]:
    """The (config, seed) pairs to submit: exactly the missing seeds."""
    return [(p.config, s) for p in plans if p.config is not None for s in p.missing]


# -- significance along the curve ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveTest:
    curves: pd.DataFrame              # label, variant, epoch, mean, lo, hi, n
    tests: pd.DataFrame               # stats.welch_over_epochs rows
    metric: Metric
    labels: tuple[str, str]           # the two series
    variants: tuple[str, str]
    n: tuple[int, int] = (0, 0)       # complete curves per series
    n_diverged: int = 0               # diverged runs left out
    same_runs: bool = False           # both groups are one series at two epochs: nothing to test
    correction: stats.Correction = "holm"


def _curve_matrix(tables: RunTables, runs: pd.DataFrame, series: str, row: str) -> tuple[pd.DataFrame, int]:
    """`(n_seeds, n_epochs)` of one series' done runs (one run per seed), and how many diverged runs were
    left out."""
    mine = runs[(runs["series"] == series) & runs["status"].isin(FINISHED)].drop_duplicates(["series", "seed"])
    diverged = int((mine["status"] == "diverged").sum())
    keys = list(mine.loc[mine["status"] == "done", "key"])
    rows = tables.epochs[(tables.epochs["name"] == row) & tables.epochs["key"].isin(keys)]
    wide = rows.pivot_table(index="key", columns="epoch", values="value", aggfunc="first")
    return wide.astype(float), diverged


def curve_test(tables: RunTables, experiment: str, a: Group, b: Group, metric_: Metric | str,
               correction: stats.Correction = "holm", alpha: float = ALPHA,
               max_points: int = MAX_CURVE_POINTS) -> CurveTest:
    """Welch at each epoch of the per-epoch curve that tracks `metric_` (`stats.welch_over_epochs`) for the
    series of groups `a` and `b`, corrected over the epochs shown. Only epochs where every done run of both
    has a finite value are used, thinned evenly to at most `max_points` (the last is always kept). Diverged
    runs are left out and counted."""
    m = _metric(metric_)
    curve = metric(m.curve_key)
    labels, variants = (a.training, b.training), (a.variant, b.variant)
    empty = pd.DataFrame()
    if a.training == b.training:
        return CurveTest(empty, empty, curve, labels, variants, same_runs=True, correction=correction)
    runs = runs_frame(tables, experiment)
    (wa, da), (wb, db) = (_curve_matrix(tables, runs, s, curve.row) for s in labels)
    common = [e for e in wa.columns.intersection(wb.columns) if wa[e].notna().all() and wb[e].notna().all()]
    if len(wa) < 2 or len(wb) < 2 or not common:
        return CurveTest(empty, empty, curve, labels, variants, (len(wa), len(wb)), da + db, correction=correction)
    common = sorted(common)
    idx = np.unique(np.linspace(0, len(common) - 1, min(max_points, len(common))).round().astype(int))
    shown = [common[i] for i in idx]
    tests = stats.welch_over_epochs(wa[shown].to_numpy(), wb[shown].to_numpy(), correction, alpha, shown)
    curves = pd.concat([pd.DataFrame({"label": lab, "variant": v, "epoch": shown,
                                      "mean": w[shown].mean().to_numpy(), "lo": w[shown].min().to_numpy(),
                                      "hi": w[shown].max().to_numpy(), "n": len(w)})
                        for lab, v, w in zip(labels, variants, (wa, wb), strict=True)], ignore_index=True)
    return CurveTest(curves, tests, curve, labels, variants, (len(wa), len(wb)), da + db, correction=correction)


# -- spread across seeds, budget by budget ---------------------------------------------------------------------
@dataclass(frozen=True)
class SeedSpread:
    """How far apart a series' seeds are at each evaluation epoch: the course report's last question ("why is
    accuracy less dependent on the seed at higher epochs?") asked of these runs.

    table: series, variant, order, epoch, n, sd (ddof=1), lo, hi — one row per group.
    tests: series, variant, epochs, runs, brown_forsythe_p, levene_p, note — one row per series with at least
    two evaluation epochs. `runs` says how the groups of a series relate: "same" when every
    budget scores the same runs (shared protocol: not independent samples as Levene's test assumes, so read
    its p as a description of how much the spread changes), "separate" when no run scores two budgets (the
    test's assumption holds), "mixed" when some runs score several budgets and others one (protocol "all"
    with separate-budget runs beside shared ones).
    protocol: the BUDGET_RULES entry the groups were scored under."""
    table: pd.DataFrame
    tests: pd.DataFrame
    metric: Metric
    protocol: str = "all"


def _runs_relation(groups: Sequence[Group]) -> str:
    """"same", "separate" or "mixed" for the groups of one series: do the budgets score the same runs,
    disjoint runs, or both?"""
    keys = [set(g.keys) for g in groups]
    if all(k == keys[0] for k in keys):
        return "same"
    total = sum(len(k) for k in keys)
    return "separate" if len(set().union(*keys)) == total else "mixed"


def seed_spread(tables: RunTables, experiment: str, variants: Sequence[str], metric_: Metric | str,
                exclude_flagged: bool = False, protocol: str = "all") -> SeedSpread:
    """`SeedSpread` of the test metric `metric_` at every evaluation epoch the runs have, each budget scored
    by the runs `protocol` (BUDGET_RULES) chooses: the page's choice, so that its n are the page's n."""
    m = _metric(metric_)
    opts = options(tables).get(experiment, {"epochs": []})
    groups, _ = extract_groups(tables, experiment, variants, opts["epochs"], m, exclude_flagged, protocol)
    order = {s: i for i, s in enumerate(dict.fromkeys(g.training for g in groups))}    # groups: display order
    table = pd.DataFrame([{"series": g.training, "variant": g.variant, "order": order[g.training],
                           "epoch": g.epoch, "n": g.n, "sd": stats.summarize(g.values)["sd"],
                           "lo": float(np.nanmin(g.values)) if g.n else math.nan,
                           "hi": float(np.nanmax(g.values)) if g.n else math.nan} for g in groups],
                         columns=["series", "variant", "order", "epoch", "n", "sd", "lo", "hi"])
    tests = []
    for series in dict.fromkeys(g.training for g in groups):
        mine = [g for g in groups if g.training == series and g.n >= 2]
        if len(mine) < 2:
            continue
        res = stats.spread_test([g.values for g in mine])
        tests.append({"series": series, "variant": mine[0].variant, "epochs": tuple(g.epoch for g in mine),
                      "runs": _runs_relation(mine), "brown_forsythe_p": res["brown_forsythe_p"],
                      "levene_p": res["levene_p"], "note": res.get("note", "")})
    return SeedSpread(table, pd.DataFrame(tests, columns=["series", "variant", "epochs", "runs", "brown_forsythe_p",
                                                           "levene_p", "note"]), m, protocol)


# -- overfitting: where the mean validation loss turns ----------------------------------------------------------
def overfitting(tables: RunTables, experiment: str) -> pd.DataFrame:
    """Per series of finished runs: the epoch of the lowest mean validation loss (mean over the seeds that
    reached each epoch; only epochs every seed reached), that minimum, the last such epoch, its mean loss and
    their ratio. A ratio well above 1 means the runs kept training past their best validation loss."""
    cols = ["series", "variant", "n", "min_epoch", "min_loss", "last_epoch", "last_loss", "ratio"]
    runs = runs_frame(tables, experiment)
    runs = runs[runs["status"] == "done"].drop_duplicates(["series", "seed"])
    loss = tables.epochs[(tables.epochs["name"] == "val_loss") & tables.epochs["key"].isin(set(runs["key"]))]
    rows = []
    for series, g in runs.groupby("series", sort=False):
        wide = loss[loss["key"].isin(set(g["key"]))].pivot_table(index="epoch", columns="key", values="value")
        wide = wide.dropna()
        if wide.empty:
            continue
        mean = wide.mean(axis=1)
        e_min, e_last = int(mean.idxmin()), int(mean.index.max())
        rows.append({"series": series, "variant": g["variant"].iloc[0], "n": wide.shape[1], "min_epoch": e_min,
                     "min_loss": float(mean[e_min]), "last_epoch": e_last, "last_loss": float(mean[e_last]),
                     "ratio": float(mean[e_last] / mean[e_min]) if mean[e_min] > 0 else math.nan})
    return pd.DataFrame(rows, columns=cols)


# -- the Home reading's numbers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One family of a course preset, as the Home reading tells it: the preset's comparison, the family read
    (its pairs are `comparison.pairs[comparison.pairs.family == family]`), and, where no pair in it is
    significant, its clearest pair (largest |d|; index into `comparison.pairs`) with the seeds 80 % power
    would need for that difference."""
    preset: str
    family: str
    epoch: int | None
    comparison: Comparison
    clearest: int | None = None
    plan: PowerPlan | None = None

    @property
    def pairs(self) -> pd.DataFrame:
        return self.comparison.pairs[self.comparison.pairs["family"] == self.family]

    @property
    def groups(self) -> list[Group]:
        return [g for g in self.comparison.groups if self.epoch is None or g.epoch == self.epoch]


# The course study read on Home: each preset and the families of it that are read. Compare shows the same
# presets, so the same pair in the same family has the same adjusted p on both pages.
READING: tuple[tuple[str, str], ...] = (
    ("Course: CNN optimisers & BN", "epochs"),
    ("Course: U-Net variants at 200/400/1000", "epochs"),
    ("Course: normal 200 vs 1000", "budgets"),
    ("Course: ELU vs ReLU test loss at 200", "chosen"),
)


def course_study(tables: RunTables, correction: stats.Correction = "holm", alpha: float = ALPHA) -> list[Finding]:
    """The findings of the Home reading: every READING preset whose experiment has finished runs, analysed
    exactly as the Compare page analyses it (`resolve` + `analyse`). "epochs" reads one family per evaluation
    epoch (even one with fewer than two groups); "budgets" and "chosen" read that family when it has a pair."""
    opts = options(tables)
    out: list[Finding] = []
    for name, read in READING:
        if PRESETS[name].selection.experiment not in opts:
            continue
        _, sel = resolve(name, opts)
        res = analyse(tables, sel, correction, alpha)
        if read == "epochs":
            out += [_finding(name, f"epoch:{e}", e, res, alpha) for e in sel.epochs]
        elif (res.pairs["family"] == read).any():
            out.append(_finding(name, read, None, res, alpha))
    return out


def _finding(name: str, family: str, epoch: int | None, res: Comparison, alpha: float) -> Finding:
    mine = res.pairs[res.pairs["family"] == family]
    if mine.empty or mine["significant"].any():
        return Finding(name, family, epoch, res)
    pool = mine[mine["tested"]] if mine["tested"].any() else mine
    d = pool["cohens_d"].abs().fillna(-1.0)
    i = int(res.pairs.index.get_loc(d.idxmax()))
    a, b = res.pair_groups(i)
    return Finding(name, family, epoch, res, i, power_plan(a, b, None, len(mine), alpha))
