"""Geometric self-ensemble at test time: restore flipped and rotated copies, undo the transforms, average.

The paper uses "rotation and flip ... during search, training and testing". Two ensembles are offered:

- ``8`` (default when the ensemble is on): the 8 dihedral transforms, the identity included (the usual
  "x8" of EDSR, SwinIR, KAIR);
- ``authors``: the CLEARER authors' test code, which averages the 7 non-identity transforms and never
  the untransformed image.

Transform ``k`` is :func:`~clearer_nni.data.dihedral` ``k`` (``k % 4`` quarter turns, then a flip when
``k >= 4``); ``0`` is the identity.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["ENSEMBLES", "ENSEMBLE_HELP", "check_ensemble", "self_ensemble"]

#: Ensemble name → the dihedral transforms it averages.
ENSEMBLES: dict[str, tuple[int, ...]] = {"8": tuple(range(8)), "authors": tuple(range(1, 8))}

ENSEMBLE_HELP = ("geometric self-ensemble: '8' (alone: --self-ensemble) averages the 8 flips/rotations, "
                 "'authors' the authors' 7 without the identity")


def check_ensemble(mode: str | bool | None) -> str | None:
    """The ensemble's name (``True`` means ``"8"``), or ``None`` when off; ``ValueError`` if unknown."""
    if mode is None or mode is False:
        return None
    name = "8" if mode is True else str(mode)
    if name not in ENSEMBLES:
        raise ValueError(f"unknown self-ensemble {mode!r}; expected one of {list(ENSEMBLES)}")
    return name


def self_ensemble(restore: Callable[[np.ndarray], np.ndarray], x: np.ndarray, mode: str | bool = "8") -> np.ndarray:
    """Mean of ``inverse(restore(transform(x)))`` over the transforms of ensemble ``mode``.

    Parameters
    ----------
    restore
        Maps an ``H x W x C`` image (or ``W x H x C``, after a quarter turn) to one of the same shape.
    x
        The degraded image, ``H x W x C``.
    mode
        A key of :data:`ENSEMBLES` (``True``: ``"8"``).
    """
    from .data import dihedral, inverse_dihedral

    name = check_ensemble(mode)
    if name is None:
        raise ValueError("self_ensemble needs an ensemble, got none")
    transforms = ENSEMBLES[name]
    total = np.zeros(x.shape, dtype=np.float64)
    for k in transforms:
        total += inverse_dihedral(restore(np.ascontiguousarray(dihedral(x, k))), k)
    return (total / len(transforms)).astype(np.float32)
