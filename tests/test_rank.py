"""``clearer-nni rank``: every architecture of the tiny space (16) scored with a real search's super-network."""

from __future__ import annotations

import pytest

from clearer_nni.nas.genotype import Genotype
from clearer_nni.nas.ranking import pareto_front, read_rows
from clearer_nni.rank import main, rank_run


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from clearer_nni.config import resolve_search
    from clearer_nni.search import run_search

    out = tmp_path_factory.mktemp("rank") / "search"
    run_search(resolve_search({"space": "tiny", "steps": 20, "log_every": 10, "out": str(out), "progress": False}))
    return out


@pytest.fixture(scope="module")
def ranked(searched):
    out = searched.parent / "ranked"
    summary = rank_run(searched, out, val_patches=8, progress=False)
    return out, summary


def _scores(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_every_architecture_once_and_a_non_dominated_front(ranked):
    out, summary = ranked
    rows = read_rows(out / "ranking.csv")
    assert len(rows) == 16 and len({r["code"] for r in rows}) == 16 and summary["method"] == "exhaustive"
    front = read_rows(out / "pareto.csv")
    assert _scores(front) == _scores(pareto_front(rows))
    for f in front:  # nothing is at most as large and strictly better
        assert not any(r["params"] <= f["params"] and r["psnr"] > f["psnr"] for r in rows)
    for r in rows:  # and every architecture is matched or beaten by the front
        assert any(f["params"] <= r["params"] and f["psnr"] >= r["psnr"] for f in front)
    best = Genotype.load(out / "genotype.json")
    assert best.code() == max(rows, key=lambda r: r["psnr"])["code"] and best.metadata["select"] == "rank"
    assert (out / "pareto.png").stat().st_size > 0 and not (out.parent / f".{out.name}.partial").exists()


def test_max_params_respects_its_limit(searched, ranked):
    rows = read_rows(ranked[0] / "ranking.csv")
    limit = sorted(r["params"] for r in rows)[4]
    out = searched.parent / "limited"
    assert main([str(searched), "--out", str(out), "--val-patches", "8", "--max-params", str(limit),
                 "--no-progress"]) == 0
    best = Genotype.load(out / "genotype.json")
    from clearer_nni.archs.space import count_parameters

    assert count_parameters(best.build()) <= limit
    fits = [r for r in rows if r["params"] <= limit]
    assert best.metadata["val_psnr_inherited"] == max(r["psnr"] for r in fits)


def test_an_interrupted_ranking_continues_to_the_same_result(searched, ranked):
    out = searched.parent / "resumed"
    seen = []

    def stop(row):
        seen.append(row)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rank_run(searched, out, val_patches=8, progress=False, on_row=stop)
    staging = out.parent / f".{out.name}.partial"
    assert len(read_rows(staging / "ranking.csv")) == 5 and not out.exists()
    seen.clear()
    rank_run(searched, out, val_patches=8, progress=False, on_row=seen.append)
    assert len(seen) == 11  # only the missing ones were scored
    assert _scores(read_rows(out / "ranking.csv")) == _scores(read_rows(ranked[0] / "ranking.csv"))


def test_bad_input_is_one_error_line(searched, tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "no supernet.pt" in capsys.readouterr().err
    assert main([str(searched), "--out", str(tmp_path / "y"), "--val-patches", "8", "--max-params", "10",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no ranked architecture has at most 10 parameters")
    assert not (tmp_path / "y").exists()


def test_a_space_too_large_to_enumerate_is_searched_by_evolution(searched, tmp_path):
    from clearer_nni.nas.ranking import Scorer, rank_space
    from clearer_nni.rank import _search_patches
    from clearer_nni.training.checkpoint import load_supernet

    geno = Genotype.load(searched / "genotype.json")
    scorer = Scorer(load_supernet(searched / "supernet.pt"), *reversed(_search_patches(geno, 8, None, None)))
    rows, method = rank_space(scorer, tmp_path / "r.csv", budget=6, max_enumerate=8, progress=False)
    assert method == "evolution" and len(rows) == 6 == len({r["code"] for r in rows})
    again, _ = rank_space(scorer, tmp_path / "r.csv", budget=6, max_enumerate=8, progress=False)
    assert _scores(again) == _scores(rows)


def test_the_shared_path_scores_the_exported_network(searched):
    """Parameters, FLOPs and PSNR of the scorer's shared-module path equal those of the genotype's own network
    with the transferred weights; the super-network is left as it was."""
    import torch

    from clearer_nni.archs.space import count_parameters
    from clearer_nni.metrics import mean_psnr
    from clearer_nni.nas.ranking import Scorer, choices_of, network_flops
    from clearer_nni.nas.search_logger import recalibrated_bn
    from clearer_nni.rank import _search_patches
    from clearer_nni.training.checkpoint import load_supernet

    geno = Genotype.load(searched / "genotype.json")
    monitor, calibration = _search_patches(geno, 8, None, None)
    supernet = load_supernet(searched / "supernet.pt")
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    scorer = Scorer(supernet, calibration, monitor)
    for code in ("PP|PP", "FP|FF", "FF|PF"):
        choices = choices_of(geno.space, code)
        row = scorer.score(choices)
        network = Genotype(geno.space, choices).build()
        supernet.transfer_to(network, choices)
        with recalibrated_bn(network, calibration, "cpu"):
            psnr = mean_psnr(network, monitor, "cpu")
        assert row["code"] == code and row["params"] == count_parameters(network)
        assert row["flops"] == network_flops(network, 1) and row["psnr"] == pytest.approx(psnr, abs=1e-5)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def test_prefix_sharing_gives_the_per_architecture_scores(searched):
    from clearer_nni.nas.ranking import Scorer, all_choices
    from clearer_nni.rank import _search_patches
    from clearer_nni.training.checkpoint import load_supernet

    geno = Genotype.load(searched / "genotype.json")
    monitor, calibration = _search_patches(geno, 8, None, None)
    scorer = Scorer(load_supernet(searched / "supernet.pt"), calibration, monitor)
    each = [scorer.score(c) for c in all_choices(geno.space)]
    shared = []
    scorer.score_tree(emit=shared.append)
    assert [r["code"] for r in shared] == [r["code"] for r in each]
    for a, b in zip(shared, each):
        assert (a["params"], a["flops"]) == (b["params"], b["flops"]) and a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
    some = [r["code"] for r in each[3:9]]
    part = []
    scorer.score_tree(some, part.append)
    assert [r["code"] for r in part] == some
