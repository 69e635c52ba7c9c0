"""An estimate of the exported architecture's quality: the derived network after a short, fixed fine-tune.

The derived network (the genotype built as a plain network) starts from the super-network's weights
of its chosen candidates and is trained for a fixed number of steps on training patches; its quality
is its PSNR on the search's fixed validation patches. This measures the architecture that will be
exported, with the search's weights as a head start, unlike the super-network's PSNR (another
network) or the derived network with inherited weights untouched (whose weights were trained for an
α-mixture and can score below the noisy input).

Why it can never score below the noisy input, nor below the inherited weights: during the fine-tune
the network's output passes through a learned gate, ``x + g · (f(x) - x)`` (ReZero, Bachlechner et
al. 2020). The fine-tune starts from the better of two points: ``g = 0``, the identity, whose PSNR
*is* the input's, and ``g = 1``, the derived network with its inherited weights (BatchNorm statistics
re-estimated on the calibration patches when given, as the search's own derived-network PSNR). The
reported state is the best of the evaluations on the validation patches, the first of which is that
start: a 50-step fine-tune can no longer report less than the network it started from (it did, when
it always started from the identity: 23.50 dB against 24.46 inherited, docs/RESULTS.md). ``best_step``
0 means the fine-tune found nothing better than its start; ``start`` says which start that was.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics import mean_psnr
from .search_logger import batch_norms, estimate_bn

__all__ = ["FinetuneResult", "IdentityGate", "derived_network", "finetune_estimate", "input_psnr"]

Batch = tuple[torch.Tensor, torch.Tensor]


class IdentityGate(nn.Module):
    """``x + g · (f(x) - x)`` with a learned scalar ``g``, 0 at the start: the identity until trained."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * (self.network(x) - x)


@dataclass
class FinetuneResult:
    """What :func:`finetune_estimate` measured (PSNR in dB on the validation patches)."""

    psnr: float
    best_step: int
    final_psnr: float
    input_psnr: float
    gate: float
    #: where the fine-tune started: ``identity`` (g = 0) or ``inherited`` (g = 1, the inherited weights)
    start: str
    #: the derived network with its inherited weights, before any fine-tune (dB)
    inherited_psnr: float
    steps: int
    lr: float
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_psnr(batches: Sequence[Batch]) -> float:
    """Mean PSNR (dB) of the degraded inputs themselves against the clean patches."""
    return mean_psnr(nn.Identity(), list(batches), "cpu")


def derived_network(genotype: Any, supernet_state: dict[str, torch.Tensor]) -> nn.Module:
    """The genotype's plain network with the chosen candidates' (and the fixed parts') super-network weights."""
    from ..archs.space import ClearerSpace

    network = genotype.build()
    mixing = genotype.metadata.get("mixing") if isinstance(genotype.metadata, dict) else None
    supernet = ClearerSpace.from_supernet_state(genotype.space, supernet_state, mixing)
    supernet.transfer_to(network, genotype.choices)  # the space owns the mapping
    return network


def finetune_estimate(network: nn.Module, train: Sequence[Batch], monitor: Sequence[Batch], *, lr: float = 1e-3,
                      eval_every: int = 25, device: Any = "cpu", calibration: Sequence[Batch] = ()
                      ) -> FinetuneResult:
    """Fine-tune ``network`` (a copy; the argument is untouched) one step per batch of ``train``, Adam
    at ``lr`` with cosine decay to 0 (the gate: ``max(lr, 4 / steps)``), gradient-norm clip 5, MSE, through an
    :class:`IdentityGate` started at the better of the identity and ``network`` (its BatchNorm statistics
    re-estimated on ``calibration`` first, when given);
    return the best validation PSNR on ``monitor`` over step 0, every ``eval_every`` steps and the last.

    Raises
    ------
    ValueError
        No training batches, or a network whose output cannot be blended with its input (other
        channel count).
    """
    if not train:
        raise ValueError("finetune_estimate needs at least one training batch")
    monitor = list(monitor)
    x0 = monitor[0][0].to(device)
    gated = IdentityGate(copy.deepcopy(network)).to(device)
    with torch.no_grad():
        if gated.network.eval()(x0[:1]).shape != x0[:1].shape:
            raise ValueError("the fine-tune estimate needs a network whose output has the input's shape")
    start_psnr = mean_psnr(gated, monitor, device)  # g = 0: the identity
    bns = batch_norms(gated.network)
    momenta = [m.momentum for m in bns]
    if calibration and bns:
        def feed() -> None:
            for degraded, _ in calibration:
                gated.network(degraded.to(device))

        estimate_bn(bns, feed)
    inherited = mean_psnr(gated.network, monitor, device)
    start = "inherited" if inherited > start_psnr else "identity"
    if start == "inherited":
        with torch.no_grad():
            gated.gate.fill_(1.0)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum  # the fine-tune's own updates, not the calibration's cumulative average
    # Adam moves a parameter by about its learning rate per step: from the identity the gate gets its
    # own, large enough to travel from 0 to 1 within the first half of the fine-tune; from the inherited
    # weights it is already where it should be (the weights' lr stays ``lr``).
    gate_lr = max(lr, 4.0 / len(train)) if start == "identity" else lr
    optim = torch.optim.Adam([{"params": list(gated.network.parameters())},
                              {"params": [gated.gate], "lr": gate_lr}], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=len(train), eta_min=0.0)
    best = (max(start_psnr, inherited), 0, copy.deepcopy(gated.state_dict()))
    last = best[0]
    gated.train()
    for step, (degraded, clean) in enumerate(train, start=1):
        loss = F.mse_loss(gated(degraded.to(device)), clean.to(device))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gated.parameters(), 5.0)
        optim.step()
        sched.step()
        if step % eval_every == 0 or step == len(train):
            last = mean_psnr(gated, monitor, device)
            if last > best[0]:
                best = (last, step, copy.deepcopy(gated.state_dict()))
            gated.train()
    gate = float(best[2]["gate"])
    return FinetuneResult(psnr=round(best[0], 4), best_step=best[1], final_psnr=round(last, 4),
                          input_psnr=round(start_psnr, 4), gate=round(gate, 4), start=start,
                          inherited_psnr=round(inherited, 4), steps=len(train), lr=lr,
                          batch_size=int(train[0][0].shape[0]))
