"""Watching a search: every N steps, the losses, each column's P(parallel) and validation PSNR.

Rows go to a CSV (appended as the search runs, so it can be watched), to the trainer's loggers
(TensorBoard scalars, :mod:`clearer_nni.tensorboard`) and to an optional callback (e.g. NNI
intermediate results); at the end, a PNG of the α trajectories.
"""

from __future__ import annotations

import csv
import math
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytorch_lightning as pl
import torch

from ..archs.space import CANDIDATES
from ..compat import arch_alpha
from ..metrics import mean_psnr
from ..runtime import atomic_savefig, disk_full_error
from ..tensorboard import log_scalars
from .distributed import alpha_rank_spread, world_size

__all__ = ["SearchLogger", "batch_norms", "estimate_bn", "kept_bn_stats", "pinned_alpha", "recalibrated_bn"]

Batch = tuple[torch.Tensor, torch.Tensor]


@contextmanager
def pinned_alpha(oneshot: Any, pins: Mapping[str, str] | None = None) -> Iterator[None]:
    """Temporarily make the softmax(α) of the columns in ``pins`` (label → candidate name) one-hot at
    that candidate; ``None`` pins every column at its argmax (the derived network). Weights are the
    super-network's (inherited)."""
    saved = []
    with torch.no_grad():
        for label, m, _ in oneshot.mixed_columns():
            a = arch_alpha(m)
            saved.append(a.detach().clone())
            if pins is not None and label not in pins:
                continue
            hard = torch.full_like(a, -1e4)
            hard[int(a.argmax()) if pins is None else list(m.names).index(pins[label])] = 0.0
            a.copy_(hard)
    try:
        yield
    finally:
        with torch.no_grad():
            for (_, m, _), a in zip(oneshot.mixed_columns(), saved):
                arch_alpha(m).copy_(a)


def batch_norms(net: torch.nn.Module) -> list[torch.nn.Module]:
    """``net``'s BatchNorm layers."""
    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@contextmanager
def kept_bn_stats(net: torch.nn.Module) -> Iterator[list[torch.nn.Module]]:
    """Yield ``net``'s BatchNorm layers; put their running statistics (and momentum) back at the end."""
    bns = batch_norms(net)
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in bns]
    try:
        yield bns
    finally:
        for m, (momentum, mean, var, count) in zip(bns, saved):
            m.momentum = momentum
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)


def estimate_bn(bns: list[torch.nn.Module], run: Callable[[], Any]) -> Any:
    """Re-estimate the BatchNorm layers ``bns``' running statistics on what ``run()`` feeds them (cumulative
    average over its batches, no gradient); return what it returns, the layers left in eval mode."""
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
        m.train()
    with torch.no_grad():
        out = run()
    for m in bns:
        m.eval()
    return out


@contextmanager
def recalibrated_bn(net: torch.nn.Module, batches: list[Batch], device: Any) -> Iterator[None]:
    """Temporarily re-estimate every BatchNorm's running statistics on ``batches`` (cumulative
    average, no gradient), then put the original statistics back."""
    with kept_bn_stats(net) as bns:
        if batches and bns:
            def run() -> None:
                for degraded, _ in batches:
                    net(degraded.to(device))

            estimate_bn(bns, run)
        yield


