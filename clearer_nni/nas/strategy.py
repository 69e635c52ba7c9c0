"""ClearerDARTS: NNI's first-order DARTS with CLEARER's architecture loss (paper Eq. 2).

Architecture step (on a validation batch): ``L_Res + λ1·L_Arch + λ2·L_Comp``, with the regularisers
computed from the mixed layers' α tensors so that their gradients reach α (NNI's ``penalty=`` hook
receives plain floats). Weight step (on a training batch): ``L_Res`` only. The first
``warmup_steps`` steps train weights only; steps are counted here because ``trainer.global_step``
counts both optimisers' steps.

Options that make a short search decide (:mod:`.schedules`; their neutral values are the paper's
recipe): a softmax temperature annealed toward one-hot over the last part of the search, and a λ1
schedule. The α learning rate is given already scaled (``effective_arch_lr``). ``strategy``: DARTS's
mixture (the paper) or a single-path super-network (:mod:`.single_path`: ``spos`` has no α step).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Mapping

import torch
import torch.nn as nn
from nni.nas.oneshot.pytorch.differentiable import DartsLightningModule
from nni.nas.oneshot.pytorch.strategy import DARTS

from ..archs.space import CANDIDATES
from ..compat import arch_alpha, mixed_softmax, softmax_module
from .distributed import arch_backward
from .regularizers import LOG_BASES, arch_entropy_loss, complexity_loss
from .schedules import lambda_arch_at, temperature_at
from .single_path import ALPHA_FREE, PathSampler, SinglePathMixedLayer

__all__ = ["ClearerDARTS", "ClearerDartsModule", "StepRecord"]

#: What one search step leaves for loggers (0-dim tensors; reading them is the logger's business).
StepRecord = dict


class ClearerDartsModule(DartsLightningModule):
    """The one-shot Lightning module behind :class:`ClearerDARTS` (see the module docstring).

    Parameters
    ----------
    training_module
        The evaluator's module (trains weights with ``L_Res``).
    costs
        Normalised cost per column label and candidate name (see :mod:`.regularizers`).
    lambda_arch, lambda_comp
        λ1 and λ2.
    warmup_steps
        Steps that train weights only.
    log_base
        ``e`` (paper) or ``10`` (authors' code) in L_Arch.
    arch_eval_mode
        Run the architecture step's forward in eval mode (BatchNorm running statistics), as the
        authors' code does.
    max_steps
        Stop the trainer after this many bilevel steps.
    anneal_fraction, temperature_min
        Anneal the softmax temperature from 1 to ``temperature_min`` over the last ``anneal_fraction``
        of ``max_steps`` (0: never, the paper).
    lambda_arch_schedule
        ``constant`` (paper) or ``linear`` (λ1 from 0 to ``lambda_arch`` over the α steps).
    strategy
        ``darts`` (paper), ``spos`` or ``gumbel`` (:mod:`.single_path`; ``spos`` trains no α).
    """

    def __init__(self, training_module: Any, *, costs: Mapping[str, Mapping[str, float]],
                 lambda_arch: float = 0.01, lambda_comp: float = 0.0, warmup_steps: int = 0,
                 log_base: str = "e", arch_eval_mode: bool = False, arc_learning_rate: float = 3e-4,
                 gradient_clip_val: float | None = 5.0, max_steps: int | None = None,
                 anneal_fraction: float = 0.0, temperature_min: float = 1.0,
                 lambda_arch_schedule: str = "constant", strategy: str = "darts") -> None:
        super().__init__(training_module, arc_learning_rate=arc_learning_rate,
                         gradient_clip_val=gradient_clip_val, log_prob_every_n_step=10 ** 9, warmup_epochs=0)
        for name, value in (("lambda_arch", lambda_arch), ("lambda_comp", lambda_comp)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if log_base not in LOG_BASES:
            raise ValueError(f"log_base must be one of {LOG_BASES}, got {log_base!r}")
        self.costs = {label: dict(c) for label, c in costs.items()}
        self.lambda_arch, self.lambda_comp = float(lambda_arch), float(lambda_comp)
        self.warmup_steps = int(warmup_steps)
        self.log_base = log_base
        self.arch_eval_mode = arch_eval_mode
        self.max_steps = max_steps
        if anneal_fraction > 0 and max_steps is None:
            raise ValueError("anneal_fraction > 0 needs max_steps (the schedule ends at the last step)")
        temperature_at(0, max_steps or 1, anneal_fraction, temperature_min)  # validates
        lambda_arch_at(lambda_arch, lambda_arch_schedule, 0, 1)  # validates
        self.anneal_fraction, self.temperature_min = float(anneal_fraction), float(temperature_min)
        self.lambda_arch_schedule = lambda_arch_schedule
        self.strategy = strategy
        self.search_step = 0
        self.last_record: StepRecord = {}
        self._columns: list[tuple[str, nn.Module, torch.Tensor]] | None = None

    # -- architecture weights ------------------------------------------------------------------
    def mixed_columns(self) -> list[tuple[str, nn.Module, torch.Tensor]]:
        """(label, mixed layer, cost tensor in candidate order) for every searched column."""
        if self._columns is None:
            columns = []
            for module in self.supernet_modules():
                label = getattr(module, "label", None)
                if label not in self.costs:
                    raise KeyError(f"no complexity cost for column {label!r}; known: {sorted(self.costs)}")
                costs = torch.tensor([self.costs[label][name] for name in module.names], dtype=torch.float32)
                columns.append((label, module, costs))
            self._columns = columns
        return self._columns

    def arch_parameters(self) -> list[nn.Parameter]:
        """The α of every column, in network order (NNI's DARTS returns them in ``set`` order,
        which changes between processes and would scramble a resumed Adam state)."""
        return [arch_alpha(m) for _, m, _ in self.mixed_columns()]

    def column_probs(self) -> list[torch.Tensor]:
        """softmax(α / τ) of each column (what the super-network mixes with), differentiable w.r.t. α."""
        return [getattr(softmax_module(m), "probs", partial(mixed_softmax, m))(arch_alpha(m))  # soft, not a sample
                for _, m, _ in self.mixed_columns()]

    @property
    def temperature(self) -> float:
        """The softmax temperature τ the columns use now."""
        softmax = softmax_module(self.mixed_columns()[0][1]) if self.mixed_columns() else None
        return float(getattr(softmax, "tau", 1.0))

    def set_temperature(self, step: int) -> float:
        """Set τ for ``step`` (0-based) of the schedule on every column; return it."""
        tau = temperature_at(step, self.max_steps or 1, self.anneal_fraction, self.temperature_min)
        for _, m, _ in self.mixed_columns():
            if isinstance(softmax_module(m), PathSampler):
                softmax_module(m).tau = tau
        return tau

    def logit_probs(self) -> dict[str, dict[str, float]]:
        """softmax(α) at temperature 1 per column label and candidate: how far the logits themselves
        have decided, whatever τ the mixture uses (a host sync)."""
        with torch.no_grad():
            return {label: dict(zip(m.names, torch.softmax(arch_alpha(m).detach().float(), -1).tolist()))
                    for label, m, _ in self.mixed_columns()}

    def parallel_probs(self) -> dict[str, float]:
        """P(parallel) per column label at temperature 1 (a host sync: for logging only)."""
        return {label: p[CANDIDATES[0]] for label, p in self.logit_probs().items()}

    def regularizers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_Arch, L_Comp) from the current α."""
        probs = self.column_probs()
        costs = [c for _, _, c in self.mixed_columns()]
        return arch_entropy_loss(probs, self.log_base), complexity_loss(probs, costs)

    # -- one bilevel step --------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        arc_optim = self.architecture_optimizers()
        alphas = self.arch_parameters()
        record: StepRecord = {}

        tau = self.set_temperature(self.search_step)  # a function of the step: a resumed search agrees
        if self.search_step >= self.warmup_steps and self.strategy not in ALPHA_FREE:
            alpha_steps = (self.max_steps or self.search_step + 1) - self.warmup_steps
            lambda_arch = lambda_arch_at(self.lambda_arch, self.lambda_arch_schedule,
                                         self.search_step - self.warmup_steps, alpha_steps)
            arc_optim.zero_grad()
            if self.arch_eval_mode:
                self.training_module.eval()
            loss_res = self.training_module.training_step(batch["val"], 2 * batch_idx)
            if self.arch_eval_mode:
                self.training_module.train()
            loss_arch, loss_comp = self.regularizers()
            loss = loss_res + lambda_arch * loss_arch + self.lambda_comp * loss_comp
            # Only α's gradients are needed here: skipping the weights' saves a large part of backward.
            arch_backward(self, loss, alphas)  # averaged over the ranks under DDP (.distributed)
            arc_optim.step()
            record.update(arch_loss_res=loss_res.detach(), loss_arch=loss_arch.detach(),
                          loss_comp=loss_comp.detach(), lambda_arch=torch.tensor(lambda_arch))
        record["temperature"] = torch.tensor(tau)

        # Weight step on L_Res only, with α frozen so no α gradient is computed.
        for a in alphas:
            a.requires_grad_(False)
        try:
            if self.strategy == "fair":  # every candidate of every column once, the gradients summed
                sampler = softmax_module(self.mixed_columns()[0][1])
                passes = len(self.mixed_columns()[0][1].names)
                loss_w = 0.0
                for k in range(passes):
                    sampler.fair_pass(k)
                    loss_w = loss_w + self.training_module.training_step(batch["train"], 2 * batch_idx + 1)
                sampler.fair_pass(None)
                shown = loss_w.detach() / passes  # the mean path's loss, like the other strategies'
            else:
                loss_w = self.training_module.training_step(batch["train"], 2 * batch_idx + 1)
                shown = loss_w.detach()
            self.advance_optimization(loss_w, batch_idx, self.gradient_clip_val)
        finally:
            for a in alphas:
                a.requires_grad_(True)
        self.advance_lr_schedulers(batch_idx)
        record["loss_res"] = shown
        self.last_record = record
        self.search_step += 1
        if self.max_steps is not None and self.search_step >= self.max_steps:
            self.trainer.should_stop = True
        return loss_w

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["clearer_search_step"] = self.search_step

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.search_step = int(checkpoint.get("clearer_search_step", 0))


class ClearerDARTS(DARTS):
    """NNI's ``DARTS`` strategy with CLEARER's regularised architecture loss.

    Parameters
    ----------
    costs
        Normalised cost per column label and candidate (:func:`~clearer_nni.nas.regularizers.candidate_costs`
        then :func:`~clearer_nni.nas.regularizers.normalise_costs`).
    lambda_arch, lambda_comp
        λ1 (L_Arch) and λ2 (L_Comp); defaults are the paper's comparison setting.
    warmup_steps
        Steps that train weights only (paper: 1,000 of 10,000).
    max_steps
        Stop after this many bilevel steps.
    log_base, arch_eval_mode
        See :class:`ClearerDartsModule`.
    arc_learning_rate, gradient_clip_val
        α's Adam learning rate (betas (0.5, 0.999), weight decay 1e-3, from NNI's DARTS); the weights'
        gradient-norm clip.
    anneal_fraction, temperature_min, lambda_arch_schedule, strategy
        See :class:`ClearerDartsModule` (defaults: the paper's recipe).
    """

    def __init__(self, *, costs: Mapping[str, Mapping[str, float]], lambda_arch: float = 0.01,
                 lambda_comp: float = 0.0, warmup_steps: int = 0, max_steps: int | None = None,
                 log_base: str = "e", arch_eval_mode: bool = False, arc_learning_rate: float = 3e-4,
                 gradient_clip_val: float | None = 5.0, anneal_fraction: float = 0.0, temperature_min: float = 1.0,
                 lambda_arch_schedule: str = "constant", strategy: str = "darts", **kwargs: Any) -> None:
        # single-path columns run only their sampled candidate (the hook comes before NNI's defaults)
        kwargs["mutation_hooks"] = [SinglePathMixedLayer.mutate, *kwargs.get("mutation_hooks", [])]
        super().__init__(arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val,
                         log_prob_every_n_step=10 ** 9, warmup_epochs=0, **kwargs)
        self.module_kwargs = dict(costs=costs, lambda_arch=lambda_arch, lambda_comp=lambda_comp,
                                  warmup_steps=warmup_steps, log_base=log_base, arch_eval_mode=arch_eval_mode,
                                  arc_learning_rate=arc_learning_rate, gradient_clip_val=gradient_clip_val,
                                  max_steps=max_steps, anneal_fraction=anneal_fraction,
                                  temperature_min=temperature_min, lambda_arch_schedule=lambda_arch_schedule,
                                  strategy=strategy)
        self._softmax = PathSampler(strategy)

    def configure_softmax(self) -> nn.Module:
        """One τ-softmax shared by every column (NNI asks once per mixed layer)."""
        return self._softmax

    def configure_oneshot_module(self, training_module: Any) -> ClearerDartsModule:
        return ClearerDartsModule(training_module, **self.module_kwargs)
