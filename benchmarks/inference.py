"""Benchmark 3, inference: the network built from a genotype against the same network assembled by hand.

1. A: ``Genotype(space, choices).build()`` (a :class:`ClearerSpace` frozen by NNI into a
   :class:`ClearerNetwork`). B: the same network assembled by hand in this file from the classes of
   ``clearer_nni/archs/modules.py`` (loaded straight from that file, so neither ``ClearerSpace`` nor NNI
   is imported on B's side), with A's ``state_dict`` loaded into it; the two must give identical outputs
   before anything is timed. The genotype is fixed (8 fusion + 4 parallel columns, paper-like; the cost
   of a derived network depends only on its choices, not on how they were searched).
   Time per megapixel: eval, ``no_grad``, one ``size x size`` gray image per forward, A and B
   alternating A B A B in one process, median of the paired ratios A / B (the machine may be shared:
   paired ratios cancel slow phases).
2. Peak memory of one forward, and of :func:`clearer_nni.models.tiling.restore_array` (tile 256, overlap 32)
   on synthetic gray images of 0.25, 1, 4 and 16 megapixels.

How memory is measured: ``tracemalloc`` does not see torch's allocations, so each measurement runs in a
**fresh subprocess** (no earlier peak carries over). The subprocess imports, builds the network, then
resets the kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``, Linux) and reads ``VmRSS``; after
the measured work it reads the peak ``VmHWM`` (or ``getrusage(RUSAGE_SELF).ru_maxrss`` where the mark
cannot be reset). Reported: peak RSS growth = peak − RSS before the work, in MB (10^6 bytes). For the
tiled restore the growth includes the input image (created inside the measured span) and the output;
both grow with the image (a 16 MP float32 plane is 64 MB), so the table also gives the growth minus the
input and output planes (the working memory), and minus the three image-sized planes alive while the
tiles run (input, accumulator, blend weights): what is left is the network's per-tile memory, which
should stay flat.

    python benchmarks/inference.py --quick            # demo space, 0.25/1/4 MP, ~1.5 minutes
    python benchmarks/inference.py                    # default (denoise) space, 0.25/1/4/16 MP (~15 min)

3. ``--runtimes``: the exported network (``clearer_nni.deploy``) run by ONNX Runtime and by TorchScript
   against PyTorch itself, on the CPU, for the demo and default spaces: time per megapixel of one
   ``tile x tile`` forward (the tile ``restore`` runs), the runtimes interleaved P O T P O T ... in one
   process, the same image; median of the paired ratios to PyTorch. Needs the ``[onnx]`` extra.

    python benchmarks/inference.py --runtimes         # demo and denoise spaces (~3 minutes)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import _results  # noqa: F401 - puts the repository on sys.path
import numpy as np
import torch
import torch.nn as nn

from _results import REPO, append_section, table

#: A fixed paper-like genotype: 8 fusion and 4 parallel columns over 3 cells x 4 columns.
PATTERN = ("FPFF", "FFPF", "PFFP")
SIZES_MP = {"quick": (0.25, 1.0, 4.0), "full": (0.25, 1.0, 4.0, 16.0)}
MB = 1e6


# -- B: the network assembled by hand, no ClearerSpace, no NNI ---------------------------------------

def _modules() -> Any:
    """``clearer_nni/archs/modules.py`` loaded from its file (the package's ``__init__`` would import NNI)."""
    name = "_clearer_modules_standalone"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "clearer_nni" / "archs" / "modules.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return sys.modules[name]


class HandNetwork(nn.Module):
    """Stem → per cell (transition, columns) → head, written out; attribute names match ClearerNetwork's."""

    def __init__(self, space: dict[str, Any], choices: Sequence[Sequence[str]]) -> None:
        super().__init__()
        m = _modules()
        c = space
        self.global_residual = bool(c.get("global_residual", False))
        self.stem = (m.AuthorsStem(c["in_channels"], c["channels"][0]) if c["stem"] == "authors"
                     else m.PaperStem(c["in_channels"], c["channels"][0]))
        prev = [self.stem.out_channels]
        self.transitions, self.cells = nn.ModuleList(), nn.ModuleList()
        for i, picks in enumerate(choices, start=1):
            ch = list(c["channels"][: i + 1])
            self.transitions.append(m.TransitionModule(prev, ch))
            self.cells.append(nn.ModuleList(m.ParallelModule(ch) if p == "parallel" else m.FusionModule(ch)
                                            for p in picks))
            prev = ch
        self.head = m.Head(prev, c["out_channels"])
        m.init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.stem(x)
        for transition, cell in zip(self.transitions, self.cells):
            branches = transition(branches)
            for column in cell:
                branches = column(branches)
        out = self.head(branches)
        return out + x if self.global_residual else out


# -- shared setup -----------------------------------------------------------------------------------

def _space(name: str) -> dict[str, Any]:
    from clearer_nni.archs.space import load_space_file

    return load_space_file(name).to_dict()


def _choices(space: dict[str, Any]) -> list[list[str]]:
    """PATTERN fitted to the space's columns (cycled where a cell has more columns)."""
    out = []
    for i, n in enumerate(space["columns"]):
        pat = PATTERN[i % len(PATTERN)]
        out.append(["fusion" if pat[j % len(pat)] == "F" else "parallel" for j in range(n)])
    return out


def build_a(space: dict[str, Any], choices: list[list[str]]) -> nn.Module:
    from clearer_nni.archs import SpaceConfig
    from clearer_nni.nas.genotype import Genotype

    cfg = SpaceConfig.from_dict(dict(space))
    flat = [p for cell in choices for p in cell]
    return Genotype(cfg, dict(zip(cfg.labels, flat))).build()


# -- memory, one measurement per fresh subprocess ----------------------------------------------------

def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _mark() -> tuple[int, str]:
    """Reset the peak-RSS mark where possible; RSS now (kB) and how the peak will be read."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _rss_kb("VmRSS"), "VmHWM"
    except OSError:
        return _rss_kb("VmRSS"), "ru_maxrss"


def _peak_kb(how: str) -> int:
    return _rss_kb("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(job["threads"])
    space, choices = job["space"], job["choices"]
    if job["what"] == "hand":
        net = HandNetwork(space, choices)
        assert "nni" not in sys.modules, "the hand-built side imported NNI"
    else:
        net = build_a(space, choices)
    net.eval()
    if job["what"] in ("genotype", "hand"):
        s = job["size"]
        x = torch.randn(1, space["in_channels"], s, s, generator=torch.Generator().manual_seed(0))
        before, how = _mark()
        t = time.perf_counter()
        with torch.no_grad():
            net(x)
        seconds = time.perf_counter() - t
        pixels = s * s
    else:  # tiled restore
        from clearer_nni.models.tiling import restore_array

        side = job["side"]
        before, how = _mark()
        img = np.random.default_rng(0).random((side, side, space["in_channels"]), dtype=np.float32)
        t = time.perf_counter()
        out = restore_array(net, img, tile=job["tile"], overlap=job["overlap"], device="cpu")
        seconds = time.perf_counter() - t
        assert out.shape == img.shape
        pixels = side * side
    return {"peak_mb": (_peak_kb(how) - before) * 1024 / MB, "seconds": seconds, "pixels": pixels, "how": how}


def _spawn(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(job)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {job['what']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- main -------------------------------------------------------------------------------------------

def time_pairs(a: nn.Module, b: nn.Module, x: torch.Tensor, warmup: int, pairs: int) -> tuple[list[float], list[float]]:
    ta, tb = [], []
    with torch.no_grad():
        for k in range(warmup + pairs):
            for net, acc in ((a, ta), (b, tb)):
                t = time.perf_counter()
                net(x)
                if k >= warmup:
                    acc.append(time.perf_counter() - t)
    return ta, tb


def _realistic_weights(net: nn.Module) -> nn.Module:
    """Variance-keeping random convolution weights: the 1e-3 initialisation makes tiny activations
    (denormal floats slow some CPU kernels), unlike a trained network."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
    return net.eval()


def compare_runtimes(args: argparse.Namespace, threads: int) -> int:
    """Section 3 of the module docstring: ONNX Runtime and TorchScript against PyTorch."""
    import tempfile

    from clearer_nni.archs import SpaceConfig
    from clearer_nni.deploy import OnnxNetwork, export_model, load_model
    from clearer_nni.nas.genotype import Genotype

    spaces = args.spaces.split(",")
    size = args.size if args.size != 512 else 256  # default here: the restore tile
    rows, notes = [], []
    for name in spaces:
        space = _space(name)
        choices = _choices(space)
        cfg = SpaceConfig.from_dict(dict(space))
        geno = Genotype(cfg, dict(zip(cfg.labels, [p for cell in choices for p in cell])))
        net = _realistic_weights(build_a(space, choices))
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            # random weights give outputs far outside [0, 1]: report the difference, do not refuse it
            onnx_check = export_model(net, geno, Path(tmp) / "m.onnx", "onnx", tolerance=math.inf)
            onnx_s = time.perf_counter() - t
            ts_check = export_model(net, geno, Path(tmp) / "m.pt", "torchscript", tolerance=math.inf)
            with torch.no_grad():
                scale = float(net(torch.rand(1, space["in_channels"], 37, 45)).abs().max())
            runtimes = {"PyTorch (eager)": net, "ONNX Runtime": OnnxNetwork(Path(tmp) / "m.onnx", threads),
                        "TorchScript": load_model(Path(tmp) / "m.pt")}
            x = torch.rand(1, space["in_channels"], size, size, generator=torch.Generator().manual_seed(0))
            big = name == "denoise"
            warmup = args.warmup if args.warmup is not None else (1 if big else 2)
            pairs = args.pairs if args.pairs is not None else (4 if big else 10)
            times: dict[str, list[float]] = {k: [] for k in runtimes}
            with torch.no_grad():
                for k in range(warmup + pairs):
                    for label, model in runtimes.items():
                        t = time.perf_counter()
                        model(x)
                        if k >= warmup:
                            times[label].append(time.perf_counter() - t)
        mp = size * size / 1e6
        base = times["PyTorch (eager)"]
        n_params = sum(q.numel() for q in net.parameters())
        for label, ts in times.items():
            ratios = [a / b for a, b in zip(ts, base)]
            rows.append([name, f"{n_params / 1e6:.3f}", label, statistics.median(ts) / mp,
                         "1" if label.startswith("PyTorch") else
                         f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"])
            print(f"{name} {label}: {statistics.median(ts) / mp:.3f} s/MP", flush=True)
        notes.append(f"`{name}`: max |export - PyTorch| on the odd check sizes {onnx_check.max_abs_diff:.2g} "
                     f"(ONNX), {ts_check.max_abs_diff:.2g} (TorchScript), outputs up to {scale:.3g} in magnitude; "
                     f"ONNX export + check {onnx_s:.0f} s; "
                     f"{warmup} untimed + {pairs} timed rounds")
    import onnxruntime

    body = (
        f"The exported network against PyTorch, CPU, one {size}x{size} gray forward (the `restore` tile), "
        f"torch and ONNX Runtime intra-op threads {threads}, fixed genotype "
        f"{' | '.join(''.join(c[0].upper() for c in cell) for cell in _choices(_space(spaces[0])))}, "
        "variance-keeping random weights (not the 1e-3 initialisation), eval, `no_grad`. The three runtimes "
        "run interleaved (PyTorch, ONNX Runtime, TorchScript, again...) in one process on the same image; "
        f"ratio: median of the per-round ratios to PyTorch (min-max). onnxruntime {onnxruntime.__version__}, "
        f"torch {torch.__version__}; ONNX opset 18, dynamic batch/height/width, exported by torch.onnx (dynamo).\n\n"
        + table(["space", "M params", "runtime", f"s/MP ({size}x{size})", "time / PyTorch"], rows)
        + "\n\n" + "; ".join(notes) + "."
    )
    print("\n" + body)
    if not args.no_append:
        append_section("Inference runtimes: ONNX Runtime and TorchScript vs PyTorch", body, machine=args.machine)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    p.add_argument("--space", default="denoise", help="space file or name in search_spaces/ [denoise; --quick: demo]")
    p.add_argument("--size", type=int, default=512, help="side of the square image of the A/B forward")
    p.add_argument("--warmup", type=int, help="untimed A/B pairs first [2; default space 1]")
    p.add_argument("--pairs", type=int, help="timed A/B pairs [10; default space 4]")
    p.add_argument("--reps", type=int, help="fresh subprocesses per memory measurement [quick 2, else 1]")
    p.add_argument("--sizes", help="comma-separated megapixels of the tiled restore [0.25,1,4,16; quick 0.25,1,4]")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: stable pairs on a shared machine; 0: torch's default)")
    p.add_argument("--quick", action="store_true", help="demo space, 0.25/1/4 MP (a few minutes at most)")
    p.add_argument("--machine", default="2-core CPU (dev machine, shared with another job part of the time)",
                   help="named in docs/RESULTS.md")
    p.add_argument("--no-append", action="store_true", help="print only, do not write docs/RESULTS.md")
    p.add_argument("--runtimes", action="store_true",
                   help="ONNX Runtime and TorchScript exports against PyTorch (section 3 of the docstring)")
    p.add_argument("--spaces", default="demo,denoise", help="with --runtimes: the spaces, comma-separated")
    args = p.parse_args(argv)
    if args._worker:
        print(json.dumps(_worker(json.loads(args._worker))))
        return 0
    from clearer_nni.runtime import quiet_libraries
    from clearer_nni.models.tiling import tile_starts

    quiet_libraries()
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    if args.runtimes:
        return compare_runtimes(args, threads)
    if args.quick and args.space == "denoise":
        args.space = "demo"
    big = args.space == "denoise"
    warmup = args.warmup if args.warmup is not None else (1 if big else 2)
    pairs = args.pairs if args.pairs is not None else (4 if big else 10)
    reps = args.reps or (2 if args.quick else 1)
    sizes = ([float(s) for s in args.sizes.split(",")] if args.sizes
             else list(SIZES_MP["quick" if args.quick else "full"]))

    space = _space(args.space)
    choices = _choices(space)
    a = build_a(space, choices).eval()
    b = HandNetwork(space, choices).eval()
    b.load_state_dict(a.state_dict())
    n_params = sum(q.numel() for q in a.parameters())
    assert n_params == sum(q.numel() for q in b.parameters())
    x = torch.randn(1, space["in_channels"], args.size, args.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert torch.equal(ya, yb), f"A and B differ: max |A - B| = {(ya - yb).abs().max().item()}"
    print(f"space {args.space}: {n_params / 1e6:.3f} M parameters, outputs of A and B identical", flush=True)

    mp = args.size * args.size / 1e6
    ta, tb = time_pairs(a, b, x, warmup, pairs)
    ratios = [p_ / q_ for p_, q_ in zip(ta, tb)]
    print("A/B time ratios: " + ", ".join(f"{r:.3f}" for r in ratios), flush=True)
    del a, b

    job = {"space": space, "choices": choices, "threads": threads}
    mem: dict[str, list[dict[str, Any]]] = {"genotype": [], "hand": []}
    for _ in range(reps):
        for what in ("genotype", "hand"):
            mem[what].append(_spawn({**job, "what": what, "size": args.size}))
    how = mem["genotype"][0]["how"]
    peak = {w: statistics.median(r["peak_mb"] for r in rs) for w, rs in mem.items()}
    mem_ratios = [ra["peak_mb"] / rb["peak_mb"] for ra, rb in zip(mem["genotype"], mem["hand"])]
    print(f"peak RSS growth of one forward: A {peak['genotype']:.1f} MB, B {peak['hand']:.1f} MB", flush=True)

    tiled: dict[float, list[dict[str, Any]]] = {s: [] for s in sizes}
    sides = {s: int(round((s * 1e6) ** 0.5)) for s in sizes}
    for _ in range(reps):
        for s in sizes:
            r = _spawn({**job, "what": "tiled", "side": sides[s], "tile": args.tile, "overlap": args.overlap})
            tiled[s].append(r)
            print(f"tiled {s} MP ({sides[s]}x{sides[s]}): peak +{r['peak_mb']:.1f} MB, "
                  f"{r['seconds'] / (r['pixels'] / 1e6):.2f} s/MP", flush=True)

    rows_ab = [
        ["A: Genotype.build() (NNI freeze)", statistics.median(ta) / mp, peak["genotype"]],
        ["B: assembled by hand (no NNI)", statistics.median(tb) / mp, peak["hand"]],
        ["A / B (median of paired ratios)", f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})",
         f"{statistics.median(mem_ratios):.3f}"],
    ]
    rows_t = []
    for s in sizes:
        rs = tiled[s]
        plane = sides[s] * sides[s] * space["in_channels"] * 4 / MB
        pk = statistics.median(r["peak_mb"] for r in rs)
        spm = statistics.median(r["seconds"] / (r["pixels"] / 1e6) for r in rs)
        spread = (len(tile_starts(sides[s], args.tile, args.overlap)) * min(args.tile, sides[s]) / sides[s]) ** 2
        rows_t.append([f"{s:g}", f"{sides[s]}x{sides[s]}", spm, spm / spread, pk, 2 * plane, pk - 2 * plane,
                       pk - 3 * plane])
    peak_method = ("the kernel's peak-RSS mark reset after setup (`/proc/self/clear_refs`), `VmHWM` after"
                   if how == "VmHWM" else "`getrusage(RUSAGE_SELF).ru_maxrss` after")
    work = [r[6] for r in rows_t]
    net_part = [r[7] for r in rows_t]
    per_tile_px = [r[3] for r in rows_t]
    r_med = statistics.median(ratios)
    body = (
        f"Space `{args.space}` ({n_params / 1e6:.3f} M parameters), fixed genotype "
        f"{' | '.join(''.join(c[0].upper() for c in cell) for cell in choices)} (8 fusion + 4 parallel), "
        f"gray input, eval, `no_grad`, torch threads {threads}. A = `Genotype.build()` (ClearerSpace frozen by "
        "NNI); B = the same network assembled by hand from `clearer_nni/archs/modules.py` (no ClearerSpace, "
        "NNI not imported), A's state_dict loaded, outputs checked identical (`torch.equal`). Time: "
        f"{args.size}x{args.size} forward, {warmup} untimed + {pairs} timed interleaved A B pairs, median "
        "(ratio: median of paired ratios, min-max in brackets). Memory: peak RSS growth in MB (10^6 B), "
        f"each measurement in a fresh subprocess ({reps} per row, median): {peak_method} the work "
        "(first forward in that process, so one-time allocator/oneDNN set-up is included).\n\n"
        + table(["network", f"s/MP ({args.size}x{args.size})", "peak RSS growth MB (one forward)"], rows_ab)
        + f"\n\nTiled restore (`restore_array`, tile {args.tile}, overlap {args.overlap}) on synthetic gray "
        "images (uniform noise) with network A; peak RSS growth from before the input image is created to the "
        "end of `restore_array`. `s/tiled MP`: seconds per megapixel of tiles actually run (overlapping tiles "
        "cover more pixels than the image). `in+out MB`: the input and output float32 planes; `working MB` = "
        "peak - in - out; `- 3 planes MB` = peak - the three image planes alive while the tiles run (input, "
        "accumulator, blend weights: `restore_array` keeps the last two image-sized by design), leaving the "
        "per-tile network memory (the final division briefly adds the output as a fourth plane).\n\n"
        + table(["MP", "image", "s/MP", "s/tiled MP", "peak RSS growth MB", "in+out MB", "working MB",
                 "- 3 planes MB"], rows_t)
        + "\n\n"
        + f"Reading: the genotype-built network runs at {r_med:.3f}x the time of the hand-assembled one "
        f"(paired ratios {min(ratios):.3f}-{max(ratios):.3f}) and with {statistics.median(mem_ratios):.3f}x its "
        "peak memory: NNI is out of the inference path once `freeze` has produced the plain ClearerNetwork "
        "(same modules, same forward; any difference is noise of the shared machine). Tiled restore: the "
        f"working memory beyond the input and output is {work[0]:.0f} MB at {sizes[0]:g} MP and {work[-1]:.0f} MB "
        f"at {sizes[-1]:g} MP, and the per-tile part (minus the 3 image planes) stays within "
        f"{min(net_part):.0f}-{max(net_part):.0f} MB while the image grows {sizes[-1] / sizes[0]:g}x (its 3 "
        f"planes from {3 * rows_t[0][5] / 2:.0f} to {3 * rows_t[-1][5] / 2:.0f} MB): "
        + ("flat (a spread of the order of the run-to-run variation, see the raw runs): the network's memory does "
           "not grow with the image, only `restore_array`'s two image-sized buffers (accumulator and blend "
           "weights) do."
           if max(net_part) - min(net_part) <= max(25.0, 0.3 * max(abs(v) for v in net_part))
           else "NOT flat: see the per-size rows.")
        + f" Time per image megapixel falls from {rows_t[0][2]:.2f} to {rows_t[-1][2]:.2f} s because small images "
        "pay more tile overlap (and the first tile's set-up); per megapixel of tiles run it is "
        f"{min(per_tile_px):.2f}-{max(per_tile_px):.2f} s, against {statistics.median(ta) / mp:.2f} s for one "
        f"whole {args.size}x{args.size} forward."
    )
    print("\n" + body)
    if not args.no_append:
        append_section(f"Inference, {args.space} space", body, machine=args.machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
