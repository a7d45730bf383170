"""What is inside the course models, layer by layer: the tables and words of the "Inside the models" page.

Every table is read off the real model (`build_model`, then `describe`: one forward pass of zeros with hooks), so it
cannot drift from adlapp/models. The CNN's spatial walk is also worked out by arithmetic (`cnn_walk`), from the
kernel sizes of a real `CourseCNN`: its linear layer is fixed at 4·4·32 = 512 inputs (`nn.Linear(4 * 4 * 32, ...)`,
not inferred from the input), so only some image sizes reach it, and the walk says which and why.

Imports torch (through adlapp.models and adlapp.data); only the Inside page uses this module.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
from torch import nn

from adlapp.config import EXPERIMENT_INFO, LIMITS, UPSAMPLINGS, VARIANTS, RunConfig, base_config, display_name
from adlapp.data import ClassificationData, SegmentationData, load_data
from adlapp.data.cards import IMAGE_SIZE
from adlapp.models import CourseCNN, build_model, describe

__all__ = [
    "AnatomyError", "COLUMNS", "default_input_shape", "layer_table", "total_parameters", "cnn_walk",
    "cnn_fitting_sizes", "walk_text",
    "unet_levels", "upsampling_comparison", "nearest_vs_transpose", "variant_parameters", "card_samples",
    "vessel_samples", "split_table",
]

COLUMNS = ["layer", "type", "output shape", "parameters", "what it does"]
_ACT_WORDS = {"ELU": "ELU", "ReLU": "ReLU", "GELU": "GELU"}
_WORDS = {"elu": "ELU", "relu": "ReLU", "gelu": "GELU", "transpose": "transposed conv", "nearest": "nearest neighbour",
          "bilinear": "bilinear"}


class AnatomyError(ValueError):
    """The model cannot take this input; the message says why in plain words. `walk` is the CNN's spatial walk
    as far as it got ([] when there is none)."""

    def __init__(self, message: str, walk: list[tuple[str, int]] | None = None) -> None:
        super().__init__(message)
        self.walk = list(walk or [])


# -- the layer table ---------------------------------------------------------------------------------------------
def _model(cfg: RunConfig) -> nn.Module:
    """The model the trainer would build for `cfg` (53 card classes, 3 input channels)."""
    with torch.random.fork_rng(devices=[]):        # building draws initial weights: leave the caller's RNG alone
        return build_model(cfg, num_classes=53, in_channels=3)


def default_input_shape(cfg: RunConfig) -> tuple[int, int, int]:
    """(3, 28, 28) for the CNN (the cards' size), (3, S, S) with S = cfg.data.image_size for the U-Net."""
    side = IMAGE_SIZE if cfg.experiment == "cnn" else cfg.data.image_size
    return (3, side, side)


def total_parameters(cfg: RunConfig) -> int:
    """Trainable parameters of the model `cfg` builds: sum of p.numel() over the real model."""
    return sum(p.numel() for p in _model(cfg).parameters() if p.requires_grad)


def layer_table(cfg: RunConfig, input_shape: tuple[int, ...] | None = None) -> pd.DataFrame:
    """One row per leaf layer, in execution order, for one input of `input_shape` (C, H, W; default
    `default_input_shape`): layer, type, output shape ("64×24×24"), parameters (int), what it does.

    Raises AnatomyError, with a plain explanation, when the model cannot take that input.
    """
    shape = tuple(input_shape or default_input_shape(cfg))
    _check_input(cfg, shape)
    model = _model(cfg)
    try:
        rows = describe(model, shape)
    except RuntimeError as e:                      # a case the arithmetic above does not foresee: still no traceback
        raise AnatomyError(f"the model cannot run on a {_shape_text(shape)} input: {str(e).splitlines()[0]}") from e
    modules = dict(model.named_modules())
    out, previous = [], shape
    for r in rows:
        module = modules[r["layer"]]
        out.append({"layer": r["layer"], "type": r["type"], "output shape": _shape_text(r["output_shape"]),
                    "parameters": int(r["params"]), "what it does": _phrase(r["layer"], module, previous)})
        previous = r["output_shape"]
    return pd.DataFrame(out, columns=COLUMNS)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(v)) for v in shape)


