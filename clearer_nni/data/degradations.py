"""Synthetic degradations (Gaussian noise, rain streaks, JPEG) and the two noise evaluation protocols.

Degradations take and return ``float32`` ``H x W x C`` arrays (clean images in [0, 1]) and draw their
randomness only from the ``rng`` they are given, so a patch is reproducible from its seed.
"""
from __future__ import annotations

import io
import math
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np

from .images import DataError

__all__ = [
    "degradation_for",
    "Degradation",
    "CorrelatedNoise",
    "GaussianNoise",
    "JPEGCompression",
    "RainStreaks",
    "make_degradation",
    "paper_noisy",
    "protocol_noisy",
    "standard_noisy",
]

RNG = Union[np.random.Generator, np.random.RandomState]


@runtime_checkable
class Degradation(Protocol):
    """A random image degradation: ``degraded = d(clean, rng)``."""

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def describe(self) -> dict:
        """JSON-able description (stored with genotypes and results)."""
        ...


def _check_image(clean: np.ndarray, who: str) -> np.ndarray:
    x = np.asarray(clean)
    if x.ndim != 3 or x.shape[-1] not in (1, 3):
        raise DataError(f"{who}: expected an H x W x C image with C in (1, 3), got shape {x.shape}")
    return x


def _check_sigma(sigma: float, who: str) -> float:
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise DataError(f"{who}: sigma must be a number on the 0..255 scale, got {sigma!r}") from None
    if not math.isfinite(s) or s < 0:
        raise DataError(f"{who}: sigma must be a finite number >= 0 on the 0..255 scale, got {sigma!r}")
    return s


def _noise_uint8(clean: np.ndarray, noise255: np.ndarray) -> np.ndarray:
    """Authors' form: ``clip(x*255 + n, 0, 255)`` truncated to uint8, back to [0, 1]."""
    base = clean.astype(np.float64) * 255.0
    # x*255 of a float32 8-bit image can land just below an integer (e.g. 41.99998); snap it back so
    # that truncation sees the integer the authors' uint8 image had
    snapped = np.rint(base)
    base = np.where(np.abs(base - snapped) < 1e-3, snapped, base)
    noisy = np.clip(base + noise255, 0.0, 255.0).astype(np.uint8)  # astype truncates (floor, >= 0)
    return noisy.astype(np.float32) / np.float32(255.0)


class GaussianNoise:
    """Additive white Gaussian noise with ``sigma`` on the 0..255 scale.

    Parameters
    ----------
    sigma : float or (float, float)
        Noise level; a ``(low, high)`` pair is a blind range, sampled uniformly per call.
    clip : bool, default False
        False: the standard form ``x + sigma/255 * N(0, 1)``, no clipping (DnCNN/KAIR).
        True: the CLEARER authors' form, ``clip(255 x + sigma N, 0, 255)`` truncated to uint8, / 255.

    Raises
    ------
    DataError (a ValueError)
        Negative, NaN or infinite sigma, or a range with ``low > high``.
    """

    def __init__(self, sigma: Union[float, tuple[float, float]], clip: bool = False) -> None:
        if isinstance(sigma, (tuple, list)):
            if len(sigma) != 2:
                raise DataError(f"GaussianNoise: a sigma range must be (low, high), got {sigma!r}")
            lo, hi = (_check_sigma(s, "GaussianNoise") for s in sigma)
            if lo > hi:
                raise DataError(f"GaussianNoise: sigma range low > high: {sigma!r}")
            self.sigma: Union[float, tuple[float, float]] = (lo, hi)
        else:
            self.sigma = _check_sigma(sigma, "GaussianNoise")
        self.clip = bool(clip)

    def sample_sigma(self, rng: RNG) -> float:
        """The sigma of one call (a uniform draw for a blind range)."""
        if isinstance(self.sigma, tuple):
            return float(rng.uniform(self.sigma[0], self.sigma[1]))
        return self.sigma

    def __call__(self, clean: np.ndarray, rng: RNG) -> np.ndarray:
        x = _check_image(clean, "GaussianNoise")
        sigma = self.sample_sigma(rng)
        noise = rng.standard_normal(x.shape)
        if self.clip:
            return _noise_uint8(x, sigma * noise)
        return (x.astype(np.float64) + (sigma / 255.0) * noise).astype(np.float32)

    def describe(self) -> dict:
        """``{"kind": "gaussian", "sigma": ..., "clip": ..., "form": "standard"|"paper"}``."""
        sigma = list(self.sigma) if isinstance(self.sigma, tuple) else self.sigma
        return {"kind": "gaussian", "sigma": sigma, "clip": self.clip,
                "form": "paper" if self.clip else "standard"}

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma!r}, clip={self.clip})"


