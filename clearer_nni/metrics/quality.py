"""Evaluation metrics: PSNR and SSIM with scikit-image's implementations, on images in [0, 1].

SSIM values differ between implementations (scikit-image, torchmetrics, piq, MATLAB ports differ in
window, weighting and padding: up to 0.08 on one image), so every score names the one used:
:func:`ssim_implementation`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantize_8bit", "psnr", "ssim", "score", "ssim_implementation"]


def quantize_8bit(x: np.ndarray) -> np.ndarray:
    """``round(clip(x, 0, 1) * 255) / 255`` as float64: an image as it would be saved to an 8-bit file."""
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * 255.0) / 255.0


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {pred.shape} vs {target.shape}")
    if pred.ndim == 3 and pred.shape[-1] == 1:  # H x W x 1: score as a 2-D gray image
        pred, target = pred[..., 0], target[..., 0]
    return np.clip(pred, 0.0, 1.0), target


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR (dB) of ``pred`` clipped to [0, 1] against ``target``: ``skimage.metrics.peak_signal_noise_ratio``, data_range 1."""
    from skimage.metrics import peak_signal_noise_ratio

    p, t = _pair(pred, target)
    if np.array_equal(p, t):
        return float("inf")
    return float(peak_signal_noise_ratio(t, p, data_range=1.0))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM of ``pred`` clipped to [0, 1] against ``target``: ``skimage.metrics.structural_similarity``.

    Library defaults (7x7 uniform window, K1 0.01, K2 0.03, sample covariance), ``data_range=1``; colour
    images are scored per channel and averaged (``channel_axis=-1``). Both sides need at least 7 pixels.
    """
    from skimage.metrics import structural_similarity

    p, t = _pair(pred, target)
    if min(p.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {p.shape[1]}x{p.shape[0]}")
    return float(structural_similarity(t, p, data_range=1.0, channel_axis=-1 if p.ndim == 3 else None))


def score(pred: np.ndarray, target: np.ndarray, quantize: bool = True) -> tuple[float, float]:
    """``(psnr, ssim)`` of a restored image; with ``quantize``, ``pred`` is first rounded to 8 bits (:func:`quantize_8bit`)."""
    p = quantize_8bit(pred) if quantize else np.asarray(pred, dtype=np.float64)
    return psnr(p, target), ssim(p, target)


def ssim_implementation() -> str:
    """Name of the SSIM (and PSNR) implementation, e.g. ``scikit-image 0.26``."""
    import skimage

    return "scikit-image " + ".".join(skimage.__version__.split(".")[:2])
