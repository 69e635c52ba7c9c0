"""The main job (`make demo` = `clearer-nni demo`) end to end, on a tiny experiment."""

from __future__ import annotations

from clearer_nni.experiment.rest import free_port
from clearer_nni.nas.genotype import Genotype
from clearer_nni.quickstart import main
from conftest import REPO
from helpers import experiment_file


def test_quickstart_runs_the_whole_flow(tmp_path, capsys):
    config = experiment_file(tmp_path, "--space tiny --steps 10 --warmup-steps 2 --log-every 5",
                             {"lambda_arch": {"_type": "choice", "_value": [0.01, 0.1]}}, trials=2, code_dir=REPO)
    out = tmp_path / "qs"
    code = main(["--config", str(config), "--out", str(out), "--port", str(free_port()),
                 "--retrain-steps", "4", "--timeout", "600"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "web UI http://127.0.0.1:" in printed and "(2 done)" in printed
    assert "PSNR (dB)" in printed and "scikit-image" in printed  # the evaluation table
    assert Genotype.load(out / "genotype.json").metadata["nni"]["trial_id"]
    for path in ("report/table.md", "report/pareto.png", "retrain/model.ckpt", "eval/summary.csv"):
        assert (out / path).is_file(), path
