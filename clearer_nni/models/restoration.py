"""The Lightning module that trains a restoration network with MSE (L_Res, paper Eq. 3).

The same module trains the super-network's weights during search (wrapped by NNI's one-shot module)
and the derived network during retraining; only the optimiser settings differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from nni.nas.evaluator.pytorch import LightningModule

from ..metrics import batch_psnr

__all__ = ["OptimConfig", "RestorationModule", "SEARCH_WEIGHTS", "RETRAIN"]


@dataclass
class OptimConfig:
    """Optimiser and cosine schedule (stepped once per training step).

    Parameters
    ----------
    name
        ``sgd`` or ``adam``.
    lr, lr_min
        Cosine annealing from ``lr`` to ``lr_min`` over the run's steps.
    """

    name: str = "sgd"
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.name!r}")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")


#: Search, weights (SPEC section 3): SGD momentum 0.9, weight decay 3e-4, lr 0.025 → 0.001 cosine.
SEARCH_WEIGHTS = OptimConfig("sgd", 0.025, 0.001, 0.9, 3e-4)
#: Retraining (SPEC section 4): Adam, lr 0.01 → 0 cosine.
RETRAIN = OptimConfig("adam", 0.01, 0.0, 0.9, 0.0)


class RestorationModule(LightningModule):
    """Trains ``self.model`` to map a degraded batch to its clean batch with MSE.

    Parameters
    ----------
    optim
        Optimiser settings.
    total_steps
        Length of the cosine schedule, in training steps.
    """

    def __init__(self, optim: OptimConfig | dict[str, Any] | None = None, total_steps: int = 1000) -> None:
        super().__init__()
        self.optim = OptimConfig(**optim) if isinstance(optim, dict) else (optim or OptimConfig())
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.total_steps = int(total_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        degraded, clean = batch
        return F.mse_loss(self(degraded), clean)

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        degraded, clean = batch
        psnr = batch_psnr(self(degraded), clean)
        self.log("val_psnr", psnr, prog_bar=True, batch_size=len(clean))
        return psnr

    def configure_optimizers(self) -> Any:
        o = self.optim
        params = self.model.parameters()
        if o.name == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum,
                                                         weight_decay=o.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.total_steps, eta_min=o.lr_min)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def hparams_dict(self) -> dict[str, Any]:
        return {**asdict(self.optim), "total_steps": self.total_steps}
