"""Typed, frozen experiment configuration and the variant registry.

A run is fully described by a `RunConfig` plus a seed. The run key is a hash of the canonical JSON of the
config, the seed and `CODE_VERSION`, so asking twice for the same thing finds the finished run instead of
training again. Bump `CODE_VERSION` whenever a change would alter the numbers a config produces.

This module imports neither torch nor streamlit: the viewer pages use it.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Literal

__all__ = [
    "CODE_VERSION", "ACTIVATIONS", "UPSAMPLINGS", "OPTIMIZERS", "PRECISIONS", "engine_label", "EXPERIMENTS",
    "EXPERIMENT_INFO",
    "ExperimentInfo", "BUILTIN_DATASETS", "BN_POSITIONS", "BN_LAYERS", "ADDED_DEFAULTS",
    "COURSE_NAMES", "COURSE_VARIANTS", "QUESTION_NAMES", "CARD_CLASSES", "batches_per_epoch",
    "display_name", "custom_name", "RUN_ONLY_FIELDS",
    "training_signature", "ConfigError",
    "ModelConfig", "OptimConfig", "DataConfig", "RunConfig", "VARIANTS", "variant", "variant_label",
    "run_key", "config_to_dict", "config_from_dict", "base_config", "LIMITS", "MAX_SEEDS", "MAX_SEED",
    "is_run_key", "check_run_key", "parse_seeds",
]

CODE_VERSION = "adlapp-1"

Experiment = Literal["cnn", "unet"]
EXPERIMENTS: tuple[str, ...] = ("cnn", "unet")


@dataclass(frozen=True)
class ExperimentInfo:
    """What an experiment is: its title, its task and the built-in data set it trains on by default."""
    name: str
    title: str
    task: str                         # "classification" | "segmentation"
    dataset: str                      # built-in data set


EXPERIMENT_INFO: dict[str, ExperimentInfo] = {
    "cnn": ExperimentInfo("cnn", "CNN", "classification", "cards"),
    "unet": ExperimentInfo("unet", "U-Net", "segmentation", "vessels"),
}
BUILTIN_DATASETS: dict[str, str] = {info.dataset: info.name for info in EXPERIMENT_INFO.values()}  # -> experiment
ACTIVATIONS: tuple[str, ...] = ("elu", "relu", "gelu")
UPSAMPLINGS: tuple[str, ...] = ("transpose", "nearest", "bilinear")
# Where the CNN's BatchNorm goes (the report's open question). The course: BN on conv2 and conv3, before the
# activation, affine=False. "conv1-3" also normalises the first conv's output; "+fc" adds BatchNorm1d on the 512
# features before the linear layer.
BN_POSITIONS: tuple[str, ...] = ("before", "after")            # relative to the activation
BN_LAYERS: tuple[str, ...] = ("conv2-3", "conv1-3", "conv2-3+fc", "conv1-3+fc")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
# How the arithmetic is done (RunConfig.precision): fp32 everywhere, or bf16 autocast of the forward pass (the
# weights, the optimiser and the loss stay fp32). bf16 is for CUDA, where it is ~2x faster; a CPU without bf16
# instructions runs it slower (this one has AVX512-BF16: 1.46x for the CNN, docs/performance.md).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


# Upper bounds on every size a user can type (app, CLI, bundles). They sit far above any course-sized
# study, and far below what would exhaust memory or overflow SQLite's 64-bit integers: a typo such as
# 100000000 epochs is refused with a message instead of freezing the machine.
LIMITS: dict[str, int] = {
    "epochs": 100_000,
    "batch_size": 65_536,
    "train_per_class": 5_000,         # cards: 53 x 5,000 images of 3x28x28 floats is ~0.8 GB
    "n_train": 20_000,                # vessels
    "image_size": 512,
    "depth": 5,
    "base_width": 256,
    "threads": 256,
}
MAX_SEEDS = 100                       # seeds in one request
MAX_SEED = 2 ** 31 - 1                # seed values: what every RNG and SQLite store exactly

_RUN_KEY = re.compile(r"[0-9a-f]{16}")


def is_run_key(key: object) -> bool:
    """True for exactly what `run_key` produces: 16 lowercase hex digits. Anything else read from a store
    or a bundle is refused before it can become part of a filesystem path."""
    return isinstance(key, str) and _RUN_KEY.fullmatch(key) is not None


_SEED_RANGE = re.compile(r"(\d+)-(\d+)")


def parse_seeds(text: str) -> tuple[list[int], str | None]:
    """The seeds a user typed. Returns (seeds, error message or None).

    '3' → seeds 0,1,2: one number alone is a count. '0,5,7' → exactly those; '0-4' → 0,1,2,3,4; a list may
    mix both ('0-2,7'). One particular seed is '7,' or '7-7'. So '--seeds 5' recorded in a bundle's
    provenance keeps meaning seeds 0 to 4. Counts, lists and ranges are bounded (MAX_SEEDS seeds of value at
    most MAX_SEED; a range is measured before it is expanded) so that a typo can neither exhaust memory nor
    overflow the store's integers."""
    text = (text or "").strip()
    shown = repr(text[:40])
    if not text:
        return [], "Choose at least one seed (a count such as 3, a list such as 0,1,2 or a range such as 0-4)."
    if re.fullmatch(r"[+-]?\d+", text):
        count = int(text) if len(text) <= 12 else MAX_SEEDS + 1     # int() refuses numbers of 4,300+ digits
        if not 1 <= count <= MAX_SEEDS:
            return [], f"Seeds {shown}: the number of seeds must be at least 1 and at most {MAX_SEEDS}."
        return list(range(count)), None
    parts = [t for t in text.replace(" ", ",").split(",") if t.strip()]
    if not parts or len(parts) > MAX_SEEDS:
        return [], f"Seeds {shown}: give a count (3), a range (0-4) or a list of 1 to {MAX_SEEDS} seeds (0,1,2)."
    spans: list[tuple[int, int]] = []
    for part in parts:
        m = _SEED_RANGE.fullmatch(part.strip())
        try:
            low, high = (int(m[1]), int(m[2])) if m else (int(part), int(part))
        except ValueError:
            return [], (f"Seeds {shown}: give a count (3), a comma-separated list of whole numbers (0,1,2) "
                        "or a range (0-4).")
        if low > high:
            return [], f"Seeds {shown}: a range goes from the lower seed to the higher one ({high}-{low})."
        spans.append((low, high))
    if any(not 0 <= low <= high <= MAX_SEED for low, high in spans):
        return [], f"Seeds {shown}: seeds must be distinct whole numbers from 0 to {MAX_SEED:,}."
    if sum(high - low + 1 for low, high in spans) > MAX_SEEDS:
        return [], f"Seeds {shown}: at most {MAX_SEEDS} seeds in one request."
    values = [seed for low, high in spans for seed in range(low, high + 1)]
    if len(set(values)) != len(values):
        return [], f"Seeds {shown}: seeds must be distinct whole numbers from 0 to {MAX_SEED:,}."
    return values, None


