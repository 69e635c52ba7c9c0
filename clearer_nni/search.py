"""``clearer-nni search`` (``python -m clearer_nni.search``): one CLEARER search, written as ``genotype.json`` + logs + a plot.

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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import Subset

from .config import SearchConfig, add_options, resolve_search
from .training.state import SEARCH_STATE, TrainingState, nonfinite_error

__all__ = ["SearchConfig", "SearchResult", "RECORDED_SETTINGS", "run_search", "search_parser", "main"]


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


class _SearchState(TrainingState):
    """The search's :class:`~clearer_nni.resume.TrainingState`: the one-shot module's own step counter, the log rows."""

    def __init__(self, folder: Path, cfg: SearchConfig, state: dict[str, Any] | None, start: float) -> None:
        super().__init__(folder, SEARCH_STATE, dataclasses.asdict(cfg), cfg.checkpoint_every, cfg.steps, state, start)

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


def run_search(cfg: SearchConfig, on_log: Callable[[dict[str, float]], None] | None = None) -> SearchResult:
    """Run one search; write ``genotype.json``, ``search_log.csv``, ``alpha.png`` and ``supernet.pt`` into ``cfg.out``
    (and ``ranking/`` with ``select`` ``rank``: :func:`~clearer_nni.nas.selection.rank_select`).

    Parameters
    ----------
    cfg
        The settings, run as they are (:func:`~clearer_nni.config.resolve_search` makes them from a
        recipe, flags and NNI parameters). With ``cfg.resume`` the newest complete checkpoint in the
        staging folder is continued; it must have been saved with the same settings (but output,
        device, workers, threads and progress).
    on_log
        Called with each logged row (step, losses, P(parallel) per column, validation PSNR), e.g. to
        report intermediate results to NNI.
    """
    from nni.nas.evaluator.pytorch import DataLoader

    from .archs.space import ClearerSpace, count_parameters, load_space_file
    from .data import degradation_for, search_batches, search_sets
    from .data.patches import PatchDataset, worker_init_fn
    from .models.fastpath import check_precision
    from .models.restoration import OptimConfig, RestorationModule
    from .nas.diagram import draw_genotype
    from .nas.estimate import derived_network, finetune_estimate, input_psnr
    from .nas.genotype import Genotype
    from .nas.ranking import check_limits
    from .nas.schedules import effective_arch_lr
    from .nas.selection import select_architecture
    from .nas.regularizers import candidate_costs, normalise_costs
    from .nas.search_logger import SearchLogger
    from .nas.strategy import ClearerDARTS
    from .runtime import lightning_accelerator, set_threads, software_versions
    from .tensorboard import tensorboard_logger
    from .training.checkpoint import save_supernet
    from .training.fit import fit_supernet
    from .training.ranks import is_primary_process, process_rank, rank_indices
    from .training.run import RunFolder

    cfg.validate()
    set_threads(cfg.threads)
    accelerator = lightning_accelerator(cfg.device)
    check_precision(cfg.precision, accelerator)
    space_cfg = load_space_file(cfg.space)
    check_limits(space_cfg, cfg.rank_max_params, cfg.rank_max_flops)  # --select rank's: met by some architecture
    run = RunFolder(cfg, SEARCH_STATE, "search", "clearer-nni search", primary=is_primary_process())
    state = run.state

    # Data first: every bad input fails before anything is written.
    pl.seed_everything(cfg.seed, verbose=False)
    channels = space_cfg.in_channels
    train_set, val_set, held_out = search_sets(cfg.data, cfg.val_data, channels, cfg.data_root)
    if held_out:
        print(f"note: {cfg.data} has no validation split: the weights train on {len(train_set)} of its images, "
              f"α on the other {len(val_set)} (every 5th by name; --val-data chooses them)", file=sys.stderr)
    degradation = degradation_for(cfg.degradation, cfg.sigma, cfg.noise_clip, correlation_length=cfg.correlation_length)
    n = cfg.steps * cfg.batch_size
    # Patch i is a pure function of (seed, i): a resumed search skips the patches already used.
    # Under DDP each rank takes its slice of every global batch (.training.ranks).
    mine = rank_indices(state["step"] if state else 0, cfg.steps, cfg.batch_size, process_rank(), cfg.devices)
    train_data = Subset(PatchDataset(train_set, cfg.patch_size, degradation, length=n, seed=cfg.seed), mine)
    val_data = Subset(PatchDataset(val_set, cfg.patch_size, degradation, length=n, seed=cfg.seed + 1), mine)
    # the fixed batches (validation monitor, BatchNorm calibration, fine-tune), seeded apart from the streams
    fixed = search_batches(train_set, val_set, cfg.patch_size, degradation, cfg.seed, cfg.val_patches,
                           cfg.batch_size, cfg.finetune_steps)
    monitor, calibration = fixed["monitor"], fixed["calibration"]

    staging = run.open()
    start = time.time() - (state["seconds"] if state else 0.0)
    saver = _SearchState(staging / "checkpoints", cfg, state, start)
    with run.guard(saver):
        loader_kw = dict(batch_size=cfg.batch_size // cfg.devices, shuffle=False, drop_last=True,
                         num_workers=cfg.workers, worker_init_fn=worker_init_fn, persistent_workers=cfg.workers > 0,
                         pin_memory=accelerator == "gpu")
        costs = normalise_costs(candidate_costs(space_cfg, cfg.cost_metric, cfg.patch_size))
        arch_lr = effective_arch_lr(cfg.arch_lr, cfg.arch_lr_schedule, cfg.steps - cfg.warmup_steps)
        strategy = ClearerDARTS(costs=costs, lambda_arch=cfg.lambda_arch, lambda_comp=cfg.lambda_comp,
                                warmup_steps=cfg.warmup_steps, max_steps=cfg.steps, log_base=cfg.log_base,
                                arch_eval_mode=cfg.arch_eval_mode, arc_learning_rate=arch_lr,
                                gradient_clip_val=cfg.grad_clip, anneal_fraction=cfg.anneal_fraction,
                                temperature_min=cfg.temperature_min, lambda_arch_schedule=cfg.lambda_arch_schedule,
                                strategy=cfg.strategy)
        logger = SearchLogger(staging / "search_log.csv", monitor, every=cfg.log_every, calibration=calibration,
                              total_steps=cfg.steps, on_log=on_log, rows=state["log"] if state else None,
                              primary=run.primary)
        oneshot = fit_supernet(ClearerSpace(space_cfg, mixing=cfg.mixing), strategy,
                               RestorationModule(OptimConfig("sgd", cfg.lr, cfg.lr_min, 0.9, 3e-4), cfg.steps),
                               DataLoader(train_data, **loader_kw), DataLoader(val_data, **loader_kw),
                               accelerator=accelerator, callbacks=[logger, saver], progress=cfg.progress,
                               precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile,
                               total_steps=cfg.steps, devices=cfg.devices,
                               logger=tensorboard_logger(staging, "search") if run.primary else False)
        if oneshot.search_step < cfg.steps:
            raise RuntimeError(f"search stopped early at step {oneshot.search_step} of {cfg.steps}")
        spread = max((r.get("alpha_rank_diff", 0.0) for r in logger.rows), default=0.0)
        if spread > 1e-6:  # the last row is the final α: every rank must export the same architecture
            raise RuntimeError(f"the DDP ranks' α differ by up to {spread:g}: their architectures may differ")

        probs = oneshot.logit_probs()  # temperature 1: how far the logits decided, whatever τ ended at
        if not run.primary:  # another DDP rank: rank 0 selects, evaluates and writes
            return SearchResult(run.out, run.out / "genotype.json", Genotype(space_cfg, dict(oneshot.export()), probs,
                                                                             {}), math.nan, math.nan,
                                time.time() - start, logger.rows)
        choices, decision = select_architecture(oneshot, logger, cfg.select, staging / "ranking", cfg.mixing,
                                                progress=cfg.progress, max_params=cfg.rank_max_params,
                                                max_flops=cfg.rank_max_flops)
        supernet_psnr = logger.evaluate(oneshot)
        derived_psnr = decision.pop("val_psnr_derived", None)  # measured by the ranking (--select rank)
        derived_psnr = logger.evaluate(oneshot, pins=choices) if derived_psnr is None else derived_psnr
        genotype = Genotype(space_cfg, dict(choices), probs, {})
        finetune = None
        if cfg.finetune_steps:
            finetune = finetune_estimate(derived_network(genotype, oneshot.training_module.model.state_dict()),
                                         fixed["finetune"], monitor, lr=cfg.finetune_lr, device=oneshot.device,
                                         calibration=calibration)
        seconds = time.time() - start
        genotype.metadata = {
            **{k: getattr(cfg, k) for k in RECORDED_SETTINGS},
            **decision, "decidedness": genotype.decidedness().to_dict(), "val_psnr_input": input_psnr(monitor),
            "val_psnr_finetuned": finetune.psnr if finetune else None,
            "finetune": finetune.to_dict() if finetune else None,
            "arch_lr_effective": arch_lr, "temperature_final": oneshot.temperature,
            "degradation": degradation.describe(), "train_data": train_set.name, "val_data": val_set.name,
            "val_psnr_supernet": supernet_psnr, "val_psnr_derived": derived_psnr,
            "params_derived": count_parameters(genotype.build()), "search_seconds": round(seconds, 2),
            "device": accelerator, "devices": cfg.devices, "alpha_rank_diff": spread, "software": software_versions(),
        }
        genotype.save(staging / "genotype.json")
        if cfg.save_supernet:
            save_supernet(staging / "supernet.pt", space_cfg, cfg.mixing, oneshot.training_module.model.state_dict())
        logger.plot(staging / "alpha.png")
        draw_genotype(genotype, staging / "genotype.png")
        run.publish()
    return SearchResult(run.out, run.out / "genotype.json", genotype, supernet_psnr, derived_psnr, seconds, logger.rows,
                        finetune.psnr if finetune else None)


#: Settings every genotype records (its metadata), besides the data and the results.
RECORDED_SETTINGS = ("recipe", "lambda_arch", "lambda_comp", "arch_lr", "lr", "cost_metric", "log_base", "mixing",
                     "arch_eval_mode", "steps", "warmup_steps", "batch_size", "patch_size", "seed", "precision",
                     "channels_last", "compile", "arch_lr_schedule", "anneal_fraction", "temperature_min",
                     "lambda_arch_schedule", "select", "finetune_steps", "finetune_lr", "strategy", "rank_max_params",
                     "rank_max_flops")


# -- command line ----------------------------------------------------------------------------------

def search_parser(prog: str = "clearer-nni search") -> argparse.ArgumentParser:
    """The search's flags (also the trial's): one per :class:`SearchConfig` field; the help shows the
    values of the default space's recipe."""
    try:
        shown = resolve_search({})
    except (OSError, ValueError):  # a broken install still prints its help
        shown = SearchConfig()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                epilog=f"[values] are those of the default space {shown.space!r} with its recipe "
                                       f"{shown.recipe!r}; another --space or --recipe brings its own (flags override "
                                       "the recipe; docs/SEARCH.md)")
    return add_options(p, SearchConfig, defaults=shown)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    def _run() -> int:
        result = run_search(resolve_search(vars(search_parser().parse_args(argv))))
        g = result.genotype
        if not g.metadata:  # another DDP rank: rank 0 reports
            return 0
        print(f"\nsearched architecture ({g.counts()['fusion']} fusion, {g.counts()['parallel']} parallel, "
              f"{g.metadata['params_derived'] / 1e6:.3f} M parameters):\n{g.summary()}")
        print(f"validation PSNR: super-network {result.supernet_psnr:.2f} dB, derived (inherited weights, BatchNorm "
              f"re-estimated) {result.derived_psnr:.2f} dB; {result.seconds:.0f} s")
        if result.finetuned_psnr is not None:
            print(f"derived network after the {g.metadata['finetune']['steps']}-step fine-tune estimate: "
                  f"{result.finetuned_psnr:.2f} dB (noisy input {g.metadata['val_psnr_input']:.2f} dB)")
        if g.metadata.get("select") == "rank":
            rank = g.metadata["rank"]
            print(f"chosen by ranking {rank['ranked']} architectures ({rank['method']}) with the super-network's "
                  f"weights: {rank['best']['code']} {rank['best']['psnr']:.2f} dB; α's argmax "
                  f"{g.metadata['argmax_code']} {g.metadata['val_psnr_argmax']:.2f} dB; {result.out / 'ranking'}")
        elif g.metadata.get("strategy") in ("spos", "fair"):
            print(f"warning: --strategy spos trains no α, so this genotype (--select {g.metadata['select']}) comes from "
                  f"α at its random start: --select rank (spos's default) chooses by ranking, or run "
                  f"`clearer-nni rank {result.out} --out RANKING`", file=sys.stderr)
        decided = g.decidedness()
        print(decided.line())
        from .bench import where

        standing = where(g)  # a tabulated space and task: how good the pick really is
        if standing:
            print(standing)
        if decided.warning() and g.metadata.get("select") != "rank":  # ranked: α chose nothing
            print(f"warning: {decided.warning()}", file=sys.stderr)
        print(f"wrote {result.genotype_path}, {result.out / 'search_log.csv'}, {result.out / 'alpha.png'}, "
              f"{result.out / 'genotype.png'}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
