"""``clearer-nni report``: a Table-5-style summary of an NNI experiment, and its Pareto plot.

::

    clearer-nni report EXPERIMENT_ID_OR_DIR -o DIR [--workdir DIR]

Writes into ``DIR``:

- ``table.csv`` and ``table.md``: one row per trial with a final result: λ1 (``lambda_arch``),
  λ2 (``lambda_comp``), PSNR (dB), SSIM when the trials recorded one (else the column is left out,
  with a note), parameters (M), search time (s), and the other tuned parameters (σ, seed...);
- ``pareto.png``: PSNR against parameters, the Pareto front (highest PSNR for its size) highlighted;
- ``genotype.png``: the best trial's searched network (:mod:`clearer_nni.nas.diagram`), when a trial
  with a final result has a genotype.

The PSNR is what the trials report as their final ``default``: the *derived* network's PSNR on the
search's fixed validation patches, with the weights it inherits from the super-network. The paper's
Table 5 reports BSD500 test PSNR after retraining each derived network from scratch: retrain and
evaluate the exported genotypes (``clearer-nni export --trial ID``) to compare with it.
"""

from __future__ import annotations

import argparse
import math
import sys
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..runtime import atomic_savefig, atomic_write_text, prepare_out, publish_into
from .export import (DEFAULT_WORKDIR, TrialRecord, add_experiment_arguments, best_trial, find_experiment_dir,
                     finite_or_none, load_trials)

__all__ = ["trial_table", "pareto_front", "to_markdown", "plot_pareto", "write_report", "main"]

_PSNR_NOTE = ("PSNR: final 'default' metric of each trial = the derived network's PSNR (dB) on the search's "
              "fixed validation patches, with weights inherited from the super-network and BatchNorm statistics "
              "re-estimated, after the search's short fine-tune when it ran one (finetune_steps; the demo recipe's "
              "50 steps); not retrained: the paper's Table 5 is BSD500 test PSNR after retraining.")
_SSIM_NOTE = "SSIM: not recorded by these trials (the search measures PSNR only); column omitted."


def _metadata(rec: TrialRecord) -> dict[str, Any]:
    try:
        return rec.genotype().metadata or {} if rec.has_genotype else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _first(*values: Any) -> float | None:
    for v in values:
        n = finite_or_none(v)
        if n is not None:
            return n
    return None


def _table_rank(rec: TrialRecord) -> str | None:
    """``3/16 (-0.08 dB)``: where the trial's architecture sits in the ground-truth table of its space and task
    (:mod:`clearer_nni.bench`), or None when none covers it."""
    from .. import bench

    try:
        genotype = rec.genotype()
        name = bench.matching_table(genotype)
        if name is None:
            return None
        s = bench.standing(bench.table(name), bench.architecture_of(genotype, bench.recipe_of(name)))
    except (ValueError, KeyError, OSError):
        return None
    return f"{s.rank}/{s.of} ({-s.regret:+.2f} dB)"


