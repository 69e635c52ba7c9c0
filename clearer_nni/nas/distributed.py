"""One search on several devices (Lightning DDP): the architecture step's α gradients, and a check that
every rank holds the same α.

Lightning's DDP all-reduces the weights' gradients in the weight step (``DistributedDataParallel``'s
hooks, with ``find_unused_parameters``: α is frozen there). The architecture step is not DDP's: its
backward computes α's gradients only (``inputs=alphas``), which DDP's reducer cannot finish (it waits for
every weight), so it runs under ``no_sync`` and :func:`arch_backward` averages α's gradients over the
ranks itself, in one ``all_reduce``. With the same initial α (same seed, and DDP's broadcast from rank 0),
the same averaged gradients and the same Adam state, every rank then takes the same α step: NNI's own
one-shot DDP leaves this to chance (microsoft/nni issues 5013 and 5110: a different architecture on each
GPU). :func:`alpha_rank_spread` measures it at every logged step (``alpha_rank_diff`` in
``search_log.csv``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch
import torch.distributed as dist

__all__ = ["world_size", "arch_backward", "alpha_rank_spread"]


def world_size() -> int:
    """Processes of the running DDP group (1 outside one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def arch_backward(oneshot: Any, loss: torch.Tensor, alphas: Sequence[torch.Tensor]) -> None:
    """The architecture step's backward: α's gradients only, averaged over the DDP ranks.

    ``oneshot`` is the one-shot Lightning module (its ``manual_backward`` applies precision scaling).
    """
    ddp = getattr(getattr(oneshot, "trainer", None), "model", None)
    no_sync = ddp.no_sync() if world_size() > 1 and hasattr(ddp, "no_sync") else contextlib.nullcontext()
    with no_sync:
        oneshot.manual_backward(loss, inputs=list(alphas))
    if world_size() > 1:
        grads = [a.grad if a.grad is not None else torch.zeros_like(a) for a in alphas]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world_size()
        offset = 0
        for a in alphas:
            n = a.numel()
            a.grad = flat[offset:offset + n].view_as(a).clone()
            offset += n


def alpha_rank_spread(alphas: Sequence[torch.Tensor]) -> float:
    """The largest difference between this rank's α and any other rank's (0.0 outside DDP); a collective
    call: every rank must make it at the same step."""
    if world_size() <= 1:
        return 0.0
    mine = torch.cat([a.detach().reshape(-1) for a in alphas]).float()
    gathered = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(gathered, mine)
    return max(float((g - gathered[0]).abs().max()) for g in gathered)
