"""What a table says: how reproducible its order is, and where an architecture stands in it.

A table ranks only when its seeds agree: the acceptance test (issue 20) asks for a mean pairwise Kendall
tau of at least 0.6 between the seeds' orders of the architectures, and for one architecture's spread over
seeds (the mean of the per-architecture standard deviations) below half the spread between architectures
(the standard deviation of their means).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

__all__ = ["PRIMARY", "Agreement", "ACCEPT_TAU", "ACCEPT_SPREAD_RATIO", "agreement", "means", "Standing", "standing",
           "percentile", "pareto_distance"]

#: The acceptance test of a table: mean pairwise Kendall tau between seeds, and the spread ratio.
ACCEPT_TAU, ACCEPT_SPREAD_RATIO = 0.6, 0.5
#: The figure architectures are ranked by: BSD68 (68 images, standard protocol), the larger test set.
PRIMARY = "bsd68_psnr"


def _frame(rows: Any) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def means(rows: Any, metric: str = PRIMARY) -> pd.Series:
    """Mean ``metric`` per architecture over its seeds, best first."""
    df = _frame(rows)
    return df.groupby("architecture")[metric].mean().sort_values(ascending=False)


@dataclass
class Agreement:
    """How far the seeds of a table agree on ``metric``.

    Attributes
    ----------
    tau
        Mean Kendall tau between the orders of every pair of seeds (over architectures every seed has).
    taus
        Each pair's tau, ``{(seed_a, seed_b): tau}``.
    within
        Mean over architectures of the standard deviation over seeds (dB).
    between
        Standard deviation of the architectures' mean (dB).
    architectures, seeds
        How many architectures and seeds the figures are over.
    """

    metric: str
    tau: float
    taus: dict[tuple[int, int], float]
    within: float
    between: float
    architectures: int
    seeds: int

    @property
    def ratio(self) -> float:
        """``within / between``: below 0.5 to accept."""
        return self.within / self.between if self.between > 0 else math.inf

    @property
    def accepted(self) -> bool:
        return self.tau >= ACCEPT_TAU and self.ratio < ACCEPT_SPREAD_RATIO

    def line(self) -> str:
        verdict = "accepted" if self.accepted else "not accepted"
        return (f"{self.metric}: {self.architectures} architectures x {self.seeds} seeds; Kendall tau between seeds "
                f"{self.tau:.2f} (pairs {', '.join(f'{t:.2f}' for t in self.taus.values())}); seed spread "
                f"{self.within:.3f} dB vs {self.between:.3f} dB between architectures (ratio {self.ratio:.2f}): "
                f"{verdict} (tau >= {ACCEPT_TAU}, ratio < {ACCEPT_SPREAD_RATIO})")


def agreement(rows: Any, metric: str = PRIMARY) -> Agreement:
    """The seed-to-seed agreement of a table (or a pilot's rows) on ``metric``."""
    from scipy.stats import kendalltau

    df = _frame(rows).dropna(subset=[metric])
    wide = df.pivot_table(index="architecture", columns="seed", values=metric, aggfunc="mean")
    full = wide.dropna()
    seeds = list(full.columns)
    taus = {}
    for a, b in itertools.combinations(seeds, 2):
        tau = kendalltau(full[a], full[b]).statistic
        taus[(int(a), int(b))] = float(tau) if tau == tau else 0.0
    within = statistics.fmean(full.std(axis=1, ddof=1)) if len(seeds) > 1 and len(full) else math.nan
    between = float(full.mean(axis=1).std(ddof=1)) if len(full) > 1 else math.nan
    tau = statistics.fmean(taus.values()) if taus else math.nan
    return Agreement(metric, tau, taus, within, between, len(full), len(seeds))


def percentile(value: float, others: Sequence[float]) -> float:
    """Share of ``others`` (in %) strictly below ``value``, ties counting half."""
    if not others:
        return math.nan
    below = sum(o < value for o in others) + 0.5 * sum(o == value for o in others)
    return 100.0 * below / len(others)


@dataclass
class Standing:
    """Where one architecture sits in a table."""

    architecture: str
    rank: int
    of: int
    psnr: float
    best: float
    best_architecture: str
    metric: str

    @property
    def regret(self) -> float:
        """The table's best mean minus this architecture's (dB)."""
        return self.best - self.psnr

    @property
    def top_percent(self) -> float:
        """``100 * rank / of``: 10 means within the top 10 %."""
        return 100.0 * self.rank / self.of

    def line(self) -> str:
        where = "the best" if self.rank == 1 else f"{self.regret:.2f} dB below the best ({self.best_architecture})"
        return (f"{self.architecture}: {_ordinal(self.rank)} of {self.of} in the table ({self.metric} mean "
                f"{self.psnr:.2f} dB), {where}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def standing(rows: Any, architecture: str, metric: str = PRIMARY) -> Standing:
    """The rank (1 = best) of ``architecture`` by its mean ``metric`` over seeds; ``KeyError`` if absent."""
    m = means(rows, metric)
    if architecture not in m.index:
        raise KeyError(architecture)
    rank = 1 + int((m > m[architecture]).sum())
    return Standing(architecture, rank, len(m), float(m[architecture]), float(m.iloc[0]), str(m.index[0]), metric)


def pareto_distance(rows: Any, architecture: str, metric: str = PRIMARY, cost: str = "params") -> float:
    """How far (dB) ``architecture`` lies below the table's (``cost``, mean ``metric``) Pareto front: the
    best mean PSNR among architectures at most as costly, minus its own (0 on the front)."""
    df = _frame(rows)
    table = df.groupby("architecture").agg(psnr=(metric, "mean"), cost=(cost, "first"))
    mine = table.loc[architecture]
    cheaper = table[table["cost"] <= mine["cost"]]
    return float(cheaper["psnr"].max() - mine["psnr"])
