"""Every search strategy against the ground-truth table (issue 20, item 2).

Each strategy searches the table's space (``search_spaces/table.yaml``) for the table's task (correlated
noise σ 50, correlation length 2 px) on the table's data (BSD400: weights on four fifths, α and validation on
every 5th image), with the same budget (``recipes/table.yaml``: the demo's 300 steps), once per search
seed. Its pick is then looked up in the table (mean BSD68 PSNR over the table's 3 training seeds):

- ``darts-argmax``, ``darts-perturbation``, ``darts-rank``: one CLEARER search (DARTS + L_Arch, the demo
  recipe), its argmax (the paper's derivation), perturbation selection (Wang et al. 2021) and the ranking of
  every architecture with its super-network's weights (``clearer-nni rank``);
- ``paper-argmax``: the paper's recipe at the same budget (λ1 = 0.01 constant, α lr 3e-4, no annealing);
- ``spos-rank``, ``gumbel-argmax``: our single-path and GDAS super-networks;
- ``darts-l2-argmax``: the demo recipe with λ2 = 0.1 (L_Comp on parameters), scored on the Pareto front too;
- ``nni-darts``, ``nni-gumbel``, ``nni-random-rank``, ``nni-enas``, ``nni-proxyless``: NNI 3.0's own one-shot
  strategies, as users would pick them (NNI's defaults, gradient clip 5, our weights' optimiser and data),
  on the same ``ClearerSpace``; RandomOneShot's super-network is ranked like ``spos-rank``;
- ``random-search``: random architectures trained from scratch briefly (``--rs-steps``), the best on the
  validation patches kept, for the wall-clock of that seed's CLEARER search (Li and Talwalkar 2019);
- ``random-draw``: one uniformly drawn architecture; ``largest``: the one with the most parameters.

Per strategy: regret (the table's best mean minus the pick's), the pick's rank and percentile, Kendall and
Spearman correlation of the strategy's own scores of the architectures (log P under α, ranking PSNR, the
random search's validation PSNR, parameters) with the table's means, and the search time.

    python benchmarks/table_strategies.py --seeds 0,1,2,3,4 --workers 2   # about an hour on 2 cores
    python benchmarks/table_strategies.py --summary-only                  # tables, plot, docs/RESULTS.md
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

import _results  # noqa: F401 - puts the repository on sys.path

from _results import append_section, table as md_table

OUT = Path("runs/bench/strategies")
FIELDS = ["strategy", "seed", "pick", "seconds", "scores", "note"]
#: The strategies, in the order of the report; the groups that one run yields several of.
GROUPS = {
    "darts": ("darts-argmax", "darts-perturbation", "darts-rank"),
    "paper": ("paper-argmax",),
    "spos": ("spos-rank",),
    "gumbel": ("gumbel-argmax",),
    "darts-l2": ("darts-l2-argmax",),
    "nni-darts": ("nni-darts",),
    "nni-gumbel": ("nni-gumbel",),
    "nni-random": ("nni-random-rank",),
    "nni-enas": ("nni-enas",),
    "nni-proxyless": ("nni-proxyless",),
    # item 3: ideas to improve the search, each measured on the table
    "spos-equal-time": ("spos-equal-time-rank",),
    "fair": ("fair-rank",),
    "spos-256": ("spos-256-rank",),
    "darts-warmup": ("darts-warmup-argmax",),
    "darts-long": ("darts-long-argmax",),
    "spos-long": ("spos-long-rank",),
    "fair-long": ("fair-long-rank",),
    "random-search": ("random-search",),
    # at the wall-clock of spos-long (2,000 single-path steps and the ranking): the same cost for the peers
    "nni-darts-long": ("nni-darts-long",),
    "nni-gumbel-long": ("nni-gumbel-long",),
    "random-search-long": ("random-search-long",),
    "random-draw": ("random-draw",),
    "largest": ("largest",),
}
#: The issue's targets for our best strategy.
TARGET_TOP, TARGET_REGRET, TARGET_TAU = 4, 0.05, 0.5


# -- the strategies' scores of the architectures ------------------------------------------------

def alpha_scores(genotype: Any, codes: Sequence[str]) -> dict[str, float]:
    """log P(architecture) under the genotype's final softmax(α), for every code."""
    from clearer_nni.nas.ranking import choices_of

    out = {}
    for code in codes:
        choices = choices_of(genotype.space, code)
        out[code] = sum(math.log(max(genotype.alpha[label][name], 1e-12)) for label, name in choices.items())
    return out


