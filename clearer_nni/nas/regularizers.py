"""CLEARER's architecture regularisers (paper Eq. 4 and 5) and the per-candidate costs of L_Comp.

Both act on the softmaxed architecture weights only. ``N`` is the number of architecture weights,
``2 * sum(N_i)`` in the paper (two candidates per column).

Cost normalisation (so that λ2 is scale-free): every candidate's raw cost (parameters or FLOPs of
the module *at its position*) is divided by the largest candidate cost in the space. Costs are then
in (0, 1], and L_Comp lies between (1/N)·Σ min(C_p, C_f) and (1/N)·Σ max(C_p, C_f) ≤ 1/2 — the
same scale whichever metric or width is used.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from ..archs.space import CANDIDATES, ClearerSpace, SpaceConfig, count_parameters

__all__ = ["COST_METRICS", "LOG_BASES", "arch_entropy_loss", "complexity_loss", "candidate_costs",
           "normalise_costs"]

COST_METRICS = ("params", "flops")
LOG_BASES = ("e", "10")
_EPS = 1e-12


def arch_entropy_loss(probs: Sequence[torch.Tensor], log_base: str = "e") -> torch.Tensor:
    """L_Arch (Eq. 4): ``-(1/N) Σ_α [α log α + (1-α) log(1-α)]`` over all softmaxed weights.

    Parameters
    ----------
    probs
        One tensor of candidate probabilities per column.
    log_base
        ``e`` (the paper) or ``10`` (the authors' code: the same loss divided by ln 10).
    """
    if log_base not in LOG_BASES:
        raise ValueError(f"log_base must be one of {LOG_BASES}, got {log_base!r}")
    # float64 and a clamp: at a saturated softmax (p == 1.0 in float32) the loss is 0 with zero
    # gradient instead of 0 * log(0) = NaN.
    cat = torch.cat([p.reshape(-1) for p in probs])
    a = cat.double().clamp(_EPS, 1 - _EPS)
    loss = -(a * a.log() + (1 - a) * (1 - a).log()).mean()
    loss = loss / math.log(10) if log_base == "10" else loss
    return loss.to(cat.dtype)


def complexity_loss(probs: Sequence[torch.Tensor], costs: Sequence[torch.Tensor]) -> torch.Tensor:
    """L_Comp (Eq. 5): ``(1/N) Σ_columns Σ_k α_k C_k``, the expected (normalised) complexity."""
    if len(probs) != len(costs):
        raise ValueError(f"{len(probs)} columns of probabilities but {len(costs)} of costs")
    n = sum(p.numel() for p in probs)
    return sum((p * c.to(p)).sum() for p, c in zip(probs, costs)) / n


def candidate_costs(config: SpaceConfig, metric: str = "params", patch_size: int = 64) -> dict[str, dict[str, float]]:
    """Raw cost of each candidate of each column, measured on the actual modules at their positions.

    Parameters
    ----------
    config
        The space.
    metric
        ``params`` (module size, the paper's choice) or ``flops`` (forward FLOPs at ``patch_size``).
    patch_size
        Input size for ``flops``; branch k of a column then has size ``patch_size / 2**k``.
    """
    if metric not in COST_METRICS:
        raise ValueError(f"cost metric must be one of {COST_METRICS}, got {metric!r}")
    space = ClearerSpace(config)
    costs: dict[str, dict[str, float]] = {}
    for label, column in space.columns():
        cell = int(label.split(".")[0][len("cell"):])
        costs[label] = {name: float(_cost(column[name], metric, config.branch_channels(cell), patch_size))
                        for name in CANDIDATES}
    return costs


def normalise_costs(costs: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Divide every cost by the largest one in the space (see the module docstring)."""
    top = max(v for column in costs.values() for v in column.values())
    if top <= 0:
        raise ValueError("all candidate costs are zero: nothing to normalise")
    return {label: {name: v / top for name, v in column.items()} for label, column in costs.items()}


def _cost(module: nn.Module, metric: str, channels: list[int], patch_size: int) -> int:
    if metric == "params":
        return count_parameters(module)
    from torch.utils.flop_counter import FlopCounterMode

    size = [max(1, math.ceil(patch_size / 2 ** k)) for k in range(len(channels))]
    branches = [torch.zeros(1, c, s, s) for c, s in zip(channels, size)]
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(branches)
    return counter.get_total_flops()
