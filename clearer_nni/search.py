"""``python -m clearer_nni.search``: one CLEARER search, written as ``genotype.json`` + logs + a plot.

The search drives NNI's one-shot machinery directly: :class:`~clearer_nni.nas.ClearerDARTS`
mutates the :class:`~clearer_nni.archs.ClearerSpace` into a super-network and wraps the Lightning
evaluator; the evaluator trains it; the strategy's module exports the argmax architecture.
(``NasExperiment`` would add a sequential engine that swaps NNI's trial channel while it runs and
writes under ``~/nni-experiments``; a search needs neither.)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import Subset

from .resume import TrainingState, nonfinite_error, resume_settings, stop_and_keep
from .runtime import THREADS_HELP, lightning_accelerator, prepare_out, publish, set_threads, staging_dir

__all__ = ["SearchConfig", "SearchResult", "fit_supernet", "run_search", "resolve_space_path", "main"]

_REPO = Path(__file__).resolve().parents[1]


@dataclass
class SearchConfig:
    """Settings of one search; defaults are the paper's GPU budget (SPEC section 3).

    Space files may carry a ``search:`` section overriding these defaults (e.g. CPU-sized budgets).
    """

    space: str = "denoise"
    data: str = "skimage"
    data_root: str | None = None
    degradation: str = "gaussian"
    sigma: float = 50.0
    noise_clip: bool = False
    steps: int = 10_000
    warmup_steps: int = 1_000
    batch_size: int = 32
    patch_size: int = 64
    lambda_arch: float = 0.01
    lambda_comp: float = 0.0
    cost_metric: str = "params"
    log_base: str = "e"
    arch_eval_mode: bool = False
    mixing: str = "paper"
    lr: float = 0.025
    lr_min: float = 0.001
    arch_lr: float = 3e-4
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int = 0
    channels_last: bool = False
    compile: bool = False
    precision: str = "32"
    log_every: int = 50
    val_patches: int = 64
    out: str = "runs/search"
    overwrite: bool = False
    progress: bool = True
    save_supernet: bool = True
    checkpoint_every: int = 100
    resume: bool = False
    # A search that decides at short budgets (clearer_nni/nas/schedules.py); the defaults are the paper's recipe.
    arch_lr_schedule: str = "fixed"
    anneal_fraction: float = 0.0
    temperature_min: float = 0.01
    lambda_arch_schedule: str = "constant"
    select: str = "argmax"
    finetune_steps: int = 0
    finetune_lr: float = 1e-3

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        from .models.fastpath import PRECISIONS
        from .nas.schedules import ARCH_LR_SCHEDULES, LAMBDA_ARCH_SCHEDULES
        from .nas.selection import SELECTIONS

        checks = [
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.warmup_steps < self.steps,
             f"warmup_steps ({self.warmup_steps}) must be < steps ({self.steps}): α would never be trained"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.patch_size >= 8, f"patch_size must be >= 8, got {self.patch_size}"),
            (math.isfinite(self.lambda_arch) and self.lambda_arch >= 0,
             f"lambda_arch must be a finite number >= 0, got {self.lambda_arch}"),
            (math.isfinite(self.lambda_comp) and self.lambda_comp >= 0,
             f"lambda_comp must be a finite number >= 0, got {self.lambda_comp}"),
            (math.isfinite(self.sigma) and self.sigma >= 0, f"sigma must be a finite number >= 0, got {self.sigma}"),
            (self.workers >= 0, f"workers must be >= 0, got {self.workers}"),
            (self.threads >= 0, f"threads must be >= 0 (0: auto), got {self.threads}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.val_patches >= 1, f"val_patches must be >= 1, got {self.val_patches}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
            (self.device in ("auto", "cpu", "cuda", "gpu"), f"device must be auto, cpu or cuda, got {self.device!r}"),
            (str(self.precision) in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.arch_lr_schedule in ARCH_LR_SCHEDULES,
             f"arch_lr_schedule must be one of {', '.join(ARCH_LR_SCHEDULES)}, got {self.arch_lr_schedule!r}"),
            (math.isfinite(self.anneal_fraction) and 0 <= self.anneal_fraction <= 1,
             f"anneal_fraction must be in [0, 1], got {self.anneal_fraction}"),
            (math.isfinite(self.temperature_min) and 0 < self.temperature_min <= 1,
             f"temperature_min must be in (0, 1], got {self.temperature_min}"),
            (self.lambda_arch_schedule in LAMBDA_ARCH_SCHEDULES,
             f"lambda_arch_schedule must be one of {', '.join(LAMBDA_ARCH_SCHEDULES)}, got {self.lambda_arch_schedule!r}"),
            (self.select in SELECTIONS, f"select must be one of {', '.join(SELECTIONS)}, got {self.select!r}"),
            (self.finetune_steps >= 0, f"finetune_steps must be >= 0 (0: no fine-tune estimate), got {self.finetune_steps}"),
            (math.isfinite(self.finetune_lr) and self.finetune_lr > 0,
             f"finetune_lr must be a finite number > 0, got {self.finetune_lr}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class SearchResult:
    """What a search produced."""

    out: Path
    genotype_path: Path
    genotype: Any
    supernet_psnr: float
    derived_psnr: float
    seconds: float
    log: list[dict[str, float]] = field(default_factory=list)
    #: the derived network after the fine-tune estimate (``finetune_steps`` > 0), else None
    finetuned_psnr: float | None = None


def resolve_space_path(space: str) -> Path:
    """A space file path, or a name of a file in the bundled ``search_spaces/`` (``denoise`` → ``denoise.yaml``)."""
    candidates = [Path(space)]
    if not space.endswith((".yaml", ".yml")):
        candidates += [Path(f"{space}.yaml")]
    for folder in (Path("search_spaces"), _REPO / "search_spaces"):
        candidates += [folder / Path(space).name, folder / f"{Path(space).name}.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    from .archs.space import SpaceFileError

    raise SpaceFileError(f"space file not found: {space} (give a path, or a name in {_REPO / 'search_spaces'})")


def _merge_space_defaults(cfg: SearchConfig, explicit: set[str]) -> tuple[SearchConfig, Any]:
    """Load the space file and apply its ``search:`` defaults below the explicitly given settings."""
    from .archs.space import SpaceFileError, load_space_file

    path = resolve_space_path(cfg.space)
    space, defaults = load_space_file(path)
    known = {f.name for f in dataclasses.fields(SearchConfig)} - {"space", "out", "overwrite"}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise SpaceFileError(f"{path}: unknown search setting(s) {unknown}; known: {sorted(known)}")
    merged = {k: v for k, v in defaults.items() if k not in explicit}
    try:
        cfg = dataclasses.replace(cfg, **merged)
    except TypeError as exc:
        raise SpaceFileError(f"{path}: {exc}") from None
    return cfg, space


_STATE_FORMAT = "clearer-nni-search-state"
#: Settings that may differ between a search and its resumption.
_RESUME_FREE = {"out", "overwrite", "progress", "resume", "workers", "device", "threads"}


def _resume_state(cfg: SearchConfig, explicit: set[str]) -> tuple[SearchConfig, dict[str, Any]]:
    """The saved settings and newest complete state of an interrupted search into ``cfg.out``."""
    return resume_settings(cfg, explicit, staging_dir(Path(cfg.out)) / "checkpoints", _STATE_FORMAT,
                           _RESUME_FREE, "search")


def fit_supernet(space: Any, strategy: Any, module: Any, train_loader: Any, val_loader: Any, *,
                 accelerator: str = "cpu", callbacks: Sequence[Any] = (), progress: bool = True,
                 precision: str = "32", channels_last: bool = False, compile: bool = False) -> Any:
    """Search: mutate ``space`` with the one-shot ``strategy``, train it, return the one-shot module.

    ``train_loader`` feeds the weight steps and ``val_loader`` the architecture steps (NNI's DARTS
    combines them); both must be NNI-traced ``DataLoader`` s. ``precision`` goes to the Lightning
    ``Trainer``; ``channels_last`` and ``compile`` are applied to the super-network
    (:func:`~clearer_nni.models.fastpath.apply_fast_path`).
    """
    from nni.nas.evaluator.pytorch import Lightning, Trainer

    from .models.fastpath import apply_fast_path, check_precision

    trainer = Trainer(accelerator=accelerator, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                      enable_progress_bar=progress, callbacks=list(callbacks),
                      precision=check_precision(precision, accelerator))
    evaluator = strategy.mutate_evaluator(Lightning(module, trainer, train_dataloaders=train_loader,
                                                    val_dataloaders=val_loader))
    supernet = apply_fast_path(strategy.mutate_model(space), channels_last=channels_last, compile=compile)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        evaluator.evaluate(supernet)
    return evaluator.module


class _SearchState(TrainingState):
    """The search's :class:`~clearer_nni.resume.TrainingState`: the one-shot module's own step counter, the log rows."""

    def __init__(self, folder: Path, cfg: SearchConfig, state: dict[str, Any] | None, start: float) -> None:
        super().__init__(folder, _STATE_FORMAT, dataclasses.asdict(cfg), cfg.checkpoint_every, cfg.steps, state, start)

    def model(self, pl_module: Any) -> torch.nn.Module:
        return pl_module.training_module.model

    def step(self, trainer: pl.Trainer, pl_module: Any) -> int:
        return pl_module.search_step

    def set_step(self, trainer: pl.Trainer, pl_module: Any, step: int) -> None:
        pl_module.search_step = step

    def extra(self, trainer: pl.Trainer, pl_module: Any) -> dict[str, Any]:
        from .nas.search_logger import SearchLogger

        logger = next((c for c in trainer.callbacks if isinstance(c, SearchLogger)), None)
        return {"log": logger.rows if logger is not None else []}

    def check_finite(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not all(bool(torch.isfinite(v)) for v in pl_module.last_record.values()):
            raise nonfinite_error(pl_module.search_step, "lower --lr or --arch-lr")


def run_search(cfg: SearchConfig, explicit: Sequence[str] = (),
               on_log: Callable[[dict[str, float]], None] | None = None) -> SearchResult:
    """Run one search; write ``genotype.json``, ``search_log.csv``, ``alpha.png`` and ``supernet.pt`` into ``cfg.out``.

    Parameters
    ----------
    cfg
        The settings. Those not named in ``explicit`` may be overridden by the space file's ``search:``.
    explicit
        Names of settings the caller set on purpose (CLI flags).
    on_log
        Called with each logged row (step, losses, P(parallel) per column, validation PSNR), e.g. to
        report intermediate results to NNI.
    """
    from nni.nas.evaluator.pytorch import DataLoader

    from .archs.space import ClearerSpace, count_parameters
    from .data import GaussianNoise, load_dataset, make_degradation
    from .data.patches import PatchDataset, fixed_batches, worker_init_fn
    from .models.fastpath import check_precision
    from .models.restoration import OptimConfig, RestorationModule
    from .nas.estimate import derived_network, finetune_estimate, input_psnr
    from .nas.genotype import Genotype
    from .nas.selection import select_architecture
    from .runtime import software_versions
    from .nas.regularizers import candidate_costs, normalise_costs
    from .nas.schedules import effective_arch_lr
    from .nas.search_logger import SearchLogger
    from .nas.strategy import ClearerDARTS

    state: dict[str, Any] | None = None
    if cfg.resume:
        cfg, state = _resume_state(cfg, set(explicit))
        space_cfg = _merge_space_defaults(cfg, set(dataclasses.asdict(cfg)))[1]
    else:
        cfg, space_cfg = _merge_space_defaults(cfg, set(explicit))
    cfg.validate()
    set_threads(cfg.threads)
    accelerator = lightning_accelerator(cfg.device)
    check_precision(cfg.precision, accelerator)
    out = Path(cfg.out)

    # Data first: every bad input fails before anything is written.
    pl.seed_everything(cfg.seed, verbose=False)
    channels = space_cfg.in_channels
    train_set = load_dataset(cfg.data, "train", channels=channels, root=cfg.data_root)
    val_set = load_dataset(cfg.data, "val", channels=channels, root=cfg.data_root)
    if sorted(train_set.paths) == sorted(val_set.paths):
        raise ValueError(f"data {cfg.data!r} has no separate validation split: the architecture step needs "
                         "images disjoint from the weights' (use a dataset with train/val splits)")
    if cfg.degradation == "gaussian":
        degradation = GaussianNoise(cfg.sigma, clip=cfg.noise_clip)
    else:
        degradation = make_degradation(cfg.degradation)
    n = cfg.steps * cfg.batch_size
    # Patch i is a pure function of (seed, i): a resumed search skips the patches already used.
    done = state["step"] * cfg.batch_size if state else 0
    train_data = Subset(PatchDataset(train_set, cfg.patch_size, degradation, length=n, seed=cfg.seed), range(done, n))
    val_data = Subset(PatchDataset(val_set, cfg.patch_size, degradation, length=n, seed=cfg.seed + 1), range(done, n))
    monitor = fixed_batches(PatchDataset(val_set, cfg.patch_size, degradation, length=cfg.val_patches,
                                         seed=cfg.seed + 2, augment=False), cfg.batch_size)
    # Training patches (a seed the search never draws) to re-estimate the derived network's BatchNorm.
    calibration = fixed_batches(PatchDataset(train_set, cfg.patch_size, degradation, length=cfg.val_patches,
                                             seed=cfg.seed + 3), cfg.batch_size)

    staging = staging_dir(out) if state else prepare_out(out, cfg.overwrite)
    start = time.time() - (state["seconds"] if state else 0.0)
    saver = _SearchState(staging / "checkpoints", cfg, state, start)
    try:
        loader_kw = dict(batch_size=cfg.batch_size, shuffle=False, drop_last=True, num_workers=cfg.workers,
                         worker_init_fn=worker_init_fn, persistent_workers=cfg.workers > 0,
                         pin_memory=accelerator == "gpu")
        costs = normalise_costs(candidate_costs(space_cfg, cfg.cost_metric, cfg.patch_size))
        arch_lr = effective_arch_lr(cfg.arch_lr, cfg.arch_lr_schedule, cfg.steps - cfg.warmup_steps)
        strategy = ClearerDARTS(costs=costs, lambda_arch=cfg.lambda_arch, lambda_comp=cfg.lambda_comp,
                                warmup_steps=cfg.warmup_steps, max_steps=cfg.steps, log_base=cfg.log_base,
                                arch_eval_mode=cfg.arch_eval_mode, arc_learning_rate=arch_lr,
                                gradient_clip_val=cfg.grad_clip, anneal_fraction=cfg.anneal_fraction,
                                temperature_min=cfg.temperature_min, lambda_arch_schedule=cfg.lambda_arch_schedule)
        logger = SearchLogger(staging / "search_log.csv", monitor, every=cfg.log_every, calibration=calibration,
                              total_steps=cfg.steps, on_log=on_log, rows=state["log"] if state else None)
        oneshot = fit_supernet(ClearerSpace(space_cfg, mixing=cfg.mixing), strategy,
                               RestorationModule(OptimConfig("sgd", cfg.lr, cfg.lr_min, 0.9, 3e-4), cfg.steps),
                               DataLoader(train_data, **loader_kw), DataLoader(val_data, **loader_kw),
                               accelerator=accelerator, callbacks=[logger, saver], progress=cfg.progress,
                               precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile)
        if oneshot.search_step < cfg.steps:
            raise RuntimeError(f"search stopped early at step {oneshot.search_step} of {cfg.steps}")

        choices, decision = select_architecture(oneshot, logger, cfg.select)
        probs = oneshot.logit_probs()  # temperature 1: how far the logits decided, whatever τ ended at
        supernet_psnr = logger.evaluate(oneshot)
        derived_psnr = logger.evaluate(oneshot, pins=choices)
        genotype = Genotype(space_cfg, dict(choices), probs, {})
        finetune = None
        if cfg.finetune_steps:
            finetune = finetune_estimate(derived_network(genotype, oneshot.training_module.model.state_dict()),
                                         fixed_batches(PatchDataset(train_set, cfg.patch_size, degradation,
                                                                    length=cfg.finetune_steps * cfg.batch_size,
                                                                    seed=cfg.seed + 4), cfg.batch_size),
                                         monitor, lr=cfg.finetune_lr, device=oneshot.device)
        seconds = time.time() - start
        genotype.metadata = {
            **decision, "decidedness": genotype.decidedness().to_dict(), "val_psnr_input": input_psnr(monitor),
            "val_psnr_finetuned": finetune.psnr if finetune else None,
            "finetune": finetune.to_dict() if finetune else None,
            "arch_lr_schedule": cfg.arch_lr_schedule, "arch_lr_effective": arch_lr,
            "anneal_fraction": cfg.anneal_fraction, "temperature_min": cfg.temperature_min,
            "temperature_final": oneshot.temperature, "lambda_arch_schedule": cfg.lambda_arch_schedule,
            "lambda_arch": cfg.lambda_arch, "lambda_comp": cfg.lambda_comp, "arch_lr": cfg.arch_lr, "lr": cfg.lr,
            "cost_metric": cfg.cost_metric,
            "log_base": cfg.log_base, "mixing": cfg.mixing, "arch_eval_mode": cfg.arch_eval_mode,
            "degradation": degradation.describe(), "steps": cfg.steps, "warmup_steps": cfg.warmup_steps,
            "batch_size": cfg.batch_size, "patch_size": cfg.patch_size, "seed": cfg.seed,
            "train_data": train_set.name, "val_data": val_set.name,
            "val_psnr_supernet": supernet_psnr, "val_psnr_derived": derived_psnr,
            "params_derived": count_parameters(genotype.build()), "search_seconds": round(seconds, 2),
            "device": accelerator, "precision": cfg.precision, "channels_last": cfg.channels_last,
            "compile": cfg.compile, "software": software_versions(),
        }
        genotype.save(staging / "genotype.json")
        if cfg.save_supernet:
            torch.save({"format": "clearer-nni-supernet", "version": 1, "space": space_cfg.to_dict(),
                        "state_dict": oneshot.training_module.model.state_dict()}, staging / "supernet.pt")
        logger.plot(staging / "alpha.png")
        shutil.rmtree(staging / "checkpoints", ignore_errors=True)
        publish(staging, out)
    except BaseException as exc:
        stop_and_keep(saver, staging, exc, "search", f"python -m clearer_nni.search --out {out} --resume")
        raise
    return SearchResult(out, out / "genotype.json", genotype, supernet_psnr, derived_psnr, seconds, logger.rows,
                        finetune.psnr if finetune else None)


# -- command line ----------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    from .models.fastpath import PRECISIONS

    d = SearchConfig()
    p = argparse.ArgumentParser(prog="python -m clearer_nni.search", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--space", default=d.space, help="space file, or a name in search_spaces/ (its 'search:' "
                                                     "section sets defaults that flags override)")
    p.add_argument("--data", help=f"'skimage' (embedded images), bsds500, a folder... [{d.data}]")
    p.add_argument("--data-root", help="root folder of named datasets [$CLEARER_DATA_ROOT or ../shared/data]")
    p.add_argument("--degradation", choices=["gaussian", "rain", "jpeg"], help=f"[{d.degradation}]")
    p.add_argument("--sigma", type=float, help=f"Gaussian noise level on the 0..255 scale [{d.sigma}]")
    p.add_argument("--noise-clip", action="store_true", help="the authors' uint8-clipped noise (default: float)")
    p.add_argument("--steps", type=int, help=f"bilevel search steps [{d.steps}]")
    p.add_argument("--warmup-steps", type=int, help=f"weights-only steps first [{d.warmup_steps}]")
    p.add_argument("--batch-size", type=int, help=f"[{d.batch_size}]")
    p.add_argument("--patch-size", type=int, help=f"[{d.patch_size}]")
    p.add_argument("--lambda-arch", type=float, help=f"λ1, weight of L_Arch [{d.lambda_arch}]")
    p.add_argument("--lambda-comp", type=float, help=f"λ2, weight of L_Comp [{d.lambda_comp}]")
    p.add_argument("--cost-metric", choices=["params", "flops"], help=f"complexity of L_Comp [{d.cost_metric}]")
    p.add_argument("--log-base", choices=["e", "10"], help=f"log in L_Arch: e (paper) or 10 (authors) [{d.log_base}]")
    p.add_argument("--arch-eval-mode", action="store_true", help="α step with BatchNorm in eval mode (authors)")
    p.add_argument("--mixing", choices=["paper", "authors"], help="Eq. 1 (paper) or the authors' F(P(x)) [paper]")
    p.add_argument("--lr", type=float, help=f"weights' SGD learning rate [{d.lr}]")
    p.add_argument("--lr-min", type=float, help=f"end of the cosine schedule [{d.lr_min}]")
    p.add_argument("--arch-lr", type=float, help=f"α's Adam learning rate [{d.arch_lr}]")
    p.add_argument("--arch-lr-schedule", choices=["fixed", "scaled"],
                   help=f"scaled: --arch-lr x 9000 / α steps, the paper's logit travel in any budget [{d.arch_lr_schedule}]")
    p.add_argument("--anneal-fraction", type=float,
                   help=f"anneal the softmax temperature over this last fraction of the search, 0 = never [{d.anneal_fraction}]")
    p.add_argument("--temperature-min", type=float, help=f"temperature reached at the last step [{d.temperature_min}]")
    p.add_argument("--lambda-arch-schedule", choices=["constant", "linear"],
                   help=f"λ1 constant (paper) or linear from 0 over the α steps [{d.lambda_arch_schedule}]")
    p.add_argument("--select", choices=["argmax", "perturbation"],
                   help=f"derive by argmax of α (paper) or perturbation (Wang et al. 2021) [{d.select}]")
    p.add_argument("--finetune-steps", type=int,
                   help=f"fine-tune the derived network this many steps to estimate its quality, 0 = no [{d.finetune_steps}]")
    p.add_argument("--finetune-lr", type=float, help=f"Adam learning rate of that fine-tune [{d.finetune_lr}]")
    p.add_argument("--grad-clip", type=float, help=f"weights' gradient-norm clip [{d.grad_clip}]")
    p.add_argument("--seed", type=int, help=f"[{d.seed}]")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=f"[{d.device}]")
    p.add_argument("--workers", type=int, help=f"DataLoader workers, one thread each [{d.workers}]")
    p.add_argument("--threads", type=int, help=f"{THREADS_HELP} [{d.threads}]")
    p.add_argument("--channels-last", action="store_true", help="fast path: NHWC memory format (faster convs)")
    p.add_argument("--compile", action="store_true",
                   help="fast path: torch.compile the super-network (falls back to eager with a warning)")
    p.add_argument("--precision", choices=list(PRECISIONS),
                   help=f"Lightning precision; 16-mixed needs a CUDA GPU [{d.precision}]")
    p.add_argument("--log-every", type=int, help=f"log and validate every N steps [{d.log_every}]")
    p.add_argument("--val-patches", type=int, help=f"fixed validation patches for PSNR [{d.val_patches}]")
    p.add_argument("--out", help=f"output folder [{d.out}]")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--checkpoint-every", type=int,
                   help=f"save the whole search state every N steps, 0 = never [{d.checkpoint_every}]")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted search into --out from its newest complete checkpoint")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--no-supernet", dest="save_supernet", action="store_false",
                   help="do not save supernet.pt (the super-network's weights, for retrain --init-from-supernet)")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> tuple[SearchConfig, set[str]]:
    """Parse command-line flags into a config and the set of settings given explicitly."""
    ns = vars(_parser().parse_args(argv))
    explicit = set(ns) - {"space"}
    return SearchConfig(**ns), explicit


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    def _run() -> int:
        cfg, explicit = config_from_args(argv)
        result = run_search(cfg, explicit)
        g = result.genotype
        print(f"\nsearched architecture ({g.counts()['fusion']} fusion, {g.counts()['parallel']} parallel, "
              f"{g.metadata['params_derived'] / 1e6:.3f} M parameters):\n{g.summary()}")
        print(f"validation PSNR: super-network {result.supernet_psnr:.2f} dB, derived (inherited weights, BatchNorm re-estimated) "
              f"{result.derived_psnr:.2f} dB; {result.seconds:.0f} s")
        if result.finetuned_psnr is not None:
            print(f"derived network after the {g.metadata['finetune']['steps']}-step fine-tune estimate: {result.finetuned_psnr:.2f} dB "
                  f"(noisy input {g.metadata['val_psnr_input']:.2f} dB)")
        decided = g.decidedness()
        print(decided.line())
        if decided.warning():
            print(f"warning: {decided.warning()}", file=sys.stderr)
        print(f"wrote {result.genotype_path}, {result.out / 'search_log.csv'}, {result.out / 'alpha.png'}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