def ranking_scores(path: Path) -> dict[str, float]:
    from clearer_nni.nas.ranking import read_rows

    return {r["code"]: float(r["psnr"]) for r in read_rows(path)}


# -- our strategies ---------------------------------------------------------------------------

def our_search(seed: int, out: Path, **flags: Any) -> Any:
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    return run_search(resolve_search({"space": "table", "seed": seed, "out": str(out), "progress": False,
                                      "overwrite": True, "threads": 1, "save_supernet": True, **flags}))


def run_darts(seed: int, out: Path, codes: Sequence[str]) -> list[dict[str, Any]]:
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.rank import rank_run

    result = our_search(seed, out / "search", select="perturbation")
    g, seconds = result.genotype, result.seconds
    argmax = Genotype(g.space, g.metadata["argmax_choices"])
    scores = alpha_scores(g, codes)
    start = time.time()
    rank_run(out / "search", out / "rank", overwrite=True, progress=False)
    rank_seconds = time.time() - start
    ranked = ranking_scores(out / "rank" / "ranking.csv")
    best = max(ranked, key=ranked.get)
    return [{"strategy": "darts-argmax", "pick": argmax.code(), "seconds": seconds, "scores": scores},
            {"strategy": "darts-perturbation", "pick": g.code(), "seconds": seconds, "scores": None},
            {"strategy": "darts-rank", "pick": best, "seconds": seconds + rank_seconds, "scores": ranked}]


#: The search flags of each of our groups beyond the table recipe (recipes/table.yaml: 300 steps, 50 of warm-up).
OUR_FLAGS: dict[str, dict[str, Any]] = {
    "paper": {"lambda_arch": 0.01, "lambda_arch_schedule": "constant", "arch_lr_schedule": "fixed",
              "anneal_fraction": 0.0},
    "spos": {"strategy": "spos"},
    "gumbel": {"strategy": "gumbel"},
    "darts-l2": {"lambda_comp": 0.1},
    # a spos step costs about 0.4 of a darts step here: 750 steps take a darts search's 300-step wall-clock
    "spos-equal-time": {"strategy": "spos", "steps": 750, "warmup_steps": 125},
    "fair": {"strategy": "fair"},
    "spos-256": {"strategy": "spos", "val_patches": 256},  # the ranking on 8x the validation patches
    "darts-warmup": {"warmup_steps": 150},
    "darts-long": {"steps": 1000, "warmup_steps": 150},
    "spos-long": {"strategy": "spos", "steps": 2000, "warmup_steps": 300, "val_patches": 256},
    "fair-long": {"strategy": "fair", "steps": 1000, "warmup_steps": 150, "val_patches": 256},
}


def run_ours(group: str, seed: int, out: Path, codes: Sequence[str]) -> list[dict[str, Any]]:
    flags = OUR_FLAGS[group]
    result = our_search(seed, out / "search", **flags)
    g = result.genotype
    if g.metadata.get("select") == "rank":
        scores = ranking_scores(out / "search" / "ranking" / "ranking.csv")
    else:
        scores = alpha_scores(g, codes)
    return [{"strategy": GROUPS[group][0], "pick": g.code(), "seconds": result.seconds, "scores": scores}]


# -- NNI's own strategies -------------------------------------------------------------------------