def _phrase(name: str, m: nn.Module, input_shape: tuple[int, ...]) -> str:
    """One plain phrase for what a leaf layer does to its input (of shape `input_shape`, without the batch)."""
    if isinstance(m, nn.Conv2d):
        k = m.kernel_size[0]
        text = f"{k}×{k} convolution, {m.in_channels}→{m.out_channels} channels"
        if k == 1:
            text += ": one logit per pixel"
        elif m.padding[0]:
            text += f", padding {m.padding[0]} keeps H and W"
        if m.bias is None:
            text += ", no bias (the batch-norm's β shifts instead)"
        if name.startswith("merge.") and name.endswith(".0"):
            half = m.in_channels // 2
            text += f" (its input: the skip, {half}, concatenated with the upsampled map, {half})"
        return text
    if isinstance(m, nn.ConvTranspose2d):
        k = m.kernel_size[0]
        return (f"{k}×{k} transposed convolution, stride {m.stride[0]}: doubles H and W, "
                f"{m.in_channels}→{m.out_channels} channels")
    if isinstance(m, nn.Upsample):
        return f"{m.mode} resize ×{m.scale_factor:g}: doubles H and W, no parameters"
    if isinstance(m, nn.MaxPool2d):
        return "max-pool 2×2: halves H and W"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if isinstance(m, nn.BatchNorm1d):
            return (f"batch-norm over the {m.num_features} features"
                    + (f", learnable γ and β ({2 * m.num_features} parameters)" if m.affine else
                       ", no affine terms (no parameters)"))
        if not m.affine:
            return "batch-norm without affine terms: normalises, adds no parameters"
        return f"batch-norm with learnable γ and β: normalises, scales and shifts ({2 * m.num_features} parameters)"
    if isinstance(m, nn.Identity):
        return "no batch-norm here (off, or not on this layer): passes the tensor through unchanged"
    if isinstance(m, nn.Flatten):
        c, h, w = input_shape
        return f"flatten: {c}·{h}·{w} = {c * h * w} features"
    if isinstance(m, nn.Linear):
        return f"linear {m.in_features}→{m.out_features}"
    return _ACT_WORDS.get(type(m).__name__, type(m).__name__)


def _check_input(cfg: RunConfig, shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape):
        raise AnatomyError(f"input shape {shape}: expected (channels, height, width), each a whole number ≥ 1")
    if shape[0] != 3:
        raise AnatomyError(f"input shape {shape}: the models take 3 colour channels")
    if cfg.experiment == "cnn":
        for side in sorted(set(shape[1:])):
            cnn_walk(side)
    else:
        problem = _unet_problem(shape[1], shape[2], cfg.model.depth)
        if problem:
            raise AnatomyError(problem)


# -- the CNN's spatial walk --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _cnn_steps() -> tuple[tuple[str, int, int, int], ...]:
    """(label, kernel, stride, padding) of every layer that changes H and W, read off a real CourseCNN, in order."""
    steps = []
    for name, m in CourseCNN().named_children():
        if isinstance(m, nn.Conv2d):
            steps.append((f"{name} {m.kernel_size[0]}×{m.kernel_size[0]}", m.kernel_size[0], m.stride[0],
                          m.padding[0]))
        elif isinstance(m, nn.MaxPool2d):
            steps.append((f"{name} {m.kernel_size}×{m.kernel_size}", m.kernel_size, m.stride, m.padding))
    return tuple(steps)


@lru_cache(maxsize=1)
def _cnn_head() -> tuple[int, int]:
    """(channels of the last feature map, inputs of the linear layer) of the real CourseCNN: (32, 512)."""
    model = CourseCNN()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels, model.fc.in_features


def _walk(image_size: int) -> tuple[list[tuple[str, int]], str | None]:
    """The walk as far as it goes, and the name of the step the feature map was too small for (None if none)."""
    walk = [("input", image_size)]
    side = image_size
    for label, k, stride, pad in _cnn_steps():
        if side + 2 * pad < k:
            return walk, label
        side = (side + 2 * pad - k) // stride + 1     # PyTorch's floor: a pool drops an odd last row and column
        walk.append((label, side))
    channels, _ = _cnn_head()
    walk.append(("flatten", side * side * channels))
    return walk, None


@lru_cache(maxsize=1)
def cnn_fitting_sizes() -> tuple[int, ...]:
    """Every square input side (1 to LIMITS["image_size"]) whose walk ends at the linear layer's 512 features."""
    _, features = _cnn_head()
    return tuple(n for n in range(1, LIMITS["image_size"] + 1)
                 if (w := _walk(n))[1] is None and w[0][-1][1] == features)


