"""``clearer-nni restore``: apply a retrained model to image files of any size, tile by tile.

The image is cut into ``tile`` x ``tile`` windows overlapping by ``overlap`` pixels; each window is
restored on its own and the results are blended with a separable linear ramp over the overlaps, so the
network's memory does not grow with the image. Images no larger than a tile are restored whole.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from .config import THREADS_HELP
from .runtime import resolve_device, set_threads

__all__ = ["CONVERSIONS", "RestoreConfig", "RestoreResult", "tile_starts", "blend_window", "restore_array",
           "restore_file", "run_restore", "main"]


def _check_tiling(tile: int | None, overlap: int) -> None:
    if tile is None:
        return
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 8:
        raise ValueError(f"tile must be an integer >= 8 (or None for whole images), got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"overlap must be an integer >= 0, got {overlap!r}")
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap}): tiles would not advance")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``size`` pixels: stride ``tile - overlap``, the last one flush with the end.

    A ``size`` no larger than ``tile`` gives ``[0]`` (one tile, the whole extent).
    """
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, tile - overlap))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def blend_window(height: int, width: int, overlap: int) -> np.ndarray:
    """``height x width x 1`` blending weights: a linear ramp over ``overlap`` pixels at each edge, 1 inside.

    Weights stay positive (half a step at the edge), so a pixel that only one tile covers keeps that
    tile's value exactly after normalisation by the summed weights.
    """

    def ramp(n: int) -> np.ndarray:
        if overlap <= 0:
            return np.ones(n)
        i = np.arange(n) + 0.5
        return np.minimum(1.0, np.minimum(i, n - i) / overlap)

    return (ramp(height)[:, None] * ramp(width)[None, :])[..., None].astype(np.float32)


@contextmanager
def _inference(network: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics) and no autograd, restoring the training flag afterwards."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        network.train(was_training)


def _forward(network: nn.Module, x: np.ndarray, device: torch.device) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))[None].to(device)
    y = network(t)
    if y.shape != t.shape:
        raise ValueError(f"the network maps {tuple(t.shape)} to {tuple(y.shape)}; expected the same shape")
    return y[0].float().cpu().numpy().transpose(1, 2, 0)