def check_run_key(key: object) -> str:
    if not is_run_key(key):
        raise ConfigError(f"run key {str(key)[:40]!r}: not a run key (16 lowercase hex digits)")
    return key  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelConfig:
    batchnorm: bool = False
    activation: str = "elu"           # the course CNN uses ELU; the course U-Net default is ReLU
    upsampling: str = "transpose"     # U-Net only: "transpose" is the course's "normal" variant
    depth: int = 3                    # U-Net only: number of 2x down-samplings
    base_width: int = 8               # U-Net only: 8 keeps 1000 epochs at ~4 min on 2 CPU cores
    # CNN only, and only with batchnorm (added after adlapp-1; left out of the run key at these defaults,
    # see ADDED_DEFAULTS, so every earlier run keeps its key):
    bn_position: str = "before"       # "before" the activation (the course) or "after" it
    bn_layers: str = "conv2-3"        # which layers get BN, see BN_LAYERS
    bn_affine: bool = False           # learnable scale and shift (the course: affine=False)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"
    lr: float = 0.01                  # the course kept Adam and SGD at the same lr for a fair comparison
    momentum: float = 0.9             # SGD only
    weight_decay: float = 0.0


@dataclass(frozen=True)
class DataConfig:
    name: str = "cards"               # "cards" | "vessels" | a folder path
    train_per_class: int = 20         # cards: ~1,060 training images, a few seconds per CNN epoch on CPU
    n_train: int = 48                 # vessels: training images
    image_size: int = 64              # vessels and segmentation folders: side length in pixels
    seed: int = 0                     # data generation seed; fixed so every training seed sees the same data


