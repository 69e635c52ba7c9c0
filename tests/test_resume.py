"""Resumable search: SIGKILL, Ctrl-C, SIGTERM and SIGHUP mid-run, torn checkpoints, a loss that becomes NaN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from clearer_nni.training.state import CheckpointStore
from clearer_nni.search import main
from conftest import REPO

TINY = str(REPO / "search_spaces" / "tiny.yaml")
#: One torch thread in the subprocesses: the same float sums in every run, and no spin-waiting on busy cores
#: (two OpenMP threads on 2 shared cores made each search subprocess several times slower).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _default_sigint() -> None:
    # A child of a shell background job inherits SIGINT ignored, and Python then never turns Ctrl-C into
    # KeyboardInterrupt: start every child with SIGINT at its default, whatever the test runner inherited.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # and a nohup'd runner's ignored SIGHUP
        signal.signal(sig, signal.SIG_DFL)
ARGS = ["--space", TINY, "--steps", "60", "--warmup-steps", "10", "--checkpoint-every", "20", "--no-progress",
        "--no-supernet", "--log-every", "10"]


def _start(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "clearer_nni.search", *ARGS, *extra, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD,
                            preexec_fn=_default_sigint)


def _wait_for(path, proc, timeout=300):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"search ended before {path.name} appeared: {proc.communicate()[1]}"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def _final_checkpoint_after(folder, sent):
    """Whether a checkpoint was written after Ctrl-C was sent: the one saved at the step the run stopped
    (the periodic ones before it were all complete when the signal was sent)."""
    return any(p.stat().st_mtime >= sent for p in folder.glob("step-*.pt"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    # A subprocess like the interrupted run: the same torch thread count, so the same float sums.
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _start(out)
    assert proc.wait(timeout=600) == 0, proc.communicate()[1]
    return json.loads((out / "genotype.json").read_text()), (out / "search_log.csv").read_text()


def _log_without_time(text):
    return [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in text.splitlines()]


def test_sigkill_then_resume_equals_an_uninterrupted_search(tmp_path, reference):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(tmp_path / ".run.partial" / "checkpoints" / "step-0000040.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    resumed = subprocess.run([sys.executable, "-m", "clearer_nni.search", "--out", str(out), "--resume",
                              "--no-progress"], capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and "(step 40 of 60)" in resumed.stderr
    genotype = json.loads((out / "genotype.json").read_text())
    ref_genotype, ref_log = reference
    assert genotype["choices"] == ref_genotype["choices"]
    assert genotype["alpha"] == ref_genotype["alpha"]
    assert _log_without_time((out / "search_log.csv").read_text()) == _log_without_time(ref_log)
    assert not (tmp_path / ".run.partial").exists() and not (out / "checkpoints").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ctrl_c_or_a_termination_signal_stops_cleanly_with_a_checkpoint(tmp_path, sig, code):
    """SIGTERM (a scheduler, ``docker stop``, ``timeout``, NNI) and SIGHUP stop a search as Ctrl-C does, and
    the exit code says which (128 + the signal), never 0: a script must not take it for a finished run."""
    out = tmp_path / "run"
    # SIGTERM's run is resumed to its end below: shorter (still far from done when the signal comes)
    proc = _start(out, "--steps", "150" if sig == signal.SIGTERM else "400")
    _wait_for(tmp_path / ".run.partial" / "checkpoints" / "step-0000020.pt", proc)
    sent = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "last good checkpoint is kept" in err and not out.exists()
    assert _final_checkpoint_after(tmp_path / ".run.partial" / "checkpoints", sent)
    if sig == signal.SIGTERM:  # and it continues
        resumed = subprocess.run([sys.executable, "-m", "clearer_nni.search", "--out", str(out), "--resume",
                                  "--no-progress"], capture_output=True, text=True, timeout=600, env=ONE_THREAD)
        assert resumed.returncode == 0 and "resuming from" in resumed.stderr, resumed.stderr
        assert (out / "genotype.json").is_file()


def test_a_second_termination_signal_during_the_shutdown_ends_it_at_once():
    script = """
import os, signal, time
from clearer_nni.cli import run_cli

def command():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    finally:  # the shutdown: a slow clean-up, and the scheduler signals again
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        print("shutdown finished", flush=True)
    return 0

