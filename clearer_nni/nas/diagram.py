"""A picture of a searched network, drawn like the paper's Fig. 1(c).

Resolutions are rows (full resolution on top, each transition adds the next lower one below); from left
to right: the stem, then per cell its transition module and its columns, then the head (fusion to full
resolution and a 1x1 convolution). Each column is drawn as the module it chose: a *parallel* module
(each branch keeps its resolution: horizontal lines) or a *fusion* module (every branch exchanges with
every other: crossing lines), coloured by the column's final P(parallel) from the search's softmax(α).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..archs.space import CANDIDATES, column_label
from .genotype import Genotype

__all__ = ["COLUMN_GID", "genotype_figure", "draw_genotype"]

#: Prefix of the ``gid`` of each column's patch (``column:cell1.col1``), so a figure can be checked.
COLUMN_GID = "column:"

_GREY = "#d9d9d9"
_NODE = dict(s=22, c="white", edgecolors="black", linewidths=0.8, zorder=4)


def _scale_name(k: int) -> str:
    return "1x" if k == 0 else f"1/{2 ** k}x"


def _p_parallel(genotype: Genotype, label: str) -> float | None:
    probs = genotype.alpha.get(label)
    return None if not probs else float(probs[CANDIDATES[0]])


def genotype_figure(genotype: Genotype, title: str | None = None) -> Any:
    """The diagram as a :class:`matplotlib.figure.Figure` (close it after use).

    Every searched column is one patch whose ``gid`` is ``COLUMN_GID + label``, coloured by P(parallel)
    (the chosen module when the genotype records no α).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.patches import FancyBboxPatch

    space = genotype.space
    n_cells = space.num_cells
    cmap, norm = plt.get_cmap("coolwarm"), Normalize(0.0, 1.0)
    width = 1 + sum(1 + n for n in space.columns) + 1  # stem, (transition + columns) per cell, head
    unit = 0.5  # inches per grid step
    fig, ax = plt.subplots(figsize=(unit * (width + 4.5) + 0.8, unit * (n_cells + 3.2) + 0.3), dpi=130)

    def box(x: float, top: int, bottom: int, color: Any, text: str = "", gid: str | None = None,
            text_color: str = "black") -> None:
        patch = FancyBboxPatch((x - 0.32, -bottom - 0.32), 0.64, bottom - top + 0.64,
                               boxstyle="round,pad=0.02,rounding_size=0.12", fc=color, ec="black", lw=0.8,
                               zorder=2, gid=gid)
        ax.add_patch(patch)
        if text:
            ax.text(x, -bottom - 0.45, text, ha="center", va="top", fontsize=7, color=text_color)

    def nodes(x: float, rows: int) -> None:
        ax.scatter([x] * rows, [-k for k in range(rows)], **_NODE)

    def flow(x0: float, x1: float, rows: int) -> None:
        for k in range(rows):
            ax.plot([x0 + 0.32, x1 - 0.32], [-k, -k], color="black", lw=0.8, zorder=1)

    x = 0.0
    ax.annotate("", xy=(x - 0.34, 0), xytext=(x - 1.0, 0), arrowprops=dict(arrowstyle="->", lw=0.9))
    ax.text(x - 1.05, 0.18, "input", ha="left", fontsize=7)
    box(x, 0, 0, _GREY, "stem")
    nodes(x, 1)
    rows = 1
    missing_alpha = False
    for i, n_columns in enumerate(space.columns, start=1):
        x_prev, x = x, x + 1
        flow(x_prev, x, rows)
        box(x, 0, rows, _GREY, "transition")
        ax.plot([x, x], [-(rows - 1), -rows], color="black", lw=0.8, ls="--", zorder=3)  # strided conv down
        rows += 1
        nodes(x, rows)
        for j in range(1, n_columns + 1):
            label = column_label(i, j)
            x_prev, x = x, x + 1
            flow(x_prev, x, rows)
            choice = genotype.choices[label]
            p = _p_parallel(genotype, label)
            if p is None:
                missing_alpha = True
            value = p if p is not None else float(choice == CANDIDATES[0])
            color = cmap(norm(value))
            box(x, 0, rows - 1, color, gid=COLUMN_GID + label)
            if choice == "fusion":  # every branch to every other
                for a in range(rows):
                    for b in range(a + 1, rows):
                        ax.plot([x - 0.2, x + 0.2], [-a, -b], color="black", lw=0.6, zorder=3)
                        ax.plot([x - 0.2, x + 0.2], [-b, -a], color="black", lw=0.6, zorder=3)
            else:
                for k in range(rows):
                    ax.plot([x - 0.2, x + 0.2], [-k, -k], color="black", lw=1.6, zorder=3)
            nodes(x - 0.2, rows)
            nodes(x + 0.2, rows)
            letter = "P" if choice == "parallel" else "F"
            ax.text(x, 0.42, letter, ha="center", va="bottom", fontsize=9, weight="bold")
            ax.text(x, -(rows - 1) - 0.45, f"c{i}.{j}" + ("" if p is None else f"\n{p:.2f}"),
                    ha="center", va="top", fontsize=6.5)
    x_prev, x = x, x + 1
    flow(x_prev, x, rows)
    box(x, 0, rows - 1, _GREY, "head")
    for k in range(1, rows):  # the head fuses every branch into full resolution
        ax.plot([x - 0.2, x + 0.2], [-k, 0], color="black", lw=0.6, zorder=3)
    ax.annotate("", xy=(x + 1.0, 0), xytext=(x + 0.34, 0), arrowprops=dict(arrowstyle="->", lw=0.9))
    ax.text(x + 1.0, 0.18, "output", ha="right", fontsize=7)

    for k in range(rows):
        ax.text(-1.9, -k, f"{_scale_name(k)}\n{space.channels[k]} ch", ha="right", va="center", fontsize=7.5)
    ax.set_xlim(-2.6, x + 1.3)
    ax.set_ylim(-(rows - 1) - 1.25, 0.95)
    ax.set_aspect("equal")
    ax.axis("off")
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax, fraction=0.02, pad=0.01, shrink=0.8)
    bar.set_label("P(parallel)" + (" (no α: the choice)" if missing_alpha else ""), fontsize=8)
    bar.ax.tick_params(labelsize=7)
    counts = genotype.counts()
    ax.set_title(title or f"searched network {genotype.code()}: {counts['parallel']} parallel (P), "
                 f"{counts['fusion']} fusion (F) columns", fontsize=9)
    fig.tight_layout()
    return fig


def draw_genotype(genotype: Genotype, path: str | Path, title: str | None = None) -> Path:
    """Write :func:`genotype_figure` as a PNG to ``path``, atomically."""
    import matplotlib.pyplot as plt

    from ..runtime import atomic_write

    fig = genotype_figure(genotype, title)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
    finally:
        plt.close(fig)