class SearchLogger(pl.Callback):
    """Lightning callback logging a :class:`~clearer_nni.nas.ClearerDartsModule` search.

    Parameters
    ----------
    path
        CSV file to write.
    monitor
        Fixed validation batches for PSNR.
    every
        Log every this many steps (and at the last one).
    total_steps
        The search's length (to log its last step).
    on_log
        Called with each row.
    rows
        Rows already logged (a resumed search).
    calibration
        Training batches on which the derived network's BatchNorm statistics are re-estimated.
    primary
        False on the other ranks of a DDP search: they log (every rank takes part in the α check,
        ``alpha_rank_diff``) but neither write nor call ``on_log``.
    """

    def __init__(self, path: str | Path, monitor: list[Batch], every: int = 50, total_steps: int | None = None,
                 on_log: Callable[[dict[str, float]], None] | None = None,
                 rows: list[dict[str, float]] | None = None, calibration: list[Batch] | None = None,
                 primary: bool = True) -> None:
        super().__init__()
        self.primary = primary
        self.path, self.monitor, self.every = Path(path), monitor, every
        self.calibration = calibration or []
        self.total_steps, self.on_log = total_steps, on_log
        self.rows: list[dict[str, float]] = []
        self._start = time.time()
        self._fields: list[str] | None = None
        if rows:  # resumed: rewrite the log as of the checkpoint (later rows are redone)
            if primary:
                self.path.unlink(missing_ok=True)
            self._start -= rows[-1]["seconds"]
            for row in rows:
                self._write(row)
                self.rows.append(row)

    @torch.no_grad()
    def evaluate(self, oneshot: Any, derived: bool = False, pins: Mapping[str, str] | None = None) -> float:
        """Mean PSNR (dB) of the super-network (or the derived one) on the monitor batches.

        The derived network keeps the super-network's weights, but its BatchNorm statistics are
        re-estimated on the ``calibration`` batches first: the running statistics were gathered
        under the α-mixture, and the one-hot path feeds every layer differently. ``pins`` (label →
        candidate) evaluates the super-network with those columns one-hot, BatchNorm re-estimated too.
        """
        fixed = derived or pins is not None
        with pinned_alpha(oneshot, None if derived else pins) if fixed else nullcontext(), \
                recalibrated_bn(oneshot.training_module, self.calibration, oneshot.device) if fixed else nullcontext():
            return mean_psnr(oneshot.training_module, self.monitor, oneshot.device)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = pl_module.search_step
        last = self.total_steps is not None and step >= self.total_steps
        if step % self.every and not last and step != 1:
            return
        rec = pl_module.last_record
        row: dict[str, float] = {"step": step, "seconds": round(time.time() - self._start, 2),
                                 "warmup": int(step <= pl_module.warmup_steps)}
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        for key in ("loss_res", "arch_loss_res", "loss_arch", "loss_comp", "temperature"):
            row[key] = float(rec[key]) if key in rec else math.nan
        if "loss_arch" not in rec:  # warm-up: still report the current regularisers
            with torch.no_grad():
                la, lc = pl_module.regularizers()
            row["loss_arch"], row["loss_comp"] = float(la), float(lc)
        row["val_psnr"] = self.evaluate(pl_module)
        for label, p in pl_module.parallel_probs().items():
            row[f"p_parallel/{label}"] = p
        if world_size() > 1:
            row["alpha_rank_diff"] = alpha_rank_spread(pl_module.arch_parameters())
        self._write(row)
        self.rows.append(row)
        log_scalars(trainer, row)
        if self.on_log is not None and self.primary:
            self.on_log(row)

    def _write(self, row: dict[str, float]) -> None:
        if not self.primary:
            return
        new = self._fields is None
        if new:
            self._fields = list(row)
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self._fields)
                if new:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as exc:
            raise disk_full_error(exc, Path(self.path).parent) or exc

    def plot(self, path: str | Path) -> None:
        """PNG of P(parallel) per column over the search, and the validation PSNR."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.rows:
            return
        steps = [r["step"] for r in self.rows]
        labels = [k for k in self.rows[0] if k.startswith("p_parallel/")]
        cells = sorted({k.split("/")[1].split(".")[0] for k in labels})
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        cmap = plt.get_cmap("tab10")
        styles = ["-", "--", ":", "-."]
        for k in labels:
            cell, col = k.split("/")[1].split(".")
            ax.plot(steps, [r[k] for r in self.rows], styles[(int(col[3:]) - 1) % 4],
                    color=cmap(cells.index(cell)), label=k.split("/")[1])
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set(xlabel="search step", ylabel=f"P({CANDIDATES[0]})", ylim=(-0.02, 1.02),
               title="architecture weights (above 0.5: parallel, below: fusion)")
        ax.legend(fontsize=7, ncol=max(1, len(cells)), loc="best")
        ax2.plot(steps, [r["val_psnr"] for r in self.rows], color="k")
        ax2.set(xlabel="search step", ylabel="PSNR (dB)", title="super-network, validation patches")
        fig.tight_layout()
        atomic_savefig(fig, path, dpi=110)
        plt.close(fig)
