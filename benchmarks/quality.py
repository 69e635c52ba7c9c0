"""Benchmark 2, quality at equal budget: does the search beat random architectures of its own space?

Per seed, four searches of the space at the same step budget, each giving the genotype it would export
(BSD400 minus every 5th image for the weights, that held-out fifth for α: disjoint; the space file's
recipe, i.e. the CPU defaults of ``demo.yaml``, with ``--strategy`` varied):

- ``searched-argmax``, ``searched-perturbation``: one DARTS search (the paper's strategy), its argmax
  (the paper's derivation) and perturbation selection (Wang et al. 2021, :mod:`clearer_nni.nas.selection`);
- ``spos-ranked``: a single-path (SPOS) super-network, every architecture of the space ranked with its
  weights (``clearer-nni rank``), the best one;
- ``gumbel-argmax``: a hard Gumbel-softmax (GDAS) search's argmax.

Then every network below is trained from scratch with the same budget, batch, patches, optimiser and
seed, keeping the state with the best PSNR on the same held-out validation patches (the same in every
seed), and scored on the test sets (standard protocol: float noise, seed 0 per image, whole images,
8-bit output), σ = 50:

- the four searched genotypes;
- ``random-1..K``: K random genotypes (drawn once from fixed seeds, the same in every seed);
- ``all-parallel`` and ``all-fusion``.

Besides its retrained PSNR, every genotype gets the search's own scores of it in that seed: its
log-probability under the DARTS search's α (temperature 1), the trial metric (the derived network after
the fine-tune estimate from the DARTS super-network's weights, :mod:`clearer_nni.nas.estimate`) and its
PSNR in the SPOS ranking. The
summary reports, per seed, the searched genotypes' percentile among the random ones, and Kendall's
tau between each score and the retrained PSNR; and, for the fixed genotypes, the spread of one
genotype over seeds against the spread between genotypes, and how well two seeds agree on their order.

``--pilot`` first picks the retraining budget: at each of ``--pilot-steps``, ``random-1`` is trained
with seeds 0, 1, 2 and ``random-2..4`` with seed 0 (validation PSNR only); the budget to use is the
smallest whose seed-to-seed spread is below the between-genotype spread.

Rows are written as they finish (``<out>/seed<N>.csv``, ``<out>/pilot.csv``); an interrupted run,
started again with the same ``--out``, skips what is done; seeds (or ``--networks`` subsets) can run
in separate processes before one ``--summary-only`` run writes the tables and the plot.

    python benchmarks/quality.py --pilot --pilot-steps 150,400   # the budget (about 12 min on one core)
    python benchmarks/quality.py --seeds 0 --steps 400            # one seed (about 35 min on one core)
    python benchmarks/quality.py --summary-only                   # tables, plot, docs/RESULTS.md
    python benchmarks/quality.py --quick --no-append              # tiny space, a smoke run
"""

from __future__ import annotations

import argparse
import csv
from contextlib import contextmanager
import dataclasses
import fcntl
import logging
import math
import random
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import _results  # noqa: F401 - puts the repository on sys.path
import torch

from _results import append_section, table

#: Held-out fraction of BSD400 for α and model selection: every HOLDOUT-th image (by name).
HOLDOUT = 5
SPLIT_NAME = "bsd400-holdout"
#: What each search strategy's run yields (issue 11's comparison): DARTS with the paper's argmax and with
#: perturbation selection, the SPOS super-network's best-ranked architecture, GDAS-style Gumbel's argmax.
SEARCHED = ("searched-argmax", "searched-perturbation", "spos-ranked", "gumbel-argmax")
FIXED = ("all-parallel", "all-fusion")
FIELDS = ["seed", "network", "params", "train_seconds", "best_val_psnr", "best_step", "genotype", "alpha_logprob",
          "estimate_psnr", "rank_psnr", "set12_psnr", "set12_ssim", "bsd68_psnr", "bsd68_ssim"]
