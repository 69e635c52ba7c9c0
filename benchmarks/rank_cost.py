"""The cost of ``clearer-nni rank`` on the demo space (4,096 architectures), measured on a sample.

A demo-space super-network (fresh weights: the cost does not depend on them) scores ``--sample``
architectures drawn uniformly (seeded) one by one (:meth:`clearer_nni.nas.ranking.Scorer.score`: parameters,
FLOPs at 64x64, BatchNorm re-estimated on the training patches, PSNR on the fixed validation patches), and
blocks of 64 with prefix sharing as ``rank`` does (:meth:`~clearer_nni.nas.ranking.Scorer.score_tree`); the
whole space's time is a sample's mean per architecture x 4,096 (an extrapolation, said so). The patches are the demo recipe's (48x48, batch 8) and ``rank``'s default 64 of each.

    python benchmarks/rank_cost.py --sample 64 --subtrees 2
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
    p.add_argument("--subtrees", type=int, default=2, help="64-architecture blocks timed with prefix sharing")
    p.add_argument("--val-patches", type=int, default=64)
    p.add_argument("--no-write", action="store_true", help="print, do not append to docs/RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    from clearer_nni.archs.space import ClearerSpace, load_space_file
    from clearer_nni.data import GaussianNoise, PatchDataset, fixed_batches, search_sets
    from clearer_nni.nas.genotype import Genotype
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
    # prefix sharing (Scorer.score_tree, what rank runs): the 64 architectures below a random 6-column
    # prefix, walked from the root; the whole tree is 64 such subtrees (their shared root paths counted
    # in each: the extrapolation overestimates)
    codes = [Genotype(space, c).code() for c in everything]
    rng = random.Random(1)
    tree = []
    for _ in range(args.subtrees):
        prefix = rng.choice(codes)[:7]  # 6 columns and the cell separator
        block = [c for c in codes if c.startswith(prefix)]
        start = time.perf_counter()
        scorer.score_tree(block)
        tree.append((time.perf_counter() - start) / len(block))
    total = space_size(space)
    load = os.getloadavg()[0]
    per, shared = statistics.mean(times), statistics.mean(tree)
    body = (f"Space `demo` ({total} architectures), fresh super-network weights, {args.val_patches} validation + "
            f"{args.val_patches} BatchNorm-calibration patches of 48x48 in batches of 8 (the demo recipe's), one torch "
            f"thread; 1-minute load average {load:.1f} at the end (2 cores, shared). Each architecture alone "
            f"(`Scorer.score`): {args.sample} drawn uniformly (seed 0). Prefix sharing (`Scorer.score_tree`, what "
            f"`rank` runs): {args.subtrees} blocks of the 64 architectures below a random 6-column prefix.\n\n"
            + _results.table(["seconds per architecture", "mean", "median", "min", "max"],
                             [["each alone", per, statistics.median(times), min(times), max(times)],
                              ["prefix sharing", shared, statistics.median(tree), min(tree), max(tree)]])
            + f"\n\n**Whole space, extrapolated from these samples (not run): {shared * total / 60:.1f} minutes with prefix "
            f"sharing, {per * total / 60:.1f} minutes each alone** ({shared:.3f} s and {per:.3f} s x {total}; "
            f"sharing: {per / shared:.1f}x); the issue's target is under 20 minutes.\n")
    print(body)
    if not args.no_write:
        _results.append_section("`clearer-nni rank` cost, demo space (benchmarks/rank_cost.py)", body,
                                machine="2-core CPU dev machine, shared", date="2026-12-01")


if __name__ == "__main__":
    main()