def nni_strategy(group: str) -> Any:
    # from the module itself: nni.nas.strategy's re-exports are placeholders when clearer_nni.nas.strategy
    # imported NNI's one-shot module first (a circular import inside NNI)
    from nni.nas.oneshot.pytorch import strategy

    made: dict[str, Callable[[], Any]] = {
        "nni-darts": lambda: strategy.DARTS(gradient_clip_val=5.0),
        "nni-gumbel": lambda: strategy.GumbelDARTS(gradient_clip_val=5.0),
        "nni-darts-long": lambda: strategy.DARTS(gradient_clip_val=5.0),
        "nni-gumbel-long": lambda: strategy.GumbelDARTS(gradient_clip_val=5.0),
        "nni-random": lambda: strategy.RandomOneShot(),
        "nni-enas": lambda: strategy.ENAS(reward_metric_name="val_psnr"),
        "nni-proxyless": lambda: strategy.Proxyless(gradient_clip_val=5.0),
    }
    return made[group]()


#: NNI's DARTS and GumbelDARTS steps in spos-long's wall-clock (a DARTS step costs about 2.5 single-path steps).
LONG_NNI_STEPS = 1100


def _tagged(loader: int) -> Callable[[list], tuple]:
    """A collate function giving ``(batch, 0, loader)``. NNI 3.0's ENAS tells its weight batches from its
    controller batches by the ``(batch, batch_idx, dataloader_idx)`` triple that Lightning 1.x passed; Lightning
    2.6 passes the batch alone, and a 2-tuple batch is then read as the legacy ``(batch, mode)``. Tagging each
    batch with its loader's index restores what ENAS expects."""
    from torch.utils.data import default_collate

    return lambda items: (default_collate(items), 0, loader)


def run_nni(group: str, seed: int, out: Path, codes: Sequence[str]) -> list[dict[str, Any]]:
    """NNI's strategy on ClearerSpace with the search recipe's data, steps and weights' optimiser; its export
    (RandomOneShot: the best-ranked with its weights). Written as a search folder so ``rank_run`` reads it."""
    import pytorch_lightning as pl
    from nni.nas.evaluator.pytorch import DataLoader

    from clearer_nni.archs.space import ClearerSpace, load_space_file
    from clearer_nni.config import resolve_search
    from clearer_nni.data import degradation_for, search_sets
    from clearer_nni.data.patches import PatchDataset
    from clearer_nni.models.restoration import OptimConfig, RestorationModule
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.rank import rank_run
    from clearer_nni.training.checkpoint import save_supernet
    from clearer_nni.training.fit import fit_supernet

    cfg = resolve_search({"space": "table", "seed": seed, **({"steps": LONG_NNI_STEPS} if group.endswith("-long") else {})})
    space_cfg = load_space_file(cfg.space)
    pl.seed_everything(seed, verbose=False)
    train_set, val_set, _ = search_sets(cfg.data, cfg.val_data, 1, cfg.data_root)
    degradation = degradation_for(cfg.degradation, cfg.sigma, cfg.noise_clip, correlation_length=cfg.correlation_length)
    n = cfg.steps * cfg.batch_size
    kw = dict(batch_size=cfg.batch_size, shuffle=False, drop_last=True)
    tags = (_tagged(0), _tagged(1)) if group == "nni-enas" else (None, None)
    train = DataLoader(PatchDataset(train_set, cfg.patch_size, degradation, length=n, seed=seed), collate_fn=tags[0], **kw)
    val = DataLoader(PatchDataset(val_set, cfg.patch_size, degradation, length=n, seed=seed + 1), collate_fn=tags[1],
                     **kw)
    start = time.time()
    oneshot = fit_supernet(ClearerSpace(space_cfg), nni_strategy(group),
                           RestorationModule(OptimConfig("sgd", cfg.lr, cfg.lr_min, 0.9, 3e-4), cfg.steps),
                           train, val, progress=False)
    seconds = time.time() - start
    choices = dict(oneshot.export())
    model = oneshot.training_module.model
    probs = {}
    for name, module in model.named_modules():
        alpha = getattr(module, "_arch_alpha", None)
        if alpha is not None and getattr(module, "label", None) in space_cfg.labels:
            import torch

            probs[module.label] = dict(zip(module.names, torch.softmax(alpha.detach().float(), -1).tolist()))
    g = Genotype(space_cfg, choices, probs if len(probs) == len(space_cfg.labels) else {},
                 {"train_data": train_set.name, "val_data": val_set.name, "patch_size": cfg.patch_size, "seed": seed,
                  "batch_size": cfg.batch_size, "degradation": degradation.describe(), "strategy": group})
    folder = out / "search"
    folder.mkdir(parents=True, exist_ok=True)
    g.save(folder / "genotype.json")
    save_supernet(folder / "supernet.pt", space_cfg, "paper", model.state_dict())
    scores = alpha_scores(g, codes) if g.alpha else None
    pick = g.code()
    if group == "nni-random":  # RandomOneShot's export is a random sample: rank its super-network instead
        t = time.time()
        rank_run(folder, out / "rank", overwrite=True, progress=False)
        seconds += time.time() - t
        scores = ranking_scores(out / "rank" / "ranking.csv")
        pick = max(scores, key=scores.get)
    return [{"strategy": GROUPS[group][0], "pick": pick, "seconds": seconds, "scores": scores}]