#: The search's own scores of a genotype whose Kendall tau against the retrained PSNR is reported.
SCORES = {"alpha_logprob": "log P(α)", "estimate_psnr": "trial metric", "rank_psnr": "SPOS ranking"}
#: The validation patches every retraining is scored on, whatever its seed: seeds must differ in their
#: training, not in what they are measured on (a seed-dependent draw inflated the seed spread).
VAL_SEED = 0
PILOT_FIELDS = ["steps", "seed", "network", "genotype", "best_val_psnr", "train_seconds"]
#: The issue's targets: searched above this percentile of random in every seed; tau at least this.
TARGET_PERCENTILE, TARGET_TAU = 75.0, 0.3


@dataclasses.dataclass
class Budget:
    """What every network gets; the search takes the space file's ``search:`` settings but its steps."""

    space: str = "demo"
    search_steps: int = 300
    search_batch: int = 8
    steps: int = 400
    batch_size: int = 16
    patch_size: int = 48
    lr: float = 0.01
    val_every: int = 50
    val_patches: int = 64
    sigma: float = 50.0
    randoms: int = 8


BUDGETS = {
    "cpu": Budget(),
    "quick": Budget(space="tiny", search_steps=40, search_batch=4, steps=30, batch_size=4, patch_size=32,
                    val_every=10, val_patches=8, randoms=3),
    # SPEC sections 3 and 4: 10k search steps, 100k retraining steps, batch 32 of 64x64
    "paper": Budget(space="denoise", search_steps=10_000, search_batch=32, steps=100_000, batch_size=32,
                    patch_size=64, val_every=1000, val_patches=64),
}


# -- data -----------------------------------------------------------------------------------------

def register_holdout_split() -> None:
    """Register ``bsd400-holdout``: split ``train`` = BSD400 without every HOLDOUT-th image, ``val`` = those."""
    from clearer_nni.data import DataError, ImageSet, load_dataset, register_dataset

    def load(root: Path, split: str, channels: int, max_images: int | None, **options: object) -> ImageSet:
        if options or split not in ("train", "val"):
            raise DataError(f"{SPLIT_NAME}: splits 'train' and 'val', no options (got {split!r}, {options})")
        full = load_dataset("bsd400", "train", channels=channels, root=str(root))
        keep = [i for i in range(len(full)) if (i % HOLDOUT == HOLDOUT - 1) == (split == "val")]
        keep = keep[:max_images] if max_images else keep
        return ImageSet(f"{SPLIT_NAME}/{split}", [full.images[i] for i in keep], [full.paths[i] for i in keep])

    register_dataset(SPLIT_NAME, load, overwrite=True)


# -- networks -------------------------------------------------------------------------------------

def fixed_genotypes(space: Any, randoms: int) -> dict[str, Any]:
    """The non-searched genotypes: ``randoms`` random draws (fixed seeds, distinct), all-parallel, all-fusion."""
    from clearer_nni.archs.space import CANDIDATES
    from clearer_nni.nas.genotype import Genotype

    out: dict[str, Any] = {}
    seen = {"P" * len(space.labels), "F" * len(space.labels)}
    k, draw = 0, 0
    while k < randoms:
        draw += 1
        rng = random.Random(1000 + draw)
        g = Genotype(space, {label: rng.choice(list(CANDIDATES)) for label in space.labels})
        if g.code().replace("|", "") in seen:
            continue
        seen.add(g.code().replace("|", ""))
        k += 1
        out[f"random-{k}"] = g
    for name in ("parallel", "fusion"):
        out[f"all-{name}"] = Genotype(space, {label: name for label in space.labels})
    return out


def alpha_logprob(searched: Any, genotype: Any) -> float:
    """log P(genotype) under the searched α (temperature 1): the search's own preference."""
    return round(sum(math.log(max(searched.alpha[label][choice], 1e-12))
                     for label, choice in genotype.choices.items()), 5)


# -- the stages -----------------------------------------------------------------------------------

