"""Benchmark 2, quality at equal budget: does the search find better networks than chance and than a plain CNN?

Per seed: search the space (BSD400 minus every 5th image for the weights, that held-out fifth for α:
disjoint), then train from scratch, with the same steps, batch, patches, optimiser and seed,

- ``searched``: the searched genotype (``searched-alr<X>`` with ``--arch-lr X``, a variant that
  moves α faster than the paper's 3e-4 so that a short search can separate the candidates);
- ``random-1..3``: three random genotypes of the same space (drawn once, the same in every seed);
- ``all-parallel`` and ``all-fusion``;
- ``dncnn-style``: a DnCNN-style plain CNN (17 layers, residual) with about the searched network's
  parameter count (:func:`clearer_nni.archs.plain_cnn_for_params`), trained with the same lr as the
  others and, as ``dncnn-style-lr1e-3``, with DnCNN's own 1e-3 (the comparison takes the better one);

every one through :func:`clearer_nni.retrain.fit_network` (the retraining's Lightning loop), keeping
the state with the best PSNR on the held-out fifth; then score each on Set12 and BSD68, standard
protocol (float noise, seed 0 per image, whole images, 8-bit output), σ = 50. ``--bm3d`` adds BM3D
(the ``bm3d`` package: non-commercial licence, so an optional extra, ``pip install bm3d``).

Rows are written as they finish to ``<out>/seed<N>.csv``; an interrupted run, started again with the
same ``--out``, skips what is done, and seeds can run in separate processes (``--seeds 0`` and
``--seeds 1`` beside each other) before one ``--summary-only`` run writes the table.

    python benchmarks/quality.py                      # CPU budget, seeds 0 and 1 (about 25 min a seed on one core)
    python benchmarks/quality.py --quick --no-append  # tiny space, a smoke run (about 2 min)
    python benchmarks/quality.py --paper              # the paper's budget: a GPU job
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fcntl
import logging
import random
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import _results  # noqa: F401 - puts the repository on sys.path
import torch

from _results import append_section, table

#: Held-out fraction of BSD400 for α and model selection: every HOLDOUT-th image (by name).
HOLDOUT = 5
SPLIT_NAME = "bsd400-holdout"
NETWORKS = ["searched", "random-1", "random-2", "random-3", "all-parallel", "all-fusion", "dncnn-style",
            "dncnn-style-lr1e-3"]
#: DnCNN's own learning rate (Zhang et al. 2017: Adam 1e-3): the retraining's 0.01 can break a plain 17-layer CNN.
DNCNN_LR = 1e-3
TEST_SETS = ("set12", "bsd68")
FIELDS = ["seed", "network", "params", "train_seconds", "best_val_psnr", "best_step", "genotype",
          "set12_psnr", "set12_ssim", "bsd68_psnr", "bsd68_ssim"]
TARGETS = {"random": 0.2, "dncnn-style": 0.3}


@dataclasses.dataclass
class Budget:
    """What every network gets (the search has its own steps)."""

    space: str = "demo"
    search_steps: int = 600
    warmup_steps: int = 100
    search_batch: int = 8
    steps: int = 500
    batch_size: int = 16
    patch_size: int = 48
    lr: float = 0.01
    val_every: int = 50
    val_patches: int = 64
    sigma: float = 50.0
    arch_lr: float | None = None  # None: the search's default (the paper's 3e-4)

    @property
    def searched(self) -> str:
        """The name of the searched network's rows."""
        return "searched" if self.arch_lr is None else f"searched-alr{self.arch_lr:g}"


