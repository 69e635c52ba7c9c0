"""Retraining a genotype (SPEC section 4), the checkpoint format and --init-from-supernet."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clearer_nni.archs import ClearerSpace, SpaceConfig
from clearer_nni.training.checkpoint import CheckpointError, data_seen, load_checkpoint, save_checkpoint
from clearer_nni.nas import ClearerDARTS, Genotype
from clearer_nni.retrain import RetrainConfig, main, run_retrain
from clearer_nni.training.checkpoint import init_from_supernet
from conftest import REPO
TINY = SpaceConfig(channels=(4, 8, 16), columns=(2, 2), stem="paper")
CHOICES = {"cell1.col1": "parallel", "cell1.col2": "fusion", "cell2.col1": "fusion", "cell2.col2": "parallel"}
#: Small enough for a CPU test: 32x32 patches fit the embedded skimage images.
FAST = ["--steps", "4", "--batch-size", "4", "--patch-size", "32", "--val-every", "2", "--val-patches", "4",
        "--no-progress"]


# -- helpers shared with test_evaluate.py and test_restore.py -------------------------------------------



def make_genotype(path: Path | None = None, choices: dict | None = None, **metadata) -> Genotype:
    """The tiny space's genotype (searched on the embedded images unless ``metadata`` says otherwise)."""
    meta = {"train_data": "skimage/train", "val_data": "skimage/val", **metadata}
    g = Genotype(TINY, dict(choices or CHOICES), {}, meta)
    if path is not None:
        g.save(path)
    return g


def make_checkpoint(path: Path, genotype: Genotype | None = None, seed: int = 0, **metadata) -> Path:
    """An untrained (randomly initialised) checkpoint of ``genotype``: enough for plumbing tests."""
    genotype = genotype or make_genotype()
    torch.manual_seed(seed)
    return save_checkpoint(path, genotype.build(), genotype, {"train_data": "skimage/train", **metadata})


