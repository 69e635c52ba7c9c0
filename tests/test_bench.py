"""Ground-truth tables: a tiny table built for real, its query API and command, the statistics, the shipped table."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

from clearer_nni import bench
from clearer_nni.bench.build import read_table
from clearer_nni.bench.command import main as bench_main
from clearer_nni.nas.genotype import Genotype

TINY = dict(name="tiny", space={"channels": [4, 8, 16], "columns": [1, 1], "stem": "paper", "global_residual": True},
            degradation={"kind": "correlated", "sigma": 50, "correlation_length": 2}, train_data="skimage",
            steps=6, batch_size=2, patch_size=16, val_every=3, val_patches=4, test_sets=["skimage"], seeds=[0, 1])


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """Every architecture of a 4-architecture space, 2 seeds, trained in 2 worker processes."""
    out = tmp_path_factory.mktemp("bench") / "tiny.csv"
    seen = []
    bench.build_table(bench.TableRecipe.from_dict(TINY), out, workers=2, on_row=lambda row, i, n: seen.append((i, n)))
    return out, seen


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_a_tiny_table_has_a_row_per_architecture_and_seed_with_its_recipe(tiny_table):
    out, seen = tiny_table
    assert seen[-1] == (8, 8)
    df = bench.table(out)
    assert sorted(df["architecture"].unique()) == ["F|F", "F|P", "P|F", "P|P"]
    assert sorted(df.groupby("architecture")["seed"].apply(sorted).tolist()) == [[0, 1]] * 4
    assert {"params", "flops", "train_seconds", "best_val_psnr", "skimage_psnr", "skimage_ssim", "val_psnr@3",
            "val_psnr@6"} <= set(df.columns)
    assert df["skimage_psnr"].between(5, 40).all() and (df["params"] > 0).all()
    # parameters depend on the architecture alone; PSNR on the seed too
    assert (df.groupby("architecture")["params"].nunique() == 1).all()
    meta = bench.meta(out)
    assert meta["recipe"]["steps"] == 6 and meta["recipe"]["space"]["columns"] == [1, 1]
    assert {"machine", "started", "commit", "software"} <= set(meta)


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_a_row_is_reproducible_and_the_build_resumes_with_what_is_missing(tiny_table, tmp_path):
    out, _ = tiny_table
    rows = read_table(out)
    copy = tmp_path / "tiny.csv"
    copy.with_suffix(".json").write_text(out.with_suffix(".json").read_text())
    with copy.open("w", newline="") as f:  # the build was interrupted after 7 rows
        w = csv.DictWriter(f, fieldnames=list(pd.read_csv(out).columns))
        w.writeheader()
        for r in rows[:7]:
            w.writerow(r)
    again = []
    bench.build_table(bench.TableRecipe.from_dict(TINY), copy, on_row=lambda row, i, n: again.append(row))
    assert len(again) == 1 and (again[0]["architecture"], again[0]["seed"]) == (rows[7]["architecture"], rows[7]["seed"])
    assert again[0]["skimage_psnr"] == pytest.approx(rows[7]["skimage_psnr"], abs=1e-6)  # the same training
    assert len(read_table(copy)) == 8


def test_a_table_of_other_settings_is_refused(tiny_table):
    out, _ = tiny_table
    other = bench.TableRecipe.from_dict({**TINY, "steps": 7, "val_every": 7})
    with pytest.raises(bench.RecipeError, match="holds a table of other settings.*'steps': \\(6, 7\\)"):
        bench.build_table(other, out)
    with pytest.raises(bench.RecipeError, match="are not architecture codes of this space"):
        bench.build_table(bench.TableRecipe.from_dict(TINY), out, archs=["PP|FF"])


def test_lookup_by_code_genotype_and_file(tiny_table, tmp_path):
    out, _ = tiny_table
    recipe = bench.recipe_of(out)
    rows = bench.lookup("P|F", out)
    assert list(rows["seed"]) == [0, 1] and set(rows["architecture"]) == {"P|F"}
    g = Genotype(recipe.space_config(), {"cell1.col1": "parallel", "cell2.col1": "fusion"})
    assert bench.lookup(g, out).equals(rows)
    assert bench.lookup(g.save(tmp_path / "g.json"), out).equals(rows)
    with pytest.raises(bench.TableError, match="neither a genotype file nor an architecture code"):
        bench.lookup("PPP", out)
    other = Genotype(recipe.space_config().__class__(channels=(4, 8, 16), columns=(1, 1), stem="paper"),
                     {"cell1.col1": "parallel", "cell2.col1": "fusion"})
    with pytest.raises(bench.TableError, match="not of table 'tiny'.*global_residual"):
        bench.lookup(other, out)


def test_bench_query_and_stats_commands(tiny_table, capsys):
    out, _ = tiny_table
    assert bench_main(["query", "F|P", "--table", str(out), "--metric", "skimage_psnr"]) == 0
    printed = capsys.readouterr().out
    assert "F|P" in printed and "of 4 in the table (skimage_psnr mean" in printed
    assert bench_main(["stats", "--table", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "best_val_psnr: 4 architectures x 2 seeds; Kendall tau between seeds" in printed
    assert bench_main(["query", "PP|PP", "--table", str(out)]) == 2
    assert "error: 'PP|PP' is neither a genotype file nor an architecture code" in capsys.readouterr().err
    assert bench_main(["query", "P|P", "--table", "nope"]) == 2
    assert "error: no table 'nope'; shipped tables:" in capsys.readouterr().err


# -- statistics on rows whose answers are known -----------------------------------------------------

def _rows(values: dict[int, list[float]]) -> list[dict]:
    codes = ["PP", "PF", "FP", "FF"]
    return [{"architecture": c, "seed": s, "bsd68_psnr": v, "params": 10 * (4 - i)}
            for s, vs in values.items() for i, (c, v) in enumerate(zip(codes, vs))]


def test_agreement_of_seeds_that_agree_and_that_disagree():
    same = bench.agreement(_rows({0: [4, 3, 2, 1], 1: [4.1, 3.1, 2.1, 1.1]}))
    assert same.tau == pytest.approx(1.0) and same.accepted
    assert same.within == pytest.approx(np.std([4, 4.1], ddof=1))
    assert same.between == pytest.approx(np.std([4.05, 3.05, 2.05, 1.05], ddof=1))
    flipped = bench.agreement(_rows({0: [4, 3, 2, 1], 1: [1, 2, 3, 4], 2: [4, 3, 2, 1]}))
    assert flipped.taus == {(0, 1): pytest.approx(-1.0), (0, 2): pytest.approx(1.0), (1, 2): pytest.approx(-1.0)}
    assert flipped.tau == pytest.approx(-1 / 3) and not flipped.accepted
    assert "not accepted" in flipped.line()


def test_standing_percentile_and_pareto_distance():
    rows = _rows({0: [4, 3, 2, 1], 1: [4, 3, 2, 1]})
    s = bench.standing(rows, "PF")
    assert (s.rank, s.of, s.best_architecture) == (2, 4, "PP") and s.regret == pytest.approx(1.0)
    assert s.line() == "PF: 2nd of 4 in the table (bsd68_psnr mean 3.00 dB), 1.00 dB below the best (PP)"
    assert bench.standing(rows, "PP").line().endswith("the best")
    assert bench.percentile(3.0, [4, 2, 1]) == pytest.approx(200 / 3)
    # PP has the most parameters and the best PSNR: all lie on the front (each cheaper one is better than none)
    assert bench.pareto_distance(rows, "PF") == 0.0
    worse = _rows({0: [1, 3, 2, 4]})  # FF: cheapest and best: every other one is dominated by it
    assert bench.pareto_distance(worse, "PP") == pytest.approx(3.0)
    with pytest.raises(KeyError):
        bench.standing(rows, "XX")


# -- the shipped table ------------------------------------------------------------------------------

def test_the_shipped_table_is_whole_small_and_accepted_by_its_own_test():
    path = bench.TABLES_DIR / f"{bench.DEFAULT_TABLE}.csv"
    assert path.stat().st_size < 1_000_000
    df = bench.table()
    recipe = bench.recipe_of()
    every = bench.architectures(recipe)
    assert len(every) >= 16 and sorted(df["architecture"].unique()) == sorted(every)
    assert (df.groupby("architecture")["seed"].nunique() >= 3).all()
    assert not df[["params", "set12_psnr", "bsd68_psnr", "best_val_psnr"]].isna().any().any()
    agreement = bench.agreement(df)
    assert agreement.accepted, agreement.line()
    meta = bench.meta()
    assert meta["commit"] and meta["machine"]["cpus"] and meta["started"].startswith("2026")
    assert math.isfinite(df["train_seconds"].sum())


def test_where_says_where_a_genotype_of_the_tables_space_sits(tmp_path):
    recipe = bench.recipe_of()
    space = recipe.space_config()
    best = bench.means(bench.table()).index[0]
    from clearer_nni.nas.ranking import choices_of

    g = Genotype(space, choices_of(space, best), metadata={"degradation": recipe.make_degradation().describe()})
    assert bench.where(g) == f"ground-truth table {bench.DEFAULT_TABLE}: {bench.standing(bench.table(), best).line()}"
    assert "1st of" in bench.where(g) and "the best" in bench.where(g)
    other_task = Genotype(space, g.choices, metadata={"degradation": {"kind": "gaussian", "sigma": 50.0,
                                                                      "clip": False}})
    assert bench.where(other_task) is None  # the table knows one task only
    from clearer_nni.archs.space import load_space_file

    assert bench.where(Genotype(load_space_file("tiny"), {l: "fusion" for l in load_space_file("tiny").labels})) is None
    assert json.loads(g.save(tmp_path / "g.json").read_text())["space"]["global_residual"] is True
    assert bench.matching_table(tmp_path / "g.json") == bench.DEFAULT_TABLE


def test_the_table_space_file_and_recipes_search_the_tables_space_and_task():
    """`clearer-nni search --space table` searches exactly what the shipped table trained (its space and noise)."""
    from clearer_nni.archs.space import load_space_file
    from clearer_nni.config import resolve_search
    from clearer_nni.data import degradation_for

    recipe = bench.recipe_of()
    assert load_space_file("table") == recipe.space_config()
    for name in ("table", "table-spos"):
        cfg = resolve_search({"space": "table", "recipe": name})
        noise = degradation_for(cfg.degradation, cfg.sigma, cfg.noise_clip, correlation_length=cfg.correlation_length)
        assert noise.describe() == recipe.make_degradation().describe(), name
        assert cfg.data == recipe.train_data
    assert resolve_search({"space": "table", "recipe": "table-spos"}).strategy == "spos"