BUDGETS = {
    "cpu": Budget(),
    "quick": Budget(space="tiny", search_steps=40, warmup_steps=10, search_batch=4, steps=30, batch_size=4,
                    patch_size=32, val_every=10, val_patches=8),
    # SPEC sections 3 and 4: 10k search steps, 100k retraining steps, batch 32 of 64x64
    "paper": Budget(space="denoise", search_steps=10_000, warmup_steps=1_000, search_batch=32, steps=100_000,
                    batch_size=32, patch_size=64, val_every=1000, val_patches=64),
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

def fixed_genotypes(space: Any) -> dict[str, Any]:
    """The non-searched CLEARER genotypes: three random draws (fixed seeds), all-parallel, all-fusion."""
    from clearer_nni.archs.space import CANDIDATES
    from clearer_nni.nas.genotype import Genotype

    out = {}
    for k in (1, 2, 3):
        rng = random.Random(1000 + k)
        out[f"random-{k}"] = Genotype(space, {label: rng.choice(list(CANDIDATES)) for label in space.labels})
    for name in ("parallel", "fusion"):
        out[f"all-{name}"] = Genotype(space, {label: name for label in space.labels})
    return out


# -- the stages -----------------------------------------------------------------------------------

def search(budget: Budget, seed: int, out: Path, data_root: str | None) -> Any:
    """Run the search of ``seed`` into ``out/search-seed<N>`` (reused when already there); its genotype."""
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    folder = out / (f"search-seed{seed}" if budget.arch_lr is None else f"search-alr{budget.arch_lr:g}-seed{seed}")
    if (folder / "genotype.json").is_file():
        return Genotype.load(folder / "genotype.json")
    settings = dict(space=budget.space, data=SPLIT_NAME, data_root=data_root, sigma=budget.sigma,
                    steps=budget.search_steps, warmup_steps=budget.warmup_steps, batch_size=budget.search_batch,
                    patch_size=budget.patch_size, seed=seed, val_patches=budget.val_patches, out=str(folder),
                    overwrite=True, progress=False, save_supernet=False, checkpoint_every=0)
    if budget.arch_lr is not None:
        settings["arch_lr"] = budget.arch_lr
    # the space's recipe, then these settings (clearer_nni.config decides the precedence)
    return run_search(resolve_search(settings)).genotype


def train(network: torch.nn.Module, budget: Budget, seed: int, data: tuple[Any, Any],
          lr: float | None = None) -> dict[str, Any]:
    """Train ``network`` from scratch with the budget on ``data`` (the held-out split's train and val
    sets); load its best validation state; the facts."""
    from clearer_nni.data import GaussianNoise, make_loader
    from clearer_nni.data.patches import PatchDataset
    from clearer_nni.models.restoration import RETRAIN, RestorationModule
    from clearer_nni.config import RetrainConfig
    from clearer_nni.training.fit import fit_network
    from clearer_nni.training.validation import Validator, validation_batches
    from clearer_nni.runtime import lightning_accelerator

    cfg = RetrainConfig(genotype="-", steps=budget.steps, batch_size=budget.batch_size,
                        patch_size=budget.patch_size, lr=lr or budget.lr, seed=seed, val_every=budget.val_every,
                        val_patches=budget.val_patches, progress=False)
    noise = GaussianNoise(budget.sigma)
    train_set, val_set = data
    val_batches, _ = validation_batches(val_set, cfg, noise)
    loader = make_loader(PatchDataset(train_set, cfg.patch_size, noise, length=cfg.steps * cfg.batch_size,
                                      seed=seed), cfg.batch_size)
    module = RestorationModule(dataclasses.replace(RETRAIN, lr=cfg.lr), cfg.steps)
    module.set_model(network)
    validator = Validator(val_batches, cfg.val_every, cfg.steps)
    start = time.time()
    fit_network(cfg, lightning_accelerator("auto"), module, loader, [validator])
    seconds = time.time() - start
    network.load_state_dict(validator.best_state)
    return {"train_seconds": round(seconds, 1), "best_val_psnr": round(validator.best_psnr, 4),
            "best_step": validator.best_step}


def score(restore: Callable[[Any], Any] | torch.nn.Module, pairs: dict[str, list]) -> dict[str, float]:
    """Mean PSNR and SSIM on each test set (a network, or a function of the degraded array)."""
    from clearer_nni.evaluate import evaluate_model
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

def read_rows(out: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(out.glob("seed*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    return rows


def append_row(out: Path, row: dict[str, Any]) -> None:
    path = out / f"seed{row['seed']}.csv"
    with path.open("a", newline="", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # processes sharing a seed (different --networks) append safely
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if f.tell() == 0:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in FIELDS})
    print(f"seed {row['seed']} {row['network']}: " + ", ".join(f"{k} {row[k]}" for k in FIELDS[2:] if k in row),
          flush=True)


def run_seed(budget: Budget, seed: int, out: Path, data_root: str | None, pairs: dict[str, list],
             networks: Sequence[str]) -> None:
    from clearer_nni.archs import count_parameters, plain_cnn_for_params
    from clearer_nni.archs.space import load_space_file

    done = {r["network"] for r in read_rows(out) if int(r["seed"]) == seed}
    todo = [budget.searched if n == "searched" else n for n in networks]
    todo = [n for n in todo if n not in done]
    if not todo:
        return
    from clearer_nni.data import load_dataset

    space = load_space_file(budget.space)
    searched = search(budget, seed, out, data_root)
    data = (load_dataset(SPLIT_NAME, "train", root=data_root), load_dataset(SPLIT_NAME, "val", root=data_root))
    genotypes = {budget.searched: searched, **fixed_genotypes(space)}
    target_params = count_parameters(searched.build())
    for name in todo:
        torch.manual_seed(seed)  # the same initialisation stream for every network
        lr = None
        if name.startswith("dncnn-style"):
            network = plain_cnn_for_params(target_params, 17, space.in_channels, space.out_channels)
            code, lr = f"depth 17, width {network.width}", DNCNN_LR if name.endswith("lr1e-3") else None
        else:
            network, code = genotypes[name].build(), genotypes[name].code()
        row = {"seed": seed, "network": name, "params": count_parameters(network), "genotype": code}
        row.update(train(network, budget, seed, data, lr))
        row.update(score(network.eval(), pairs))
        append_row(out, row)


# -- the summary ----------------------------------------------------------------------------------

def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {sd:.2f}"


def summarise(rows: list[dict[str, Any]], budget: Budget, bm3d_row: dict[str, Any] | None,
              out: Path) -> tuple[str, dict]:
    """The Markdown body: one row per network (mean ± sd over seeds), the targets, per-seed facts."""
    seeds = sorted({int(r["seed"]) for r in rows})
    by = {(int(r["seed"]), r["network"]): r for r in rows}
    names = network_names(rows)
    lines = []
    for name in names:
        got = [by[(s, name)] for s in seeds if (s, name) in by]
        col = lambda key: [float(r[key]) for r in got]  # noqa: E731
        lines.append([name, f"{statistics.fmean(col('params')) / 1e6:.3f}", _mean_sd(col("set12_psnr")),
                      _mean_sd(col("bsd68_psnr")), f"{statistics.fmean(col('bsd68_ssim')):.4f}",
                      f"{statistics.fmean(col('train_seconds')):.0f}", len(got)])
    if bm3d_row:
        lines.append(["BM3D (no training)", "-", f"{bm3d_row['set12_psnr']:.2f}", f"{bm3d_row['bsd68_psnr']:.2f}",
                      f"{bm3d_row['bsd68_ssim']:.4f}", "-", "-"])
    body = table(["network", "params (M)", "Set12 PSNR (dB)", "BSD68 PSNR (dB)", "BSD68 SSIM", "train s",
                  "seeds"], lines)

    # targets, per seed, on BSD68 (and Set12 beside it): searched - best random, searched - DnCNN-style
    gaps: dict[tuple[str, str, str], list[float]] = {}
    for mine_name in (n for n in names if n.startswith("searched")):
        for test in TEST_SETS:
            for s in seeds:
                if (s, mine_name) not in by:
                    continue
                mine = float(by[(s, mine_name)][f"{test}_psnr"])
                randoms = [float(by[(s, f"random-{k}")][f"{test}_psnr"]) for k in (1, 2, 3)
                           if (s, f"random-{k}") in by]
                if len(randoms) == 3:
                    gaps.setdefault((mine_name, "random", test), []).append(mine - max(randoms))
                plain = [float(by[(s, n)][f"{test}_psnr"]) for n in ("dncnn-style", "dncnn-style-lr1e-3")
                         if (s, n) in by]
                if plain:
                    gaps.setdefault((mine_name, "dncnn-style", test), []).append(mine - max(plain))
    target_lines = []
    for (mine_name, key, test), values in gaps.items():
        mean = statistics.fmean(values)
        label = f"{mine_name} - " + ("best of 3 random" if key == "random" else "best DnCNN-style")
        target_lines.append([label, test, _mean_sd(values), " ".join(f"{v:+.2f}" for v in values),
                             f">= +{TARGETS[key]}: {'met' if mean >= TARGETS[key] else 'NOT met'}"])
    body += "\n\nTargets (per seed: the searched network against the best of the 3 random ones on that test set, " \
            "and against the better of the two DnCNN-style runs):\n\n" + table(
                ["comparison", "test set", "gap dB (mean ± sd)", "per seed", "target"], target_lines)
    codes = [f"seed {s}: {n} {by[(s, n)]['genotype']}" for n in names if n.startswith("searched")
             for s in seeds if (s, n) in by]
    fixed: dict[str, list[str]] = {}
    for (_, n), r in sorted(by.items()):
        if n.startswith(("random", "all-", "dncnn")) and r["genotype"] not in fixed.setdefault(n, []):
            fixed[n].append(r["genotype"])  # DnCNN-style: the width follows each seed's searched network
    body += "\n\nGenotypes (P = parallel, F = fusion, cells separated by |): " + "; ".join(codes) + "; " + \
        "; ".join(f"{n} {' / '.join(c)}" for n, c in sorted(fixed.items())) + "."
    body += "\n\n" + search_table(out)
    return body, gaps


def search_table(out: Path) -> str:
    """How far each search moved α: softmax(α) of the fusion candidate per column, |p - 0.5| (0 = undecided)."""
    import json

    lines = []
    for path in sorted(out.glob("search-*/genotype.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        far = [abs(p["fusion"] - 0.5) for p in doc["alpha"].values()]
        meta = doc["metadata"]
        lines.append([path.parent.name, f"{max(far):.3f}", f"{statistics.fmean(far):.3f}",
                      f"{meta['val_psnr_supernet']:.2f}", f"{meta['val_psnr_derived']:.2f}",
                      f"{meta['search_seconds']:.0f}"])
    return ("Searches: how far α moved (abs(p - 0.5) of each column's softmax, 0 = undecided, 0.5 = certain), and the "
            "validation PSNR of the super-network and of the derived network with inherited weights "
            "(BatchNorm re-estimated):\n\n" + table(["search", "max abs(p - 0.5)", "mean abs(p - 0.5)",
                                                         "super-net dB", "derived dB", "seconds"], lines))


def network_names(rows: list[dict[str, Any]]) -> list[str]:
    """The networks present, searched variants first, then in NETWORKS order."""
    present = {r["network"] for r in rows}
    return sorted(n for n in present if n.startswith("searched")) + [n for n in NETWORKS[1:] if n in present]


def plot(rows: list[dict[str, Any]], path: Path, bm3d_row: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = network_names(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, test in zip(axes, TEST_SETS):
        every = [float(r[f"{test}_psnr"]) for r in rows]
        # a run that failed to train (far below the median) is drawn at the bottom edge with its value
        floor = statistics.median(every) - 2.0
        for i, name in enumerate(names):
            values = [float(r[f"{test}_psnr"]) for r in rows if r["network"] == name]
            color = "C3" if name.startswith("searched") else "C0"
            ok = [v for v in values if v >= floor]
            ax.scatter([i] * len(ok), ok, color=color, zorder=3)
            for v in (v for v in values if v < floor):
                ax.scatter([i], [floor + 0.1], marker="v", color=color, zorder=3)
                ax.annotate(f"{v:.1f}", (i, floor + 0.1), textcoords="offset points", xytext=(6, -3), fontsize=7)
            if ok:
                ax.hlines(statistics.fmean(ok), i - 0.3, i + 0.3, color="k")
        ax.set_ylim(bottom=floor)
        if bm3d_row:
            # as text: far above the trained networks at a CPU budget, a line would flatten their spread
            ax.text(0.99, 0.98, f"BM3D (no training): {bm3d_row[f'{test}_psnr']:.2f} dB", transform=ax.transAxes,
                    ha="right", va="top", fontsize=8, color="C2")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set(ylabel="PSNR (dB)", title=f"{test.upper() if test == 'bsd68' else 'Set12'}, σ = 50")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Quality at equal budget (dots: seeds; bars: their mean; ▼: a run that failed to train, "
                 "its PSNR beside it)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds [%(default)s]")
    p.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated subset [all]")
    p.add_argument("--quick", action="store_true", help="tiny space, few steps: a smoke run")
    p.add_argument("--paper", action="store_true", help="the paper's budget (default space, 10k + 100k steps): GPU")
    p.add_argument("--search-steps", type=int, help="override the budget's search steps")
    p.add_argument("--steps", type=int, help="override the budget's training steps per network")
    p.add_argument("--arch-lr", type=float, help="α's Adam learning rate in the search [the paper's 3e-4]; "
                   "rows named searched-alr<X>")
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
    ns = _parser().parse_args(argv)
    from clearer_nni.data import load_dataset
    from clearer_nni.evaluate import protocol_pairs

    torch.set_num_threads(ns.threads)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "GPU available" lines per network
    budget = BUDGETS["paper" if ns.paper else "quick" if ns.quick else "cpu"]
    budget = dataclasses.replace(budget, **{k: v for k, v in (("search_steps", ns.search_steps), ("steps", ns.steps),
                                                                        ("arch_lr", ns.arch_lr))
                                            if v is not None})
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()]
    networks = [n.strip() for n in ns.networks.split(",") if n.strip()]
    unknown = sorted(set(networks) - set(NETWORKS))
    if unknown:
        raise SystemExit(f"error: unknown network(s) {unknown}; known: {NETWORKS}")
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    register_holdout_split()
    pairs = {name: protocol_pairs(load_dataset(name, "test", root=ns.data_root, max_images=ns.test_images),
                                  "standard", budget.sigma) for name in TEST_SETS}
    start = time.time()
    if not ns.summary_only:
        for seed in seeds:
            run_seed(budget, seed, out, ns.data_root, pairs, networks)
    bm3d_row = None
    if ns.bm3d:
        bm3d_file = out / "bm3d.csv"
        if bm3d_file.is_file():
            bm3d_row = {k: float(v) for k, v in next(csv.DictReader(bm3d_file.open())).items()}
        else:
            bm3d_row = score(bm3d_restore(budget.sigma), pairs)
            with bm3d_file.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(bm3d_row))
                writer.writeheader()
                writer.writerow(bm3d_row)
    rows = read_rows(out)
    if not rows:
        raise SystemExit(f"error: no rows in {out}")
    body, _ = summarise(rows, budget, bm3d_row, out)
    img = _results.REPO / "docs" / "img" / "quality-equal-budget.png" if not ns.no_append else out / "quality.png"
    plot(rows, img, bm3d_row)
    n_img = {k: len(v) for k, v in pairs.items()}
    head = (f"Space `{budget.space}`, σ = {budget.sigma:g}. Search: {budget.search_steps} steps (warm-up "
            f"{budget.warmup_steps}), batch {budget.search_batch}, {budget.patch_size}x{budget.patch_size}; weights "
            f"on BSD400 minus every {HOLDOUT}th image (320), α on those {400 // HOLDOUT} (disjoint). Every network: "
            f"trained from scratch for {budget.steps} steps, batch {budget.batch_size}, "
            f"{budget.patch_size}x{budget.patch_size}, Adam lr {budget.lr} (`dncnn-style-lr1e-3`: {DNCNN_LR:g}) cosine "
            f"to 0, clip 5, same seed and "
            f"patches; best state by PSNR on {budget.val_patches} patches of the held-out {400 // HOLDOUT} "
            f"(every {budget.val_every} steps). Test: Set12 ({n_img['set12']}) and BSD68 ({n_img['bsd68']}) images, "
            f"standard protocol (float noise, seed 0 per image, whole image, 8-bit output). Mean ± sd over seeds "
            f"{sorted({int(r['seed']) for r in rows})}. Plot: `{img.relative_to(_results.REPO) if not ns.no_append else img}`."
            f" This run: {(time.time() - start) / 60:.1f} min.\n\n")
    print(head + body)
    if not ns.no_append:
        append_section("Quality at equal budget", head + body, machine=ns.machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
