"""Reading and writing image files as float32 arrays in [0, 1].

Every array in the data layer is ``float32``, shaped ``H x W x C`` (``C`` is 1 or 3) with values in
[0, 1]. Every bad input raises :class:`DataError` naming the file and the problem.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..runtime import DiskFullError, atomic_write

__all__ = [
    "ConversionWarning",
    "DataError",
    "IMAGE_EXTENSIONS",
    "LUMA_601",
    "MAX_PIXELS",
    "WRITE_EXTENSIONS",
    "bit_depth",
    "check_writable",
    "frame_count",
    "load_image",
    "max_pixels",
    "probe_image",
    "read_image",
    "set_max_pixels",
    "to_channels",
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

#: Suffixes :func:`write_image` writes (GIF is read, never written: 256 colours would quantise a result).
WRITE_EXTENSIONS: tuple[str, ...] = tuple(e for e in IMAGE_EXTENSIONS if e != ".gif")

#: Largest image (width x height) read unless told otherwise: 64 megapixels, every common camera, about
#: 0.8 GB per float32 RGB copy. A few hundred bytes of PNG can declare 100000 x 100000 pixels (120 GB as
#: float32 RGB); Pillow's own guard only refuses above ~179 megapixels.
MAX_PIXELS = 64_000_000
_max_pixels: int | None = None  # set_max_pixels(); None: $CLEARER_MAX_PIXELS, else MAX_PIXELS


def set_max_pixels(limit: int | None) -> None:
    """Set the largest image :func:`read_image` decodes (``0``: no limit; ``None``: back to the default).

    Raises
    ------
    DataError
        ``limit`` is not an integer >= 0.
    """
    global _max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise DataError(f"max_pixels must be an integer >= 0 (0: no limit), got {limit!r}")
    _max_pixels = limit


def max_pixels() -> int:
    """The current limit: :func:`set_max_pixels`'s, else ``$CLEARER_MAX_PIXELS``, else :data:`MAX_PIXELS`."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("CLEARER_MAX_PIXELS", "").strip()
    if env:
        if not env.isdigit():
            raise DataError(f"CLEARER_MAX_PIXELS must be an integer >= 0 (0: no limit), got {env!r}")
        return int(env)
    return MAX_PIXELS


def _check_pixels(path: Path, width: int, height: int) -> None:
    """Refuse a declared size above :func:`max_pixels` before anything is decoded."""
    limit = max_pixels()
    if limit and width * height > limit:
        gigabytes = width * height * 3 * 4 / 1e9
        raise DataError(f"{path}: the image declares {width}x{height} pixels ({width * height / 1e6:.1f} megapixels, "
                        f"{gigabytes:.1f} GB as float32 RGB), above the limit of {limit / 1e6:g} megapixels; pass "
                        "--max-pixels N (or set CLEARER_MAX_PIXELS=N; 0: no limit) if you mean it")


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


