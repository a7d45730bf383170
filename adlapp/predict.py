"""What a trained model does: a finished run's stored weights at one test epoch, run on its test split.

`runs_with_weights` lists the finished runs of a store that kept weights (see adlapp.weights); `predict` rebuilds
such a run's model from its stored config, loads `weights/<key>/epoch-E.safetensors` and runs it over the test
split, in eval mode, in batches of 256 like `adlapp.train.evaluate`, so its accuracy (CNN) or pixel accuracy and F1
(U-Net) are the run's stored test numbers at that epoch, recomputed from the predictions themselves.

Imports torch (through adlapp.models and adlapp.data); only the Predictions page uses this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import torch

from adlapp import weights
from adlapp.config import EXPERIMENT_INFO, config_from_dict, display_name
from adlapp.data import ClassificationData, load_data
from adlapp.data.base import display_pixels
from adlapp.models import build_model
from adlapp.store import FINISHED, RunStore

__all__ = ["RUN_COLUMNS", "ERROR_COLOURS", "ClassPredictions", "MaskPredictions", "Predictions",
           "PredictError", "runs_with_weights", "predict", "enlarge", "confusion_chart"]

RUN_COLUMNS = ["key", "experiment", "variant", "name", "seed", "weight_epochs"]
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


def runs_with_weights(store: RunStore) -> pd.DataFrame:
    """The finished runs of `store` with weights: RUN_COLUMNS, `name` the variant's display name and
    `weight_epochs` the test epochs whose weights are stored (ascending, never empty); oldest run first."""
    runs = store.runs()
    runs = runs[runs["status"].isin(FINISHED)]
    rows = []
    for r in runs.to_dict("records"):
        epochs = store.weight_epochs(r["key"])
        if epochs:
            rows.append({"key": r["key"], "experiment": r["experiment"], "variant": r["variant"],
                         "name": display_name(str(r["variant"])), "seed": int(r["seed"]), "weight_epochs": epochs})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


@torch.inference_mode()
def predict(store: RunStore, key: str, epoch: int) -> Predictions:
    """Run `key`'s weights at test epoch `epoch` over its test split, on the CPU.

    Raises PredictError when the run, its config, its data or that epoch's weights cannot be used.
    """
    row = store.get(key)
    if row is None:
        raise PredictError(f"run {key}: not in the store")
    path = store.weights_dir(key) / weights.file_name(epoch)
    if not path.is_file():
        raise PredictError(f"run {key}: no weights kept for epoch {epoch}")
    try:
        cfg = config_from_dict(json.loads(row["config"]))
        data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    except (ValueError, TypeError, KeyError) as e:        # ConfigError and DataError are ValueErrors
        raise PredictError(f"run {key}: its data cannot be loaded ({e})") from None
    classes = isinstance(data, ClassificationData)
    with torch.random.fork_rng(devices=[]):            # building draws initial weights: leave the caller's RNG alone
        model = (build_model(cfg, num_classes=data.num_classes) if classes
                 else build_model(cfg, in_channels=data.test_x.shape[1]))
    try:
        weights.load_into(model, path)
    except weights.WeightsError as e:
        raise PredictError(str(e)) from None
    model.eval()
    logits = torch.cat([model(data.test_x[i:i + _BATCH]) for i in range(0, len(data.test_x), _BATCH)])
    images = display_pixels(data.test_x, data.mean, data.std)
    if not classes:
        return MaskPredictions(key, epoch, images, truth=data.test_y[:, 0].numpy() > 0.5,
                               predicted=logits[:, 0].numpy() > 0)
    k = data.num_classes
    predicted = logits.argmax(1)                       # evaluate's choice, so the accuracy is the stored one
    confidence = torch.softmax(logits, dim=1).gather(1, predicted[:, None])[:, 0]
    truth = data.test_y.numpy().astype(np.int64)
    pred = predicted.numpy().astype(np.int64)
    confusion = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    names = tuple(data.class_names) if len(data.class_names) == k else tuple(str(i) for i in range(k))
    return ClassPredictions(key, epoch, names, images, truth, pred, confidence.numpy().astype(np.float64), confusion)


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