def restore_array(network: nn.Module, array: np.ndarray, tile: int | None = 256, overlap: int = 32,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Restore one ``H x W x C`` image (float, ``C`` = the network's channels), tile by tile.

    Parameters
    ----------
    network
        Maps an ``N x C x H x W`` tensor to one of the same shape (e.g. from :func:`load_checkpoint`);
        it is moved to ``device`` and run in eval mode without gradients.
    array
        The degraded image; values are not clipped on the way in (noisy images leave [0, 1]).
    tile
        Side of the square tiles; ``None``: the whole image at once.
    overlap
        Pixels shared by neighbouring tiles, blended with :func:`blend_window`; ``0`` with an image
        that is a multiple of ``tile`` gives independent non-overlapping patches (CLEARER-P).
    device
        Where the network runs.

    Returns
    -------
    numpy.ndarray
        ``float32`` ``H x W x C``, not clipped.
    """
    _check_tiling(tile, overlap)
    x = np.asarray(array, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected an H x W x C image, got shape {x.shape}")
    device = resolve_device(device)
    network.to(device)
    h, w = x.shape[:2]
    with _inference(network):
        if tile is None or (h <= tile and w <= tile):
            return _forward(network, x, device)
        out = np.zeros(x.shape, dtype=np.float32)
        weight = np.zeros((h, w, 1), dtype=np.float32)
        for top in tile_starts(h, tile, overlap):
            for left in tile_starts(w, tile, overlap):
                window = (slice(top, top + tile), slice(left, left + tile))
                y = _forward(network, x[window], device)
                wgt = blend_window(y.shape[0], y.shape[1], overlap)
                out[window] += y * wgt
                weight[window] += wgt
    return out / weight


def _network_channels(network: nn.Module) -> int:
    config = getattr(network, "config", None)
    if config is None:
        raise ValueError("the network has no space config: cannot tell its image channels")
    return int(config.in_channels)


#: Channel conversions :func:`restore_file` may make, and what they mean.
CONVERSIONS = {
    "to_gray": "colour image(s) converted to gray (BT.601 luma) for the 1-channel model",
    "to_rgb": "gray image(s) repeated to 3 channels for the 3-channel model, written as colour",
}


def restore_file(network: nn.Module, src: str | Path, dst: str | Path, tile: int | None = 256, overlap: int = 32,
                 device: str | torch.device = "cpu", self_ensemble: str | None = None) -> str | None:
    """Restore the image file ``src`` into ``dst`` (format from ``dst``'s suffix, at ``src``'s bit depth).

    A colour image given to a 1-channel model is converted to luma (ITU-R BT.601) and restored gray; a
    gray image given to a 3-channel model is repeated to 3 channels and written as colour.
    ``self_ensemble`` (``"8"``, ``"authors"``): average the tiled restorations of flipped and rotated
    copies (:mod:`clearer_nni.ensemble`).

    Returns
    -------
    str or None
        The channel conversion made (a key of :data:`CONVERSIONS`), else ``None``.
    """
    from .data import bit_depth, read_image, write_image
    from .ensemble import self_ensemble as self_ensemble_of

    channels = _network_channels(network)
    depth = bit_depth(src)
    rgb = read_image(src, 3)
    gray = bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))
    conversion = None
    if channels == 1:
        # a colour file goes through read_image's own luma rule (rounded to the file's grid)
        x = rgb[..., :1] if gray else read_image(src, 1)
        conversion = None if gray else "to_gray"
    else:
        x, conversion = rgb, ("to_rgb" if gray else None)
    restore = partial(restore_array, network, tile=tile, overlap=overlap, device=device)
    write_image(dst, self_ensemble_of(restore, x, self_ensemble) if self_ensemble else restore(x), bit_depth=depth)
    return conversion


# -- command line ----------------------------------------------------------------------------------

@dataclass
class RestoreConfig:
    """Settings of ``clearer-nni restore``."""

    input: str = ""
    output: str = ""
    model: str = ""
    tile: int | None = 256  # None or 0: whole images
    overlap: int = 32
    self_ensemble: str | None = None  # None (off), "8" or "authors" (clearer_nni.ensemble)
    device: str = "auto"
    threads: int = 0
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        from .ensemble import check_ensemble

        for name in ("input", "output", "model"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        _check_tiling(self.tile or None, self.overlap)
        self.self_ensemble = check_ensemble(self.self_ensemble)
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: auto), got {self.threads}")


@dataclass
class RestoreResult:
    """The files written and the channel conversions made (input file → :data:`CONVERSIONS` key)."""

    written: list[Path] = field(default_factory=list)
    conversions: dict[Path, str] = field(default_factory=dict)


def _jobs(cfg: RestoreConfig) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs; refuses to overwrite anything without ``overwrite``."""
    from .data import list_images

    src, dst = Path(cfg.input), Path(cfg.output)
    if not src.exists():
        raise FileNotFoundError(f"input not found: {src}")
    if src.is_dir():
        files = list_images(src)
        if dst.exists() and not dst.is_dir():
            raise ValueError(f"input {src} is a folder, so the output must be a folder; {dst} is a file")
        if dst.exists() and dst.resolve() == src.resolve():
            raise ValueError(f"output folder {dst} is the input folder: the originals would be overwritten")
        if dst.is_dir() and any(dst.iterdir()) and not cfg.overwrite:
            raise ValueError(f"output folder is not empty: {dst} (pass --overwrite to write into it)")
        return [(f, dst / f.name) for f in files]
    target = dst / src.name if dst.is_dir() else dst
    if target.exists() and target.resolve() == src.resolve():
        raise ValueError(f"output {target} is the input file: it would be overwritten")
    if target.exists() and not cfg.overwrite:
        raise ValueError(f"output file exists: {target} (pass --overwrite to replace it)")
    return [(src, target)]


def run_restore(cfg: RestoreConfig) -> RestoreResult:
    """Restore ``cfg.input`` (a file or a folder of images) into ``cfg.output``."""
    from tqdm import tqdm

    from .deploy import load_model

    cfg.validate()
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    network = load_model(cfg.model, cfg.threads)  # a checkpoint, or an ONNX / TorchScript export
    jobs = _jobs(cfg)
    result = RestoreResult()
    for src, dst in tqdm(jobs, desc="restore", unit="image", disable=not cfg.progress or len(jobs) < 2):
        conversion = restore_file(network, src, dst, cfg.tile or None, cfg.overlap, device,  # tile 0: whole images
                                  cfg.self_ensemble)
        result.written.append(dst)
        if conversion:
            result.conversions[src] = conversion
    return result


def _parser() -> argparse.ArgumentParser:
    from .ensemble import ENSEMBLE_HELP, ENSEMBLES

    d = RestoreConfig()
    p = argparse.ArgumentParser(prog="clearer-nni restore", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input", help="an image file, or a folder of images")
    p.add_argument("-o", "--output", required=True,
                   help="output file (its suffix picks the format), or folder when the input is a folder")
    p.add_argument("--model", required=True,
                   help="model.ckpt written by clearer_nni.retrain, or its export (model.onnx runs through "
                        "onnxruntime; a TorchScript file through torch.jit)")
    p.add_argument("--tile", type=int, default=d.tile, help="tile side in pixels (0: whole images)")
    p.add_argument("--overlap", type=int, default=d.overlap, help="pixels shared by neighbouring tiles, blended")
    p.add_argument("--self-ensemble", nargs="?", const="8", choices=tuple(ENSEMBLES), default=d.self_ensemble,
                   help=ENSEMBLE_HELP)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=d.threads, help=THREADS_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    try:
        cfg = RestoreConfig(**vars(_parser().parse_args(argv)))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)

    def _run() -> int:
        result = run_restore(cfg)
        for kind, message in CONVERSIONS.items():
            files = [src for src, c in result.conversions.items() if c == kind]
            if files:
                which = files[0] if len(files) == 1 else f"{len(files)} of {len(result.written)} images"
                print(f"note: {which}: {message}", file=sys.stderr)
        where = result.written[0] if len(result.written) == 1 else Path(cfg.output)
        print(f"restored {len(result.written)} image(s) into {where}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
