"""``--strategy spos | gumbel``: single-path super-networks (one candidate per column per step)."""

from __future__ import annotations

import math

import pytest
import torch

from clearer_nni.nas.single_path import PathSampler, SinglePathMixedLayer


def _layer(strategy, tiny_space):
    """The first column of a tiny super-network mutated by ClearerDARTS, counting its candidates' runs."""
    from clearer_nni.archs.space import ClearerSpace
    from clearer_nni.nas.strategy import ClearerDARTS

    supernet = ClearerDARTS(costs={}, max_steps=1, strategy=strategy).mutate_model(ClearerSpace(tiny_space))
    layer = next(m for m in supernet.modules() if isinstance(m, SinglePathMixedLayer))
    calls = dict.fromkeys(layer.names, 0)
    for name in layer.names:
        layer[name].register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    x = [torch.randn(2, c, 8 // 2 ** k, 8 // 2 ** k) for k, c in enumerate(tiny_space.branch_channels(1))]
    return layer, layer._arch_alpha, calls, lambda: sum(b.sum() for b in layer(x))


@pytest.mark.parametrize("strategy", ["spos", "gumbel"])
def test_a_training_step_runs_one_candidate(strategy, tiny_space):
    layer, alpha, calls, run = _layer(strategy, tiny_space)
    layer.train()
    for _ in range(20):
        run().backward()
    assert sum(calls.values()) == 20 and min(calls.values()) > 0  # one each time, both drawn
    assert (alpha.grad is not None and alpha.grad.abs().sum() > 0) == (strategy == "gumbel")  # spos: no α gradient
    layer.eval()
    with torch.no_grad():
        run()
    assert sum(calls.values()) == 22  # validation: the soft mixture of both


def test_darts_mixes_both_and_the_probabilities_stay_soft(tiny_space):
    layer, alpha, calls, run = _layer("darts", tiny_space)
    layer.train()
    run()
    assert set(calls.values()) == {1}
    sampler = PathSampler("gumbel")
    assert torch.allclose(sampler.probs(alpha), torch.softmax(alpha, -1))
    with pytest.raises(ValueError, match="strategy must be one of"):
        PathSampler("enas")


@pytest.mark.parametrize("strategy", ["spos", "gumbel"])
def test_a_single_path_search_records_its_strategy(strategy, tmp_path):
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    r = run_search(resolve_search({"space": "tiny", "steps": 12, "warmup_steps": 2, "log_every": 6, "arch_lr": 0.05,
                                   "strategy": strategy, "out": str(tmp_path / "s"), "progress": False}))
    g = r.genotype
    assert g.metadata["strategy"] == strategy and (tmp_path / "s" / "supernet.pt").is_file()
    arch_steps = [row for row in r.log if math.isfinite(row["arch_loss_res"])]
    assert bool(arch_steps) == (strategy == "gumbel")  # spos has no α step
    assert all(math.isfinite(row["val_psnr"]) for row in r.log)


def test_fair_sampling_trains_every_candidate_of_every_column_once_per_step(tiny_space):
    """FairNAS's strict fairness: in each step's passes each column runs each of its candidates exactly once."""
    from clearer_nni.archs.space import ClearerSpace
    from clearer_nni.nas.strategy import ClearerDARTS

    supernet = ClearerDARTS(costs={}, max_steps=1, strategy="fair").mutate_model(ClearerSpace(tiny_space))
    layers = [m for m in supernet.modules() if isinstance(m, SinglePathMixedLayer)]
    sampler = layers[0]._softmax
    runs: list[list[str]] = []
    for layer in layers:
        for name in layer.names:
            layer[name].register_forward_hook(lambda *_, name=name: runs[-1].append(name))
    supernet.train()
    for _step in range(6):
        paths = []
        for k in range(2):
            sampler.fair_pass(k)
            runs.append([])
            supernet(torch.randn(2, 1, 16, 16))
            paths.append(runs[-1])
        sampler.fair_pass(None)
        assert all(len(p) == len(layers) for p in paths)  # one candidate per column per pass
        assert all({a, b} == {"parallel", "fusion"} for a, b in zip(*paths))  # the two passes complement
    firsts = {p[0] for p in runs[::2]}
    assert firsts == {"parallel", "fusion"}  # the order is drawn afresh


def test_a_fair_search_ranks_its_super_network(tmp_path):
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    cfg = resolve_search({"space": "tiny", "steps": 8, "warmup_steps": 2, "log_every": 4, "strategy": "fair",
                          "out": str(tmp_path / "s"), "progress": False})
    assert cfg.select == "rank"
    g = run_search(cfg).genotype
    assert g.metadata["strategy"] == "fair" and g.metadata["select"] == "rank"
    assert (tmp_path / "s" / "ranking" / "ranking.csv").is_file()