class CorrelatedNoise:
    """Spatially correlated Gaussian noise: white noise filtered by a Gaussian kernel, then scaled to ``sigma``.

    Camera noise after demosaicing and denoising in the image pipeline is correlated between neighbouring
    pixels; removing it needs a wider view than white noise does, which is where coarse scales help.

    Parameters
    ----------
    sigma : float
        Standard deviation of every pixel's noise on the 0..255 scale (the kernel is L2-normalised, so
        filtering keeps the white noise's variance).
    correlation_length : float, default 2.0
        Standard deviation ``l`` (pixels) of the Gaussian filter; the noise's correlation between pixels
        ``d`` apart is ``exp(-d**2 / (4 l**2))``. 0 gives white noise.
    clip : bool, default False
        Clip the noisy image to [0, 1] (and round to 8 bits), as :class:`GaussianNoise` does.

    Notes
    -----
    The white noise is drawn on the image padded by the kernel's radius (``ceil(3 l)``) and filtered
    without padding, so the noise is stationary up to the borders. Colour channels get independent noise.
    """

    def __init__(self, sigma: float, correlation_length: float = 2.0, clip: bool = False) -> None:
        self.sigma = _check_sigma(sigma, "CorrelatedNoise")
        try:
            length = float(correlation_length)
        except (TypeError, ValueError):
            raise DataError(f"CorrelatedNoise: correlation_length must be a number of pixels, got "
                            f"{correlation_length!r}") from None
        if not math.isfinite(length) or not 0 <= length <= 64:
            raise DataError(f"CorrelatedNoise: correlation_length must be in 0..64 pixels, got {correlation_length!r}")
        self.correlation_length, self.clip = length, bool(clip)
        self.radius = int(math.ceil(3 * length))
        x = np.arange(-self.radius, self.radius + 1, dtype=np.float64)
        g = np.exp(-x ** 2 / (2 * length ** 2)) if length > 0 else (x == 0).astype(np.float64)
        self._taps = g / np.sqrt((g ** 2).sum())  # separable: the 2-D kernel's L2 norm is 1 too

    def noise(self, shape: tuple[int, ...], rng: RNG) -> np.ndarray:
        """Unit-variance correlated noise of ``shape`` (``H x W x C``)."""
        from scipy.ndimage import correlate1d

        h, w, c = shape
        r = self.radius
        white = rng.standard_normal((h + 2 * r, w + 2 * r, c))
        field = correlate1d(correlate1d(white, self._taps, axis=0, mode="constant"), self._taps, axis=1, mode="constant")
        return field[r: r + h, r: r + w]

    def __call__(self, clean: np.ndarray, rng: RNG) -> np.ndarray:
        x = _check_image(clean, "CorrelatedNoise")
        noise = self.noise(x.shape, rng)
        if self.clip:
            return _noise_uint8(x, self.sigma * noise)
        return (x.astype(np.float64) + (self.sigma / 255.0) * noise).astype(np.float32)

    def describe(self) -> dict:
        """``{"kind": "correlated", "sigma": ..., "correlation_length": ..., "clip": ...}``."""
        return {"kind": "correlated", "sigma": self.sigma, "correlation_length": self.correlation_length,
                "clip": self.clip}

    def __repr__(self) -> str:
        return f"CorrelatedNoise(sigma={self.sigma!r}, correlation_length={self.correlation_length!r}, clip={self.clip})"


