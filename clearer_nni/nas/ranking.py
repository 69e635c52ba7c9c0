"""Ranking every architecture of a searched space with the super-network's inherited weights.

Each architecture is the derived network of its choices made of the super-network's own modules
(:meth:`ClearerSpace.path`: the chosen candidates and the fixed parts, the weights ``retrain
--init-from-supernet`` copies), its BatchNorm statistics re-estimated on the
same training patches (:func:`~clearer_nni.nas.search_logger.recalibrated_bn`), scored by its mean PSNR
on the same fixed validation patches. A space of at most :data:`MAX_ENUMERATE` architectures is ranked
whole; a larger one by regularized evolution (Real et al. 2019, aging evolution) over the same scorer.

Rows are appended to a CSV as they are scored, and a ranking given the CSV of an interrupted one scores
only what is missing: the evolution is deterministic given its seed and the scores, so it replays the
scored rows without scoring them again.
"""

from __future__ import annotations

import collections
import csv
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from ..archs.space import CANDIDATES, ClearerSpace, SpaceConfig, count_parameters
from ..metrics import batch_psnr, mean_psnr
from ..runtime import atomic_savefig, atomic_write_text
from .genotype import Genotype
from .search_logger import batch_norms, estimate_bn, kept_bn_stats, recalibrated_bn

__all__ = ["FIELDS", "MAX_ENUMERATE", "RANKING_METHODS", "Scorer", "space_size", "all_choices", "choices_of",
           "rank_space", "read_rows", "pareto_front", "best_row", "write_pareto", "plot_pareto", "network_flops",
           "rank_supernet", "check_limits"]

#: Columns of ``ranking.csv``.
FIELDS = ("code", "params", "flops", "psnr", "seconds")
#: Spaces with more architectures than this are searched by evolution, not enumerated.
MAX_ENUMERATE = 2 ** 16
#: ``exhaustive`` (every architecture) or ``evolution`` (regularized evolution, a budget of architectures).
RANKING_METHODS = ("exhaustive", "evolution")

Batch = tuple[torch.Tensor, torch.Tensor]
Row = dict[str, Any]


def network_flops(network: nn.Module, channels: int, size: int = 64) -> int:
    """Forward FLOPs of ``network`` on one ``channels`` x ``size`` x ``size`` image (torch's FLOP counter,
    as L_Comp's ``flops`` costs)."""
    from torch.utils.flop_counter import FlopCounterMode

    network.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, channels, size, size))
    return int(counter.get_total_flops())


