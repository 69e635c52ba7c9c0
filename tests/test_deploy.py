"""Deployable exports (ONNX through onnxruntime, TorchScript): they agree with PyTorch on odd sizes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from clearer_nni.training.checkpoint import save_checkpoint
from clearer_nni.data import read_image, write_image
from clearer_nni.deploy import GENOTYPE_KEY, OnnxNetwork, export_model, load_model
from clearer_nni.export_model import main
from clearer_nni.restore import main as restore_main
from clearer_nni.models.tiling import restore_array
from conftest import REPO
from test_retrain import make_genotype

ODD = [(37, 45), (17, 99), (101, 33), (9, 9)]
onnx_only = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the [onnx] extra (onnx, onnxruntime, onnxscript) is not installed")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny checkpoint with weights large enough that the output is far from zero (eval BatchNorm)."""
    torch.manual_seed(0)
    geno = make_genotype()
    net = geno.build()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
    path = save_checkpoint(tmp_path_factory.mktemp("m") / "model.ckpt", net, geno)
    return path, net.eval(), geno


def _reference(net, h, w, seed=1):
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, net(x).numpy()


@onnx_only
@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_onnx_export_takes_any_size_and_agrees_with_pytorch(trained, tmp_path, capsys):
    import onnxruntime as ort

    ckpt, net, geno = trained
    assert main([str(ckpt), "--format", "onnx", "-o", str(tmp_path / "model.onnx")]) == 0
    assert "any height and width" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[2], str) and isinstance(shape[3], str)  # dynamic height and width
    for h, w in ODD:
        x, ref = _reference(net, h, w)
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4 and np.abs(ref).max() > 1
    model = load_model(tmp_path / "model.onnx")
    assert isinstance(model, OnnxNetwork) and model.genotype.choices == geno.choices
    assert GENOTYPE_KEY in session.get_modelmeta().custom_metadata_map
    # restore --model model.onnx: the same tiling as with the checkpoint
    src = write_image(tmp_path / "in.png", np.random.default_rng(0).random((45, 70, 1)), bit_depth=16)
    args = [str(src), "--tile", "32", "--overlap", "8", "--no-progress"]
    assert restore_main([*args, "-o", str(tmp_path / "onnx.png"), "--model", str(tmp_path / "model.onnx")]) == 0
    expected = np.clip(restore_array(net, read_image(src, 1), 32, 8), 0, 1)
    np.testing.assert_allclose(read_image(tmp_path / "onnx.png", 1), expected, atol=2 / 65535)


def test_torchscript_export_takes_any_size_and_agrees_with_pytorch(trained, tmp_path):
    ckpt, net, geno = trained
    assert main([str(ckpt), "-o", str(tmp_path / "model.pt")]) == 0  # format from the suffix
    module = torch.jit.load(str(tmp_path / "model.pt"))
    for h, w in ODD:
        x, ref = _reference(net, h, w)
        with torch.no_grad():
            out = module(x).numpy()
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4
    model = load_model(tmp_path / "model.pt")
    assert model.config == geno.space
    x = np.random.default_rng(0).random((50, 41, 1)).astype(np.float32)
    np.testing.assert_allclose(restore_array(model, x, 32, 8), restore_array(net, x, 32, 8), atol=1e-5)


def test_an_export_that_disagrees_is_not_written(trained, tmp_path):
    ckpt, net, geno = trained
    with pytest.raises(RuntimeError, match="differs from the PyTorch network"):
        export_model(net, geno, tmp_path / "m.pt", "torchscript", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("problem, message", [
    ("missing", "checkpoint file not found"),
    ("exists", "exists (pass --overwrite"),
    ("suffix", "cannot tell the format"),
    ("folder", "output folder not found"),
])
def test_export_model_bad_input_exits_2(trained, tmp_path, capsys, problem, message):
    ckpt, _, _ = trained
    out = tmp_path / "m.pt"
    if problem == "missing":
        ckpt = tmp_path / "none.ckpt"
    elif problem == "exists":
        out.write_text("keep")
    elif problem == "suffix":
        out = tmp_path / "m.bin"
    elif problem == "folder":
        out = tmp_path / "no" / "m.pt"
    assert main([str(ckpt), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert problem != "exists" or out.read_text() == "keep"


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_export_model_is_a_clearer_nni_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "clearer_nni", "export-model", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and "--format {onnx,torchscript}" in proc.stdout
