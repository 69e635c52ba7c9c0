"""The evaluation protocols (SPEC section 5): test pairs under a protocol, the BSD68 leak check, and the
scores of a network on those pairs. ``clearer-nni evaluate`` is the command (:mod:`clearer_nni.evaluate`);
benchmarks and notebooks call these directly."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..runtime import resolve_device

__all__ = ["PROTOCOLS", "PAPER_CROP", "Pair", "LeakError", "protocol_pairs", "noise_of", "check_unseen",
           "evaluate_model"]

PROTOCOLS = ("standard", "paper", "authors")
#: The paper protocol center-crops test images to multiples of this (the authors' patch size).
PAPER_CROP = 64

Pair = tuple[np.ndarray, np.ndarray, str]


class LeakError(ValueError):
    """The test set overlaps data the model (or its search) was trained or selected on."""


def protocol_pairs(data: Any, protocol: str, sigma: float, degradation: Any = None) -> list[Pair]:
    """``(degraded, clean, path)`` triples of an :class:`~clearer_nni.data.ImageSet` under ``protocol``.

    The noise is Gaussian of ``sigma``, or ``degradation`` (a :class:`~clearer_nni.data.CorrelatedNoise`, say),
    drawn with seed 0 for every image; float under the standard protocol, uint8-clipped under the paper's.
    Paired sets (e.g. Rain800) are used as they are (``sigma`` ignored); the paper protocol still crops.
    """
    from ..data import GaussianNoise, eval_pairs, protocol_noisy

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    crop = None if protocol == "standard" else PAPER_CROP
    if data.paired:
        return eval_pairs(data, None, crop_multiple=crop)
    noise = protocol_noisy(degradation if degradation is not None else GaussianNoise(sigma), clip=protocol != "standard")
    return eval_pairs(data, noise, crop_multiple=crop)


def noise_of(recorded: Any, kind: str | None, sigma: float, correlation_length: float | None) -> Any:
    """The noise an evaluation adds: ``kind`` (``gaussian``, ``correlated``), else the model's recorded
    noise kind when it is correlated, else Gaussian; always of level ``sigma``."""
    from ..data import degradation_for

    recorded = recorded if isinstance(recorded, dict) else {}
    if kind is None:
        kind = "correlated" if recorded.get("kind") == "correlated" else "gaussian"
    return degradation_for(kind, sigma, False, recorded, correlation_length)


def _is_bsd68(name: str) -> bool:
    key = name.lower()
    if key.startswith("bsd68/"):
        return True
    # a plain folder holding BSD68 under its usual names
    return key.startswith("folder:") and Path(key[len("folder:"):]).name in ("bsd68", "set68", "cbsd68")


def check_unseen(test_name: str, seen: Sequence[str], model: str = "the model") -> None:
    """Refuse to score BSD68 when the model's training or search used BSDS500's validation split.

    BSD68 is 68 images of the BSDS300 test set, which became BSDS500 *val*; a model that saw
    ``bsds500/val`` (for α in the search, or for model selection in retraining) would be scored on
    images it was fitted or selected on.

    Raises
    ------
    LeakError
        ``test_name`` is BSD68 and ``"bsds500/val"`` is among ``seen``.
    """
    if _is_bsd68(test_name) and any(s.lower() == "bsds500/val" for s in seen):
        raise LeakError(f"{model} records 'bsds500/val' in its search or training data ({', '.join(seen)}); "
                        "BSD68 is a subset of BSDS500 val, so its BSD68 score would be contaminated. "
                        "Evaluate on Set12 or BSDS500 test instead, or search/retrain without bsds500/val")


def evaluate_model(network: nn.Module, pairs: Sequence[Pair], *, patch: int | None = None,
                   self_ensemble: str | bool | None = None, device: str | torch.device = "cpu",
                   quantize: bool = True, patch_average: bool = False, ssim_window: str = "skimage",
                   save_dir: str | Path | None = None, progress: bool = False) -> "Any":
    """Restore each degraded image and score it against its clean image.

    Parameters
    ----------
    network
        Any module mapping ``N x C x H x W`` to the same shape (run in eval mode, no gradients).
    pairs
        ``(degraded, clean, path)`` triples of ``H x W x C`` arrays, e.g. :func:`protocol_pairs`.
    patch
        Restore non-overlapping ``patch`` x ``patch`` windows separately (CLEARER-P); ``None``: whole image.
        Where the image is not a multiple of ``patch``, the last window is flush with the border and
        overlaps its neighbour (averaged there).
    self_ensemble
        Geometric self-ensemble (:mod:`clearer_nni.ensemble`): ``"8"`` (or ``True``) the 8 flips and
        quarter turns, ``"authors"`` the authors' 7 without the identity; ``None``: off.
    device
        Where the network runs.
    quantize
        Score the prediction rounded to 8 bits (:func:`~clearer_nni.metrics.quantize_8bit`), as saved.
    patch_average
        Score each ``patch`` x ``patch`` patch on its own and average (the authors' CLEARER-P,
        :func:`~clearer_nni.metrics.patch_average`); the image must be a multiple of ``patch``.
    ssim_window
        ``skimage`` or ``gaussian`` (the authors' 11x11 window), :data:`~clearer_nni.metrics.SSIM_WINDOWS`.
    save_dir
        Also write each restored image there as an 8-bit PNG named after its source.
    progress
        Show a tqdm bar.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``image``, ``path``, ``height``, ``width``, ``psnr``, ``ssim`` (means over its
        patches with ``patch_average``), ``psnr_input`` (the degraded image's PSNR), ``seconds``.
    """
    import pandas as pd
    from tqdm import tqdm

    from ..data import write_image
    from ..ensemble import check_ensemble
    from ..ensemble import self_ensemble as ensemble
    from . import patch_average as patch_scores
    from . import psnr, score
    from ..models.tiling import restore_array

    ensemble_name = check_ensemble(self_ensemble)
    if patch_average and not patch:
        raise ValueError("patch-averaged scores need a patch size")
    device = resolve_device(device)
    restore = partial(restore_array, network, tile=patch, overlap=0, device=device)
    rows = []
    for degraded, clean, path in tqdm(pairs, desc="evaluate", unit="image", disable=not progress):
        start = time.time()
        pred = ensemble(restore, degraded, ensemble_name) if ensemble_name else restore(degraded)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.time() - start
        if patch_average:
            p, s = patch_scores(pred, clean, patch, quantize=quantize, window=ssim_window)
        else:
            p, s = score(pred, clean, quantize=quantize, window=ssim_window)
        name = Path(path.split(":", 1)[1] if path.startswith("skimage:") else path).stem
        rows.append({"image": name, "path": path, "height": clean.shape[0], "width": clean.shape[1],
                     "psnr": p, "ssim": s, "psnr_input": psnr(degraded, clean), "seconds": round(seconds, 4)})
        if save_dir is not None:
            write_image(Path(save_dir) / f"{name}.png", pred, bit_depth=8)
    return pd.DataFrame(rows, columns=["image", "path", "height", "width", "psnr", "ssim", "psnr_input", "seconds"])
