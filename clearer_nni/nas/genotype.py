"""The genotype: a versioned JSON record of a searched architecture, and the network built from it.

Layout (version 1)::

    {"format": "clearer-nni-genotype", "version": 1,
     "space": {...SpaceConfig...},
     "choices": {"cell1.col1": "fusion", ...},          # one per column label
     "alpha": {"cell1.col1": {"parallel": 0.2, "fusion": 0.8}, ...},
     "metadata": {"lambda_arch": ..., "software": {...}, ...}}

Loading validates everything and raises :class:`GenotypeError` with one clear message. Nothing in a
genotype is ever executed: it is plain JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch.nn as nn

from ..archs.space import CANDIDATES, ClearerSpace, SpaceConfig, SpaceFileError, column_label
from ..runtime import atomic_write_text, expect_file, sniff, software_versions  # noqa: F401 - re-exported

__all__ = ["FORMAT", "VERSION", "DECIDED_P", "TIE_MARGIN", "Decidedness", "Genotype", "GenotypeError", "check_header",
           "software_versions", "atomic_write_text"]

FORMAT = "clearer-nni-genotype"
VERSION = 1


#: A column is decided when its larger softmax(α) (temperature 1) is at least this.
DECIDED_P = 0.9
#: A column whose margin ``|P(parallel) - P(fusion)|`` is below this is a near tie.
TIE_MARGIN = 0.1


@dataclass
class Decidedness:
    """How sure a search is of its architecture, from softmax(α) at temperature 1.

    Attributes
    ----------
    decided, total
        Columns whose larger probability is ``>= threshold``, and all columns.
    margins
        ``|P(parallel) - P(fusion)|`` per column label (0: a coin toss, 1: certain).
    ties
        Labels of the near ties (margin below ``TIE_MARGIN``).
    threshold
        The probability a decided column reaches.
    """

    decided: int
    total: int
    margins: dict[str, float]
    ties: list[str]
    threshold: float = DECIDED_P

    def line(self) -> str:
        """``k of N columns decided (p >= 0.9); margins: ...``."""
        margins = ", ".join(f"{label} {m:.2f}" for label, m in self.margins.items())
        return f"{self.decided} of {self.total} columns decided (p >= {self.threshold:g}); margins: {margins}"

    def warning(self) -> str | None:
        """A "search longer" warning when some columns are near ties, else None."""
        if not self.ties:
            return None
        return (f"{len(self.ties)} of {self.total} columns are near ties (margin < {TIE_MARGIN:g}: "
                f"{', '.join(self.ties)}): the genotype is barely chosen; search longer, or raise the "
                "alpha learning rate (--arch-lr-schedule scaled)")

    def to_dict(self) -> dict[str, Any]:
        return {"decided": self.decided, "total": self.total, "threshold": self.threshold,
                "margins": self.margins, "near_ties": self.ties}


class GenotypeError(ValueError):
    """A genotype file or object is malformed or does not fit the space it is used with."""


def check_header(doc: Mapping[str, Any], fmt: str, version: int, source: str, what: str,
                 error: type[Exception], required: tuple[str, ...] = (), hint: str = "") -> None:
    """Check a clearer-nni file's ``format``, ``version`` and required keys; raise ``error`` if wrong."""
    if doc.get("format") != fmt:
        raise error(f"{source}: not a clearer-nni {what} (format is {doc.get('format')!r}, expected {fmt!r}){hint}")
    if doc.get("version") != version:
        raise error(f"{source}: unsupported {what} version {doc.get('version')!r} "
                    f"(this clearer-nni reads version {version})")
    for key in required:
        if key not in doc:
            raise error(f"{source}: missing key {key!r}")


