"""What the app asks for and where it already is: pure planning functions behind the CNN, U-Net and Runs pages.

A *study* is a set of variants × seeds at one training length on one data set. `make_requests` turns the
page's choices into `(RunConfig, seed)` pairs (or clear messages when a choice is invalid); `plan` says for
each pair whether a finished run exists (in the store or in a `cached_runs/` bundle), is being trained, or is
missing; only the missing ones are ever submitted, so loading never retrains.

`LiveTail` is the incremental reader the live view polls: it keeps a cursor into the store's metric rows and
reads only new ones. `progress` turns run rows + epoch rows into "epoch k of N, s/epoch, ETA".

This module imports neither torch nor streamlit (the viewer pages use it).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from adlapp.bundle import BundleError, LoadedBundle, export_store, import_bundle, read_bundle_dir
from adlapp.config import (LIMITS, VARIANTS, ConfigError, RunConfig, base_config, parse_seeds, run_key,
                           variant, variant_label)
from adlapp.folder_layout import capped_list
from adlapp.store import ACTIVE, FINISHED, RunStore, RunTables

__all__ = [
    "PROJECT_ROOT", "BUILTIN_DATASETS", "IMAGE_EXTENSIONS", "Toggles", "StudyChoice", "CachedRuns",
    "LiveTail",
    "store_dir", "cached_runs_dir", "parse_seeds", "parse_budgets", "check_dataset_folder", "make_requests",
    "plan",
    "missing_requests", "plan_summary", "load_cached", "folder_signature", "progress",
    "runs_overview", "fmt_duration", "registry_names", "run_label", "export_bytes", "import_bytes",
    "import_cached",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_DATASETS = {"cnn": "cards", "unet": "vessels"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")      # what adlapp.data.folders reads
_VAL_NAMES = ("valid", "val")                     # either spelling of the validation split, as the loader


def store_dir() -> Path:
    """$ADLAPP_STORE, else runs/ next to the app (not the current directory, which may be anywhere)."""
    return Path(os.environ.get("ADLAPP_STORE") or PROJECT_ROOT / "runs")


def cached_runs_dir() -> Path:
    """$ADLAPP_CACHED_RUNS, else cached_runs/ next to the app."""
    return Path(os.environ.get("ADLAPP_CACHED_RUNS") or PROJECT_ROOT / "cached_runs")


def registry_names(experiment: str) -> list[str]:
    return [name for name in VARIANTS if name.startswith(experiment + "/")]


# -- choices -> requests ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Toggles:
    """Model/optimizer settings to apply on top of a config; None leaves the config's value."""
    batchnorm: bool | None = None
    activation: str | None = None
    upsampling: str | None = None
    optimizer: str | None = None
    lr: float | None = None

    def apply(self, cfg: RunConfig) -> RunConfig:
        model = {k: v for k, v in (("batchnorm", self.batchnorm), ("activation", self.activation),
                                   ("upsampling", self.upsampling)) if v is not None}
        optim = {k: v for k, v in (("name", self.optimizer), ("lr", self.lr)) if v is not None}
        return replace(cfg, model=replace(cfg.model, **model), optim=replace(cfg.optim, **optim))


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
    seeds: tuple[int, ...] | str = (0, 1, 2)         # or the text a user typed: "3" or "0,1,2"
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