class RainStreaks:
    """Synthetic rain: sparse random drops smeared by a line (motion-blur) kernel, added, clipped.

    Parameters
    ----------
    density : float, default 0.004
        Fraction of pixels that seed a drop, in (0, 1].
    length : int, default 21
        Streak length in pixels (>= 1).
    angle : float, default -15
        Streak direction in degrees from vertical (positive leans right at the top).
    intensity : float, default 0.6
        Peak brightness added by a streak, in (0, 1].

    Notes
    -----
    The same streak layer is added to every channel (rain is achromatic). This is a simple model for
    demos and tests, not the Rain800 synthesis (which used Photoshop rain layers).
    """

    def __init__(self, density: float = 0.004, length: int = 21, angle: float = -15.0,
                 intensity: float = 0.6) -> None:
        if not (isinstance(density, (int, float)) and 0.0 < density <= 1.0):
            raise DataError(f"RainStreaks: density must be in (0, 1], got {density!r}")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise DataError(f"RainStreaks: length must be an integer >= 1, got {length!r}")
        if not (isinstance(angle, (int, float)) and math.isfinite(angle)):
            raise DataError(f"RainStreaks: angle must be a finite number of degrees, got {angle!r}")
        if not (isinstance(intensity, (int, float)) and 0.0 < intensity <= 1.0):
            raise DataError(f"RainStreaks: intensity must be in (0, 1], got {intensity!r}")
        self.density, self.length = float(density), int(length)
        self.angle, self.intensity = float(angle), float(intensity)
        self._kernel = self._line_kernel(self.length, self.angle)

    @staticmethod
    def _line_kernel(length: int, angle: float) -> np.ndarray:
        from skimage.draw import line

        size = length if length % 2 else length + 1
        c, half = size // 2, (length - 1) / 2.0
        t = math.radians(angle)
        dr, dc = -half * math.cos(t), half * math.sin(t)  # row axis points down
        k = np.zeros((size, size), dtype=np.float64)
        rr, cc = line(int(round(c + dr)), int(round(c + dc)), int(round(c - dr)), int(round(c - dc)))
        k[rr, cc] = 1.0
        return k

    def __call__(self, clean: np.ndarray, rng: RNG) -> np.ndarray:
        from scipy.signal import fftconvolve

        x = _check_image(clean, "RainStreaks")
        h, w = x.shape[:2]
        drops = (rng.random((h, w)) < self.density) * rng.uniform(0.5, 1.0, (h, w))
        streaks = np.clip(fftconvolve(drops, self._kernel, mode="same"), 0.0, 1.0)
        out = x.astype(np.float64) + self.intensity * streaks[..., None]
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def describe(self) -> dict:
        """``{"kind": "rain", "density", "length", "angle", "intensity"}``."""
        return {"kind": "rain", "density": self.density, "length": self.length,
                "angle": self.angle, "intensity": self.intensity}

    def __repr__(self) -> str:
        return (f"RainStreaks(density={self.density}, length={self.length}, angle={self.angle}, "
                f"intensity={self.intensity})")


class JPEGCompression:
    """JPEG compression artefacts (Pillow's encoder, 4:2:0 chroma for colour).

    Parameters
    ----------
    quality : int
        JPEG quality, 1..100.
    """

    def __init__(self, quality: int) -> None:
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise DataError(f"JPEGCompression: quality must be an integer in 1..100, got {quality!r}")
        self.quality = int(quality)

    def __call__(self, clean: np.ndarray, rng: RNG) -> np.ndarray:  # noqa: ARG002 - deterministic
        from PIL import Image

        x = _check_image(clean, "JPEGCompression")
        u8 = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
        img = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.quality)
        buf.seek(0)
        with Image.open(buf) as dec:
            out = np.asarray(dec, dtype=np.float32) / np.float32(255.0)
        return out.reshape(x.shape)

    def describe(self) -> dict:
        """``{"kind": "jpeg", "quality": q}``."""
        return {"kind": "jpeg", "quality": self.quality}

    def __repr__(self) -> str:
        return f"JPEGCompression(quality={self.quality})"


_KINDS = {"gaussian": GaussianNoise, "noise": GaussianNoise, "correlated": CorrelatedNoise, "rain": RainStreaks,
          "jpeg": JPEGCompression}


def make_degradation(kind: str, **kwargs: Any) -> Degradation:
    """Build a degradation by name.

    Parameters
    ----------
    kind : {"gaussian", "correlated", "rain", "jpeg"}
        ``"noise"`` is accepted for ``"gaussian"``.
    **kwargs
        Constructor arguments (``sigma``, ``clip``; ``correlation_length``; ``density``, ``length``,
        ``angle``, ``intensity``; ``quality``).

    Raises
    ------
    DataError
        Unknown kind or bad arguments.
    """
    cls = _KINDS.get(str(kind).lower())
    if cls is None:
        raise DataError(f"unknown degradation {kind!r}; expected one of 'gaussian', 'correlated', 'rain', 'jpeg'")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DataError(f"bad arguments for degradation {kind!r}: {exc}") from exc


