"""One search on two CPU processes (Lightning DDP, gloo): the same α on both ranks, one result, resume.

The DDP ranks are real processes: ``search --devices 2 --device cpu`` re-runs itself once (Lightning's
subprocess launcher). Rank 0 logs ``alpha_rank_diff`` at every logged step: the largest difference
between its α and the other rank's, gathered from it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--space", "tiny", "--steps", "60", "--warmup-steps", "10", "--log-every", "10", "--batch-size", "4",
         "--patch-size", "16", "--val-patches", "4", "--checkpoint-every", "10", "--devices", "2", "--device", "cpu",
         "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _search(out: Path, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clearer_nni.search", *FLAGS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def _rows(out: Path) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(out / "search_log.csv"))]


def test_ddp_search_on_two_cpu_processes_keeps_one_alpha_and_resumes_after_sigkill(tmp_path):
    # an uninterrupted search on two processes
    ref = tmp_path / "ref"
    printed = _finish(_search(ref))
    assert printed.count("searched architecture") == 1  # rank 1 searches too, but reports nothing
    assert sorted(p.name for p in ref.iterdir()) == ["alpha.png", "genotype.json", "genotype.png", "search_log.csv",
                                                    "supernet.pt", "tensorboard"]
    assert [p.name for p in (ref / "tensorboard").iterdir()] == ["search"]  # rank 0 only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref"]  # nothing beside it (no staging folder left)
    rows = _rows(ref)
    assert [r["step"] for r in rows] == [1, 10, 20, 30, 40, 50, 60]
    assert all(r["alpha_rank_diff"] <= 1e-6 for r in rows), [r["alpha_rank_diff"] for r in rows]
    assert rows[-1]["p_parallel/cell1.col1"] != rows[1]["p_parallel/cell1.col1"]  # α did move
    meta = json.loads((ref / "genotype.json").read_text())["metadata"]
    assert meta["devices"] == 2 and meta["alpha_rank_diff"] <= 1e-6

    # the same search, its launcher (rank 0) SIGKILLed after a checkpoint, then resumed
    out = tmp_path / "killed"
    proc = _search(out)
    checkpoints = tmp_path / ".killed.partial" / "checkpoints"
    deadline = time.monotonic() + 180
    while not any(p.name >= "step-0000020.pt" for p in checkpoints.glob("step-*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint of step 20 before the end"
        time.sleep(0.01)
    ranks = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # the other rank loses its peer and ends by itself
    _gone, alive = psutil.wait_procs(ranks, timeout=60)
    for p in alive:
        p.kill()
    assert not alive, "rank 1 outlived its launcher"
    assert not out.exists()
    printed = _finish(_search(out, "--resume"))
    assert "searched architecture" in printed
    resumed = _rows(out)
    assert [r["step"] for r in resumed] == [r["step"] for r in rows]
    assert all(r["alpha_rank_diff"] <= 1e-6 for r in resumed)
    # it continued the interrupted search: the same α trajectory and architecture as the uninterrupted one
    for a, b in zip(rows, resumed):
        for key in a:
            if key.startswith("p_parallel/"):
                assert abs(a[key] - b[key]) < 1e-5, (a["step"], key, a[key], b[key])
    assert json.loads((out / "genotype.json").read_text())["choices"] == \
        json.loads((ref / "genotype.json").read_text())["choices"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed", "ref"]


def test_ddp_search_refuses_a_global_batch_it_cannot_split(tmp_path, capsys):
    from clearer_nni.search import main

    assert main(["--space", "tiny", "--out", str(tmp_path / "s"), "--devices", "2", "--batch-size", "5",
                 "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: batch_size (5) is the global batch: it must be a multiple of devices (2)")
    assert not list(tmp_path.iterdir())


def test_a_trial_searches_on_two_processes_and_only_rank_0_reports(tmp_path):
    """``experiment.trial --devices 2`` (standalone: metrics printed): rank 1 runs the search with the
    settings rank 0 resolved, and neither asks NNI for parameters nor reports."""
    out = tmp_path / "trial"
    proc = subprocess.run([sys.executable, "-m", "clearer_nni.experiment.trial", *FLAGS[:12], "--devices", "2",
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env=ENV, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("[nni final]") == 1 and proc.stdout.count("[nni periodical]") == 7
    assert proc.stdout.count("parameter id") == 1  # rank 1 never asked for parameters
    assert json.loads((out / "genotype.json").read_text())["metadata"]["devices"] == 2
