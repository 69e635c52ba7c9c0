"""Building a ground-truth table: every architecture of a space trained from scratch with every seed.

Each (architecture, seed) is one row, appended to the table's CSV as soon as it is trained, so an
interrupted build loses at most the rows in progress and, started again, trains only what is missing.
Rows are trained in worker processes of one torch thread each (one per free core).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .recipe import RecipeError, TableRecipe

__all__ = ["FIELDS", "architectures", "read_table", "train_row", "build_table", "table_meta"]

#: The fixed columns of a table; the validation curve follows as ``val_psnr@<step>``.
FIELDS = ["architecture", "seed", "params", "flops", "train_seconds", "best_val_psnr", "best_step"]


def architectures(recipe: TableRecipe) -> list[str]:
    """Every architecture code of the recipe's space (``PF|FP``...), first column varying slowest."""
    from ..nas.genotype import Genotype
    from ..nas.ranking import all_choices

    space = recipe.space_config()
    return [Genotype(space, choices).code() for choices in all_choices(space)]


def fields(recipe: TableRecipe) -> list[str]:
    """All columns of the recipe's table."""
    curve = [f"val_psnr@{s}" for s in range(recipe.val_every, recipe.steps, recipe.val_every)] + [
        f"val_psnr@{recipe.steps}"]
    tests = [f"{t}_{m}" for t in recipe.test_sets for m in ("psnr", "ssim")]
    return FIELDS + tests + curve


# -- one row --------------------------------------------------------------------------------------

_DATA: dict[str, Any] = {}


def _data(recipe: TableRecipe, root: str | None) -> dict[str, Any]:
    """Training set, validation batches and test pairs of the recipe, loaded once per process."""
    key = json.dumps([recipe.training_key(), root], sort_keys=True)
    if key not in _DATA:
        from ..data import eval_pairs, fixed_batches, holdout_split, load_dataset, protocol_noisy
        from ..data.patches import PatchDataset

        _DATA.clear()
        degradation = recipe.make_degradation()
        channels = recipe.space_config().in_channels
        train_set, val_set = holdout_split(load_dataset(recipe.train_data, "train", channels=channels, root=root),
                                           every=recipe.holdout)
        val = fixed_batches(PatchDataset(val_set, recipe.patch_size, degradation, length=recipe.val_patches,
                                         seed=recipe.val_seed, augment=False), recipe.batch_size)
        tests = {}
        for name in recipe.test_sets:
            # the standard protocol: seed 0 for every image's noise
            tests[name] = eval_pairs(load_dataset(name, "test", channels=channels, root=root),
                                     protocol_noisy(degradation))
        _DATA[key] = {"degradation": degradation, "train": train_set, "val": val, "tests": tests}
    return _DATA[key]


def train_row(recipe: TableRecipe, code: str, seed: int, root: str | None = None) -> dict[str, Any]:
    """Train architecture ``code`` from scratch with ``seed``; its row of the table."""
    import pytorch_lightning as pl

    from ..archs.space import count_parameters
    from ..metrics.evaluation import evaluate_model
    from ..nas.genotype import Genotype
    from ..nas.ranking import choices_of, network_flops
    from ..training.fit import train_from_scratch

    data = _data(recipe, root)
    space = recipe.space_config()
    pl.seed_everything(seed, verbose=False)
    network = Genotype(space, choices_of(space, code)).build()
    params = count_parameters(network)
    flops = network_flops(network, space.in_channels, recipe.patch_size)
    network.train()
    facts = train_from_scratch(network, data["train"], data["degradation"], data["val"], steps=recipe.steps,
                               batch_size=recipe.batch_size, patch_size=recipe.patch_size, lr=recipe.lr,
                               grad_clip=recipe.grad_clip, seed=seed, val_every=recipe.val_every, device="cpu")
    row: dict[str, Any] = {"architecture": code, "seed": seed, "params": params, "flops": flops,
                           "train_seconds": facts["train_seconds"], "best_val_psnr": facts["best_val_psnr"],
                           "best_step": facts["best_step"]}
    for name, pairs in data["tests"].items():
        frame = evaluate_model(network, pairs, device="cpu")
        row[f"{name}_psnr"], row[f"{name}_ssim"] = round(float(frame["psnr"].mean()), 4), round(float(frame["ssim"].mean()), 5)
    for r in facts["curve"]:
        row[f"val_psnr@{int(r['step'])}"] = round(float(r["val_psnr"]), 4)
    return row


