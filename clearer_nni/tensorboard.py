"""TensorBoard scalars of a search or a retraining, where NNI's web UI looks for them.

NNI's web UI "TensorBoard" button starts TensorBoard on each chosen trial's
``$NNI_OUTPUT_DIR/tensorboard``; outside NNI the events go under the command's ``--out``
(``<out>/tensorboard/<search|retrain>/``). The rows that the search (:class:`~clearer_nni.nas.SearchLogger`)
and the retraining (``Validator``) log anyway become scalars through Lightning's
:class:`~pytorch_lightning.loggers.TensorBoardLogger`:

- ``loss/...``: the losses (search: ``loss_res``, ``arch_loss_res``, ``loss_arch``, ``loss_comp``;
  retraining: ``loss``), ``psnr/val_psnr``, ``lr/weights``;
- ``p_parallel/cell<i>.col<j>``: every column's P(parallel) during the search (the α curves).

TensorBoard is the optional extra ``pip install 'clearer-nni[tensorboard]'``; without it nothing is
written (a note says so once).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

__all__ = ["FOLDER", "tensorboard_dir", "tensorboard_logger", "scalars", "log_scalars"]

#: The folder NNI's web UI reads in a trial's output folder.
FOLDER = "tensorboard"
_SKIP = {"step", "seconds", "warmup"}
_warned = False


def tensorboard_dir(out: str | Path) -> Path:
    """``$NNI_OUTPUT_DIR/tensorboard`` inside an NNI trial, else ``out/tensorboard``."""
    nni_out = os.environ.get("NNI_OUTPUT_DIR")
    return Path(nni_out) / FOLDER if nni_out else Path(out) / FOLDER


def tensorboard_logger(out: str | Path, name: str) -> Any:
    """A Lightning ``TensorBoardLogger`` writing into ``tensorboard_dir(out) / name``, or ``False``
    (Lightning's "no logger") when tensorboard is not installed."""
    global _warned
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        if not _warned:
            warnings.warn("tensorboard is not installed: no TensorBoard events are written "
                          "(pip install 'clearer-nni[tensorboard]')", stacklevel=2)
            _warned = True
        return False
    from pytorch_lightning.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(tensorboard_dir(out)), name="", version=name, default_hp_metric=False)


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """A logged row as TensorBoard tags: ``loss/*``, ``psnr/*``, ``lr/weights``, ``p_parallel/*`` (finite numbers only)."""
    out = {}
    for key, value in row.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if "/" in key:
            tag = key
        elif key == "lr":
            tag = "lr/weights"
        elif "psnr" in key:
            tag = f"psnr/{key}"
        else:
            tag = f"loss/{key}"
        out[tag] = float(value)
    return out


def log_scalars(trainer: Any, row: Mapping[str, Any]) -> None:
    """Write ``row`` (with its ``step``) to the trainer's loggers, if it has any."""
    loggers = getattr(trainer, "loggers", None) or []
    values = scalars(row)
    for logger in loggers:
        logger.log_metrics(values, step=int(row["step"]))