@dataclass(frozen=True)
class RunConfig:
    experiment: str = "cnn"
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 200
    batch_size: int = 64
    eval_at: tuple[int, ...] = ()     # extra test evaluations inside the run (the last epoch is always one)
    # How the engine computes (see ADDED_DEFAULTS: at their defaults they are not in the key). Both change the
    # numbers in their last bits or more, so they are part of what a run is, not a run option:
    channels_last: bool = False       # NHWC activations and weights: ~1.5x faster U-Net steps on this CPU
    precision: str = "fp32"           # see PRECISIONS

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def test_epochs(self) -> tuple[int, ...]:
        """Epochs (1-based) after which the test split is evaluated: `eval_at` inside the run, plus the last."""
        return tuple(sorted({e for e in self.eval_at if 0 < e < self.epochs} | {self.epochs}))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate(cfg: RunConfig) -> None:
    def bad(name: str, value: Any, why: str) -> ConfigError:
        return ConfigError(f"{name}={value!r}: {why}")

    def whole(name: str, value: Any, low: int, high: int) -> None:
        if not _is_int(value) or not low <= value <= high:
            raise bad(name, value, f"must be a whole number from {low} to {high:,}")

    if cfg.experiment not in EXPERIMENTS:
        raise bad("experiment", cfg.experiment, f"must be one of {', '.join(EXPERIMENTS)}")
    whole("epochs", cfg.epochs, 1, LIMITS["epochs"])
    whole("batch_size", cfg.batch_size, 1, LIMITS["batch_size"])
    if not isinstance(cfg.eval_at, tuple) or any(not _is_int(e) or e < 1 for e in cfg.eval_at):
        raise bad("eval_at", cfg.eval_at, "must be whole epoch numbers >= 1")
    m, o, d = cfg.model, cfg.optim, cfg.data
    if not isinstance(m.batchnorm, bool):
        raise bad("batchnorm", m.batchnorm, "must be true or false")
    if m.activation not in ACTIVATIONS:
        raise bad("activation", m.activation, f"must be one of {', '.join(ACTIVATIONS)}")
    if m.upsampling not in UPSAMPLINGS:
        raise bad("upsampling", m.upsampling, f"must be one of {', '.join(UPSAMPLINGS)}")
    whole("depth", m.depth, 1, LIMITS["depth"])
    if m.bn_position not in BN_POSITIONS:
        raise bad("bn_position", m.bn_position, f"must be one of {', '.join(BN_POSITIONS)}")
    if m.bn_layers not in BN_LAYERS:
        raise bad("bn_layers", m.bn_layers, f"must be one of {', '.join(BN_LAYERS)}")
    if not isinstance(m.bn_affine, bool):
        raise bad("bn_affine", m.bn_affine, "must be true or false")
    changed = [name for name, default in ADDED_DEFAULTS["model"].items() if getattr(m, name) != default]
    # A BN option that changes nothing would give one model two run keys: refuse it instead.
    if changed and (cfg.experiment != "cnn" or not m.batchnorm):
        raise bad(changed[0], getattr(m, changed[0]),
                  "only applies to the CNN with batchnorm on" if cfg.experiment == "cnn"
                  else "only applies to the CNN (the U-Net's BN sits before each activation, affine)")
    whole("base_width", m.base_width, 1, LIMITS["base_width"])
    if not isinstance(cfg.channels_last, bool):
        raise bad("channels_last", cfg.channels_last, "must be true or false")
    if cfg.precision not in PRECISIONS:
        raise bad("precision", cfg.precision, f"must be one of {', '.join(PRECISIONS)}")
    if o.name not in OPTIMIZERS:
        raise bad("optimizer", o.name, f"must be one of {', '.join(OPTIMIZERS)}")
    # Every float is checked finite: a NaN would pass `x < 0`, be stored, and break strict JSON later.
    if not _is_finite(o.lr) or o.lr <= 0:
        raise bad("lr", o.lr, "must be a positive finite number")
    if not _is_finite(o.momentum) or not 0 <= o.momentum < 1:
        raise bad("momentum", o.momentum, "must be a finite number in [0, 1)")
    if not _is_finite(o.weight_decay) or o.weight_decay < 0:
        raise bad("weight_decay", o.weight_decay, "must be a finite number >= 0")
    if not isinstance(d.name, str) or not d.name.strip():
        raise bad("dataset", d.name, "must name a built-in data set (cards, vessels) or a folder")
    whole("train_per_class", d.train_per_class, 1, LIMITS["train_per_class"])
    whole("n_train", d.n_train, 1, LIMITS["n_train"])
    whole("image_size", d.image_size, 1, LIMITS["image_size"])
    whole("data seed", d.seed, 0, MAX_SEED)
    if cfg.experiment == "unet" and (d.image_size < 2 ** m.depth or d.image_size % (2 ** m.depth)):
        raise bad("image_size", d.image_size, f"must be a multiple of 2**depth = {2 ** m.depth}")


