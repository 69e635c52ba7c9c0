"""``--select rank``: a search (and a trial) that ends by ranking its space with its own super-network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clearer_nni.archs.space import count_parameters
from clearer_nni.config import resolve_search
from clearer_nni.nas.genotype import Genotype
from clearer_nni.nas.ranking import read_rows

REPO = Path(__file__).resolve().parents[1]
#: A tiny spos search (~1 s of training here); its ranking scores the tiny space's 16 architectures.
FLAGS = {"space": "tiny", "strategy": "spos", "steps": 20, "log_every": 10, "progress": False}


def test_spos_selects_by_rank_unless_told_otherwise():
    assert resolve_search({"strategy": "spos", "space": "tiny"}).select == "rank"
    assert resolve_search({"strategy": "spos", "space": "tiny", "select": "argmax"}).select == "argmax"
    assert resolve_search({"space": "tiny"}).select == "argmax"  # the paper's, for darts (and gumbel)
    assert resolve_search({"strategy": "gumbel", "space": "tiny"}).select == "argmax"


@pytest.fixture(scope="module")
def ranked_search(tmp_path_factory):
    from clearer_nni.search import run_search

    out = tmp_path_factory.mktemp("select") / "search"
    return run_search(resolve_search({**FLAGS, "finetune_steps": 3, "out": str(out)}))


def test_a_spos_search_publishes_the_best_row_of_its_ranking(ranked_search):
    out = ranked_search.out
    rows = read_rows(out / "ranking" / "ranking.csv")
    assert len(rows) == 16 == len({r["code"] for r in rows})
    best = max(rows, key=lambda r: (r["psnr"], -r["params"]))
    g = Genotype.load(out / "genotype.json")
    meta = g.metadata
    assert g.code() == best["code"] == meta["rank"]["best"]["code"]
    assert meta["select"] == "rank" and meta["strategy"] == "spos" and meta["rank"]["ranked"] == 16
    assert meta["val_psnr_derived"] == best["psnr"] == ranked_search.derived_psnr
    assert meta["params_derived"] == best["params"]
    argmax = next(r for r in rows if r["code"] == meta["argmax_code"])  # α's argmax kept for comparison
    assert meta["val_psnr_argmax"] == argmax["psnr"] <= best["psnr"]
    assert Genotype(g.space, meta["argmax_choices"]).code() == meta["argmax_code"]
    for name in ("pareto.csv", "pareto.png", "ranking.json"):
        assert (out / "ranking" / name).stat().st_size > 0
    assert (out / "supernet.pt").is_file() and (out / "genotype.png").is_file()
    # the fine-tune estimate (the trial metric with finetune_steps > 0) is of the chosen architecture
    assert meta["finetune"]["steps"] == 3 and meta["val_psnr_finetuned"] == ranked_search.finetuned_psnr
    assert meta["params_derived"] == count_parameters(g.build())


def test_an_explicit_argmax_of_spos_warns(tmp_path, capsys):
    from clearer_nni.search import main

    assert main(["--space", "tiny", "--strategy", "spos", "--select", "argmax", "--steps", "4", "--warmup-steps", "1",
                 "--log-every", "2", "--no-progress", "--out", str(tmp_path / "s")]) == 0
    assert "warning: --strategy spos trains no α, so this genotype (--select argmax)" in capsys.readouterr().err
    assert not (tmp_path / "s" / "ranking").exists()


def test_clearer_nni_rank_of_the_run_scores_the_same(ranked_search, tmp_path):
    """The search's ranking is the one ``clearer-nni rank`` makes afterwards from its supernet.pt."""
    from clearer_nni.rank import rank_run

    summary = rank_run(ranked_search.out, tmp_path / "again", val_patches=8, progress=False)
    strip = lambda rows: sorted((r["code"], r["params"], r["flops"], r["psnr"]) for r in rows)  # noqa: E731
    assert strip(read_rows(tmp_path / "again" / "ranking.csv")) == strip(
        read_rows(ranked_search.out / "ranking" / "ranking.csv"))
    assert summary["best"]["code"] == ranked_search.genotype.code()