def _fit_words() -> str:
    sizes = cnn_fitting_sizes()
    words = f"{IMAGE_SIZE}×{IMAGE_SIZE} inputs"
    others = [n for n in sizes if n != IMAGE_SIZE]
    if others:
        words += (f" (and {others[0]} to {others[-1]} pixels, whose extra rows and columns the max-pools' rounding "
                  "down drops)" if others == list(range(others[0], others[-1] + 1)) else
                  f" (and {', '.join(map(str, others))})")
    return words


def cnn_walk(image_size: int) -> list[tuple[str, int]]:
    """The course CNN's spatial walk for square inputs of side `image_size`, worked out by arithmetic.

    For 28: [("input", 28), ("conv1 5×5", 24), ("conv2 5×5", 20), ("pool1 2×2", 10), ("conv3 3×3", 8),
    ("pool2 2×2", 4), ("flatten", 512)], the last entry being the features the linear layer receives.
    Raises AnatomyError explaining why when the size is too small for the convolutions, or when the last feature
    map does not give the 512 features the fixed linear layer takes (`.walk` holds the walk as far as it went).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise AnatomyError(f"image size {image_size!r}: must be a whole number of pixels ≥ 1")
    n = int(image_size)
    walk, too_small_for = _walk(n)
    channels, features = _cnn_head()
    side_fit = int(round((features / channels) ** 0.5))
    if too_small_for is not None:
        last = walk[-1][1]
        smallest = min(m for m in range(1, LIMITS["image_size"] + 1) if _walk(m)[1] is None)
        raise AnatomyError(
            f"with {n}×{n} inputs the feature map has shrunk to {last}×{last} before {too_small_for}, too small for "
            f"that layer: every unpadded convolution and pooling makes it smaller, so the course CNN needs inputs "
            f"of at least {smallest}×{smallest}, and its linear layer fits only {_fit_words()}.", walk)
    got = walk[-1][1]
    if got != features:
        side = walk[-2][1]
        raise AnatomyError(
            f"with {n}×{n} inputs the last feature map is {side}×{side}×{channels} = {got:,} features, but the course "
            f"CNN's linear layer takes {features:,} ({side_fit}×{side_fit}×{channels}): its size is fixed in the "
            f"model, not inferred from the input, so it only fits {_fit_words()}.", walk)
    return walk


def walk_text(walk: list[tuple[str, int]]) -> str:
    """A walk as one line: "28 →conv1 5×5→ 24 → … → 4; flatten 4·4·32 = 512 features" (a partial one ends early)."""
    text = str(walk[0][1])
    for label, side in walk[1:]:
        if label == "flatten":
            channels, _ = _cnn_head()
            last = walk[-2][1]
            text += f"; flatten {last}·{last}·{channels} = {side} features"
        else:
            text += f" →{label}→ {side}"
    return text


# -- the U-Net, level by level ------------------------------------------------------------------------------------
def _unet_problem(h: int, w: int, depth: int) -> str | None:
    step = 2 ** depth
    if h % step == 0 and w % step == 0:
        return None
    side = h if h % step else w
    sides = [side]
    for _ in range(depth):
        sides.append(sides[-1] // 2)
    halved = " → ".join(map(str, sides))
    i = next(i for i in range(1, len(sides)) if sides[i - 1] % 2)      # the first halving that rounds down
    return (f"with {h}×{w} inputs the U-Net's {depth} max-pools halve the side {halved}; doubling {sides[i]} back "
            f"gives {2 * sides[i]}, not {sides[i - 1]}, so the skip connection of that level cannot be concatenated. "
            f"The side must be a multiple of 2^{depth} = {step}.")


def _unet_block(name: str, depth: int) -> tuple[str, str]:
    """(group key, block label) of a U-Net leaf layer name such as "down.1.3", "up.0.up.1", "pool", "head"."""
    parts = name.split(".")
    if parts[0] == "down":
        i = int(parts[1])
        return f"down.{i}", ("bottleneck" if i == depth else f"encoder level {i}")
    if parts[0] in ("up", "merge"):
        level = depth - 1 - int(parts[1])
        return f"{parts[0]}.{parts[1]}", f"decoder level {level}: {'upsample' if parts[0] == 'up' else 'merge'}"
    return parts[0], {"pool": "max-pool 2×2", "head": "head"}.get(parts[0], parts[0])


def unet_levels(cfg: RunConfig, input_shape: tuple[int, ...] | None = None) -> pd.DataFrame:
    """The U-Net block by block (encoder levels, bottleneck, decoder up-steps and merges, head), read off
    `layer_table`: block, output shape, parameters, what it does. Raises AnatomyError like `layer_table`."""
    layers = layer_table(cfg, input_shape)
    model = _model(cfg)
    modules = dict(model.named_modules())
    depth = cfg.model.depth
    groups: list[dict] = []
    for r in layers.to_dict("records"):
        key, label = _unet_block(r["layer"], depth)
        if not groups or groups[-1]["key"] != key:
            groups.append({"key": key, "block": label, "names": []})
        groups[-1]["names"].append(r["layer"])
        groups[-1]["output shape"] = r["output shape"]
    for g in groups:
        g["parameters"] = int(layers.loc[layers["layer"].isin(g["names"]), "parameters"].sum())
        g["what it does"] = _block_phrase(g["key"], [modules[n] for n in g["names"]], depth)
    return pd.DataFrame(groups, columns=["block", "output shape", "parameters", "what it does"])


def _block_phrase(key: str, leaves: list[nn.Module], depth: int) -> str:
    kind = key.split(".")[0]
    convs = [m for m in leaves if isinstance(m, nn.Conv2d)]
    if kind == "pool":
        return "max-pool 2×2: halves H and W on the way down"
    if kind == "head":
        return f"1×1 convolution, {convs[0].in_channels}→1 channel: one logit per pixel (vessel or not)"
    if kind == "up":
        return _up_phrase(leaves)
    act = next((type(m).__name__ for m in leaves if type(m).__name__ in _ACT_WORDS), "activation")
    bn = " batch-norm and" if any(isinstance(m, nn.BatchNorm2d) for m in leaves) else ""
    chans = "→".join([str(convs[0].in_channels)] + [str(c.out_channels) for c in convs])
    doubles = f"two 3×3 convolutions ({chans} channels), each followed by{bn} {_ACT_WORDS.get(act, act)}"
    if kind == "merge":
        half = convs[0].in_channels // 2
        level = depth - 1 - int(key.split(".")[1])
        return (f"concatenate the skip from encoder level {level} ({half} channels) with the upsampled map "
                f"({half}), then {doubles}")
    return doubles


def _up_phrase(leaves: list[nn.Module]) -> str:
    t = next((m for m in leaves if isinstance(m, nn.ConvTranspose2d)), None)
    if t is not None:
        return f"2×2 transposed convolution, stride 2: doubles H and W, {t.in_channels}→{t.out_channels} channels"
    resize = next(m for m in leaves if isinstance(m, nn.Upsample))
    conv = next(m for m in leaves if isinstance(m, nn.Conv2d))
    return (f"{resize.mode} resize ×2 (no parameters), then a 3×3 convolution, {conv.in_channels}→{conv.out_channels} "
            "channels")


def _up_pairs(model: nn.Module) -> int:
    """Σ c_in·c_out over the U-Net's up-steps: the channel pairs each up-step's kernel connects."""
    return sum(m.in_channels * m.out_channels for name, m in model.named_modules()
               if name.startswith("up.") and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def upsampling_comparison(cfg: RunConfig) -> pd.DataFrame:
    """For every upsampling mode, the U-Net `cfg` describes with only the mode changed: mode, what one up-step is,
    parameters in the up-steps, total parameters, and the difference to the transposed-conv model in percent."""
    rows = []
    for mode in UPSAMPLINGS:
        model = _model(replace(cfg, model=replace(cfg.model, upsampling=mode)))
        up = sum(p.numel() for name, p in model.named_parameters() if name.startswith("up."))
        total = sum(p.numel() for p in model.parameters())
        rows.append({"upsampling": mode, "one up-step": _up_phrase(list(model.up[0].modules())),
                     "up-step parameters": int(up), "total parameters": int(total)})
    table = pd.DataFrame(rows)
    ref = table.loc[table["upsampling"] == "transpose", "total parameters"].iloc[0]
    table["vs transposed conv"] = [f"{100 * (t / ref - 1):+.1f} %" for t in table["total parameters"]]
    return table


def nearest_vs_transpose(cfg: RunConfig) -> str:
    """Why the nearest-neighbour U-Net has more parameters than the transposed-conv one, with the numbers."""
    t = _model(replace(cfg, model=replace(cfg.model, upsampling="transpose")))
    n = _model(replace(cfg, model=replace(cfg.model, upsampling="nearest")))
    pt, pn = (sum(p.numel() for p in m.parameters()) for m in (t, n))
    pairs = _up_pairs(t)
    widths = " + ".join(f"{m.in_channels}·{m.out_channels}" for m in t.up.modules()
                        if isinstance(m, nn.ConvTranspose2d))
    return (f"A nearest-neighbour resize has no weights, so each up-step follows it with a 3×3 convolution: 9 "
            f"weights per input–output channel pair, where the transposed convolution's 2×2 kernel has 4. That is "
            f"5 × ({widths}) = 5 × {pairs:,} = {pn - pt:,} more parameters: {pn:,} instead of {pt:,} "
            f"({100 * (pn / pt - 1):+.1f} %). The biases are the same (one per output channel).")


def variant_parameters(experiment: str) -> pd.DataFrame:
    """Every registry variant of `experiment` side by side: variant, name, parameters (from the built model)."""
    rows = []
    for name, make in VARIANTS.items():
        cfg = make()
        if cfg.experiment != experiment:
            continue
        m = cfg.model
        bn = ("batch-norm" + "".join(f", {w}" for w in (
            "after the activation" if m.bn_position == "after" else "", {"conv1-3": "also on conv1",
            "conv2-3+fc": "also before the linear layer", "conv1-3+fc": "also on conv1 and before the linear layer"
            }.get(m.bn_layers, ""), "affine" if m.bn_affine else "") if w) + ", ") if m.batchnorm else ""
        setting = (bn + _WORDS[m.activation] if experiment == "cnn" else
                   f"{_WORDS[m.upsampling]}, {_WORDS[m.activation]}" + (", batch-norm" if m.batchnorm else ""))
        rows.append({"variant": display_name(name), "registry name": name, "model": setting,
                     "parameters": total_parameters(cfg)})
    return pd.DataFrame(rows)


# -- the data ----------------------------------------------------------------------------------------------------
def _pixels(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], scale: int) -> np.ndarray:
    """(N, C, H, W) standardised images -> (N, H·scale, W·scale, 3) uint8, nearest-neighbour upscaled."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    px = np.round(np.clip(x.numpy() * s + m, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return px.repeat(scale, axis=1).repeat(scale, axis=2)


