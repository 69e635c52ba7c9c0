"""ClearerDARTS, the regularisers and the genotype (SPEC sections 2-3)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from nni.nas.evaluator.pytorch import DataLoader
from nni.nas.nn.pytorch import LayerChoice
from nni.mutable import Mutable

from clearer_nni.archs import ClearerSpace, SpaceConfig, count_parameters
from clearer_nni.models import OptimConfig, RestorationModule
from clearer_nni.nas import (ClearerDARTS, Genotype, GenotypeError, arch_entropy_loss, candidate_costs,
                             complexity_loss, normalise_costs)
from clearer_nni.training.fit import fit_supernet
from conftest import synthetic_batches


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.items = [(x[i], y[i]) for x, y in batches for i in range(len(x))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _search(space_cfg, steps=4, warmup=0, lambda_arch=0.0, lambda_comp=0.0, **kw):
    costs = normalise_costs(candidate_costs(space_cfg))
    strategy = ClearerDARTS(costs=costs, lambda_arch=lambda_arch, lambda_comp=lambda_comp,
                            warmup_steps=warmup, max_steps=steps, **kw)
    train = DataLoader(_Pairs(synthetic_batches(steps, seed=1)), batch_size=2)
    val = DataLoader(_Pairs(synthetic_batches(steps, seed=2)), batch_size=2)
    return fit_supernet(ClearerSpace(space_cfg), strategy, RestorationModule(OptimConfig(), steps), train, val,
                        progress=False)


# -- regularisers ------------------------------------------------------------------------------------

def test_arch_entropy_equals_the_formula_on_known_alphas():
    probs = [torch.tensor([0.2, 0.8]), torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])]
    a = [0.2, 0.8, 0.5, 0.5, 0.9, 0.1]
    expected = -sum(x * math.log(x) + (1 - x) * math.log(1 - x) for x in a) / len(a)
    assert float(arch_entropy_loss(probs)) == pytest.approx(expected, rel=1e-6)
    assert float(arch_entropy_loss(probs, "10")) == pytest.approx(expected / math.log(10), rel=1e-6)
    # maximal at 0.5, (almost) zero at one-hot
    assert float(arch_entropy_loss([torch.tensor([0.5, 0.5])])) == pytest.approx(math.log(2))
    assert float(arch_entropy_loss([torch.tensor([1.0, 0.0])])) < 1e-6


def test_complexity_loss_is_the_expected_cost_over_n():
    probs = [torch.tensor([0.25, 0.75]), torch.tensor([1.0, 0.0])]
    costs = [torch.tensor([1.0, 0.5]), torch.tensor([0.2, 0.1])]
    assert float(complexity_loss(probs, costs)) == pytest.approx((0.25 + 0.375 + 0.2) / 4)


def test_costs_are_measured_at_each_position_and_normalised(tiny_space):
    raw = candidate_costs(tiny_space)
    space = ClearerSpace(tiny_space)
    for label, column in space.columns():
        assert raw[label]["parallel"] == count_parameters(column["parallel"])
        assert raw[label]["fusion"] == count_parameters(column["fusion"])
    norm = normalise_costs(raw)
    assert max(v for c in norm.values() for v in c.values()) == 1.0
    flops = candidate_costs(tiny_space, "flops", patch_size=16)
    assert all(v > 0 for c in flops.values() for v in c.values())
    assert flops["cell2.col1"]["parallel"] > flops["cell1.col1"]["parallel"]
    with pytest.raises(ValueError, match="cost metric"):
        candidate_costs(tiny_space, "latency")


def test_complexity_gradient_favours_the_cheaper_candidate(tiny_space):
    costs = normalise_costs(candidate_costs(tiny_space))
    alphas = {label: torch.zeros(2, requires_grad=True) for label in costs}
    probs = [torch.softmax(a, -1) for a in alphas.values()]
    complexity_loss(probs, [torch.tensor([c["parallel"], c["fusion"]]) for c in costs.values()]).backward()
    for label, a in alphas.items():
        cheaper = 0 if costs[label]["parallel"] < costs[label]["fusion"] else 1
        # gradient descent raises the logit with the negative gradient
        assert a.grad[cheaper] < 0 < a.grad[1 - cheaper]


# -- the strategy --------------------------------------------------------------------------------------

def _alphas(oneshot):
    return {label: m._arch_alpha.detach().clone() for label, m, _ in oneshot.mixed_columns()}


def test_lambda_comp_alone_moves_alpha_towards_the_cheaper_candidate(tiny_space):
    oneshot = _search(tiny_space, steps=6, lambda_comp=50.0, arc_learning_rate=0.05)
    costs = normalise_costs(candidate_costs(tiny_space))
    for label, p in oneshot.parallel_probs().items():
        parallel_cheaper = costs[label]["parallel"] < costs[label]["fusion"]
        assert (p > 0.5) == parallel_cheaper, (label, p, costs[label])


def test_alpha_does_not_change_during_warmup(tiny_space):
    oneshot = _search(tiny_space, steps=3, warmup=3, lambda_arch=1.0, lambda_comp=1.0)
    assert oneshot.search_step == 3
    assert all(float(a.abs().max()) < 1e-2 for a in _alphas(oneshot).values())  # NNI inits α ~ 1e-3 N(0,1)
    trained = _search(tiny_space, steps=3, warmup=0, lambda_arch=1.0, lambda_comp=1.0, arc_learning_rate=0.05)
    assert any(float(a.abs().max()) > 1e-2 for a in _alphas(trained).values())


def test_regularisers_do_not_touch_weight_gradients(tiny_space):
    oneshot = _search(tiny_space, steps=1)
    la, lc = oneshot.regularizers()
    weights = [p for p in oneshot.parameters() if p.requires_grad and all(p is not a for a in oneshot.arch_parameters())]
    for p in weights:
        p.grad = None
    (la + lc).backward()
    assert all(p.grad is None for p in weights)
    assert all(a.grad is not None for a in oneshot.arch_parameters())


def test_weight_step_trains_weights_on_l_res_and_arch_step_only_alpha(tiny_space):
    torch.manual_seed(0)
    oneshot = _search(tiny_space, steps=2, lambda_arch=1.0)
    assert oneshot.search_step == 2
    # The α optimiser holds exactly the α tensors; the weight optimiser none of them.
    weight_opt, arch_opt = oneshot.trainer.optimizers
    alpha_ids = {id(a) for a in oneshot.arch_parameters()}
    assert {id(p) for g in arch_opt.param_groups for p in g["params"]} == alpha_ids
    assert not alpha_ids & {id(p) for g in weight_opt.param_groups for p in g["params"]}
    assert isinstance(weight_opt, torch.optim.SGD) and weight_opt.param_groups[0]["momentum"] == 0.9
    assert arch_opt.param_groups[0]["betas"] == (0.5, 0.999) and arch_opt.param_groups[0]["weight_decay"] == 1e-3


def test_strategy_rejects_bad_lambdas(tiny_space):
    costs = normalise_costs(candidate_costs(tiny_space))
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="lambda_arch must be a finite number"):
            ClearerDARTS(costs=costs, lambda_arch=bad).configure_oneshot_module(RestorationModule())


# -- the genotype ------------------------------------------------------------------------------------

def _genotype(space):
    choices = {label: ("parallel" if i % 3 == 0 else "fusion") for i, label in enumerate(space.labels)}
    alpha = {label: {"parallel": 0.3, "fusion": 0.7} for label in space.labels}
    return Genotype(space, choices, alpha, {"lambda_arch": 0.01})


def test_genotype_round_trip_builds_a_plain_module(tmp_path, tiny_space):
    g = _genotype(tiny_space)
    path = g.save(tmp_path / "genotype.json")
    loaded = Genotype.load(path, tiny_space)
    assert loaded.choices == g.choices and loaded.space == tiny_space and loaded.alpha == g.alpha
    net = loaded.build()
    assert not any(isinstance(m, (LayerChoice, Mutable)) for m in net.modules())
    assert net(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    # parameters = fixed parts + the chosen module of every column
    space = ClearerSpace(tiny_space)
    fixed = count_parameters(space) - sum(count_parameters(c) for _, c in space.columns())
    chosen = sum(count_parameters(c[g.choices[label]]) for label, c in space.columns())
    assert count_parameters(net) == fixed + chosen


def test_search_export_json_build(tmp_path, tiny_space):
    oneshot = _search(tiny_space, steps=2)
    g = Genotype(tiny_space, oneshot.export(), {k: dict(v) for k, v in oneshot.export_probs().items()})
    g2 = Genotype.load(g.save(tmp_path / "g.json"))
    assert g2.choices == g.choices and set(g2.alpha) == set(tiny_space.labels)
    assert g2.build()(torch.randn(1, 1, 8, 8)).shape == (1, 1, 8, 8)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: [1, 2], "expected a JSON object"),
    (lambda d: {**d, "format": "darts"}, "not a clearer-nni genotype"),
    (lambda d: {**d, "version": 99}, "unsupported genotype version 99"),
    (lambda d: {k: v for k, v in d.items() if k != "choices"}, "missing key 'choices'"),
    (lambda d: {**d, "choices": {**d["choices"], "cell9.col1": "fusion"}}, r"unknown column label\(s\) \['cell9.col1'\]"),
    (lambda d: {**d, "choices": {k: v for k, v in d["choices"].items() if k != "cell2.col2"}},
     r"missing choice for column\(s\) \['cell2.col2'\]"),
    (lambda d: {**d, "choices": {**d["choices"], "cell1.col1": "identity"}}, "choices must be one of"),
    (lambda d: {**d, "space": {**d["space"], "stem": "vgg"}}, "stem must be one of"),
    (lambda d: {**d, "alpha": {"cell1.col1": {"parallel": "x", "fusion": 1}}}, "must map"),
])
def test_malformed_genotypes_give_clear_errors(tmp_path, tiny_space, mutate, message):
    doc = _genotype(tiny_space).to_dict()
    bad = mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(GenotypeError, match=message):
        Genotype.load(path)


def test_genotype_for_another_space_is_refused(tmp_path, tiny_space):
    path = _genotype(tiny_space).save(tmp_path / "g.json")
    other = SpaceConfig(channels=(8, 16, 32), columns=(2, 2), stem="paper")
    with pytest.raises(GenotypeError, match="made for another space.*channels"):
        Genotype.load(path, other)
    with pytest.raises(GenotypeError, match="not found"):
        Genotype.load(tmp_path / "none.json")


def test_derived_evaluation_recalibrates_batchnorm_and_restores_everything(tiny_space):
    from clearer_nni.nas.search_logger import SearchLogger, recalibrated_bn

    oneshot = _search(tiny_space, steps=3)
    net = oneshot.training_module
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = synthetic_batches(2, seed=5)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    means = [k for k in before if k.endswith("running_mean")]
    with recalibrated_bn(net, batches, "cpu"):
        inside = net.state_dict()
        assert any(not torch.equal(inside[k], before[k]) for k in means)  # re-estimated
        assert bn.momentum is None and not bn.training and int(bn.num_batches_tracked) == len(batches)
    logger = SearchLogger("/dev/null", synthetic_batches(1, seed=6), calibration=batches)
    derived = logger.evaluate(oneshot, derived=True)
    assert math.isfinite(derived)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # α and BN statistics put back
    assert bn.momentum == 0.1


def test_genotype_code_and_summary_list_the_choices_cell_by_cell():
    space = SpaceConfig(channels=(4, 8, 16), columns=(3, 1))
    g = Genotype(space, {"cell1.col1": "fusion", "cell1.col2": "parallel", "cell1.col3": "fusion",
                         "cell2.col1": "parallel"})
    assert g.code() == "FPF|P"
    assert g.summary() == "cell1: F P F\ncell2: P"
