"""What the network learned: a trained model's first-layer filters, its feature maps for one image and the
distribution of its activations, read off the model itself with forward hooks.

Forward hooks on named modules (adlapp.models.cnn: `act1`, `act2`, `act3`; adlapp.models.unet: `down.0`, the first
encoder block, and `merge.<depth-1>`, the last decoder block) record what those modules output during one ordinary
forward pass, so what is shown is exactly what the model computes (batch-norm placement included), not a re-derivation.
Hooks are always removed again, even when the forward pass fails, so the model is left as it was.

Imports torch; only the Predictions page uses this module (it already runs models through adlapp.predict).
"""
from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["CNN_LAYERS", "HISTOGRAM_BINS", "LayerMaps", "feature_layers", "layer_title", "first_layer_filters",
           "filter_tiles", "capture", "feature_maps", "feature_grid", "activation_histograms",
           "histogram_chart"]

# The course CNN's activations after conv1, conv2 and conv3 (see CourseCNN.forward for the shapes).
CNN_LAYERS = ("act1", "act2", "act3")
HISTOGRAM_BINS = 40
_TITLES = {"act1": "conv1 → activation", "act2": "conv2 → activation", "act3": "conv3 → activation"}


@dataclass(frozen=True)
class LayerMaps:
    """One module's output for one image: `maps` (C, H, W) float32."""

    layer: str
    maps: np.ndarray


def feature_layers(model: nn.Module) -> tuple[str, ...]:
    """The named modules whose outputs the page shows: the CNN's three activations; the U-Net's first encoder
    block (`down.0`) and last decoder block (`merge.<depth-1>`), both at the input's full resolution."""
    names = dict(model.named_modules())
    if all(n in names for n in CNN_LAYERS):
        return CNN_LAYERS
    depth = getattr(model, "depth", None)
    if depth is not None and "down.0" in names and f"merge.{depth - 1}" in names:
        return ("down.0", f"merge.{depth - 1}")
    raise ValueError(f"{type(model).__name__}: no known layers to show")


def layer_title(layer: str) -> str:
    """How the page names a hooked module: 'conv1 → activation', 'first encoder block (down.0)', ..."""
    if layer in _TITLES:
        return _TITLES[layer]
    if layer == "down.0":
        return "first encoder block (down.0)"
    return f"last decoder block ({layer})"


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """The CNN's conv1 weights as images: (64, 5, 5, 3) float in [0, 1], channels last (R, G, B).

    Each filter is min-max normalised on its own over its 75 weights (lowest weight -> 0, highest -> 1; a
    constant filter becomes 0.5), so every tile uses the full range; tiles' brightness is therefore not
    comparable between filters, only the pattern within one."""
    weight = model.get_submodule("conv1").weight.detach().to("cpu", torch.float32)   # (64, 3, 5, 5)
    w = weight.permute(0, 2, 3, 1).numpy()                                           # (64, 5, 5, 3)
    low = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (w - low) / np.where(span > 0, span, 1), 0.5)


def filter_tiles(filters: np.ndarray, scale: int = 12) -> list[np.ndarray]:
    """Each (5, 5, 3) filter in [0, 1] as an RGB uint8 tile, every weight a `scale` x `scale` block."""
    out = []
    for f in filters:
        tile = np.round(f * 255).astype(np.uint8)
        out.append(np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1))
    return out


def capture(model: nn.Module, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Run `model` on `x` once, in eval mode without gradients, and return each named module's output.

    Hooks are registered only for this pass and removed in `finally`; the model's train/eval mode is restored."""
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        def hook(_module: nn.Module, _inputs: tuple, out: torch.Tensor, name: str = name) -> None:
            outputs[name] = out.detach().to("cpu")
        handles.append(model.get_submodule(name).register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return outputs


def feature_maps(model: nn.Module, image: torch.Tensor, layers: tuple[str, ...] | None = None) -> list[LayerMaps]:
    """The outputs of `layers` (default: `feature_layers(model)`) for one standardised image (C, H, W)."""
    layers = layers or feature_layers(model)
    out = capture(model, image[None], layers)
    return [LayerMaps(name, out[name][0].numpy().astype(np.float32)) for name in layers]


def feature_grid(maps: np.ndarray, columns: int = 8, scale: int = 4, gap: int = 1) -> np.ndarray:
    """(C, H, W) feature maps as one grayscale uint8 grid image, channel 0 top left, row by row.

    Each channel is min-max scaled on its own (its lowest value black, its highest white; a constant channel,
    e.g. one a ReLU switched off everywhere, is mid grey), then every value becomes a `scale` x `scale` block;
    channels are separated by `gap` pixels of white."""
    c, h, w = maps.shape
    columns = min(columns, c)
    rows = -(-c // columns)
    cell_h, cell_w = h * scale, w * scale
    grid = np.full((rows * (cell_h + gap) - gap, columns * (cell_w + gap) - gap), 255, np.uint8)
    for i, m in enumerate(maps):
        low, span = float(m.min()), float(m.max() - m.min())
        tile = np.full(m.shape, 128.0) if span == 0 else (m - low) / span * 255
        tile = np.repeat(np.repeat(np.round(tile).astype(np.uint8), scale, axis=0), scale, axis=1)
        r, col = divmod(i, columns)
        grid[r * (cell_h + gap):r * (cell_h + gap) + cell_h, col * (cell_w + gap):col * (cell_w + gap) + cell_w] = tile
    return grid


def activation_histograms(model: nn.Module, x: torch.Tensor, layers: tuple[str, ...] | None = None,
                          bins: int = HISTOGRAM_BINS) -> pd.DataFrame:
    """Histograms of every value the `layers` output over the batch `x`: one row per bin with layer, bin_start,
    bin_end, count, and per layer the number of values (`values`, = images x channels x H x W) and of images.

    Bins are equal-width between each layer's own lowest and highest value (so each layer fills its panel);
    a layer whose values are all equal gets one bin."""
    layers = layers or feature_layers(model)
    out = capture(model, x, layers)
    frames = []
    for name in layers:
        values = out[name].numpy().astype(np.float64).ravel()
        low, high = float(values.min()), float(values.max())
        counts, edges = np.histogram(values, bins=bins if high > low else 1,
                                     range=(low, high) if high > low else (low - 0.5, high + 0.5))
        frames.append(pd.DataFrame({"layer": layer_title(name), "bin_start": edges[:-1], "bin_end": edges[1:],
                                    "count": counts.astype(np.int64), "values": values.size, "images": len(x)}))
    return pd.concat(frames, ignore_index=True)


def histogram_chart(histograms: pd.DataFrame, width: int = 200, height: int = 160) -> alt.Chart:
    """One bar histogram per layer side by side, each with its own value axis (the layers' ranges differ);
    a tooltip gives the bin and its count."""
    order = list(dict.fromkeys(histograms["layer"]))
    return (alt.Chart(histograms).mark_bar()
            .encode(x=alt.X("bin_start:Q", bin="binned", title="activation value"), x2="bin_end:Q",
                    y=alt.Y("count:Q", title="values"),
                    tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("bin_start:Q", format=".3f", title="from"),
                             alt.Tooltip("bin_end:Q", format=".3f", title="to"), alt.Tooltip("count:Q")])
            .properties(width=width, height=height)
            .facet(column=alt.Column("layer:N", sort=order, title=None))
            .resolve_scale(x="independent", y="independent"))