def check_dataset_folder(path: str | os.PathLike, experiment: str) -> str | None:
    """A cheap, torch-free check of a data folder's layout (no image is decoded); None when it looks right.

    cnn:  ROOT/{train,valid,test}/<class>/*.png|jpg|jpeg, at least two classes, the same in every split.
    unet: ROOT/{train,val,test}/{images,masks}/ with one mask per image, matched by file stem.
    `val` and `valid` are both accepted, as in adlapp.data.folders. The message names the offending path and
    lists at most a few of the entries found there.
    """
    root = Path(path).expanduser()

    def dirs(p: Path) -> list[Path]:
        return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))

    def images(p: Path) -> list[Path]:
        return [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                and f.suffix.lower() in IMAGE_EXTENSIONS]

    try:
        if not root.exists():
            return f"Data folder {root} does not exist."
        if not root.is_dir():
            return f"Data folder {root} is not a directory."
        val_first = "valid" if experiment == "cnn" else "val"
        splits: dict[str, Path] = {}
        for split, names in (("train", ("train",)), ("val", (val_first,) + tuple(n for n in _VAL_NAMES
                                                                                if n != val_first)),
                             ("test", ("test",))):
            found = next((root / n for n in names if (root / n).is_dir()), None)
            if found is None:
                present = capped_list(d.name for d in dirs(root))
                return (f"Data folder {root} has no '{names[0]}' folder: expected train/{val_first}/test "
                        f"(found: {present}).")
            splits[split] = found
        if experiment == "cnn":
            classes = None
            for p in splits.values():
                here = {d.name: d for d in dirs(p)}
                if not here:
                    return f"Split folder {p} has no class folders (expected {p}/<class name>/*.png)."
                if classes is None:
                    # One class trains to accuracy 1.0 without learning anything; the loader refuses it too.
                    if len(here) < 2:
                        return (f"Split folder {p} has only one class folder ({next(iter(here))}); "
                                "classification needs at least two classes.")
                    classes = set(here)
                elif set(here) != classes:
                    diff = sorted(classes ^ set(here))
                    return (f"Split folder {p} has different classes from {splits['train']}: "
                            f"{capped_list(diff)}.")
                for d in here.values():
                    if not images(d):
                        return f"Class folder {d} has no images ({', '.join(IMAGE_EXTENSIONS)})."
            return None
        for p in splits.values():
            stems = {}
            for kind in ("images", "masks"):
                if not (p / kind).is_dir():
                    return f"Split folder {p} has no '{kind}' folder (expected {p}/images and {p}/masks)."
                stems[kind] = {f.stem: f for f in images(p / kind)}
            if not stems["images"]:
                return f"Split folder {p} has no images in {p / 'images'}."
            for stem in sorted(set(stems["images"]) ^ set(stems["masks"])):
                if stem in stems["images"]:
                    return f"Image {stems['images'][stem]} has no mask with stem '{stem}' in {p / 'masks'}."
                return f"Mask {stems['masks'][stem]} has no image with stem '{stem}' in {p / 'images'}."
        return None
    except OSError as e:
        # A folder without read permission, or a path the OS rejects (a name too long): a message for the
        # page, not a traceback.
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(root) else ""
        return f"Data folder {root} cannot be read: {e.strerror or e}{where}."


