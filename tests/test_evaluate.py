"""Evaluation protocols (SPEC section 5), PSNR/SSIM with scikit-image, and the BSD68 rule."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from clearer_nni.data import ImageSet, write_image
from clearer_nni.evaluate import LeakError, check_unseen, evaluate_model, main, protocol_pairs
from conftest import REPO, SHARED_DATA
from test_retrain import make_checkpoint, make_genotype


class Identity(nn.Module):
    """Returns its input: equivariant to flips and rotations, so self-ensemble changes nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _images(n: int = 2, shape: tuple[int, int] = (70, 90), seed: int = 0) -> ImageSet:
    """Smooth 8-bit gray images."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        x = rng.random((shape[0] + 8, shape[1] + 8))
        x = np.cumsum(np.cumsum(x, 0), 1)[8:, 8:]
        x = (x - x.min()) / (x.max() - x.min())
        images.append((np.rint(x * 255) / 255).astype(np.float32)[..., None])
    return ImageSet("synthetic/test", images, [f"/x/img{i}.png" for i in range(n)])


def _folder(root: Path, name: str, n: int = 2) -> Path:
    folder = root / name
    for i, x in enumerate(_images(n).images):
        write_image(folder / f"{i:02d}.png", x)
    return folder


# -- protocols ------------------------------------------------------------------------------------

def test_standard_protocol_noise_is_seed_0_float_noise_unclipped():
    data = _images()
    pairs = protocol_pairs(data, "standard", 50)
    for (noisy, clean, path), x in zip(pairs, data.images):
        np.random.seed(0)
        expected = x + np.random.normal(0, 50 / 255.0, x.shape)
        assert clean.shape == x.shape  # whole image
        np.testing.assert_allclose(noisy, expected.astype(np.float32), atol=1e-6)
        assert noisy.min() < 0 and noisy.max() > 1  # no clipping


def test_paper_protocol_crops_to_64_and_uses_uint8_clipped_noise():
    data = _images(shape=(150, 200))
    pairs = protocol_pairs(data, "paper", 30)
    for (noisy, clean, _), x in zip(pairs, data.images):
        assert clean.shape == (128, 192, 1)
        top, left = (150 - 128) // 2, (200 - 192) // 2
        np.testing.assert_array_equal(clean, x[top:top + 128, left:left + 192])
        noise = np.random.RandomState(0).normal(0, 30, clean.shape)
        expected = np.clip(np.rint(clean.astype(np.float64) * 255) + noise, 0, 255).astype(np.uint8) / 255.0
        np.testing.assert_allclose(noisy, expected, atol=1e-7)
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_pairs(data, "kair", 50)


# -- scores ---------------------------------------------------------------------------------------

def test_identity_model_scores_the_noisy_image_itself():
    pairs = protocol_pairs(_images(), "standard", 25)
    df = evaluate_model(Identity(), pairs)
    assert list(df["image"]) == ["img0", "img1"]
    for (noisy, clean, _), row in zip(pairs, df.itertuples()):
        # scored as saved: clipped to [0, 1], rounded to 8 bits
        q = np.rint(np.clip(noisy[..., 0].astype(np.float64), 0, 1) * 255) / 255
        c = clean[..., 0].astype(np.float64)
        assert row.psnr == pytest.approx(peak_signal_noise_ratio(c, q, data_range=1), abs=1e-9)
        assert row.ssim == pytest.approx(structural_similarity(c, q, data_range=1), abs=1e-9)
        assert row.psnr_input == pytest.approx(
            peak_signal_noise_ratio(c, np.clip(noisy[..., 0], 0, 1).astype(np.float64), data_range=1))


def test_self_ensemble_and_patches_of_an_equivariant_identity_change_nothing():
    pairs = protocol_pairs(_images(shape=(128, 192)), "paper", 50)
    plain = evaluate_model(Identity(), pairs)
    for kw in ({"self_ensemble": True}, {"self_ensemble": "authors"}, {"patch": 64}, {"patch": 64, "self_ensemble": True}):
        other = evaluate_model(Identity(), pairs, **kw)
        np.testing.assert_allclose(other["psnr"], plain["psnr"], atol=1e-9)
        np.testing.assert_allclose(other["ssim"], plain["ssim"], atol=1e-9)


# -- the BSD68 rule -------------------------------------------------------------------------------

def test_bsd68_is_refused_after_bsds500_val():
    check_unseen("bsd68/test", ["bsds500/train"])
    check_unseen("set12/test", ["bsds500/train", "bsds500/val"])
    with pytest.raises(LeakError, match="BSD68 is a subset of BSDS500 val"):
        check_unseen("bsd68/test", ["bsds500/train", "bsds500/val"])
    with pytest.raises(LeakError):
        check_unseen("folder:/data/BSD68", ["bsds500/val"])


@pytest.mark.parametrize("where", ["search", "retrain"])
def test_evaluate_cli_refuses_bsd68_for_a_model_that_saw_bsds500_val(tmp_path, capsys, where):
    root = tmp_path / "data"
    _folder(root, "BSD68")
    if where == "search":  # α was trained on bsds500/val
        ckpt = make_checkpoint(tmp_path / "m.ckpt", make_genotype(train_data="bsds500/train", val_data="bsds500/val"))
    else:  # the model was selected on bsds500/val
        ckpt = make_checkpoint(tmp_path / "m.ckpt", val_data="bsds500/val")
    args = ["--model", str(ckpt), "--data", "bsd68", "--data-root", str(root), "--out", str(tmp_path / "e"),
            "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "BSD68 is a subset of BSDS500 val" in err
    assert not (tmp_path / "e").exists()
    ok = make_checkpoint(tmp_path / "ok.ckpt", val_data="bsds500/train")
    assert main(["--model", str(ok), *args[2:]]) == 0


# -- the command ------------------------------------------------------------------------------------

def test_evaluate_cli_writes_per_image_and_summary(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    folder = _folder(tmp_path, "imgs", n=3)
    out, images = tmp_path / "e", tmp_path / "restored"
    assert main(["--model", str(ckpt), "--data", str(folder), "--sigma", "15", "--out", str(out),
                 "--save-images", str(images), "--self-ensemble", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "standard (whole image + x8 self-ensemble)" in printed and "scikit-image" in printed
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["image"] for r in rows] == ["00", "01", "02"]
    assert all(math.isfinite(float(r["psnr"])) and r["implementation"].startswith("scikit-image ") for r in rows)
    (summary,) = list(csv.DictReader((out / "summary.csv").open()))
    assert summary["protocol"] == "standard" and int(summary["n_images"]) == 3 and float(summary["sigma"]) == 15
    assert float(summary["psnr"]) == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-5)
    assert sorted(p.name for p in images.iterdir()) == ["00.png", "01.png", "02.png"]
    # the paper protocol with patches, on the same folder (70x90 images, cropped to 64x64)
    assert main(["--model", str(ckpt), "--data", str(folder), "--protocol", "paper", "--patch", "64",
                 "--out", str(out), "--overwrite", "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert {(r["height"], r["width"]) for r in rows} == {("64", "64")}
    assert "CLEARER-P" in capsys.readouterr().out


@pytest.mark.parametrize("problem, message", [
    ("missing", "checkpoint file not found"),
    ("foreign", "not a readable checkpoint"),
    ("corrupt", "not a readable checkpoint"),
    ("other_genotype", "the weights do not fit"),
    ("non_empty_out", "output folder is not empty"),
    ("negative_sigma", "sigma must be a finite number >= 0"),
])
def test_evaluate_cli_bad_input_exits_2(tmp_path, capsys, problem, message):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    folder = _folder(tmp_path, "imgs", n=1)
    out = tmp_path / "e"
    extra = []
    if problem == "missing":
        ckpt = tmp_path / "none.ckpt"
    elif problem == "foreign":
        (tmp_path / "f.ckpt").write_text("not a checkpoint")
        ckpt = tmp_path / "f.ckpt"
    elif problem == "corrupt":
        (tmp_path / "c.ckpt").write_bytes(ckpt.read_bytes()[:-200])
        ckpt = tmp_path / "c.ckpt"
    elif problem == "other_genotype":
        doc = torch.load(ckpt, weights_only=True)
        doc["genotype"] = make_genotype(choices={k: "parallel" for k in doc["genotype"]["choices"]}).to_dict()
        torch.save(doc, tmp_path / "o.ckpt")
        ckpt = tmp_path / "o.ckpt"
    elif problem == "non_empty_out":
        out.mkdir()
        (out / "x.txt").write_text("keep")
    elif problem == "negative_sigma":
        extra = ["--sigma", "-1"]
    code = main(["--model", str(ckpt), "--data", str(folder), "--out", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert str(ckpt.name) in err or problem in ("non_empty_out", "negative_sigma")
    assert not list(tmp_path.glob(".e.partial"))


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_evaluate_command_line_rejects_an_unknown_protocol(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "clearer_nni", "evaluate", "--model", "m.ckpt", "--out",
                           str(tmp_path / "e"), "--protocol", "kair"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "invalid choice: 'kair'" in proc.stderr


# -- shared data ----------------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED_DATA / "Set12").is_dir(), reason=f"Set12 not available under {SHARED_DATA}")
def test_set12_standard_protocol_with_a_tiny_trained_model(tmp_path):
    from clearer_nni.retrain import RetrainConfig, run_retrain

    geno = tmp_path / "g.json"
    make_genotype(geno)
    trained = run_retrain(RetrainConfig(genotype=str(geno), out=str(tmp_path / "r"), steps=2, batch_size=2,
                                        patch_size=32, val_every=2, val_patches=2, progress=False))
    out = tmp_path / "e"
    assert main(["--model", str(trained.checkpoint), "--data", "set12", "--data-root", str(SHARED_DATA),
                 "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 12 and all(math.isfinite(float(r["psnr"])) for r in rows)
