"""One progress bar per run, on stderr: a live bar on a terminal, a plain line every few percent in a log."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import pytorch_lightning as pl

__all__ = ["StepProgress"]


class StepProgress(pl.Callback):
    """Shows a run's steps (and what its module logs to the progress bar) on ``sys.stderr``.

    Parameters
    ----------
    total
        Steps of the whole run.
    step_of
        ``(trainer, pl_module) -> step``: where the run counts its steps.
    desc
        What runs (``search``, ``retrain``).
    log_fraction
        When stderr is not a terminal: print one line each time this fraction of the run is done.
    """

    def __init__(self, total: int, step_of: Callable[[pl.Trainer, Any], int], desc: str,
                 log_fraction: float = 0.1) -> None:
        super().__init__()
        self.total, self.step_of, self.desc = int(total), step_of, desc
        self.every = max(1, round(self.total * log_fraction))
        self.bar: Any = None
        self._start, self._first, self._shown = time.time(), 0, 0.0

    def _postfix(self, trainer: pl.Trainer) -> str:
        metrics = {k: float(v) for k, v in trainer.progress_bar_metrics.items()}
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._start, self._first = time.time(), self.step_of(trainer, pl_module)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self._first, desc=self.desc, file=sys.stderr,
                            dynamic_ncols=True, unit="step")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = self.step_of(trainer, pl_module)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            now = time.time()
            if now - self._shown >= 1.0:  # reading the metrics syncs a GPU: at most once a second
                self._shown = now
                self.bar.set_postfix_str(self._postfix(trainer), refresh=False)
            return
        if step % self.every and step < self.total:
            return
        elapsed = time.time() - self._start
        rate = (step - self._first) / elapsed if elapsed > 0 else 0.0
        eta = f", {(self.total - step) / rate:.0f} s left" if rate > 0 and step < self.total else ""
        extra = self._postfix(trainer)
        print(f"{self.desc}: step {step}/{self.total} ({100 * step / self.total:.0f}%), {elapsed:.0f} s{eta}"
              + (f"; {extra}" if extra else ""), file=sys.stderr, flush=True)

    def teardown(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
