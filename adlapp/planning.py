"""From a user's choices to the runs to train, and where each requested run already is.

A *study* is a set of variants × seeds at one training length on one data set. The one path from choices to
a `RunConfig`, for the app and the CLI alike, is

    variant_config(name) or base_config(experiment)   the starting point
    -> configure(cfg, Toggles, Sizes, dataset)        toggles, sizes and the data set applied on top

where the data set name comes from `resolve_dataset` (a built-in set of the experiment, or a folder whose
layout `adlapp.folder_layout` has checked). `make_requests` runs that path for every variant a CNN or U-Net
page asks for and pairs the configs with the seeds (or returns every reason the choice is invalid); the CLI's
`train` runs it for its one variant. `plan` then says for each (config, seed) whether a finished run exists
(in the store or in a cached_runs/ bundle; its own, or a longer run of the same training scored at every epoch
asked for), is being trained, or is missing, and where a missing one resumes; only the missing ones are ever
submitted, so loading never retrains. `served_tables` cuts the serving runs' rows to what was asked for.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from adlapp.config import (
    BUILTIN_DATASETS,
    COURSE_VARIANTS,
    EXPERIMENT_INFO,
    LIMITS,
    VARIANTS,
    ConfigError,
    RunConfig,
    base_config,
    display_name,
    parse_seeds,
    run_key,
    training_signature,
    variant_label,
)
from adlapp.folder_layout import check_dataset_folder
from adlapp.store import ACTIVE, FINISHED, RESUMABLE, RunTables

__all__ = ["Request", "PLACES", "Toggles", "Sizes", "StudyChoice", "registry_names", "variant_config",
           "resolve_dataset", "configure", "parse_seeds", "parse_budgets", "make_requests", "plan",
           "missing_requests", "PLAN_COLUMNS", "CHECKPOINT_FILE", "resumed_epochs", "served_tables", "study_seeds",
           "seeds_text", "SEPARATE_SEED_OFFSET", "separate_budget_runs", "PROTOCOLS"]

Request = tuple[RunConfig, int]                                  # (config, seed): one run asked for
# Where a requested run is (see `plan`): finished in the store, finished in a cached_runs/ bundle, queued or
# running in the store, or nowhere usable.
PLACES: tuple[str, ...] = ("store", "cached", "training", "missing")


def registry_names(experiment: str) -> list[str]:
    """The registry's variants of one experiment, in registry order ("cnn/bn-adam", "cnn/adam", ...)."""
    return [name for name in VARIANTS if name.startswith(experiment + "/")]


# -- the one path from choices to a RunConfig ---------------------------------------------------------------
def _decimal(x: float | None) -> float | None:
    """`x` at 12 significant digits: a number input's stepper (0.01 + 0.001 - 0.001 = 0.009999999999999998)
    must not make a new variant, a new run key and a retraining of runs the store already has."""
    return float(f"{x:.12g}") if isinstance(x, float) and math.isfinite(x) else x


@dataclass(frozen=True)
class Toggles:
    """Model, optimizer and engine settings to apply on top of a config; None leaves the config's value."""
    batchnorm: bool | None = None
    bn_position: str | None = None         # CNN with batch-norm: "before" / "after" the activation
    bn_layers: str | None = None           # CNN with batch-norm: see adlapp.config.BN_LAYERS
    bn_affine: bool | None = None          # CNN with batch-norm: learnable scale and shift
    activation: str | None = None
    upsampling: str | None = None
    depth: int | None = None
    base_width: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    channels_last: bool | None = None      # the engine (RunConfig.channels_last, .precision)
    precision: str | None = None

    def apply(self, cfg: RunConfig) -> RunConfig:
        model = _given(batchnorm=self.batchnorm, activation=self.activation, upsampling=self.upsampling,
                       depth=self.depth, base_width=self.base_width, bn_position=self.bn_position,
                       bn_layers=self.bn_layers, bn_affine=self.bn_affine)
        optim = _given(name=self.optimizer, lr=_decimal(self.lr), momentum=_decimal(self.momentum),
                       weight_decay=_decimal(self.weight_decay))
        return replace(cfg, model=replace(cfg.model, **model), optim=replace(cfg.optim, **optim),
                       **_given(channels_last=self.channels_last, precision=self.precision))


