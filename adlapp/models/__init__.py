"""Models and the helpers that build and describe them from a RunConfig."""
from __future__ import annotations

import torch
from torch import nn

from adlapp.config import RunConfig
from adlapp.models.cnn import CourseCNN
from adlapp.models.unet import UNet

__all__ = ["CourseCNN", "UNet", "build_model", "describe"]


def build_model(cfg: RunConfig, num_classes: int = 53, in_channels: int = 3) -> nn.Module:
    m = cfg.model
    if cfg.experiment == "cnn":
        return CourseCNN(num_classes=num_classes, batchnorm=m.batchnorm, activation=m.activation,
                         bn_position=m.bn_position, bn_layers=m.bn_layers, bn_affine=m.bn_affine)
    return UNet(in_channels=in_channels, base_width=m.base_width, depth=m.depth, upsampling=m.upsampling,
                activation=m.activation, batchnorm=m.batchnorm)


def describe(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """Each leaf layer's output shape and parameter count for one forward pass of zeros.

    `input_shape` excludes the batch dimension, e.g. (3, 28, 28). Rows are in execution order:
    {"layer": name, "type": class name, "output_shape": (C, H, W) or (F,), "params": int}.
    """
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            def hook(mod: nn.Module, _inp: tuple, out: torch.Tensor, name: str = name) -> None:
                rows.append({"layer": name, "type": type(mod).__name__,
                             "output_shape": tuple(out.shape[1:]),
                             "params": sum(p.numel() for p in mod.parameters())})
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows
