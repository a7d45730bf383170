"""What a trained model does: a finished run's stored weights at one test epoch, run on its test split.

`runs_with_weights` lists the finished runs that kept weights (see adlapp.weights), from two sources: the local
store (`weights/<key>/epoch-E.safetensors`) and the bundles of a cached_runs/ folder that carry them
(`weights/<key>/epoch-E.safetensors` members). A bundle's runs are run straight from the zip, never imported: the
bundle is read and checked whole by `adlapp.bundle.read_bundle` (sizes, checksums, every run's config and key, every
weights file's safetensors header), the one member needed is read again and compared with its manifest checksum, and
its tensors are loaded with safetensors (tensors only; nothing is unpickled).

`load_model` rebuilds such a run's model from its recorded config and loads the weights; `predict` runs it over the
test split, in eval mode, in batches of 256 like `adlapp.train.evaluate`, so its accuracy (CNN) or pixel accuracy
and F1 (U-Net) are the run's recorded test numbers at that epoch, recomputed from the predictions themselves.
`agreement` sets two classifiers' predictions on the same test images side by side (McNemar's exact test).

Imports torch (through adlapp.models and adlapp.data); only the Predictions page uses this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load as load_safetensors  # header and raw tensor bytes only: nothing unpickled
from scipy.stats import binomtest
from torch import nn

from adlapp import bundle as bundle_mod
from adlapp import weights
from adlapp.config import EXPERIMENT_INFO, RunConfig, config_from_dict, display_name
from adlapp.data import ClassificationData, SegmentationData, load_data
from adlapp.data.base import display_pixels
from adlapp.models import build_model
from adlapp.store import FINISHED, RunStore

__all__ = ["RUN_COLUMNS", "SOURCES", "ERROR_COLOURS", "ClassPredictions", "MaskPredictions", "Predictions",
           "PredictError", "LoadedModel", "Agreement", "runs_with_weights", "bundle_runs_with_weights",
           "load_model", "predict", "predict_model", "same_test_images", "agreement", "enlarge", "confusion_chart"]

# source: "store" (the local run store at `location`) or "bundle" (the bundle file at `location`).
RUN_COLUMNS = ["key", "experiment", "variant", "name", "seed", "weight_epochs", "source", "location"]
SOURCES = ("store", "bundle")
_BATCH = 256                                  # adlapp.train.evaluate's batch size: the same sums, the same numbers
# Error overlay colours (Okabe-Ito, readable with red-green colour blindness); true negatives stay black.
ERROR_COLOURS = {"true positive": (255, 255, 255), "false positive": (230, 159, 0),
                 "false negative": (86, 180, 233)}


class PredictError(ValueError):
    """A run's weights cannot be run: no such run or epoch, or its data or weights are unusable."""


@dataclass(frozen=True)
class ClassPredictions:
    """The CNN on its test split.

    `images` (N, H, W, 3) uint8, standardisation undone; `truth`, `predicted` (N,) int class indices;
    `confidence` (N,) float, the softmax probability of the predicted class; `confusion` (K, K) int counts,
    rows true class, columns predicted class; `class_names` K names (indices as text when the data have none).
    """

    key: str
    epoch: int
    class_names: tuple[str, ...]
    images: np.ndarray
    truth: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    confusion: np.ndarray
    recorded: dict[str, float] = field(default_factory=dict)   # the run's own test rows at `epoch`

    @property
    def metrics(self) -> dict[str, float]:
        """{"acc": correct / test images}, as `evaluate` scores it."""
        return {"acc": float(np.trace(self.confusion)) / len(self.truth)}

    def per_class(self) -> pd.DataFrame:
        """One row per class, worst accuracy first: class, test images, correct, accuracy (NaN for a class with
        no test image, listed last) and its most frequent wrong guess ("" when it has none)."""
        counts = self.confusion.sum(axis=1)
        correct = np.diag(self.confusion)
        wrong = self.confusion - np.diag(correct)
        rows = []
        for i, name in enumerate(self.class_names):
            guess = int(wrong[i].argmax())
            rows.append({"class": name, "test images": int(counts[i]), "correct": int(correct[i]),
                         "accuracy": correct[i] / counts[i] if counts[i] else float("nan"),
                         "most often taken for": self.class_names[guess] if wrong[i, guess] else ""})
        table = pd.DataFrame(rows)
        return table.sort_values(["accuracy", "class"], na_position="last", kind="stable").reset_index(drop=True)

    def confusion_frame(self) -> pd.DataFrame:
        """Long form of the non-zero confusion cells: true, predicted (names), count."""
        t, p = np.nonzero(self.confusion)
        return pd.DataFrame({"true": [self.class_names[i] for i in t], "predicted": [self.class_names[j] for j in p],
                             "count": self.confusion[t, p].astype(int)})


