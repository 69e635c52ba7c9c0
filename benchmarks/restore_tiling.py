"""Benchmark: how small may ``restore``'s tiles and overlaps be before the tile grid shows?

A network of S cells downsamples by f = 2^S. For a briefly retrained network of the tiny space (S = 2)
and of a 3-cell space (S = 3, the paper's depth), each test image of the embedded ``skimage`` set
(Gaussian noise σ 50, fixed seed) is restored whole and tiled, for tiles of 2f..16f and overlaps of
0..4f. Reported per (tile, overlap), in 8-bit gray levels: the mean and the 99.9th percentile of
|tiled − whole| (the seams), and the PSNR loss of the tiled result against the whole one (both scored
on the clean image). ``clearer_nni.models.tiling.min_tiling`` refuses tiles below 8f and overlaps below 2f.

    python benchmarks/restore_tiling.py            # ~17 minutes on the shared 2-core machine
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _results  # noqa: F401 - puts the repository on sys.path
import numpy as np
import torch

from _results import append_section, table

SPACES = {2: dict(channels=(8, 16, 32), columns=(2, 2)), 3: dict(channels=(8, 16, 32, 64), columns=(2, 2, 2))}


def _trained(cells: int, steps: int, folder: Path) -> torch.nn.Module:
    from clearer_nni.archs import SpaceConfig
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.retrain import RetrainConfig, run_retrain

    space = SpaceConfig(stem="paper", **SPACES[cells])
    geno = Genotype(space, {label: ("fusion" if i % 2 else "parallel") for i, label in enumerate(space.labels)},
                    {}, {"train_data": "skimage/train", "val_data": "skimage/val"})
    geno.save(folder / f"g{cells}.json")
    result = run_retrain(RetrainConfig(genotype=str(folder / f"g{cells}.json"), out=str(folder / f"r{cells}"),
                                       steps=steps, batch_size=8, patch_size=48, lr=1e-3, val_every=steps,
                                       val_patches=8, sigma=50.0, progress=False))
    return result.network.eval()


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(x, 0, 1) - ref) ** 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300, help="retraining steps of each network")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to docs/RESULTS.md")
    ns = p.parse_args()
    torch.set_num_threads(1)
    from clearer_nni.data import load_dataset
    from clearer_nni.models.tiling import restore_array

    clean = load_dataset("skimage", "test", channels=1).images
    rng = np.random.default_rng(0)
    noisy = [c + rng.normal(0, 50 / 255, c.shape).astype(np.float32) for c in clean]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cells in SPACES:
            net = _trained(cells, ns.steps, Path(tmp))
            f = 2 ** cells
            whole = [restore_array(net, x, tile=None) for x in noisy]
            for tile in (2 * f, 4 * f, 8 * f, 16 * f):
                for overlap in (0, f // 2, f, 2 * f, 4 * f):
                    if overlap >= tile:
                        continue
                    diffs, losses = [], []
                    for x, w, c in zip(noisy, whole, clean):
                        t = restore_array(net, x, tile=tile, overlap=overlap)
                        diffs.append(np.abs(t - w).ravel() * 255)
                        losses.append(_psnr(w, c) - _psnr(t, c))
                    d = np.concatenate(diffs)
                    rows.append((cells, f, tile, overlap, float(d.mean()), float(np.percentile(d, 99.9)),
                                 float(np.mean(losses))))
    text = table(["S", "f = 2^S", "tile", "overlap", "mean |tiled - whole| (levels)", "99.9th pct (levels)",
                  "PSNR loss (dB)"], rows)
    print(text)
    if not ns.no_record:
        append_section("restore: tile and overlap against the network's downsampling", text + (
            f"\n\nNetworks retrained {ns.steps} steps (Adam 1e-3, σ 50, skimage train), alternating parallel / fusion "
            "columns; scored on the skimage test images, whole-image restoration as the reference."))


if __name__ == "__main__":
    main()