# -- baselines ------------------------------------------------------------------------------------

def run_random_search(seed: int, budget: float, steps: int, codes: Sequence[str]) -> list[dict[str, Any]]:
    """Random architectures, each trained ``steps`` steps from scratch (the table's recipe otherwise), until
    ``budget`` seconds are spent (at least one); the best on the validation patches."""
    import dataclasses

    import pytorch_lightning as pl

    from clearer_nni.bench import recipe_of
    from clearer_nni.bench.build import _data
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.nas.ranking import choices_of
    from clearer_nni.training.fit import train_from_scratch

    recipe = recipe_of()
    recipe = dataclasses.replace(recipe, steps=steps, val_every=steps)
    data = _data(recipe, None)
    order = list(codes)
    random.Random(seed).shuffle(order)
    scores: dict[str, float] = {}
    start = time.time()
    for code in order:
        if scores and time.time() - start >= budget:
            break
        pl.seed_everything(seed, verbose=False)
        network = Genotype(recipe.space_config(), choices_of(recipe.space_config(), code)).build()
        facts = train_from_scratch(network, data["train"], data["degradation"], data["val"], steps=steps,
                                   batch_size=recipe.batch_size, patch_size=recipe.patch_size, lr=recipe.lr,
                                   seed=seed, val_every=steps, device="cpu")
        scores[code] = facts["best_val_psnr"]
    return [{"strategy": "random-search", "pick": max(scores, key=scores.get), "seconds": time.time() - start,
             "scores": scores, "note": f"{len(scores)} architectures x {steps} steps in a {budget:.0f} s budget"}]


def run_baseline(group: str, seed: int, codes: Sequence[str]) -> list[dict[str, Any]]:
    from clearer_nni.bench import table

    if group == "random-draw":
        return [{"strategy": group, "pick": random.Random(1000 + seed).choice(list(codes)), "seconds": 0.0,
                 "scores": None}]
    params = table().groupby("architecture")["params"].first().to_dict()
    return [{"strategy": group, "pick": max(params, key=params.get), "seconds": 0.0,
             "scores": {k: float(v) for k, v in params.items()}}]


# -- jobs -----------------------------------------------------------------------------------------