@contextmanager
def _pil_open(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` (header only) with the declared size checked against :func:`max_pixels`."""
    bomb_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # _check_pixels is the guard, with the size and the way out in its message
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit
    with im:
        _check_pixels(path, *im.size)
        yield im


def _unreadable(path: Path, exc: Exception) -> DataError:
    if isinstance(exc, (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError)):
        return DataError(f"{path}: unreadable, truncated or corrupt image ({exc})")
    # PIL plugins raise assorted errors on garbage
    return DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})")


def probe_image(path: PathLike) -> tuple[int, int]:
    """``(width, height)`` an image file declares, from its header only (nothing is decoded).

    Raises
    ------
    DataError
        What :func:`read_image` raises for a missing, empty or unidentifiable file, or a declared size
        above :func:`max_pixels`; truncated pixel data is only found by decoding.
    """
    p = Path(path)
    _check_file(p)
    try:
        if p.suffix.lower() in _TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                size = int(tif.pages[0].imagewidth), int(tif.pages[0].imagelength)
            _check_pixels(p, *size)
            return size
        with _pil_open(p) as im:
            return im.size
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on garbage
        raise _unreadable(p, exc) from exc


def frame_count(path: PathLike) -> int:
    """How many frames (an animated GIF, APNG or WebP) or pages (a multi-page TIFF) an image file holds:
    1 for a still image. Every reader here reads the first only (and says so); ``restore`` refuses more.

    Raises
    ------
    DataError
        What :func:`probe_image` raises.
    """
    p = Path(path)
    _check_file(p)
    try:
        if p.suffix.lower() in _TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                return len(tif.pages)
        with _pil_open(p) as im:
            return int(getattr(im, "n_frames", 1))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on garbage
        raise _unreadable(p, exc) from exc


def _say_frames(path: Path, frames: int) -> None:
    if frames > 1:
        _say("frames", path, f"{frames} frames (an animation or a multi-page file): only the first is read")


def _decode_pil(path: Path) -> tuple[np.ndarray, int]:
    try:
        with _pil_open(path) as im:
            _say_frames(path, int(getattr(im, "n_frames", 1)))
            im.load()  # decode now, so truncated/corrupt data fails here and not later
            # as viewers show it: the camera's EXIF orientation applied (rotated/mirrored pixels)
            im = ImageOps.exif_transpose(im)
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
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise assorted errors on garbage
        raise _unreadable(path, exc) from exc
    return arr, 0


def _decode_tiff(path: Path) -> tuple[np.ndarray, int]:
    # tifffile (a scikit-image dependency) keeps 16-bit colour, which PIL cannot
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            _say_frames(path, len(tif.pages))
            page = tif.pages[0]
            _check_pixels(path, int(page.imagewidth), int(page.imagelength))
            arr = page.asarray()
    except DataError:
        raise
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


def load_image(path: PathLike) -> tuple[np.ndarray, int]:
    """Read an image file as it is: ``float32`` ``H x W x C`` in [0, 1] with ``C`` 1 (gray) or 3, and its bit depth.

    Decodes as :func:`read_image` does (same conversions, limits and errors) but keeps the file's own
    channels, so a caller can tell a gray file from a colour one without a second decode.
    """
    p = Path(path)
    arr, depth = _decode(p)
    out = arr[..., None] if arr.ndim == 2 else arr
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32), depth


def to_channels(image: np.ndarray, channels: int, depth: int = 8) -> np.ndarray:
    """``image`` (``H x W x 1`` or ``H x W x 3``, from :func:`load_image`) with ``channels`` channels.

    Gray is repeated to 3 channels; colour becomes BT.601 luma rounded to the source's own grid (1/255 for
    ``depth`` 8, 1/65535 for 16), as OpenCV/PIL gray conversion gives.
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.ascontiguousarray(np.repeat(image, 3, axis=-1))
    levels = 255.0 if depth == 8 else 65535.0
    gray = np.rint(to_luma(image).astype(np.float64) * levels) / levels
    return np.ascontiguousarray(np.clip(gray, 0.0, 1.0), dtype=np.float32)


def read_image(path: PathLike, channels: int) -> np.ndarray:
    """Read an image file as ``float32`` ``H x W x channels`` in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        Image file (PNG, JPEG, BMP, TIFF, WebP, GIF, PNM; the first frame of a multi-frame file, with a
        :class:`ConversionWarning` saying so).
    channels : int
        1 (colour is converted with BT.601 luma, see :func:`to_luma`) or 3 (gray is repeated).

    Returns
    -------
    numpy.ndarray
        ``float32`` array, ``H x W x channels``, values in [0, 1].

    Raises
    ------
    DataError
        Missing, empty (0 bytes), truncated, corrupt or unsupported file, a declared size above
        :func:`max_pixels` (refused before decoding), or bad ``channels``.

    Notes
    -----
    The image is read as viewers show it: an EXIF orientation (JPEG, PNG, WebP) is applied. 8-bit data
    is divided by 255, 16-bit by 65535, 1-bit gives 0/1. Palette images go through their palette. Alpha
    (RGBA, LA, palette transparency) is dropped, not composited. When colour is made gray, the luma is
    rounded to the source's own grid (1/255 for 8-bit files) so a gray BSDS500 image is an 8-bit image,
    as OpenCV/PIL gray conversion gives. Pillow decodes 16-bit *colour* PNG to 8 bits: such files keep
    8-bit precision (16-bit gray PNG and 16-bit TIFF are exact).
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r} (reading {path})")
    p = Path(path)
    image, depth = load_image(p)
    if image.shape[-1] == 1 and channels == 3:
        _say("gray-to-rgb", p, "gray image repeated to 3 channels for a colour model")
    elif image.shape[-1] == 3 and channels == 1:
        _say("rgb-to-gray", p, "colour image converted to gray (ITU-R BT.601 luma)")
    return to_channels(image, channels, depth)


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


def check_writable(path: PathLike, colour: bool, bit_depth: int = 8) -> None:
    """Refuse, before any work, an output name whose format cannot hold the image :func:`write_image` would write.

    Raises
    ------
    DataError
        No or an unknown suffix, GIF (256 colours), colour as ``.pgm``, 16 bits in a format without them.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in WRITE_EXTENSIONS:
        what = f"unknown image format {suffix!r}" if suffix else "no file extension"
        raise DataError(f"{p}: {what}; name the output with one of {', '.join(WRITE_EXTENSIONS)}"
                        + (" (GIF holds 256 colours and would quantise the image)" if suffix == ".gif" else ""))
    if colour and suffix == ".pgm":
        raise DataError(f"{p}: .pgm holds gray images only; use .ppm, .png or .tif for colour")
    if bit_depth == 16 and suffix not in (".png", ".tif", ".tiff", ".pgm", ".pnm"):
        raise DataError(f"{p}: {suffix} cannot hold 16-bit data; use .png or .tif")
    if bit_depth == 16 and colour and suffix not in _TIFF_SUFFIXES:
        raise DataError(f"{p}: 16-bit colour images can only be written as .tif/.tiff")


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
    check_writable(p, colour, bit_depth)
    p.parent.mkdir(parents=True, exist_ok=True)

    def encode(tmp: Path) -> None:
        if suffix in _TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, data, photometric="rgb" if colour else "minisblack")
        else:
            img = Image.fromarray(data)
            options = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"lossless": True}}.get(suffix, {})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                img.save(tmp, format=Image.registered_extensions()[suffix], **options)

    try:
        atomic_write(p, encode, suffix=suffix)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, (DataError, DiskFullError)):
            raise
        raise DataError(f"{p}: cannot write image ({exc})") from exc
    return p