def search(budget: Budget, seed: int, out: Path, data_root: str | None, strategy: str = "darts") -> Path:
    """Run the ``strategy`` search of ``seed`` into ``out/<strategy>-seed<N>`` (DARTS: ``search-seed<N>``; reused
    when already there, one process at a time) and return the folder (``genotype.json``, ``supernet.pt``).
    DARTS selects by perturbation and records the argmax choices beside; the others take their default
    (SPOS: the best-ranked architecture, Gumbel: argmax)."""
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    folder = out / (f"search-seed{seed}" if strategy == "darts" else f"{strategy}-seed{seed}")
    with _locked(out / f".{folder.name}.bench-lock"):  # processes splitting one seed's networks search once
        if not (folder / "genotype.json").is_file():
            # the space's recipe, then these settings (clearer_nni.config decides the precedence)
            run_search(resolve_search(dict(space=budget.space, data=SPLIT_NAME, data_root=data_root, sigma=budget.sigma,
                                           steps=budget.search_steps, batch_size=budget.search_batch,
                                           patch_size=budget.patch_size, seed=seed, val_patches=budget.val_patches,
                                           out=str(folder), overwrite=True, progress=False, checkpoint_every=0,
                                           strategy=strategy, finetune_steps=0,
                                           **({"select": "perturbation"} if strategy == "darts" else {}))))
    return folder


def darts_genotypes(folder: Path) -> tuple[Any, Any]:
    """The DARTS search's argmax and perturbation genotypes."""
    from clearer_nni.nas.genotype import Genotype

    perturbation = Genotype.load(folder / "genotype.json")
    argmax = Genotype(perturbation.space, perturbation.metadata["argmax_choices"], perturbation.alpha,
                      perturbation.metadata)
    return argmax, perturbation


def spos_ranking(budget: Budget, seed: int, out: Path, data_root: str | None) -> tuple[Any, dict[str, float]]:
    """The SPOS search of ``seed``, which ends by ranking every architecture with its weights (``--select
    rank``, its default; the ranking in ``<folder>/ranking``): the best-ranked genotype and each
    architecture's ranked PSNR."""
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.nas.ranking import read_rows as ranking_rows

    folder = search(budget, seed, out, data_root, "spos")
    return (Genotype.load(folder / "genotype.json"),
            {r["code"]: r["psnr"] for r in ranking_rows(folder / "ranking" / "ranking.csv")})


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``path`` for a ``with`` block (waits for another holder)."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def estimator(budget: Budget, seed: int, folder: Path, data: tuple[Any, Any]) -> Callable[[Any], float]:
    """The trial metric of any genotype in this seed's super-network: the fine-tune estimate with the
    search's settings (its ``finetune_steps`` from the space file, else 100)."""
    from clearer_nni.data import GaussianNoise, search_batches
    from clearer_nni.nas.estimate import derived_network, finetune_estimate
    from clearer_nni.config import resolve_search

    recipe = resolve_search({"space": budget.space})  # the search's settings: the space's recipe
    steps = int(recipe.finetune_steps or 100)
    lr = float(recipe.finetune_lr)
    noise = GaussianNoise(budget.sigma)
    train_set, val_set = data
    # the same patches as the search's own monitor and fine-tune
    fixed = search_batches(train_set, val_set, budget.patch_size, noise, seed, budget.val_patches, budget.search_batch,
                           steps)
    monitor, batches, calibration = fixed["monitor"], fixed["finetune"], fixed["calibration"]
    state = torch.load(folder / "supernet.pt", weights_only=True)["state_dict"]

    def estimate(genotype: Any) -> float:
        torch.manual_seed(seed)
        return finetune_estimate(derived_network(genotype, state), batches, monitor, lr=lr,
                                 calibration=calibration).psnr

    return estimate


