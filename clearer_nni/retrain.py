"""``clearer-nni retrain`` (``python -m clearer_nni.retrain``): train a searched architecture from scratch (SPEC section 4).

``Genotype.build()`` is trained by :class:`~clearer_nni.models.RestorationModule` (MSE) under Lightning:
Adam, lr 0.01 → 0 cosine, 100,000 steps, batch 32 of 64x64 patches, gradient clip 5 by default. Every
``val_every`` steps the network is scored on the *validation* split (fixed patches, or whole images);
the best state is kept in memory and saved at the end as ``model.ckpt`` (see
:mod:`clearer_nni.training.checkpoint`) with ``metrics.csv`` and ``curve.png``. The test split is never used.

Every ``--checkpoint-every`` steps the whole training state is saved (atomically) into the hidden
staging folder ``.<out>.partial/checkpoints/``; Ctrl-C saves a final one (exit 130), a loss that becomes
NaN or infinite stops the run naming the step and keeps the last good one, and ``--resume`` continues
from the newest complete one, to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
import torch.nn as nn

from .compat import set_optimizer_steps
from .config import RetrainConfig, add_options, resolve_retrain
from .runtime import atomic_savefig
from .training.state import RETRAIN_STATE, TrainingState, nonfinite_error
from .training.validation import Validator

__all__ = ["RetrainConfig", "RetrainResult", "dataset_spec", "run_retrain", "main"]


@dataclass
class RetrainResult:
    """What a retraining produced (the network holds the best validation state, on CPU)."""

    out: Path
    checkpoint: Path
    network: nn.Module
    genotype: Any
    best_val_psnr: float
    best_step: int
    final_val_psnr: float
    seconds: float
    metadata: dict[str, Any]
    rows: list[dict[str, float]] = field(default_factory=list)


# -- inputs ------------------------------------------------------------------------------------

def dataset_spec(name: str) -> str:
    """The ``load_dataset`` spec of a recorded :attr:`ImageSet.name`: ``bsds500/train`` → ``bsds500``,
    ``folder:/x`` → ``/x``, ``paired:/x`` unchanged."""
    if name.startswith("folder:"):
        return name[len("folder:"):]
    if name.startswith("paired:"):
        return name
    return name.split("/", 1)[0]


def _resolve_supernet(value: str | None, genotype_path: Path) -> Path | None:
    if value is None:
        return None
    if value == "auto":  # the flag without a value: the search's own super-network
        path = genotype_path.parent / "supernet.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--init-from-supernet: no supernet.pt next to the genotype ({path}); "
                                    "give its path, or search without --no-supernet")
        return path
    return Path(value)


# -- resumable state ----------------------------------------------------------------------------

class _RetrainState(TrainingState):
    """The retraining's :class:`~clearer_nni.resume.TrainingState`: Lightning's global step, the validator's
    rows, best-so-far state and running loss; stops at a NaN or infinite loss (checked without a sync
    per step: the first bad step is kept on the device and read at each checkpoint and at the end)."""

    def __init__(self, folder: Path, cfg: RetrainConfig, choices: dict[str, str], validator: Validator,
                 state: dict[str, Any] | None, start: float, save: bool) -> None:
        super().__init__(folder, RETRAIN_STATE, dataclasses.asdict(cfg), cfg.checkpoint_every, cfg.steps, state,
                         start, save=save)
        self.choices, self.validator = choices, validator
        self._first_bad: torch.Tensor | None = None

    def set_step(self, trainer: pl.Trainer, pl_module: Any, step: int) -> None:
        set_optimizer_steps(trainer, step)  # max_steps then counts the remaining ones

    def extra(self, trainer: pl.Trainer, pl_module: Any) -> dict[str, Any]:
        v = self.validator
        return {"choices": dict(self.choices), "rows": list(v.rows), "best_psnr": v.best_psnr, "best_step": v.best_step,
                "best_state": v.best_state, "loss_n": v._loss_n,
                "loss_sum": None if v._loss_sum is None else float(v._loss_sum),
                "val_seconds": time.time() - v._start}

    def restore_extra(self, trainer: pl.Trainer, pl_module: Any, state: dict[str, Any]) -> None:
        v = self.validator
        v.rows, v.best_psnr, v.best_step, v.best_state = list(state["rows"]), state["best_psnr"], \
            state["best_step"], state["best_state"]
        v._loss_n = state["loss_n"]
        v._loss_sum = None if state["loss_sum"] is None else torch.tensor(state["loss_sum"], device=pl_module.device)
        v._start = time.time() - state["val_seconds"]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = (outputs["loss"] if isinstance(outputs, dict) else outputs).detach()
        step = torch.tensor(trainer.global_step, device=loss.device)
        bad = ~torch.isfinite(loss)
        self._first_bad = torch.where(bad, step, torch.full_like(step, -1)) if self._first_bad is None else \
            torch.where((self._first_bad < 0) & bad, step, self._first_bad)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step >= self.total_steps:
            self.check_finite(trainer, pl_module)  # never publish a diverged network

    def check_finite(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self._first_bad is not None and (first := int(self._first_bad)) >= 0:
            raise nonfinite_error(first, "lower --lr (or set --grad-clip)")


# -- outputs ------------------------------------------------------------------------------------

def _metrics_csv(rows: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "loss", "lr", "val_psnr", "seconds"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _plot_curve(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot(steps, [r["loss"] for r in rows], color="C0", marker="." if len(rows) < 30 else None)
    ax.set(xlabel="step", ylabel="training MSE (mean since previous point)", yscale="log", title="loss")
    ax2.plot(steps, [r["val_psnr"] for r in rows], color="k", marker="." if len(rows) < 30 else None)
    ax2.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


# -- the run ------------------------------------------------------------------------------------

def run_retrain(cfg: RetrainConfig, on_val: Callable[[dict[str, float]], None] | None = None) -> RetrainResult:
    """Retrain ``cfg.genotype`` from scratch; write ``model.ckpt``, ``metrics.csv`` and ``curve.png`` into ``cfg.out``.

    Parameters
    ----------
    cfg
        The settings, run as they are (:func:`~clearer_nni.config.resolve_retrain` makes them from a
        recipe and flags). With ``cfg.resume`` the newest complete checkpoint in the staging folder
        (``.<out>.partial/checkpoints/``) is continued; it must have been saved with the same settings
        (but output, device, workers, threads and progress).
    on_val
        Called with each validation row (step, loss, lr, val_psnr, seconds), e.g. to report
        intermediate results to NNI.

    Notes
    -----
    With ``devices > 1`` Lightning's DDP re-launches the running command once per extra device; only
    global rank 0 validates and writes, the others return a result without files or metadata.
    """
    from torch.utils.data import Subset

    from .data import degradation_for, load_dataset, make_loader
    from .data.patches import PatchDataset
    from .models.fastpath import apply_fast_path, check_precision
    from .models.restoration import OptimConfig, RestorationModule
    from .nas.genotype import Genotype
    from .runtime import lightning_accelerator, set_threads
    from .tensorboard import tensorboard_logger
    from .training.checkpoint import init_from_supernet
    from .training.fit import fit_network
    from .training.ranks import is_primary_process
    from .training.run import RunFolder
    from .training.validation import validation_batches

    cfg.validate()
    set_threads(cfg.threads)
    accelerator = lightning_accelerator(cfg.device)
    check_precision(cfg.precision, accelerator)
    genotype_path = Path(cfg.genotype)
    genotype = Genotype.load(genotype_path)
    run = RunFolder(cfg, RETRAIN_STATE, "retraining", "clearer-nni retrain", primary=is_primary_process())
    state = run.state
    if state is not None and dict(state["choices"]) != dict(genotype.choices):
        raise ValueError(f"{genotype_path}: the genotype is not the one the interrupted retraining trained "
                         f"(its choices changed since the checkpoint); restore it, or start afresh without --resume")
    supernet = _resolve_supernet(cfg.init_from_supernet, genotype_path)

    # Data first: every bad input fails before training.
    gm = genotype.metadata
    data_spec = cfg.data or (dataset_spec(gm["train_data"]) if isinstance(gm.get("train_data"), str) else "skimage")
    val_spec = cfg.val_data or data_spec
    channels = genotype.space.in_channels
    train_set = load_dataset(data_spec, "train", channels=channels, root=cfg.data_root)
    val_set = load_dataset(val_spec, "val", channels=channels, root=cfg.data_root, max_images=cfg.val_images or None)
    shared = set(train_set.paths) & set(val_set.paths)
    if shared:
        raise ValueError(f"validation data {val_set.name!r} shares {len(shared)} image(s) with the training data "
                         f"{train_set.name!r} (e.g. {min(shared)}): model selection needs disjoint images (pass "
                         "--val-data, or use a dataset with train/val splits)")
    degradation = degradation_for(cfg.degradation, cfg.sigma, cfg.noise_clip, gm.get("degradation"),
                                  cfg.correlation_length)
    val_batches, val_desc = validation_batches(val_set, cfg, degradation)

    pl.seed_everything(cfg.seed, verbose=False)
    network = genotype.build()
    copied = init_from_supernet(network, genotype, supernet) if supernet is not None else 0
    n = cfg.steps * cfg.batch_size
    train_data: Any = PatchDataset(train_set, cfg.patch_size, None if train_set.paired else degradation,
                                   length=n, seed=cfg.seed)
    if state is not None:
        # Patch i is a pure function of (seed, epoch 0, i): a resumed retraining skips the patches already used.
        train_data = Subset(train_data, range(int(state["step"]) * cfg.batch_size, n))
    loader = make_loader(train_data, cfg.batch_size // cfg.devices, num_workers=cfg.workers,
                         pin_memory=accelerator == "gpu")
    module = RestorationModule(OptimConfig("adam", cfg.lr, 0.0, 0.9, 0.0), cfg.steps)
    module.set_model(apply_fast_path(network, channels_last=cfg.channels_last, compile=cfg.compile))
    validator = Validator(val_batches, cfg.val_every, cfg.steps, on_val=on_val)

    staging = run.open()
    start = time.time() - (state["seconds"] if state else 0.0)
    saver = _RetrainState(staging / "checkpoints", cfg, dict(genotype.choices), validator, state, start,
                          save=run.primary)
    with run.guard(saver):
        # the validator first: a checkpoint then holds the row of its step
        trainer = fit_network(cfg, accelerator, module, loader, [validator, saver],
                              logger=tensorboard_logger(staging, "retrain") if run.primary else False)
        seconds = time.time() - start
        if trainer.global_step < cfg.steps:
            raise RuntimeError(f"training stopped early at step {trainer.global_step} of {cfg.steps}")
        network = network.to("cpu")
        if not trainer.is_global_zero:
            return RetrainResult(run.out, run.out / "model.ckpt", network, genotype, math.nan, 0, math.nan, seconds, {})
        network.load_state_dict(validator.best_state)
        network.eval()
        metadata = _metadata(cfg, genotype_path, gm, train_set, val_set, val_desc, degradation, validator, supernet,
                             copied, accelerator, seconds, network)
        metadata["world_size"] = trainer.world_size
        _write_outputs(staging, network, genotype, metadata, validator.rows,
                       f"retrain {genotype_path} on {train_set.name}, validated on {val_set.name} ({val_desc})")
        run.publish()
    return RetrainResult(run.out, run.out / "model.ckpt", network, genotype, validator.best_psnr, validator.best_step,
                         validator.rows[-1]["val_psnr"], seconds, metadata, validator.rows)


def _metadata(cfg: RetrainConfig, genotype_path: Path, gm: dict[str, Any], train_set: Any, val_set: Any,
              val_desc: str, degradation: Any, validator: Validator, supernet: Path | None, copied: int,
              accelerator: str, seconds: float, network: nn.Module) -> dict[str, Any]:
    """What ``model.ckpt`` records about how it was made."""
    from .archs.space import count_parameters
    from .runtime import software_versions

    metadata = {
        "kind": "retrain", "genotype_file": str(genotype_path.resolve()),
        "search": {"train_data": gm.get("train_data"), "val_data": gm.get("val_data"),
                   "degradation": gm.get("degradation")},
        "train_data": train_set.name, "val_data": val_set.name,
        "val_set_also_used_by_search": val_set.name in (gm.get("train_data"), gm.get("val_data")),
        "validation": val_desc, "degradation": degradation.describe(),
        "steps": cfg.steps, "batch_size": cfg.batch_size, "patch_size": cfg.patch_size,
        "optimizer": {"name": "adam", "lr": cfg.lr, "lr_min": 0.0, "schedule": "cosine"},
        "grad_clip": cfg.grad_clip, "seed": cfg.seed, "val_every": cfg.val_every, "recipe": cfg.recipe,
        "best_val_psnr": validator.best_psnr, "best_step": validator.best_step,
        "final_val_psnr": validator.rows[-1]["val_psnr"],
        "init_from_supernet": str(supernet.resolve()) if supernet is not None else None,
        "params": count_parameters(network), "seconds": round(seconds, 2),
        "device": accelerator, "devices": cfg.devices, "precision": cfg.precision,
        "channels_last": cfg.channels_last, "compile": cfg.compile, "software": software_versions(),
    }
    if copied:
        metadata["init_tensors_copied"] = copied
    return metadata


def _write_outputs(staging: Path, network: nn.Module, genotype: Any, metadata: dict[str, Any],
                   rows: list[dict[str, float]], title: str) -> None:
    """``model.ckpt``, ``metrics.csv`` and ``curve.png`` into the staging folder."""
    from .runtime import atomic_write_text
    from .training.checkpoint import save_checkpoint

    save_checkpoint(staging / "model.ckpt", network, genotype, metadata)
    atomic_write_text(staging / "metrics.csv", _metrics_csv(rows))
    _plot_curve(rows, staging / "curve.png", title)


# -- command line ----------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clearer-nni retrain", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_options(p, RetrainConfig)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    def _run() -> int:
        r = run_retrain(resolve_retrain(vars(_parser().parse_args(argv))))
        if not r.metadata:  # a DDP worker rank: rank 0 reports
            return 0
        m = r.metadata
        print(f"\nretrained {r.genotype.counts()['fusion']} fusion / {r.genotype.counts()['parallel']} parallel "
              f"columns, {m['params'] / 1e6:.3f} M parameters, {m['steps']} steps on {m['train_data']} "
              f"({m['device']}, {r.seconds:.1f} s)")
        print(f"best validation PSNR {r.best_val_psnr:.2f} dB at step {r.best_step} (final {r.final_val_psnr:.2f} dB; "
              f"{m['val_data']}, {m['validation']})")
        if m["val_set_also_used_by_search"]:
            print(f"note: the model was selected on {m['val_data']}, which its search also used (as in the paper); "
                  "scores on it are not held out")
        print(f"wrote {r.checkpoint}, {r.out / 'metrics.csv'}, {r.out / 'curve.png'}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
