"""CLEARER's multi-scale search space as an NNI ``ModelSpace`` (SPEC section 1, paper section 3.1).

Input → stem (full resolution) → S × (transition module, cell of N_i searched columns) → final
fusion to full resolution → 1x1 conv. Each column is one NNI ``LayerChoice`` between a
``parallel`` and a ``fusion`` module, labelled ``cell{i}.col{j}`` (1-based).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn
import yaml
from nni.nas.nn.pytorch import LayerChoice, ModelSpace

from .modules import (AuthorsStem, Branches, FusionModule, Head, PaperStem, ParallelModule,
                      TransitionModule, init_weights)

__all__ = [
    "CANDIDATES",
    "MIXING_MODES",
    "SpaceConfig",
    "SpaceFileError",
    "ClearerSpace",
    "ClearerNetwork",
    "AuthorsFusion",
    "column_label",
    "count_parameters",
    "load_space_file",
]

#: Candidate names of every column, in the order of the architecture weights.
CANDIDATES = ("parallel", "fusion")
#: ``paper``: Eq. 1, ``a_p P(y) + a_f F(y)``; ``authors``: the authors' code, ``a_p P(y) + a_f F(P(y))``.
MIXING_MODES = ("paper", "authors")
STEMS = ("authors", "paper")


class SpaceFileError(ValueError):
    """A search-space file or configuration is malformed."""


def column_label(cell: int, column: int) -> str:
    """Stable, readable label of a searched column (both 1-based), e.g. ``cell2.col3``."""
    return f"cell{cell}.col{column}"


@dataclass(frozen=True)
class SpaceConfig:
    """Everything that defines the super-network (and so which genotypes fit it).

    Parameters
    ----------
    in_channels, out_channels
        Image channels (1 for grayscale denoising, 3 for deraining).
    channels
        Channels per scale, full resolution first; needs at least ``len(columns) + 1`` entries.
    columns
        Number of searched columns N_i of each cell; its length is the number of cells S.
    stem
        ``authors`` (two HRNet bottlenecks to ``4 * channels[0]``) or ``paper`` ("two parallel modules").
    global_residual
        Add the input to the output (predict the residual); the authors' code does not.
    """

    in_channels: int = 1
    out_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 128, 256)
    columns: tuple[int, ...] = (4, 4, 4)
    stem: str = "authors"
    global_residual: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "columns", tuple(int(n) for n in self.columns))
        problems = []
        if self.in_channels < 1 or self.out_channels < 1:
            problems.append("in_channels and out_channels must be >= 1")
        if not self.columns or any(n < 1 for n in self.columns):
            problems.append(f"columns must list at least one cell, each with >= 1 column, got {list(self.columns)}")
        if any(c < 1 for c in self.channels):
            problems.append(f"channels must be positive, got {list(self.channels)}")
        if len(self.channels) < len(self.columns) + 1:
            problems.append(f"{len(self.columns)} cells need {len(self.columns) + 1} scales in channels, "
                            f"got {len(self.channels)}: {list(self.channels)}")
        if self.stem not in STEMS:
            problems.append(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.global_residual and self.in_channels != self.out_channels:
            problems.append("global_residual needs in_channels == out_channels")
        if problems:
            raise SpaceFileError("invalid space: " + "; ".join(problems))

    @property
    def num_cells(self) -> int:
        return len(self.columns)

    @property
    def labels(self) -> list[str]:
        """Labels of all searched columns, in network order."""
        return [column_label(i + 1, j + 1) for i, n in enumerate(self.columns) for j in range(n)]

    def branch_channels(self, cell: int) -> list[int]:
        """Channels of the branches inside cell ``cell`` (1-based): ``cell + 1`` scales."""
        return list(self.channels[: cell + 1])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"], d["columns"] = list(self.channels), list(self.columns)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "space") -> "SpaceConfig":
        if not isinstance(d, dict):
            raise SpaceFileError(f"{source}: the space must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpaceFileError(f"{source}: unknown space key(s) {unknown}; known: {sorted(known)}")
        d = dict(d)
        if isinstance(d.get("columns"), int):  # shorthand: the same N for the default 3 cells
            d["columns"] = [d["columns"]] * 3
        try:
            return cls(**d)
        except TypeError as exc:
            raise SpaceFileError(f"{source}: {exc}") from None


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; :class:`SpaceFileError` naming the file otherwise (also when
    it is something else: an image, a checkpoint...)."""
    from ..runtime import expect_file, sniff

    path = expect_file(path, what, SpaceFileError)
    kind = sniff(path)
    if kind is not None and kind != "a JSON file":  # JSON is YAML
        raise SpaceFileError(f"{path}: not a {what} file (YAML), it is {kind}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpaceFileError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise SpaceFileError(f"{path}: not a text (YAML) {what} file") from None
    if not isinstance(doc, dict):
        raise SpaceFileError(f"{path}: a {what} file must be a mapping")
    return doc


def load_space_file(path: str | Path) -> SpaceConfig:
    """Read a declarative space file (YAML), or a shipped one by name (``denoise``, ``demo``...): its ``space:``.

    The file may also name the run recipe it is searched with by default (``recipe: demo``, see
    :mod:`clearer_nni.config`); run settings themselves belong in recipes, not here.
    """
    from ..bundled import space_path

    try:
        path = space_path(path)
    except FileNotFoundError as exc:
        raise SpaceFileError(str(exc)) from None
    doc = read_yaml(path, "space")
    if "space" not in doc:
        raise SpaceFileError(f"{path}: expected a mapping with a 'space:' section")
    if "search" in doc:
        raise SpaceFileError(f"{path}: run settings ('search:') belong in a recipe file (recipes/*.yaml, given with "
                             "--recipe or named by the space file's 'recipe:'), not in the space file")
    unknown = sorted(set(doc) - {"space", "recipe", "description"})
    if unknown:
        raise SpaceFileError(f"{path}: unknown top-level key(s) {unknown}; known: description, space, recipe")
    space = SpaceConfig.from_dict(doc["space"], source=str(path))
    if len(space.channels) != space.num_cells + 1:
        # SpaceConfig itself accepts extra scales (older genotypes may carry them); a file that lists
        # them is a mistake: the extra entries would be ignored
        raise SpaceFileError(f"{path}: channels lists {len(space.channels)} scales {list(space.channels)} but columns "
                             f"{list(space.columns)} make {space.num_cells} cells, which use {space.num_cells + 1}: "
                             "the extra entries would be ignored; list exactly one per scale")
    return space


class AuthorsFusion(nn.Module):
    """The fusion candidate as the authors' code computes it: ``F(P(y))``, sharing ``P`` with the parallel candidate."""

    def __init__(self, parallel: ParallelModule, fusion: FusionModule) -> None:
        super().__init__()
        self.parallel = [parallel]  # a list so the shared module is not registered (and counted) twice
        self.fusion = fusion

    def forward(self, branches: Branches) -> Branches:
        return self.fusion(self.parallel[0](branches))


class _ClearerForward:
    """The forward pass shared by the super-network and the derived network."""

    config: SpaceConfig
    stem: nn.Module
    transitions: nn.ModuleList
    cells: nn.ModuleList
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.stem(x)
        for transition, cell in zip(self.transitions, self.cells):
            branches = transition(branches)
            for column in cell:
                branches = column(branches)
        out = self.head(branches)
        return out + x if self.config.global_residual else out

    def columns(self) -> Iterator[tuple[str, nn.Module]]:
        """(label, column module) pairs in network order: a ``LayerChoice`` (or its mixed/frozen form)."""
        for i, cell in enumerate(self.cells, start=1):
            for j, column in enumerate(cell, start=1):
                yield column_label(i, j), column


class ClearerNetwork(_ClearerForward, nn.Module):
    """A derived CLEARER network: plain PyTorch, no NNI mutables (build it with ``Genotype.build``)."""

    def __init__(self, config: SpaceConfig, stem: nn.Module, transitions: nn.ModuleList, cells: nn.ModuleList,
                 head: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.stem, self.transitions, self.cells, self.head = stem, transitions, cells, head


class ClearerSpace(_ClearerForward, ModelSpace):
    """CLEARER's super-network; ``freeze({label: 'parallel' | 'fusion', ...})`` gives a plain network.

    Parameters
    ----------
    config
        The space (a :class:`SpaceConfig` or its dict form).
    mixing
        ``paper`` (Eq. 1, default) or ``authors`` (the authors' ``F(P(y))``, for reproducing their search).
    """

    def __init__(self, config: SpaceConfig | dict[str, Any] | None = None, mixing: str = "paper") -> None:
        super().__init__()
        if config is None:
            config = SpaceConfig()
        elif isinstance(config, dict):
            config = SpaceConfig.from_dict(config)
        if mixing not in MIXING_MODES:
            raise ValueError(f"mixing must be one of {MIXING_MODES}, got {mixing!r}")
        self.config = config
        c = config
        if c.stem == "authors":
            self.stem: nn.Module = AuthorsStem(c.in_channels, c.channels[0])
        else:
            self.stem = PaperStem(c.in_channels, c.channels[0])
        prev = [self.stem.out_channels]
        self.transitions = nn.ModuleList()
        self.cells = nn.ModuleList()
        for i, n_columns in enumerate(c.columns, start=1):
            branch_ch = c.branch_channels(i)
            self.transitions.append(TransitionModule(prev, branch_ch))
            columns = []
            for j in range(1, n_columns + 1):
                parallel, fusion = ParallelModule(branch_ch), FusionModule(branch_ch)
                fusion_candidate = AuthorsFusion(parallel, fusion) if mixing == "authors" else fusion
                columns.append(LayerChoice({"parallel": parallel, "fusion": fusion_candidate},
                                           label=column_label(i, j)))
            self.cells.append(nn.ModuleList(columns))
            prev = branch_ch
        self.head = Head(prev, c.out_channels)
        init_weights(self)

    @staticmethod
    def _chosen(column: nn.Module, name: str) -> nn.Module:
        # the authors' fusion candidate wraps the fusion module (F(P(y))); the derived column is F
        chosen = column[name]
        return chosen.fusion if isinstance(chosen, AuthorsFusion) else chosen

    def path(self, choices: Mapping[str, str]) -> "ClearerNetwork":
        """The derived network of ``choices`` made of this super-network's own modules (shared, not
        copied: scoring many architectures builds nothing). The super-network must be unfrozen."""
        cells = nn.ModuleList(nn.ModuleList(self._chosen(column, choices[column_label(i, j)])
                                            for j, column in enumerate(cell, start=1))
                              for i, cell in enumerate(self.cells, start=1))
        return ClearerNetwork(self.config, self.stem, self.transitions, cells, self.head)

    @classmethod
    def from_supernet_state(cls, config: SpaceConfig, state: Mapping[str, torch.Tensor],
                            mixing: str | None = None) -> "ClearerSpace":
        """An unfrozen super-network holding a search's weights (``state``: the mutated super-network's
        ``state_dict``, whose mixed layers' α are dropped: they are not weights of the space).

        ``mixing`` ``None``: the mode whose modules the weights fit (states saved before it was recorded).
        Raises ``ValueError`` when they fit none.
        """
        weights = {k: v for k, v in state.items() if not k.endswith("_arch_alpha")}
        problems = []
        for mode in ([mixing] if mixing is not None else list(MIXING_MODES)):
            supernet = cls(config, mixing=mode)
            try:
                supernet.load_state_dict(weights, strict=True)
                return supernet
            except RuntimeError as exc:
                problems.append(str(exc).splitlines()[0])
        raise ValueError(f"the weights do not fit the super-network of its space ({problems[-1]})")

    def transfer_to(self, network: "ClearerNetwork", choices: Mapping[str, str]) -> int:
        """Copy this super-network's weights of the candidates ``choices`` picks (and of the fixed parts:
        stem, transitions, head) into the derived ``network``; return the number of tensors copied.

        The super-network must be unfrozen (its columns still ``LayerChoice`` s, e.g. a fresh space that
        loaded a search's ``supernet.pt``). Raises ``ValueError`` when a part does not fit.
        """
        try:
            network.load_state_dict(self.path(choices).state_dict(), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"the super-network's weights do not fit the derived network: {exc}") from None
        return len(network.state_dict())

    def to_network(self) -> "ClearerNetwork":
        """The plain-PyTorch network of a frozen space (``space.freeze(sample).to_network()``)."""
        left = self.simplify()
        if left:
            raise ValueError(f"freeze the space first: columns {sorted(left)} are still undecided")
        return ClearerNetwork(self.config, self.stem, self.transitions, self.cells, self.head)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (shared ones once)."""
    return sum(p.numel() for p in module.parameters())

