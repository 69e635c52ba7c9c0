"""Restoring an image of any size with a network, tile by tile (``clearer-nni restore``, ``evaluate``'s CLEARER-P).

The image is cut into ``tile`` x ``tile`` windows overlapping by ``overlap`` pixels; each window is
restored on its own and the results are blended with a separable linear ramp over the overlaps, so the
network's memory does not grow with the image. Images no larger than a tile are restored whole.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..runtime import resolve_device

__all__ = ["check_tiling", "tile_starts", "blend_window", "restore_array", "network_space", "min_tiling",
           "check_tiling_for"]


def check_tiling(tile: int | None, overlap: int) -> None:
    """Refuse a tile or overlap that cannot tile (``tile`` ``None``: whole images)."""
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
    check_tiling(tile, overlap)
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


def network_space(network: nn.Module) -> Any:
    """The network's space (a derived CLEARER network's ``config``); ``ValueError`` when it has none."""
    config = getattr(network, "config", None)
    if config is None:
        raise ValueError("the network has no space config: cannot tell its image channels")
    return config


def min_tiling(network: nn.Module) -> tuple[int, int]:
    """The smallest ``(tile, overlap)`` :func:`run_restore` accepts for ``network``: ``8 * 2^S`` and ``2 * 2^S``.

    A network of ``S`` cells downsamples by ``2^S`` (its coarsest branch); a tile of a few coarse pixels,
    or an overlap of less than two, leaves a visible tile grid (docs/RESULTS.md, "restore: tile and overlap").
    """
    factor = 2 ** network_space(network).num_cells
    return 8 * factor, 2 * factor


def check_tiling_for(network: nn.Module, tile: int | None, overlap: int) -> None:
    """Refuse a tile or overlap below :func:`min_tiling` (``tile`` ``None``: whole images, always fine)."""
    if tile is None:
        return
    min_tile, min_overlap = min_tiling(network)
    factor = min_overlap // 2
    if tile < min_tile or overlap < min_overlap:
        raise ValueError(f"tile {tile} / overlap {overlap} is too small for this model: it downsamples by {factor} "
                         f"(2^{network_space(network).num_cells}), so tiles need --tile >= {min_tile} and "
                         f"--overlap >= {min_overlap} (or --tile 0: whole images); smaller ones leave a visible grid")