@dataclass(frozen=True)
class Sizes:
    """How long a run trains, when its test split is scored, and on how much data; None leaves the config's.

    `eval_at` (given or the config's) keeps only the epochs inside the run, sorted and each once: an evaluation
    at or after the last epoch adds nothing (the last epoch is always scored), so it must not change the key.
    """
    epochs: int | None = None
    eval_at: tuple[int, ...] | None = None
    batch_size: int | None = None
    train_per_class: int | None = None     # cards
    n_train: int | None = None             # vessels
    image_size: int | None = None          # vessels and segmentation folders

    def apply(self, cfg: RunConfig) -> RunConfig:
        epochs = cfg.epochs if self.epochs is None else self.epochs
        eval_at = cfg.eval_at if self.eval_at is None else self.eval_at
        data = _given(train_per_class=self.train_per_class, n_train=self.n_train, image_size=self.image_size)
        return replace(cfg, epochs=epochs, eval_at=tuple(sorted({e for e in eval_at if e < epochs})),
                       data=replace(cfg.data, **data), **_given(batch_size=self.batch_size))


def variant_config(name: str, experiment: str) -> RunConfig:
    """The registry config of `name` ("cnn/adam", or "adam" within the experiment); ConfigError if it is not one
    of the experiment's variants."""
    names = registry_names(experiment)
    full = name if name in names else f"{experiment}/{name}"
    if full not in names:
        raise ConfigError(f"variant={name!r}: not a {experiment} variant (known: {', '.join(names)})")
    return VARIANTS[full]()


def resolve_dataset(name: str, experiment: str) -> str:
    """The data set name a config stores: "" is the experiment's built-in set, a built-in set must be the
    experiment's own, anything else is a folder with the layout the experiment's task needs, as an absolute
    path. ConfigError (one sentence naming the set or the path) otherwise; no image is decoded."""
    name = name.strip() or EXPERIMENT_INFO[experiment].dataset
    if name in BUILTIN_DATASETS:
        if BUILTIN_DATASETS[name] != experiment:
            raise ConfigError(f"Data set {name!r} is for the {BUILTIN_DATASETS[name]} experiment, not {experiment}.")
        return name
    problem = check_dataset_folder(name, experiment)
    if problem:
        raise ConfigError(problem)
    return str(Path(name).expanduser().resolve())


def configure(cfg: RunConfig, toggles: Toggles | None = None, sizes: Sizes | None = None,
              dataset: str | None = None) -> RunConfig:
    """`cfg` with the toggles, the sizes and the data set applied; `dataset` is a name from `resolve_dataset`
    (None keeps the config's). ConfigError names the first invalid value."""
    cfg = (sizes or Sizes()).apply((toggles or Toggles()).apply(cfg))
    return cfg if dataset is None else replace(cfg, data=replace(cfg.data, name=dataset))


# -- a page's choices -> requests ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyChoice:
    """Everything a CNN or U-Net page lets the user choose.

    `epochs` is the training length; `budgets` (U-Net) are the epochs after which the test split is scored,
    and the longest budget is the training length (200/400/1000 share one 1000-epoch run per seed).
    """
    experiment: str
    variants: tuple[str, ...] = ()                   # registry names, e.g. ("cnn/adam", "cnn/sgd")
    custom: tuple[Toggles, ...] = ()                 # extra variants: toggles on the course base
    common: Toggles = field(default_factory=Toggles)  # applied to every variant (e.g. one learning rate)
    seeds: tuple[int, ...] | str = (0, 1, 2)         # or the text a user typed: "3", "0,1,2" or "0-4"
    epochs: int | None = None                        # None: the registry's; ignored when budgets are given
    budgets: tuple[int, ...] | str = ()              # or text: "200,400,1000"
    dataset: str = ""                                # "" : the experiment's built-in data set
    train_per_class: int | None = None               # cards
    n_train: int | None = None                       # vessels
    image_size: int | None = None                    # vessels / segmentation folders
    batch_size: int | None = None
    # A learning rate per optimiser, (("adam", 0.01), ("sgd", 0.1)): applied after `common` to every variant
    # that trains with that optimiser, so Adam and SGD can each run at their own tuned rate.
    lrs: tuple[tuple[str, float], ...] = ()
    # How several budgets are measured (PROTOCOLS): "shared" one run per seed tested at every budget,
    # "separate" also one run per shorter budget and seed, as the course report did.
    protocol: str = "shared"


