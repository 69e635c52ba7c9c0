"""Choosing the architecture from a searched super-network: argmax of α (the paper), perturbation, or ranking.

Ranking selection (``rank``) scores every architecture of the space with the super-network's inherited
weights (:func:`~clearer_nni.nas.ranking.rank_supernet`, what ``clearer-nni rank`` does afterwards) and
takes the best: the way to choose from a ``spos`` super-network, which trains no α.

Perturbation-based selection follows Wang et al., ICLR 2021, "Rethinking architecture selection in
differentiable NAS" (Algorithm 1): column by column, each candidate is removed in turn and the
super-network's validation PSNR measured; the column keeps the candidate whose removal hurts most, and
is then fixed to it (progressive discretisation) before the next column is scored. With two
candidates per column, removing one leaves the other alone, so the score of a candidate is the PSNR
of the super-network without it. Differences from the paper's algorithm, to fit CPU budgets: columns
are visited in network order (theirs: random), and the super-network is not fine-tuned between
columns; BatchNorm statistics are re-estimated for every evaluation (as for the derived network).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["SELECTIONS", "perturbation_select", "rank_select", "select_architecture"]

#: ``argmax`` (paper, authors), ``perturbation`` (Wang et al. 2021) or ``rank`` (every architecture scored).
SELECTIONS = ("argmax", "perturbation", "rank")


def perturbation_select(oneshot: Any, evaluate: Callable[[Mapping[str, str]], float]
                        ) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Perturbation-based selection on a one-shot module (:class:`~clearer_nni.nas.ClearerDartsModule`).

    Parameters
    ----------
    oneshot
        The searched one-shot module (``mixed_columns()`` gives the columns in network order).
    evaluate
        Validation PSNR (dB) of the super-network with the given columns pinned (label → candidate
        kept); the other columns keep their α-mixture, e.g. ``SearchLogger.evaluate(oneshot, pins=...)``.

    Returns
    -------
    choices, scores
        The chosen candidate per column, and per column the PSNR without each candidate
        (``scores[label][name]``: the super-network with ``name`` removed; lower = more important).
    """
    chosen: dict[str, str] = {}
    scores: dict[str, dict[str, float]] = {}
    for label, module, _ in oneshot.mixed_columns():
        names = list(module.names)
        if len(names) != 2:
            raise ValueError(f"perturbation selection needs two candidates per column, {label} has {names}")
        # removing one candidate = keeping the other one alone
        scores[label] = {name: float(evaluate({**chosen, label: other}))
                         for name, other in zip(names, reversed(names))}
        chosen[label] = min(names, key=lambda name: scores[label][name])
    return chosen, scores


def rank_select(oneshot: Any, logger: Any, folder: str | Path, mixing: str = "paper", *, progress: bool = True,
                max_params: int | None = None, max_flops: int | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Ranking selection: every architecture scored with ``oneshot``'s weights (its super-network built
    with ``mixing``) into ``folder`` (ranking.csv, pareto.csv, pareto.png, ranking.json; started afresh),
    the best chosen (the best with at most ``max_params`` parameters / ``max_flops`` FLOPs at 64x64).

    Returns the choices and metadata: ``rank`` (the ranking's summary), the argmax's choices, code and
    PSNR for comparison, and ``val_psnr_derived``, the chosen network's PSNR as the ranking scored it.
    """
    import shutil

    from ..archs.space import ClearerSpace
    from .genotype import Genotype
    from .ranking import Scorer, choices_of, rank_supernet, space_size

    model = oneshot.training_module.model  # the mutated space: NNI's mixed layers in place of its choices
    supernet = ClearerSpace.from_supernet_state(model.config, model.state_dict(), mixing)
    argmax = dict(oneshot.export())
    argmax_code = Genotype(supernet.config, argmax).code()
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)  # a ranking of these weights only
    folder.mkdir(parents=True)
    scorer = Scorer(supernet, logger.calibration, logger.monitor, device=oneshot.device)
    settings = {"run": "the search itself", "val_patches": sum(len(x) for x, _ in logger.monitor),
                "batch_size": int(logger.monitor[0][0].shape[0]), "budget": None,
                "space_size": space_size(supernet.config)}
    summary = rank_supernet(scorer, folder, settings, searched=argmax_code, max_params=max_params,
                            max_flops=max_flops, progress=progress, label="search: ")
    best = summary["best"]
    return choices_of(supernet.config, best["code"]), {
        "select": "rank", "rank": {k: v for k, v in summary.items() if k != "settings"},
        "argmax_choices": argmax, "argmax_code": argmax_code,
        "val_psnr_argmax": (summary["searched"] or {}).get("psnr"), "val_psnr_derived": best["psnr"]}


def select_architecture(oneshot: Any, logger: Any, method: str = "argmax", folder: str | Path | None = None,
                        mixing: str = "paper", progress: bool = True, max_params: int | None = None,
                        max_flops: int | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """The chosen candidate per column by ``method``, and metadata saying how it was chosen.

    ``logger`` is the search's :class:`~clearer_nni.nas.search_logger.SearchLogger` (its validation
    and calibration patches score the perturbations and the ranking); ``folder`` receives the ranking
    (``rank``; ``mixing``: the super-network's; the limits: :func:`rank_select`'s). Metadata holding
    ``val_psnr_derived`` already measured the chosen network.
    """
    if method not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {method!r}")
    argmax = dict(oneshot.export())
    if method == "argmax":
        return argmax, {"select": method}
    if method == "rank":
        if folder is None:
            raise ValueError("select rank needs a folder for its ranking")
        return rank_select(oneshot, logger, folder, mixing, progress=progress, max_params=max_params,
                           max_flops=max_flops)
    chosen, scores = perturbation_select(oneshot, lambda pins: logger.evaluate(oneshot, pins=pins))
    return chosen, {"select": method, "perturbation_psnr_without": scores,
                    "argmax_choices": argmax, "columns_differing_from_argmax": sum(chosen[k] != argmax[k] for k in chosen)}
