"""Bad input through the command line: one ``error:`` line naming the problem and the file, exit 2, no output.

One test (or parametrized case) per row of docs/BAD_INPUT.md that no other test file covers.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from clearer_nni.data import load_dataset
from clearer_nni.evaluate import main as evaluate_main
from clearer_nni.retrain import main as retrain_main
from clearer_nni.search import main as search_main
from conftest import REPO
from test_retrain import FAST, make_checkpoint, make_genotype

TINY_SPACE = str(REPO / "search_spaces" / "tiny.yaml")


def _png(path, h=40, w=40, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _nothing_written(tmp_path, name="out"):
    return not (tmp_path / name).exists() and not list(tmp_path.glob(f".{name}*"))


def _one_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# -- data: image files and folders (through retrain --data) -------------------------------------------

def _zero_byte(folder):
    (folder / "bad.png").write_bytes(b"")


def _truncated(folder):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(buf, format="PNG")
    (folder / "bad.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _corrupt_jpeg(folder):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (folder / "bad.jpg").write_bytes(buf.getvalue()[:200] + b"\x00garbage" * 10)


def _not_an_image(folder):
    (folder / "bad.png").write_text("this is not a PNG")


def _too_small(folder):
    _png(folder / "bad.png", h=10, w=12)


@pytest.mark.parametrize("make, message", [
    (_zero_byte, "bad.png: empty file"),
    (_truncated, "bad.png"),
    (_corrupt_jpeg, "bad.jpg"),
    (_not_an_image, "bad.png"),
    (_too_small, "bad.png: image 12x10 is smaller than the 32x32 patch"),
])
def test_a_bad_image_in_the_training_folder_is_named(tmp_path, capsys, make, message):
    folder = tmp_path / "imgs"
    for i in range(3):
        _png(folder / f"ok{i}.png", seed=i)
    make(folder)
    geno = tmp_path / "g.json"
    make_genotype(geno)
    code = retrain_main(["--genotype", str(geno), "--data", str(folder), "--val-data", "skimage",
                         "--out", str(tmp_path / "out"), *FAST])
    line = _one_error(capsys)
    assert code == 2 and message in line, line
    assert _nothing_written(tmp_path)


def _paired(root, inputs, targets, size=(40, 40), target_size=None):
    for name in inputs:
        _png(root / "input" / name, *size)
    for name in targets:
        _png(root / "target" / name, *(target_size or size))
    return f"paired:{root}"


@pytest.mark.parametrize("case, message", [
    ("missing_target", "lonely.png: no matching target"),
    ("extra_target", "extra.png: no matching input"),
    ("mismatched", "a.png: size 40x40 differs from its target"),
    ("empty", "no image files"),
])
def test_bad_paired_or_empty_folder_is_named(tmp_path, capsys, case, message):
    root = tmp_path / "pairs"
    if case == "missing_target":
        spec = _paired(root, ["a.png", "lonely.png"], ["a.png"])
    elif case == "extra_target":
        spec = _paired(root, ["a.png"], ["a.png", "extra.png"])
    elif case == "mismatched":
        spec = _paired(root, ["a.png"], ["a.png"], target_size=(40, 36))
    else:
        root.mkdir()
        spec = str(root)
    make_genotype(tmp_path / "g.json")
    code = retrain_main(["--genotype", str(tmp_path / "g.json"), "--data", spec, "--val-data", "skimage",
                         "--out", str(tmp_path / "out"), *FAST])
    line = _one_error(capsys)
    assert code == 2 and message in line and "pairs" in line, line
    assert _nothing_written(tmp_path)


def test_rgba_palette_16_bit_and_1_bit_images_are_converted(tmp_path):
    """Not refused: read as documented in docs/DATA.md (alpha dropped, palette expanded, /65535, 0/1)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, np.full((40, 40, 1), 9, np.uint8)], -1), "RGBA").save(folder / "a.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(folder / "b.png")
    Image.fromarray((np.arange(1600, dtype=np.uint16).reshape(40, 40) * 40)).save(folder / "c.png")
    Image.fromarray(np.eye(40, dtype=bool)).save(folder / "d.png")
    data = load_dataset(str(folder), channels=3)
    assert [x.shape for x in data.images] == [(40, 40, 3)] * 4
    assert all(x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 for x in data.images)
    np.testing.assert_allclose(data.images[0], rgb / 255.0, atol=1e-7)  # alpha dropped, not composited
    np.testing.assert_allclose(data.images[2][..., 0], np.arange(1600).reshape(40, 40) * 40 / 65535.0, atol=1e-7)
    assert set(np.unique(data.images[3])) == {0.0, 1.0}


# -- genotype files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (None, "not valid JSON"),  # truncated: the first half of a real genotype
    ("[1, 2, 3]", "expected a JSON object, got list"),
    ('{"format": "something-else", "version": 1}', "bad.json"),
    ("\udcff", "bad.json"),  # not UTF-8
])
def test_a_malformed_truncated_or_foreign_genotype_is_refused(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    if content is None:
        text = json.dumps(make_genotype().to_dict())
        path.write_text(text[: len(text) // 2])
    elif content == "\udcff":
        path.write_bytes(b"\xff\xfe{")
    else:
        path.write_text(content)
    code = retrain_main(["--genotype", str(path), "--out", str(tmp_path / "out"), *FAST])
    line = _one_error(capsys)
    assert code == 2 and message in line and "bad.json" in line, line
    assert _nothing_written(tmp_path)


# -- settings ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--sigma", "nan"], "sigma must be a finite number >= 0, got nan"),
    (["--lambda-arch", "nan"], "lambda_arch must be a finite number >= 0, got nan"),
    (["--lambda-comp", "-0.5"], "lambda_comp must be a finite number >= 0, got -0.5"),
    (["--steps", "5", "--warmup-steps", "9"], "warmup_steps (9) must be < steps (5)"),
    (["--precision", "16-mixed", "--device", "cpu"], "16-mixed needs a CUDA GPU"),
    (["--data", "bsd500x"], "unknown dataset 'bsd500x'"),
    (["--threads", "-1"], "threads must be >= 0 (0: auto), got -1"),
    (["--strategy", "spos", "--select", "perturbation"], "which --strategy spos never trains: use --select rank"),
    (["--rank-max-params", "10000"], "they need --select rank, not argmax"),
])
def test_bad_search_settings(tmp_path, capsys, args, message):
    code = search_main(["--space", TINY_SPACE, "--no-progress", "--out", str(tmp_path / "out"), *args])
    line = _one_error(capsys)
    assert code == 2 and message in line, line
    assert _nothing_written(tmp_path)


def test_unknown_space_key_names_the_space_file(tmp_path, capsys):
    space = tmp_path / "s.yaml"
    space.write_text(open(TINY_SPACE).read().replace("  stem: paper\n", "  stem: paper\n  widht: 3\n"))
    assert search_main(["--space", str(space), "--no-progress", "--out", str(tmp_path / "out")]) == 2
    line = _one_error(capsys)
    assert "s.yaml" in line and "unknown space key(s) ['widht']" in line, line
    assert _nothing_written(tmp_path)


# -- the output folder -------------------------------------------------------------------------------

def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path, capsys):
    make_genotype(tmp_path / "g.json")
    (tmp_path / "out").write_text("mine")
    assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(tmp_path / "out"), *FAST]) == 2
    line = _one_error(capsys)
    assert "output path exists and is not a folder" in line and "out" in line
    assert (tmp_path / "out").read_text() == "mine" and not list(tmp_path.glob(".out*"))
    assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(tmp_path / "out" / "sub"),
                         *FAST]) == 2
    line = _one_error(capsys)
    assert str(tmp_path / "out") in line, line  # e.g. "[Errno 20] Not a directory: '.../out'"
    assert (tmp_path / "out").read_text() == "mine"


