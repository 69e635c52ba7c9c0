"""The processes of a DDP run on one machine: which one this is, and its share of every global batch.

Lightning's DDP re-runs the command once per extra device (``LOCAL_RANK`` set in the copies); only
rank 0 prepares, writes and publishes the output. A run's patches are numbered (patch ``i`` is a pure
function of the seed and ``i``), and every rank takes a fixed slice of each global batch
(:func:`rank_indices`), not a shuffled share of the whole run as Lightning's ``DistributedSampler``
would give: the global batches are then those of one process, and a resumed run skips exactly the
patches already used.
"""

from __future__ import annotations

import os

__all__ = ["is_primary_process", "process_rank", "rank_indices"]


def process_rank() -> int:
    """This process's rank among the DDP processes of this machine (0 outside DDP)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_primary_process() -> bool:
    """Whether this process is global rank 0 of a DDP run (or no DDP run)."""
    return process_rank() == 0 and os.environ.get("NODE_RANK", "0") == "0"


def rank_indices(first_step: int, steps: int, batch_size: int, rank: int, world: int) -> list[int]:
    """The patches rank ``rank`` of ``world`` takes at steps ``first_step`` … ``steps - 1``: slice ``rank`` of
    each global batch of ``batch_size`` patches (``batch_size / world`` of them, in order)."""
    if batch_size % world:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of the DDP processes ({world})")
    per = batch_size // world
    return [k * batch_size + rank * per + j for k in range(first_step, steps) for j in range(per)]
