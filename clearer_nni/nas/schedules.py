"""Schedules that make a short search decide: α's learning rate, the softmax temperature, λ1 over time.

At the paper's setting (9,000 α steps at Adam lr 3e-4) a logit can travel up to about 2.7; Adam moves a
parameter by at most about its learning rate per step, so a 250-step CPU search at the same rate keeps
every P(parallel) within 0.5 ± 0.02 (SPEC section 8). The schedules here are explicit options; each
one's neutral setting (``fixed``, no annealing, ``constant``) is the paper's recipe.

- ``scaled`` α learning rate: ``arch_lr · 9000 / α steps``, the paper's logit-travel budget in any
  number of steps (exactly ``arch_lr`` at 9,000 α steps).
- Softmax temperature τ, annealed geometrically from 1 to ``temperature_min`` over the last
  ``anneal_fraction`` of the search, so that the super-network whose weights are trained last is
  (nearly) the one-hot network that will be exported (SNAS, Xie et al. ICLR 2019; GDAS, Dong & Yang
  CVPR 2019; ASAP, Noy et al. AISTATS 2020 anneal a temperature the same way).
- λ1 schedule ``linear``: λ1 grows from 0 to its value over the α steps, so L_Arch (whose gradient
  is zero at p = 0.5) pushes hardest once the columns have left 0.5 (DA²S, Tian et al., Pattern
  Recognition 2021, likewise controls the weight of its entropy loss over the search with
  continuation functions).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["PAPER_ALPHA_STEPS", "ARCH_LR_SCHEDULES", "LAMBDA_ARCH_SCHEDULES", "TemperatureSoftmax",
           "effective_arch_lr", "temperature_at", "lambda_arch_at"]

#: α steps of the paper's search: 10,000 iterations, the first 1,000 weights only.
PAPER_ALPHA_STEPS = 9_000
ARCH_LR_SCHEDULES = ("fixed", "scaled")
LAMBDA_ARCH_SCHEDULES = ("constant", "linear")


def effective_arch_lr(arch_lr: float, schedule: str, alpha_steps: int) -> float:
    """α's Adam learning rate for a search with ``alpha_steps`` architecture steps.

    ``fixed``: ``arch_lr``; ``scaled``: ``arch_lr · PAPER_ALPHA_STEPS / alpha_steps`` (the same logit
    travel as the paper's 9,000 steps at ``arch_lr``).
    """
    if schedule not in ARCH_LR_SCHEDULES:
        raise ValueError(f"arch_lr_schedule must be one of {ARCH_LR_SCHEDULES}, got {schedule!r}")
    if alpha_steps < 1:
        raise ValueError(f"alpha_steps must be >= 1, got {alpha_steps}")
    return float(arch_lr) if schedule == "fixed" else float(arch_lr) * PAPER_ALPHA_STEPS / int(alpha_steps)


def temperature_at(step: int, total_steps: int, anneal_fraction: float, temperature_min: float) -> float:
    """Softmax temperature at ``step`` (0-based) of ``total_steps``.

    1 until the last ``anneal_fraction`` of the search, then geometric from 1 down to
    ``temperature_min``, which the last step (``total_steps - 1``) reaches exactly.
    """
    if not 0.0 <= anneal_fraction <= 1.0:
        raise ValueError(f"anneal_fraction must be in [0, 1], got {anneal_fraction}")
    if not (math.isfinite(temperature_min) and 0.0 < temperature_min <= 1.0):
        raise ValueError(f"temperature_min must be in (0, 1], got {temperature_min}")
    span = int(round(anneal_fraction * total_steps))
    if span <= 0:
        return 1.0
    start = total_steps - span
    if step < start:
        return 1.0
    progress = 1.0 if span == 1 else min(1.0, (step - start) / (span - 1))
    return float(temperature_min ** progress)


def lambda_arch_at(lambda_arch: float, schedule: str, alpha_step: int, alpha_steps: int) -> float:
    """λ1 at the ``alpha_step``-th (0-based) of ``alpha_steps`` architecture steps."""
    if schedule not in LAMBDA_ARCH_SCHEDULES:
        raise ValueError(f"lambda_arch_schedule must be one of {LAMBDA_ARCH_SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or alpha_steps <= 1:
        return float(lambda_arch)
    return float(lambda_arch) * min(1.0, alpha_step / (alpha_steps - 1))


class TemperatureSoftmax(nn.Softmax):
    """``softmax(α / τ)``; one instance is shared by every mixed column, so setting ``tau`` once
    changes them all."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__(dim)
        self.tau = 1.0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(inputs / self.tau, dim=self.dim)
