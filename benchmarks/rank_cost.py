"""The cost of ``clearer-nni rank`` on the demo space (4,096 architectures), measured on a sample.

A demo-space super-network (fresh weights: the cost does not depend on them) scores ``--sample``
architectures drawn uniformly (seeded) exactly as ``rank`` does (:class:`clearer_nni.nas.ranking.Scorer`:
build + weight transfer, parameters, FLOPs at 64x64, BatchNorm re-estimated on the training patches, PSNR
on the fixed validation patches); the whole space's time is the sample's mean x 4,096 (an extrapolation,
said so). The patches are the demo recipe's (48x48, batch 8) and ``rank``'s default 64 of each.

    python benchmarks/rank_cost.py --sample 64
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import _results
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample", type=int, default=64)
    p.add_argument("--val-patches", type=int, default=64)
    p.add_argument("--no-write", action="store_true", help="print, do not append to docs/RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    from clearer_nni.archs.space import ClearerSpace, load_space_file
    from clearer_nni.data import GaussianNoise, PatchDataset, fixed_batches, search_sets
    from clearer_nni.nas.ranking import Scorer, all_choices, space_size

    space = load_space_file("demo")
    train_set, val_set, _ = search_sets("skimage", None, 1)
    noise = GaussianNoise(50.0)
    monitor = fixed_batches(PatchDataset(val_set, 48, noise, length=args.val_patches, seed=2, augment=False), 8)
    calibration = fixed_batches(PatchDataset(train_set, 48, noise, length=args.val_patches, seed=3), 8)
    torch.manual_seed(0)
    scorer = Scorer(ClearerSpace(space), calibration, monitor)
    everything = list(all_choices(space))
    sample = random.Random(0).sample(everything, args.sample)
    scorer.score(sample[0])  # warm-up (first-call allocations)
    times = []
    for choices in sample:
        start = time.perf_counter()
        scorer.score(choices)
        times.append(time.perf_counter() - start)
    mean = statistics.mean(times)
    total = space_size(space)
    load = os.getloadavg()[0]
    body = (f"Space `demo` ({total} architectures), {args.sample} architectures drawn uniformly (seed 0), fresh "
            f"super-network weights, {args.val_patches} validation + {args.val_patches} BatchNorm-calibration patches "
            f"of 48x48 in batches of 8 (the demo recipe's), one torch thread; 1-minute load average {load:.1f} at the "
            "end (2 cores, shared).\n\n"
            + _results.table(["seconds per architecture (Scorer.score)", "mean", "median", "min", "max"],
                             [["scoring", mean, statistics.median(times), min(times), max(times)]])
            + f"\n\n**Whole space, extrapolated from the sample (not run): {mean * total / 60:.1f} minutes** "
            f"({mean:.3f} s x {total}); the issue's target is under 20 minutes.\n")
    print(body)
    if not args.no_write:
        _results.append_section("`clearer-nni rank` cost, demo space (benchmarks/rank_cost.py)", body,
                                machine="2-core CPU dev machine, shared", date="2026-12-01")


if __name__ == "__main__":
    main()
