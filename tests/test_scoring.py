"""The authors' scoring (CLEARER-P averaged over patches, SSIM with an 11x11 Gaussian window) and the
test-time self-ensembles (x8, the authors' x7)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from clearer_nni.ensemble import ENSEMBLES, self_ensemble
from clearer_nni.evaluate import evaluate_model, main, protocol_pairs
from clearer_nni.metrics import patch_average, ssim
from test_evaluate import _folder, _images
from test_retrain import make_checkpoint


def _conv(seed: int = 0) -> nn.Module:
    """A fixed 3x3 convolution: not equivariant to flips, and its output at a patch border depends on
    whether the neighbours are there, so patch-wise and whole-image restorations differ."""
    torch.manual_seed(seed)
    net = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        net.weight.copy_(torch.rand(1, 1, 3, 3) / 4.5)
    return net.eval()


def _known_image() -> tuple[np.ndarray, np.ndarray]:
    """skimage's camera, cropped to 128x192, and a noisy copy under the paper protocol (sigma 30)."""
    from skimage import data

    from clearer_nni.data import ImageSet

    clean = (data.camera()[100:228, 50:242] / 255.0).astype(np.float32)[..., None]
    ((noisy, clean, _),) = protocol_pairs(ImageSet("camera", [clean], ["camera.png"]), "paper", 30)
    return noisy, clean


def _pytorch_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The authors' pytorch_ssim, written here with torch: 11x11 Gaussian (sigma 1.5), zero padding 5."""
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    w = (g[:, None] @ g[None, :])[None, None]
    x, y = (torch.from_numpy(np.asarray(v, dtype=np.float64))[None, None] for v in (a, b))
    mu_x, mu_y = F.conv2d(x, w, padding=5), F.conv2d(y, w, padding=5)
    sxx = F.conv2d(x * x, w, padding=5) - mu_x ** 2
    syy = F.conv2d(y * y, w, padding=5) - mu_y ** 2
    sxy = F.conv2d(x * y, w, padding=5) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return float(m.mean())


def test_gaussian_ssim_is_the_authors_pytorch_ssim():
    noisy, clean = _known_image()
    a, b = np.clip(noisy[..., 0], 0, 1).astype(np.float64), clean[..., 0].astype(np.float64)
    assert ssim(a, b, "gaussian") == pytest.approx(_pytorch_ssim(a, b), abs=1e-10)
    assert abs(ssim(a, b, "gaussian") - ssim(a, b)) > 1e-3  # another number than scikit-image's default
    with pytest.raises(ValueError, match="unknown SSIM window"):
        ssim(a, b, "matlab")


@pytest.mark.parametrize("window", ["skimage", "gaussian"])
def test_patch_average_protocol_equals_a_direct_computation_on_a_known_image(window):
    noisy, clean = _known_image()
    net = _conv()
    psnrs, ssims = [], []
    for top in range(0, 128, 64):
        for left in range(0, 192, 64):
            x = torch.from_numpy(noisy[top:top + 64, left:left + 64, 0])[None, None]
            with torch.no_grad():
                y = net(x)[0, 0].numpy().astype(np.float64)
            q = np.rint(np.clip(y, 0, 1) * 255) / 255
            c = clean[top:top + 64, left:left + 64, 0].astype(np.float64)
            psnrs.append(peak_signal_noise_ratio(c, q, data_range=1))
            ssims.append(structural_similarity(c, q, data_range=1) if window == "skimage" else _pytorch_ssim(q, c))
    df = evaluate_model(net, [(noisy, clean, "camera.png")], patch=64, patch_average=True, ssim_window=window)
    assert df["psnr"].item() == pytest.approx(np.mean(psnrs), abs=1e-9)
    assert df["ssim"].item() == pytest.approx(np.mean(ssims), abs=1e-9)
    stitched = evaluate_model(net, [(noisy, clean, "camera.png")], patch=64, ssim_window=window)
    assert stitched["psnr"].item() != pytest.approx(df["psnr"].item(), abs=1e-6)  # the two scorings differ


def test_patch_average_needs_a_multiple_of_the_patch():
    x = np.zeros((70, 64, 1))
    with pytest.raises(ValueError, match="multiple of the patch"):
        patch_average(x, x, 64)


def test_self_ensembles_average_their_transforms():
    noisy, _ = _known_image()
    net = _conv()

    def restore(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(a[..., 0]))[None, None])[0, 0].numpy()[..., None]

    outs = []
    for turns, flip in [(k % 4, k >= 4) for k in range(8)]:  # dihedral k: k % 4 quarter turns, then a flip
        y = np.rot90(noisy, turns, axes=(0, 1))
        y = np.flip(y, axis=1) if flip else y
        r = restore(y)
        r = np.flip(r, axis=1) if flip else r
        outs.append(np.rot90(r, -turns, axes=(0, 1)))
    assert ENSEMBLES["authors"] == (1, 2, 3, 4, 5, 6, 7)
    np.testing.assert_allclose(self_ensemble(restore, noisy, "8"), np.mean(outs, axis=0), atol=1e-6)
    np.testing.assert_allclose(self_ensemble(restore, noisy, "authors"), np.mean(outs[1:], axis=0), atol=1e-6)
    np.testing.assert_allclose(self_ensemble(restore, noisy, True), self_ensemble(restore, noisy, "8"))
    with pytest.raises(ValueError, match="unknown self-ensemble"):
        self_ensemble(restore, noisy, "x7")


def test_evaluate_cli_authors_protocol_gaussian_ssim_and_authors_ensemble(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    folder = _folder(tmp_path, "imgs", n=2)  # 70x90: cropped to 64x64
    out = tmp_path / "e"
    assert main(["--model", str(ckpt), "--data", str(folder), "--protocol", "authors", "--ssim", "gaussian",
                 "--self-ensemble", "authors", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "scores averaged over the patches" in printed and "x7 self-ensemble (no identity)" in printed
    (summary,) = list(csv.DictReader((out / "summary.csv").open()))
    assert summary["patch"] == "64" and summary["self_ensemble"] == "authors" and summary["ssim_window"] == "gaussian"
    assert "11x11 Gaussian" in summary["implementation"] and "mean over 64x64 patches" in summary["scored_on"]
    assert main(["--model", str(ckpt), "--data", str(folder), "--self-ensemble", "x7", "--out", str(out),
                 "--overwrite", "--no-progress"]) == 2
    assert "invalid choice: 'x7'" in capsys.readouterr().err