def parse_budgets(text: str) -> tuple[list[int], str | None]:
    """'200,400,1000' → [200, 400, 1000]: the epochs after which the test split is scored."""
    try:
        values = sorted({int(t) for t in (text or "").replace(" ", ",").split(",") if t.strip()})
    except ValueError:
        return [], f"Epoch budgets {text!r}: give whole numbers separated by commas, e.g. 200,400,1000."
    if not values:
        return [], "Choose at least one epoch budget (e.g. 200,400,1000)."
    if values[0] < 1 or values[-1] > LIMITS["epochs"]:
        return [], f"Epoch budgets {text[:40]!r}: every budget must be from 1 to {LIMITS['epochs']:,} epochs."
    return values, None


def make_requests(choice: StudyChoice) -> tuple[list[Request], list[str]]:
    """The (config, seed) pairs a choice asks for, in display order, and every reason it is invalid.

    When the list of errors is not empty the pairs are empty: nothing may be started from a bad choice.
    """
    if choice.experiment not in EXPERIMENT_INFO:
        return [], [f"Experiment {choice.experiment!r}: must be one of {', '.join(EXPERIMENT_INFO)}."]
    seeds, seed_errors = _seeds(choice)
    budgets, budget_errors = _budgets(choice)
    dataset, dataset_errors = _dataset(choice)
    starts, variant_errors = _starting_configs(choice)
    errors = seed_errors + budget_errors + _size_errors(choice) + dataset_errors + variant_errors
    if errors:
        return [], errors
    if choice.protocol not in PROTOCOLS:
        return [], [f"Protocol {choice.protocol!r}: must be one of {', '.join(PROTOCOLS)}."]
    lrs = dict(choice.lrs)
    try:
        configs = [configure(cfg, choice.common, _sizes(choice, budgets), dataset) for cfg in starts]
        configs = [Toggles(lr=lrs[c.optim.name]).apply(c) if c.optim.name in lrs else c for c in configs]
    except ConfigError as e:
        return [], [f"Invalid setting: {e}"]
    unique = list(dict.fromkeys(configs))      # a custom variant equal to a named one is asked for once
    requests = [(cfg, s) for cfg in unique for s in seeds]
    if choice.protocol == "separate" and len(budgets) > 1:
        requests += [r for cfg in unique for r in separate_budget_runs(cfg, seeds, budgets)]
    return requests, []


def _seeds(choice: StudyChoice) -> tuple[list[int], list[str]]:
    if isinstance(choice.seeds, str):
        seeds, problem = parse_seeds(choice.seeds)
        return seeds, [problem] if problem else []
    return list(choice.seeds), [] if choice.seeds else ["Choose at least one seed."]


def _budgets(choice: StudyChoice) -> tuple[list[int], list[str]]:
    if isinstance(choice.budgets, str):
        budgets, problem = parse_budgets(choice.budgets)
        return budgets, [problem] if problem else []
    budgets = sorted(set(choice.budgets))
    if any(b < 1 for b in budgets):
        return [], [f"Epoch budgets {budgets}: every budget must be at least 1."]
    return budgets, []


def _size_errors(choice: StudyChoice) -> list[str]:
    """Sizes out of bounds and learning rates that are not positive, in the page's words. A page's number
    field may hold any typed value (the browser keeps a field's last valid value when a typed one is out of
    its min/max, so the pages set no bounds and every check is here); `configure` still checks everything."""
    errors = []
    if not choice.budgets and choice.epochs is not None and choice.epochs < 1:
        errors.append(f"Epochs = {choice.epochs}: train for at least 1 epoch.")
    if not choice.budgets and choice.epochs is not None and choice.epochs > LIMITS["epochs"]:
        errors.append(f"Epochs = {choice.epochs:,}: at most {LIMITS['epochs']:,} epochs.")
    for name, value, limit in (("Batch size", choice.batch_size, "batch_size"),
                               ("Training images per class", choice.train_per_class, "train_per_class"),
                               ("Training images", choice.n_train, "n_train"),
                               ("Image size", choice.image_size, "image_size")):
        if value is not None and not 1 <= value <= LIMITS[limit]:
            errors.append(f"{name} = {value:,}: must be from 1 to {LIMITS[limit]:,}.")
    named = [(None, t.lr) for t in (choice.common, *choice.custom)] + [(o, lr) for o, lr in choice.lrs]
    for optimizer, lr in named:
        if lr is not None and (not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0):
            what = f"{optimizer.upper() if optimizer == 'sgd' else optimizer.title()} learning rate" if optimizer \
                else "Learning rate"
            errors.append(f"{what} = {lr:g}: must be a positive number, e.g. 0.01.")
            break
    return errors


