"""The course CNN classifier (3x28x28 -> num_classes), exactly as in the assignment report, with the
batch-norm placements the report left open as options."""
from __future__ import annotations

import torch
from torch import nn

from adlapp.models.layers import activation_layer

__all__ = ["CourseCNN"]


class CourseCNN(nn.Module):
    """conv 3->64 k5, conv 64->32 k5, maxpool 2, conv 32->32 k3, maxpool 2, linear 512->num_classes.

    No padding, so a 28x28 image walks 28 -> 24 -> 20 -> 10 -> 8 -> 4 and the linear layer sees 4*4*32 = 512
    features. With `batchnorm`, BatchNorm2d(affine=False) sits after conv2 and conv3 and *before* the
    activation ("we add the BN transform immediately before the nonlinearity", the placement the report chose).

    The report's open questions are options: `bn_position="after"` puts each BN after its activation;
    `bn_layers` "conv1-3" also normalises conv1's output, "+fc" adds BatchNorm1d on the 512 features before the
    linear layer (the report left out "the input- and output nodes"); `bn_affine` gives every BN a learnable
    scale and shift (32 or 64 or 512 x 2 parameters each).

    Input (B, 3, 28, 28) float32; output (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 53, batchnorm: bool = False, activation: str = "elu",
                 bn_position: str = "before", bn_layers: str = "conv2-3", bn_affine: bool = False) -> None:
        super().__init__()
        if bn_position not in ("before", "after"):
            raise ValueError(f"bn_position={bn_position!r}: must be before or after")
        if bn_layers not in ("conv2-3", "conv1-3", "conv2-3+fc", "conv1-3+fc"):
            raise ValueError(f"bn_layers={bn_layers!r}: must be conv2-3, conv1-3, conv2-3+fc or conv1-3+fc")
        self.bn_after = bn_position == "after"

        def bn(channels: int, on: bool, dims: int = 2) -> nn.Module:
            if not (batchnorm and on):
                return nn.Identity()
            kind = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
            return kind(channels, affine=bn_affine)

        self.conv1 = nn.Conv2d(3, 64, kernel_size=5)
        self.bn1 = bn(64, bn_layers.startswith("conv1"))
        self.act1 = activation_layer(activation)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=5)
        self.bn2 = bn(32, True)
        self.act2 = activation_layer(activation)
        self.pool1 = nn.MaxPool2d(2, stride=2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3)
        self.bn3 = bn(32, True)
        self.act3 = activation_layer(activation)
        self.pool2 = nn.MaxPool2d(2, stride=2)
        self.flatten = nn.Flatten()
        self.bn_fc = bn(4 * 4 * 32, bn_layers.endswith("+fc"), dims=1)
        self.fc = nn.Linear(4 * 4 * 32, num_classes)

    def _block(self, x: torch.Tensor, conv: nn.Module, bn: nn.Module, act: nn.Module) -> torch.Tensor:
        x = conv(x)
        return bn(act(x)) if self.bn_after else act(bn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._block(x, self.conv1, self.bn1, self.act1)   # (B, 64, 24, 24)
        x = self._block(x, self.conv2, self.bn2, self.act2)   # (B, 32, 20, 20)
        x = self.pool1(x)                                     # (B, 32, 10, 10)
        x = self._block(x, self.conv3, self.bn3, self.act3)   # (B, 32, 8, 8)
        x = self.pool2(x)                                     # (B, 32, 4, 4)
        x = self.flatten(x)                                   # (B, 512)
        return self.fc(self.bn_fc(x))                         # (B, num_classes)
