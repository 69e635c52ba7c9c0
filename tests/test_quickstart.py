"""The main job (`make demo` = `clearer-nni demo`) end to end, on a tiny experiment."""

from __future__ import annotations

import re

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


def test_quickstart_goes_on_when_the_experiments_duration_ends_it_early(tmp_path, capsys):
    # 40 trials cannot finish in 20 s (each is a few seconds of start-up alone); NNI submits the first at once,
    # lets the running one finish when the duration is up, and ends the experiment
    space = {"lambda_arch": {"_type": "choice", "_value": [round(0.01 * i, 2) for i in range(40)]}}
    config = experiment_file(tmp_path, "--space tiny --steps 10 --warmup-steps 2 --log-every 5", space, trials=40,
                             code_dir=REPO, extra="maxExperimentDuration: 20s")
    out = tmp_path / "qs"
    code = main(["--config", str(config), "--out", str(out), "--port", str(free_port()),
                 "--retrain-steps", "2", "--timeout", "600"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert re.search(r"\d+ of 40 trials succeeded \(the experiment's maxExperimentDuration \(20s\) ended it\); "
                     "going on with the trials that finished", printed), printed
    assert "time per stage: NNI experiment" in printed
    for path in ("genotype.json", "report/table.md", "retrain/model.ckpt", "eval/summary.csv"):
        assert (out / path).is_file(), path


def test_quickstart_without_a_finished_trial_is_one_clear_error(tmp_path, capsys):
    config = experiment_file(tmp_path, "--space tiny --steps 2000 --warmup-steps 2 --log-every 500",
                             {"lambda_arch": {"_type": "choice", "_value": [0.01]}}, trials=1, code_dir=REPO)
    out = tmp_path / "qs"
    code = main(["--config", str(config), "--out", str(out), "--port", str(free_port()), "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(r"^error: no trial of the experiment succeeded \(.*\): the demo's --timeout of 1 s ended the "
                     r"experiment$", err, re.M), err
    assert not (out / "genotype.json").exists() and not (out / "retrain").exists()
