"""Choosing the architecture from a searched super-network: argmax of α (the paper) or perturbation.

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

from typing import Any, Callable, Mapping

__all__ = ["SELECTIONS", "perturbation_select", "select_architecture"]

#: ``argmax`` (paper, authors) or ``perturbation`` (Wang et al. 2021).
SELECTIONS = ("argmax", "perturbation")


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


def select_architecture(oneshot: Any, logger: Any, method: str = "argmax") -> tuple[dict[str, str], dict[str, Any]]:
    """The chosen candidate per column by ``method``, and metadata saying how it was chosen.

    ``logger`` is the search's :class:`~clearer_nni.nas.search_logger.SearchLogger` (its validation
    and calibration patches score the perturbations).
    """
    if method not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {method!r}")
    argmax = dict(oneshot.export())
    if method == "argmax":
        return argmax, {"select": method}
    chosen, scores = perturbation_select(oneshot, lambda pins: logger.evaluate(oneshot, pins=pins))
    return chosen, {"select": method, "perturbation_psnr_without": scores,
                    "argmax_choices": argmax, "columns_differing_from_argmax": sum(chosen[k] != argmax[k] for k in chosen)}