def job(group: str, seed: int, out: str, rs_budget: float, rs_steps: int) -> list[dict[str, Any]]:
    import logging

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "nni"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from clearer_nni.bench import architectures, recipe_of

    codes = architectures(recipe_of())
    folder = Path(out) / group / f"seed{seed}"
    try:
        if group == "darts":
            rows = run_darts(seed, folder, codes)
        elif group in OUR_FLAGS:
            rows = run_ours(group, seed, folder, codes)
        elif group.startswith("nni-"):
            rows = run_nni(group, seed, folder, codes)
        elif group in ("random-search", "random-search-long"):
            rows = run_random_search(seed, rs_budget, rs_steps, codes)
            rows[0]["strategy"] = group
        else:
            rows = run_baseline(group, seed, codes)
    except Exception as exc:  # a strategy that does not run on this space is reported, not fatal
        return [{"strategy": name, "seed": seed, "pick": "", "seconds": None, "scores": None,
                 "note": f"did not run: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
                for name in GROUPS[group]]
    return [{**r, "seed": seed} for r in rows]


def read_rows(out: Path) -> list[dict[str, Any]]:
    path = out / "strategies.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["seed"] = int(r["seed"])
        r["seconds"] = float(r["seconds"]) if r["seconds"] else None
        r["scores"] = json.loads(r["scores"]) if r["scores"] else None
    return rows


def append(out: Path, row: dict[str, Any]) -> None:
    path = out / "strategies.csv"
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow({**{k: row.get(k, "") for k in FIELDS},
                    "scores": json.dumps(row["scores"]) if row.get("scores") else "",
                    "seconds": "" if row.get("seconds") is None else round(row["seconds"], 1)})


# -- summary --------------------------------------------------------------------------------------

def evaluate(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per row: the pick's table mean, regret, rank, percentile, and the scores' rank correlation."""
    from scipy.stats import kendalltau, spearmanr

    from clearer_nni.bench import means, pareto_distance, percentile, table

    df = table()
    m = means(df, metric)
    best = float(m.iloc[0])
    out = []
    for r in rows:
        if not r["pick"]:
            out.append({**r, "regret": None})
            continue
        psnr = float(m[r["pick"]])
        others = [float(v) for k, v in m.items() if k != r["pick"]]
        e = {**r, "psnr": psnr, "regret": best - psnr, "rank": 1 + int((m > psnr).sum()),
             "percentile": percentile(psnr, others), "pareto": pareto_distance(df, r["pick"], metric)}
        if r["scores"] and len(r["scores"]) >= 3:
            common = [k for k in r["scores"] if k in m.index]
            xs, ys = [r["scores"][k] for k in common], [float(m[k]) for k in common]
            e["tau"], e["rho"] = float(kendalltau(xs, ys).statistic), float(spearmanr(xs, ys).statistic)
        out.append(e)
    return out


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and v == v]
    return statistics.fmean(values) if values else math.nan


def summarise(rows: list[dict[str, Any]], metric: str) -> tuple[str, list[dict[str, Any]]]:
    from clearer_nni.bench import means, table

    ev = evaluate(rows, metric)
    m = means(table(), metric)
    n = len(m)
    order = [s for names in GROUPS.values() for s in names]
    lines = []
    for name in order:
        mine = [e for e in ev if e["strategy"] == name]
        if not mine:
            continue
        ran = [e for e in mine if e.get("regret") is not None]
        if not ran:
            lines.append([name, len(mine), "-", "-", "-", "-", "-", "-", "-", mine[0].get("note", "")[:90]])
            continue
        top = sum(e["rank"] <= max(1, math.floor(0.1 * n)) for e in ran)
        picks = ", ".join(f"{e['pick']} ({e['rank']})" for e in sorted(ran, key=lambda e: e["seed"]))
        lines.append([name, len(ran), f"{_mean([e['regret'] for e in ran]):.3f}", f"{top}/{len(ran)}",
                      f"{_mean([e['percentile'] for e in ran]):.0f}",
                      f"{_mean([e.get('tau') for e in ran]):.2f}", f"{_mean([e.get('rho') for e in ran]):.2f}",
                      f"{_mean([e['pareto'] for e in ran]):.2f}", f"{_mean([e['seconds'] for e in ran]):.0f}", picks])
    head = ["strategy", "seeds", "mean regret (dB)", f"top 10 % (rank <= {max(1, math.floor(0.1 * n))})",
            "mean percentile", "Kendall tau", "Spearman rho", "below the Pareto front (dB)", "search s",
            "picks (table rank)"]
    expected = statistics.fmean(float(m.iloc[0]) - float(v) for v in m)
    text = (f"Table `{metric}`: {n} architectures, best {m.index[0]} {m.iloc[0]:.3f} dB; a uniform random "
            f"pick's expected regret {expected:.3f} dB.\n\n" + md_table(head, lines))
    return text, ev


def plot(ev: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [s for names in GROUPS.values() for s in names if any(e["strategy"] == s and e.get("regret") is not None
                                                                   for e in ev)]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, name in enumerate(order):
        ys = [e["regret"] for e in ev if e["strategy"] == name and e.get("regret") is not None]
        xs = [i + random.Random(j).uniform(-0.15, 0.15) for j in range(len(ys))]
        ax.scatter(xs, ys, s=18, color="C0" if name.startswith(("darts", "paper", "spos", "gumbel", "fair")) else
                   ("C1" if name.startswith("nni") else "C2"))
        ax.hlines(_mean(ys), i - 0.3, i + 0.3, color="k", lw=1)
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.set_ylabel("regret on BSD68 (dB, table best minus pick)")
    ax.set_title("Search strategies against the ground-truth table (dots: search seeds; bars: means)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--groups", default=",".join(GROUPS), help=f"of {', '.join(GROUPS)}")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--rs-steps", type=int, default=250, help="random search: training steps per architecture")
    p.add_argument("--rs-budget", type=float, default=None,
                   help="random search: seconds per seed [that seed's CLEARER (darts) search time]")
    p.add_argument("--metric", default="bsd68_psnr")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append to docs/RESULTS.md")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    ns = _parser().parse_args(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in ns.seeds.split(",")]
    groups = [g for g in ns.groups.split(",") if g]
    if not ns.summary_only:
        done = {(r["strategy"], r["seed"]) for r in read_rows(out)}
        todo = [(g, s) for g in groups for s in seeds if any((n, s) not in done for n in GROUPS[g])]
        # the random search needs its seed's CLEARER search time: it goes last
        todo.sort(key=lambda gs: gs[0].startswith("random-search"))
        with ProcessPoolExecutor(max_workers=ns.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {}
            waiting = [gs for gs in todo if gs[0].startswith("random-search")]
            for g, s in todo:
                if not g.startswith("random-search"):
                    futures[pool.submit(job, g, s, str(out), 0.0, ns.rs_steps)] = (g, s)

            def submit_random() -> None:
                rows = read_rows(out)
                for g, s in list(waiting):
                    # equal wall-clock: that seed's CLEARER search, or spos-long's for the long random search
                    paced = "spos-long-rank" if g == "random-search-long" else "darts-argmax"
                    times = {r["seed"]: r["seconds"] for r in rows if r["strategy"] == paced and r["seconds"]}
                    budget = ns.rs_budget or times.get(s)
                    if budget is not None or paced.rsplit("-", 1)[0] not in groups and not times:
                        waiting.remove((g, s))
                        futures[pool.submit(job, g, s, str(out), budget or 60.0, ns.rs_steps)] = (g, s)

            submit_random()
            while futures:
                future = next(as_completed(futures))
                g, s = futures.pop(future)
                for row in future.result():
                    append(out, row)
                    print(f"[{time.strftime('%H:%M:%S')}] {row['strategy']} seed {s}: {row['pick'] or row.get('note')} "
                          f"({row['seconds'] or 0:.0f} s)", flush=True)
                submit_random()
    rows = read_rows(out)
    text, ev = summarise(rows, ns.metric)
    print(text)
    image = _results.REPO / "docs" / "img" / "table_strategies.png"
    plot(ev, image)
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    if not ns.no_append:
        append_section("Search strategies against the ground-truth table", text
                       + f"\n\n![regret per strategy](img/{image.name})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