@dataclass
class Scorer:
    """Scores architectures of ``supernet`` (unfrozen, holding a search's weights) with inherited weights.

    Parameters
    ----------
    supernet
        The searched super-network (:func:`~clearer_nni.training.checkpoint.load_supernet`).
    calibration
        Training batches on which every architecture's BatchNorm statistics are re-estimated.
    monitor
        The fixed validation batches every architecture is scored on.
    flops_size
        Image size at which FLOPs are counted.
    device
        Where the networks run.
    """

    supernet: ClearerSpace
    calibration: list[Batch]
    monitor: list[Batch]
    flops_size: int = 64
    device: Any = "cpu"

    def __post_init__(self) -> None:
        from .regularizers import candidate_costs

        self.supernet.to(self.device)
        # FLOPs add up over the columns (each column's input shapes are fixed by its cell): counted once
        # per candidate, and once for the fixed parts (the first candidates' network less its columns)
        self._column_flops = candidate_costs(self.supernet.config, "flops", self.flops_size)
        first = {label: CANDIDATES[0] for label in self.supernet.config.labels}
        self._fixed_flops = network_flops(self.network(first), self.supernet.config.in_channels,
                                          self.flops_size) - self.flops(first, fixed=0)

    def network(self, choices: Mapping[str, str]) -> nn.Module:
        """The derived network of ``choices``, made of the super-network's own modules
        (:meth:`ClearerSpace.path`: its weights, nothing copied)."""
        return self.supernet.path(choices)

    def flops(self, choices: Mapping[str, str], fixed: int | None = None) -> int:
        """Forward FLOPs of the architecture on one ``flops_size`` x ``flops_size`` image."""
        fixed = self._fixed_flops if fixed is None else fixed
        return int(fixed + sum(self._column_flops[label][name] for label, name in choices.items()))

    def score(self, choices: Mapping[str, str]) -> Row:
        """One row of the ranking: the architecture's code, parameters, FLOPs and PSNR (dB)."""
        start = time.time()
        network = self.network(choices)
        with recalibrated_bn(network, self.calibration, self.device):  # the super-network's statistics come back
            psnr = mean_psnr(network, self.monitor, self.device)
        return {"code": Genotype(self.supernet.config, dict(choices)).code(), "params": count_parameters(network),
                "flops": self.flops(choices), "psnr": round(psnr, 6), "seconds": round(time.time() - start, 3)}


    def score_tree(self, todo: Sequence[str] | None = None, emit: Callable[[Row], None] = lambda row: None) -> None:
        """Score every architecture (or those whose codes are in ``todo``), in :func:`all_choices` order,
        sharing the work of common prefixes: a depth-first walk over the columns keeps, after each column,
        the calibration and validation activations and the BatchNorm statistics the prefix gives, so each
        architecture only runs what follows its last shared column. The same scores as :meth:`score`
        (every layer's statistics depend only on the layers before it); ``emit`` gets each row.
        """
        config = self.supernet.config
        labels = config.labels
        letters = {name[0].upper(): name for name in CANDIDATES}
        wanted = None if todo is None else {c.replace("|", "")[:d] for c in todo for d in range(len(labels) + 1)}
        # after each column (and after the stem): the fixed modules that follow it up to the next column
        after: dict[int, list[nn.Module]] = {-1: [self.supernet.stem]}
        k = 0
        for i, cell in enumerate(self.supernet.cells):
            after.setdefault(k - 1, []).append(self.supernet.transitions[i])
            k += len(cell)
        after.setdefault(k - 1, []).append(self.supernet.head)
        columns = [column for _, column in self.supernet.columns()]
        inputs = [x.to(self.device) for x, _ in self.monitor]
        clean = [y.to(self.device) for _, y in self.monitor]

        def run(modules: list[nn.Module], cal: list[Any], mon: list[Any]) -> tuple[list[Any], list[Any]]:
            for m in modules:  # its BatchNorm statistics from the prefix's calibration activations, then validate
                cal = estimate_bn(batch_norms(m), lambda: [m(c) for c in cal])  # noqa: B023 - called at once
                m.eval()
                with torch.no_grad():
                    mon = [m(v) for v in mon]
            return cal, mon

        def walk(prefix: str, start: float, cal: list[Any], mon: list[Any]) -> float:
            if wanted is not None and prefix not in wanted:
                return start
            if len(prefix) == len(labels):
                out = [o + x if config.global_residual else o for o, x in zip(mon, inputs)]
                psnr = float(sum(batch_psnr(o, y) for o, y in zip(out, clean))) / len(out)
                choices = {label: letters[c] for label, c in zip(labels, prefix)}
                emit({"code": Genotype(config, choices).code(), "params": count_parameters(self.network(choices)),
                      "flops": self.flops(choices), "psnr": round(psnr, 6), "seconds": round(time.time() - start, 3)})
                return time.time()
            for letter, name in letters.items():
                module = self.supernet._chosen(columns[len(prefix)], name)
                start = walk(prefix + letter, start, *run([module, *after.get(len(prefix), [])], cal, mon))
            return start

        with kept_bn_stats(self.supernet):
            cal = [x.to(self.device) for x, _ in self.calibration]
            walk("", time.time(), *run(after[-1], cal, inputs))


def space_size(space: SpaceConfig) -> int:
    """Number of architectures of ``space``."""
    return len(CANDIDATES) ** len(space.labels)


def all_choices(space: SpaceConfig) -> Iterator[dict[str, str]]:
    """Every architecture of ``space``, in a fixed order (the first column varies slowest)."""
    for picks in itertools.product(CANDIDATES, repeat=len(space.labels)):
        yield dict(zip(space.labels, picks))


def choices_of(space: SpaceConfig, code: str) -> dict[str, str]:
    """The choices of a code such as ``FPFF|FFPF|PFFP``."""
    letters = code.replace("|", "")
    by_letter = {name[0].upper(): name for name in CANDIDATES}
    if len(letters) != len(space.labels) or any(c not in by_letter for c in letters):
        raise ValueError(f"{code!r} is not an architecture code of this space ({len(space.labels)} letters of "
                         f"{sorted(by_letter)})")
    return {label: by_letter[c] for label, c in zip(space.labels, letters)}


