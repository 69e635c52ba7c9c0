"""Hand-designed baselines that searched networks are compared against (benchmarks/quality.py).

:class:`PlainCNN` is a DnCNN-style single-scale network (Zhang et al., TIP 2017): conv + ReLU, then
``depth - 2`` conv + BatchNorm + ReLU layers, then a conv to the output channels, all 3x3 at full
resolution, learning the residual (output = input + network(input)). :func:`plain_cnn_for_params`
picks the width that gives about a wanted parameter count, so that a comparison is at equal size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["PlainCNN", "plain_cnn_params", "plain_cnn_for_params"]


def plain_cnn_params(width: int, depth: int = 17, in_channels: int = 1, out_channels: int = 1) -> int:
    """Parameter count of ``PlainCNN(width, depth, in_channels, out_channels)``, without building it."""
    first = 9 * in_channels * width + width  # conv with bias
    middle = (depth - 2) * (9 * width * width + 2 * width)  # conv without bias + BatchNorm (weight, bias)
    last = 9 * width * out_channels  # conv without bias
    return first + middle + last


class PlainCNN(nn.Module):
    """DnCNN-style denoiser: ``depth`` 3x3 convolutions of ``width`` channels, residual learning.

    Parameters
    ----------
    width
        Channels of every hidden layer (DnCNN: 64).
    depth
        Number of convolutions, at least 2 (DnCNN: 17 for Gaussian denoising).
    in_channels, out_channels
        Image channels (1 for gray).
    """

    def __init__(self, width: int = 64, depth: int = 17, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        if width < 1 or depth < 2:
            raise ValueError(f"PlainCNN needs width >= 1 and depth >= 2, got width={width}, depth={depth}")
        if in_channels != out_channels:
            raise ValueError(f"residual learning needs in_channels == out_channels, got {in_channels}, {out_channels}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, out_channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        self.width, self.depth = width, depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def plain_cnn_for_params(params: int, depth: int = 17, in_channels: int = 1, out_channels: int = 1) -> PlainCNN:
    """The ``PlainCNN`` of ``depth`` layers whose parameter count is closest to ``params``."""
    if params < plain_cnn_params(1, depth, in_channels, out_channels):
        raise ValueError(f"no PlainCNN of depth {depth} has as few as {params} parameters")
    width = 1
    while plain_cnn_params(width + 1, depth, in_channels, out_channels) <= params:
        width += 1
    below, above = (abs(plain_cnn_params(w, depth, in_channels, out_channels) - params) for w in (width, width + 1))
    return PlainCNN(width if below <= above else width + 1, depth, in_channels, out_channels)