def make_requests(choice: StudyChoice) -> tuple[list[tuple[RunConfig, int]], list[str]]:
    """The (config, seed) pairs a choice asks for, in display order, and every reason it is invalid.

    When the list of errors is not empty the pairs are empty: nothing may be started from a bad choice.
    """
    errors: list[str] = []
    exp = choice.experiment
    if exp not in BUILTIN_DATASETS:
        return [], [f"Experiment {exp!r}: must be cnn or unet."]
    if not choice.variants and not choice.custom:
        errors.append("Choose at least one variant.")
    seeds, budgets = choice.seeds, choice.budgets
    if isinstance(seeds, str):
        seeds, problem = parse_seeds(seeds)
        errors += [problem] if problem else []
    elif not seeds:
        errors.append("Choose at least one seed.")
    if isinstance(budgets, str):
        budgets, problem = parse_budgets(budgets)
        errors += [problem] if problem else []
    if budgets:
        if any(b < 1 for b in budgets):
            errors.append(f"Epoch budgets {list(budgets)}: every budget must be at least 1.")
    elif choice.epochs is not None and choice.epochs < 1:
        errors.append(f"Epochs = {choice.epochs}: train for at least 1 epoch.")
    if choice.batch_size is not None and choice.batch_size < 1:
        errors.append(f"Batch size = {choice.batch_size}: must be at least 1.")
    for name, value in (("Training images per class", choice.train_per_class),
                        ("Training images", choice.n_train)):
        if value is not None and value < 1:
            errors.append(f"{name} = {value}: must be at least 1.")
    dataset = choice.dataset.strip() or BUILTIN_DATASETS[exp]
    builtin = {v: k for k, v in BUILTIN_DATASETS.items()}
    if dataset in builtin:
        if builtin[dataset] != exp:
            errors.append(f"Data set {dataset!r} is for the {builtin[dataset]} experiment, not {exp}.")
    else:
        problem = check_dataset_folder(dataset, exp)
        if problem:
            errors.append(problem)
        dataset = str(Path(dataset).expanduser().resolve())
    if errors:
        return [], errors

    unknown = [n for n in choice.variants if n not in registry_names(exp)]
    if unknown:
        return [], [f"Variant {n!r} is not a {exp} variant (known: {', '.join(registry_names(exp))})."
                    for n in unknown]
    configs: list[RunConfig] = []
    try:
        for cfg in [variant(n) for n in choice.variants] + [t.apply(base_config(exp)) for t in choice.custom]:
            cfg = choice.common.apply(cfg)
            top: dict[str, Any] = {}
            if budgets:
                top["epochs"] = max(budgets)
                top["eval_at"] = tuple(sorted(set(b for b in budgets if b < max(budgets))))
            elif choice.epochs is not None:
                top["epochs"] = choice.epochs
                top["eval_at"] = tuple(e for e in cfg.eval_at if e < choice.epochs)
            if choice.batch_size is not None:
                top["batch_size"] = choice.batch_size
            data = {"name": dataset}
            for k in ("train_per_class", "n_train", "image_size"):
                if getattr(choice, k) is not None:
                    data[k] = getattr(choice, k)
            cfg = replace(cfg, data=replace(cfg.data, **data), **top)
            if cfg not in configs:           # a custom variant equal to a named one is asked for once
                configs.append(cfg)
    except ConfigError as e:
        return [], [f"Invalid setting: {e}"]
    return [(cfg, s) for cfg in configs for s in seeds], []