# Two ways to measure several training budgets (e.g. the report's 200/400/1000 U-Net epochs):
#   shared:   one run per seed, tested inside the run at every budget. Cost: the longest budget per seed.
#             The budgets' scores come from the same runs, so budget-vs-budget tests are paired by seed.
#   separate: what the report did, one run per budget and seed. Cost: the sum of the budgets per seed
#             (200+400+1000 = 1.6x the shared cost). Every budget's scores come from independent runs, so
#             budget-vs-budget tests are unpaired (Welch): less power for the same seeds, no shared noise.
PROTOCOLS: tuple[str, ...] = ("shared", "separate")
# Separate runs must not reuse the shared runs' seeds: with the same seed, a 200-epoch run is exactly the
# first 200 epochs of the 1000-epoch run (same initialisation, same batch order), so it would not be
# independent at all. Budget i (shortest first) of the shorter budgets uses seed + (i + 1) * 1000.
SEPARATE_SEED_OFFSET = 1000


def separate_budget_runs(cfg: RunConfig, seeds: list[int] | tuple[int, ...], budgets: list[int] | tuple[int, ...]
                         ) -> list[Request]:
    """The extra runs the separate protocol needs beside the shared runs (`cfg` trained to the longest budget
    with its test epochs): one run of each shorter budget per seed, tested at its own end only, on seeds that
    no other budget uses (see SEPARATE_SEED_OFFSET). The longest budget's runs are the shared runs themselves."""
    shorter = sorted(set(budgets))[:-1]
    return [(replace(cfg, epochs=b, eval_at=()), s + (i + 1) * SEPARATE_SEED_OFFSET)
            for i, b in enumerate(shorter) for s in seeds]


# -- the seeds a study already has --------------------------------------------------------------------------
def study_seeds(experiment: str, runs: pd.DataFrame) -> list[int]:
    """Seeds of the study in `runs` (e.g. cached_runs/'s run rows): the seeds every registry variant of the
    experiment has a finished run of; the seeds any of them has when none is shared; [] when none."""
    if not len(runs) or not {"variant", "seed", "status"} <= set(runs.columns):
        return []
    names = [n for n in registry_names(experiment) if n in COURSE_VARIANTS]
    done = runs[runs["variant"].isin(names) & runs["status"].isin(FINISHED)]
    per_variant = [set(g.astype(int)) for _, g in done.groupby("variant")["seed"]]
    if not per_variant:
        return []
    shared = set.intersection(*per_variant) if len(per_variant) == len(names) else set()
    return sorted(shared or set.union(*per_variant))


def seeds_text(seeds: list[int]) -> str:
    """What to type for `seeds` so that parse_seeds reads them back: '5' for 0-4, '0-2,7', '7,' for seed 7."""
    seeds = sorted(seeds)
    if seeds == list(range(len(seeds))) and len(seeds) > 1:
        return str(len(seeds))
    spans: list[list[int]] = []
    for s in seeds:
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    text = ",".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)
    return text + ("," if len(spans) == 1 and spans[0][0] == spans[0][1] else "")


def _dataset(choice: StudyChoice) -> tuple[str | None, list[str]]:
    try:
        return resolve_dataset(choice.dataset, choice.experiment), []
    except ConfigError as e:
        return None, [str(e)]


def _starting_configs(choice: StudyChoice) -> tuple[list[RunConfig], list[str]]:
    """The named variants' registry configs, then each custom variant's toggles on the course base."""
    if not choice.variants and not choice.custom:
        return [], ["Choose at least one variant."]
    starts, errors = [], []
    for name in choice.variants:
        try:
            starts.append(variant_config(name, choice.experiment))
        except ConfigError as e:
            errors.append(str(e))
    try:
        starts += [t.apply(base_config(choice.experiment)) for t in choice.custom]
    except ConfigError as e:
        errors.append(f"Invalid setting: {e}")
    return starts, errors


