"""The course CNN classifier (3x28x28 -> num_classes), exactly as in the assignment report."""
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

    Input (B, 3, 28, 28) float32; output (B, num_classes) logits.
    """

    def __init__(self, num_classes: int = 53, batchnorm: bool = False, activation: str = "elu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=5)
        self.act1 = activation_layer(activation)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=5)
        self.bn2 = nn.BatchNorm2d(32, affine=False) if batchnorm else nn.Identity()
        self.act2 = activation_layer(activation)
        self.pool1 = nn.MaxPool2d(2, stride=2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3)
        self.bn3 = nn.BatchNorm2d(32, affine=False) if batchnorm else nn.Identity()
        self.act3 = activation_layer(activation)
        self.pool2 = nn.MaxPool2d(2, stride=2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 4 * 32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1(x))             # (B, 64, 24, 24)
        x = self.act2(self.bn2(self.conv2(x)))   # (B, 32, 20, 20)
        x = self.pool1(x)                        # (B, 32, 10, 10)
        x = self.act3(self.bn3(self.conv3(x)))   # (B, 32, 8, 8)
        x = self.pool2(x)                        # (B, 32, 4, 4)
        x = self.flatten(x)                      # (B, 512)
        return self.fc(x)                        # (B, num_classes)