def trial_table(trials: Sequence[TrialRecord]):
    """A :class:`pandas.DataFrame`, one row per trial with a final result, sorted by λ1, λ2."""
    import pandas as pd

    rows = []
    for rec in trials:
        if rec.score is None:
            continue
        meta, final, params = _metadata(rec), rec.final or {}, rec.parameters
        row: dict[str, Any] = {
            "trial": rec.trial_id,
            "lambda1": _first(final.get("lambda_arch"), meta.get("lambda_arch"), params.get("lambda_arch"),
                              params.get("lambda1")),
            "lambda2": _first(final.get("lambda_comp"), meta.get("lambda_comp"), params.get("lambda_comp"),
                              params.get("lambda2")),
            "PSNR (dB)": rec.score,
            "SSIM": _first(final.get("ssim"), final.get("val_ssim_derived"), meta.get("val_ssim_derived"),
                           meta.get("ssim")),
        }
        n_params = _first(final.get("params"), meta.get("params_derived"))
        row["params (M)"] = None if n_params is None else n_params / 1e6
        row["search time (s)"] = _first(final.get("search_seconds"), meta.get("search_seconds"))
        row["supernet PSNR (dB)"] = _first(final.get("supernet_psnr"), meta.get("val_psnr_supernet"))
        # the super-network's strategy (search --strategy); genotypes from before it: DARTS
        row["strategy"] = next((v for v in (params.get("strategy"), meta.get("strategy")) if isinstance(v, str)),
                               "darts")
        # how the exported architecture was chosen (search --select); genotypes from before it: argmax
        row["select"] = next((v for v in (params.get("select"), final.get("select"), meta.get("select"))
                              if isinstance(v, str)), "argmax")
        row["table rank"] = _table_rank(rec)
        for key, value in sorted(params.items()):
            if key not in ("lambda_arch", "lambda_comp", "lambda1", "lambda2", "lambdas", "strategy", "select"):
                row[key] = value
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for column in ("SSIM", "table rank"):
        if df[column].isna().all():
            df = df.drop(columns=[column])
    return df.sort_values(["lambda1", "lambda2", "trial"], na_position="last").reset_index(drop=True)


def pareto_front(df) -> list[int]:
    """Row labels of the Pareto-optimal trials: no other trial has fewer-or-equal parameters and
    higher-or-equal PSNR with one of them strictly better."""
    pts = [(i, r["params (M)"], r["PSNR (dB)"]) for i, r in df.iterrows()
           if finite_or_none(r.get("params (M)")) is not None and finite_or_none(r.get("PSNR (dB)")) is not None]
    front = []
    for i, p, q in pts:
        dominated = any(p2 <= p and q2 >= q and (p2 < p or q2 > q) for j, p2, q2 in pts if j != i)
        if not dominated:
            front.append(i)
    return front


def _fmt(v: Any, col: str) -> str:
    if isinstance(v, (bool,)) or type(v).__name__ == "bool_":
        return "✓" if v else ""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        if col.startswith("PSNR") or col.startswith("supernet"):
            return f"{v:.2f}"
        if col == "SSIM":
            return f"{v:.4f}"
        if col == "params (M)":
            return f"{v:.4f}" if v < 1 else f"{v:.2f}"
        if col == "search time (s)":
            return f"{v:.0f}"
        return f"{v:g}"
    return str(v)


def to_markdown(df, notes: Sequence[str] = ()) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (without needing ``tabulate``), then the notes."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---:" if df[c].dtype.kind in "fiu" else "---" for c in df.columns) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], str(c)) for c in df.columns) + " |")
    return "\n".join(lines) + "\n" + "".join(f"\n{n}\n" for n in notes)


