"""``clearer-nni rank RUN_DIR --out X``: every architecture of a search's space, scored with its super-network's weights.

Writes ``ranking.csv`` (code, parameters, FLOPs at 64x64, PSNR on the fixed validation patches; one row per
architecture), ``pareto.csv`` and ``pareto.png`` (PSNR against parameters), ``genotype.json`` (the best
architecture, or the best under ``--max-params`` / ``--max-flops``) and ``ranking.json`` (how it was
ranked). The search's data, degradation, patch size, batch size and seed are the ones its genotype
records. Rows are appended as they are scored in ``.<X>.partial/``: after a crash or Ctrl-C the same
command continues where it stopped (:mod:`clearer_nni.nas.ranking`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["rank_run", "main"]


def _search_patches(genotype: Any, val_patches: int, batch_size: int | None, data_root: str | None) -> tuple[list, list]:
    """The search's fixed validation patches and BatchNorm calibration patches (the seeds ``run_search`` draws
    them with), from what its genotype records."""
    from .data import degradation_for, search_batches, search_sets
    from .retrain import dataset_spec

    gm = genotype.metadata
    for key in ("train_data", "val_data", "patch_size", "seed"):
        if key not in gm:
            raise ValueError(f"the search's genotype.json does not record {key!r}: cannot rebuild its patches")
    data, val = dataset_spec(gm["train_data"]), dataset_spec(gm["val_data"])
    train_set, val_set, _ = search_sets(data, None if val == data else val, genotype.space.in_channels, data_root)
    degradation = degradation_for(recorded=gm.get("degradation"))
    batch = int(batch_size or gm.get("batch_size", 32))
    fixed = search_batches(train_set, val_set, int(gm["patch_size"]), degradation, int(gm["seed"]), val_patches, batch)
    return fixed["monitor"], fixed["calibration"]


def rank_run(run_dir: str | Path, out: str | Path, *, max_params: int | None = None, max_flops: int | None = None,
             val_patches: int = 64, batch_size: int | None = None, budget: int | None = None,
             data_root: str | None = None, overwrite: bool = False, device: str = "cpu", progress: bool = True,
             on_row: Any = None) -> dict[str, Any]:
    """Rank the architectures of the search in ``run_dir`` into ``out``; return ``ranking.json``'s content.

    A staging folder of an interrupted ranking of the same search and settings is continued; another
    is started afresh. ``on_row`` is called with each newly scored row.

    Raises
    ------
    ValueError
        A bad run folder (no ``supernet.pt`` / ``genotype.json``, another space), a bad output, bad limits,
        or limits no architecture meets (the ranking is kept: the same command with other limits continues).
    """
    from . import outlock
    from .nas.genotype import Genotype
    from .nas.ranking import MAX_ENUMERATE, Scorer, choices_of, rank_supernet, space_size
    from .runtime import atomic_write_text, check_out, publish, resolve_device, staging_dir
    from .training.checkpoint import load_supernet

    run_dir, out = Path(run_dir), Path(out)
    for name, value in (("max_params", max_params), ("max_flops", max_flops), ("budget", budget),
                        ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {value}")
    if val_patches < 1:
        raise ValueError(f"val-patches must be >= 1, got {val_patches}")
    if not run_dir.is_dir():
        raise ValueError(f"run folder not found: {run_dir} (a search's output folder, with supernet.pt)")
    if not (run_dir / "supernet.pt").is_file():
        raise ValueError(f"{run_dir} has no supernet.pt: rank needs a search run without --no-supernet")
    searched = Genotype.load(run_dir / "genotype.json")
    supernet = load_supernet(run_dir / "supernet.pt")
    searched.check_space(supernet.config, source=str(run_dir / "genotype.json"))
    monitor, calibration = _search_patches(searched, val_patches, batch_size, data_root)

    out = check_out(out, overwrite)
    outlock.acquire(out)
    staging = staging_dir(out)
    total = space_size(supernet.config)
    settings = {"run": str(run_dir.resolve()), "val_patches": val_patches,
                "batch_size": int(monitor[0][0].shape[0]), "budget": budget, "space_size": total,
                "method": "exhaustive" if total <= MAX_ENUMERATE else "evolution"}
    record = staging / "ranking.json"
    try:
        previous = json.loads(record.read_text(encoding="utf-8")).get("settings") if record.is_file() else None
    except (OSError, ValueError):
        previous = None
    if previous == settings:
        print(f"continuing the interrupted ranking in {staging}", file=sys.stderr)
    else:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        atomic_write_text(record, json.dumps({"settings": settings}, indent=2) + "\n")
    scorer = Scorer(supernet, calibration, monitor, device=resolve_device(device))
    summary = rank_supernet(scorer, staging, settings, searched=searched.code(), max_params=max_params,
                            max_flops=max_flops, budget=budget, progress=progress, on_row=on_row,
                            label=f"{run_dir.name}: ")
    best = summary["best"]
    metadata = {**searched.metadata, "select": "rank", "rank": {k: v for k, v in summary.items() if k != "settings"},
                "searched_code": searched.code(), "val_psnr_inherited": best["psnr"], "params_derived": best["params"]}
    Genotype(supernet.config, choices_of(supernet.config, best["code"]), {}, metadata).save(staging / "genotype.json")
    publish(staging, out)
    return summary


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clearer-nni rank", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a search's output folder (genotype.json, supernet.pt)")
    p.add_argument("--out", required=True, help="output folder (written through a hidden staging folder)")
    p.add_argument("--max-params", type=int, help="genotype.json: the best with at most N parameters")
    p.add_argument("--max-flops", type=int, help="genotype.json: the best with at most N FLOPs at 64x64")
    p.add_argument("--val-patches", type=int, default=64, help="fixed validation patches every architecture is "
                   "scored on (and training patches its BatchNorm is re-estimated on) [64]")
    p.add_argument("--batch-size", type=int, help="batch size of the scoring [the search's]")
    p.add_argument("--budget", type=int, help="architectures the evolution scores in a space over 2^16 [65536]")
    p.add_argument("--data-root", help="root folder of named datasets [$CLEARER_DATA_ROOT or ../shared/data]")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to score [auto]")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = auto")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    def _run() -> int:
        from .runtime import set_threads

        args = vars(_parser().parse_args(argv))
        set_threads(args.pop("threads"))
        run_dir, out = args.pop("run_dir"), args.pop("out")
        s = rank_run(run_dir, out, **args)
        b, found = s["best"], s["searched"]
        print(f"ranked {s['ranked']} architectures ({s['method']}); Pareto front: {s['pareto']}")
        print(f"best{' within the limits' if s['max_params'] or s['max_flops'] else ''}: {b['code']} "
              f"{b['psnr']:.2f} dB, {b['params'] / 1e6:.3f} M parameters, {b['flops'] / 1e9:.3f} GFLOPs at 64x64")
        if found:
            print(f"searched: {found['code']} {found['psnr']:.2f} dB, {found['params'] / 1e6:.3f} M parameters")
        print(f"wrote {Path(out) / 'ranking.csv'}, pareto.csv, pareto.png, genotype.json")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
