"""TensorBoard scalars of a search or a retraining, where NNI's web UI looks for them.

Inside an NNI trial the events go to ``$NNI_OUTPUT_DIR/tensorboard/<search|retrain>/``; outside NNI
under the command's ``--out`` (``<out>/tensorboard/<search|retrain>/``). NNI 3.0's web UI "TensorBoard"
button does not read ``$NNI_OUTPUT_DIR`` (``<experiment>/environments/local-env/trials/<trial>``) but
``<experiment>/trials/<trial>/output/tensorboard`` (its local training service's "trial output
path", which nothing else writes): :func:`link_for_nni` makes that a symbolic link to the trial's
folder, so the button shows the trial's curves. The NNI layer (:mod:`clearer_nni.experiment.trial`), which
knows the experiment's folder, hands that path down in ``$CLEARER_NNI_TENSORBOARD`` (:data:`BUTTON_ENV`). The rows that the search (:class:`~clearer_nni.nas.SearchLogger`)
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

__all__ = ["FOLDER", "BUTTON_ENV", "tensorboard_dir", "nni_button_dir", "link_for_nni", "tensorboard_logger", "scalars",
           "log_scalars"]

#: The folder NNI's web UI reads in a trial's output folder.
FOLDER = "tensorboard"
#: Where NNI's web UI "TensorBoard" button reads this trial's events, set by the NNI layer (unset outside NNI).
BUTTON_ENV = "CLEARER_NNI_TENSORBOARD"
_SKIP = {"step", "seconds", "warmup"}
_warned = False


def tensorboard_dir(out: str | Path) -> Path:
    """``$NNI_OUTPUT_DIR/tensorboard`` inside an NNI trial, else ``out/tensorboard``."""
    nni_out = os.environ.get("NNI_OUTPUT_DIR")
    return Path(nni_out) / FOLDER if nni_out else Path(out) / FOLDER


def nni_button_dir() -> Path | None:
    """Where NNI 3.0's web UI "TensorBoard" button looks for this trial's events: ``$CLEARER_NNI_TENSORBOARD``,
    set by the trial (None outside NNI)."""
    button = os.environ.get(BUTTON_ENV)
    return Path(button) if button else None


def link_for_nni(folder: Path) -> Path | None:
    """Inside an NNI trial, make :func:`nni_button_dir` a symbolic link to ``folder`` (the trial's
    ``$NNI_OUTPUT_DIR/tensorboard``); returns the link, or None outside NNI or where one cannot be made."""
    button = nni_button_dir()
    if button is None or button.resolve() == folder.resolve():
        return None
    try:
        if button.is_dir() and not button.is_symlink() and not any(button.iterdir()):
            button.rmdir()  # made empty by an earlier press of the button
        if not button.exists() and not button.is_symlink():
            button.parent.mkdir(parents=True, exist_ok=True)
            button.symlink_to(folder.resolve(), target_is_directory=True)
    except OSError as exc:
        warnings.warn(f"cannot link {button} to {folder} for NNI's TensorBoard button: {exc}", stacklevel=2)
        return None
    return button


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

    folder = tensorboard_dir(out)
    if os.environ.get("NNI_OUTPUT_DIR"):
        folder.mkdir(parents=True, exist_ok=True)
        link_for_nni(folder)
    return TensorBoardLogger(save_dir=str(folder), name="", version=name, default_hp_metric=False)


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