def read_rows(path: str | Path) -> list[Row]:
    """The rows of a ``ranking.csv`` (numbers parsed); a missing file has none. A last line cut short by a
    crash is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            try:
                rows.append({"code": raw["code"], "params": int(raw["params"]), "flops": int(raw["flops"]),
                             "psnr": float(raw["psnr"]), "seconds": float(raw["seconds"])})
            except (KeyError, TypeError, ValueError):
                break  # a partial last line
    return rows


class _Appender:
    """Appends rows to the ranking CSV (header first), one flushed line per row."""

    def __init__(self, path: Path, rows: Sequence[Row]) -> None:
        self.path = path
        # rewritten from the parsed rows: a line cut short by a crash is dropped
        atomic_write_text(path, ",".join(FIELDS) + "\n" + "".join(self._line(r) for r in rows))

    @staticmethod
    def _line(row: Row) -> str:
        return ",".join(str(row[k]) for k in FIELDS) + "\n"

    def __call__(self, row: Row) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(self._line(row))


def rank_space(scorer: Scorer, path: str | Path, *, budget: int | None = None, max_enumerate: int = MAX_ENUMERATE,
               seed: int = 0, progress: bool = True,
               on_row: Callable[[Row], None] | None = None) -> tuple[list[Row], str]:
    """Score the space's architectures into the CSV ``path``, continuing the rows it already holds.

    Parameters
    ----------
    scorer
        Scores one architecture.
    path
        ``ranking.csv``: appended to as architectures are scored.
    budget
        Architectures the evolution scores (a space over ``max_enumerate``); default ``max_enumerate``.
    max_enumerate
        Largest space ranked whole.
    seed
        The evolution's random seed.
    progress
        A tqdm bar on stderr.
    on_row
        Called with each newly scored row.

    Returns
    -------
    rows, method
        Every scored row (in scoring order) and ``exhaustive`` or ``evolution``.
    """
    from tqdm import tqdm

    space = scorer.supernet.config
    path = Path(path)
    rows = read_rows(path)
    done = {r["code"]: r for r in rows}
    append = _Appender(path, rows)
    total = space_size(space)
    method = "exhaustive" if total <= max_enumerate else "evolution"
    budget = min(total, budget or max_enumerate)
    bar = tqdm(total=total if method == "exhaustive" else budget, initial=len(done), desc="rank", unit="arch",
               disable=not progress, dynamic_ncols=True, file=sys.stderr,
               mininterval=0.1 if sys.stderr.isatty() else 30.0)  # in a log: a line every 30 s

    def record(row: Row) -> None:
        done[row["code"]] = row
        rows.append(row)
        append(row)
        bar.update(1)
        if on_row is not None:
            on_row(row)

    def score(choices: Mapping[str, str]) -> Row:
        code = Genotype(space, dict(choices)).code()
        if code not in done:
            record(scorer.score(choices))
        return done[code]

    try:
        if method == "exhaustive":
            todo = [c for c in (Genotype(space, ch).code() for ch in all_choices(space)) if c not in done]
            if todo:
                scorer.score_tree(todo, record)
        else:
            _evolve(space, score, budget, seed, lambda: len(done))
    finally:
        bar.close()
    return rows, method


def _evolve(space: SpaceConfig, score: Callable[[Mapping[str, str]], Row], budget: int, seed: int,
            scored: Callable[[], int]) -> None:
    """Regularized (aging) evolution: a population of random architectures; each cycle the best of a random
    sample gets one column flipped, the child joins and the oldest member leaves; until ``budget`` scored."""
    rng = random.Random(seed)
    labels = space.labels
    population_size = max(2, min(64, budget // 4))
    sample_size = max(2, population_size // 4)
    population: collections.deque[tuple[dict[str, str], float]] = collections.deque()
    tries = 0
    while scored() < budget and tries < 100 * budget:  # tries: a space too small for unseen children
        tries += 1
        if len(population) < population_size:
            child = {label: rng.choice(CANDIDATES) for label in labels}
        else:
            parent = max(rng.sample(list(population), sample_size), key=lambda m: m[1])[0]
            child = dict(parent)
            flip = rng.choice(labels)
            child[flip] = next(c for c in CANDIDATES if c != child[flip])
        population.append((child, score(child)["psnr"]))
        if len(population) > population_size:
            population.popleft()


def pareto_front(rows: Sequence[Row], cost: str = "params") -> list[Row]:
    """The architectures no other one beats on both ``cost`` (fewer) and PSNR (higher), by ``cost``."""
    front: list[Row] = []
    for row in sorted(rows, key=lambda r: (r[cost], -r["psnr"])):
        if not front or row["psnr"] > front[-1]["psnr"]:
            front.append(row)
    return front


def best_row(rows: Sequence[Row], max_params: int | None = None, max_flops: int | None = None) -> Row:
    """The highest-PSNR row within the limits.

    Raises
    ------
    ValueError
        No architecture fits the limits (the message names the smallest ones).
    """
    fits = [r for r in rows if (max_params is None or r["params"] <= max_params)
            and (max_flops is None or r["flops"] <= max_flops)]
    if not fits:
        raise ValueError(f"no ranked architecture has at most {max_params if max_params is not None else 'any'} "
                         f"parameters and {max_flops if max_flops is not None else 'any'} FLOPs (the smallest has "
                         f"{min(r['params'] for r in rows)} parameters, {min(r['flops'] for r in rows)} FLOPs)")
    return max(fits, key=lambda r: (r["psnr"], -r["params"]))


def write_pareto(rows: Sequence[Row], path: str | Path) -> list[Row]:
    """Write the Pareto front (PSNR against parameters) as a CSV; return it."""
    front = pareto_front(rows)
    atomic_write_text(path, ",".join(FIELDS) + "\n" + "".join(_Appender._line(r) for r in front))
    return front


def plot_pareto(rows: Sequence[Row], path: str | Path, searched: str | None = None, best: str | None = None,
                title: str = "") -> None:
    """PNG of every architecture's PSNR against its parameters, the Pareto front drawn, the searched
    genotype (``searched``, a code) and the chosen one (``best``) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(rows)
    by_code = {r["code"]: r for r in rows}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r["params"] / 1e6 for r in rows], [r["psnr"] for r in rows], s=8, color="0.6",
               label=f"{len(rows)} architectures")
    ax.step([r["params"] / 1e6 for r in front], [r["psnr"] for r in front], where="post", color="C0",
            marker="o", ms=4, label=f"Pareto front ({len(front)})")
    for code, style, name in ((searched, dict(marker="*", s=220, color="C3"), "searched"),
                              (best, dict(marker="D", s=60, facecolors="none", edgecolors="k"), "chosen")):
        if code in by_code:
            r = by_code[code]
            ax.scatter([r["params"] / 1e6], [r["psnr"]], zorder=3, label=f"{name} {code}", **style)
    ax.set(xlabel="parameters (M)", ylabel="PSNR (dB), inherited weights",
           title=title or "architectures scored with the super-network's weights")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def rank_supernet(scorer: Scorer, folder: str | Path, settings: Mapping[str, Any], *, searched: str | None = None,
                  max_params: int | None = None, max_flops: int | None = None, budget: int | None = None,
                  progress: bool = True, on_row: Callable[[Row], None] | None = None,
                  label: str = "") -> dict[str, Any]:
    """Rank the space into ``folder`` (``ranking.csv``, continued if there; ``pareto.csv``, ``pareto.png``,
    ``ranking.json``) and return ``ranking.json``'s content: ``settings`` (how it was ranked), ``method``,
    ``ranked``, ``pareto``, the limits, ``best`` (the best row within them) and ``searched`` (the row of the
    code ``searched``, or None); ``label`` starts the plot's title. Both ``clearer-nni rank`` and a search's
    ``--select rank`` rank this way.

    Raises ``ValueError`` when no architecture meets the limits (the rows are kept).
    """
    folder = Path(folder)
    total = space_size(scorer.supernet.config)
    if total > MAX_ENUMERATE:
        print(f"note: the space has {total} architectures, over {MAX_ENUMERATE}: ranking {budget or MAX_ENUMERATE} "
              "of them found by regularized evolution over the same scorer, not all", file=sys.stderr)
    rows, method = rank_space(scorer, folder / "ranking.csv", budget=budget, progress=progress, on_row=on_row)
    best = best_row(rows, max_params, max_flops)
    front = write_pareto(rows, folder / "pareto.csv")
    plot_pareto(rows, folder / "pareto.png", searched=searched, best=best["code"],
                title=f"{label}{len(rows)} architectures, inherited weights ({method})")
    summary = {"settings": dict(settings), "method": method, "ranked": len(rows), "pareto": len(front),
               "max_params": max_params, "max_flops": max_flops, "best": best,
               "searched": next((r for r in rows if r["code"] == searched), None)}
    atomic_write_text(folder / "ranking.json", json.dumps(summary, indent=2) + "\n")
    return summary


