"""``python -m clearer_nni.retrain``: train a searched architecture from scratch (SPEC section 4).

``Genotype.build()`` is trained by :class:`~clearer_nni.models.RestorationModule` (MSE) under Lightning:
Adam, lr 0.01 → 0 cosine, 100,000 steps, batch 32 of 64x64 patches, gradient clip 5 by default. Every
``val_every`` steps the network is scored on the *validation* split (fixed patches, or whole images);
the best state is kept in memory and saved at the end as ``model.ckpt`` (see
:mod:`clearer_nni.checkpoint`) with ``metrics.csv`` and ``curve.png``. The test split is never used.

Every ``--checkpoint-every`` steps the whole training state is saved (atomically) into the hidden
staging folder ``.<out>.partial/checkpoints/``; Ctrl-C saves a final one (exit 130), a loss that becomes
NaN or infinite stops the run naming the step and keeps the last good one, and ``--resume`` continues
from the newest complete one, to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import csv
import io
import dataclasses
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
import torch.nn as nn

from .models.fastpath import PRECISIONS, check_precision
from .resume import TrainingState, nonfinite_error, resume_settings, stop_and_keep
from .runtime import (THREADS_HELP, atomic_savefig, lightning_accelerator, prepare_out, publish, set_threads,
                      staging_dir)

__all__ = ["RetrainConfig", "RetrainResult", "VAL_CROP", "Validator", "dataset_spec", "fit_network",
           "init_from_supernet", "run_retrain", "supernet_key_map", "validation_batches", "main"]

#: Whole validation images are center-cropped to a multiple of this (as the paper protocol does).
VAL_CROP = 64


@dataclass
class RetrainConfig:
    """Settings of one retraining; defaults are SPEC section 4 (paper and authors' code).

    ``None`` for ``data``, ``degradation``, ``sigma`` or ``noise_clip`` means "as recorded in the genotype
    by its search" (else ``skimage``, ``gaussian``, 50, float noise).
    """

    genotype: str = ""
    out: str = "runs/retrain"
    data: str | None = None
    val_data: str | None = None
    data_root: str | None = None
    degradation: str | None = None
    sigma: float | None = None
    noise_clip: bool | None = None
    steps: int = 100_000
    batch_size: int = 32
    patch_size: int = 64
    lr: float = 0.01
    grad_clip: float = 5.0
    seed: int = 0
    val_every: int = 1000
    val_patches: int = 64
    val_images: int = 0
    workers: int = 0
    threads: int = 0
    device: str = "auto"
    devices: int = 1
    precision: str = "32"
    init_from_supernet: str | None = None
    overwrite: bool = False
    progress: bool = True
    checkpoint_every: int = 1000
    resume: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        checks = [
            (bool(self.genotype), "genotype is required (a genotype.json written by clearer_nni.search)"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.patch_size >= 8, f"patch_size must be >= 8, got {self.patch_size}"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}"),
            (math.isfinite(self.grad_clip) and self.grad_clip >= 0,
             f"grad_clip must be a finite number >= 0 (0: no clipping), got {self.grad_clip}"),
            (self.sigma is None or (math.isfinite(self.sigma) and self.sigma >= 0),
             f"sigma must be a finite number >= 0, got {self.sigma}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.val_every >= 1, f"val_every must be >= 1, got {self.val_every}"),
            (self.val_patches >= 1, f"val_patches must be >= 1, got {self.val_patches}"),
            (self.val_images >= 0, f"val_images must be >= 0 (0: use patches), got {self.val_images}"),
            (self.workers >= 0, f"workers must be >= 0, got {self.workers}"),
            (self.threads >= 0, f"threads must be >= 0 (0: auto), got {self.threads}"),
            (self.device in ("auto", "cpu", "cuda", "gpu"), f"device must be auto, cpu or cuda, got {self.device!r}"),
            (self.devices >= 1, f"devices must be >= 1, got {self.devices}"),
            (self.batch_size % self.devices == 0,
             f"batch_size ({self.batch_size}) is the global batch: it must be a multiple of devices ({self.devices})"),
            (self.precision in PRECISIONS, f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0 (0: never), got {self.checkpoint_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


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


def _degradation(cfg: RetrainConfig, recorded: Any) -> Any:
    """The training degradation: the flags, falling back on the search's recorded one, then Gaussian σ 50."""
    from .data import GaussianNoise, make_degradation

    recorded = recorded if isinstance(recorded, dict) else {}
    kind = cfg.degradation or recorded.get("kind") or "gaussian"
    if kind in ("gaussian", "noise"):
        same = recorded.get("kind") in ("gaussian", "noise")
        sigma = cfg.sigma if cfg.sigma is not None else (recorded.get("sigma", 50.0) if same else 50.0)
        clip = cfg.noise_clip if cfg.noise_clip is not None else (bool(recorded.get("clip")) if same else False)
        return GaussianNoise(tuple(sigma) if isinstance(sigma, list) else sigma, clip=clip)
    if kind == recorded.get("kind"):
        return make_degradation(kind, **{k: v for k, v in recorded.items() if k != "kind"})
    return make_degradation(kind)


def _device(name: str, precision: str) -> str:
    """Lightning's accelerator (``cpu`` or ``gpu``) for ``--device``, refusing a precision it cannot run."""
    accelerator = lightning_accelerator(name)
    check_precision(precision, accelerator)
    return accelerator


def supernet_key_map(network: nn.Module, genotype: Any, supernet_state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Derived-network key → super-network key, for every entry of ``network.state_dict()``.

    A searched column ``cells.I.J`` holds the chosen candidate's module directly in the derived network
    (``cells.0.0.blocks.0.conv1.weight``) and under its candidate name in the super-network
    (``cells.0.0.parallel.blocks.0.conv1.weight``; the ``authors`` mixing nests the fusion module once
    more: ``cells.0.0.fusion.fusion.paths...``). Fixed parts map 1:1; ``_arch_alpha`` is not mapped.

    Raises
    ------
    ValueError
        A derived key has no super-network counterpart of the same shape.
    """
    from .archs.space import column_label

    mapping, missing = {}, []
    for key, value in network.state_dict().items():
        parts = key.split(".")
        if parts[0] == "cells":
            head, rest = ".".join(parts[:3]), ".".join(parts[3:])
            choice = genotype.choices[column_label(int(parts[1]) + 1, int(parts[2]) + 1)]
            candidates = [f"{head}.{choice}.{rest}", f"{head}.{choice}.{choice}.{rest}"]
        else:
            candidates = [key]
        found = next((c for c in candidates if c in supernet_state and supernet_state[c].shape == value.shape), None)
        if found is None:
            missing.append(candidates[0])
        else:
            mapping[key] = found
    if missing:
        raise ValueError(f"{len(missing)} weight(s) of the derived network have no counterpart in the "
                         f"super-network: {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
    return mapping


def init_from_supernet(network: nn.Module, genotype: Any, path: str | Path) -> int:
    """Copy the chosen candidates' weights (and the fixed parts) of a search's ``supernet.pt`` into ``network``.

    Returns
    -------
    int
        The number of tensors copied (all of ``network.state_dict()``).

    Raises
    ------
    CheckpointError
        Missing, foreign or corrupt file, a super-network of another space, or missing weights.
    """
    from .archs.space import SpaceConfig, SpaceFileError
    from .checkpoint import CheckpointError, read_torch_file

    path = Path(path)
    doc = read_torch_file(path, "super-network")
    if doc.get("format") != "clearer-nni-supernet":
        raise CheckpointError(f"{path}: not a clearer-nni super-network (format is {doc.get('format')!r}, "
                              "expected 'clearer-nni-supernet': the supernet.pt a search writes)")
    if doc.get("version") != 1:
        raise CheckpointError(f"{path}: unsupported super-network version {doc.get('version')!r}")
    try:
        space = SpaceConfig.from_dict(doc.get("space"), source=f"{path}: space")
    except SpaceFileError as exc:
        raise CheckpointError(str(exc)) from None
    if space != genotype.space:
        ours, theirs = genotype.space.to_dict(), space.to_dict()
        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        raise CheckpointError(f"{path}: the super-network was made for another space than the genotype; "
                              f"differences (genotype, super-network): {diff}")
    state = doc.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: super-network file has no 'state_dict'")
    try:
        mapping = supernet_key_map(network, genotype, state)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    network.load_state_dict({k: state[v] for k, v in mapping.items()}, strict=True)
    return len(mapping)


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


# -- validation during training ----------------------------------------------------------------

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
        from .metrics import mean_psnr

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
        pl_module.log_dict({"loss": row["loss"], "val_psnr": val_psnr}, prog_bar=True, logger=False,
                           rank_zero_only=True)
        if self.on_val is not None:
            self.on_val(row)


_STATE_FORMAT = "clearer-nni-retrain-state"
#: Settings that may differ between a retraining and its resumption.
_RESUME_FREE = {"out", "overwrite", "progress", "resume", "workers", "device", "threads"}


class _RetrainState(TrainingState):
    """The retraining's :class:`~clearer_nni.resume.TrainingState`: Lightning's global step, the validator's
    rows, best-so-far state and running loss; stops at a NaN or infinite loss (checked without a sync
    per step: the first bad step is kept on the device and read at each checkpoint and at the end)."""

    def __init__(self, folder: Path, cfg: RetrainConfig, choices: dict[str, str], validator: Validator,
                 state: dict[str, Any] | None, start: float, save: bool) -> None:
        super().__init__(folder, _STATE_FORMAT, dataclasses.asdict(cfg), cfg.checkpoint_every, cfg.steps, state,
                         start, save=save)
        self.choices, self.validator = choices, validator
        self._first_bad: torch.Tensor | None = None

    def set_step(self, trainer: pl.Trainer, pl_module: Any, step: int) -> None:
        # Lightning's global step is its count of optimizer steps: max_steps then counts the remaining ones
        progress = trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress.optimizer.step.total
        progress.ready = progress.completed = step

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


def validation_batches(val_set: Any, cfg: RetrainConfig, degradation: Any) -> tuple[list, str]:
    """Fixed validation batches and their description: seeded patches, or the whole (center-cropped) images."""
    from .data import GaussianNoise, PatchDataset, eval_pairs, paper_noisy, standard_noisy
    from .data import fixed_batches

    if cfg.val_images == 0:
        patches = PatchDataset(val_set, cfg.patch_size, None if val_set.paired else degradation,
                               length=cfg.val_patches, seed=cfg.seed + 2, augment=False)
        return fixed_batches(patches, cfg.batch_size), f"{cfg.val_patches} fixed {cfg.patch_size}x{cfg.patch_size} patches"
    if val_set.paired:
        pairs = eval_pairs(val_set, None, crop_multiple=VAL_CROP)
    elif isinstance(degradation, GaussianNoise) and not isinstance(degradation.sigma, tuple):
        # the evaluation protocols' noise: seed 0 per image (float, or uint8-clipped like the search's)
        noise = paper_noisy if degradation.clip else standard_noisy
        pairs = eval_pairs(val_set, partial(noise, sigma=degradation.sigma), crop_multiple=VAL_CROP)
    else:
        pairs = eval_pairs(val_set, degradation, seed=cfg.seed, crop_multiple=VAL_CROP)

    def tensor(a: Any) -> torch.Tensor:
        return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]

    return [(tensor(x), tensor(y)) for x, y, _ in pairs], f"{len(pairs)} whole images center-cropped to x{VAL_CROP}"


def fit_network(cfg: RetrainConfig, accelerator: str, module: Any, loader: Any,
                callbacks: Sequence[pl.Callback]) -> pl.Trainer:
    """Train ``module`` for ``cfg.steps`` steps of ``loader`` under Lightning, with the retraining's settings.

    ``cfg`` gives the steps, devices, precision, gradient clip and progress bar. Validation is the job
    of a :class:`Validator` among ``callbacks`` (Lightning's own validation loop is off). Returns the
    finished trainer. The quality benchmark trains every network it compares through this function.
    """
    trainer = pl.Trainer(accelerator=accelerator, devices=cfg.devices,
                         strategy="ddp" if cfg.devices > 1 else "auto", precision=cfg.precision,
                         max_steps=cfg.steps, gradient_clip_val=cfg.grad_clip or None, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, enable_progress_bar=cfg.progress, callbacks=list(callbacks))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # validation runs in Validator (on the val split, every val_every steps), not in Lightning's loop
        warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")
        trainer.fit(module, train_dataloaders=loader)
    return trainer


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

def run_retrain(cfg: RetrainConfig, on_val: Callable[[dict[str, float]], None] | None = None,
                explicit: Sequence[str] = ()) -> RetrainResult:
    """Retrain ``cfg.genotype`` from scratch; write ``model.ckpt``, ``metrics.csv`` and ``curve.png`` into ``cfg.out``.

    Parameters
    ----------
    cfg
        The settings.
    on_val
        Called with each validation row (step, loss, lr, val_psnr, seconds), e.g. to report
        intermediate results to NNI.
    explicit
        With ``cfg.resume``: the settings the caller set on purpose (CLI flags); they must equal the
        interrupted run's, except output, device, workers and progress.

    Notes
    -----
    Every ``cfg.checkpoint_every`` steps (and on Ctrl-C) the whole state is saved into the hidden staging
    folder (``.<out>.partial/checkpoints/``); ``cfg.resume`` continues from the newest complete one with
    the saved settings, skipping the patches already used.

    With ``devices > 1`` Lightning's DDP re-launches the running command once per extra device; only
    global rank 0 validates and writes, the others return a result without files (``checkpoint`` is
    not written by them).
    """
    from torch.utils.data import Subset

    from .data import load_dataset, make_loader
    from .data.patches import PatchDataset
    from .models.restoration import OptimConfig, RestorationModule
    from .nas.genotype import Genotype

    # A DDP worker rank re-runs this command: it neither prepares nor cleans the output (rank 0 does).
    worker_rank = os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
    state: dict[str, Any] | None = None
    if cfg.resume:
        cfg, state = resume_settings(cfg, explicit, staging_dir(Path(cfg.out)) / "checkpoints", _STATE_FORMAT,
                                     _RESUME_FREE, "retraining")
    elif "val_every" not in explicit and cfg.val_every == RetrainConfig.val_every and cfg.steps < 10 * cfg.val_every:
        cfg = dataclasses.replace(cfg, val_every=max(1, math.ceil(cfg.steps / 10)))  # a short run: 10 points
    cfg.validate()
    set_threads(cfg.threads)
    accelerator = _device(cfg.device, cfg.precision)
    genotype_path = Path(cfg.genotype)
    genotype = Genotype.load(genotype_path)
    if state is not None and dict(state["choices"]) != dict(genotype.choices):
        raise ValueError(f"{genotype_path}: the genotype is not the one the interrupted retraining trained "
                         f"(its choices changed since the checkpoint); restore it, or start afresh without --resume")
    supernet = _resolve_supernet(cfg.init_from_supernet, genotype_path)
    out = Path(cfg.out)
    if state is None and not worker_rank:
        prepare_out(out, cfg.overwrite).rmdir()  # refuse a bad --out now, not after hours of training

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
    degradation = _degradation(cfg, gm.get("degradation"))
    train_degradation = None if train_set.paired else degradation
    val_batches, val_desc = validation_batches(val_set, cfg, degradation)

    pl.seed_everything(cfg.seed, verbose=False)
    network = genotype.build()
    copied = init_from_supernet(network, genotype, supernet) if supernet is not None else 0
    per_device = cfg.batch_size // cfg.devices
    n = cfg.steps * cfg.batch_size
    train_data: Any = PatchDataset(train_set, cfg.patch_size, train_degradation, length=n, seed=cfg.seed)
    if state is not None:
        # Patch i is a pure function of (seed, epoch 0, i): a resumed retraining skips the patches already used.
        train_data = Subset(train_data, range(int(state["step"]) * cfg.batch_size, n))
    loader = make_loader(train_data, per_device, num_workers=cfg.workers, pin_memory=accelerator == "gpu")
    module = RestorationModule(OptimConfig("adam", cfg.lr, 0.0, 0.9, 0.0), cfg.steps)
    module.set_model(network)
    validator = Validator(val_batches, cfg.val_every, cfg.steps, on_val=on_val)

    staging = staging_dir(out) if state is not None or worker_rank else prepare_out(out, cfg.overwrite)
    start = time.time() - (state["seconds"] if state else 0.0)
    saver = _RetrainState(staging / "checkpoints", cfg, dict(genotype.choices), validator, state, start,
                          save=not worker_rank)
    try:
        # the validator first: a checkpoint then holds the row of its step
        trainer = fit_network(cfg, accelerator, module, loader, [validator, saver])
        seconds = time.time() - start
        if trainer.global_step < cfg.steps:
            raise RuntimeError(f"training stopped early at step {trainer.global_step} of {cfg.steps}")
        network = network.to("cpu")
        if not trainer.is_global_zero:
            return RetrainResult(out, out / "model.ckpt", network, genotype, math.nan, 0, math.nan, seconds, {})
        if validator.best_state is None:  # cannot happen: the last step always validates
            raise RuntimeError("no validation ran during training")
        network.load_state_dict(validator.best_state)
        network.eval()
        result = _write_outputs(cfg, staging, out, network, genotype, genotype_path, gm, train_set, val_set,
                                val_desc, degradation, validator, supernet, copied, accelerator, seconds)
    except BaseException as exc:
        if worker_rank:
            raise
        stop_and_keep(saver, staging, exc, "retraining", f"python -m clearer_nni.retrain --out {out} --resume")
        raise
    return result


def _write_outputs(cfg: RetrainConfig, staging: Path, out: Path, network: nn.Module, genotype: Any,
                   genotype_path: Path, gm: dict[str, Any], train_set: Any, val_set: Any, val_desc: str,
                   degradation: Any, validator: Validator, supernet: Path | None, copied: int, accelerator: str,
                   seconds: float) -> RetrainResult:
    """Write ``model.ckpt``, ``metrics.csv`` and ``curve.png`` into ``staging``, then publish it as ``out``."""
    from .archs.space import count_parameters
    from .checkpoint import save_checkpoint
    from .runtime import atomic_write_text, software_versions

    search_data = {"train_data": gm.get("train_data"), "val_data": gm.get("val_data"),
                   "degradation": gm.get("degradation")}
    metadata = {
        "kind": "retrain", "genotype_file": str(genotype_path.resolve()),
        "search": search_data,
        "train_data": train_set.name, "val_data": val_set.name,
        "val_set_also_used_by_search": val_set.name in (gm.get("train_data"), gm.get("val_data")),
        "validation": val_desc, "degradation": degradation.describe(),
        "steps": cfg.steps, "batch_size": cfg.batch_size, "patch_size": cfg.patch_size,
        "optimizer": {"name": "adam", "lr": cfg.lr, "lr_min": 0.0, "schedule": "cosine"},
        "grad_clip": cfg.grad_clip, "seed": cfg.seed, "val_every": cfg.val_every,
        "best_val_psnr": validator.best_psnr, "best_step": validator.best_step,
        "final_val_psnr": validator.rows[-1]["val_psnr"],
        "init_from_supernet": str(supernet.resolve()) if supernet is not None else None,
        "params": count_parameters(network), "seconds": round(seconds, 2),
        "device": accelerator, "devices": cfg.devices, "precision": cfg.precision,
        "software": software_versions(),
    }
    if copied:
        metadata["init_tensors_copied"] = copied
    save_checkpoint(staging / "model.ckpt", network, genotype, metadata)
    atomic_write_text(staging / "metrics.csv", _metrics_csv(validator.rows))
    _plot_curve(validator.rows, staging / "curve.png",
                f"retrain {genotype_path} on {train_set.name}, validated on {val_set.name} ({val_desc})")
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)
    publish(staging, out)
    return RetrainResult(out, out / "model.ckpt", network, genotype, validator.best_psnr, validator.best_step,
                         validator.rows[-1]["val_psnr"], seconds, metadata, validator.rows)


# -- command line ----------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    d = RetrainConfig()
    p = argparse.ArgumentParser(prog="python -m clearer_nni.retrain", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--genotype", help="genotype.json written by clearer_nni.search (required unless --resume)")
    p.add_argument("--out", help=f"output folder [{d.out}]")
    p.add_argument("--data", help="training data: skimage, bsds500, bsd400, a folder... [the search's, else skimage]")
    p.add_argument("--val-data", help="validation data (its 'val' split) [same as --data]")
    p.add_argument("--data-root", help="root folder of named datasets [$CLEARER_DATA_ROOT or ../shared/data]")
    p.add_argument("--degradation", choices=["gaussian", "rain", "jpeg"], help="[the search's, else gaussian]")
    p.add_argument("--sigma", type=float, help="Gaussian noise level on the 0..255 scale [the search's, else 50]")
    p.add_argument("--noise-clip", action=argparse.BooleanOptionalAction,
                   help="the authors' uint8-clipped noise (--no-noise-clip: float noise) [the search's, else float]")
    p.add_argument("--steps", type=int, help=f"training steps [{d.steps}]")
    p.add_argument("--batch-size", type=int, help=f"global batch (split over --devices) [{d.batch_size}]")
    p.add_argument("--patch-size", type=int, help=f"[{d.patch_size}]")
    p.add_argument("--lr", type=float, help=f"Adam learning rate, cosine-annealed to 0 [{d.lr}]")
    p.add_argument("--grad-clip", type=float, help=f"gradient-norm clip, 0 for none [{d.grad_clip}]")
    p.add_argument("--seed", type=int, help=f"[{d.seed}]")
    p.add_argument("--val-every", type=int, help=f"validate every N steps (and at the last) [{d.val_every}; "
                                                       "steps/10 for fewer than 10 x that]")
    p.add_argument("--val-patches", type=int, help=f"fixed validation patches [{d.val_patches}]")
    p.add_argument("--val-images", type=int,
                   help=f"validate on the first N whole val images instead of patches (0: patches) [{d.val_images}]")
    p.add_argument("--workers", type=int, help=f"DataLoader workers, one thread each [{d.workers}]")
    p.add_argument("--threads", type=int, help=f"{THREADS_HELP} [{d.threads}]")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=f"[{d.device}]")
    p.add_argument("--devices", type=int, help=f"devices; DDP when > 1 [{d.devices}]")
    p.add_argument("--precision", choices=PRECISIONS,
                   help=f"32, or mixed precision (16-mixed: GPU only; bf16-mixed also on CPU) [{d.precision}]")
    p.add_argument("--init-from-supernet", nargs="?", const="auto", metavar="SUPERNET_PT",
                   help="start from the search's super-network weights (no value: supernet.pt next to the genotype)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--checkpoint-every", type=int,
                   help=f"save the whole training state every N steps, 0 = never [{d.checkpoint_every}]")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted retraining into --out from its newest complete checkpoint")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    try:
        ns = vars(_parser().parse_args(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    cfg = RetrainConfig(**ns)

    def _run() -> int:
        r = run_retrain(cfg, explicit=set(ns))
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
