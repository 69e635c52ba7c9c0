"""Evaluation metrics: PSNR and SSIM on images in [0, 1].

SSIM values differ between implementations (scikit-image, torchmetrics, piq, MATLAB ports differ in
window, weighting and padding: up to 0.08 on one image), so every score names the one used:
:func:`ssim_implementation`. Two SSIM windows are offered (:data:`SSIM_WINDOWS`):

- ``skimage`` (default): ``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform
  window, sample covariance, the border of the SSIM map cropped before averaging);
- ``gaussian``: the CLEARER authors' ``pytorch_ssim``: an 11x11 Gaussian window (sigma 1.5, not
  truncated), zero padding of ``window // 2`` so the SSIM map keeps the image size, and the mean of the
  whole map (all channels), K1 0.01, K2 0.03, data range 1.

:func:`patch_average` scores non-overlapping patches separately and averages them (the authors'
CLEARER-P numbers).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SSIM_WINDOWS", "quantize_8bit", "psnr", "ssim", "score", "patch_average", "ssim_implementation"]

#: SSIM variants: scikit-image's default, or the authors' pytorch_ssim (11x11 Gaussian window).
SSIM_WINDOWS = ("skimage", "gaussian")
#: The authors' Gaussian window: side and sigma.
_GAUSS_SIDE, _GAUSS_SIGMA = 11, 1.5


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


def _check_window(window: str) -> None:
    if window not in SSIM_WINDOWS:
        raise ValueError(f"unknown SSIM window {window!r}; expected one of {list(SSIM_WINDOWS)}")


def _gaussian_ssim(p: np.ndarray, t: np.ndarray) -> float:
    """The authors' ``pytorch_ssim``: 11x11 Gaussian window, zero padding, mean of the full SSIM map."""
    from scipy.ndimage import correlate1d

    r = _GAUSS_SIDE // 2
    g = np.exp(-((np.arange(_GAUSS_SIDE) - r) ** 2) / (2 * _GAUSS_SIGMA ** 2))
    g /= g.sum()

    def blur(a: np.ndarray) -> np.ndarray:  # separable window over the two image axes, zeros outside
        return correlate1d(correlate1d(a, g, axis=0, mode="constant"), g, axis=1, mode="constant")

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p, var_t = blur(p * p) - mu_p ** 2, blur(t * t) - mu_t ** 2
    cov = blur(p * t) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return float(ssim_map.mean())


def ssim(pred: np.ndarray, target: np.ndarray, window: str = "skimage") -> float:
    """SSIM of ``pred`` clipped to [0, 1] against ``target``.

    ``window="skimage"``: ``skimage.metrics.structural_similarity`` with the library defaults (7x7
    uniform window, K1 0.01, K2 0.03, sample covariance), ``data_range=1``; colour images are scored per
    channel and averaged (``channel_axis=-1``). Both sides need at least 7 pixels.
    ``window="gaussian"``: the authors' ``pytorch_ssim`` (module docstring).
    """
    from skimage.metrics import structural_similarity

    _check_window(window)
    p, t = _pair(pred, target)
    if min(p.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {p.shape[1]}x{p.shape[0]}")
    if window == "gaussian":
        return _gaussian_ssim(p, t)
    return float(structural_similarity(t, p, data_range=1.0, channel_axis=-1 if p.ndim == 3 else None))


def score(pred: np.ndarray, target: np.ndarray, quantize: bool = True,
          window: str = "skimage") -> tuple[float, float]:
    """``(psnr, ssim)`` of a restored image; with ``quantize``, ``pred`` is first rounded to 8 bits (:func:`quantize_8bit`)."""
    p = quantize_8bit(pred) if quantize else np.asarray(pred, dtype=np.float64)
    return psnr(p, target), ssim(p, target, window)


def patch_average(pred: np.ndarray, target: np.ndarray, patch: int, quantize: bool = True,
                  window: str = "skimage") -> tuple[float, float]:
    """Mean ``(psnr, ssim)`` over the non-overlapping ``patch`` x ``patch`` patches of an image.

    The CLEARER authors' CLEARER-P score: each 64x64 patch is scored on its own and the scores are
    averaged (a patch restored perfectly has an infinite PSNR, and so has the mean). The image must be
    a multiple of ``patch`` on both sides (the paper protocol crops it so).
    """
    h, w = np.shape(target)[:2]
    if patch < 7 or h % patch or w % patch:
        raise ValueError(f"patch-averaged scores need an image that is a multiple of the patch ({patch}) "
                         f"on both sides, got {w}x{h}; crop it (the paper protocol does)")
    scores = [score(pred[top:top + patch, left:left + patch], target[top:top + patch, left:left + patch],
                    quantize, window)
              for top in range(0, h, patch) for left in range(0, w, patch)]
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))


def ssim_implementation(window: str = "skimage") -> str:
    """Name of the SSIM (and PSNR) implementation, e.g. ``scikit-image 0.26``."""
    import skimage

    _check_window(window)
    lib = "scikit-image " + ".".join(skimage.__version__.split(".")[:2])
    if window == "gaussian":
        return f"pytorch_ssim formula (11x11 Gaussian, sigma 1.5, zero padding); PSNR {lib}"
    return lib
