"""Tiled restoration of image files of any size (clearer-nni restore)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from clearer_nni.archs import SpaceConfig
from clearer_nni.data import bit_depth, read_image, write_image
from clearer_nni.models.tiling import blend_window, restore_array, tile_starts
from clearer_nni.restore import main
from conftest import REPO
from test_retrain import make_checkpoint, make_genotype


@pytest.fixture(scope="module")
def network():
    """The tiny network with weights large enough that tiling visibly matters (eval-mode BatchNorm)."""
    torch.manual_seed(0)
    net = make_genotype().build()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
    return net.eval()


def _image(h: int, w: int, c: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(np.cumsum(rng.random((h, w, c)), 0), 1)
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


# -- tiling ---------------------------------------------------------------------------------------

def test_tiles_cover_the_image_and_blend_weights_are_positive():
    for size, tile, overlap in [(100, 32, 8), (64, 64, 16), (65, 64, 16), (300, 256, 32), (10, 64, 8)]:
        starts = tile_starts(size, tile, overlap)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all() and starts[0] == 0 and starts[-1] + min(tile, size) == size
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    w = blend_window(32, 40, 8)
    assert w.shape == (32, 40, 1) and w.min() > 0 and w.max() == 1.0 and w[16, 20, 0] == 1.0
    assert (blend_window(16, 16, 0) == 1).all()


def test_an_image_within_one_tile_is_restored_whole(network):
    x = _image(50, 60)
    with torch.no_grad():
        whole = network(torch.from_numpy(x.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(restore_array(network, x, tile=64, overlap=16), whole, atol=1e-4)
    np.testing.assert_allclose(restore_array(network, x, tile=None), whole, atol=1e-4)


def test_overlapping_tiles_stay_close_to_the_whole_image(network):
    x = _image(150, 130)
    whole = restore_array(network, x, tile=None)
    tiled = restore_array(network, x, tile=64, overlap=24)
    assert tiled.shape == x.shape and tiled.dtype == np.float32 and np.isfinite(tiled).all()
    spread = whole.max() - whole.min()
    assert spread > 0
    # the network's receptive field (x4 downsampling, cross-scale fusion) exceeds the overlap: close, not equal
    error = np.abs(tiled - whole).mean()
    assert error < 0.05 * spread
    # and the blended overlap does better than independent tiles with seams
    assert error < np.abs(restore_array(network, x, tile=64, overlap=0) - whole).mean()


def test_non_overlapping_patches_are_restored_independently(network):
    x = _image(128, 64)
    patches = restore_array(network, x, tile=64, overlap=0)
    np.testing.assert_allclose(patches[:64], restore_array(network, x[:64], tile=None), atol=1e-5)
    np.testing.assert_allclose(patches[64:], restore_array(network, x[64:], tile=None), atol=1e-5)


# -- files ------------------------------------------------------------------------------------------

def test_16_bit_in_gives_16_bit_out(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    src = write_image(tmp_path / "in16.png", _image(40, 50), bit_depth=16)
    assert bit_depth(src) == 16
    out = tmp_path / "out16.png"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--tile", "32", "--overlap", "8"]) == 0
    assert bit_depth(out) == 16
    with Image.open(out) as im:
        assert im.size == (50, 40) and im.mode.startswith("I")
    assert "restored 1 image(s)" in capsys.readouterr().out


def test_a_folder_in_gives_a_folder_out_and_says_what_it_converted(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    folder = tmp_path / "in"
    write_image(folder / "a.png", _image(30, 40))
    write_image(folder / "b.png", _image(70, 50, c=3))  # colour, for a 1-channel model
    out = tmp_path / "out"
    assert main([str(folder), "-o", str(out), "--model", str(ckpt), "--tile", "32", "--overlap", "8",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert read_image(out / "b.png", 3).shape == (70, 50, 3)
    with Image.open(out / "b.png") as im:
        assert im.mode == "L"
    err = capsys.readouterr().err
    assert "b.png: colour image(s) converted to gray" in err


def test_a_gray_image_is_repeated_for_a_colour_model(tmp_path, capsys):
    geno = make_genotype()
    geno.space = SpaceConfig(in_channels=3, out_channels=3, channels=(4, 8, 16), columns=(2, 2), stem="paper")
    ckpt = make_checkpoint(tmp_path / "rgb.ckpt", geno)
    src = write_image(tmp_path / "g.png", _image(20, 24))
    assert main([str(src), "-o", str(tmp_path / "o.png"), "--model", str(ckpt)]) == 0
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGB" and im.size == (24, 20)
    assert "repeated to 3 channels" in capsys.readouterr().err


@pytest.mark.parametrize("problem, message", [
    ("tile_overlap", "tile (32) must be larger than overlap (32)"),
    ("missing_model", "checkpoint file not found"),
    ("missing_input", "input not found"),
    ("exists", "output file exists"),
    ("same", "is the input file"),
])
def test_restore_bad_input_exits_2(tmp_path, capsys, problem, message):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    src = write_image(tmp_path / "x.png", _image(20, 20))
    out = tmp_path / "y.png"
    args = [str(src), "-o", str(out), "--model", str(ckpt)]
    if problem == "tile_overlap":
        args += ["--tile", "32", "--overlap", "32"]
    elif problem == "missing_model":
        args[4] = str(tmp_path / "none.ckpt")
    elif problem == "missing_input":
        args[0] = str(tmp_path / "none.png")
    elif problem == "exists":
        out.write_bytes(b"keep")
    elif problem == "same":
        args[2] = str(src)
    before = src.read_bytes()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert src.read_bytes() == before
    if problem == "exists":
        assert out.read_bytes() == b"keep"


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp", "pages.tif"])
def test_a_multi_frame_image_is_refused_with_its_frame_count_never_cut_to_its_first_frame(tmp_path, capsys, name):
    import warnings

    from clearer_nni.data import frame_count
    from clearer_nni.data.images import ConversionWarning

    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    frames = [Image.fromarray((_image(20, 24, seed=k)[..., 0] * 255).astype(np.uint8)) for k in range(3)]
    src = tmp_path / name
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100)
    assert frame_count(src) == 3
    folder = tmp_path / "folder"
    folder.mkdir()
    write_image(folder / "still.png", _image(20, 24))
    (folder / name).write_bytes(src.read_bytes())
    for args in ([str(src), "-o", str(tmp_path / "o.png")], [str(folder), "-o", str(tmp_path / "out")]):
        assert main([*args, "--model", str(ckpt), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"{name}: 3 frames (an animation or a multi-page file); restore restores single images" in err, err
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "out").exists()
    # the readers of training and test folders read the first frame, and say so
    import clearer_nni.data.images as images

    images._SAID.discard("frames")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(src, 1).shape == (20, 24, 1)
    assert any(issubclass(w.category, ConversionWarning) and "3 frames" in str(w.message)
               and "only the first is read" in str(w.message) for w in caught)


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_restore_command_line_refuses_tile_not_larger_than_overlap(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "clearer_nni", "restore", "in.png", "-o", str(tmp_path / "o.png"),
                           "--model", "m.ckpt", "--tile", "16", "--overlap", "20"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: tile (16) must be larger than overlap (20): tiles would not advance"


@pytest.mark.parametrize("mode", ["8", "authors"])
def test_restore_self_ensemble_averages_the_tiled_restorations_of_the_transforms(tmp_path, network, mode):
    from clearer_nni.training.checkpoint import load_checkpoint, save_checkpoint
    from clearer_nni.data import dihedral, inverse_dihedral
    from clearer_nni.ensemble import ENSEMBLES

    ckpt = save_checkpoint(tmp_path / "m.ckpt", network, make_genotype())
    src = write_image(tmp_path / "in.png", _image(40, 52), bit_depth=16)
    args = [str(src), "--model", str(ckpt), "--tile", "32", "--overlap", "8", "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "se.png"), "--self-ensemble", mode]) == 0
    assert main([*args, "-o", str(tmp_path / "plain.png")]) == 0
    net, _, _ = load_checkpoint(ckpt)
    x = read_image(src, 1)
    expected = np.mean([inverse_dihedral(restore_array(net, np.ascontiguousarray(dihedral(x, k)), 32, 8), k)
                        for k in ENSEMBLES[mode]], axis=0)
    got = read_image(tmp_path / "se.png", 1)
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1 / 65535 + 1e-6)
    assert np.abs(got - read_image(tmp_path / "plain.png", 1)).max() > 1e-3
