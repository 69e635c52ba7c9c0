"""Benchmark 1, search overhead: one ClearerDARTS step (Lightning + NNI) against the same step in plain PyTorch.

The ClearerDARTS step (architecture step with L_Arch and L_Comp, then the weight step) runs through
:func:`clearer_nni.training.fit.fit_supernet`. After each of its steps, a callback runs the plain-PyTorch
reference step on a second copy of the same super-network (same weights at the start, same fixed
batches): α forward/backward(inputs=α) + Adam, then weights forward/backward + clip + SGD + cosine,
no Lightning in the path. So the two alternate A B A B in one process, and the ratio of each pair is
taken (the machine may be shared: paired ratios cancel slow phases). The Lightning time of a step runs
from the end of the previous plain step to the end of this step, so it includes the loop's overhead
and fetching the (in-memory) batch.

Variants: ``same`` (both fp32 NCHW: the overhead of Lightning and NNI), ``channels_last`` and
``compile`` (the fast path against the plain NCHW step), ``bf16`` (bf16-mixed autocast), ``gumbel`` and
``spos`` (``--strategy``: one candidate per column; ratio / ``same``'s ratio = their step / DARTS's).

    python benchmarks/search_overhead.py --setting tiny
    python benchmarks/search_overhead.py --setting paper --warmup 2 --steps 5
    python benchmarks/search_overhead.py --setting paper --device cuda   # both sides on the GPU, synchronised
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import _results  # noqa: F401 - puts the repository on sys.path
import torch
import torch.nn.functional as F

from _results import append_section, median_spread, table

#: Lightning-side settings of each variant (the plain reference is always fp32 NCHW eager).
VARIANTS: dict[str, dict[str, Any]] = {
    "same": {},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "channels_last+compile": {"channels_last": True, "compile": True},
    "bf16": {"precision": "bf16-mixed"},
    # single-path super-networks (docs/SEARCH.md) against the same plain two-candidate DARTS step: their
    # ratio over ``same``'s is the single-path step's cost relative to DARTS's
    "gumbel": {"strategy": "gumbel"},
    "spos": {"strategy": "spos"},
}
#: space file, batch, patch of each setting (paper: SPEC section 3).
SETTINGS = {"tiny": ("tiny", 4, 32), "demo": ("demo", 8, 48), "paper": ("denoise", 32, 64)}
TARGETS = {("paper", "same"): 1.05, ("tiny", "same"): 1.10, ("paper", "channels_last"): 0.80}


@dataclass
class Timings:
    """Seconds per step of each side, in the order they ran."""

    lightning: list[float] = field(default_factory=list)
    plain: list[float] = field(default_factory=list)


class PlainStep:
    """The reference: one bilevel step of the same super-network written in plain PyTorch."""

    def __init__(self, supernet: torch.nn.Module, oneshot: Any, train: tuple, val: tuple, steps: int) -> None:
        from clearer_nni.models.restoration import SEARCH_WEIGHTS as o

        self.net, self.train, self.val = supernet, train, val
        self.oneshot = oneshot  # only for its regularizers(), the same code as the real step's
        self.alphas = oneshot.arch_parameters()
        ids = {id(a) for a in self.alphas}
        self.weights = [p for p in supernet.parameters() if id(p) not in ids]
        self.opt_w = torch.optim.SGD(self.weights, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt_w, T_max=steps, eta_min=o.lr_min)
        self.opt_a = torch.optim.Adam(self.alphas, lr=oneshot.arc_learning_rate, betas=(0.5, 0.999),
                                      weight_decay=1e-3)

    def __call__(self) -> None:
        m = self.oneshot
        self.opt_a.zero_grad()
        loss_arch, loss_comp = m.regularizers()
        loss = F.mse_loss(self.net(self.val[0]), self.val[1]) + m.lambda_arch * loss_arch + m.lambda_comp * loss_comp
        loss.backward(inputs=self.alphas)
        self.opt_a.step()
        for a in self.alphas:
            a.requires_grad_(False)
        self.opt_w.zero_grad()
        F.mse_loss(self.net(self.train[0]), self.train[1]).backward()
        torch.nn.utils.clip_grad_norm_(self.weights, m.gradient_clip_val)
        self.opt_w.step()
        self.sched.step()
        for a in self.alphas:
            a.requires_grad_(True)


def _fixed_batch(space_cfg: Any, data: str, split: str, batch: int, patch: int, seed: int) -> tuple:
    from clearer_nni.data import GaussianNoise, load_dataset
    from clearer_nni.data.patches import PatchDataset
    from clearer_nni.data import fixed_batches

    images = load_dataset(data, split, channels=space_cfg.in_channels)
    return fixed_batches(PatchDataset(images, patch, GaussianNoise(50.0), length=batch, seed=seed), batch)[0]


class _Repeat(torch.utils.data.Dataset):
    """The same batch's items, over and over (a step's cost does not depend on pixel values)."""

    def __init__(self, batch: tuple, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple:
        j = i % len(self.batch[0])
        return self.batch[0][j], self.batch[1][j]


def run_variant(setting: str, variant: str, warmup: int, steps: int, data: str = "skimage",
                batch: int | None = None, patch: int | None = None, device: str = "cpu") -> Timings:
    """Time ``warmup + steps`` interleaved pairs of steps; return the measured ones.

    ``batch`` and ``patch`` override the setting's. On ``device`` cuda both sides run on the GPU, and each
    timing ends with a synchronisation (kernels run asynchronously).
    """
    import pytorch_lightning as pl
    from nni.nas.evaluator.pytorch import DataLoader

    from clearer_nni.archs import ClearerSpace, load_space_file
    from clearer_nni.models.restoration import SEARCH_WEIGHTS, RestorationModule
    from clearer_nni.nas import ClearerDARTS, candidate_costs, normalise_costs
    from clearer_nni.runtime import lightning_accelerator, resolve_device
    from clearer_nni.training.fit import fit_supernet

    dev = resolve_device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    space_name, default_batch, default_patch = SETTINGS[setting]
    batch, patch = batch or default_batch, patch or default_patch
    space_cfg = load_space_file(space_name)
    total = warmup + steps
    train, val = (_fixed_batch(space_cfg, data, s, batch, patch, seed) for s, seed in (("train", 0), ("val", 1)))
    costs = normalise_costs(candidate_costs(space_cfg, "params", patch))
    # Both regularisers on (λ2 > 0), no warm-up: every step is a full bilevel step.
    kw = dict(costs=costs, lambda_arch=0.01, lambda_comp=0.01, warmup_steps=0, max_steps=total)
    timings = Timings()
    fit_kw = {k: v for k, v in VARIANTS[variant].items() if k != "strategy"}
    strategy_kw = {**kw, "strategy": VARIANTS[variant].get("strategy", "darts")}

    class Interleave(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
            # The reference gets its own super-network (plain NCHW eager) with the same weights and α.
            strategy = ClearerDARTS(**kw)
            self.net = strategy.mutate_model(ClearerSpace(space_cfg)).to(dev)
            self.net.load_state_dict(pl_module.training_module.model.state_dict())
            oneshot = strategy.configure_oneshot_module(RestorationModule(SEARCH_WEIGHTS, total))
            oneshot.set_model(self.net)
            on = lambda b: tuple(x.to(dev) for x in b)  # noqa: E731
            self.plain = PlainStep(self.net, oneshot, on(train), on(val), total)
            sync()
            self.mark = time.perf_counter()

        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            sync()
            t = time.perf_counter()
            timings.lightning.append(t - self.mark)
            self.plain()
            sync()
            self.mark = time.perf_counter()
            timings.plain.append(self.mark - t)

    torch.manual_seed(0)
    loader_kw = dict(batch_size=batch, shuffle=False, drop_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_supernet(ClearerSpace(space_cfg), ClearerDARTS(**strategy_kw), RestorationModule(SEARCH_WEIGHTS, total),
                     DataLoader(_Repeat(train, batch * total), **loader_kw),
                     DataLoader(_Repeat(val, batch * total), **loader_kw),
                     callbacks=[Interleave()], progress=False, accelerator=lightning_accelerator(device),
                     **fit_kw)
    return Timings(timings.lightning[warmup:], timings.plain[warmup:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setting", choices=list(SETTINGS), default="tiny",
                   help="tiny (tests' space), demo, or paper (default space, batch 32, 64x64)")
    p.add_argument("--variants", default="same,channels_last", help=f"comma-separated, of {list(VARIANTS)}")
    p.add_argument("--warmup", type=int, help="untimed pairs first [tiny 10, paper 2]")
    p.add_argument("--steps", type=int, help="timed pairs [tiny 40, paper 5]")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: stable pairs on a shared machine; 0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (both sides on it) [%(default)s]")
    p.add_argument("--quick", action="store_true", help="tiny setting, few steps (under a minute)")
    p.add_argument("--machine", default=_results.DEFAULT_MACHINE, help="named in docs/RESULTS.md")
    p.add_argument("--no-append", action="store_true", help="print only, do not write docs/RESULTS.md")
    args = p.parse_args(argv)
    from clearer_nni.runtime import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.setting, args.warmup, args.steps = "tiny", args.warmup or 3, args.steps or 10
    big = args.setting == "paper"
    warmup = args.warmup if args.warmup is not None else (2 if big else 10)
    steps = args.steps if args.steps is not None else (5 if big else 40)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")

    rows = []
    for v in variants:
        t = run_variant(args.setting, v, warmup, steps, device=args.device)
        ratios = [a / b for a, b in zip(t.lightning, t.plain)]
        r, rmin, rmax = median_spread(ratios)
        target = TARGETS.get((args.setting, v))
        verdict = "-" if target is None else f"<= {target}: {'met' if r <= target else 'NOT met'}"
        rows.append([v, median_spread(t.lightning)[0], median_spread(t.plain)[0], r, f"{rmin:.3f}-{rmax:.3f}", verdict])
        print(f"{v}: ratio {r:.3f} (pairs: {', '.join(f'{x:.3f}' for x in ratios)})", flush=True)
    ratio_of = {row[0]: row[3] for row in rows}
    single = [f"{v} step / DARTS step: {ratio_of[v] / ratio_of['same']:.2f}" for v in ("gumbel", "spos")
              if v in ratio_of and "same" in ratio_of]
    _, batch, patch = SETTINGS[args.setting]
    body = (f"Setting `{args.setting}` (space `{SETTINGS[args.setting][0]}`, batch {batch}, {patch}x{patch}); "
            f"{warmup} untimed + {steps} timed interleaved pairs per variant; torch threads "
            f"{torch.get_num_threads()}; device {args.device}. Ratio = ClearerDARTS step (Lightning + NNI, the variant's settings) / "
            "plain-PyTorch fp32 NCHW step, median of paired ratios (min-max beside it).\n\n"
            + table(["variant", "ClearerDARTS s/step", "plain s/step", "ratio (median)", "ratio min-max", "target"],
                    rows)
            + (f"\n\nSingle-path strategies (each ratio over `same`'s): {'; '.join(single)}." if single else ""))
    print("\n" + body)
    if not args.no_append:
        append_section(f"Search overhead, {args.setting} setting", body, machine=args.machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