def test_rank_limits_choose_within_them_and_fail_before_training(ranked_search, tmp_path, capsys):
    from clearer_nni.nas.ranking import check_limits
    from clearer_nni.search import main, run_search

    rows = read_rows(ranked_search.out / "ranking" / "ranking.csv")
    space = ranked_search.genotype.space
    for r in rows:  # the costs check_limits adds up are the ranking's: each row's own limits are met...
        check_limits(space, r["params"], r["flops"])
    smallest = min(rows, key=lambda r: (r["params"], r["flops"]))
    with pytest.raises(ValueError, match=f"the smallest has {smallest['params']} parameters"):
        check_limits(space, smallest["params"] - 1)  # ...and one less is not
    limit = sorted(r["params"] for r in rows)[4]
    r = run_search(resolve_search({**FLAGS, "rank_max_params": limit, "out": str(tmp_path / "limited")}))
    fits = [row for row in rows if row["params"] <= limit]  # the same seed: the same super-network
    assert r.genotype.code() == max(fits, key=lambda row: (row["psnr"], -row["params"]))["code"]
    assert r.genotype.metadata["rank"]["max_params"] == limit == r.genotype.metadata["rank_max_params"]
    assert r.genotype.metadata["params_derived"] <= limit
    # a limit no architecture meets: one error line before the search trains, nothing written
    assert main(["--space", "tiny", "--strategy", "spos", "--rank-max-params", "10", "--no-progress",
                 "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no ranked architecture has at most 10 parameters"), err
    assert not (tmp_path / "none").exists() and not list(tmp_path.glob(".none*"))


def _final(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("[nni final] "))
    return json.loads(line[len("[nni final] "):])


def test_a_standalone_spos_trial_reports_the_best_ranked_architecture(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    proc = subprocess.run([sys.executable, "-m", "clearer_nni.experiment.trial", "--space", "tiny", "--strategy",
                           "spos", "--steps", "20", "--log-every", "10", "--out", str(tmp_path / "t")],
                          env={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    final = _final(proc.stdout)
    rows = read_rows(tmp_path / "t" / "ranking" / "ranking.csv")
    best = max(rows, key=lambda r: (r["psnr"], -r["params"]))
    assert final["default"] == best["psnr"] and final["architecture"] == best["code"]
    assert final["select"] == "rank" and final["strategy"] == "spos" and final["ranked_architectures"] == 16
    assert final["rank_method"] == "exhaustive"
    assert final["argmax_inherited_psnr"] == next(r["psnr"] for r in rows if r["code"] == final["argmax_architecture"])
    assert Genotype.load(final["genotype"]).code() == best["code"]


def test_a_spos_trial_in_a_real_nni_experiment_reports_its_ranking(tmp_path):
    """One tiny spos trial under nnictl on loopback: its final result (through NNI) is the ranking's best."""
    from clearer_nni.experiment import nnictl, rest
    from helpers import experiment_file, wait_for_trials

    workdir = tmp_path / "nni"
    config = experiment_file(tmp_path, "--space tiny --strategy spos --steps 20 --log-every 10",
                             {"seed": {"_type": "choice", "_value": [0]}}, trials=1, code_dir=REPO, name="spos.yml")
    port = rest.free_port()
    exp_id = nnictl.create_experiment(config, port, workdir)
    try:
        [trial] = wait_for_trials(port, 1, timeout=240)
        assert trial["status"] == "SUCCEEDED", trial
        final = json.loads(json.loads(trial["finalMetricData"][0]["data"]))
    finally:
        leftover = nnictl.stop_experiment(exp_id, workdir, timeout=60)
    assert leftover == []
    rows = read_rows(Path(final["genotype"]).parent / "ranking" / "ranking.csv")
    assert len(rows) == 16 and final["select"] == "rank"
    assert final["default"] == max(r["psnr"] for r in rows)
    assert Genotype.load(final["genotype"]).code() == final["architecture"]
