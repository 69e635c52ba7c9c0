"""``python -m clearer_nni.search`` end to end, and its bad inputs."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from clearer_nni.archs import load_space_file
from clearer_nni.nas import Genotype
from clearer_nni.search import main
from conftest import REPO

TINY = str(REPO / "search_spaces" / "tiny.yaml")


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_tiny_search_through_the_cli_writes_a_valid_genotype(tmp_path):
    out = tmp_path / "run"
    # (Its speed, ~6 s on 2 idle cores, is recorded in docs/RESULTS.md; the timeout only catches a hang.)
    proc = subprocess.run([sys.executable, "-m", "clearer_nni.search", "--space", TINY, "--steps", "40",
                           "--out", str(out), "--no-progress"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"genotype.json", "genotype.png", "search_log.csv", "alpha.png",
                                              "supernet.pt", "tensorboard"}
    space = load_space_file(TINY)
    g = Genotype.load(out / "genotype.json", space)
    assert g.metadata["steps"] == 40 and g.metadata["train_data"] != g.metadata["val_data"]
    assert g.metadata["params_derived"] == sum(p.numel() for p in g.build().parameters())
    rows = list(csv.DictReader(open(out / "search_log.csv")))
    assert int(rows[-1]["step"]) == 40 and "p_parallel/cell2.col2" in rows[0]
    assert all(float(r["loss_arch"]) > 0 for r in rows)
    assert "searched architecture" in proc.stdout
    sd = torch.load(out / "supernet.pt", weights_only=True)
    assert sd["format"] == "clearer-nni-supernet" and any(k.endswith("_arch_alpha") for k in sd["state_dict"])


def test_search_is_reproducible_with_a_seed(tmp_path):
    args = ["--space", TINY, "--steps", "12", "--warmup-steps", "2", "--no-progress", "--no-supernet",
            "--lambda-arch", "0.5"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = (Genotype.load(tmp_path / x / "genotype.json") for x in "ab")
    assert a.choices == b.choices and a.alpha == b.alpha


@pytest.mark.parametrize("args, message", [
    (["--steps", "5", "--warmup-steps", "5"], "warmup_steps (5) must be < steps (5)"),
    (["--lambda-arch", "-1"], "lambda_arch must be a finite number >= 0"),
    (["--lambda-comp", "nan"], "lambda_comp must be a finite number >= 0"),
    (["--sigma", "-3"], "sigma must be a finite number >= 0"),
    (["--patch-size", "4"], "patch_size must be >= 8"),
    (["--patch-size", "4096"], "smaller than"),
    (["--space", "no_such_space"], "space file not found"),
    (["--data", "/no/such/folder"], "no/such/folder"),
])
def test_bad_input_gives_one_clear_error_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    argv = ["--space", TINY, "--steps", "3", "--warmup-steps", "1", "--no-progress", "--out", str(out)]
    assert main(argv + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_non_empty_output_folder_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["--space", TINY, "--steps", "3", "--warmup-steps", "1", "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").exists()
    assert main(argv + ["--overwrite"]) == 0
    assert (out / "genotype.json").exists() and not (out / "keep.txt").exists()


def test_bad_search_setting_in_a_recipe(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((REPO / "recipes" / "tiny.yaml").read_text() + "  stepz: 3\n")
    assert main(["--space", TINY, "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "unknown search setting(s) ['stepz']" in capsys.readouterr().err
    assert main(["--space", TINY, "--recipe", "nosuch", "--out", str(tmp_path / "o")]) == 2
    assert "recipe not found: nosuch" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_recipe_sets_defaults_that_flags_override(tmp_path):
    from clearer_nni.config import SearchConfig, resolve_search

    assert resolve_search({}) == SearchConfig(recipe="paper", data="bsds500")  # denoise: the paper's recipe
    tiny = resolve_search({"space": "tiny"})
    assert (tiny.recipe, tiny.steps, tiny.batch_size, tiny.log_every) == ("tiny", 40, 4, 10)
    assert resolve_search({"space": "tiny", "recipe": "demo", "steps": 70}).steps == 70
    assert resolve_search({"space": "tiny", "recipe": "demo"}).batch_size == 8
    # the library runs exactly what it is given: no file is read behind its back
    cfg = SearchConfig(space="demo", data="bsds500", steps=5000)
    assert (cfg.data, cfg.steps, cfg.batch_size) == ("bsds500", 5000, 32)


def test_authors_options_run_and_are_recorded(tmp_path):
    out = tmp_path / "o"
    assert main(["--space", TINY, "--steps", "3", "--warmup-steps", "1", "--no-progress", "--no-supernet",
                 "--mixing", "authors", "--arch-eval-mode", "--log-base", "10", "--cost-metric", "flops",
                 "--noise-clip", "--lambda-comp", "0.1", "--out", str(out)]) == 0
    meta = Genotype.load(out / "genotype.json").metadata
    assert (meta["mixing"], meta["arch_eval_mode"], meta["log_base"], meta["cost_metric"]) == \
        ("authors", True, "10", "flops")
    assert meta["degradation"]["clip"] is True
