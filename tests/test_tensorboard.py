"""TensorBoard scalars of search and retraining: the α curves, losses, PSNR and learning rate."""

from __future__ import annotations

import csv

import pytest

from clearer_nni.search import SearchConfig, run_search
from test_retrain import FAST, make_genotype

pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    ea = EventAccumulator(str(folder))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


@pytest.mark.parametrize("inside_nni", [False, True])
def test_search_events_hold_every_columns_alpha_curve(tmp_path, monkeypatch, inside_nni):
    if inside_nni:  # NNI's web UI looks in the trial's $NNI_OUTPUT_DIR/tensorboard
        monkeypatch.setenv("NNI_OUTPUT_DIR", str(tmp_path / "trial"))
    else:
        monkeypatch.delenv("NNI_OUTPUT_DIR", raising=False)
    out = tmp_path / "run"
    run_search(SearchConfig(space="tiny", steps=20, log_every=5, out=str(out), progress=False),
               explicit=["steps", "log_every"])
    folder = (tmp_path / "trial" if inside_nni else out) / "tensorboard" / "search"
    assert not inside_nni or not (out / "tensorboard").exists()
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
