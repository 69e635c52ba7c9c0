"""Reading and writing image files as float32 arrays in [0, 1].

Every array in the data layer is ``float32``, shaped ``H x W x C`` (``C`` is 1 or 3) with values in
[0, 1]. Every bad input raises :class:`DataError` naming the file and the problem.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..runtime import atomic_write

__all__ = [
    "ConversionWarning",
    "DataError",
    "IMAGE_EXTENSIONS",
    "LUMA_601",
    "bit_depth",
    "read_image",
    "to_luma",
    "write_image",
]

PathLike = Union[str, "os.PathLike[str]"]

#: File name suffixes treated as images when a folder is listed (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pnm",
)

#: ITU-R BT.601 luma weights (R, G, B): what MATLAB, OpenCV and PIL use for "to gray", and what
#: BSD68 was made with. ``skimage.color.rgb2gray`` uses BT.709 instead, hence these explicit weights.
LUMA_601: tuple[float, float, float] = (0.299, 0.587, 0.114)

_TIFF_SUFFIXES = (".tif", ".tiff")


class DataError(ValueError):
    """A dataset, image file or data-layer argument is unusable; the message says which and why."""


class ConversionWarning(UserWarning):
    """An image was converted on reading (alpha dropped, palette expanded, 16/1-bit scaled, colour to gray...)."""


_SAID: set[str] = set()


def _say(kind: str, path: Path, text: str) -> None:
    """Say each kind of conversion once per process (a dataset of 16-bit files would say it 400 times)."""
    if kind not in _SAID:
        _SAID.add(kind)
        warnings.warn(f"{path}: {text} (said once for all such images; see docs/DATA.md)", ConversionWarning,
                      stacklevel=4)


def to_luma(rgb: np.ndarray, keepdims: bool = True) -> np.ndarray:
    """Convert colour to gray with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114).

    Parameters
    ----------
    rgb : numpy.ndarray
        Array whose last axis holds R, G, B (e.g. ``H x W x 3``), any float or integer dtype.
    keepdims : bool, default True
        Keep a length-1 channel axis (``H x W x 1``), the data layer's layout.

    Returns
    -------
    numpy.ndarray
        ``float32`` luma, not rounded (a uint8 input gives values on the 0..255 scale).

    Raises
    ------
    DataError
        If the last axis does not have length 3.
    """
    arr = np.asarray(rgb)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise DataError(f"to_luma expects a last axis of length 3 (R, G, B), got shape {arr.shape}")
    # float64 accumulation: the float32 result is then the correctly rounded weighted sum
    y = arr.astype(np.float64) @ np.asarray(LUMA_601, dtype=np.float64)
    if keepdims:
        y = y[..., None]
    return y.astype(np.float32)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not an image")


def _scale_integer(arr: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """Map an integer/bool/float array to float64 in [0, 1]; return it and its bit depth."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float64), 8
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0, 8
    if arr.dtype.kind in "ui":
        # PIL mode "I"/"I;16" and 16-bit TIFF: the data layer supports up to 16 bits
        lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
        if lo < 0 or hi > 65535:
            raise DataError(
                f"{path}: integer image with values in [{lo}, {hi}], outside the 16-bit range "
                "[0, 65535]; only 8- and 16-bit images are supported"
            )
        _say("16-bit", path, "16-bit image scaled by 1/65535")
        return arr.astype(np.float64) / 65535.0, 16
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: floating-point image contains NaN or infinity")
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{path}: floating-point image with values in [{lo:g}, {hi:g}]; expected [0, 1]"
            )
        return arr.astype(np.float64), 16
    raise DataError(f"{path}: unsupported pixel type {arr.dtype}")


def _decode_pil(path: Path) -> tuple[np.ndarray, int]:
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so truncated/corrupt data fails here and not later
            mode = im.mode
            if mode == "1":
                _say("1-bit", path, "1-bit image read as 0.0 / 1.0")
            if mode in ("P", "PA"):
                _say("palette", path, "palette image expanded through its palette")
            if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
                _say("alpha", path, "alpha channel dropped (not composited)")
            if mode == "P":
                # palette: expand through the palette; transparency becomes alpha, dropped below
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode == "PA":
                im = im.convert("RGBA")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBa", "RGBX"):
                im = im.convert("RGB")
            elif mode == "La":
                im = im.convert("LA")
            arr = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError,
            Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable, truncated or corrupt image ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise assorted errors on garbage
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return arr, 0


