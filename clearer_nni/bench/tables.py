"""The shipped tables and their query API (as NNI's for NAS-Bench-201): ``table()``, ``lookup()``, ``where()``.

A table is ``<name>.csv`` (one row per architecture and seed) beside ``<name>.json`` (its recipe, machine,
date and commit) in :data:`TABLES_DIR`, or anywhere else given by path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .recipe import TableRecipe

__all__ = ["TABLES_DIR", "DEFAULT_TABLE", "TableError", "available", "table", "meta", "recipe_of", "lookup",
           "architecture_of", "matching_table", "where"]

TABLES_DIR = Path(__file__).resolve().parent / "tables"
#: The table ``table()`` reads when none is named.
DEFAULT_TABLE = "corr50-2x2"


class TableError(ValueError):
    """No such table, or a genotype that is not of a table's space."""


def available() -> list[str]:
    """Names of the shipped tables."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.csv") if p.with_suffix(".json").is_file())


def _path(name: str | Path | None) -> Path:
    name = DEFAULT_TABLE if name is None else name
    path = Path(name)
    if path.suffix == ".csv" or path.exists():
        if not path.is_file():
            raise TableError(f"{path}: no such table file")
        return path
    shipped = TABLES_DIR / f"{name}.csv"
    if not shipped.is_file():
        raise TableError(f"no table {str(name)!r}; shipped tables: {', '.join(available()) or 'none'} "
                         "(or give a table's .csv path)")
    return shipped


def table(name: str | Path | None = None) -> pd.DataFrame:
    """One row per architecture and seed: ``architecture`` (``PF|FP``...), ``seed``, ``params``, ``flops``,
    ``train_seconds``, ``best_val_psnr``, ``best_step``, ``<test>_psnr`` / ``<test>_ssim`` per test set, and the
    validation curve ``val_psnr@<step>``."""
    return pd.read_csv(_path(name))


def meta(name: str | Path | None = None) -> dict[str, Any]:
    """The table's recipe, machine, date, commit and software versions (its ``.json``)."""
    path = _path(name).with_suffix(".json")
    if not path.is_file():
        raise TableError(f"{path}: the table's recipe file is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def recipe_of(name: str | Path | None = None) -> TableRecipe:
    return TableRecipe.from_dict(meta(name)["recipe"], source=str(_path(name).with_suffix(".json")))


def architecture_of(genotype: Any, recipe: TableRecipe) -> str:
    """The compact code of ``genotype`` (a :class:`~clearer_nni.nas.genotype.Genotype`, a genotype file or a
    code such as ``PF|FP``) in ``recipe``'s space; :class:`TableError` when it is not of that space."""
    from ..nas.genotype import Genotype, GenotypeError
    from ..nas.ranking import choices_of

    space = recipe.space_config()
    if isinstance(genotype, str) and not Path(genotype).is_file():
        try:
            return Genotype(space, choices_of(space, genotype.strip())).code()
        except ValueError as exc:
            raise TableError(f"{genotype!r} is neither a genotype file nor an architecture code of table "
                             f"{recipe.name!r} ({exc})") from None
    if not isinstance(genotype, Genotype):
        try:
            genotype = Genotype.load(genotype)
        except GenotypeError as exc:
            raise TableError(str(exc)) from None
    if genotype.space != space:
        ours, theirs = genotype.space.to_dict(), space.to_dict()
        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        raise TableError(f"the genotype is not of table {recipe.name!r}'s space; differences (genotype, table): {diff}")
    return genotype.code()


def lookup(genotype: Any, name: str | Path | None = None) -> pd.DataFrame:
    """The rows (one per seed) of ``genotype`` (a Genotype, a genotype file or a code) in a table."""
    df = table(name)
    code = architecture_of(genotype, recipe_of(name))
    return df[df["architecture"] == code].reset_index(drop=True)


def matching_table(genotype: Any) -> str | None:
    """The shipped table of ``genotype``'s space and task (degradation), if any."""
    from ..nas.genotype import Genotype

    if not isinstance(genotype, Genotype):
        genotype = Genotype.load(genotype)
    task = genotype.metadata.get("degradation")
    for name in available():
        recipe = recipe_of(name)
        if recipe.space_config() != genotype.space:
            continue
        if isinstance(task, dict) and recipe.make_degradation().describe() != _plain(task):
            continue
        return name
    return None


def _plain(task: dict[str, Any]) -> dict[str, Any]:
    from ..data import make_degradation

    try:
        return make_degradation(**task).describe()
    except ValueError:
        return task


def where(genotype: Any, metric: str | None = None) -> str | None:
    """One line saying where ``genotype`` sits in the shipped table of its space and task ("3rd of 16,
    0.08 dB below the best"), or None when no table covers it."""
    from .stats import PRIMARY, standing

    name = matching_table(genotype)
    if name is None:
        return None
    s = standing(table(name), architecture_of(genotype, recipe_of(name)), metric or PRIMARY)
    return f"ground-truth table {name}: {s.line()}"
