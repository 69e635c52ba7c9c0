"""Single-path super-networks: one candidate per column per step instead of DARTS's mixture.

``--strategy`` chooses how a column mixes its candidates during training:

- ``darts`` (the paper): ``softmax(α / τ)`` of both candidates, both run;
- ``spos`` (Guo et al. 2020, Single Path One-Shot; Li & Talwalkar 2019): a one-hot at a candidate drawn
  uniformly, afresh for each column at each forward; α is not trained (there is no architecture step), so
  each path's inherited weights are meaningful on their own: the architecture is chosen afterwards by
  ``clearer-nni rank``;
- ``fair`` (FairNAS, Chu et al. 2021, strict fairness): like ``spos``, but each weight step trains as many
  paths as a column has candidates, every column taking each of its candidates exactly once (a fresh
  permutation per column and step), their gradients summed into one update: every candidate gets the same
  number of updates, which uniform sampling only gives on average;
- ``gumbel`` (GDAS, Dong & Yang 2019): a hard Gumbel-softmax sample of ``α / τ``, one-hot forward with the
  soft sample's gradient to α (straight-through).

Only candidates whose weight is non-zero run (:class:`SinglePathMixedLayer`), so a single-path step runs
one candidate per column. Outside training (validation, the logger's PSNR, selection) every strategy mixes
with ``softmax(α / τ)``; L_Arch and L_Comp always use those soft probabilities (:meth:`PathSampler.probs`).
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F
from nni.nas.oneshot.pytorch.supermodule._expression_utils import weighted_sum
from nni.nas.oneshot.pytorch.supermodule.differentiable import DifferentiableMixedLayer

from .schedules import TemperatureSoftmax

__all__ = ["STRATEGIES", "ALPHA_FREE", "PathSampler", "SinglePathMixedLayer"]

#: ``darts`` (paper), ``spos`` (uniform single path, no α step), ``fair`` (FairNAS: every candidate once per
#: step, no α step) or ``gumbel`` (GDAS, hard Gumbel-softmax).
STRATEGIES = ("darts", "spos", "fair", "gumbel")
#: The strategies that train no α: their architecture is chosen by ranking the super-network.
ALPHA_FREE = ("spos", "fair")


class PathSampler(TemperatureSoftmax):
    """The columns' mixing weights under ``strategy`` (one instance shared by every column; see the module
    docstring); in eval mode, and under ``darts``, ``softmax(α / τ)``."""

    def __init__(self, strategy: str = "darts", dim: int = -1) -> None:
        super().__init__(dim)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self._perms: list[list[int]] = []  # fair: this step's permutation of each column's candidates
        self._pass: int | None = None  # fair: which of them the current forward trains
        self._column = 0

    def fair_pass(self, index: int | None) -> None:
        """``fair``: the next training forward is pass ``index`` of this step (0 draws fresh permutations);
        ``None`` ends the step (a training forward outside one draws uniformly, as ``spos``)."""
        if index == 0:
            self._perms = []
        self._pass, self._column = index, 0

    def _fair_choice(self, n: int) -> int:
        if self._column == len(self._perms):
            self._perms.append(random.sample(range(n), n))
        choice = self._perms[self._column][self._pass % n]
        self._column += 1
        return choice

    @property
    def single_path(self) -> bool:
        """Whether a training forward runs one candidate per column."""
        return self.training and self.strategy != "darts"

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        """``softmax(α / τ)``, differentiable (L_Arch, L_Comp, logging)."""
        return torch.softmax(alpha / self.tau, dim=self.dim)

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        if not self.single_path:
            return self.probs(alpha)
        n = alpha.shape[self.dim]
        if self.strategy in ALPHA_FREE:
            # a Python draw: no device sync, and no gradient reaches α
            choice = self._fair_choice(n) if self.strategy == "fair" and self._pass is not None else random.randrange(n)
            return F.one_hot(torch.tensor(choice), n).to(alpha)
        return F.gumbel_softmax(alpha, tau=self.tau, hard=True, dim=self.dim)


class SinglePathMixedLayer(DifferentiableMixedLayer):
    """NNI's differentiable mixed layer that skips the candidates a single-path sample gives weight 0."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        weights = self._softmax(self._arch_alpha)
        keep = range(len(self.names))
        if getattr(self._softmax, "single_path", False):
            keep = [i for i, w in enumerate(weights.detach().tolist()) if w != 0]  # one: the sampled candidate
        return weighted_sum([self[self.names[i]](*args, **kwargs) for i in keep], [weights[i] for i in keep])