def train(network: torch.nn.Module, budget: Budget, seed: int, data: tuple[Any, Any], steps: int | None = None
          ) -> dict[str, Any]:
    """Train ``network`` from scratch with the budget on ``data`` (the held-out split's train and val
    sets); load its best validation state; the facts."""
    from clearer_nni.config import RetrainConfig
    from clearer_nni.data import GaussianNoise
    from clearer_nni.training.fit import train_from_scratch
    from clearer_nni.training.validation import validation_batches

    cfg = RetrainConfig(genotype="-", steps=steps or budget.steps, batch_size=budget.batch_size,
                        patch_size=budget.patch_size, val_patches=budget.val_patches, seed=VAL_SEED)
    noise = GaussianNoise(budget.sigma)
    train_set, val_set = data
    val_batches, _ = validation_batches(val_set, cfg, noise)
    facts = train_from_scratch(network, train_set, noise, val_batches, steps=cfg.steps, batch_size=cfg.batch_size,
                               patch_size=cfg.patch_size, lr=budget.lr, seed=seed, val_every=budget.val_every)
    facts.pop("curve")
    return facts


def score(restore: Callable[[Any], Any] | torch.nn.Module, pairs: dict[str, list]) -> dict[str, float]:
    """Mean PSNR and SSIM on each test set (a network, or a function of the degraded array)."""
    from clearer_nni.metrics.evaluation import evaluate_model
    from clearer_nni.metrics import score as score_pair

    facts = {}
    for name, data in pairs.items():
        if isinstance(restore, torch.nn.Module):
            frame = evaluate_model(restore, data, device="auto")
            psnr, ssim = frame["psnr"].mean(), frame["ssim"].mean()
        else:
            values = [score_pair(restore(degraded), clean) for degraded, clean, _ in data]
            psnr, ssim = statistics.fmean(v[0] for v in values), statistics.fmean(v[1] for v in values)
        facts[f"{name}_psnr"], facts[f"{name}_ssim"] = round(float(psnr), 4), round(float(ssim), 5)
    return facts


def bm3d_restore(sigma: float) -> Callable[[Any], Any]:
    """BM3D with the true σ (the ``bm3d`` package), on an ``H x W x 1`` float image in [0, 1]."""
    try:
        import bm3d
    except ImportError:
        raise SystemExit("error: --bm3d needs the optional 'bm3d' package (non-commercial licence): "
                         "pip install bm3d") from None

    def restore(degraded: Any) -> Any:
        return bm3d.bm3d(degraded[..., 0], sigma_psd=sigma / 255.0)[..., None].astype("float32")

    return restore


# -- rows -----------------------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_rows(out: Path) -> list[dict[str, Any]]:
    return [r for path in sorted(out.glob("seed*.csv")) for r in read_csv(path)]


def append_row(path: Path, row: dict[str, Any], fields: Sequence[str]) -> None:
    with path.open("a", newline="", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # processes sharing a file (different --networks) append safely
        writer = csv.DictWriter(f, fieldnames=list(fields))
        if f.tell() == 0:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in fields})
    print(", ".join(f"{k} {row[k]}" for k in fields if k in row), flush=True)


def run_seed(budget: Budget, seed: int, out: Path, data_root: str | None, pairs: dict[str, list],
             networks: Sequence[str] | None) -> None:
    from clearer_nni.archs import count_parameters
    from clearer_nni.data import load_dataset
    from clearer_nni.nas.genotype import Genotype

    folder = search(budget, seed, out, data_root)
    argmax, perturbation = darts_genotypes(folder)
    genotypes = {"searched-argmax": argmax, "searched-perturbation": perturbation,
                 **fixed_genotypes(argmax.space, budget.randoms)}
    done = {r["network"] for r in read_rows(out) if int(r["seed"]) == seed}
    names = [*SEARCHED, *(n for n in genotypes if n not in SEARCHED)] if networks is None else list(networks)
    todo = [n for n in dict.fromkeys(names) if n not in done]
    if not todo:
        return
    ranked, rank_psnr = spos_ranking(budget, seed, out, data_root)  # every row gets its ranked PSNR
    genotypes["spos-ranked"] = ranked
    if "gumbel-argmax" in todo:
        genotypes["gumbel-argmax"] = Genotype.load(search(budget, seed, out, data_root, "gumbel") / "genotype.json")
    data = (load_dataset(SPLIT_NAME, "train", root=data_root), load_dataset(SPLIT_NAME, "val", root=data_root))
    estimate = estimator(budget, seed, folder, data)
    for name in todo:
        g = genotypes[name]
        twin = next((r for r in read_rows(out) if int(r["seed"]) == seed and r["genotype"] == g.code()), None)
        if twin is not None:  # two ways chose the same genotype: the same network, trained once
            append_row(out / f"seed{seed}.csv", {**twin, "network": name}, FIELDS)
            continue
        row = {"seed": seed, "network": name, "genotype": g.code(), "alpha_logprob": alpha_logprob(argmax, g),
               "estimate_psnr": estimate(g), "rank_psnr": rank_psnr.get(g.code(), "")}
        torch.manual_seed(seed)  # the same initialisation stream for every network
        network = g.build()
        row["params"] = count_parameters(network)
        row.update(train(network, budget, seed, data))
        row.update(score(network.eval(), pairs))
        append_row(out / f"seed{seed}.csv", row, FIELDS)


