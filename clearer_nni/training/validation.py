"""Validation during training: the PSNR of fixed validation batches every N steps, and the best state.

The batches never change during a run (seeded patches, or whole images center-cropped to a multiple
of :data:`VAL_CROP`), so every row of a run, and every run with the same seed, is scored on the same data.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.nn as nn

from ..tensorboard import log_scalars

__all__ = ["VAL_CROP", "Validator", "validation_batches"]

#: Whole validation images are center-cropped to a multiple of this (as the paper protocol does).
VAL_CROP = 64


class Validator(pl.Callback):
    """Every ``every`` steps (and at the last): mean training loss since the last row, lr, validation PSNR.

    Keeps the best network state (by validation PSNR) in memory, on CPU. Runs on global rank 0 only.
    """

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], every: int, total_steps: int,
                 on_val: Callable[[dict[str, float]], None] | None = None) -> None:
        super().__init__()
        self.batches, self.every, self.total_steps, self.on_val = batches, every, total_steps, on_val
        self.rows: list[dict[str, float]] = []
        self.best_psnr, self.best_step = -math.inf, 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self._loss_sum: torch.Tensor | None = None
        self._loss_n = 0
        self._start = time.time()

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._start = time.time()

    def evaluate(self, network: nn.Module, device: torch.device) -> float:
        """Mean PSNR (dB) over the validation batches (eval-mode BatchNorm, full precision)."""
        from ..metrics import mean_psnr

        return mean_psnr(network, self.batches, device)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss = loss.detach().float()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_n += 1
        step = trainer.global_step
        if step % self.every and step < self.total_steps:
            return
        if not trainer.is_global_zero:
            self._loss_sum, self._loss_n = None, 0
            return
        val_psnr = self.evaluate(pl_module.model, pl_module.device)
        row = {"step": step, "loss": float(self._loss_sum) / self._loss_n,
               "lr": trainer.optimizers[0].param_groups[0]["lr"], "val_psnr": val_psnr,
               "seconds": round(time.time() - self._start, 2)}
        self._loss_sum, self._loss_n = None, 0
        # the first row always counts (even NaN after a divergence); later a NaN never wins
        if self.best_state is None or val_psnr > self.best_psnr or (math.isnan(self.best_psnr) and not math.isnan(val_psnr)):
            self.best_psnr, self.best_step = val_psnr, step
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.model.state_dict().items()}
        self.rows.append(row)
        log_scalars(trainer, row)  # TensorBoard
        pl_module.log_dict({"loss": row["loss"], "val_psnr": val_psnr}, prog_bar=True, logger=False,
                           rank_zero_only=True)
        if self.on_val is not None:
            self.on_val(row)


def validation_batches(val_set: Any, cfg: Any, degradation: Any) -> tuple[list, str]:
    """Fixed validation batches and their description: seeded patches, or the whole (center-cropped) images."""
    from ..data import CorrelatedNoise, GaussianNoise, PatchDataset, eval_pairs, fixed_batches, protocol_noisy

    if cfg.val_images == 0:
        patches = PatchDataset(val_set, cfg.patch_size, None if val_set.paired else degradation,
                               length=cfg.val_patches, seed=cfg.seed + 2, augment=False)
        return fixed_batches(patches, cfg.batch_size), f"{cfg.val_patches} fixed {cfg.patch_size}x{cfg.patch_size} patches"
    if val_set.paired:
        pairs = eval_pairs(val_set, None, crop_multiple=VAL_CROP)
    elif isinstance(degradation, CorrelatedNoise) or (isinstance(degradation, GaussianNoise)
                                                      and not isinstance(degradation.sigma, tuple)):
        # the evaluation protocols' noise: seed 0 per image (float, or uint8-clipped like the search's)
        pairs = eval_pairs(val_set, protocol_noisy(degradation), crop_multiple=VAL_CROP)
    else:
        pairs = eval_pairs(val_set, degradation, seed=cfg.seed, crop_multiple=VAL_CROP)

    def tensor(a: Any) -> torch.Tensor:
        return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]

    return [(tensor(x), tensor(y)) for x, y, _ in pairs], f"{len(pairs)} whole images center-cropped to x{VAL_CROP}"