def _decode_tiff(path: Path) -> tuple[np.ndarray, int]:
    # tifffile (a scikit-image dependency) keeps 16-bit colour, which PIL cannot
    import tifffile

    try:
        arr = tifffile.imread(path, key=0)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types on garbage
        raise DataError(f"{path}: unreadable, truncated or corrupt TIFF ({exc})") from exc
    return np.asarray(arr), 0


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float64 ``H x W`` or ``H x W x 3`` in [0, 1], plus its bit depth."""
    _check_file(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        raw, _ = _decode_tiff(path)
    else:
        raw, _ = _decode_pil(path)
    if raw.ndim == 3 and raw.shape[0] in (1, 3, 4) and raw.shape[-1] not in (1, 2, 3, 4):
        raw = np.moveaxis(raw, 0, -1)  # planar TIFF (C x H x W)
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim == 3 and raw.shape[-1] in (2, 4):
        raw = raw[..., :-1]  # LA / RGBA: alpha is dropped, not composited (documented in DATA.md)
        if raw.shape[-1] == 1:
            raw = raw[..., 0]
    if not (raw.ndim == 2 or (raw.ndim == 3 and raw.shape[-1] == 3)):
        raise DataError(f"{path}: unsupported image layout {raw.shape}; expected gray or RGB")
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise DataError(f"{path}: image has no pixels (shape {raw.shape})")
    return _scale_integer(raw, path)


def read_image(path: PathLike, channels: int) -> np.ndarray:
    """Read an image file as ``float32`` ``H x W x channels`` in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        Image file (PNG, JPEG, BMP, TIFF, WebP, GIF, PNM; first frame of multi-frame files).
    channels : int
        1 (colour is converted with BT.601 luma, see :func:`to_luma`) or 3 (gray is repeated).

    Returns
    -------
    numpy.ndarray
        ``float32`` array, ``H x W x channels``, values in [0, 1].

    Raises
    ------
    DataError
        Missing, empty (0 bytes), truncated, corrupt or unsupported file, or bad ``channels``.

    Notes
    -----
    8-bit data is divided by 255, 16-bit by 65535, 1-bit gives 0/1. Palette images go through their
    palette. Alpha (RGBA, LA, palette transparency) is dropped, not composited. When colour is made
    gray, the luma is rounded to the source's own grid (1/255 for 8-bit files) so a gray BSDS500
    image is an 8-bit image, as OpenCV/PIL gray conversion gives. Pillow decodes 16-bit *colour*
    PNG to 8 bits: such files keep 8-bit precision (16-bit gray PNG and 16-bit TIFF are exact).
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r} (reading {path})")
    p = Path(path)
    arr, depth = _decode(p)
    if arr.ndim == 2:
        out = arr[..., None]
        if channels == 3:
            _say("gray-to-rgb", p, "gray image repeated to 3 channels for a colour model")
            out = np.repeat(out, 3, axis=-1)
    elif channels == 3:
        out = arr
    else:
        _say("rgb-to-gray", p, "colour image converted to gray (ITU-R BT.601 luma)")
        levels = 255.0 if depth == 8 else 65535.0
        out = np.rint(to_luma(arr).astype(np.float64) * levels) / levels
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def bit_depth(path: PathLike) -> int:
    """Bit depth per channel that :func:`read_image` preserves for ``path``: 8 or 16.

    Parameters
    ----------
    path : str or os.PathLike
        Image file.

    Returns
    -------
    int
        16 for 16-bit gray PNG/PNM, 16-bit or float TIFF; 8 otherwise (including 16-bit colour PNG,
        which Pillow decodes to 8 bits).

    Raises
    ------
    DataError
        As :func:`read_image`.
    """
    return _decode(Path(path))[1]


def _encode(arr: np.ndarray, depth: int, path: Path) -> tuple[np.ndarray, bool]:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)):
        raise DataError(f"{path}: cannot write array of shape {np.shape(arr)}; expected HxW, HxWx1 or HxWx3")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{path}: refusing to write an image containing NaN or infinity")
    levels = 255.0 if depth == 8 else 65535.0
    dtype = np.uint8 if depth == 8 else np.uint16
    # restored images may overshoot [0, 1] slightly: clip, then round to the nearest level
    return np.rint(np.clip(a, 0.0, 1.0) * levels).astype(dtype), a.ndim == 3


def write_image(path: PathLike, array: np.ndarray, bit_depth: int = 8) -> Path:
    """Write a float image in [0, 1] atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the format follows the suffix (``.png``, ``.jpg`` (quality 95), ``.tif``, ...).
    array : numpy.ndarray
        ``H x W``, ``H x W x 1`` or ``H x W x 3`` floats; values are clipped to [0, 1] and rounded.
    bit_depth : int, default 8
        8 or 16. 16-bit colour needs ``.tif`` (Pillow cannot write 16-bit colour PNG).

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    DataError
        Bad shape, NaN/inf values, bad bit depth or a format that cannot hold it.
    """
    p = Path(path)
    if bit_depth not in (8, 16):
        raise DataError(f"{p}: bit_depth must be 8 or 16, got {bit_depth!r}")
    suffix = p.suffix.lower()
    data, colour = _encode(array, bit_depth, p)
    if bit_depth == 16 and suffix not in (".png", ".tif", ".tiff", ".pgm", ".pnm"):
        raise DataError(f"{p}: {suffix or 'this format'} cannot hold 16-bit data; use .png or .tif")
    if bit_depth == 16 and colour and suffix not in _TIFF_SUFFIXES:
        raise DataError(f"{p}: 16-bit colour images can only be written as .tif/.tiff")
    p.parent.mkdir(parents=True, exist_ok=True)

    def encode(tmp: Path) -> None:
        if suffix in _TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, data, photometric="rgb" if colour else "minisblack")
        else:
            img = Image.fromarray(data)
            options = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                img.save(tmp, format=Image.registered_extensions().get(suffix, "PNG"), **options)

    try:
        atomic_write(p, encode, suffix=suffix or ".png")
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{p}: cannot write image ({exc})") from exc
    return p