def _data(experiment: str) -> ClassificationData | SegmentationData:
    cfg = base_config(experiment)
    return load_data(cfg.data, EXPERIMENT_INFO[experiment].task)


def card_samples(scale: int = 3) -> list[tuple[str, np.ndarray]]:
    """The first training image of every class of the built-in cards (base config), with its class name:
    [(name, (28·scale, 28·scale, 3) uint8)], in class order."""
    data = _data("cnn")
    labels = data.train_y.numpy()
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(data.num_classes)]
    images = _pixels(data.train_x[first], data.mean, data.std, scale)
    return list(zip(data.class_names, images, strict=True))


def vessel_samples(n: int = 4, scale: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `n` training image/mask pairs of the built-in vessels (base config), as uint8 RGB arrays."""
    data = _data("unet")
    images = _pixels(data.train_x[:n], data.mean, data.std, scale)
    masks = (data.train_y[:n].numpy() > 0.5).astype(np.uint8) * 255                     # (n, 1, H, W)
    masks = masks.transpose(0, 2, 3, 1).repeat(3, axis=3).repeat(scale, axis=1).repeat(scale, axis=2)
    return list(zip(images, masks, strict=True))


def split_table(experiment: str) -> pd.DataFrame:
    """Split sizes and balance of the experiment's built-in data (base config): per split, images and either
    images per class (min–max) or the fraction of foreground (vessel) pixels."""
    data = _data(experiment)
    rows = []
    for split, y in (("train", data.train_y), ("val", data.val_y), ("test", data.test_y)):
        row = {"split": split, "images": len(y)}
        if isinstance(data, ClassificationData):
            counts = np.bincount(y.numpy(), minlength=data.num_classes)
            lo, hi = int(counts.min()), int(counts.max())
            row["images per class"] = f"{lo} each" if lo == hi else f"{lo}–{hi}"
        else:
            row["vessel pixels"] = f"{100 * float((y > 0.5).float().mean()):.1f} %"
        rows.append(row)
    return pd.DataFrame(rows)
