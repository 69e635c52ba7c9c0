"""Resumable training state (``--resume``): atomic checkpoint files, the newest complete one, and RNG states.

A checkpoint is one ``torch.save`` file of plain types and tensors (loadable with
``torch.load(weights_only=True)``), written to a temporary name and renamed, so a crash or SIGKILL
never leaves a torn file under a checkpoint's name. A file that is torn or corrupt anyway (a full
disk, a copied folder) is skipped with a warning and the previous one is used.
"""

from __future__ import annotations

import abc
import dataclasses
import random
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any


import numpy as np
import pytorch_lightning as pl
import torch

from ..runtime import atomic_save

__all__ = ["SEARCH_STATE", "RETRAIN_STATE", "CheckpointStore", "TrainingState", "capture_rng", "restore_rng",
           "nonfinite_error", "stop_and_keep"]

#: Format tags of the resumable states of a search and of a retraining.
SEARCH_STATE = "clearer-nni-search-state"
RETRAIN_STATE = "clearer-nni-retrain-state"

_NAME = re.compile(r"^step-(\d+)\.pt$")


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
        path = atomic_save({"format": self.fmt, "version": 1, "step": int(step), **payload},
                           self.folder / f"step-{int(step):07d}.pt")
        for old in self.paths()[self.keep:]:
            old.unlink(missing_ok=True)
        return path

    def load(self, path: str | Path, mmap: bool = False) -> dict[str, Any]:
        """Load one checkpoint; ``ValueError`` if it is torn, corrupt or of another format.

        ``mmap``: map the tensors instead of reading them (cheap when only the settings are needed).
        """
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as exc:  # torn zip, truncated pickle, unsafe content...
            raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != self.fmt:
            raise ValueError(f"{path}: not a {self.fmt} checkpoint")
        return payload

    def latest(self, mmap: bool = False) -> tuple[Path, dict[str, Any]] | None:
        """The newest complete checkpoint, skipping (with a warning) any that cannot be read."""
        for path in self.paths():
            try:
                return path, self.load(path, mmap=mmap)
            except ValueError as exc:
                warnings.warn(f"skipping {exc}; falling back to the previous checkpoint", RuntimeWarning)
        return None


def nonfinite_error(step: int, advice: str) -> FloatingPointError:
    return FloatingPointError(f"the loss became NaN or infinite at step {step}: stopping; {advice}")


class TrainingState(pl.Callback, abc.ABC):
    """Saves a Lightning run's whole state every ``every`` steps (and on Ctrl-C); restores it on resume.

    The state: the model's weights, the optimizers' and schedulers' states, the step, the RNG states
    and the settings (``config``, a dict), plus what :meth:`extra` adds. A subclass says where the model
    and the step are (:meth:`model`, :meth:`step`, :meth:`set_step`), adds its own state
    (:meth:`extra`, :meth:`restore_extra`) and checks the loss (:meth:`check_finite`, called before
    every save: a checkpoint never holds a diverged run).
    """

    def __init__(self, folder: Path, fmt: str, config: dict[str, Any], every: int, total_steps: int,
                 state: dict[str, Any] | None, start: float, save: bool = True) -> None:
        self.store, self.config, self.state, self.start = CheckpointStore(folder, fmt), config, state, start
        self.every, self.total_steps, self.enabled = int(every), int(total_steps), save
        self.interrupted = False

    # -- what a subclass says --------------------------------------------------------------------
    def model(self, pl_module: Any) -> torch.nn.Module:
        return pl_module.model

    def step(self, trainer: pl.Trainer, pl_module: Any) -> int:
        return trainer.global_step

    @abc.abstractmethod
    def set_step(self, trainer: pl.Trainer, pl_module: Any, step: int) -> None:
        """Put the run's step counter back to ``step`` (each trainer counts steps its own way)."""

    def extra(self, trainer: pl.Trainer, pl_module: Any) -> dict[str, Any]:
        return {}

    def restore_extra(self, trainer: pl.Trainer, pl_module: Any, state: dict[str, Any]) -> None:
        pass

    def check_finite(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Raise :func:`nonfinite_error` if the loss became NaN or infinite."""

    # -- the generic part ------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self.state is None:
            return
        s = self.state
        self.model(pl_module).load_state_dict(s["model"])
        for opt, opt_state in zip(trainer.optimizers, s["optimizers"]):
            opt.load_state_dict(opt_state)
        for config, sched_state in zip(trainer.lr_scheduler_configs, s["schedulers"]):
            config.scheduler.load_state_dict(sched_state)
        self.set_step(trainer, pl_module, int(s["step"]))
        self.restore_extra(trainer, pl_module, s)
        restore_rng(s["rng"])

    def save(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.check_finite(trainer, pl_module)
        if not (self.enabled and trainer.is_global_zero):
            return
        self.store.save(self.step(trainer, pl_module), {
            "config": self.config, "seconds": time.time() - self.start,
            "model": self.model(pl_module).state_dict(),
            "optimizers": [opt.state_dict() for opt in trainer.optimizers],
            "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
            **self.extra(trainer, pl_module), "rng": capture_rng()})

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = self.step(trainer, pl_module)
        if self.every and step % self.every == 0 and step < self.total_steps:
            self.save(trainer, pl_module)

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True
            if self.step(trainer, pl_module) > 0:
                self.save(trainer, pl_module)  # a clean stop: continue later with --resume


def stop_and_keep(saver: TrainingState, staging: Path, exc: BaseException, what: str, resume_hint: str) -> None:
    """After a failed or interrupted run: keep ``staging`` if it holds a checkpoint (and say how to
    resume), else remove it; turn Lightning's ``sys.exit(1)`` after Ctrl-C back into ``KeyboardInterrupt``."""
    if saver.store.latest() is None:
        shutil.rmtree(staging, ignore_errors=True)  # nothing to resume from: leave nothing behind
    elif isinstance(exc, FloatingPointError):
        # Resuming with the same settings would diverge again: say where the good state is instead.
        print(f"{what} diverged; its last good checkpoint is kept in {saver.store.folder} "
              "(the same settings would diverge again: start over with a lower learning rate)", file=sys.stderr)
    else:
        print(f"{what} stopped; its last good checkpoint is kept: continue it with `{resume_hint}`", file=sys.stderr)
    if saver.interrupted and isinstance(exc, SystemExit):
        raise KeyboardInterrupt from None  # Lightning turns Ctrl-C into sys.exit(1)