def check_limits(space: SpaceConfig, max_params: int | None = None, max_flops: int | None = None,
                 flops_size: int = 64) -> None:
    """Raise :func:`best_row`'s ``ValueError`` now when no architecture of ``space`` meets the limits, so that a
    search ranking under them (``--rank-max-params``) fails before it trains. Parameters and FLOPs add up over
    the columns (as :class:`Scorer` counts them): every architecture of a space of at most
    :data:`MAX_ENUMERATE` is costed without being built; a larger space checks the cheapest ones."""
    if max_params is None and max_flops is None:
        return
    from .regularizers import candidate_costs

    columns = {m: candidate_costs(space, m, flops_size) for m in ("params", "flops")}
    first = {label: CANDIDATES[0] for label in space.labels}
    network = Genotype(space, first).build()
    whole = {"params": count_parameters(network), "flops": network_flops(network, space.in_channels, flops_size)}
    fixed = {m: whole[m] - sum(columns[m][label][name] for label, name in first.items()) for m in columns}
    if space_size(space) <= MAX_ENUMERATE:
        options: Any = all_choices(space)
    else:
        options = [{label: min(c, key=c.get) for label, c in columns[m].items()} for m in columns]
    best_row([{"psnr": 0.0, **{m: int(fixed[m] + sum(columns[m][label][name] for label, name in choices.items()))
                               for m in columns}} for choices in options], max_params, max_flops)