# Config fields added after CODE_VERSION "adlapp-1", with the value every earlier run implicitly had. At that
# value a field is left out of the run key and the training signature, so runs made before it existed
# (cached_runs/ among them) keep their keys; any other value is hashed like every other field.
ADDED_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"bn_position": "before", "bn_layers": "conv2-3", "bn_affine": False},
    "run": {"channels_last": False, "precision": "fp32"},          # RunConfig's own fields
}


def _canonical(d: dict[str, Any]) -> dict[str, Any]:
    """A config dict with ADDED_DEFAULTS fields at their default removed (a copy; nested parts copied)."""
    def without_defaults(section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in section.items()
                if not (k in defaults and v == defaults[k] and type(v) is type(defaults[k]))}

    out = without_defaults(d, ADDED_DEFAULTS["run"])
    for part, defaults in ADDED_DEFAULTS.items():
        if part != "run" and isinstance(out.get(part), dict):
            out[part] = without_defaults(out[part], defaults)
    return out


CARD_CLASSES = 53                     # the built-in card set: 13 ranks x 4 suits + joker (adlapp.data.cards)


def batches_per_epoch(cfg: RunConfig) -> int | None:
    """Optimiser steps per epoch on a built-in data set: ceil(training images / batch size), the trainer's last
    batch being a partial one. None for a folder of the user's (its size is known only once it is read)."""
    if cfg.data.name == "cards":
        n = cfg.data.train_per_class * CARD_CLASSES
    elif cfg.data.name == "vessels":
        n = cfg.data.n_train
    else:
        return None
    return -(-n // cfg.batch_size)


def base_config(experiment: str) -> RunConfig:
    """The set-up each variant starts from. For the CNN it is the course's (the report gives layers,
    optimisers, lr 0.01 and 200 epochs; batch 64 is ours). The report gives no U-Net architecture or
    hyperparameters: depth 3, base width 8, Adam at lr 0.001, batch 8 are this project's choices."""
    if experiment == "cnn":
        return RunConfig(experiment="cnn", model=ModelConfig(activation="elu"),
                         optim=OptimConfig(name="adam"), data=DataConfig(name="cards"),
                         epochs=200, batch_size=64)
    if experiment == "unet":
        return RunConfig(experiment="unet", model=ModelConfig(activation="relu", upsampling="transpose"),
                         optim=OptimConfig(name="adam", lr=0.001), data=DataConfig(name="vessels"),
                         epochs=1000, batch_size=8, eval_at=(200, 400))
    raise ConfigError(f"experiment={experiment!r}: must be one of {', '.join(EXPERIMENTS)}")


def _with(cfg: RunConfig, **model: Any) -> RunConfig:
    return replace(cfg, model=replace(cfg.model, **model))


def _opt(cfg: RunConfig, **optim: Any) -> RunConfig:
    return replace(cfg, optim=replace(cfg.optim, **optim))


# Each named variant spells out only how it differs from the course base (timm-style registry).
VARIANTS: dict[str, Callable[[], RunConfig]] = {
    "cnn/bn-adam": lambda: _with(base_config("cnn"), batchnorm=True),
    "cnn/adam": lambda: base_config("cnn"),
    "cnn/sgd": lambda: _opt(base_config("cnn"), name="sgd"),
    # The report's open questions: BN with SGD too (the 2 x 2), and where BN goes.
    "cnn/bn-sgd": lambda: _opt(_with(base_config("cnn"), batchnorm=True), name="sgd"),
    "cnn/bn-after-adam": lambda: _with(base_config("cnn"), batchnorm=True, bn_position="after"),
    "cnn/bn-all-adam": lambda: _with(base_config("cnn"), batchnorm=True, bn_layers="conv1-3+fc"),
    "cnn/bn-affine-adam": lambda: _with(base_config("cnn"), batchnorm=True, bn_affine=True),
    "unet/normal": lambda: base_config("unet"),
    "unet/nearest": lambda: _with(base_config("unet"), upsampling="nearest"),
    "unet/elu": lambda: _with(base_config("unet"), activation="elu"),
    "unet/nearest-elu": lambda: _with(base_config("unet"), upsampling="nearest", activation="elu"),
}

# How the course report names them (its Figure 1 captions and its U-Net table): the one display name of a
# registry variant on every page, chart, table and export.
COURSE_NAMES: dict[str, str] = {
    "cnn/bn-adam": "BN + Adam", "cnn/adam": "Adam", "cnn/sgd": "SGD",
    "unet/normal": "Normal", "unet/nearest": "Nearest Neighbor", "unet/elu": "Using ELU",
    "unet/nearest-elu": "Nearest and ELU",
}
# The variants the report trained (its Figure 1 and U-Net table): what the course figures show and what the
# pages tick by default. The other registry variants answer the report's open questions.
COURSE_VARIANTS: tuple[str, ...] = tuple(COURSE_NAMES)
# Names of the registry variants the report did not train (the open questions), in the same style.
QUESTION_NAMES: dict[str, str] = {
    "cnn/bn-sgd": "BN + SGD", "cnn/bn-after-adam": "BN after ELU + Adam",
    "cnn/bn-all-adam": "BN on every layer + Adam", "cnn/bn-affine-adam": "BN (affine) + Adam",
}


_WORDS = {"elu": "ELU", "relu": "ReLU", "gelu": "GELU", "adam": "Adam", "sgd": "SGD",
          "transpose": "transposed conv", "nearest": "nearest neighbour", "bilinear": "bilinear"}


def display_name(variant_label_: str) -> str:
    """The one name of a variant on every page, chart, table and export: the course report's name of a
    registry variant ("BN + Adam"), else a readable name of a custom one (`custom_name`), else the label."""
    base, engine = engine_label(variant_label_)
    name = COURSE_NAMES.get(base) or QUESTION_NAMES.get(base) or custom_name(base)
    if name is None:
        return str(variant_label_)
    return f"{name} ({engine})" if engine else name


def custom_name(variant_label_: str) -> str | None:
    """'cnn/bn-relu-sgd-lr0.005' -> 'Custom: BN + SGD, lr 0.005, ReLU'; 'unet/nearest-nobn-elu-adam-lr0.001'
    -> 'Custom: nearest neighbour, ELU, Adam, lr 0.001'. Reads the labels `variant_label` writes for configs
    that match no registry variant; None for anything else (a registry name, a label it cannot read)."""
    exp, _, rest = str(variant_label_).partition("/")
    body, _, lr = rest.partition("-lr")
    parts = body.split("-")
    if exp == "unet" and len(parts) == 4 and parts[0] in UPSAMPLINGS:
        upsampling, parts = parts[0], parts[1:]
    elif exp == "cnn" and len(parts) == 3:
        upsampling = None
    else:
        return None
    bn, act, opt = parts
    bn_text = "" if bn == "nobn" else _bn_words(bn)
    if bn_text is None or act not in ACTIVATIONS or opt not in OPTIMIZERS:
        return None
    try:
        lr_text = f"{float(lr):g}" if lr else "0.01"        # `variant_label` leaves out lr 0.01
    except ValueError:
        return None
    if exp == "cnn":
        return f"Custom: {bn_text + ' + ' if bn_text else ''}{_WORDS[opt]}, lr {lr_text}, {_WORDS[act]}"
    return (f"Custom: {_WORDS[upsampling]}, {_WORDS[act]}{', ' + bn_text if bn_text else ''}, {_WORDS[opt]}, "
            f"lr {lr_text}")


def variant(name: str) -> RunConfig:
    """The registry config for `name` ("cnn/bn-adam" or, within an experiment, "bn-adam")."""
    if name in VARIANTS:
        return VARIANTS[name]()
    matches = [k for k in VARIANTS if k.split("/", 1)[1] == name]
    if len(matches) == 1:
        return VARIANTS[matches[0]]()
    raise ConfigError(f"variant={name!r}: unknown; known variants are {', '.join(VARIANTS)}")


def _model_signature(cfg: RunConfig) -> tuple:
    """What makes two configs the 'same variant' regardless of training length and data size."""
    m = cfg.model
    if cfg.experiment == "cnn":
        return (cfg.experiment, m.batchnorm, m.bn_position, m.bn_layers, m.bn_affine, m.activation, cfg.optim)
    return (cfg.experiment, m.batchnorm, m.activation, m.upsampling, m.depth, m.base_width, cfg.optim)


# Fields that say how long a run trains and when it is scored, not what is trained: runs that differ only
# in these are the same training (a 200-epoch run is the first 200 epochs of a 1000-epoch run).
RUN_ONLY_FIELDS: tuple[str, ...] = ("epochs", "eval_at")


def training_signature(cfg: RunConfig | dict[str, Any]) -> str:
    """The one rule for "which runs belong together": canonical JSON of the config minus RUN_ONLY_FIELDS.

    Runs with the same signature are seeds of one training set-up (model, optimiser, data, batch size);
    curves average them, Compare groups them, summaries count them. A stored config (a dict) is accepted
    as it is, so a row whose config no longer parses still gets a stable signature."""
    d = _canonical(config_to_dict(cfg) if isinstance(cfg, RunConfig) else dict(cfg))
    d.pop("checkpoint_every", None)
    return json.dumps({k: v for k, v in d.items() if k not in RUN_ONLY_FIELDS}, sort_keys=True,
                      separators=(",", ":"), default=str)


def variant_label(cfg: RunConfig) -> str:
    """Registry name when model+optimizer match a named variant, else a descriptive label of the toggles."""
    sig = _model_signature(cfg)
    for name, make in VARIANTS.items():
        if _model_signature(make()) == sig:
            return name + _engine_suffix(cfg)
    m, o = cfg.model, cfg.optim
    parts = [_bn_part(m), m.activation, o.name]
    if cfg.experiment == "unet":
        parts.insert(0, m.upsampling)
    if o.lr != 0.01:
        parts.append(f"lr{o.lr:g}")
    return f"{cfg.experiment}/" + "-".join(parts) + _engine_suffix(cfg)


# A variant trained with a non-default engine is labelled apart ("unet/normal@channels_last+bf16"): its numbers
# differ from the default engine's, so the pages must not pool them with it.
_ENGINE_WORDS: dict[str, str] = {"channels_last": "channels-last", "bf16": "bf16 autocast"}


def _engine_suffix(cfg: RunConfig) -> str:
    tokens = (["channels_last"] if cfg.channels_last else []) + (["bf16"] if cfg.precision == "bf16" else [])
    return "@" + "+".join(tokens) if tokens else ""


def engine_label(variant_label_: str) -> tuple[str, str]:
    """'unet/normal@channels_last+bf16' -> ('unet/normal', 'channels-last, bf16 autocast'); no suffix: ''."""
    base, _, suffix = str(variant_label_).partition("@")
    words = [_ENGINE_WORDS.get(token, token) for token in suffix.split("+")] if suffix else []
    return base, ", ".join(words)


def _bn_part(m: ModelConfig) -> str:
    """'nobn', 'bn', or 'bn' plus the non-course BN options joined by '+' (no '-', the label's separator):
    'bn+after+conv1+fc+affine'."""
    if not m.batchnorm:
        return "nobn"
    return "+".join(["bn", *_BN_TOKENS[m.bn_position], *_BN_TOKENS[m.bn_layers], *(["affine"] if m.bn_affine else [])])


_BN_TOKENS: dict[str, list[str]] = {"before": [], "after": ["after"], "conv2-3": [], "conv1-3": ["conv1"],
                                    "conv2-3+fc": ["fc"], "conv1-3+fc": ["conv1", "fc"]}
_BN_WORDS: dict[str, str] = {"after": "after the activation", "conv1": "also on conv1",
                             "fc": "also before the linear layer", "affine": "affine"}


def _bn_words(token: str) -> str | None:
    """'bn' -> 'BN', 'bn+after+fc' -> 'BN (after the activation, also before the linear layer)'; None if unknown."""
    head, *options = token.split("+")
    if head != "bn" or any(o not in _BN_WORDS for o in options):
        return None
    return "BN" + (f" ({', '.join(_BN_WORDS[o] for o in options)})" if options else "")


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["eval_at"] = list(cfg.eval_at)
    return d


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of `config_to_dict`; unknown keys are an error so a typo is never silently ignored."""
    def build(cls: type, values: dict[str, Any]) -> Any:
        known = {f.name for f in fields(cls)}
        extra = set(values) - known
        if extra:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(extra))}")
        return cls(**values)

    if not isinstance(d, dict):
        raise ConfigError(f"config: expected a JSON object, got {type(d).__name__}")
    d = dict(d)
    d.pop("checkpoint_every", None)   # stored by adlapp-1 configs; now a run option, not part of the config
    for part in ("model", "optim", "data"):
        if not isinstance(d.get(part, {}), dict):
            raise ConfigError(f"config.{part}: expected a JSON object")
    if not isinstance(d.get("eval_at", []), (list, tuple)):
        raise ConfigError("config.eval_at: expected a list of epochs")
    d["model"] = build(ModelConfig, d.get("model", {}))
    d["optim"] = build(OptimConfig, d.get("optim", {}))
    d["data"] = build(DataConfig, d.get("data", {}))
    d["eval_at"] = tuple(d.get("eval_at", ()))
    return build(RunConfig, d)


def run_key(cfg: RunConfig, seed: int) -> str:
    """Stable identity of (config, seed, code version): the same request maps to the same finished run.

    How often a run checkpoints does not change its numbers, so it is not part of the config; the hash
    still carries `"checkpoint_every": 0`, the value every config held while it was, so that the keys of
    runs made then (cached_runs/ among them) stay what they were.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed!r}: must be a whole number from 0 to {MAX_SEED:,}")
    seed = int(seed)
    d = _canonical(config_to_dict(cfg))
    d["checkpoint_every"] = 0
    payload = f"{json.dumps(d, sort_keys=True, separators=(',', ':'))}|seed={seed}|{CODE_VERSION}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
