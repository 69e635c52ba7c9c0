"""Every use of a private NNI or Lightning internal, in one place, for the pinned versions.

NNI 3.0 is final (archived) and Lightning is pinned, so these are stable; ``tests/test_compat.py``
fails loudly when an installed version differs from :data:`PINNED` or an internal moved.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["PINNED", "version_mismatches", "arch_alpha", "mixed_softmax", "softmax_module", "set_trial_record",
           "set_optimizer_steps"]

#: The versions these internals were read from.
PINNED = {"nni": "3.0", "pytorch_lightning": "2.6.6"}


def version_mismatches() -> dict[str, tuple[str, str]]:
    """Package → (pinned, installed) for every package whose installed version is not the pinned one."""
    import nni
    import pytorch_lightning

    installed = {"nni": nni.__version__, "pytorch_lightning": pytorch_lightning.__version__}
    return {k: (v, installed[k]) for k, v in PINNED.items() if installed[k] != v}


def arch_alpha(mixed: Any) -> torch.nn.Parameter:
    """The architecture weights α of an NNI DARTS mixed layer (``DifferentiableMixedLayer``)."""
    return mixed._arch_alpha


def mixed_softmax(mixed: Any, alpha: torch.Tensor) -> torch.Tensor:
    """The mixed layer's own softmax of ``alpha`` (differentiable)."""
    return mixed._softmax(alpha)


def softmax_module(mixed: Any) -> torch.nn.Module:
    """The softmax module a mixed layer mixes its candidates with (the strategy's ``configure_softmax``)."""
    return mixed._softmax


def set_trial_record(record: Any) -> None:
    """Make ``nni.get_current_parameter()`` answer with ``record`` (a parameter record received by hand)."""
    import nni.trial

    nni.trial._params = record


def set_optimizer_steps(trainer: Any, step: int) -> None:
    """Set a Lightning trainer's count of optimizer steps (``global_step``; resumed runs then count
    ``max_steps`` from there)."""
    progress = trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress.optimizer.step.total
    progress.ready = progress.completed = step
