"""``clearer-nni bench``: build, query and check ground-truth tables of CLEARER spaces.

::

    clearer-nni bench list
    clearer-nni bench query GENOTYPE_OR_CODE [--table NAME|CSV] [--metric bsd68_psnr]
    clearer-nni bench stats [--table NAME|CSV]
    clearer-nni bench build RECIPE.yaml [--out CSV] [--workers N] [--archs A,B] [--seeds 0,1]

``build`` trains every missing (architecture, seed) of the recipe and appends each row as it finishes:
run it again (same ``--out``) to continue an interrupted build.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clearer-nni bench", description="Ground-truth tables of CLEARER spaces: every "
                                "architecture trained from scratch with several seeds.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped tables")
    q = sub.add_parser("query", help="an architecture's rows and where it stands")
    q.add_argument("genotype", help="a genotype.json, or an architecture code such as 'PF|PP'")
    q.add_argument("--table", default=None, help="a shipped table's name or a table's .csv [the table of the "
                                                 "genotype's space, else the default]")
    q.add_argument("--metric", default=None, help="the column that ranks [bsd68_psnr]")
    s = sub.add_parser("stats", help="how far the seeds agree, and the architectures by mean")
    s.add_argument("--table", default=None, help="a shipped table's name or a table's .csv [the default]")
    s.add_argument("--metric", default=None, help="the column that ranks [bsd68_psnr, else best_val_psnr]")
    b = sub.add_parser("build", help="train a table's missing rows (resumable)")
    b.add_argument("recipe", help="the table's recipe (YAML or JSON; a table's .json works too)")
    b.add_argument("--out", default=None, help="the table's CSV [runs/bench/<name>/<name>.csv]")
    b.add_argument("--workers", type=int, default=1, help="rows trained at once, one torch thread each")
    b.add_argument("--archs", default=None, help="only these architecture codes, comma-separated (a pilot)")
    b.add_argument("--seeds", default=None, help="only these seeds, comma-separated [the recipe's]")
    b.add_argument("--data-root", default=None, help="root of named datasets")
    return p


def _list() -> int:
    from .tables import available, meta, table

    for name in available():
        m, df = meta(name), table(name)
        r = m["recipe"]
        print(f"{name}: {df['architecture'].nunique()} architectures x {df['seed'].nunique()} seeds, space "
              f"{r['space']['columns']} columns at {r['space']['channels']}, {r['degradation']}, {r['steps']} steps; "
              f"built {m.get('started', '?')} at {str(m.get('commit') or '?')[:10]}")
    return 0


def _query(ns: argparse.Namespace) -> int:
    from .stats import PRIMARY, standing
    from .tables import DEFAULT_TABLE, architecture_of, lookup, matching_table, recipe_of, table

    name = ns.table
    if name is None:
        from pathlib import Path

        name = (matching_table(ns.genotype) if Path(ns.genotype).is_file() else None) or DEFAULT_TABLE
    metric = ns.metric or PRIMARY
    rows = lookup(ns.genotype, name)
    df = table(name)
    if metric not in df.columns:
        raise ValueError(f"no column {metric!r} in table {name}; columns: {', '.join(df.columns)}")
    code = architecture_of(ns.genotype, recipe_of(name))
    if rows.empty:
        raise ValueError(f"{code} has no rows in table {name} yet")
    shown = [c for c in ("architecture", "seed", "params", "flops", "best_val_psnr", "set12_psnr", "set12_ssim",
                         "bsd68_psnr", "bsd68_ssim", "train_seconds") if c in rows.columns]
    print(rows[shown].to_string(index=False))
    print(standing(df, code, metric).line())
    return 0


def _stats(ns: argparse.Namespace) -> int:
    from .stats import PRIMARY, agreement, means
    from .tables import table

    df = table(ns.table)
    tests = [c for c in df.columns if c.endswith("_psnr") and "@" not in c and c != "best_val_psnr"]
    for metric in [*tests, "best_val_psnr"]:
        print(agreement(df, metric).line())
    metric = ns.metric or (PRIMARY if PRIMARY in df.columns else "best_val_psnr")
    if metric not in df.columns:
        raise ValueError(f"no column {metric!r} in the table; columns: {', '.join(df.columns)}")
    m = means(df, metric)
    spread = df.groupby("architecture")[m.name].std()
    print("\nby mean " + str(m.name) + ":")
    for i, (code, value) in enumerate(m.items(), start=1):
        print(f"{i:>4}  {code}  {value:.3f} dB  (sd {spread[code]:.3f})")
    return 0


def _build(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from .build import build_table
    from .recipe import load_recipe

    recipe = load_recipe(ns.recipe)
    out = Path(ns.out or f"runs/bench/{recipe.name}/{recipe.name}.csv")
    archs = [a.strip() for a in ns.archs.split(",")] if ns.archs else None
    seeds = [int(s) for s in ns.seeds.split(",")] if ns.seeds else None
    if ns.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {ns.workers}")
    start = time.time()

    def on_row(row: dict, done: int, todo: int) -> None:
        eta = (time.time() - start) / done * (todo - done)
        print(f"[{time.strftime('%H:%M:%S')}] {done}/{todo} {row['architecture']} seed {row['seed']}: "
              + ", ".join(f"{k} {row[k]:.2f}" for k in row if k.endswith("_psnr") and "@" not in k)
              + f" ({row['train_seconds']:.0f} s; about {eta / 60:.0f} min left)", flush=True)

    try:
        build_table(recipe, out, archs=archs, seeds=seeds, workers=ns.workers, data_root=ns.data_root, on_row=on_row)
    except KeyboardInterrupt:
        print(f"interrupted: the finished rows are in {out}; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"table {out} ({out.with_suffix('.json')}): clearer-nni bench stats --table {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli import run_cli

    def _run() -> int:
        ns = _parser().parse_args(argv)
        return {"list": lambda: _list(), "query": lambda: _query(ns), "stats": lambda: _stats(ns),
                "build": lambda: _build(ns)}[ns.command]()

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
