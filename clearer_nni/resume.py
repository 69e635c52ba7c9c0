"""Resumable training state: atomic checkpoint files, the newest complete one, and RNG states.

A checkpoint is one ``torch.save`` file of plain types and tensors (loadable with
``torch.load(weights_only=True)``), written to a temporary name and renamed, so a crash or SIGKILL
never leaves a torn file under a checkpoint's name. A file that is torn or corrupt anyway (a full
disk, a copied folder) is skipped with a warning and the previous one is used.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointStore", "save_atomic", "capture_rng", "restore_rng"]

_NAME = re.compile(r"^step-(\d+)\.pt$")


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states as plain types and tensors."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointStore:
    """A folder of ``step-NNNNNN.pt`` checkpoints, keeping the newest ``keep``.

    Parameters
    ----------
    folder
        Where the checkpoints live (created on the first save).
    fmt
        A format tag stored in (and required of) every checkpoint, e.g. ``clearer-nni-search-state``.
    keep
        How many checkpoints to keep (>= 2, so a torn newest one still leaves a good one).
    """

    def __init__(self, folder: str | Path, fmt: str, keep: int = 2) -> None:
        self.folder, self.fmt, self.keep = Path(folder), fmt, max(2, int(keep))

    def paths(self) -> list[Path]:
        """Checkpoint files, newest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = save_atomic({"format": self.fmt, "version": 1, "step": int(step), **payload},
                           self.folder / f"step-{int(step):07d}.pt")
        for old in self.paths()[self.keep:]:
            old.unlink(missing_ok=True)
        return path

    def load(self, path: str | Path) -> dict[str, Any]:
        """Load one checkpoint; ``ValueError`` if it is torn, corrupt or of another format."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torn zip, truncated pickle, unsafe content...
            raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != self.fmt:
            raise ValueError(f"{path}: not a {self.fmt} checkpoint")
        return payload

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest complete checkpoint, skipping (with a warning) any that cannot be read."""
        for path in self.paths():
            try:
                return path, self.load(path)
            except ValueError as exc:
                warnings.warn(f"skipping {exc}; falling back to the previous checkpoint", RuntimeWarning)
        return None
