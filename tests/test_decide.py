"""A search that decides (issue 10): schedules, perturbation selection, decidedness, the fine-tune estimate."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from clearer_nni.archs import SpaceConfig
from clearer_nni.data import GaussianNoise, load_dataset
from clearer_nni.data.patches import PatchDataset, fixed_batches
from clearer_nni.nas import Genotype
from clearer_nni.nas.estimate import derived_network, finetune_estimate, input_psnr
from clearer_nni.nas.schedules import PAPER_ALPHA_STEPS, effective_arch_lr, lambda_arch_at, temperature_at
from clearer_nni.nas.search_logger import SearchLogger
from clearer_nni.nas.selection import perturbation_select, select_architecture
from clearer_nni.config import SearchConfig
from test_nas import _search


@pytest.fixture(scope="module")
def patches():
    """Real (skimage) patches, σ = 50: training batches and fixed validation batches."""
    noise = GaussianNoise(50)
    train = load_dataset("skimage", "train")
    val = load_dataset("skimage", "val")
    return (fixed_batches(PatchDataset(train, 16, noise, length=8 * 60, seed=0), 8),
            fixed_batches(PatchDataset(val, 16, noise, length=16, seed=1, augment=False), 8))


def test_paper_recipe_is_the_default_and_scaled_lr_is_exact_at_the_papers_budget():
    cfg = SearchConfig()
    assert (cfg.arch_lr, cfg.arch_lr_schedule, cfg.anneal_fraction, cfg.lambda_arch_schedule, cfg.select,
            cfg.finetune_steps) == (3e-4, "fixed", 0.0, "constant", "argmax", 0)
    assert effective_arch_lr(3e-4, "scaled", PAPER_ALPHA_STEPS) == 3e-4
    assert effective_arch_lr(3e-4, "scaled", 250) == pytest.approx(0.0108)
    assert effective_arch_lr(3e-4, "fixed", 250) == 3e-4
    with pytest.raises(ValueError, match="arch_lr_schedule"):
        effective_arch_lr(3e-4, "cosine", 250)


def test_temperature_schedule_reaches_its_target_at_the_last_step():
    taus = [temperature_at(s, 100, 0.3, 0.01) for s in range(100)]
    assert taus[:70] == [1.0] * 70  # the first 70 %: the paper's softmax
    assert taus[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    assert [temperature_at(s, 100, 0.0, 0.01) for s in (0, 99)] == [1.0, 1.0]
    with pytest.raises(ValueError):
        temperature_at(0, 100, 0.5, 0.0)


def test_lambda_schedule_ramps_from_zero_to_its_value():
    assert lambda_arch_at(0.1, "constant", 0, 10) == 0.1
    assert [lambda_arch_at(0.1, "linear", s, 11) for s in (0, 5, 10)] == pytest.approx([0.0, 0.05, 0.1])


def test_annealed_search_ends_at_the_target_temperature_with_one_hot_mixing(tiny_space):
    oneshot = _search(tiny_space, steps=8, warmup=2, anneal_fraction=0.5, temperature_min=0.001,
                      arc_learning_rate=0.05)
    assert oneshot.temperature == pytest.approx(0.001)
    assert oneshot.last_record["temperature"] == pytest.approx(0.001)
    for p in oneshot.column_probs():  # the mixture the weights saw last is (nearly) the derived network
        assert float(p.detach().max()) > 0.99
    # the genotype's α is read at temperature 1: the logits' own confidence, not the annealing's
    assert all(max(p.values()) < 0.99 for p in oneshot.logit_probs().values())


def test_decided_columns_count_margins_and_near_tie_warning():
    space = SpaceConfig(channels=(4, 8, 16), columns=(2, 2))
    alpha = {"cell1.col1": {"parallel": 0.95, "fusion": 0.05}, "cell1.col2": {"parallel": 0.08, "fusion": 0.92},
             "cell2.col1": {"parallel": 0.52, "fusion": 0.48}, "cell2.col2": {"parallel": 0.7, "fusion": 0.3}}
    g = Genotype(space, {k: max(v, key=v.get) for k, v in alpha.items()}, alpha)
    d = g.decidedness()
    assert (d.decided, d.total) == (2, 4)
    assert d.margins["cell1.col1"] == pytest.approx(0.9) and d.margins["cell2.col1"] == pytest.approx(0.04)
    assert d.ties == ["cell2.col1"]
    assert d.line().startswith("2 of 4 columns decided (p >= 0.9)")
    assert "search longer" in d.warning()
    decided = Genotype(space, g.choices, {k: alpha["cell1.col1"] for k in alpha}).decidedness()
    assert decided.decided == 4 and decided.warning() is None


def _sabotage(module: torch.nn.Module) -> None:
    """Break a candidate: its outputs drown in loud noise, which the skip paths carry to the output."""
    module.register_forward_hook(lambda _m, _inputs, out: [t + 1e4 * torch.randn_like(t) for t in out])


def test_perturbation_selection_finds_the_candidate_the_network_needs(tiny_space, patches):
    train, monitor = patches
    # with the global residual the barely trained network is close to the identity (about the input's
    # PSNR) wherever no broken candidate is mixed in
    oneshot = _search(dataclasses.replace(tiny_space, global_residual=True), steps=4)
    columns = {label: m for label, m, _ in oneshot.mixed_columns()}
    # cell1.col2: α favours parallel, but parallel is broken (one broken column: its noise would drown
    # every other column's scores too)
    broken = {"cell1.col2": "parallel"}
    with torch.no_grad():
        for label, name in broken.items():
            _sabotage(columns[label][name])
            a = columns[label]._arch_alpha
            a.copy_(torch.tensor([1.0, -1.0] if list(columns[label].names).index(name) == 0 else [-1.0, 1.0]))
    logger = SearchLogger("/dev/null", monitor, calibration=train[:2])
    argmax, _ = select_architecture(oneshot, logger, "argmax")
    assert all(argmax[label] == name for label, name in broken.items())
    chosen, scores = perturbation_select(oneshot, lambda pins: logger.evaluate(oneshot, pins=pins))
    for label, name in broken.items():
        kept = next(n for n in columns[label].names if n != name)
        assert chosen[label] == kept
        assert scores[label][name] > scores[label][kept] + 3  # removing the broken one helps by far
    assert torch.equal(columns["cell1.col2"]._arch_alpha.detach(), torch.tensor([1.0, -1.0]))  # α put back


def test_finetune_estimate_is_never_below_the_noisy_input(tiny_space, patches):
    train, monitor = patches
    oneshot = _search(tiny_space, steps=4)
    genotype = Genotype(tiny_space, dict(oneshot.export()))
    noisy = input_psnr(monitor)
    good = finetune_estimate(derived_network(genotype, oneshot.training_module.model.state_dict()), train,
                             monitor, lr=1e-2, eval_every=10)
    assert good.input_psnr == pytest.approx(noisy, abs=1e-3)
    assert good.psnr >= noisy and good.best_step > 0  # it trained, and beat the input
    # a network that is broken everywhere and cannot learn in time: the estimate stays at the input
    broken = derived_network(genotype, oneshot.training_module.model.state_dict())
    broken.register_forward_hook(lambda _m, _inputs, out: out + 1e4 * torch.randn_like(out))
    bad = finetune_estimate(broken, train[:3], monitor, lr=1e-6, eval_every=1)
    assert bad.psnr >= noisy - 1e-3 and math.isfinite(bad.final_psnr)


def test_finetune_estimate_starts_from_the_better_of_identity_and_inherited_weights(tiny_space, patches):
    from clearer_nni.metrics import mean_psnr
    from clearer_nni.nas.search_logger import recalibrated_bn

    train, monitor = patches
    noisy = input_psnr(monitor)
    # a network known to beat the identity at σ = 50: a 5x5 box blur
    blur = torch.nn.Conv2d(1, 1, 5, padding=2, bias=False, padding_mode="reflect")
    torch.nn.init.constant_(blur.weight, 1 / 25)
    blurred = mean_psnr(blur, monitor, "cpu")
    assert blurred > noisy + 3
    # no training step can lower it: the reported value is the best from a start at the inherited weights
    got = finetune_estimate(blur, train[:3], monitor, lr=1e-6, eval_every=1)
    assert got.start == "inherited" and got.inherited_psnr == pytest.approx(blurred, abs=1e-3)
    assert got.psnr >= blurred - 1e-3 and got.input_psnr == pytest.approx(noisy, abs=1e-3)
    # a derived network: BatchNorm re-estimated on the calibration batches before it is compared
    oneshot = _search(tiny_space, steps=4)
    network = derived_network(Genotype(tiny_space, dict(oneshot.export())), oneshot.training_module.model.state_dict())
    with recalibrated_bn(network, train[:2], "cpu"):
        inherited = mean_psnr(network, monitor, "cpu")
    before = {k: v.clone() for k, v in network.state_dict().items()}
    got = finetune_estimate(network, train[:3], monitor, lr=1e-6, eval_every=1, calibration=train[:2])
    assert got.inherited_psnr == pytest.approx(inherited, abs=1e-3)
    assert got.start == ("inherited" if inherited > noisy else "identity")
    assert got.psnr >= max(inherited, noisy) - 1e-3
    # the argument is untouched: its BatchNorm statistics are not the re-estimated ones
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_trial_reports_the_fine_tune_estimate_as_its_final_default(tmp_path):
    from clearer_nni.experiment.trial import final_metric

    meta = {"val_psnr_derived": 12.0, "val_psnr_supernet": 24.0, "val_psnr_input": 14.6, "val_psnr_finetuned": 23.5,
            "decidedness": {"decided": 11}, "params_derived": 10}
    final = final_metric(meta, tmp_path / "genotype.json")
    assert (final["default"], final["supernet_psnr"], final["derived_inherited_psnr"], final["input_psnr"],
            final["decided_columns"]) == (23.5, 24.0, 12.0, 14.6, 11)
    # a search without the estimate (the paper's recipe): the derived network with inherited weights
    assert final_metric({**meta, "val_psnr_finetuned": None}, tmp_path / "g.json")["default"] == 12.0
