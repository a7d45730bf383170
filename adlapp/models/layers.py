"""Small shared building blocks."""
from __future__ import annotations

from torch import nn

__all__ = ["activation_layer"]

_ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU}


def activation_layer(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation={name!r}: must be one of {', '.join(_ACTIVATIONS)}") from None
