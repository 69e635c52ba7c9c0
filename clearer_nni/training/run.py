"""The folder a run writes: a hidden staging folder, resumed from, and published whole at the end.

Every long command (search, retrain) writes into ``.<out>.partial/`` and renames it to ``--out`` when it
has finished, so ``--out`` holds nothing or a complete result. Checkpoints live in
``.<out>.partial/checkpoints/``: after a crash or Ctrl-C the staging folder is kept and ``--resume``
continues from its newest complete checkpoint; a run that saved none leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

from .. import outlock
from ..config import resume_clash
from ..runtime import check_out, disk_full_error, prepare_out, publish, staging_dir
from .state import CheckpointStore, TrainingState, stop_and_keep

__all__ = ["RunFolder"]


class RunFolder:
    """The output of one run of ``cfg`` (a :class:`~clearer_nni.config.RunOptions`).

    Created before any work: it locks ``--out`` for this process, refuses a bad one at once and, with
    ``cfg.resume``, loads the newest
    complete checkpoint (:attr:`state`), whose saved settings must be ``cfg``'s but for the free ones.

    Parameters
    ----------
    cfg
        The run's settings (``out``, ``overwrite``, ``resume``).
    fmt
        Format tag of the run's checkpoints.
    what
        The run, for messages (``search``, ``retraining``).
    command
        The command that resumes it, for messages (``clearer-nni search``).
    primary
        False on the other ranks of a DDP run: they neither prepare, clean nor publish the folder.
    """

    def __init__(self, cfg: Any, fmt: str, what: str, command: str, primary: bool = True) -> None:
        self.out, self.overwrite, self.primary = Path(cfg.out), bool(cfg.overwrite), primary
        self.staging = staging_dir(self.out)
        self.checkpoints = self.staging / "checkpoints"
        self.fmt, self.what, self.command = fmt, what, command
        self.state: dict[str, Any] | None = None
        if primary and self.out.parent.is_dir():
            # a second process given the same output is refused now, naming this one (clearer_nni.outlock);
            # DDP worker ranks re-run the command beside rank 0 and take no lock
            outlock.acquire(self.out)
        if cfg.resume:
            self.state = self._load_state(cfg)
        elif primary:
            check_out(self.out, self.overwrite)

    def _load_state(self, cfg: Any) -> dict[str, Any]:
        found = CheckpointStore(self.checkpoints, self.fmt).latest()
        if found is None:
            raise ValueError(f"nothing to resume for {self.out}: no complete checkpoint in {self.checkpoints}")
        path, state = found
        saved = state.get("config") or {}
        clash = resume_clash(cfg, saved)
        if clash:
            raise ValueError(f"{path} was saved by a {self.what} with other settings (these differ, given and "
                             f"saved: {clash}); resume with the same settings, or start afresh without --resume")
        if self.primary and self.out.is_dir() and any(self.out.iterdir()) and not self.overwrite:
            raise ValueError(f"output folder is not empty: {self.out} (it was filled after the {self.what} was "
                             "interrupted; pass --overwrite to replace it)")
        print(f"resuming from {path} (step {state['step']} of {saved.get('steps', '?')})", file=sys.stderr)
        return state

    @property
    def resume_hint(self) -> str:
        return f"{self.command} --out {self.out} --resume"

    def open(self) -> Path:
        """The staging folder to write into: a fresh one, or the interrupted run's."""
        if self.state is not None or not self.primary:
            return self.staging
        return prepare_out(self.out, self.overwrite)

    @contextlib.contextmanager
    def guard(self, saver: TrainingState) -> Iterator[None]:
        """On failure or Ctrl-C: keep the staging folder if ``saver`` left a checkpoint (and say how to
        resume), else remove it."""
        try:
            yield
        except BaseException as exc:
            if not self.primary:
                raise
            # whatever wrote (a checkpoint, a log, Lightning's TensorBoard files), a full disk is said so
            full = disk_full_error(exc, self.staging)
            stop_and_keep(saver, self.staging, exc, self.what, self.resume_hint)
            outlock.release(self.out)
            if full is not None:
                raise full from None
            raise

    def publish(self) -> Path:
        """Drop the checkpoints and rename the staging folder to ``out``."""
        if not self.primary:
            return self.out
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        return publish(self.staging, self.out)