# -- where each requested run is ----------------------------------------------------------------------------
def plan(requests: list[tuple[RunConfig, int]], store_runs: pd.DataFrame,
         cached_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per request: key, variant, seed, epochs, where, status.

    where: "store" (finished in the store), "cached" (finished in a cached_runs/ bundle), "training" (queued
    or running in the store), "missing" (nothing usable: never run, or failed / cancelled / interrupted —
    training it again resumes from a checkpoint where there is one). Finished means done or diverged: a
    diverged run is a result, not a reason to retrain.
    """
    store_status = dict(zip(store_runs["key"], store_runs["status"])) if len(store_runs) else {}
    cached_status = dict(zip(cached_runs["key"], cached_runs["status"])) if len(cached_runs) else {}
    rows = []
    for cfg, seed in requests:
        key = run_key(cfg, seed)
        st, ct = store_status.get(key), cached_status.get(key)
        if st in FINISHED:
            where = "store"
        elif ct in FINISHED:
            where, st = "cached", ct
        elif st in ACTIVE:
            where = "training"
        else:
            where = "missing"
        rows.append({"key": key, "variant": variant_label(cfg), "seed": int(seed), "epochs": cfg.epochs,
                     "where": where, "status": st or ""})
    return pd.DataFrame(rows, columns=["key", "variant", "seed", "epochs", "where", "status"])


def missing_requests(requests: list[tuple[RunConfig, int]], planned: pd.DataFrame) -> list[tuple[RunConfig, int]]:
    missing = set(planned.loc[planned["where"] == "missing", "key"])
    return [(cfg, s) for cfg, s in requests if run_key(cfg, s) in missing]


def plan_summary(planned: pd.DataFrame) -> str:
    """'9 runs: 3 finished in the store, 3 in cached_runs/, 1 training, 2 to train.'"""
    counts = planned["where"].value_counts()
    parts = [f"{counts.get('store', 0)} finished in the store", f"{counts.get('cached', 0)} in cached_runs/",
             f"{counts.get('training', 0)} training or queued", f"{counts.get('missing', 0)} to train"]
    return f"{len(planned)} run(s): " + ", ".join(parts) + "."


# -- cached_runs/ ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedRuns:
    tables: RunTables
    bundles: pd.DataFrame         # file, runs, experiments, variants, created
    errors: list[str]             # one line per unreadable bundle (skipped), naming the file


def folder_signature(folder: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of every bundle: a cache key that changes when a bundle is added or replaced."""
    out = []
    for p in sorted(Path(folder).glob("*.zip")):
        try:
            s = p.stat()
        except OSError:
            continue
        out.append((p.name, s.st_size, s.st_mtime_ns))
    return tuple(out)


def load_cached(folder: str | os.PathLike) -> CachedRuns:
    """Every readable bundle in `folder`, merged; unreadable ones are reported and skipped."""
    loaded, errors = read_bundle_dir(folder) if Path(folder).is_dir() else ([], [])
    return CachedRuns(RunTables.concat([b.tables for b in loaded]), _bundle_rows(loaded), errors)


def _bundle_rows(loaded: list[LoadedBundle]) -> pd.DataFrame:
    rows = []
    for b in loaded:
        runs = b.tables.runs
        rows.append({"file": b.path.name, "runs": len(runs),
                     "experiments": ", ".join(sorted(set(runs["experiment"]))),
                     "variants": ", ".join(sorted(set(runs["variant"]))),
                     "created": b.manifest.get("created", "")})
    return pd.DataFrame(rows, columns=["file", "runs", "experiments", "variants", "created"])


# -- live view ------------------------------------------------------------------------------------------
class LiveTail:
    """Accumulates the per-epoch rows of `keys`, reading only rows added since the previous poll."""

    def __init__(self, store: RunStore, keys: list[str]) -> None:
        self.store, self.keys = store, list(keys)
        self.cursor = 0
        self.frame = pd.DataFrame(columns=["key", "epoch", "name", "value"])

    def poll(self) -> int:
        """Read new rows; returns how many arrived. A rewritten row (a resumed epoch) replaces the old one."""
        if not self.keys:
            return 0
        new, self.cursor = self.store.epoch_metrics(self.keys, since_id=self.cursor)
        if len(new):
            frame = pd.concat([self.frame, new], ignore_index=True) if len(self.frame) else new
            self.frame = frame.drop_duplicates(["key", "epoch", "name"], keep="last").reset_index(drop=True)
        return len(new)


def progress(runs: pd.DataFrame, epochs: pd.DataFrame, now: float | None = None) -> pd.DataFrame:
    """Per run: epoch k of N, seconds per epoch, ETA and duration, plus a one-line text.

    Seconds per epoch is the median of the run's last 10 recorded `seconds` (robust to the slow first epoch),
    else the time since start divided by the epochs done. ETA = remaining epochs × seconds per epoch.
    """
    now = time.time() if now is None else now
    secs = epochs[epochs["name"] == "seconds"] if len(epochs) else epochs
    per_key = (secs.sort_values("epoch").groupby("key")["value"].apply(lambda v: float(v.tail(10).median()))
               if len(secs) else pd.Series(dtype=float))
    rows = []
    for r in runs.to_dict("records"):
        k, n = int(r.get("last_epoch") or 0), int(r["epochs"])
        started, finished = _num(r.get("started")), _num(r.get("finished"))
        spe = per_key.get(r["key"])
        if spe is None and k and started:
            spe = ((finished or now) - started) / k
        duration = ((finished or now) - started) if started else None
        status = r["status"]
        eta = (n - k) * spe if (status in ACTIVE and spe is not None) else None
        text = f"{r['variant']} seed {int(r['seed'])}: {status}, epoch {k} of {n}"
        if spe is not None:
            text += f", {spe:.2f} s/epoch"
        if eta is not None and status == "running":
            text += f", ETA {fmt_duration(eta)}"
        rows.append({"key": r["key"], "variant": r["variant"], "seed": int(r["seed"]), "status": status,
                     "epoch": k, "epochs": n, "fraction": min(1.0, k / n) if n else 0.0,
                     "sec_per_epoch": spe, "eta_s": eta, "duration_s": duration, "text": text})
    return pd.DataFrame(rows, columns=["key", "variant", "seed", "status", "epoch", "epochs", "fraction",
                                       "sec_per_epoch", "eta_s", "duration_s", "text"])


def runs_overview(store: RunStore) -> pd.DataFrame:
    """Every run in the store for the Runs page: status, progress, device, duration, ETA, error."""
    store.mark_stale()
    runs = store.runs()
    if runs.empty:
        return pd.DataFrame(columns=_OVERVIEW_COLUMNS)
    prog = progress(runs, _recent_seconds(store, list(runs.loc[runs["status"] == "running", "key"])))
    out = runs[["key", "experiment", "variant", "seed", "status", "device", "threads", "source", "error",
                "notes"]].copy()
    out["progress"] = prog["fraction"].to_numpy()
    out["epoch"] = prog["epoch"].to_numpy()
    out["epochs"] = prog["epochs"].to_numpy()
    out["duration"] = [fmt_duration(s) for s in prog["duration_s"]]
    out["s/epoch"] = prog["sec_per_epoch"].to_numpy()
    out["ETA"] = [fmt_duration(s) if s is not None and st == "running" else ""
                  for s, st in zip(prog["eta_s"], prog["status"])]
    return out[_OVERVIEW_COLUMNS]


# threads: CPU threads the run trained with (its numbers depend on it); notes: resumes, skipped files.
_OVERVIEW_COLUMNS = ["key", "experiment", "variant", "seed", "status", "progress", "epoch", "epochs", "device",
                     "threads", "duration", "s/epoch", "ETA", "source", "error", "notes"]


def _recent_seconds(store: RunStore, running: list[str]) -> pd.DataFrame:
    """`seconds` rows of the running runs only (finished runs have their duration from start/finish)."""
    if not running:
        return pd.DataFrame(columns=["key", "epoch", "name", "value"])
    rows, _ = store.epoch_metrics(running)
    return rows[rows["name"] == "seconds"]


def run_label(row: dict[str, Any]) -> str:
    return f"{row['variant']} seed {int(row['seed'])} · {row['status']} · {str(row['key'])[:8]}"


def export_bytes(store: RunStore) -> bytes:
    """A bundle of every finished run in the store, as bytes (for a download). Raises BundleError if none."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_store(store, Path(tmp) / "runs.zip", provenance={"command": "app: Runs page export"})
        return path.read_bytes()


def import_bytes(store: RunStore, name: str, data: bytes) -> list[str]:
    """Import an uploaded bundle; returns the keys of runs new to the store. Raises BundleError naming it.

    `name` is whatever the browser sent, so it is never used as a path: the bytes go to a file in a private
    temporary folder whose name keeps only the safe characters of the upload's last path component (the store
    records it as the runs' source), and messages show the name with control characters replaced.
    """
    display = "".join(c if c.isprintable() else "?" for c in str(name))[:200] or "upload"
    # ".." as a file name is the temp folder's parent (the old IsADirectoryError) and "a/../b" escapes it; keeping
    # letters, digits and " ._+-()" of the last component, without leading dots, leaves none of that, and the byte
    # cap keeps the name under every file system's 255-byte limit.
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in " ._+-()" else "_" for c in base).strip().lstrip(".")
    safe = safe.encode()[:150].decode(errors="ignore").strip()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (safe or "upload.zip")
        path.write_bytes(data)
        try:
            return import_bundle(store, path)
        except BundleError as e:
            raise BundleError(str(e).replace(str(path), display)) from None


def import_cached(store: RunStore, folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Copy every readable bundle in `folder` into the store (no training); (new keys, error lines)."""
    added, errors = [], []
    for path in sorted(Path(folder).glob("*.zip")):
        try:
            added += import_bundle(store, path)
        except BundleError as e:
            errors.append(str(e))
    return added, errors


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f
