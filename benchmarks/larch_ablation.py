"""The paper's claim about L_Arch, measured: λ1 in {0, 0.01, 0.1, 1} x seeds at a CPU budget.

For each search (the ``demo`` space file's ``search:`` settings, λ1 overridden; argmax, no fine-tune):
how far α polarises (mean and max ``|P(parallel) - 0.5|`` at temperature 1, decided columns, final
L_Arch) and the gap between the super-network's and the derived network's validation PSNR
(inherited weights, BatchNorm re-estimated). Rows are appended to ``<out>/rows.csv`` as searches
finish; a run started again skips what is done; ``--summary-only`` writes the table and the plot.

    python benchmarks/larch_ablation.py --seeds 0,1,2          # 12 demo searches, ~2 min each on one core
    python benchmarks/larch_ablation.py --summary-only         # table, docs/img/larch-ablation.png, RESULTS
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path
from typing import Any, Sequence

import _results  # noqa: F401 - puts the repository on sys.path
from _results import append_section, table

LAMBDAS = (0.0, 0.01, 0.1, 1.0)
FIELDS = ["lambda_arch", "seed", "mean_polarisation", "max_polarisation", "decided", "columns", "loss_arch",
          "supernet_psnr", "derived_psnr", "gap", "genotype", "seconds"]


#: The settings that make a short search decide, taken from ``--decide-from`` (they apply to any space).
DECIDE = ("arch_lr_schedule", "anneal_fraction", "temperature_min", "lambda_arch_schedule")


def decide_settings(space_file: str | None) -> dict[str, Any]:
    """The :data:`DECIDE` settings of a recipe's ``search:`` section (none: {})."""
    if not space_file:
        return {}
    from clearer_nni.config import SearchConfig, load_recipe

    defaults = load_recipe(space_file, "search", SearchConfig)
    return {k: defaults[k] for k in DECIDE if k in defaults}


def run_one(space: str, lam: float, seed: int, out: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One search at λ1 = ``lam`` (``extra``: more explicit settings); its row."""
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    folder = out / f"lambda{lam:g}-seed{seed}"
    # the space's recipe, then these settings (clearer_nni.config decides the precedence)
    result = run_search(resolve_search(dict(space=space, lambda_arch=lam, seed=seed, out=str(folder), overwrite=True,
                                            progress=False, save_supernet=False, checkpoint_every=0, select="argmax",
                                            finetune_steps=0, **(extra or {}))))
    g = result.genotype
    far = [abs(p["parallel"] - 0.5) for p in g.alpha.values()]
    decided = g.decidedness()
    return {"lambda_arch": lam, "seed": seed, "mean_polarisation": round(statistics.fmean(far), 4),
            "max_polarisation": round(max(far), 4), "decided": decided.decided, "columns": decided.total,
            "loss_arch": round(result.log[-1]["loss_arch"], 5), "supernet_psnr": round(result.supernet_psnr, 3),
            "derived_psnr": round(result.derived_psnr, 3),
            "gap": round(result.supernet_psnr - result.derived_psnr, 3), "genotype": g.code(),
            "seconds": round(result.seconds, 1)}


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summary(rows: list[dict[str, Any]]) -> str:
    lines = []
    for lam in sorted({float(r["lambda_arch"]) for r in rows}):
        got = [r for r in rows if float(r["lambda_arch"]) == lam]
        col = lambda k: [float(r[k]) for r in got]  # noqa: E731
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        lines.append([f"{lam:g}", len(got), f"{statistics.fmean(col('mean_polarisation')):.3f} ± {sd(col('mean_polarisation')):.3f}",
                      f"{statistics.fmean(col('max_polarisation')):.3f}",
                      f"{statistics.fmean(col('decided')):.1f} / {got[0]['columns']}",
                      f"{statistics.fmean(col('loss_arch')):.4f}", f"{statistics.fmean(col('supernet_psnr')):.2f}",
                      f"{statistics.fmean(col('derived_psnr')):.2f}",
                      f"{statistics.fmean(col('gap')):.2f} ± {sd(col('gap')):.2f}",
                      " ".join(r["genotype"] for r in got)])
    return table(["λ1", "seeds", "mean abs(p - 0.5)", "max abs(p - 0.5)", "decided (p >= 0.9)", "L_Arch",
                  "super-net dB", "derived dB", "gap dB", "genotypes"], lines)


def plot(rows: list[dict[str, Any]], path: Path, space: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lams = sorted({float(r["lambda_arch"]) for r in rows})
    xs = {lam: i for i, lam in enumerate(lams)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "mean_polarisation", "mean abs(P(parallel) - 0.5)"),
                           (axes[1], "gap", "super-network - derived PSNR (dB)")):
        for r in rows:
            ax.scatter(xs[float(r["lambda_arch"])], float(r[key]), color="C0", zorder=3)
        ax.plot(range(len(lams)), [statistics.fmean(float(r[key]) for r in rows if float(r["lambda_arch"]) == lam)
                                   for lam in lams], color="k")
        ax.set_xticks(range(len(lams)), [f"{lam:g}" for lam in lams])
        ax.set(xlabel="λ1", ylabel=label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"L_Arch ablation, {space} space (dots: seeds; line: mean)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="demo", help="space file whose search: settings are used [%(default)s]")
    p.add_argument("--lambdas", default=",".join(f"{v:g}" for v in LAMBDAS), help="λ1 values [%(default)s]")
    p.add_argument("--seeds", default="0,1,2", help="[%(default)s]")
    p.add_argument("--out", default="runs/larch-ablation", help="[%(default)s]")
    p.add_argument("--decide-from", help="take the decide settings (scaled α lr, annealing, λ1 schedule) from this "
                   "space file, e.g. demo for the tiny space [none: the space's own]")
    p.add_argument("--steps", type=int, help="search steps [the space file's]")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--machine", default=_results.DEFAULT_MACHINE)
    p.add_argument("--no-append", action="store_true", help="print only, do not write docs/RESULTS.md")
    ns = p.parse_args(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.csv"
    if not ns.summary_only:
        for seed in (int(s) for s in ns.seeds.split(",")):
            for lam in (float(v) for v in ns.lambdas.split(",")):
                if any(float(r["lambda_arch"]) == lam and int(r["seed"]) == seed for r in read_rows(rows_path)):
                    continue
                extra = {**decide_settings(ns.decide_from), **({"steps": ns.steps} if ns.steps else {})}
                row = run_one(ns.space, lam, seed, out, extra)
                new = not rows_path.is_file()
                with rows_path.open("a", newline="", encoding="utf-8") as f:
                    writer = csv.DictWriter(f, fieldnames=FIELDS)
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
                print(row, flush=True)
    rows = read_rows(rows_path)
    if not rows:
        raise SystemExit(f"error: no rows in {rows_path}")
    img = out / "larch-ablation.png" if ns.no_append else _results.REPO / "docs" / "img" / f"larch-ablation-{Path(ns.space).stem}.png"
    plot(rows, img, ns.space)
    body = (f"Space `{ns.space}` with its `search:` settings, λ1 varied; argmax; polarisation = abs(P(parallel) - 0.5) "
            "at temperature 1; gap = super-network minus derived network (inherited weights, BatchNorm re-estimated) "
            f"on the search's validation patches. Plot: `{img.relative_to(_results.REPO) if not ns.no_append else img}`."
            "\n\n" + summary(rows))
    print(body)
    if not ns.no_append:
        append_section("L_Arch ablation", body, machine=ns.machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
