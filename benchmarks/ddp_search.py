"""Benchmark: one search on 2 CPU processes (Lightning DDP, gloo) against 1 process at the same global batch.

Both run ``clearer-nni search`` as a user would (``--devices 2 --device cpu`` against ``--devices 1``), the
same steps of the same global batch (so the same number of patches), one torch thread per process,
alternating 1 2 1 2 ... so that a busy neighbour slows both alike. Measured per run:

- steps/s between the first and the last logged step (``search_log.csv``'s ``seconds``: start-up
  excluded, the logged validations included, alike on both sides);
- wall time of the whole command (start-up, DDP launch and the final evaluation included): the time to
  the same number of samples;
- how far the 2-process search's α trajectory is from the 1-process one (largest |ΔP(parallel)| over
  the logged steps): BatchNorm normalises over each rank's half batch under DDP, not the whole batch.

    python benchmarks/ddp_search.py                      # demo space, 40 steps, batch 8, 2 repeats
    python benchmarks/ddp_search.py --space tiny --steps 200 --batch-size 4 --patch-size 32 --no-record
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _results  # noqa: F401 - puts the repository on sys.path

from _results import append_section, median_spread, table

__all__ = ["run_search", "main"]


def run_search(out: Path, devices: int, args: argparse.Namespace) -> dict[str, float]:
    """One search into ``out`` on ``devices`` CPU processes; its rate, wall time and log rows."""
    cmd = [sys.executable, "-m", "clearer_nni.search", "--space", args.space, "--steps", str(args.steps),
           "--warmup-steps", str(args.warmup_steps), "--log-every", str(args.log_every), "--batch-size",
           str(args.batch_size), "--patch-size", str(args.patch_size), "--val-patches", str(args.val_patches),
           "--checkpoint-every", "0", "--no-supernet", "--devices", str(devices), "--device", "cpu",
           "--no-progress", "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(out / "search_log.csv"))]
    first, last = rows[0], rows[-1]
    rate = (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])
    return {"rate": rate, "wall": wall, "rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="demo")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=48)
    p.add_argument("--val-patches", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-record", action="store_true", help="print only; do not append to docs/RESULTS.md")
    args = p.parse_args()

    load = os.getloadavg()
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for devices in (1, 2):
                res = run_search(Path(tmp) / f"s{devices}_{r}", devices, args)
                runs[devices].append(res)
                print(f"repeat {r}, {devices} process(es): {res['rate']:.3f} steps/s, {res['wall']:.1f} s", flush=True)
    keys = [k for k in runs[1][0]["rows"][0] if k.startswith("p_parallel/")]
    drift = max(abs(a[k] - b[k]) for a, b in zip(runs[1][0]["rows"], runs[2][0]["rows"]) for k in keys)
    spread = max(r.get("alpha_rank_diff", 0.0) for res in runs[2] for r in res["rows"])
    rows = []
    for devices in (1, 2):
        rate, rmin, rmax = median_spread([x["rate"] for x in runs[devices]])
        wall, wmin, wmax = median_spread([x["wall"] for x in runs[devices]])
        rows.append([devices, rate, f"{rmin:.3f}-{rmax:.3f}", rate * args.batch_size, wall, f"{wmin:.1f}-{wmax:.1f}"])
    speed = rows[1][1] / rows[0][1]
    walls = rows[0][4] / rows[1][4]
    body = (f"Space `{args.space}`, {args.steps} steps ({args.warmup_steps} warm-up), global batch {args.batch_size} "
            f"of {args.patch_size}x{args.patch_size} (2 processes: {args.batch_size // 2} each), logged every "
            f"{args.log_every} steps; {args.repeats} alternating repeats, median (min-max); one torch thread a "
            "process.\n\n"
            + table(["processes", "steps/s", "steps/s min-max", "patches/s", "wall s (same patches)", "wall min-max"],
                    rows)
            + f"\n\n2 processes / 1: {speed:.2f}x the steps/s; time to the same number of patches, 1-process wall "
              f"/ 2-process wall: {walls:.2f} (above 1: 2 processes are faster). 1-minute load average before / "
              f"after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} (2 cores). α on the two ranks: largest difference {spread:g} over all logged steps. 2-process α "
              f"trajectory against the 1-process one: largest |ΔP(parallel)| {drift:.2g} (BatchNorm statistics "
              "per rank).\n")
    print(body)
    if not args.no_record:
        append_section("DDP search, 2 CPU processes against 1 (benchmarks/ddp_search.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