def run_pilot(budget: Budget, out: Path, data_root: str | None, steps_list: Sequence[int]) -> None:
    from clearer_nni.archs.space import load_space_file
    from clearer_nni.data import load_dataset

    space = load_space_file(budget.space)
    genotypes = fixed_genotypes(space, 4)
    data = (load_dataset(SPLIT_NAME, "train", root=data_root), load_dataset(SPLIT_NAME, "val", root=data_root))
    path = out / "pilot.csv"
    plan = [(seed, "random-1") for seed in (0, 1, 2)] + [(0, f"random-{k}") for k in (2, 3, 4)]
    for steps in steps_list:
        for seed, name in plan:
            if any(int(r["steps"]) == steps and int(r["seed"]) == seed and r["network"] == name for r in read_csv(path)):
                continue
            torch.manual_seed(seed)
            network = genotypes[name].build()
            facts = train(network, budget, seed, data, steps)
            append_row(path, {"steps": steps, "seed": seed, "network": name, "genotype": genotypes[name].code(),
                              "best_val_psnr": facts["best_val_psnr"], "train_seconds": facts["train_seconds"]},
                       PILOT_FIELDS)


# -- the summary ----------------------------------------------------------------------------------

def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_sd(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {_sd(values):.2f}" if values else "-"


def pilot_summary(out: Path) -> str:
    rows = read_csv(out / "pilot.csv")
    if not rows:
        return ""
    lines, chosen = [], None
    for steps in sorted({int(r["steps"]) for r in rows}):
        got = [r for r in rows if int(r["steps"]) == steps]
        seeds = [float(r["best_val_psnr"]) for r in got if r["network"] == "random-1"]
        between = [float(r["best_val_psnr"]) for r in got if int(r["seed"]) == 0]
        ok = len(seeds) > 1 and len(between) > 1 and _sd(seeds) < _sd(between)
        chosen = chosen or (steps if ok else None)
        lines.append([steps, f"{_sd(seeds):.3f} ({len(seeds)} seeds)", f"{_sd(between):.3f} ({len(between)} genotypes)",
                      f"{statistics.fmean(float(r['train_seconds']) for r in got):.0f}", "yes" if ok else "no"])
    return ("Pilot (validation PSNR on 64 held-out patches; `random-1` over seeds 0-2 against `random-1..4` at "
            "seed 0; sd in dB):\n\n" + table(["retraining steps", "sd over seeds", "sd between genotypes",
                                              "train s", "seeds < genotypes"], lines) +
            f"\n\nSmallest budget whose seed spread is below the genotype spread: {chosen if chosen else 'none'}.")


def percentile(value: float, others: Sequence[float]) -> float:
    """Percent of ``others`` below ``value`` (ties count half)."""
    return 100.0 * sum((o < value) + 0.5 * (o == value) for o in others) / len(others)


def summarise(rows: list[dict[str, Any]], test: str) -> str:
    """The Markdown body: networks (mean ± sd over seeds), percentiles and Kendall tau per seed, spreads."""
    from scipy.stats import kendalltau

    seeds = sorted({int(r["seed"]) for r in rows})
    by = {(int(r["seed"]), r["network"]): r for r in rows}
    names = [n for n in (*SEARCHED, *FIXED) if any(n == r["network"] for r in rows)]
    names += sorted({r["network"] for r in rows if r["network"].startswith("random-")}, key=lambda n: int(n[7:]))
    lines = []
    for name in names:
        got = [by[(s, name)] for s in seeds if (s, name) in by]
        col = lambda key: [float(r[key]) for r in got if r.get(key) not in (None, "")]  # noqa: E731
        codes = sorted({r["genotype"] for r in got})
        lines.append([name, " ".join(codes) if len(codes) <= 3 else f"{len(codes)} genotypes",
                      f"{statistics.fmean(col('params')) / 1e6:.3f}", _mean_sd(col(f"{test}_psnr")),
                      _mean_sd(col("best_val_psnr")), _mean_sd(col("estimate_psnr")), len(got)])
    body = table(["network", "genotype", "params (M)", f"{test} PSNR (dB)", "val PSNR (dB)",
                  "trial metric (dB)", "seeds"], lines)

    per_seed = []
    verdict: dict[str, list[float]] = {n: [] for n in SEARCHED}
    taus: dict[str, list[float]] = {key: [] for key in SCORES}
    for s in seeds:
        randoms = [float(by[(s, n)][f"{test}_psnr"]) for (ss, n) in by if ss == s and n.startswith("random-")]
        everyone = [r for (ss, _), r in by.items() if ss == s]
        unique = list({r["genotype"]: r for r in everyone}.values())  # two ways may choose one genotype
        cells = [s, len(randoms)]
        for n in SEARCHED:
            if (s, n) in by and randoms:
                pct = percentile(float(by[(s, n)][f"{test}_psnr"]), randoms)
                verdict[n].append(pct)
                cells.append(f"{pct:.0f}")
            else:
                cells.append("-")
        for key in taus:
            scored = [r for r in unique if r.get(key) not in (None, "")]
            tau = (kendalltau([float(r[key]) for r in scored], [float(r[f"{test}_psnr"]) for r in scored]).statistic
                   if len(scored) > 2 else float("nan"))
            taus[key].append(tau)
            cells.append(f"{tau:.2f}")
        cells.append(len(unique))
        per_seed.append(cells)
    body += (f"\n\nPer seed: each search's genotype's percentile among the random ones ({test} PSNR; ties count "
             "half), and Kendall's tau between the search's own score of every genotype and its retrained "
             f"{test} PSNR (distinct genotypes of that seed):\n\n" + table(
                 ["seed", "randoms", *(f"{n} pct" for n in SEARCHED), *(f"tau {v}" for v in SCORES.values()),
                  "genotypes"], per_seed))
    checks = []
    for n, pcts in verdict.items():
        if pcts:
            met = all(p > TARGET_PERCENTILE for p in pcts)
            checks.append([f"{n} above the {TARGET_PERCENTILE:g}th percentile in every seed",
                           " ".join(f"{p:.0f}" for p in pcts), "met" if met else "NOT met"])
    for key, values in taus.items():
        ok = [v for v in values if not math.isnan(v)]
        if ok:
            checks.append([f"tau({key}, retrained PSNR) >= {TARGET_TAU}", f"mean {statistics.fmean(ok):.2f}",
                           "met" if statistics.fmean(ok) >= TARGET_TAU else "NOT met"])
    body += "\n\nTargets:\n\n" + table(["target", "measured", "verdict"], checks)
    return body + "\n\n" + spreads(rows, test)


def spreads(rows: list[dict[str, Any]], test: str) -> str:
    """The pilot's question asked of the fixed genotypes (the same networks in every seed): one genotype's
    spread over seeds against the spread between genotypes, on the test set and on the (seed-independent)
    validation patches; and how well two seeds agree on the genotypes' order (Kendall tau between seeds),
    the ceiling for any score's tau against one seed's retrained PSNR."""
    from itertools import combinations

    from scipy.stats import kendalltau

    seeds = sorted({int(r["seed"]) for r in rows})
    by = {(int(r["seed"]), r["network"]): r for r in rows}
    fixed = sorted({n for (_, n) in by if not n.startswith(SEARCHED)})
    fixed = [n for n in fixed if all((s, n) in by for s in seeds)]
    if len(fixed) < 3 or len(seeds) < 2:
        return ""
    lines = []
    for key in (f"{test}_psnr", "best_val_psnr"):
        v = {n: [float(by[(s, n)][key]) for s in seeds] for n in fixed}
        within = statistics.fmean(_sd(x) for x in v.values())
        between = _sd([statistics.fmean(x) for x in v.values()])
        agree = [kendalltau([v[n][i] for n in fixed], [v[n][j] for n in fixed]).statistic
                 for i, j in combinations(range(len(seeds)), 2)]
        lines.append([key.replace("_psnr", "").replace("best_val", "validation"), f"{within:.3f}", f"{between:.3f}",
                      "yes" if within < between else "no", f"{statistics.fmean(agree):.2f}"])
    return (f"Spread of the {len(fixed)} fixed genotypes (random, all-parallel, all-fusion) over seeds "
            f"{', '.join(map(str, seeds))} (sd in dB; validation: the same patches, drawn with seed {VAL_SEED}, in every seed):\n\n"
            + table(["scored on", "sd over seeds (mean)", "sd between genotypes", "seeds < genotypes",
                     "tau between seeds (mean)"], lines))


def plot(rows: list[dict[str, Any]], path: Path, test: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({int(r["seed"]) for r in rows})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    style = {"searched-argmax": ("C3", -0.18), "searched-perturbation": ("C1", -0.06), "spos-ranked": ("C4", 0.06),
             "gumbel-argmax": ("C5", 0.18)}
    ax = axes[0]
    for i, s in enumerate(seeds):
        for r in (r for r in rows if int(r["seed"]) == s):
            name = r["network"]
            color, dx = style.get(name, ("C2" if name.startswith("all-") else "C0", 0.0))
            marker = "*" if name in style else "o"
            ax.scatter(i + dx, float(r[f"{test}_psnr"]), color=color, marker=marker, s=90 if marker == "*" else 25,
                       zorder=3, label=name if (i == 0 and name in style) else None)
    ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    ax.set(ylabel=f"{test} PSNR (dB), retrained", title="★ each search's genotype; green all-P/all-F, blue random")
    ax.legend(fontsize=7)
    for ax, key, label in ((axes[1], "estimate_psnr", "trial metric: derived network after the fine-tune (dB)"),
                           (axes[2], "rank_psnr", "SPOS ranking: inherited weights, BN re-estimated (dB)")):
        for s in seeds:
            got = [r for r in rows if int(r["seed"]) == s and r.get(key) not in (None, "")]
            ax.scatter([float(r[key]) for r in got], [float(r[f"{test}_psnr"]) for r in got], label=f"seed {s}", s=20)
        ax.set(xlabel=label, ylabel=f"{test} PSNR (dB), retrained", title="a search's own score against the "
                                                                           "retrained quality")
        ax.legend(fontsize=7)
    for ax in axes:
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds [%(default)s]")
    p.add_argument("--networks", help="comma-separated subset of the networks [all]")
    p.add_argument("--quick", action="store_true", help="tiny space, few steps: a smoke run")
    p.add_argument("--paper", action="store_true", help="the paper's budget (default space, 10k + 100k steps): GPU")
    p.add_argument("--search-steps", type=int, help="override the budget's search steps")
    p.add_argument("--steps", type=int, help="override the budget's training steps per network")
    p.add_argument("--randoms", type=int, help="random genotypes [8]")
    p.add_argument("--pilot", action="store_true", help="run the pilot that picks the retraining budget")
    p.add_argument("--pilot-steps", default="150,400", help="retraining budgets the pilot tries [%(default)s]")
    p.add_argument("--test-sets", default="set12", help="comma-separated: set12, bsd68 [%(default)s]")
    p.add_argument("--bm3d", action="store_true", help="also score BM3D (needs `pip install bm3d`)")
    p.add_argument("--data-root", help="folder holding BSD400, Set12, BSD68 [clearer_nni's default data root]")
    p.add_argument("--test-images", type=int, help="score only the first N images of each test set (smoke runs)")
    p.add_argument("--out", default="runs/bench-quality", help="rows, searches and the plot [%(default)s]")
    p.add_argument("--summary-only", action="store_true", help="train nothing: summarise the rows in --out")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads [%(default)s]")
    p.add_argument("--machine", default=_results.DEFAULT_MACHINE, help="named in docs/RESULTS.md")
    p.add_argument("--no-append", action="store_true", help="print only, do not write docs/RESULTS.md")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = _parser()
    ns = p.parse_args(argv)
    from clearer_nni.data import load_dataset
    from clearer_nni.metrics.evaluation import protocol_pairs

    torch.set_num_threads(ns.threads)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "GPU available" lines per network
    budget = BUDGETS["paper" if ns.paper else "quick" if ns.quick else "cpu"]
    budget = dataclasses.replace(budget, **{k: v for k, v in (("search_steps", ns.search_steps), ("steps", ns.steps),
                                                                        ("randoms", ns.randoms)) if v is not None})
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()]
    networks = [n.strip() for n in ns.networks.split(",") if n.strip()] if ns.networks else None
    known = [*SEARCHED, *FIXED, *(f"random-{k}" for k in range(1, budget.randoms + 1))]
    if networks and set(networks) - set(known):
        p.error(f"unknown network(s) {sorted(set(networks) - set(known))}; known: {', '.join(known)}")
    tests = [t.strip() for t in ns.test_sets.split(",") if t.strip()]
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    register_holdout_split()
    start = time.time()
    if ns.pilot:
        if not ns.summary_only:
            run_pilot(budget, out, ns.data_root, [int(s) for s in ns.pilot_steps.split(",")])
        body = pilot_summary(out)
        print(body)
        if not ns.no_append:
            append_section("Quality benchmark: pilot for the retraining budget", body, machine=ns.machine)
        return 0
    pairs = {name: protocol_pairs(load_dataset(name, "test", root=ns.data_root, max_images=ns.test_images),
                                  "standard", budget.sigma) for name in tests}
    if not ns.summary_only:
        for seed in seeds:
            run_seed(budget, seed, out, ns.data_root, pairs, networks)
    rows = read_rows(out)
    if not rows:
        raise SystemExit(f"error: no rows in {out}")
    body = summarise(rows, tests[0])
    if ns.bm3d:
        bm3d_row = score(bm3d_restore(budget.sigma), pairs)
        body += f"\n\nBM3D (no training): {tests[0]} {bm3d_row[f'{tests[0]}_psnr']:.2f} dB."
    pilot = pilot_summary(out)
    img = _results.REPO / "docs" / "img" / "quality-vs-random.png" if not ns.no_append else out / "quality.png"
    plot(rows, img, tests[0])
    head = (f"Space `{budget.space}`, σ = {budget.sigma:g}. Search (one per seed, the space file's `search:` settings): "
            f"{budget.search_steps} steps, batch {budget.search_batch}, {budget.patch_size}x{budget.patch_size}; weights "
            f"on BSD400 minus every {HOLDOUT}th image (320), α on those {400 // HOLDOUT} (disjoint). Every network: "
            f"trained from scratch for {budget.steps} steps, batch {budget.batch_size}, "
            f"{budget.patch_size}x{budget.patch_size}, Adam lr {budget.lr} cosine to 0, clip 5, same seed and patches; "
            f"best state by PSNR on {budget.val_patches} patches of the held-out {400 // HOLDOUT} (every "
            f"{budget.val_every} steps). Test: {', '.join(f'{k} ({len(v)} images)' for k, v in pairs.items())}, "
            f"standard protocol. Random genotypes: {budget.randoms}. Plot: "
            f"`{img.relative_to(_results.REPO) if not ns.no_append else img}`. This summary: "
            f"{(time.time() - start) / 60:.1f} min.\n\n")
    print(head + body + ("\n\n" + pilot if pilot else ""))
    if not ns.no_append:
        append_section("Quality at equal budget: searched against random", head + body, machine=ns.machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