raise SystemExit(run_cli(command, quiet=False))
"""
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=ONE_THREAD)
    assert proc.returncode == 143 and "shutdown finished" not in proc.stdout, (proc.stdout, proc.stderr)
    assert time.time() - start < 25


def test_torn_checkpoint_is_skipped_with_a_warning(tmp_path):
    store = CheckpointStore(tmp_path, "fmt")
    store.save(10, {"x": torch.ones(2)})
    store.save(20, {"x": torch.zeros(2)})
    newest = store.paths()[0]
    newest.write_bytes(newest.read_bytes()[:100])  # torn
    with pytest.warns(RuntimeWarning, match="step-0000020.pt: unreadable checkpoint"):
        path, payload = store.latest()
    assert path.name == "step-0000010.pt" and payload["step"] == 10
    store.save(30, {"x": torch.ones(1)})
    assert [p.name for p in store.paths()] == ["step-0000030.pt", "step-0000020.pt"]  # keeps two


def test_resume_without_checkpoint_or_with_other_settings(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    out = tmp_path / "run"
    proc = _start(out, "--steps", "400")
    _wait_for(tmp_path / ".run.partial" / "checkpoints" / "step-0000020.pt", proc)
    proc.kill()
    proc.wait()
    assert main(["--out", str(out), "--resume", "--lambda-arch", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "flags differ" in err and "'lambda_arch': (0.5, 0.01)" in err


def test_a_loss_that_becomes_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--space", TINY, "--steps", "60", "--warmup-steps", "5", "--checkpoint-every", "1",
                 "--lr", "1e12", "--grad-clip", "1e30", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "error: the loss became NaN or infinite at step" in err, err
    assert not out.exists()
    store = CheckpointStore(tmp_path / ".run.partial" / "checkpoints", "clearer-nni-search-state")
    _, state = store.latest()
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# -- retrain -----------------------------------------------------------------------------------------

from clearer_nni.retrain import main as retrain_main  # noqa: E402
from test_retrain import make_genotype  # noqa: E402

RETRAIN = ["--steps", "100", "--batch-size", "2", "--patch-size", "16", "--val-every", "10", "--val-patches", "2",
           "--checkpoint-every", "20", "--no-progress"]
RETRAIN_FORMAT = "clearer-nni-retrain-state"


def _start_retrain(genotype, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "clearer_nni.retrain", "--genotype", str(genotype), *RETRAIN,
                             *extra, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ONE_THREAD, preexec_fn=_default_sigint)


def _metrics_without_time(path):
    return [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def genotype_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("geno") / "genotype.json"
    make_genotype(path)
    return path


@pytest.fixture(scope="module")
def retrain_reference(tmp_path_factory, genotype_file):
    out = tmp_path_factory.mktemp("retrain-ref") / "run"
    proc = _start_retrain(genotype_file, out)
    assert proc.wait(timeout=600) == 0, proc.communicate()[1]
    return out


def test_retrain_sigkill_then_resume_equals_an_uninterrupted_retraining(tmp_path, genotype_file, retrain_reference):
    out = tmp_path / "run"
    proc = _start_retrain(genotype_file, out)
    _wait_for(tmp_path / ".run.partial" / "checkpoints" / "step-0000020.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    resumed = subprocess.run([sys.executable, "-m", "clearer_nni.retrain", "--out", str(out), "--resume",
                              "--no-progress"], capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and "of 100)" in resumed.stderr
    ours = torch.load(out / "model.ckpt", weights_only=True)
    ref = torch.load(retrain_reference / "model.ckpt", weights_only=True)
    assert ours["state_dict"].keys() == ref["state_dict"].keys()
    for k, v in ref["state_dict"].items():
        assert torch.allclose(ours["state_dict"][k].float(), v.float(), rtol=0, atol=1e-6), k
    assert ours["metadata"]["best_step"] == ref["metadata"]["best_step"]
    assert _metrics_without_time(out / "metrics.csv") == _metrics_without_time(retrain_reference / "metrics.csv")
    assert not (tmp_path / ".run.partial").exists() and not (out / "checkpoints").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_retrain_ctrl_c_or_sigterm_stops_cleanly_with_a_checkpoint(tmp_path, genotype_file, sig, code):
    out = tmp_path / "run"
    proc = _start_retrain(genotype_file, out, "--steps", "5000")
    _wait_for(tmp_path / ".run.partial" / "checkpoints" / "step-0000020.pt", proc)
    sent = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"clearer-nni retrain --out {out} --resume" in err and not out.exists()
    assert _final_checkpoint_after(tmp_path / ".run.partial" / "checkpoints", sent)
    # weights_only: a retrain checkpoint is plain types and tensors
    _, state = CheckpointStore(tmp_path / ".run.partial" / "checkpoints", RETRAIN_FORMAT).latest()
    assert state["config"]["steps"] == 5000 and state["choices"] and state["rows"]


def test_retrain_resume_refuses_no_checkpoint_clashing_flags_and_a_changed_genotype(tmp_path, capsys):
    assert retrain_main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume for" in capsys.readouterr().err
    geno = tmp_path / "genotype.json"
    make_genotype(geno)
    out = tmp_path / "run"
    proc = _start_retrain(geno, out, "--steps", "5000")
    _wait_for(tmp_path / ".run.partial" / "checkpoints" / "step-0000020.pt", proc)
    proc.kill()
    proc.wait()
    assert retrain_main(["--out", str(out), "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "flags differ" in err and "'lr': (0.5, 0.01)" in err
    assert retrain_main(["--out", str(out), "--resume", "--genotype", str(tmp_path / "other.json")]) == 2
    assert "flags differ" in capsys.readouterr().err  # another --genotype is a clashing flag
    make_genotype(geno, {"cell1.col1": "fusion", "cell1.col2": "fusion", "cell2.col1": "fusion",
                         "cell2.col2": "fusion"})  # the saved genotype path now holds another genotype
    assert retrain_main(["--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"error: {geno}: the genotype is not the one the interrupted retraining trained" in err, err
    assert (tmp_path / ".run.partial" / "checkpoints").exists() and not out.exists()  # kept for a later resume


def test_retrain_loss_that_becomes_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(
        tmp_path, genotype_file, capsys):
    out = tmp_path / "run"
    code = retrain_main(["--genotype", str(genotype_file), *RETRAIN, "--steps", "40", "--checkpoint-every", "1",
                         "--lr", "1e12", "--grad-clip", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "error: the loss became NaN or infinite at step" in err, err
    assert "last good checkpoint is kept" in err and not out.exists()
    store = CheckpointStore(tmp_path / ".run.partial" / "checkpoints", RETRAIN_FORMAT)
    _, state = store.latest()
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
