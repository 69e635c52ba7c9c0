"""The building blocks of CLEARER's multi-scale super-network (SPEC section 1, paper Fig. 1).

Every module takes and returns a **list of branch tensors**, highest resolution first, and never
mutates its input list: NNI's differentiable mixed layer feeds the same list to every candidate, and
the authors' code computes ``F(P(x))`` instead of Eq. 1's ``F(x)`` precisely because their parallel
module overwrote its input in place.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "Branches",
    "conv3x3",
    "BasicBlock",
    "Bottleneck",
    "ParallelModule",
    "TransitionModule",
    "FusionModule",
    "AuthorsStem",
    "PaperStem",
    "Head",
    "init_weights",
]

Branches = List[torch.Tensor]


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias (a BatchNorm always follows)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, relu: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN, identity skip, ReLU after the add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class Bottleneck(nn.Module):
    """HRNet bottleneck (1x1 → 3x3 → 1x1, expansion 4), used by the authors' stem."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.body = nn.Sequential(
            _conv_bn(in_ch, planes, 1, relu=True),
            _conv_bn(planes, planes, 3, relu=True),
            _conv_bn(planes, out_ch, 1),
        )
        # A projection only where the channel count changes (the first block).
        self.skip = _conv_bn(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class ParallelModule(nn.Module):
    """HRNet's "horizontal" module: one residual block per branch; resolution and channels kept.

    Parameters
    ----------
    channels
        Channels of each branch, highest resolution first.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.channels = list(channels)
        self.blocks = nn.ModuleList(BasicBlock(c) for c in self.channels)

    def forward(self, branches: Branches) -> Branches:
        _check_branches(branches, len(self.channels), type(self).__name__)
        return [block(x) for block, x in zip(self.blocks, branches)]


class TransitionModule(nn.Module):
    """Adds a new lowest-resolution branch (stride-2 conv3x3-BN-ReLU from the current lowest one).

    Existing branches pass through unchanged, except where their channel count differs from the
    target (only after the authors' 128-channel stem), where a conv3x3-BN-ReLU adapts them.

    Parameters
    ----------
    in_channels
        Channels of the incoming branches.
    out_channels
        Channels of the outgoing branches: one more entry than ``in_channels``.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int]) -> None:
        super().__init__()
        if len(out_channels) != len(in_channels) + 1:
            raise ValueError(f"a transition adds exactly one branch: got {list(in_channels)} -> {list(out_channels)}")
        self.in_channels, self.out_channels = list(in_channels), list(out_channels)
        self.adapt = nn.ModuleList(
            nn.Identity() if c_in == c_out else _conv_bn(c_in, c_out, 3, relu=True)
            for c_in, c_out in zip(in_channels, out_channels)
        )
        self.down = _conv_bn(in_channels[-1], out_channels[-1], 3, stride=2, relu=True)

    def forward(self, branches: Branches) -> Branches:
        _check_branches(branches, len(self.in_channels), type(self).__name__)
        return [m(x) for m, x in zip(self.adapt, branches)] + [self.down(branches[-1])]


class FusionModule(nn.Module):
    """HRNet's exchange unit: output branch j sums every input branch brought to j's scale, then ReLU.

    A lower-resolution input i > j goes through 1x1 conv + BN and nearest upsampling to j's size; a
    higher-resolution input i < j goes through (j - i) stride-2 conv3x3 + BN, with ReLU between them
    but not after the last.

    Parameters
    ----------
    channels
        Channels of each branch, highest resolution first.
    out_branches
        How many output branches to compute (the highest-resolution ones); the final fusion module
        of the network computes only the full-resolution one.
    """

    def __init__(self, channels: Sequence[int], out_branches: int | None = None) -> None:
        super().__init__()
        self.channels = list(channels)
        n = len(self.channels)
        self.out_branches = n if out_branches is None else out_branches
        if not 1 <= self.out_branches <= n:
            raise ValueError(f"out_branches must be in [1, {n}], got {self.out_branches}")
        self.paths = nn.ModuleList()
        for j in range(self.out_branches):
            row = nn.ModuleList()
            for i in range(n):
                if i == j:
                    row.append(nn.Identity())
                elif i > j:
                    row.append(_conv_bn(self.channels[i], self.channels[j], 1))
                else:
                    steps: list[nn.Module] = [_conv_bn(self.channels[i], self.channels[i], 3, stride=2, relu=True)
                                              for _ in range(j - i - 1)]
                    steps.append(_conv_bn(self.channels[i], self.channels[j], 3, stride=2))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, branches: Branches) -> Branches:
        _check_branches(branches, len(self.channels), type(self).__name__)
        outputs = []
        for j, row in enumerate(self.paths):
            size = branches[j].shape[-2:]
            total = branches[j]
            for i, path in enumerate(row):
                if i == j:
                    continue
                y = path(branches[i])
                if i > j:
                    # Interpolate to the exact size (not a fixed factor) so odd image sizes work too.
                    y = F.interpolate(y, size=size, mode="nearest")
                total = total + y
            outputs.append(F.relu(total))
        return outputs


class AuthorsStem(nn.Module):
    """The authors' stem: two HRNet bottleneck blocks at full resolution (in → 4 * planes channels)."""

    def __init__(self, in_channels: int, planes: int) -> None:
        super().__init__()
        self.out_channels = planes * Bottleneck.expansion
        self.blocks = nn.Sequential(Bottleneck(in_channels, planes), Bottleneck(self.out_channels, planes))

    def forward(self, x: torch.Tensor) -> Branches:
        return [self.blocks(x)]


class PaperStem(nn.Module):
    """The paper's stem: a conv3x3-BN-ReLU to ``channels``, then "two parallel modules" at full resolution."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.out_channels = channels
        self.entry = _conv_bn(in_channels, channels, 3, relu=True)
        self.parallel = nn.ModuleList([ParallelModule([channels]), ParallelModule([channels])])

    def forward(self, x: torch.Tensor) -> Branches:
        branches = [self.entry(x)]
        for module in self.parallel:
            branches = module(branches)
        return branches


class Head(nn.Module):
    """Final fusion to the full-resolution branch, then a 1x1 conv without bias to the output channels."""

    def __init__(self, channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.fusion = FusionModule(channels, out_branches=1)
        self.conv = nn.Conv2d(channels[0], out_channels, 1, bias=False)

    def forward(self, branches: Branches) -> torch.Tensor:
        return self.conv(self.fusion(branches)[0])


def init_weights(module: nn.Module, std: float = 1e-3) -> None:
    """The authors' initialisation: conv weights ~ N(0, std), BatchNorm weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _check_branches(branches: Branches, expected: int, who: str) -> None:
    if not isinstance(branches, (list, tuple)) or len(branches) != expected:
        got = len(branches) if isinstance(branches, (list, tuple)) else type(branches).__name__
        raise ValueError(f"{who} expects a list of {expected} branch tensors, got {got}")