def _worker_init() -> None:
    import logging
    import warnings

    import torch

    torch.set_num_threads(1)  # one thread per process: two threads beside another busy process crawl
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def _job(recipe_dict: dict[str, Any], code: str, seed: int, root: str | None) -> dict[str, Any]:
    return train_row(TableRecipe.from_dict(recipe_dict), code, seed, root)


# -- the table ------------------------------------------------------------------------------------

def read_table(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a table CSV (numbers parsed; empty cells None); a missing file has none."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if k == "architecture":
                    row[k] = v
                elif v in ("", None):
                    row[k] = None
                else:
                    num = float(v)
                    row[k] = int(num) if k in ("seed", "params", "flops", "best_step") else num
            rows.append(row)
    return rows


def _append(path: Path, row: dict[str, Any], columns: Sequence[str]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        f.flush()
        os.fsync(f.fileno())


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def table_meta(recipe: TableRecipe) -> dict[str, Any]:
    """The facts stored beside a table: its recipe, the machine, the date, the commit, the versions."""
    from ..runtime import software_versions

    return {"format": "clearer-nni-table", "version": 1, "recipe": recipe.to_dict(),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count()},
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "commit": _commit(), "software": software_versions()}


def build_table(recipe: TableRecipe, out: str | Path, *, archs: Iterable[str] | None = None,
                seeds: Iterable[int] | None = None, workers: int = 1, data_root: str | None = None,
                on_row: Callable[[dict[str, Any], int, int], None] | None = None) -> Path:
    """Train every missing (architecture, seed) of ``recipe`` into ``out`` (``<out>.csv`` beside ``<out>.json``).

    Parameters
    ----------
    recipe
        The table's settings; an existing table must have been built with the same ones (but its seeds).
    out
        The table's CSV path.
    archs, seeds
        A subset (a pilot); default every architecture of the space and the recipe's seeds. Rows are
        trained seed by seed, so a partial table has whole seeds.
    workers
        Processes training rows at once, one torch thread each.
    on_row
        Called with each new row, the number done and the number to do.

    Raises
    ------
    RecipeError
        ``out`` holds a table of another recipe, or ``archs`` are not of the space.
    """
    out = Path(out)
    meta_path = out.with_suffix(".json")
    if meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        theirs = TableRecipe.from_dict(old.get("recipe", {}), source=str(meta_path)).training_key()
        if theirs != recipe.training_key():
            diff = {k: (theirs.get(k), v) for k, v in recipe.training_key().items() if theirs.get(k) != v}
            raise RecipeError(f"{out} holds a table of other settings (table, asked): {diff}; use another output")
    else:
        from ..runtime import atomic_write_text

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta_path, json.dumps(table_meta(recipe), indent=2) + "\n")
    every = architectures(recipe)
    archs = list(archs) if archs is not None else every
    unknown = [a for a in archs if a not in every]
    if unknown:
        raise RecipeError(f"{unknown} are not architecture codes of this space (e.g. {every[0]})")
    seeds = list(seeds) if seeds is not None else list(recipe.seeds)
    done = {(r["architecture"], r["seed"]) for r in read_table(out)}
    todo = [(a, s) for s in seeds for a in archs if (a, s) not in done]
    columns = fields(recipe)
    if not todo:
        return out
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)
    recipe_dict, count = recipe.to_dict(), 0
    pending = {}
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < max(1, workers):
                code, seed = queue.pop(0)
                pending[pool.submit(_job, recipe_dict, code, seed, data_root)] = (code, seed)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                pending.pop(future)
                row = future.result()
                _append(out, row, columns)
                count += 1
                if on_row is not None:
                    on_row(row, count, len(todo))
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
    return out
