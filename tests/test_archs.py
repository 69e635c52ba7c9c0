"""The modules and the space: shapes, no input mutation, parameter counts (SPEC section 1)."""

from __future__ import annotations

import pytest
import torch

from clearer_nni.archs import (AuthorsStem, ClearerSpace, FusionModule, Head, PaperStem, ParallelModule,
                               SpaceConfig, SpaceFileError, TransitionModule, count_parameters,
                               load_space_file)
from conftest import REPO


def _branches(channels, size=16, batch=2):
    return [torch.randn(batch, c, max(1, size >> k), max(1, size >> k)) for k, c in enumerate(channels)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_modules_keep_shapes_through_1_to_4_scales(n):
    channels = [4, 8, 16, 32][:n]
    x = _branches(channels)
    for module in (ParallelModule(channels), FusionModule(channels)):
        y = module(x)
        assert [t.shape for t in y] == [t.shape for t in x]
    if n < 4:
        y = TransitionModule(channels, [4, 8, 16, 32][: n + 1])(x)
        assert len(y) == n + 1 and y[-1].shape[1:] == (channels[-1] * 2, x[-1].shape[2] // 2, x[-1].shape[3] // 2)
    out = Head(channels, 3)(x)
    assert out.shape == (2, 3, 16, 16)


def test_final_fusion_computes_only_full_resolution():
    assert len(FusionModule([4, 8, 16], out_branches=1)(_branches([4, 8, 16]))) == 1


@pytest.mark.parametrize("make", [lambda c: ParallelModule(c), lambda c: FusionModule(c),
                                  lambda c: TransitionModule(c, c + [c[-1] * 2])])
def test_no_module_mutates_its_input_list(make):
    channels = [4, 8, 16]
    x = _branches(channels)
    ids, copies = [id(t) for t in x], [t.clone() for t in x]
    make(channels)(x)
    assert [id(t) for t in x] == ids and len(x) == 3
    assert all(torch.equal(a, b) for a, b in zip(x, copies))


def test_wrong_number_of_branches_is_a_clear_error():
    with pytest.raises(ValueError, match="expects a list of 3 branch tensors, got 2"):
        FusionModule([4, 8, 16])(_branches([4, 8]))


def test_stems_give_one_full_resolution_branch():
    x = torch.randn(2, 1, 16, 16)
    assert AuthorsStem(1, 4)(x)[0].shape == (2, 16, 16, 16)
    assert PaperStem(1, 4)(x)[0].shape == (2, 4, 16, 16)


def test_default_space_matches_authors_parameter_counts():
    # SPEC sections 1 and 8: the authors' code, run beside ours, counts exactly these (12.56 M super-network;
    # 4.36 M all fusion to 8.72 M all parallel; one column of 2/3/4 branches: parallel 92.5 k / 388 k / 1.57 M,
    # fusion 20.7 k / 154 k / 785 k).
    space = ClearerSpace()
    labels = SpaceConfig().labels
    assert count_parameters(space) == 12_558_144
    assert count_parameters(space.freeze({k: "fusion" for k in labels})) == 4_361_536
    assert count_parameters(space.freeze({k: "parallel" for k in labels})) == 8_723_264
    per_cell = {label.split(".")[0]: (count_parameters(col["parallel"]), count_parameters(col["fusion"]))
                for label, col in space.columns()}
    assert per_cell == {"cell1": (92_544, 20_672), "cell2": (387_968, 153_536), "cell3": (1_568_640, 784_512)}


def test_columns_are_layer_choices_with_readable_labels(tiny_space):
    space = ClearerSpace(tiny_space)
    assert list(space.simplify()) == ["cell1.col1", "cell1.col2", "cell2.col1", "cell2.col2"]
    for label, column in space.columns():
        assert column.label == label and list(column.names) == ["parallel", "fusion"]


@pytest.mark.parametrize("size", [(16, 16), (17, 23)])
def test_space_forward_any_image_size(tiny_space, size):
    space = ClearerSpace(tiny_space)
    net = space.freeze({k: "fusion" for k in tiny_space.labels})
    assert net(torch.randn(1, 1, *size)).shape == (1, 1, *size)


def test_authors_mixing_shares_the_parallel_module(tiny_space):
    space = ClearerSpace(tiny_space, mixing="authors")
    assert count_parameters(space) == count_parameters(ClearerSpace(tiny_space))
    col = dict(space.columns())["cell1.col1"]
    assert col["fusion"].parallel[0] is col["parallel"]


def test_global_residual_adds_the_input():
    cfg = SpaceConfig(channels=(4, 8), columns=(1,), stem="paper", global_residual=True)
    net = ClearerSpace(cfg).freeze({"cell1.col1": "parallel"})
    for p in net.head.conv.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 1, 8, 8)
    assert torch.allclose(net(x), x)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=(4, 8), columns=(2, 2)), "2 cells need 3 scales"),
    (dict(stem="resnet"), "stem must be one of"),
    (dict(columns=()), "at least one cell"),
    (dict(in_channels=3, out_channels=1, global_residual=True), "global_residual needs"),
])
def test_bad_space_configs(kwargs, message):
    with pytest.raises(SpaceFileError, match=message):
        SpaceConfig(**kwargs)