def make_supernet(path: Path, space: SpaceConfig = TINY, mixing: str = "paper") -> dict[str, torch.Tensor]:
    """A ``supernet.pt`` as searches before the mixing was recorded wrote it, every float tensor filled with
    distinct random values."""
    supernet = ClearerDARTS(costs={}, max_steps=1).mutate_model(ClearerSpace(space, mixing=mixing))
    g = torch.Generator().manual_seed(1)
    # positive and small: valid BatchNorm variances, finite outputs
    state = {k: 0.5 + 0.1 * torch.rand(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in supernet.state_dict().items()}
    torch.save({"format": "clearer-nni-supernet", "version": 1, "space": space.to_dict(), "state_dict": state}, path)
    return state


# -- retraining ----------------------------------------------------------------------------------

def test_retrain_cli_writes_a_checkpoint_that_round_trips(tmp_path, capsys):
    geno = tmp_path / "search" / "genotype.json"
    geno.parent.mkdir()
    make_genotype(geno)
    out = tmp_path / "retrain"
    assert main(["--genotype", str(geno), "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "best validation PSNR" in printed and "skimage/val" in printed
    assert sorted(p.name for p in out.iterdir()) == ["curve.png", "metrics.csv", "model.ckpt", "tensorboard"]
    assert not list(tmp_path.glob(".retrain*")), "the staging folder must be gone"

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert list(rows[0]) == ["step", "loss", "lr", "val_psnr", "seconds"]
    assert float(rows[-1]["lr"]) == pytest.approx(0.0, abs=1e-12)  # cosine to 0 over exactly --steps

    raw = torch.load(out / "model.ckpt", weights_only=True)  # plain types and tensors only
    assert raw["format"] == "clearer-nni-checkpoint" and raw["version"] == 1
    net, g, meta = load_checkpoint(out / "model.ckpt")
    assert g.choices == CHOICES and not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, raw["state_dict"][k])
    assert meta["steps"] == 4 and meta["train_data"] == "skimage/train" and meta["val_data"] == "skimage/val"
    assert meta["search"] == {"train_data": "skimage/train", "val_data": "skimage/val", "degradation": None}
    assert meta["best_step"] in (2, 4)
    assert meta["best_val_psnr"] == max(float(r["val_psnr"]) for r in rows)
    assert meta["seconds"] > 0 and "torch" in meta["software"] and meta["init_from_supernet"] is None
    assert meta["val_set_also_used_by_search"] is True
    assert data_seen(g, meta) == ["skimage/train", "skimage/val"]


def test_run_retrain_keeps_the_best_state_and_reports_each_validation(tmp_path):
    geno = tmp_path / "g.json"
    make_genotype(geno)
    seen = []
    cfg = RetrainConfig(genotype=str(geno), out=str(tmp_path / "r"), steps=3, batch_size=2, patch_size=32,
                        val_every=1, val_images=1, sigma=25.0, progress=False)
    result = run_retrain(cfg, on_val=seen.append)
    assert [r["step"] for r in seen] == [1, 2, 3] == [r["step"] for r in result.rows]
    best = max(result.rows, key=lambda r: r["val_psnr"])
    assert (result.best_step, result.best_val_psnr) == (best["step"], best["val_psnr"])
    assert result.metadata["validation"].startswith("1 whole images")
    assert result.metadata["degradation"]["sigma"] == 25.0
    net, _, _ = load_checkpoint(result.checkpoint)
    for k, v in net.state_dict().items():
        assert torch.equal(v, result.network.state_dict()[k])


# -- checkpoints ---------------------------------------------------------------------------------

def test_checkpoint_refuses_foreign_corrupt_and_mismatched_files(tmp_path):
    good = make_checkpoint(tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.ckpt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        load_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"format": "something-else"}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a clearer-nni checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")
    make_supernet(tmp_path / "supernet.pt")
    with pytest.raises(CheckpointError, match="super-network"):
        load_checkpoint(tmp_path / "supernet.pt")
    # weights of one architecture filed under another genotype
    doc = torch.load(good, weights_only=True)
    doc["genotype"]["choices"] = {k: "fusion" for k in CHOICES}
    torch.save(doc, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match="edited.ckpt: the weights do not fit"):
        load_checkpoint(tmp_path / "edited.ckpt")
    other = make_genotype(choices={k: "parallel" for k in CHOICES})
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(good, genotype=other)
    with pytest.raises(CheckpointError, match="JSON-like"):
        save_checkpoint(tmp_path / "bad.ckpt", make_genotype().build(), make_genotype(), {"x": object()})
    assert not (tmp_path / "bad.ckpt").exists() and not list(tmp_path.glob(".bad.ckpt*"))


# -- --init-from-supernet --------------------------------------------------------------------------

def test_init_from_supernet_copies_the_chosen_candidates(tmp_path):
    state = make_supernet(tmp_path / "supernet.pt")
    g = make_genotype()
    net = g.build()
    assert init_from_supernet(net, g, tmp_path / "supernet.pt") == len(net.state_dict())
    own = net.state_dict()
    # cell1.col1 chose parallel, cell1.col2 fusion: their weights come from those candidates
    assert torch.equal(own["cells.0.0.blocks.0.conv1.weight"], state["cells.0.0.parallel.blocks.0.conv1.weight"])
    assert torch.equal(own["cells.0.1.paths.0.1.0.weight"], state["cells.0.1.fusion.paths.0.1.0.weight"])
    assert torch.equal(own["stem.entry.0.weight"], state["stem.entry.0.weight"])
    assert torch.equal(own["head.conv.weight"], state["head.conv.weight"])
    # every float tensor of the derived network is one of the super-network's (all were made distinct)
    pool = [v for k, v in state.items() if v.is_floating_point() and not k.endswith("_arch_alpha")]
    assert all(any(v.shape == w.shape and torch.equal(v, w) for w in pool) for v in own.values() if v.is_floating_point())


def test_init_from_an_authors_mixing_supernet_takes_the_fusion_module_of_its_fusion_candidate(tmp_path):
    state = make_supernet(tmp_path / "supernet.pt", mixing="authors")
    g = make_genotype()
    net = g.build()
    assert init_from_supernet(net, g, tmp_path / "supernet.pt") == len(net.state_dict())
    assert torch.equal(net.state_dict()["cells.0.1.paths.0.1.0.weight"], state["cells.0.1.fusion.fusion.paths.0.1.0.weight"])


def test_init_from_supernet_refuses_another_space_and_foreign_files(tmp_path):
    make_supernet(tmp_path / "wide.pt", SpaceConfig(channels=(6, 8, 16), columns=(2, 2), stem="paper"))
    g = make_genotype()
    with pytest.raises(CheckpointError, match=r"wide.pt: the super-network was made for another space.*channels"):
        init_from_supernet(g.build(), g, tmp_path / "wide.pt")
    make_checkpoint(tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="not a clearer-nni super-network"):
        init_from_supernet(g.build(), g, tmp_path / "model.ckpt")


def test_retrain_flag_without_value_uses_the_supernet_next_to_the_genotype(tmp_path):
    geno = tmp_path / "search" / "genotype.json"
    geno.parent.mkdir()
    make_genotype(geno)
    make_supernet(geno.parent / "supernet.pt")
    out = tmp_path / "r"
    steps = ["--steps", "1", "--batch-size", "2", "--patch-size", "32", "--val-every", "1", "--val-patches", "2",
             "--no-progress"]
    assert main(["--genotype", str(geno), "--out", str(out), "--init-from-supernet", *steps]) == 0
    meta = load_checkpoint(out / "model.ckpt")[2]
    assert meta["init_from_supernet"] == str((geno.parent / "supernet.pt").resolve())
    assert meta["init_tensors_copied"] > 0


# -- bad input: exit 2 and one clear message, nothing written ---------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--precision", "16-mixed", "--device", "cpu"], "16-mixed needs a CUDA GPU"),
    (["--sigma", "-5"], "sigma must be a finite number >= 0"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--init-from-supernet"], "no supernet.pt next to the genotype"),
    (["--data", "/no/such/folder"], "unknown dataset"),
])
def test_retrain_bad_settings_exit_2(tmp_path, capsys, extra, message):
    geno = tmp_path / "g.json"
    make_genotype(geno)
    assert main(["--genotype", str(geno), "--out", str(tmp_path / "r"), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r*"))


def test_retrain_refuses_missing_genotype_and_non_empty_out(tmp_path, capsys):
    assert main(["--genotype", str(tmp_path / "none.json"), "--out", str(tmp_path / "r")]) == 2
    assert "genotype file not found" in capsys.readouterr().err
    geno = tmp_path / "g.json"
    make_genotype(geno)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("x")
    assert main(["--genotype", str(geno), "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "output folder is not empty" in capsys.readouterr().err
    assert (tmp_path / "r" / "keep.txt").read_text() == "x"


@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_retrain_command_line_refuses_16_mixed_on_cpu(tmp_path):
    geno = tmp_path / "g.json"
    make_genotype(geno)
    proc = subprocess.run([sys.executable, "-m", "clearer_nni", "retrain", "--genotype", str(geno), "--out",
                           str(tmp_path / "r"), "--device", "cpu", "--precision", "16-mixed"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: precision 16-mixed needs a CUDA GPU")


# -- DDP (2 CPU processes, gloo) ----------------------------------------------------------------------

@pytest.mark.slow  # a subprocess or seconds of work: make test-fast leaves it out
def test_ddp_retraining_on_two_cpu_processes_splits_the_batch_and_writes_once(tmp_path):
    geno = tmp_path / "genotype.json"
    make_genotype(geno)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "clearer_nni.retrain", "--genotype", str(geno), "--out", str(out),
                           "--steps", "6", "--batch-size", "4", "--patch-size", "16", "--val-every", "3",
                           "--val-patches", "2", "--devices", "2", "--device", "cpu", "--no-progress"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("retrained ") == 1  # rank 1 trains but reports nothing
    # only rank 0 wrote: the result, nothing beside it
    assert sorted(p.name for p in out.iterdir()) == ["curve.png", "metrics.csv", "model.ckpt", "tensorboard"]
    assert [p.name for p in (out / "tensorboard").iterdir()] == ["retrain"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "genotype.json"]
    meta = load_checkpoint(out / "model.ckpt")[2]
    assert (meta["devices"], meta["world_size"], meta["batch_size"], meta["steps"]) == (2, 2, 4, 6)
    assert [r["step"] for r in csv.DictReader(open(out / "metrics.csv"))] == ["3", "6"]