def plot_pareto(df, front: Sequence[int], path: str | Path, title: str = "") -> Path:
    """PSNR against parameters, one point per trial, the Pareto front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    ok = df.dropna(subset=["params (M)", "PSNR (dB)"])
    rest = ok.drop(index=[i for i in front if i in ok.index])
    ax.scatter(rest["params (M)"], rest["PSNR (dB)"], c="tab:gray", label="trials", zorder=2)
    f = ok.loc[[i for i in front if i in ok.index]].sort_values("params (M)")
    ax.plot(f["params (M)"], f["PSNR (dB)"], "-o", c="tab:red", lw=1.5, label="Pareto front", zorder=3)
    # trials (almost) at the same spot share one label, one line each
    xs, ys = ok["params (M)"].astype(float), ok["PSNR (dB)"].astype(float)
    dx, dy = 0.03 * max(xs.max() - xs.min(), 1e-9), 0.03 * max(ys.max() - ys.min(), 1e-9)
    groups: list[tuple[float, float, list[str]]] = []
    for _, r in ok.iterrows():
        x, y = float(r["params (M)"]), float(r["PSNR (dB)"])
        label = f"λ1={_fmt(r['lambda1'], 'l')}, λ2={_fmt(r['lambda2'], 'l')} ({r['trial']})"
        near = next((g for g in groups if abs(g[0] - x) <= dx and abs(g[1] - y) <= dy), None)
        if near is None:
            groups.append((x, y, [label]))
        else:
            near[2].append(label)
    for x, y, labels in groups:
        ax.annotate("\n".join(labels), (x, y), textcoords="offset points", xytext=(5, 3), fontsize=7, va="bottom")
    ax.margins(x=0.12, y=0.1)
    ax.set_xlabel("parameters of the derived network (M)")
    ax.set_ylabel("derived-network validation PSNR (dB)")
    ax.set_title(title or "CLEARER search trials: PSNR vs size")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = atomic_savefig(fig, path)
    plt.close(fig)
    return path


def write_report(id_or_dir: str | Path, out: str | Path, workdir: str | Path | None = DEFAULT_WORKDIR) -> dict[str, Path]:
    """Write ``table.csv``, ``table.md``, ``pareto.png`` (and the best trial's ``genotype.png``) into ``out``."""
    expdir = find_experiment_dir(id_or_dir, workdir)
    trials = load_trials(expdir)
    df = trial_table(trials)
    if df.empty:
        raise ValueError(f"no trial of {expdir} has a final result yet "
                         f"({', '.join(f'{t.trial_id}: {t.status}' for t in trials) or 'no trials'})")
    out = Path(out)
    front = pareto_front(df)
    df.insert(1, "pareto", [i in front for i in df.index])
    notes = [f"Experiment {expdir.name} ({expdir}); {len(df)} trial(s) with a final result of {len(trials)}.",
             _PSNR_NOTE]
    if "SSIM" not in df.columns:
        notes.append(_SSIM_NOTE)
    swapped = [t.trial_id for t in trials if t.swapped]
    if swapped:
        notes.append(f"Trials {', '.join(swapped)} ran with other parameters than NNI recorded for them (and shows in "
                     "its web UI): NNI 3.0's local training service hands parameters to whichever trial asks first "
                     "when several run at once. This table shows the parameters they ran with.")
    notes.append("pareto: on the Pareto front of (fewer parameters, higher PSNR).")
    if "table rank" in df.columns:
        notes.append("table rank: the architecture's rank in the ground-truth table of its space and task "
                     "(clearer-nni bench: mean BSD68 PSNR of 3 trainings from scratch), and its distance to the best.")
    # staged, then moved into out together: a failure leaves out as it was (other files in it are kept)
    staging = prepare_out(out, overwrite=True)
    paths = {"csv": out / "table.csv", "md": out / "table.md", "png": out / "pareto.png"}
    try:
        atomic_write_text(staging / "table.csv", df.to_csv(index=False))
        atomic_write_text(staging / "table.md", f"# CLEARER search trials (Table 5 style)\n\n{to_markdown(df, notes)}")
        plot_pareto(df, front, staging / "pareto.png", title=f"experiment {expdir.name}: PSNR vs parameters")
        if any(t.score is not None and t.genotype_path is not None for t in trials):
            _draw_best(trials, staging / "genotype.png", expdir.name)
            paths["genotype"] = out / "genotype.png"
        publish_into(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return paths


def _draw_best(trials: Sequence[TrialRecord], path: Path, experiment: str) -> Path:
    from ..nas.diagram import draw_genotype
    from ..nas.genotype import Genotype

    best = best_trial(trials)
    genotype = Genotype.load(best.genotype_path)
    return draw_genotype(genotype, path, title=f"experiment {experiment}, best trial {best.trial_id} "
                                               f"({best.score:.2f} dB): {genotype.code()}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clearer-nni report",
                                description="Table-5-style table (CSV, Markdown) and Pareto plot of an NNI experiment.")
    add_experiment_arguments(p)
    p.add_argument("-o", "--out", required=True, help="output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli import run_cli

    def _run() -> int:
        ns = _parser().parse_args(argv)
        paths = write_report(ns.experiment, ns.out, ns.workdir)
        print(paths["md"].read_text(encoding="utf-8"))
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
