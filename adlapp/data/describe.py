"""What a data set is and what a trivial predictor scores on it, computed from the data themselves.

`describe` builds the data (through `load_data`, like the trainer) and reports split sizes, class counts or
foreground fractions and the baselines a model has to beat; `sample_strip` draws a few training samples;
`parameter_counts` sizes every registry variant of an experiment. `scripts/make_datacards.py` writes them
into cached_runs/datacards/, where the torch-free `adlapp.datacards` reads them for the app.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from adlapp.config import BUILTIN_DATASETS, EXPERIMENT_INFO, VARIANTS, DataConfig, base_config
from adlapp.data import ClassificationData, SegmentationData, load_data
from adlapp.data.base import display_pixels
from adlapp.datacards import config_hash
from adlapp.models import build_model

__all__ = ["describe", "sample_strip", "parameter_counts", "classification_baselines", "segmentation_baselines",
           "datacard", "card_json", "seg_tile", "CARD_TILE", "SEG_TILE", "GUTTER", "CAPTION",
           "PNG_BUDGET"]

EVAL_SPLITS: tuple[str, ...] = ("val", "test")
# What each generator makes and how it differs from the public data it stands in for (from its docstring).
_BUILTIN: dict[str, dict[str, str]] = {
    "cards": {
        "label": "cards",
        "source": ("generated in code by adlapp/data/cards.py: 53 classes of playing cards (13 ranks × 4 suits + "
                   "joker) drawn with PIL as clean templates, each placed on its own random textured background "
                   "with a random position, scale and rotation, colour jitter and noise, at 28×28 pixels; the "
                   "public card data set the course used has images of real cards instead."),
        "stands_in_for": "the public card set the course report used",
    },
    "vessels": {
        "label": "vessel images",
        "source": ("generated in code by adlapp/data/vessels.py: retina-like images in which a branching vessel "
                   "tree grown from an optic-disc-like point (10–14 % of the pixels) is drawn as a soft dark "
                   "profile on a reddish background with uneven light, texture, dark distractor blobs and noise; "
                   "they are not real fundus photographs, and the masks are exact by construction rather than "
                   "drawn by annotators."),
        "stands_in_for": "real fundus photographs",
    },
}
CARD_TILE = 84                   # 28 px cards shown x3, nearest neighbour
SEG_TILE = 128                   # segmentation images and masks are shown this wide
GUTTER = 4                       # white space around and between tiles
CAPTION = 28                     # caption band under each tile: two lines of small text
_FONT_SIZE = 11
PNG_BUDGET = 40_000              # bytes: a strip larger in full colour is saved with a 256-colour palette


def classification_baselines(train_y: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, float]:
    """Chance and majority-class accuracy on one split.

    Args:
      train_y: (N,) int training labels; the majority class is the most frequent one (lowest index on ties,
        as `argmax` breaks them).
      y: (M,) int labels of the split evaluated.
    Returns:
      {"chance": 1 / num_classes, "majority": fraction of `y` equal to the majority training class}.
    """
    majority = int(np.bincount(train_y, minlength=num_classes).argmax())
    return {"chance": 1.0 / num_classes, "majority": float(np.mean(y == majority)) if len(y) else 0.0}


def segmentation_baselines(y: np.ndarray) -> dict[str, float]:
    """Pixel accuracy and F1 of predicting background everywhere, scored as `adlapp.train.evaluate` does.

    Args:
      y: (M, 1, H, W) masks of one split; truth is y > 0.5.
    Returns:
      {"pixel_acc": background pixels / all pixels, "f1": 2tp / (2tp + fp + fn)}: tp = fp = 0, so F1 is 0
      whenever the split has foreground, and 1.0 (evaluate's convention) when it has none.
    """
    truth = np.asarray(y) > 0.5
    tp, fp, fn = 0, 0, int(truth.sum())
    return {"pixel_acc": float((~truth).sum() / truth.size),
            "f1": 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0}


def describe(data_cfg: DataConfig, task: str) -> dict[str, Any]:
    """A JSON-able description of the data `data_cfg` gives for `task` (the data are built, or read from the
    `load_data` cache): origin, image shape, split sizes, class counts or foreground fractions, baselines on the
    val and test splits, and the data config with its hash (`adlapp.datacards.config_hash`)."""
    data = load_data(data_cfg, task)
    builtin = _BUILTIN.get(data_cfg.name) if data_cfg.name in BUILTIN_DATASETS else None
    splits = _splits(data)
    config = asdict(data_cfg)
    out: dict[str, Any] = {
        "name": data_cfg.name,
        "label": builtin["label"] if builtin else Path(data_cfg.name).name or data_cfg.name,
        "generated": builtin is not None,
        "source": builtin["source"] if builtin else f"loaded from the folder {data_cfg.name}.",
        "stands_in_for": builtin["stands_in_for"] if builtin else None,
        "task": task,
        "image_shape": [int(v) for v in data.train_x.shape[1:]],
        "splits": {s: len(y) for s, (_, y) in splits.items()},
        "config": config,
        "config_hash": config_hash(config),
    }
    if isinstance(data, ClassificationData):
        labels = {s: y.numpy() for s, (_, y) in splits.items()}
        k = data.num_classes
        out["num_classes"] = k
        out["majority_class"] = int(np.bincount(labels["train"], minlength=k).argmax())
        out["class_counts"] = {s: np.bincount(y, minlength=k).tolist() for s, y in labels.items()}
        out["baselines"] = {s: classification_baselines(labels["train"], labels[s], k) for s in EVAL_SPLITS}
    else:
        masks = {s: y.numpy() for s, (_, y) in splits.items()}
        out["foreground_fraction"] = {s: float((y > 0.5).mean()) for s, y in masks.items()}
        out["baselines"] = {s: {"all_background": segmentation_baselines(masks[s])} for s in EVAL_SPLITS}
    return out


def _splits(data: ClassificationData | SegmentationData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {"train": (data.train_x, data.train_y), "val": (data.val_x, data.val_y),
            "test": (data.test_x, data.test_y)}


def parameter_counts(experiment: str) -> dict[str, int]:
    """Trainable parameters of every registry variant of `experiment` ("cnn/adam": 123), each model built as
    `adlapp.train._build` builds it, on the experiment's base-config data."""
    cfg = base_config(experiment)                  # raises ConfigError naming the experiment if unknown
    data = load_data(cfg.data, EXPERIMENT_INFO[experiment].task)
    counts = {}
    with torch.random.fork_rng(devices=[]):        # building a model draws initial weights: leave the RNG alone
        for name, make in VARIANTS.items():
            variant_cfg = make()
            if variant_cfg.experiment != experiment:
                continue
            if experiment == "cnn":
                model = build_model(variant_cfg, num_classes=data.num_classes)
            else:
                model = build_model(variant_cfg, in_channels=data.train_x.shape[1])
            counts[name] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


def datacard(experiment: str) -> dict[str, Any]:
    """Everything cached_runs/datacards/{experiment}.json holds: `describe` of the experiment's base-config
    data, plus the experiment name and `parameter_counts`."""
    cfg = base_config(experiment)
    card = describe(cfg.data, EXPERIMENT_INFO[experiment].task)
    card["experiment"] = experiment
    card["parameters"] = parameter_counts(experiment)
    return card


def card_json(card: dict[str, Any]) -> str:
    """The card as the file holds it: sorted keys, floats rounded to 6 digits, one line per list of plain values
    (class counts, the image shape), so regenerating gives the same bytes and a change reads well in a diff."""
    return _dump(_rounded(card), "") + "\n"


def _dump(value: Any, pad: str) -> str:
    if isinstance(value, dict) and value:
        inner = pad + " "
        items = (f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dump(value[k], inner)}" for k in sorted(value))
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        inner = pad + " "
        return "[\n" + ",\n".join(inner + _dump(v, inner) for v in value) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


# -- the sample strip ------------------------------------------------------------------------------------------
def sample_strip(data_cfg: DataConfig, task: str, n: int = 8) -> bytes:
    """A PNG of the first training samples, for the app to show next to the data card.

    Classification: `n` images (the standardisation undone with the data's kept mean/std), CARD_TILE px
    square (28 px x3, nearest), each with its class name under it: GUTTER + n * (CARD_TILE + GUTTER) wide,
    GUTTER + CARD_TILE + CAPTION high. Segmentation: max(1, n // 2) pairs "image | mask", each captioned with
    its foreground share; a tile is `seg_tile(H)` px square (64 px images: 128), a pair 2 * tile + GUTTER
    wide: GUTTER + pairs * (2 * tile + 3 * GUTTER) wide, GUTTER + tile + CAPTION high. A strip over PNG_BUDGET
    bytes in full colour is saved with a 256-colour palette instead (the 64 px vessel strip is; the cards are not).
    """
    data = load_data(data_cfg, task)
    font = ImageFont.load_default(size=_FONT_SIZE)
    if isinstance(data, ClassificationData):
        n = max(1, min(n, len(data.train_x)))
        images = _display(data.train_x[:n], data.mean, data.std)
        canvas = Image.new("RGB", (GUTTER + n * (CARD_TILE + GUTTER), GUTTER + CARD_TILE + CAPTION), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (img, label) in enumerate(zip(images, data.train_y[:n].tolist(), strict=True)):
            x = GUTTER + i * (CARD_TILE + GUTTER)
            canvas.paste(_tile(img, CARD_TILE), (x, GUTTER))
            _caption(draw, font, _card_caption(data.class_names[label]), x, GUTTER + CARD_TILE, CARD_TILE)
    else:
        pairs = max(1, min(n // 2, len(data.train_x)))
        images = _display(data.train_x[:pairs], data.mean, data.std)
        masks = (data.train_y[:pairs, 0].numpy() > 0.5).astype(np.uint8) * 255         # (P, H, W)
        side = seg_tile(masks.shape[-1])
        pair_w = 2 * side + GUTTER
        canvas = Image.new("RGB", (GUTTER + pairs * (pair_w + 2 * GUTTER), GUTTER + side + CAPTION), "white")
        draw = ImageDraw.Draw(canvas)
        for i in range(pairs):
            x = GUTTER + i * (pair_w + 2 * GUTTER)
            canvas.paste(_tile(images[i], side), (x, GUTTER))
            canvas.paste(_tile(Image.fromarray(masks[i]).convert("RGB"), side), (x + side + GUTTER, GUTTER))
            share = 100 * float(masks[i].mean()) / 255
            _caption(draw, font, [f"train #{i}: image | mask", f"{share:.1f}% foreground"], x, GUTTER + side,
                     pair_w)
    png = _png(canvas)
    if len(png) > PNG_BUDGET:
        # Noisy images compress badly; 256 colours are plenty for a preview and take about 40% less.
        png = _png(canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    return png


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _display(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> list[Image.Image]:
    """(N, C, H, W) standardised images -> N RGB images (`base.display_pixels`)."""
    return [Image.fromarray(p) for p in display_pixels(x, mean, std)]


def seg_tile(size: int) -> int:
    """Side in px at which a `size` px segmentation image is shown: a whole multiple up to SEG_TILE (every pixel
    stays a crisp square), SEG_TILE for anything larger (box-filtered down)."""
    return size * max(1, SEG_TILE // size) if size <= SEG_TILE else SEG_TILE


def _tile(img: Image.Image, side: int) -> Image.Image:
    """Nearest-neighbour upscaling keeps every pixel visible; anything larger is box-filtered down."""
    if img.width < side:
        return img.resize((side, side), Image.Resampling.NEAREST)
    return img.resize((side, side), Image.Resampling.BOX) if img.width > side else img


def _card_caption(name: str) -> list[str]:
    rank, of, suit = name.partition(" of ")
    return [rank, f"of {suit}"] if of else [name]


def _caption(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, lines: list[str],
             x: int, top: int, width: int) -> None:
    """At most two lines, centred under the tile that spans [x, x + width) and ends at `top`."""
    top += 1
    for j, line in enumerate(lines[:2]):
        text = _fit(draw, font, line, width)
        left = x + (width - draw.textlength(text, font=font)) / 2
        draw.text((left, top + j * (_FONT_SIZE + 2)), text, fill="black", font=font)


def _fit(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str, width: int
         ) -> str:
    """`text`, shortened with '..' until it fits in `width` px (a folder's class names can be long)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."
