"""Benchmark 4, data pipeline: patches per second from the loader against what a search step consumes.

1. Supply: :class:`~clearer_nni.data.PatchDataset` (random crop, dihedral augmentation, Gaussian noise
   σ = 50) through :func:`~clearer_nni.data.make_loader` with 0, 1, 2 workers, batch 32, 64x64.
2. Demand: a ClearerDARTS search step consumes two batches (weights and α); its time is measured on
   the demo space at the same batch and patch size (the heaviest step-per-second case on a CPU).
3. The oversubscription trap: the same step with 1 and 2 torch threads, alone and beside one busy
   process (standing in for a loader worker or another job), on this machine's cores.

    python benchmarks/data_pipeline.py            # or --quick
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
import warnings
from typing import Any

import _results  # noqa: F401 - puts the repository on sys.path
import torch

from _results import append_section, table


def _patches(data: str, batch: int, patch: int, length: int) -> Any:
    from clearer_nni.data import GaussianNoise, PatchDataset, load_dataset

    return PatchDataset(load_dataset(data, "train"), patch, GaussianNoise(50.0), length=length, seed=0)


def loader_rate(data: str, batch: int, patch: int, workers: int, batches: int) -> float:
    """Patches per second over ``batches`` batches, after the workers have started and delivered once."""
    from clearer_nni.data import make_loader

    loader = make_loader(_patches(data, batch, patch, batch * (batches + 2 * max(workers, 1))), batch,
                         num_workers=workers)
    it = iter(loader)
    for _ in range(max(workers, 1)):  # worker start-up is a one-off cost (workers are persistent)
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batch * batches / (time.perf_counter() - start)
    del it, loader
    return rate


def step_seconds(batch: int, patch: int, warmup: int, steps: int) -> float:
    """Median seconds of one ClearerDARTS search step (demo space) at this batch and patch size."""
    from search_overhead import run_variant

    return statistics.median(run_variant("demo", "same", warmup, steps, batch=batch, patch=patch).lightning)


def _busy(stop: Any) -> None:
    torch.set_num_threads(1)
    x = torch.rand(256, 256)
    while not stop.is_set():
        x = (x @ x).clamp_(-1, 1)


def _plain_step_seconds(threads: int, busy: bool, batch: int, patch: int, steps: int) -> float:
    """Median seconds of a forward/backward of the demo super-network with ``threads`` torch threads."""
    from clearer_nni.archs import ClearerSpace, load_space_file
    from clearer_nni.nas import ClearerDARTS, candidate_costs, normalise_costs

    space_cfg = load_space_file("demo")
    net = ClearerDARTS(costs=normalise_costs(candidate_costs(space_cfg))).mutate_model(ClearerSpace(space_cfg))
    x = torch.rand(batch, space_cfg.in_channels, patch, patch)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    stop = mp.Event()
    proc = mp.Process(target=_busy, args=(stop,), daemon=True) if busy else None
    try:
        if proc:
            proc.start()
            time.sleep(0.5)
        times = []
        for i in range(steps + 1):
            t = time.perf_counter()
            net(x).square().mean().backward()
            if i:  # the first one allocates
                times.append(time.perf_counter() - t)
        return statistics.median(times)
    finally:
        torch.set_num_threads(previous)
        if proc:
            stop.set()
            proc.join(5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="bsd400", help="training images (bsd400 needs ../shared/data; or skimage)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--workers", default="0,1,2", help="worker counts to try")
    p.add_argument("--batches", type=int, default=30, help="timed batches per worker count")
    p.add_argument("--steps", type=int, default=6, help="timed search steps for the demand")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the demand step (1: the safe setting on a shared 2-core machine)")
    p.add_argument("--trap-steps", type=int, default=2, help="timed steps per oversubscription case")
    p.add_argument("--quick", action="store_true", help="fewer batches and steps")
    p.add_argument("--machine", default=_results.DEFAULT_MACHINE, help="named in docs/RESULTS.md")
    p.add_argument("--no-append", action="store_true", help="print only, do not write docs/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.steps = 8, 3
    from clearer_nni.runtime import quiet_libraries

    quiet_libraries()
    warnings.simplefilter("ignore")
    cores = os.cpu_count()
    b, s = args.batch, args.patch

    supply = [(int(w), loader_rate(args.data, b, s, int(w), args.batches)) for w in args.workers.split(",")]
    for w, r in supply:
        print(f"loader, {w} workers: {r:.0f} patches/s", flush=True)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    step = step_seconds(b, s, 2, args.steps)
    torch.set_num_threads(previous)
    demand = 2 * b / step  # a search step draws one weights batch and one α batch
    print(f"search step (demo space): {step:.3f} s -> {demand:.0f} patches/s", flush=True)

    trap = []
    for threads in (1, 2):
        for busy in (False, True):
            t = _plain_step_seconds(threads, busy, b, s, args.trap_steps)
            trap.append([threads, "yes" if busy else "no", t])
            print(f"threads {threads}, busy neighbour {busy}: {t:.3f} s", flush=True)
    base = {(r[0], r[1]): r[2] for r in trap}
    for r in trap:
        r.append(r[2] / base[(1, "no")])

    body = (f"Data `{args.data}`, batch {b}, {s}x{s}, σ = 50, dihedral augmentation; {cores} cores; "
            f"{args.batches} timed batches per worker count (workers persistent, one torch thread each, "
            "start-up excluded). Demand: a ClearerDARTS step (demo space, same batch and patch, Lightning "
            f"path, {args.threads} torch thread(s)) consumes 2 batches.\n\n"
            + table(["loader workers", "patches/s", "x demand"], [[w, r, r / demand] for w, r in supply])
            + f"\n\nSearch step, demo space: {step:.3f} s/step = {demand:.0f} patches/s demanded.\n\n"
            "Oversubscription: forward+backward of the demo super-network (same batch), torch threads vs a "
            "busy single-threaded neighbour process (median of "
            f"{args.trap_steps}):\n\n"
            + table(["torch threads", "busy neighbour", "s/step", "x (1 thread, alone)"], trap))
    print("\n" + body)
    if not args.no_append:
        append_section("Data pipeline", body, machine=args.machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