@dataclass
class Genotype:
    """A searched architecture: the space, one choice per column, the final α and metadata.

    Parameters
    ----------
    space
        The space the architecture was searched in.
    choices
        ``parallel`` or ``fusion`` for every column label of ``space``.
    alpha
        Final softmax(α) per column (optional; informative).
    metadata
        Free-form JSON-able facts (λ1, λ2, noise, steps, seed, PSNR, parameters, software versions...).
    """

    space: SpaceConfig
    choices: dict[str, str]
    alpha: dict[str, dict[str, float]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self, source: str = "genotype") -> None:
        """Check that the choices (and α) fit the space exactly; raise :class:`GenotypeError` if not."""
        if not isinstance(self.choices, Mapping):
            raise GenotypeError(f"{source}: 'choices' must be a mapping of column label to choice")
        labels = self.space.labels
        unknown = [k for k in self.choices if k not in labels]
        if unknown:
            raise GenotypeError(f"{source}: unknown column label(s) {unknown}; this space has {labels[0]}..{labels[-1]}")
        missing = [k for k in labels if k not in self.choices]
        if missing:
            raise GenotypeError(f"{source}: missing choice for column(s) {missing}")
        bad = {k: v for k, v in self.choices.items() if v not in CANDIDATES}
        if bad:
            raise GenotypeError(f"{source}: choices must be one of {list(CANDIDATES)}, got {bad}")
        if not isinstance(self.alpha, Mapping):
            raise GenotypeError(f"{source}: 'alpha' must be a mapping")
        for label, probs in self.alpha.items():
            if label not in labels:
                raise GenotypeError(f"{source}: 'alpha' has unknown column label {label!r}")
            if (not isinstance(probs, Mapping) or set(probs) != set(CANDIDATES)
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in probs.values())):
                raise GenotypeError(f"{source}: alpha[{label!r}] must map {list(CANDIDATES)} to finite numbers")
        if not isinstance(self.metadata, Mapping):
            raise GenotypeError(f"{source}: 'metadata' must be a mapping")

    def check_space(self, space: SpaceConfig, source: str = "genotype") -> None:
        """Raise :class:`GenotypeError` unless this genotype was made for ``space``."""
        if self.space != space:
            ours, theirs = self.space.to_dict(), space.to_dict()
            diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
            raise GenotypeError(f"{source} was made for another space; differences (genotype, expected): {diff}")

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "space": self.space.to_dict(),
                "choices": {label: self.choices[label] for label in self.space.labels},
                "alpha": self.alpha, "metadata": self.metadata}

    def save(self, path: str | Path) -> Path:
        """Write the genotype as JSON, atomically."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, doc: Any, source: str = "genotype") -> "Genotype":
        if not isinstance(doc, dict):
            raise GenotypeError(f"{source}: expected a JSON object, got {type(doc).__name__}")
        check_header(doc, FORMAT, VERSION, source, "genotype", GenotypeError, ("space", "choices"))
        try:
            space = SpaceConfig.from_dict(doc["space"], source=f"{source}: space")
        except SpaceFileError as exc:
            raise GenotypeError(str(exc)) from None
        geno = cls.__new__(cls)
        geno.space, geno.choices = space, doc["choices"]
        geno.alpha, geno.metadata = doc.get("alpha") or {}, doc.get("metadata") or {}
        geno.validate(source)
        if isinstance(geno.choices, dict):
            geno.choices = dict(geno.choices)
        return geno

    @classmethod
    def load(cls, path: str | Path, space: SpaceConfig | None = None) -> "Genotype":
        """Read and validate a genotype file; with ``space``, also check it was made for that space."""
        path = expect_file(path, "genotype", GenotypeError)
        kind = sniff(path)
        if kind is not None and kind != "a JSON file":
            raise GenotypeError(f"{path}: not a genotype JSON file, it is {kind}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GenotypeError(f"{path}: not valid JSON ({exc})") from None
        geno = cls.from_dict(doc, source=str(path))
        if space is not None:
            geno.check_space(space, source=str(path))
        return geno

    # -- building -----------------------------------------------------------------------------
    def build(self) -> nn.Module:
        """Freeze a fresh :class:`ClearerSpace` with these choices into a plain :class:`ClearerNetwork`."""
        return ClearerSpace(self.space).freeze(dict(self.choices)).to_network()

    def decidedness(self, threshold: float = DECIDED_P) -> Decidedness:
        """How decided ``alpha`` is (see :class:`Decidedness`); a genotype without α has 0 decided
        columns, each of margin 0."""
        margins, decided = {}, 0
        for label in self.space.labels:
            probs = self.alpha.get(label) or {name: 0.5 for name in CANDIDATES}
            margins[label] = round(abs(probs[CANDIDATES[0]] - probs[CANDIDATES[1]]), 4)
            decided += max(probs.values()) >= threshold
        ties = [label for label, m in margins.items() if m < TIE_MARGIN]
        return Decidedness(decided, len(margins), margins, ties, threshold)

    def counts(self) -> dict[str, int]:
        """How many columns chose each candidate."""
        return {name: sum(v == name for v in self.choices.values()) for name in CANDIDATES}

    def _letters(self) -> list[list[str]]:
        """Per cell, the initial of each column's choice (``P`` parallel, ``F`` fusion)."""
        return [[self.choices[column_label(i, j)][0].upper() for j in range(1, n + 1)]
                for i, n in enumerate(self.space.columns, start=1)]

    def summary(self) -> str:
        """One line per cell, e.g. ``cell1: F P F F``."""
        return "\n".join(f"cell{i}: " + " ".join(picks) for i, picks in enumerate(self._letters(), start=1))

    def code(self) -> str:
        """The choices on one line, cells separated: ``FPFF|FFPF|PFFP``."""
        return "|".join("".join(picks) for picks in self._letters())
