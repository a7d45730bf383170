"""A classic U-Net for binary segmentation with upsampling and activation toggles."""
from __future__ import annotations

import torch
from torch import nn

from adlapp.models.layers import activation_layer

__all__ = ["UNet"]


class DoubleConv(nn.Sequential):
    """Two 3x3 'same' convolutions, each followed by optional BatchNorm and the activation."""

    def __init__(self, c_in: int, c_out: int, activation: str, batchnorm: bool) -> None:
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers.append(nn.Conv2d(c, c_out, kernel_size=3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(activation_layer(activation))
        super().__init__(*layers)


class Up(nn.Module):
    """Doubles the spatial size and halves the channels.

    "transpose" is the course's "normal" variant (ConvTranspose2d k2 s2); "nearest" and "bilinear" resize
    without parameters and then mix channels with a 3x3 conv, which avoids checkerboard artefacts.
    """

    def __init__(self, c_in: int, c_out: int, mode: str) -> None:
        super().__init__()
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)
        elif mode in ("nearest", "bilinear"):
            align = {"align_corners": False} if mode == "bilinear" else {}
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode=mode, **align),
                                    nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
        else:
            raise ValueError(f"upsampling={mode!r}: must be transpose, nearest or bilinear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class UNet(nn.Module):
    """Encoder/decoder with skip connections.

    Widths are base_width * 2**level for level 0..depth. Input (B, in_channels, H, W) with H, W divisible by
    2**depth; output (B, 1, H, W) logits for a binary mask.
    """

    def __init__(self, in_channels: int = 3, base_width: int = 8, depth: int = 3, upsampling: str = "transpose",
                 activation: str = "relu", batchnorm: bool = False) -> None:
        super().__init__()
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0], activation, batchnorm)])
        self.down.extend(DoubleConv(widths[i], widths[i + 1], activation, batchnorm) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i], upsampling) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(DoubleConv(2 * widths[i], widths[i], activation, batchnorm)
                                   for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))   # (B, w_i, H/2^i, W/2^i)
            skips.append(x)
        skips.pop()                                    # the bottleneck is not a skip
        for up, merge in zip(self.up, self.merge, strict=True):
            x = up(x)                                  # (B, w_i, H/2^i, W/2^i)
            x = merge(torch.cat([skips.pop(), x], 1))  # concat skip: (B, 2 w_i, ...) -> (B, w_i, ...)
        return self.head(x)                            # (B, 1, H, W)
