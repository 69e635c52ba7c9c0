"""The Lightning runs: a restoration network trained for a number of steps, and a one-shot search.

The Trainer's own progress bar, logger, checkpointing and validation loop are off: progress is
:class:`~clearer_nni.training.progress.StepProgress` (stderr), validation is a callback
(:class:`~clearer_nni.training.validation.Validator`, :class:`~clearer_nni.nas.search_logger.SearchLogger`)
and checkpoints are :class:`~clearer_nni.training.state.TrainingState`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import pytorch_lightning as pl

from ..models.fastpath import apply_fast_path, check_precision

__all__ = ["fit_network", "fit_supernet", "train_from_scratch"]

#: Trainer settings of every run here (see the module docstring).
_QUIET = dict(enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
              limit_val_batches=0, enable_progress_bar=False)


def _fit(fit: Any) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # validation runs in a callback on fixed batches, not in Lightning's loop
        warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")  # we log ourselves
        fit()


def fit_network(cfg: Any, accelerator: str, module: Any, loader: Any,
                callbacks: Sequence[pl.Callback], logger: Any = False) -> pl.Trainer:
    """Train ``module`` for ``cfg.steps`` steps of ``loader`` under Lightning; return the finished trainer.

    ``cfg`` (a :class:`~clearer_nni.config.RetrainConfig`) gives the steps, devices (DDP when > 1),
    precision, gradient clip and progress bar. Validation is the job of a
    :class:`~clearer_nni.training.validation.Validator` among ``callbacks``. The quality benchmark trains
    every network it compares through this function. ``logger``: Lightning's (e.g.
    :func:`~clearer_nni.tensorboard.tensorboard_logger`), or ``False``.
    """
    from .progress import StepProgress

    if cfg.progress:
        callbacks = [*callbacks, StepProgress(cfg.steps, lambda trainer, _module: trainer.global_step, "retrain")]
    trainer = pl.Trainer(accelerator=accelerator, devices=cfg.devices,
                         strategy="ddp" if cfg.devices > 1 else "auto",
                         precision=check_precision(cfg.precision, accelerator), max_steps=cfg.steps,
                         gradient_clip_val=cfg.grad_clip or None, callbacks=list(callbacks), logger=logger,
                         **_QUIET)
    _fit(lambda: trainer.fit(module, train_dataloaders=loader))
    return trainer


def fit_supernet(space: Any, strategy: Any, module: Any, train_loader: Any, val_loader: Any, *,
                 accelerator: str = "cpu", callbacks: Sequence[Any] = (), progress: bool = True,
                 precision: str = "32", channels_last: bool = False, compile: bool = False,
                 total_steps: int | None = None, logger: Any = False, devices: int = 1) -> Any:
    """Search: mutate ``space`` with the one-shot ``strategy``, train it, return the one-shot module.

    ``train_loader`` feeds the weight steps and ``val_loader`` the architecture steps (NNI's DARTS
    combines them); both must be NNI-traced ``DataLoader`` s. ``precision`` goes to the Lightning
    ``Trainer``; ``channels_last`` and ``compile`` are applied to the super-network
    (:func:`~clearer_nni.models.fastpath.apply_fast_path`). ``progress`` shows a bar of
    ``total_steps`` bilevel steps; ``logger`` goes to the ``Trainer`` (TensorBoard). ``devices`` > 1: Lightning DDP (gloo on CPU, NCCL on CUDA); the loaders
    then hold each rank's patches (:func:`~clearer_nni.training.ranks.rank_indices`), and
    :mod:`clearer_nni.nas.distributed` keeps α the same on every rank.
    """
    from nni.nas.evaluator.pytorch import Lightning, Trainer

    from .progress import StepProgress

    if progress and total_steps:
        callbacks = [*callbacks, StepProgress(total_steps, lambda _trainer, oneshot: oneshot.search_step, "search")]
    # manual optimisation, and α frozen in the weight step: DDP must allow parameters without gradients
    trainer = Trainer(accelerator=accelerator, devices=devices, max_epochs=1, callbacks=list(callbacks), logger=logger,
                      strategy="ddp_find_unused_parameters_true" if devices > 1 else "auto",
                      use_distributed_sampler=False,  # the loaders hold each rank's patches (.ranks)
                      precision=check_precision(precision, accelerator), **_QUIET)
    evaluator = strategy.mutate_evaluator(Lightning(module, trainer, train_dataloaders=train_loader,
                                                    val_dataloaders=val_loader))
    supernet = apply_fast_path(strategy.mutate_model(space), channels_last=channels_last, compile=compile)
    _fit(lambda: evaluator.evaluate(supernet))
    return evaluator.module


def train_from_scratch(network: Any, train_set: Any, degradation: Any, val_batches: list, *, steps: int,
                       batch_size: int, patch_size: int, lr: float = 0.01, grad_clip: float = 5.0, seed: int = 0,
                       val_every: int = 1000, device: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Retraining's optimisation (Adam, ``lr`` cosine to 0, MSE, gradient clip; SPEC section 4) of ``network``
    on random patches of ``train_set`` drawn with ``seed``, validated every ``val_every`` steps on
    ``val_batches``; ends holding its best validation state. For the benchmarks that train many networks
    (the quality benchmark, :mod:`clearer_nni.bench`); ``clearer-nni retrain`` adds run folders,
    checkpoints and resume around the same pieces.

    Returns
    -------
    dict
        ``train_seconds``, ``best_val_psnr``, ``best_step``, and ``curve``: the validation rows
        (step, loss, lr, val_psnr, seconds).
    """
    import dataclasses
    import time

    from ..config import RetrainConfig
    from ..data import make_loader
    from ..data.patches import PatchDataset
    from ..models.restoration import RETRAIN, RestorationModule
    from ..runtime import lightning_accelerator
    from .validation import Validator

    cfg = RetrainConfig(genotype="-", steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr,
                        grad_clip=grad_clip, seed=seed, val_every=val_every, progress=progress)
    loader = make_loader(PatchDataset(train_set, patch_size, None if train_set.paired else degradation,
                                      length=steps * batch_size, seed=seed), batch_size)
    module = RestorationModule(dataclasses.replace(RETRAIN, lr=lr), steps)
    module.set_model(network)
    validator = Validator(val_batches, val_every, steps)
    start = time.time()
    fit_network(cfg, lightning_accelerator(device), module, loader, [validator])
    seconds = time.time() - start
    network.load_state_dict(validator.best_state)
    network.eval()
    return {"train_seconds": round(seconds, 1), "best_val_psnr": round(validator.best_psnr, 4),
            "best_step": validator.best_step, "curve": validator.rows}
