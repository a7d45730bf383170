"""From a user's choices to the runs to train, and where each requested run already is.

A *study* is a set of variants × seeds at one training length on one data set. The one path from choices to
a `RunConfig`, for the app and the CLI alike, is

    variant_config(name) or base_config(experiment)   the starting point
    -> configure(cfg, Toggles, Sizes, dataset)        toggles, sizes and the data set applied on top

where the data set name comes from `resolve_dataset` (a built-in set of the experiment, or a folder whose
layout `adlapp.folder_layout` has checked). `make_requests` runs that path for every variant a CNN or U-Net
page asks for and pairs the configs with the seeds (or returns every reason the choice is invalid); the CLI's
`train` runs it for its one variant. `plan` then says for each (config, seed) whether a finished run exists
(in the store or in a cached_runs/ bundle), is being trained, or is missing; only the missing ones are ever
submitted, so loading never retrains.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from adlapp.config import (
    BUILTIN_DATASETS,
    EXPERIMENT_INFO,
    LIMITS,
    VARIANTS,
    ConfigError,
    RunConfig,
    base_config,
    parse_seeds,
    run_key,
    variant_label,
)
from adlapp.folder_layout import check_dataset_folder
from adlapp.store import ACTIVE, FINISHED

__all__ = ["Request", "PLACES", "Toggles", "Sizes", "StudyChoice", "registry_names", "variant_config",
           "resolve_dataset", "configure", "parse_seeds", "parse_budgets", "make_requests", "plan",
           "missing_requests"]

Request = tuple[RunConfig, int]                                  # (config, seed): one run asked for
# Where a requested run is (see `plan`): finished in the store, finished in a cached_runs/ bundle, queued or
# running in the store, or nowhere usable.
PLACES: tuple[str, ...] = ("store", "cached", "training", "missing")


def registry_names(experiment: str) -> list[str]:
    """The registry's variants of one experiment, in registry order ("cnn/bn-adam", "cnn/adam", ...)."""
    return [name for name in VARIANTS if name.startswith(experiment + "/")]


# -- the one path from choices to a RunConfig ---------------------------------------------------------------
@dataclass(frozen=True)
class Toggles:
    """Model and optimizer settings to apply on top of a config; None leaves the config's value."""
    batchnorm: bool | None = None
    activation: str | None = None
    upsampling: str | None = None
    depth: int | None = None
    base_width: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None

    def apply(self, cfg: RunConfig) -> RunConfig:
        model = _given(batchnorm=self.batchnorm, activation=self.activation, upsampling=self.upsampling,
                       depth=self.depth, base_width=self.base_width)
        optim = _given(name=self.optimizer, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return replace(cfg, model=replace(cfg.model, **model), optim=replace(cfg.optim, **optim))


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
    try:
        configs = [configure(cfg, choice.common, _sizes(choice, budgets), dataset) for cfg in starts]
    except ConfigError as e:
        return [], [f"Invalid setting: {e}"]
    unique = list(dict.fromkeys(configs))      # a custom variant equal to a named one is asked for once
    return [(cfg, s) for cfg in unique for s in seeds], []


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
    """Sizes below 1, in the page's words (upper bounds are the config's, reported by `configure`)."""
    errors = []
    if not choice.budgets and choice.epochs is not None and choice.epochs < 1:
        errors.append(f"Epochs = {choice.epochs}: train for at least 1 epoch.")
    for name, value in (("Batch size", choice.batch_size), ("Training images per class", choice.train_per_class),
                        ("Training images", choice.n_train)):
        if value is not None and value < 1:
            errors.append(f"{name} = {value}: must be at least 1.")
    return errors


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
def plan(requests: list[Request], store_runs: pd.DataFrame, cached_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per request: key, variant, seed, epochs, where (one of PLACES), status.

    where: "store" (finished in the store), "cached" (finished in a cached_runs/ bundle), "training" (queued
    or running in the store), "missing" (nothing usable: never run, or failed / cancelled / interrupted —
    training it again resumes from a checkpoint where there is one). Finished means store.FINISHED: a
    diverged run is a result, not a reason to retrain.
    """
    store_status = _status_by_key(store_runs)
    cached_status = _status_by_key(cached_runs)
    rows = []
    for cfg, seed in requests:
        key = run_key(cfg, seed)
        status, cached = store_status.get(key), cached_status.get(key)
        if status in FINISHED:
            where = "store"
        elif cached in FINISHED:
            where, status = "cached", cached
        elif status in ACTIVE:
            where = "training"
        else:
            where = "missing"
        rows.append({"key": key, "variant": variant_label(cfg), "seed": int(seed), "epochs": cfg.epochs,
                     "where": where, "status": status or ""})
    return pd.DataFrame(rows, columns=["key", "variant", "seed", "epochs", "where", "status"])


def missing_requests(requests: list[Request], planned: pd.DataFrame) -> list[Request]:
    """The requests `plan` found nowhere usable: the only ones ever submitted."""
    missing = set(planned.loc[planned["where"] == "missing", "key"])
    return [(cfg, s) for cfg, s in requests if run_key(cfg, s) in missing]


def _status_by_key(runs: pd.DataFrame) -> dict[str, str]:
    return dict(zip(runs["key"], runs["status"], strict=True)) if len(runs) else {}


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None)."""
    return {k: v for k, v in values.items() if v is not None}
