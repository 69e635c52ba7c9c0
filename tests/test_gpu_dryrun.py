"""benchmarks/gpu.sh --dry-run: the GPU benchmark's whole path on CPU, so that its first GPU run does not die
of a typo. The bundle (.gpu/, benchmarks/gpu_bundle.sh) is built when missing: PyPI and the shared data
must be reachable then."""

from __future__ import annotations

import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA

BUNDLE = REPO / ".gpu"
STAGES = ["check", "fp32", "fast", "fast_compile", "full", "overhead", "retrain", "eval", "quality",
          "quality_summary"]


@pytest.fixture(scope="module")
def bundle() -> Path:
    if not (BUNDLE / "wheels" / "requirements.txt").is_file():
        if not (SHARED_DATA / "BSDS500").is_dir():
            pytest.skip(f"no bundle at {BUNDLE} and no data at {SHARED_DATA} to build one from")
        build = subprocess.run(["bash", "benchmarks/gpu_bundle.sh", "--data-root", str(SHARED_DATA)], cwd=REPO,
                               capture_output=True, text=True)
        if build.returncode != 0:
            pytest.skip(f"the bundle could not be built (PyPI unreachable?): {build.stdout[-500:]}{build.stderr[-500:]}")
    return BUNDLE


@pytest.fixture(scope="module")
def mimic(tmp_path_factory) -> str:
    """The dry run's base Python: a fresh venv with only what the GPU machine has."""
    env = tmp_path_factory.mktemp("mimic") / "env"
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "benchmarks/_gpu.py", "mimic", str(env)],
                          cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def test_bundle_holds_nni_without_nni_node(bundle):
    wheels = {p.name.split("-")[0].lower() for p in (bundle / "wheels").glob("*.whl")}
    assert {"nni", "json_tricks", "schema", "typeguard", "websockets"} <= wheels
    assert "torch" not in wheels and "pytorch_lightning" not in wheels  # the machine has them
    (nni,) = (bundle / "wheels").glob("nni-*.whl")
    names = zipfile.ZipFile(nni).namelist()
    assert any(n.startswith("nni/nas/oneshot/") for n in names)
    assert not any("nni_node" in n for n in names)
    assert sorted(p.name for p in (bundle / "data").iterdir()) == ["BSD400", "BSD68", "BSDS500", "Set12"]


def test_dry_run(bundle, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    run = subprocess.run(["bash", "benchmarks/gpu.sh", "--dry-run", "--out", str(out), "--work", str(work)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["console.log", "logs.tar.gz", "summary.md"]
    summary = (out / "summary.md").read_text()
    # nni came from the bundle's install, not from this project's venv
    assert f"nni 3.0 from {work}/site/nni/" in summary
    table = summary.split("## Stages")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in STAGES}
    assert list(rows) == STAGES, summary
    assert rows["check"] == rows["fp32"] == "ok", summary  # the first stages always have time
    assert not [s for s, state in rows.items() if state.startswith("failed")], summary
    assert all(state in ("ok", "skipped", "killed at limit") for state in rows.values()), summary
    assert "| fp32 | " in summary.split("## Search steps/s")[1]
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert "./stages.csv" in names and "./install.log" in names and "./search_fp32/search_log.csv" in names
    assert not [n for n in names if n.endswith((".ckpt", ".pt"))]


def test_mimic_lacks_nni(mimic, tmp_path):
    """The dry run's base environment has what the GPU machine has, and no nni."""
    probe = subprocess.run([mimic, "-c", "import torch, pytorch_lightning, skimage, pandas\n"
                                      "try:\n    import nni\nexcept ModuleNotFoundError:\n    print('no nni')"],
                           cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == "no nni"


def test_real_run_without_a_gpu_stops_after_the_check(bundle, mimic, tmp_path):
    """Without --dry-run the script wants CUDA: here it installs, checks, says so and writes its summary."""
    out = tmp_path / "out"
    run = subprocess.run(["bash", "benchmarks/gpu.sh", "--out", str(out), "--work", str(tmp_path / "work")],
                         cwd=REPO, capture_output=True, text=True, timeout=200, env={"PATH": "/usr/bin:/bin", "PYTHON": mimic})
    assert run.returncode == 1, run.stdout[-3000:]
    assert "no CUDA GPU seen" in (out / "console.log").read_text()
    assert "| check | failed (exit 1) |" in (out / "summary.md").read_text()