def standard_noisy(clean: np.ndarray, sigma: float) -> np.ndarray:
    """Standard test protocol (DnCNN/KAIR): ``clean + N(0, sigma/255)``, seed 0, no clipping.

    Bit-identical to ``np.random.seed(0); clean + np.random.normal(0, sigma/255, clean.shape)``,
    but uses a private ``RandomState(0)`` so numpy's global random state is left untouched.

    Parameters
    ----------
    clean : numpy.ndarray
        Clean image in [0, 1] (any shape; ``H x W x 1`` gives the same noise as ``H x W``).
    sigma : float
        Noise level on the 0..255 scale.

    Returns
    -------
    numpy.ndarray
        ``float32`` noisy image, values may leave [0, 1].
    """
    s = _check_sigma(sigma, "standard_noisy")
    x = np.asarray(clean)
    noisy = x + np.random.RandomState(0).normal(0, s / 255.0, x.shape)
    return noisy.astype(np.float32)


def paper_noisy(clean: np.ndarray, sigma: float) -> np.ndarray:
    """CLEARER authors' protocol: ``clip(255 x + sigma N, 0, 255)`` truncated to uint8, seed 0.

    The noise is ``RandomState(0).normal(0, sigma, shape)`` (as after ``np.random.seed(0)``).

    Parameters
    ----------
    clean : numpy.ndarray
        Clean image in [0, 1] on the 8-bit grid.
    sigma : float
        Noise level on the 0..255 scale.

    Returns
    -------
    numpy.ndarray
        ``float32`` noisy image, multiples of 1/255 in [0, 1].
    """
    s = _check_sigma(sigma, "paper_noisy")
    x = np.asarray(clean)
    return _noise_uint8(x, np.random.RandomState(0).normal(0, s, x.shape))


def degradation_for(kind: str | None = None, sigma: float | None = None, clip: bool | None = None,
                    recorded: dict[str, Any] | None = None, correlation_length: float | None = None) -> Degradation:
    """The degradation a run asks for: each of ``kind``, ``sigma``, ``clip`` and ``correlation_length`` that
    is ``None`` falls back on ``recorded`` (a search's ``Degradation.describe()``, e.g. from a genotype), then
    on Gaussian σ 50 float noise (correlation length 2 px for correlated noise). One rule for search,
    retrain, rank and evaluate."""
    recorded = recorded if isinstance(recorded, dict) else {}
    kind = kind or recorded.get("kind") or "gaussian"
    if kind in ("gaussian", "noise", "correlated"):
        noisy = ("gaussian", "noise", "correlated")
        same = recorded.get("kind") in noisy
        sigma = sigma if sigma is not None else (recorded.get("sigma", 50.0) if same else 50.0)
        clip = clip if clip is not None else (bool(recorded.get("clip")) if same else False)
        if kind == "correlated":
            if correlation_length is None:
                correlation_length = recorded.get("correlation_length", 2.0) if recorded.get("kind") == kind else 2.0
            return CorrelatedNoise(sigma, correlation_length, clip=clip)
        return GaussianNoise(tuple(sigma) if isinstance(sigma, list) else sigma, clip=clip)
    if kind == recorded.get("kind"):
        return make_degradation(kind, **{k: v for k, v in recorded.items() if k != "kind"})
    return make_degradation(kind)


def protocol_noisy(degradation: Degradation, clip: bool | None = None) -> Any:
    """The test protocols' form of a noise ``degradation``: a function of the clean image alone, its noise
    drawn with seed 0 for every image (as ``np.random.seed(0)`` before each image). ``clip`` overrides the
    degradation's own (the paper protocol clips). Gaussian noise gives exactly :func:`standard_noisy` and
    :func:`paper_noisy`."""
    if isinstance(degradation, GaussianNoise) and not isinstance(degradation.sigma, tuple):
        clip = degradation.clip if clip is None else clip
        fn = paper_noisy if clip else standard_noisy
        return lambda clean: fn(clean, degradation.sigma)
    if isinstance(degradation, CorrelatedNoise) and clip is not None and clip != degradation.clip:
        degradation = CorrelatedNoise(degradation.sigma, degradation.correlation_length, clip=clip)
    return lambda clean: degradation(np.asarray(clean), np.random.RandomState(0))