def test_bundled_space_files_load():
    for name in ("denoise", "derain", "demo", "tiny"):
        assert load_space_file(REPO / "search_spaces" / f"{name}.yaml") == load_space_file(name)
        assert load_space_file(name).labels
    assert load_space_file("derain").in_channels == 3


def test_bad_space_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {channels: [4, 8], colums: [1]}\n")
    with pytest.raises(SpaceFileError, match=r"unknown space key\(s\) \['colums'\]"):
        load_space_file(bad)
    bad.write_text("space: [\n")
    with pytest.raises(SpaceFileError, match="not valid YAML"):
        load_space_file(bad)
    with pytest.raises(SpaceFileError, match="not found"):
        load_space_file(tmp_path / "missing.yaml")
    bad.write_text("space: {channels: [4, 8, 16], columns: [2, 2]}\nsearch: {steps: 3}\n")
    with pytest.raises(SpaceFileError, match="belong in a recipe file"):
        load_space_file(bad)


# -- the DnCNN-style baseline (benchmarks/quality.py) ------------------------------------------------

@pytest.mark.parametrize("width,depth,channels", [(4, 2, 1), (16, 5, 1), (64, 17, 1), (8, 6, 3)])
def test_plain_cnn_parameter_formula_matches_the_module(width, depth, channels):
    from clearer_nni.archs import PlainCNN, plain_cnn_params

    net = PlainCNN(width, depth, channels, channels)
    assert count_parameters(net) == plain_cnn_params(width, depth, channels, channels)
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]) == depth
    x = torch.rand(2, channels, 12, 12)
    assert net(x).shape == x.shape


def test_plain_cnn_dncnn_size_and_residual():
    from clearer_nni.archs import PlainCNN

    # DnCNN-S, gray: conv+bias (640), 15 x (conv 36,864 + BN 128), conv (576)
    assert count_parameters(PlainCNN()) == 640 + 15 * 36_992 + 576
    net = PlainCNN(8, 4)
    torch.nn.init.zeros_(net.body[-1].weight)  # the body predicts no residual: the output is the input
    x = torch.rand(1, 1, 9, 9)
    assert torch.equal(net(x), x)


@pytest.mark.parametrize("target", [50_000, 393_000, 4_361_536])
def test_plain_cnn_for_params_picks_the_closest_width(target):
    from clearer_nni.archs import plain_cnn_for_params, plain_cnn_params

    net = plain_cnn_for_params(target)
    got = count_parameters(net)
    assert all(abs(got - target) <= abs(plain_cnn_params(w) - target) for w in (net.width - 1, net.width + 1))
    assert abs(got - target) / target < 0.05


@pytest.mark.parametrize("call,message", [
    (lambda: __import__("clearer_nni.archs", fromlist=["PlainCNN"]).PlainCNN(0, 17), "width >= 1"),
    (lambda: __import__("clearer_nni.archs", fromlist=["PlainCNN"]).PlainCNN(8, 1), "depth >= 2"),
    (lambda: __import__("clearer_nni.archs", fromlist=["PlainCNN"]).PlainCNN(8, 4, 1, 3), "in_channels == out"),
    (lambda: __import__("clearer_nni.archs", fromlist=["x"]).plain_cnn_for_params(10), "as few as 10"),
])
def test_plain_cnn_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