def _sizes(choice: StudyChoice, budgets: list[int]) -> Sizes:
    """Budgets 200,400,1000 are one 1000-epoch run scored after 200 and 400 too; without budgets, `epochs`."""
    common = dict(batch_size=choice.batch_size, train_per_class=choice.train_per_class, n_train=choice.n_train,
                  image_size=choice.image_size)
    if budgets:
        return Sizes(epochs=max(budgets), eval_at=tuple(budgets[:-1]), **common)
    return Sizes(epochs=choice.epochs, **common)


# -- where each requested run is ----------------------------------------------------------------------------
# The columns of `plan`: the request's own key, variant (display name), seed and epochs; where its result is
# (PLACES) and that run's status; `run`, the key of the run that serves it (the request's own key, or a
# longer run of the same training whose test epochs cover the ones asked for), with that run's epochs and
# test epochs; `resume_from`, the epoch a run to train continues from (its checkpoint), 0 when it starts anew.
PLAN_COLUMNS = ["key", "variant", "seed", "epochs", "test_epochs", "where", "status", "run", "run_epochs",
                "run_test_epochs", "resume_from"]
CHECKPOINT_FILE = "last.pt"        # adlapp.train's checkpoint in RunStore.checkpoint_dir(key), read without torch


def plan(requests: list[Request], store_runs: pd.DataFrame, cached_runs: pd.DataFrame,
         has_checkpoint: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """One row per request (PLAN_COLUMNS): where its result is, which run serves it, where training resumes.

    where: "store" (finished in the store), "cached" (finished in a cached_runs/ bundle), "training" (queued
    or running in the store), "missing" (nothing usable: never run, or failed / cancelled / interrupted).
    Finished means store.FINISHED: a diverged run is a result, not a reason to retrain.

    A request is served by its own run (same key), else by any finished run of the same training
    (config.training_signature) and seed whose test epochs include every epoch asked for: the 1000-epoch run
    scored after 200, 400 and 1000 epochs serves budgets "200,1000", "1000" or "400" (the run key hashes
    `eval_at`, so those are other keys). The store is preferred to cached_runs/, and of several runs the
    shortest. A run queued or running that would serve it makes it "training".

    A missing request whose own run is resumable (store.RESUMABLE) with a checkpoint file
    (`has_checkpoint(key)`; the pages pass a file test, so no torch is needed) resumes from it:
    `resume_from` is the run's last recorded epoch, where the trainer picks up (the checkpoint may be a few
    epochs behind; those are replayed from its history, not retrained).
    """
    store_rows, cached_rows = _rows_by_key(store_runs), _rows_by_key(cached_runs)
    seeds = {int(s) for _, s in requests}
    store_index, cached_index = _serving_index(store_runs, seeds), _serving_index(cached_runs, seeds)
    out = []
    for cfg, seed in requests:
        key = run_key(cfg, seed)
        own, own_cached = store_rows.get(key, {}), cached_rows.get(key, {})
        wanted, sig = set(cfg.test_epochs), (training_signature(cfg), int(seed))
        serving = None
        if own.get("status") in FINISHED:
            serving = ("store", key, own.get("status"), cfg.epochs, cfg.test_epochs)
        elif own_cached.get("status") in FINISHED:
            serving = ("cached", key, own_cached.get("status"), cfg.epochs, cfg.test_epochs)
        else:
            serving = (_covering(store_index.get(sig, ()), wanted, FINISHED, "store")
                       or _covering(cached_index.get(sig, ()), wanted, FINISHED, "cached"))
        if serving is None and own.get("status") in ACTIVE:
            serving = ("training", key, own.get("status"), cfg.epochs, cfg.test_epochs)
        serving = serving or _covering(store_index.get(sig, ()), wanted, ACTIVE, "training")
        resume = 0
        if serving is None:
            status = own.get("status")
            if status in RESUMABLE and has_checkpoint is not None and has_checkpoint(key):
                resume = int(own.get("last_epoch") or 0)
            serving = ("missing", key, status, cfg.epochs, cfg.test_epochs)
        where, run, status, run_epochs, run_tests = serving
        out.append({"key": key, "variant": display_name(variant_label(cfg)), "seed": int(seed),
                    "epochs": cfg.epochs, "test_epochs": cfg.test_epochs, "where": where, "status": status or "",
                    "run": run, "run_epochs": int(run_epochs), "run_test_epochs": tuple(run_tests),
                    "resume_from": resume})
    return pd.DataFrame(out, columns=PLAN_COLUMNS)


def missing_requests(requests: list[Request], planned: pd.DataFrame) -> list[Request]:
    """The requests `plan` found nowhere usable: the only ones ever submitted."""
    missing = set(planned.loc[planned["where"] == "missing", "key"])
    return [(cfg, s) for cfg, s in requests if run_key(cfg, s) in missing]


def resumed_epochs(planned: pd.DataFrame) -> dict[str, int]:
    """run key -> epochs a run to train already has in its checkpoint (for adlapp.estimate.training_cost)."""
    rows = planned[(planned["where"] == "missing") & (planned["resume_from"] > 0)]
    return {k: int(e) for k, e in zip(rows["key"], rows["resume_from"], strict=True)}


def served_tables(tables: RunTables, planned: pd.DataFrame) -> RunTables:
    """What the planned requests show: the serving runs' rows, each cut to its request. A 1000-epoch run that
    serves budgets "200,400" shows its first 400 epochs, its test scores after 200 and 400 epochs, and 400 as
    its length, so the curves and tables of a page show the budgets asked for."""
    limit = {r: int(e) for r, e in zip(planned["run"], planned["epochs"], strict=True)}
    asked = {r: set(t) for r, t in zip(planned["run"], planned["test_epochs"], strict=True)}
    runs = tables.runs[tables.runs["key"].isin(limit)].copy()
    runs["epochs"] = [min(int(e), limit[k]) for k, e in zip(runs["key"], runs["epochs"], strict=True)]
    if "last_epoch" in runs:
        runs["last_epoch"] = [min(int(e or 0), limit[k])
                              for k, e in zip(runs["key"], runs["last_epoch"].fillna(0), strict=True)]
    ep = tables.epochs[tables.epochs["key"].isin(limit)]
    ep = ep[ep["epoch"].astype(int) <= ep["key"].map(limit)]
    te = tables.tests[tables.tests["key"].isin(limit)]
    te = te[[int(e) in asked[k] for k, e in zip(te["key"], te["epoch"], strict=True)]]
    return RunTables(runs.reset_index(drop=True), ep.reset_index(drop=True), te.reset_index(drop=True))


def _rows_by_key(runs: pd.DataFrame) -> dict[str, dict]:
    if not len(runs):
        return {}
    cols = [c for c in ("key", "status", "last_epoch") if c in runs]
    return {r["key"]: r for r in runs[cols].to_dict("records")}


def _serving_index(runs: pd.DataFrame, seeds: set[int]) -> dict[tuple[str, int], list[tuple]]:
    """(training signature, seed) -> [(key, status, epochs, test epochs)] of the finished or active runs of the
    requested seeds, shortest first. Rows without a readable config serve nothing."""
    if not len(runs) or not {"config", "seed", "status"} <= set(runs.columns):
        return {}
    rows = runs[runs["status"].isin(FINISHED + ACTIVE) & runs["seed"].isin(list(seeds))]
    index: dict[tuple[str, int], list[tuple]] = {}
    for r in rows[["key", "status", "seed", "config"]].to_dict("records"):
        try:
            raw = json.loads(r["config"])
            epochs = int(raw["epochs"])
            tests = tuple(sorted({int(e) for e in raw.get("eval_at", ()) if 0 < int(e) < epochs} | {epochs}))
        except (TypeError, ValueError, KeyError):
            continue
        index.setdefault((training_signature(raw), int(r["seed"])), []).append((r["key"], r["status"], epochs,
                                                                               tests))
    for found in index.values():
        found.sort(key=lambda t: t[2])
    return index


def _covering(found, wanted: set[int], statuses: tuple[str, ...], where: str) -> tuple | None:
    """The first run of `found` with one of `statuses` whose test epochs include every epoch in `wanted`."""
    for key, status, epochs, tests in found:
        if status in statuses and wanted <= set(tests):
            return where, key, status, epochs, tests
    return None


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None)."""
    return {k: v for k, v in values.items() if v is not None}
