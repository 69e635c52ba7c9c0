"""The wheel works outside the repository: built, installed into a fresh virtual environment in a
temporary folder, and run there (a tiny search, and a tiny NNI experiment whose web UI is loopback only)."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import experiment_file, listening_addresses

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, clearer-nni script, folder) of a fresh venv outside the checkout holding only the wheel;
    the dependencies come from this interpreter's site-packages (read-only, through a path file)."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=600, cwd=root)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("clearer_nni-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("clearer_nni/resources/search_spaces/tiny.yaml", "clearer_nni/resources/recipes/paper.yaml",
                    "clearer_nni/resources/experiments/denoise.yml", "clearer_nni/experiment/loopback.js",
                    "clearer_nni/resources/search_spaces/hpo_denoise.json"):
        assert shipped in names, f"{shipped} is not in {wheel.name}"
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies (torch, nni, Lightning...) of this environment, after the venv's own packages
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=600, cwd=root)
    assert install.returncode == 0, install.stderr[-3000:]
    work = root / "elsewhere"
    work.mkdir()
    return python, venv / "bin" / "clearer-nni", work


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLEARER_DATA_ROOT")}
    return {**env, "OMP_NUM_THREADS": "1", "HOME": str(work / "home")}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    python, _, work = installed
    where = subprocess.run([str(python), "-c", "import clearer_nni, clearer_nni.bundled as b; "
                            "print(clearer_nni.__file__); print(b.RESOURCES)"],
                           capture_output=True, text=True, cwd=work, env=_env(work), check=True).stdout.split()
    assert all(not Path(p).resolve().is_relative_to(REPO) for p in where), where


def test_installed_search_finds_its_space_and_recipe(installed):
    python, script, work = installed
    proc = subprocess.run([str(script), "search", "--space", "tiny", "--steps", "12", "--warmup-steps", "4",
                           "--log-every", "4", "--no-progress", "--out", "run"],
                          capture_output=True, text=True, cwd=work, env=_env(work), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((work / "run" / "genotype.json").read_text())["metadata"]
    assert (meta["recipe"], meta["steps"], meta["batch_size"]) == ("tiny", 12, 4)


def test_installed_experiment_runs_on_loopback(installed, tmp_path):
    python, script, work = installed
    config = experiment_file(work, "--space tiny --steps 8 --warmup-steps 2 --log-every 4",
                             {"seed": {"_type": "choice", "_value": [0]}}, trials=1, name="tiny.yml")
    from clearer_nni.experiment.rest import free_port

    port = free_port()
    proc = subprocess.Popen([str(script), "experiment", "run", str(config), "--port", str(port), "--workdir", "nni",
                             "--wait", "--timeout", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=work, env=_env(work))
    seen: list[str] = []
    try:
        import time

        deadline = time.time() + 120
        while not seen and time.time() < deadline and proc.poll() is None:
            seen = listening_addresses(port)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert seen and set(seen) <= LOOPBACK, seen
    assert "SUCCEEDED" in out and listening_addresses(port) == []