@dataclass(frozen=True)
class MaskPredictions:
    """The U-Net on its test split.

    `images` (N, H, W, 3) uint8, standardisation undone; `truth`, `predicted` (N, H, W) bool masks
    (truth: mask > 0.5; predicted: logit > 0).
    """

    key: str
    epoch: int
    images: np.ndarray
    truth: np.ndarray
    predicted: np.ndarray
    recorded: dict[str, float] = field(default_factory=dict)   # the run's own test rows at `epoch`

    @property
    def metrics(self) -> dict[str, float]:
        """{"pixel_acc", "f1"} over the whole split, F1 from the split's total tp/fp/fn, as `evaluate` scores it."""
        return _mask_scores(self.truth, self.predicted)

    def image_metrics(self, i: int) -> dict[str, float]:
        """Pixel accuracy and F1 of test image i alone."""
        return _mask_scores(self.truth[i], self.predicted[i])

    def errors(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 overlay of test image i: ERROR_COLOURS for true/false positives and false negatives."""
        t, p = self.truth[i], self.predicted[i]
        out = np.zeros((*t.shape, 3), np.uint8)
        for colour, where in zip(ERROR_COLOURS.values(), (t & p, ~t & p, t & ~p), strict=True):
            out[where] = colour
        return out


Predictions = ClassPredictions | MaskPredictions


@dataclass(frozen=True)
class LoadedModel:
    """A run's model with the weights of one test epoch, in eval mode on the CPU, and its data.

    `recorded` holds the test rows the run itself recorded at `epoch` (from its store or bundle)."""

    key: str
    epoch: int
    source: str
    location: str
    config: RunConfig
    model: nn.Module
    data: ClassificationData | SegmentationData
    recorded: dict[str, float]


def runs_with_weights(store: RunStore, bundle_runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The finished runs with weights: those of `store` (oldest first), then those of `bundle_runs` (from
    `bundle_runs_with_weights`) that the store does not hold with weights. RUN_COLUMNS: `name` the variant's
    display name, `weight_epochs` the test epochs whose weights exist (ascending, never empty), `source` "store"
    or "bundle", `location` the store folder or the bundle file. Each run is listed once: from the store when it
    has the run's weights (the local copy, e.g. an imported bundle), else from the bundle."""
    runs = store.runs()
    runs = runs[runs["status"].isin(FINISHED)]
    rows = []
    for r in runs.to_dict("records"):
        epochs = store.weight_epochs(r["key"])
        if epochs:
            rows.append(_run_row(r, epochs, "store", str(store.root)))
    listed = {row["key"] for row in rows}
    if bundle_runs is not None:
        rows += [r for r in bundle_runs.to_dict("records") if r["key"] not in listed]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def bundle_runs_with_weights(folder: str | Path) -> pd.DataFrame:
    """The runs of the bundles in `folder` (e.g. cached_runs/) that carry weights, RUN_COLUMNS with source
    "bundle". A run in several bundles is taken from the newest (manifest `created`), as
    adlapp.library.load_cached picks runs; unreadable bundles are skipped (the pages name them through
    adlapp.library)."""
    rows, listed = [], set()
    loaded, _ = bundle_mod.read_bundle_dir(folder) if Path(folder).is_dir() else ([], [])
    for b in sorted(loaded, key=lambda b: (str(b.manifest.get("created", "")), b.path.name), reverse=True):
        for r in b.tables.runs.to_dict("records"):
            if r["key"] in b.weights and r["key"] not in listed:
                rows.append(_run_row(r, sorted(b.weights[r["key"]]), "bundle", str(b.path)))
                listed.add(r["key"])
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _run_row(r: dict, epochs: list[int], source: str, location: str) -> dict:
    return {"key": r["key"], "experiment": r["experiment"], "variant": r["variant"],
            "name": display_name(str(r["variant"])), "seed": int(r["seed"]), "weight_epochs": list(epochs),
            "source": source, "location": location}


def load_model(source: str, location: str | Path, key: str, epoch: int) -> LoadedModel:
    """Rebuild run `key`'s model from its recorded config and load its weights at test epoch `epoch`, from the
    store folder (`source` "store") or the bundle file ("bundle") at `location`; the test split is loaded too.

    Raises PredictError when the run, its config, its data or that epoch's weights cannot be used."""
    if source == "store":
        store = RunStore(location)
        row = store.get(key)
        if row is None:
            raise PredictError(f"run {key}: not in the store")
        path = store.weights_dir(key) / weights.file_name(epoch)
        if not path.is_file():
            raise PredictError(f"run {key}: no weights kept for epoch {epoch}")
        tests = store.test_metrics([key])
        cfg, data, model = _build(key, row["config"])
        try:
            weights.load_into(model, path)
        except weights.WeightsError as e:
            raise PredictError(str(e)) from None
    elif source == "bundle":
        cfg, data, model, tests = _from_bundle(Path(location), key, epoch)
    else:
        raise PredictError(f"source {source!r}: expected one of {', '.join(SOURCES)}")
    model.eval()
    tests = tests[(tests["key"] == key) & (tests["epoch"] == epoch)]
    recorded = {str(n): float(v) for n, v in zip(tests["name"], tests["value"], strict=True)}
    return LoadedModel(key, int(epoch), source, str(location), cfg, model, data, recorded)


def _build(key: str, config_json: str) -> tuple[RunConfig, ClassificationData | SegmentationData, nn.Module]:
    """The run's config, its data and a freshly built (untrained) model that fits its weights."""
    try:
        cfg = config_from_dict(json.loads(config_json))
        data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    except (ValueError, TypeError, KeyError) as e:        # ConfigError and DataError are ValueErrors
        raise PredictError(f"run {key}: its data cannot be loaded ({e})") from None
    with torch.random.fork_rng(devices=[]):            # building draws initial weights: leave the caller's RNG alone
        model = (build_model(cfg, num_classes=data.num_classes) if isinstance(data, ClassificationData)
                 else build_model(cfg, in_channels=data.test_x.shape[1]))
    return cfg, data, model


def _from_bundle(path: Path, key: str, epoch: int) -> tuple[RunConfig, ClassificationData | SegmentationData,
                                                             nn.Module, pd.DataFrame]:
    """Run `key` of the bundle at `path`: read_bundle checks the whole bundle (the run's config and key, each
    weights file's checksum and safetensors header); the member is read again through the bundle module's
    checked reader (checksum compared once more, size capped) and parsed by safetensors, tensors only."""
    try:
        loaded = bundle_mod.read_bundle(path)
    except bundle_mod.BundleError as e:
        raise PredictError(str(e)) from None
    runs = loaded.tables.runs
    row = runs[runs["key"] == key]
    if row.empty:
        raise PredictError(f"run {key}: not in the bundle {path.name}")
    if int(epoch) not in loaded.weights.get(key, {}):
        raise PredictError(f"run {key}: the bundle {path.name} carries no weights for epoch {epoch}")
    cfg, data, model = _build(key, row.iloc[0]["config"])
    try:
        blob = bundle_mod.read_weights(loaded, key, int(epoch))     # checksum compared again, size capped
        model.load_state_dict(load_safetensors(blob), strict=True)
    except bundle_mod.BundleError as e:
        raise PredictError(str(e)) from None
    except (RuntimeError, ValueError) as e:
        why = " ".join(str(e).split())
        member = loaded.weights[key][int(epoch)]
        raise PredictError(f"{path.name}: {member}: does not fit the model ({why[:300]})") from None
    return cfg, data, model, loaded.tables.tests


def predict(store: RunStore, key: str, epoch: int) -> Predictions:
    """Run `key`'s weights at test epoch `epoch` from `store` over its test split, on the CPU.

    Raises PredictError when the run, its config, its data or that epoch's weights cannot be used.
    """
    return predict_model(load_model("store", store.root, key, epoch))


@torch.inference_mode()
def predict_model(m: LoadedModel) -> Predictions:
    """The loaded model over its test split, in batches of `evaluate`'s size."""
    data, model = m.data, m.model
    logits = torch.cat([model(data.test_x[i:i + _BATCH]) for i in range(0, len(data.test_x), _BATCH)])
    images = display_pixels(data.test_x, data.mean, data.std)
    if not isinstance(data, ClassificationData):
        return MaskPredictions(m.key, m.epoch, images, truth=data.test_y[:, 0].numpy() > 0.5,
                               predicted=logits[:, 0].numpy() > 0, recorded=m.recorded)
    k = data.num_classes
    predicted = logits.argmax(1)                       # evaluate's choice, so the accuracy is the stored one
    confidence = torch.softmax(logits, dim=1).gather(1, predicted[:, None])[:, 0]
    truth = data.test_y.numpy().astype(np.int64)
    pred = predicted.numpy().astype(np.int64)
    confusion = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    names = tuple(data.class_names) if len(data.class_names) == k else tuple(str(i) for i in range(k))
    return ClassPredictions(m.key, m.epoch, names, images, truth, pred, confidence.numpy().astype(np.float64),
                            confusion, recorded=m.recorded)


# -- two runs side by side -----------------------------------------------------------------------------------
def same_test_images(a: Predictions, b: Predictions) -> bool:
    """Whether two runs were run on the very same test images with the same truth (same data config), so their
    predictions can be compared image by image."""
    return (type(a) is type(b) and a.images.shape == b.images.shape and np.array_equal(a.images, b.images)
            and np.array_equal(a.truth, b.truth))


@dataclass(frozen=True)
class Agreement:
    """Two classifiers on the same n test images: how many both got right, only A, only B, neither, and
    McNemar's exact test on the discordant images (only A right vs only B right)."""

    both_right: int
    only_a: int
    only_b: int
    both_wrong: int

    @property
    def n(self) -> int:
        return self.both_right + self.only_a + self.only_b + self.both_wrong

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b

    @property
    def p_value(self) -> float:
        """Two-sided exact McNemar: only_a ~ Binomial(discordant, 1/2) when both models err equally often on
        these images; 1.0 when no image is discordant (nothing tells them apart)."""
        if self.discordant == 0:
            return 1.0
        return float(binomtest(self.only_a, self.discordant, 0.5).pvalue)

    def table(self) -> pd.DataFrame:
        """The 2x2 table: rows model A right / wrong, columns model B right / wrong, cells test images."""
        return pd.DataFrame({"": ["A right", "A wrong"], "B right": [self.both_right, self.only_b],
                             "B wrong": [self.only_a, self.both_wrong]})


def agreement(a: ClassPredictions, b: ClassPredictions) -> Agreement:
    """Image by image agreement of two classifiers run on the same test images (PredictError otherwise)."""
    if not same_test_images(a, b):
        raise PredictError(f"runs {a.key} and {b.key} were not run on the same test images")
    right_a, right_b = a.truth == a.predicted, b.truth == b.predicted
    return Agreement(both_right=int((right_a & right_b).sum()), only_a=int((right_a & ~right_b).sum()),
                     only_b=int((~right_a & right_b).sum()), both_wrong=int((~right_a & ~right_b).sum()))


def enlarge(image: np.ndarray, width: int) -> np.ndarray:
    """(H, W[, C]) pixels repeated (nearest neighbour) to about `width` pixels wide: small images stay sharp."""
    n = max(1, width // image.shape[1])
    return np.repeat(np.repeat(image, n, axis=0), n, axis=1)


def _mask_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {"pixel_acc": int((truth == predicted).sum()) / truth.size, "f1": f1}


def confusion_chart(p: ClassPredictions, height: int = 640) -> alt.Chart:
    """Heatmap of `p.confusion`: rows true class, columns predicted class, both in class order, container wide;
    empty cells are left blank, a tooltip names both classes and the count."""
    names = list(p.class_names)
    axis = {"labelFontSize": 9, "labelLimit": 120}
    return (alt.Chart(p.confusion_frame()).mark_rect()
            .encode(x=alt.X("predicted:N", sort=names, scale=alt.Scale(domain=names), axis=alt.Axis(**axis),
                            title="predicted class"),
                    y=alt.Y("true:N", sort=names, scale=alt.Scale(domain=names), axis=alt.Axis(**axis),
                            title="true class"),
                    color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"), title="test images"),
                    tooltip=[alt.Tooltip("true:N", title="true"), alt.Tooltip("predicted:N", title="predicted"),
                             alt.Tooltip("count:Q", title="test images")])
            .properties(width="container", height=height))
