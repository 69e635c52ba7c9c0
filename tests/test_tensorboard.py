"""TensorBoard scalars of search and retraining: the α curves, losses, PSNR and learning rate."""

from __future__ import annotations

import csv

import pytest

from clearer_nni.config import resolve_search
from clearer_nni.search import run_search
from test_retrain import FAST, make_genotype

pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    ea = EventAccumulator(str(folder))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


@pytest.mark.parametrize("inside_nni", [False, True])
def test_search_events_hold_every_columns_alpha_curve(tmp_path, monkeypatch, inside_nni):
    trial = tmp_path / "exp01" / "environments" / "local-env" / "trials" / "T1"  # NNI 3.0's layout
    button = tmp_path / "exp01" / "trials" / "T1" / "output" / "tensorboard"  # where its web UI looks
    from clearer_nni.experiment.trial import tensorboard_button
    from clearer_nni.tensorboard import BUTTON_ENV

    assert tensorboard_button(trial, "exp01", "T1") == button and tensorboard_button(trial, "other", "T1") is None
    if inside_nni:  # what the trial sets before it searches
        for key, value in {"NNI_OUTPUT_DIR": str(trial), "NNI_EXP_ID": "exp01", "NNI_TRIAL_JOB_ID": "T1",
                           BUTTON_ENV: str(button)}.items():
            monkeypatch.setenv(key, value)
        button.mkdir(parents=True)  # the button pressed before the trial ran: an empty folder
    else:
        for key in ("NNI_OUTPUT_DIR", "NNI_EXP_ID", "NNI_TRIAL_JOB_ID", BUTTON_ENV):
            monkeypatch.delenv(key, raising=False)
    out = tmp_path / "run"
    run_search(resolve_search({"space": "tiny", "steps": 20, "log_every": 5, "out": str(out), "progress": False}))
    folder = (trial if inside_nni else out) / "tensorboard" / "search"
    if inside_nni:
        assert not (out / "tensorboard").exists()
        assert button.is_symlink() and (button / "search").resolve() == folder.resolve()
    scalars = _scalars(folder)
    rows = list(csv.DictReader((out / "search_log.csv").open()))
    labels = [k for k in rows[0] if k.startswith("p_parallel/")]
    assert len(labels) == 4 and set(labels) <= set(scalars)
    assert {"loss/loss_res", "loss/loss_arch", "loss/loss_comp", "psnr/val_psnr", "lr/weights"} <= set(scalars)
    for label in labels:  # the same curve as the CSV, step by step
        assert [s for s, _ in scalars[label]] == [int(r["step"]) for r in rows]
        assert [v for _, v in scalars[label]] == pytest.approx([float(r[label]) for r in rows], abs=1e-6)


def test_retrain_events_hold_loss_psnr_and_lr(tmp_path, monkeypatch):
    from clearer_nni.retrain import main

    monkeypatch.delenv("NNI_OUTPUT_DIR", raising=False)
    geno = make_genotype(tmp_path / "genotype.json")
    assert geno is not None
    out = tmp_path / "retrain"
    assert main(["--genotype", str(tmp_path / "genotype.json"), "--out", str(out), *FAST]) == 0
    scalars = _scalars(out / "tensorboard" / "retrain")
    assert {"loss/loss", "psnr/val_psnr", "lr/weights"} <= set(scalars)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [s for s, _ in scalars["psnr/val_psnr"]] == [int(r["step"]) for r in rows]


@pytest.mark.parametrize("public", [False, True])
def test_nni_tensorboard_process_is_bound_to_loopback(tmp_path, public):
    """NNI's manager spawns ``tensorboard --bind_all --logdir_spec=...`` for the web UI's button, as
    nniTensorboardManager.js does; the loopback shim rewrites it to --host=127.0.0.1 (unless public)."""
    import os
    import subprocess

    from clearer_nni.experiment import launch
    from test_experiment import _nni_node

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "tensorboard"  # prints the arguments it got
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    script = tmp_path / "spawn.js"
    script.write_text("require('child_process').spawn('tensorboard', "
                      "['--bind_all --logdir_spec=0-T1:/x/tensorboard', '--port=6006'], "
                      "{stdio: 'inherit', shell: true, detached: true});\n")
    env = launch.nni_env(None, public=public)
    env["PATH"] = str(bindir) + os.pathsep + env["PATH"]
    proc = subprocess.run([str(_nni_node()), str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.split()
    assert args[-2:] == ["--logdir_spec=0-T1:/x/tensorboard", "--port=6006"]
    assert args[0] == ("--bind_all" if public else "--host=127.0.0.1")
