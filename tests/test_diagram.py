"""The picture of a searched network (paper Fig. 1(c)): one drawn module per searched column."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from clearer_nni.archs import SpaceConfig
from clearer_nni.nas.diagram import COLUMN_GID, draw_genotype, genotype_figure
from clearer_nni.nas.genotype import Genotype


def _columns(fig) -> list[str]:
    return [p.get_gid()[len(COLUMN_GID):] for ax in fig.axes for p in ax.patches
            if (p.get_gid() or "").startswith(COLUMN_GID)]


@pytest.mark.parametrize("space", [SpaceConfig(channels=(4, 8, 16), columns=(2, 2), stem="paper"),
                                   SpaceConfig(channels=(8, 16, 32, 64), columns=(4, 3, 5))])
def test_the_diagram_draws_each_column_once_coloured_by_its_probability(space):
    choices = {label: ("parallel" if k % 3 else "fusion") for k, label in enumerate(space.labels)}
    alpha = {label: {"parallel": 0.9 if c == "parallel" else 0.2, "fusion": 0.1 if c == "parallel" else 0.8}
             for label, c in choices.items()}
    fig = genotype_figure(Genotype(space, choices, alpha))
    try:
        assert _columns(fig) == space.labels
        colours = {p.get_gid()[len(COLUMN_GID):]: p.get_facecolor() for p in fig.axes[0].patches
                   if (p.get_gid() or "").startswith(COLUMN_GID)}
        # parallel columns (P 0.9) are drawn in another colour than fusion ones (P 0.2)
        assert len({colours[label] for label, c in choices.items() if c == "parallel"}) == 1
        assert colours[space.labels[0]] != colours[space.labels[1]]
    finally:
        plt.close(fig)


def test_draw_genotype_writes_a_png_without_alpha(tmp_path, tiny_space):
    geno = Genotype(tiny_space, {label: "fusion" for label in tiny_space.labels})
    path = draw_genotype(geno, tmp_path / "genotype.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert [p.name for p in tmp_path.iterdir()] == ["genotype.png"]  # no temporary file left