def test_out_in_a_folder_that_is_not_writable_is_refused(tmp_path, capsys, monkeypatch):
    import clearer_nni.runtime as runtime

    parent = tmp_path / "locked"
    parent.mkdir()
    real = os.access
    monkeypatch.setattr(runtime.os, "access", lambda p, mode: False if str(p) == str(parent) else real(p, mode))
    make_genotype(tmp_path / "g.json")
    assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(parent / "out"), *FAST]) == 2
    line = _one_error(capsys)
    assert f"output folder is not writable: {parent}" in line, line
    assert list(parent.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_out_in_a_read_only_folder_is_refused(tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    make_genotype(tmp_path / "g.json")
    parent.chmod(0o500)
    try:
        assert retrain_main(["--genotype", str(tmp_path / "g.json"), "--out", str(parent / "out"), *FAST]) == 2
    finally:
        parent.chmod(0o700)
    assert "not writable" in _one_error(capsys)


# -- safe loading ------------------------------------------------------------------------------------

class _Payload:
    """What a malicious checkpoint would hold: unpickling it calls a function."""

    def __reduce__(self):
        return (print, ("UNPICKLED-CODE-RAN",))


@pytest.mark.parametrize("command", ["evaluate", "retrain-supernet", "retrain-resume"])
def test_a_checkpoint_that_would_run_code_is_refused_unexecuted(tmp_path, capsys, command):
    evil = tmp_path / "evil.pt"
    make_genotype(tmp_path / "g.json")
    if command == "evaluate":
        doc = torch.load(make_checkpoint(tmp_path / "m.ckpt"), weights_only=True)
        torch.save({**doc, "metadata": {"x": _Payload()}}, evil)
        folder = tmp_path / "imgs"
        _png(folder / "a.png")
        code = evaluate_main(["--model", str(evil), "--data", str(folder), "--out", str(tmp_path / "out"),
                              "--no-progress"])
    elif command == "retrain-supernet":
        torch.save({"format": "clearer-nni-supernet", "version": 1, "state_dict": _Payload()}, evil)
        code = retrain_main(["--genotype", str(tmp_path / "g.json"), "--init-from-supernet", str(evil),
                             "--out", str(tmp_path / "out"), *FAST])
    else:  # a planted resume checkpoint: skipped with a warning, and nothing else to resume from
        folder = tmp_path / ".out.partial" / "checkpoints"
        folder.mkdir(parents=True)
        torch.save({"format": "clearer-nni-retrain-state", "step": 1, "config": _Payload()},
                   folder / "step-0000001.pt")
        with pytest.warns(RuntimeWarning, match="step-0000001.pt: unreadable checkpoint"):
            code = retrain_main(["--out", str(tmp_path / "out"), "--resume"])
    captured = capsys.readouterr()
    assert "UNPICKLED-CODE-RAN" not in captured.out + captured.err
    line = [x for x in captured.err.strip().splitlines() if x.startswith("error: ")]
    assert code == 2 and len(line) == 1, captured.err
    if command == "retrain-resume":
        assert "nothing to resume" in line[0]
    else:
        assert "evil.pt" in line[0] and "not a readable" in line[0], line
    assert not (tmp_path / "out").exists()


# -- threads (row 46) --------------------------------------------------------------------------------

def test_threads_auto_leaves_a_core_or_follows_omp_num_threads(monkeypatch):
    import os

    import torch

    from clearer_nni.runtime import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        cpus = len(os.sched_getaffinity(0))
        assert set_threads(0) == max(1, cpus - 1) == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert set_threads(0) == 3 == torch.get_num_threads()
        assert set_threads(2) == 2 == torch.get_num_threads()  # an explicit count wins over the environment
        for bad in (-1, 1.5, True):
            with pytest.raises(ValueError, match="threads must be an integer >= 0"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("module", ["retrain", "evaluate", "restore"])
def test_negative_threads_is_refused_by_every_command(tmp_path, capsys, module):
    import importlib

    main = importlib.import_module(f"clearer_nni.{module}").main
    args = {"retrain": ["--genotype", str(tmp_path / "g.json"), "--out", str(tmp_path / "out")],
            "evaluate": ["--model", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / "out")],
            "restore": [str(tmp_path), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "m.ckpt")]}[module]
    code = main([*args, "--threads", "-1"])
    line = _one_error(capsys)
    assert code == 2 and "threads must be >= 0 (0: auto), got -1" in line, line
    assert not (tmp_path / "out").exists()
