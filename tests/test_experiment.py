"""NNI experiments: the trial entry, the launcher (a real nnictl experiment on loopback), export and report.

HOME is a temporary folder in every test (conftest.py), so nothing reaches the user's ~/nni-experiments.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clearer_nni.experiment import launch, nnictl, processes, rest
from clearer_nni.bundled import LOOPBACK_JS
from helpers import experiment_file, listening_addresses, wait_for_trials
from clearer_nni.experiment.export import best_trial, export_genotype, find_experiment_dir, load_trials
from clearer_nni.experiment.report import pareto_front, trial_table, write_report
from clearer_nni.experiment.trial import (SEARCHES, TrialReporter, parameter_settings, default_checkpoint_every,
                                         experiment_dir, plan_search, search_folder)
from clearer_nni.config import SearchConfig, resolve_search

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _nni_node() -> Path:
    import nni_node

    return Path(nni_node.__path__[0]) / "node"


# -- parameters → SearchConfig ---------------------------------------------------------------------

def test_parameters_map_onto_search_config_fields():
    settings = parameter_settings({"lambda1": 0, "lambda_comp": 0.1, "sigma": 30, "seed": 2.0,
                                   "noise-clip": True, "log_base": 10})
    assert settings == {"lambda_arch": 0.0, "lambda_comp": 0.1, "sigma": 30.0, "seed": 2, "noise_clip": True,
                        "log_base": "10"}
    assert isinstance(settings["seed"], int) and isinstance(settings["lambda_arch"], float)
    # NNI's parameters override the flags, which override the space's recipe
    cfg = resolve_search({"space": "tiny", "steps": 30, "sigma": 10.0}, settings)
    assert (cfg.lambda_arch, cfg.lambda_comp, cfg.sigma, cfg.seed, cfg.steps) == (0.0, 0.1, 30.0, 2, 30)
    assert (cfg.recipe, cfg.batch_size) == ("tiny", 4)
    cfg = resolve_search({}, parameter_settings({"lambdas": [0.01, 0.1], "space": "demo"}))
    assert (cfg.lambda_arch, cfg.lambda_comp, cfg.space, cfg.recipe) == (0.01, 0.1, "demo", "demo")


@pytest.mark.parametrize("params, message", [
    ({"lambda_arc": 0.1}, "unknown parameter name 'lambda_arc'"),
    ({"out": "/tmp/x"}, "cannot be set from a search space"),
    ({"steps": 2.5}, "parameter 'steps': bad value 2.5"),
    ({"sigma": "loud"}, "parameter 'sigma': bad value 'loud'"),
    ({"seed": True}, "parameter 'seed': bad value True"),
    ({"lambdas": [0.1]}, "must be a pair"),
    ({"lambda1": 0.1, "lambda_arch": 0.2}, "given twice"),
    ({"sigma": {"_name": "a"}}, "nested values are not supported"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parameter_settings(params)


class _Channel:
    def __init__(self, parameter_id=None):
        self.sent, self.parameter_id = [], parameter_id

    def receive_parameter(self):
        return {"parameter_id": self.parameter_id, "parameter_source": "algorithm", "parameters": {"seed": 3}}

    def send_metric(self, type, parameter_id, trial_job_id, sequence, value):
        self.sent.append((type, parameter_id, trial_job_id, sequence, value))


def test_reporter_keeps_the_channel_and_parameter_id_it_started_with(monkeypatch):
    """NNI's sequential engine swaps the default trial channel while it runs: metrics must still go
    through the trial's own channel, under its own parameter id."""
    from nni.runtime import trial_command_channel as tcc

    import nni.trial

    ours, theirs = _Channel(parameter_id=7), _Channel(parameter_id=0)
    monkeypatch.setattr(tcc, "_channel", ours)
    monkeypatch.setattr(nni.trial, "_params", None)
    reporter = TrialReporter()
    reporter.platform = "local"  # as under an experiment
    assert reporter.receive_parameters() == {"seed": 3}
    tcc.set_default_trial_command_channel(theirs)  # what nni.nas.execution.sequential does
    reporter.intermediate({"default": 20.0, "step": 1})
    reporter.intermediate({"default": 21.0, "step": 2})
    reporter.final({"default": 22.0})
    assert theirs.sent == [] and nni.trial.get_current_parameter("seed") == 3
    assert [(t, pid, seq) for t, pid, _, seq, _ in ours.sent] == [("PERIODICAL", 7, 0), ("PERIODICAL", 7, 1),
                                                                 ("FINAL", 7, 0)]


def test_a_trial_handed_another_trials_parameters_runs_its_own(tmp_path, monkeypatch, capsys):
    """NNI 3.0's local training service gives queued parameters to whichever trial asks first: the trial
    runs (and reports under) the parameters NNI recorded for it, which the web UI shows."""
    expdir = _record_experiment(tmp_path)  # tA's recorded parameters: id 0, lambdas [0, 0]
    monkeypatch.setenv("NNI_OUTPUT_DIR", str(expdir / "environments" / "local-env" / "trials" / "tA"))

    def reporter_of(channel):
        reporter = TrialReporter(channel)
        reporter.platform, reporter.trial_id, reporter.experiment_id = "local", "tA", "abcd1234"  # as tA
        return reporter

    channel = _Channel(parameter_id=1)  # tB's
    reporter = reporter_of(channel)
    assert reporter.receive_parameters() == {"lambdas": [0.0, 0.0], "seed": 0}
    assert reporter.parameter_id == 0
    assert "handed this trial the parameters of id 1" in capsys.readouterr().out
    reporter.final({"default": 20.0})
    assert channel.sent[-1][:3] == ("FINAL", 0, "tA")
    # its own parameters from the channel: nothing changes
    reporter = reporter_of(_Channel(parameter_id=0))
    assert reporter.receive_parameters() == {"seed": 3} and reporter.parameter_id == 0
    # no experiment database to read: the channel's
    monkeypatch.setenv("NNI_OUTPUT_DIR", str(tmp_path / "elsewhere"))
    reporter = reporter_of(_Channel(parameter_id=1))
    assert reporter.receive_parameters() == {"seed": 3} and reporter.parameter_id == 1


# -- the trial entry under NNI's file-based trial channel ------------------------------------------

def _trial_env(tmp_path: Path, parameters: dict, parameter_id: int = 5) -> dict[str, str]:
    """The environment of a trial as NNI's legacy local runtime sets it (NNI_PLATFORM=local, NNI_SYS_DIR
    with parameter.cfg; metrics are appended to NNI_SYS_DIR/.nni/metrics)."""
    sysdir = tmp_path / "trial"
    sysdir.mkdir()
    (sysdir / "parameter.cfg").write_text(json.dumps({"parameter_id": parameter_id, "parameter_source": "algorithm",
                                                       "parameters": parameters, "parameter_index": 0}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(NNI_PLATFORM="local", NNI_SYS_DIR=str(sysdir), NNI_OUTPUT_DIR=str(sysdir), NNI_TRIAL_JOB_ID="abcde",
               NNI_EXP_ID="exp12345", NNI_TRIAL_SEQ_ID="0", OMP_NUM_THREADS="1")
    return env


def _metrics(sysdir: Path) -> list[dict]:
    raw = (sysdir / ".nni" / "metrics").read_bytes() if (sysdir / ".nni" / "metrics").exists() else b""
    out = []
    while raw:
        assert raw[:2] == b"ME"
        n = int(raw[2:8])
        out.append(json.loads(raw[8:8 + n]))
        raw = raw[8 + n:]
    return out


@pytest.mark.parametrize("parameters, message", [
    ({"lambda_arch": 0.01, "bogus": 1}, "error: unknown parameter name 'bogus'"),
    ({"lambda_comp": -1}, "error: lambda_comp must be a finite number >= 0, got -1.0"),
])
def test_bad_search_space_fails_the_trial_with_a_clear_error(tmp_path, parameters, message):
    env = _trial_env(tmp_path, parameters)
    proc = subprocess.run([sys.executable, "-m", "clearer_nni.experiment.trial", "--space", "tiny"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not [m for m in _metrics(tmp_path / "trial") if m["type"] in ("PERIODICAL", "FINAL")]


# -- where a trial searches, and what a re-run trial finds there -----------------------------------

def test_a_trial_searches_in_a_folder_of_its_experiment_and_parameter_id(tmp_path):
    expdir = tmp_path / "nni-experiments" / "exp12345"
    trial_dir = expdir / "environments" / "local-env" / "trials" / "abcde"
    assert experiment_dir(trial_dir, "exp12345") == expdir.resolve()
    assert search_folder(trial_dir, "exp12345", 5) == (expdir.resolve() / SEARCHES / "param-5", True)
    # another trial id or environment, the same parameter id: the same folder
    other = expdir / "environments" / "remote-env" / "trials" / "fghij"
    assert search_folder(other, "exp12345", 5)[0] == search_folder(trial_dir, "exp12345", 5)[0]
    assert search_folder(trial_dir, "exp12345", 6)[0].name == "param-6"
    assert search_folder(trial_dir, "exp12345", "../x")[0].parent == expdir.resolve() / SEARCHES
    # no experiment folder above the trial's, or no parameter id: its own folder, found by no other run
    for exp_id, pid in (("otherexp", 5), ("exp12345", None), (None, 5)):
        assert search_folder(trial_dir, exp_id, pid) == (trial_dir.resolve() / "search", False)
    assert [default_checkpoint_every(n) for n in (5, 40, 300, 10_000)] == [1, 4, 30, 100]


def test_plan_search_resumes_a_matching_checkpoint_and_reuses_a_finished_search(tmp_path):
    import dataclasses

    from clearer_nni.archs import SpaceConfig
    from clearer_nni.nas.genotype import Genotype
    from clearer_nni.training.state import CheckpointStore
    from clearer_nni.training.state import SEARCH_STATE as _STATE_FORMAT

    out = tmp_path / SEARCHES / "param-3"
    cfg = SearchConfig(space="tiny", steps=60, seed=3, checkpoint_every=6, out=str(out))
    assert plan_search(out, cfg).action == "fresh"  # nothing there
    store = CheckpointStore(tmp_path / SEARCHES / ".param-3.partial" / "checkpoints", _STATE_FORMAT)
    store.save(24, {"config": dataclasses.asdict(cfg), "log": [{"step": 1}, {"step": 10}, {"step": 20}]})
    plan = plan_search(out, cfg)
    assert (plan.action, plan.step, plan.rows, plan.checkpoint.name) == ("resume", 24, 3, "step-0000024.pt")
    # a device or output folder may differ; a search setting may not
    moved = dataclasses.replace(cfg, device="cpu", out="elsewhere")
    assert plan_search(out, moved).action == "resume"
    other = plan_search(out, dataclasses.replace(cfg, seed=4))
    assert other.action == "fresh" and "other settings ['seed']" in other.note
    # a finished search of these settings: report it again
    space = SpaceConfig(channels=(4, 8, 16), columns=(2, 2), stem="paper")
    meta = {"val_psnr_derived": 20.5, "steps": 60, "seed": 3}
    out.mkdir(parents=True)
    Genotype(space, {lab: "fusion" for lab in space.labels}, {}, meta).save(out / "genotype.json")
    assert plan_search(out, cfg).action == "published"
    stale = plan_search(out, dataclasses.replace(cfg, steps=80))
    assert stale.action == "fresh" and "not this trial's result (steps)" in stale.note
    (out / "genotype.json").write_text("{not json")
    assert plan_search(out, cfg).action == "resume"  # an unreadable result: the checkpoint


def test_a_rerun_trial_reports_its_finished_search_again_without_searching(tmp_path):
    """The trial entry under NNI's file-based trial channel, its parameter id's search already published
    in the experiment folder (a trial that NNI re-runs after its manager died between publishing and
    reporting): it reports that result and links it, without a search step."""
    from clearer_nni.archs import SpaceConfig
    from clearer_nni.nas.genotype import Genotype

    expdir = tmp_path / "nni-experiments" / "exp12345"
    trial_dir = expdir / "environments" / "local-env" / "trials" / "abcde"
    trial_dir.mkdir(parents=True)
    env = _trial_env(tmp_path, {"seed": 3})
    (tmp_path / "trial" / "parameter.cfg").rename(trial_dir / "parameter.cfg")
    env.update(NNI_SYS_DIR=str(trial_dir), NNI_OUTPUT_DIR=str(trial_dir))
    space = SpaceConfig(channels=(4, 8, 16), columns=(2, 2), stem="paper")
    published = expdir / SEARCHES / "param-5" / "genotype.json"
    meta = {"val_psnr_derived": 19.25, "val_psnr_supernet": 21.0, "params_derived": 1234, "seed": 3,
            "search_seconds": 7.5, "lambda_arch": 0.01, "lambda_comp": 0.0}
    published.parent.mkdir(parents=True)
    Genotype(space, {lab: "fusion" for lab in space.labels}, {}, meta).save(published)
    proc = subprocess.run([sys.executable, "-m", "clearer_nni.experiment.trial", "--space", "tiny"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    log = (trial_dir / "trial.log").read_text()  # NNI sends a local trial's stdout there
    assert "had already finished" in log and "step 1:" not in log
    metrics = _metrics(trial_dir)
    assert [m["type"] for m in metrics if m["type"] in ("PERIODICAL", "FINAL")] == ["FINAL"]
    final = json.loads(next(m for m in metrics if m["type"] == "FINAL")["value"])
    assert final["default"] == 19.25 and final["params"] == 1234 and final["genotype"] == str(published.resolve())
    assert (trial_dir / "search" / "genotype.json").resolve() == published.resolve()
    record = json.loads((trial_dir / "clearer_trial.json").read_text())
    assert record["action"] == "published" and record["search_dir_in_experiment"] == f"{SEARCHES}/param-5"


# -- loopback shim ---------------------------------------------------------------------------------

_LISTEN_JS = """
const http = require('http');
const s = http.createServer(() => {});
s.listen(0, () => { console.log(JSON.stringify(s.address())); s.close(); });
"""


@pytest.mark.parametrize("extra, loopback", [({}, True), ({"CLEARER_NNI_PUBLIC": "1"}, False)])
def test_loopback_shim_binds_hostless_listen_to_127_0_0_1(tmp_path, extra, loopback):
    script = tmp_path / "listen.js"
    script.write_text(_LISTEN_JS)
    env = nnictl.nni_env(None, public=bool(extra))
    env.update(extra)
    proc = subprocess.run([str(_nni_node()), str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    address = json.loads(proc.stdout)["address"]
    assert (address == "127.0.0.1") is loopback, address


def test_nni_env_points_home_at_the_workdir(tmp_path):
    env = nnictl.nni_env(tmp_path / "w", base={"HOME": "/home/someone", "PATH": "/usr/bin"})
    assert env["HOME"] == str((tmp_path / "w").resolve()) and env["CLEARER_USER_HOME"] == "/home/someone"
    assert str(LOOPBACK_JS) in env["NODE_OPTIONS"] and env["CLEARER_PYTHON"] == sys.executable
    assert env["PATH"].startswith(str(Path(sys.executable).parent))
    public = nnictl.nni_env(None, public=True, base={"HOME": "/h", "NODE_OPTIONS": "--no-warnings"})
    assert public["HOME"] == "/h" and public["NODE_OPTIONS"] == "--no-warnings" and public["CLEARER_NNI_PUBLIC"] == "1"


def test_launcher_resume_needs_a_known_experiment(tmp_path, capsys):
    assert launch.main(["resume", "nosuchid", "--workdir", str(tmp_path)]) == 2
    assert "error: no experiment nosuchid in" in capsys.readouterr().err


def test_launcher_reports_a_missing_config_and_a_busy_port(tmp_path, capsys):
    assert launch.main(["run", str(tmp_path / "nope.yml"), "--workdir", str(tmp_path)]) == 2
    assert "experiment file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yml"
    bad.write_text("trialCommand: 'true'\ntrialConcurrency: 1\nbogusField: 1\ntrainingService:\n  platform: local\n")
    assert launch.main(["run", str(bad), "--workdir", str(tmp_path)]) == 2
    assert "does not have field(s) bogusfield" in capsys.readouterr().err
    cfg = _e2e_config(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert launch.main(["run", str(cfg), "--port", str(port), "--workdir", str(tmp_path)]) == 2
    assert f"port {port} is already in use" in capsys.readouterr().err


# -- a real experiment -----------------------------------------------------------------------------

_E2E_SPACE = {"lambdas": {"_type": "choice", "_value": [[0.01, 0.0], [0.1, 0.01], [-1, 0.0]]}}


def _e2e_config(tmp_path: Path) -> Path:
    # two at a time: NNI 3.0's local training service may hand each the other's parameters, and every check
    # below by parameters (which one failed, the metrics' parameter ids) holds only if the trials run their own
    return experiment_file(tmp_path, "--space tiny --steps 20 --warmup-steps 5 --log-every 5", _E2E_SPACE,
                           trials=3, code_dir=REPO, name="e2e.yml", concurrency=2)


def test_real_experiment_on_loopback(tmp_path):
    workdir = tmp_path / "nni"
    port = rest.free_port()
    exp_id = nnictl.create_experiment(_e2e_config(tmp_path), port, workdir)
    try:
        # the web UI and REST API answer on loopback, and nothing listens elsewhere
        addresses = listening_addresses(port)
        assert addresses and set(addresses) <= LOOPBACK, addresses
        assert rest.rest_get(port, "/experiment")["id"] == exp_id
        with __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{port}/oview", timeout=10) as r:
            assert b"<html" in r.read().lower()

        trials = wait_for_trials(port, 3, timeout=420)  # ~40 s on an idle machine
        by_id = {t["trialJobId"]: t for t in trials}
        params = {tid: json.loads(t["hyperParameters"][0]) for tid, t in by_id.items()}
        status = {tuple(p["parameters"]["lambdas"]): by_id[tid]["status"] for tid, p in params.items()}
        assert status == {(0.01, 0.0): "SUCCEEDED", (0.1, 0.01): "SUCCEEDED", (-1, 0.0): "FAILED"}, status

        metrics = rest.rest_get(port, "/metric-data")
        for tid, p in params.items():
            mine = [m for m in metrics if m["trialJobId"] == tid]
            assert all(str(m["parameterId"]) == str(p["parameter_id"]) for m in mine), (tid, mine)
            finals = [json.loads(json.loads(m["data"])) for m in mine if m["type"] == "FINAL"]
            periodic = [json.loads(json.loads(m["data"])) for m in mine if m["type"] == "PERIODICAL"]
            if by_id[tid]["status"] == "SUCCEEDED":
                assert [m["step"] for m in periodic] == [1, 5, 10, 15, 20]
                assert all({"default", "alpha_entropy", "step"} <= set(m) for m in periodic)
                assert len(finals) == 1 and {"default", "supernet_psnr", "params", "genotype"} <= set(finals[0])
                assert Path(finals[0]["genotype"]).is_file()
                assert str(workdir.resolve() / "nni-experiments" / exp_id) in finals[0]["genotype"]
            else:
                assert not finals and not periodic

        failed = next(tid for tid, p in params.items() if p["parameters"]["lambdas"][0] == -1)
        stderr = next((workdir / "nni-experiments" / exp_id).glob(f"environments/*/trials/{failed}/trial.stderr"))
        assert "error: lambda_arch must be a finite number >= 0, got -1.0" in stderr.read_text()

        # the best trial's genotype, exported from the folder on disk, builds a network
        out, rec = export_genotype(exp_id, tmp_path / "best.json", workdir=workdir)
        best = max((t for t in params if by_id[t]["status"] == "SUCCEEDED"),
                   key=lambda t: json.loads(json.loads(by_id[t]["finalMetricData"][0]["data"]))["default"])
        assert rec.trial_id == best
        from clearer_nni.nas.genotype import Genotype

        geno = Genotype.load(out)
        assert geno.metadata["nni"]["trial_id"] == best and geno.build() is not None
        assert write_report(exp_id, tmp_path / "report", workdir)["png"].is_file()
    finally:
        procs = processes.experiment_processes(exp_id, workdir)
        leftover = nnictl.stop_experiment(exp_id, workdir, timeout=60)
    assert procs, "the experiment's processes were not found"
    assert leftover == []
    time.sleep(0.5)
    assert processes.experiment_processes(exp_id, workdir) == []
    assert not [p for p in procs if p.is_running() and p.status() != "zombie"]
    assert listening_addresses(port) == []


#: One search of the tiny space (~0.03 s a step here), checkpointed every 15 steps (the trial's default).
_RESUME_FLAGS = ["--space", "tiny", "--steps", "150", "--warmup-steps", "10", "--log-every", "25"]


def _checkpoint_step(expdir: Path) -> int:
    steps = [int(p.stem.split("-")[1]) for p in expdir.glob(f"{SEARCHES}/.param-*.partial/checkpoints/step-*.pt")]
    return max(steps, default=0)


def _last_status(expdir: Path, trial_id: str) -> str:
    con = sqlite3.connect(f"file:{expdir / 'db' / 'nni.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT event FROM TrialJobEvent WHERE trialJobId=? ORDER BY rowid DESC LIMIT 1",
                           (trial_id,)).fetchone()[0]
    finally:
        con.close()


def _wait_for_checkpoint(expdir: Path, step: int, port: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _checkpoint_step(expdir) < step:
        if time.monotonic() > deadline:
            raise AssertionError(f"no checkpoint of step {step}: {rest.rest_get(port, '/trial-jobs')}")
        time.sleep(0.01)


def test_a_stopped_then_crashed_experiment_resumed_continues_its_trials_search(tmp_path, request):
    """Interrupt a trial's search twice, resuming the experiment with the launcher (``nnictl resume``)
    each time: ``stop`` (``nnictl stop``: NNI records no end for the running trial), then a crash (SIGKILL
    of the NNI manager, the tuner and the trial). NNI runs the trial again, same trial and parameter id,
    and the trial continues its search from its newest checkpoint: it ends with the genotype and α of an
    uninterrupted search, and reports its final result."""
    import psutil

    # the uninterrupted search, meanwhile (one torch thread in both: the same float sums)
    ref_out = tmp_path / "reference"
    reference = subprocess.Popen([sys.executable, "-m", "clearer_nni.search", *_RESUME_FLAGS, "--seed", "3",
                                  "--no-progress", "--out", str(ref_out)], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=(tmp_path / "reference.stderr").open("w"),
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
    request.addfinalizer(reference.kill)  # when the test fails before waiting for it
    cfg = experiment_file(tmp_path, " ".join(_RESUME_FLAGS), {"seed": {"_type": "choice", "_value": [3]}},
                          trials=1, code_dir=REPO, name="resume.yml")
    workdir = tmp_path / "nni"
    port = rest.free_port()
    exp_id = nnictl.create_experiment(cfg, port, workdir)
    expdir = workdir / "nni-experiments" / exp_id
    crashed: list = []
    try:
        _wait_for_checkpoint(expdir, 30, port)  # checkpoints every 15 steps of 150
        trial_id = rest.rest_get(port, "/trial-jobs")[0]["trialJobId"]
        assert launch.main(["stop", exp_id, "--workdir", str(workdir)]) == 0
        stopped_at = _checkpoint_step(expdir)
        assert 30 <= stopped_at < 150 and not (expdir / SEARCHES / "param-0").exists()
        assert _last_status(expdir, trial_id) == "RUNNING"  # so NNI runs it again

        port = rest.free_port()
        assert launch.main(["resume", exp_id, "--port", str(port), "--workdir", str(workdir)]) == 0
        _wait_for_checkpoint(expdir, stopped_at + 15, port)
        # the crash: the manager first (so it records nothing), then the tuner and the trial
        crashed = sorted(processes.experiment_processes(exp_id, workdir),
                         key=lambda p: not any(c.endswith("main.js") for c in p.cmdline()))
        assert any("clearer_nni.experiment.trial" in " ".join(p.cmdline()) for p in crashed)
        _wait_for_checkpoint(expdir, stopped_at + 30, port)
        for proc in crashed:
            proc.kill()
        psutil.wait_procs(crashed, timeout=10)
        killed_at = _checkpoint_step(expdir)
        assert stopped_at < killed_at < 150 and not (expdir / SEARCHES / "param-0").exists()

        port = rest.free_port()
        assert launch.main(["resume", exp_id, "--port", str(port), "--workdir", str(workdir)]) == 0
        trials = wait_for_trials(port, 1, timeout=240)
        assert [(t["trialJobId"], t["status"]) for t in trials] == [(trial_id, "SUCCEEDED")]  # the same trial
        assert json.loads(trials[0]["hyperParameters"][-1])["parameter_id"] == 0
        metrics = [m for m in rest.rest_get(port, "/metric-data") if m["trialJobId"] == trial_id]
    finally:
        leftover = nnictl.stop_experiment(exp_id, workdir, timeout=60)
    assert leftover == []
    assert processes.experiment_processes(exp_id, workdir) == [] and processes.trial_processes(exp_id) == []
    assert not [p for p in crashed if p.is_running() and p.status() != "zombie"]

    # each run of the trial said what it did: searched, resumed after the stop, resumed after the crash
    trial_dir = next(expdir.glob(f"environments/*/trials/{trial_id}"))
    record = json.loads((trial_dir / "clearer_trial.json").read_text())
    runs = [*record["earlier_runs"], record]
    assert [r["action"] for r in runs] == ["fresh", "resume", "resume"]
    assert 0 < runs[1]["resumed_from_step"] <= stopped_at < runs[2]["resumed_from_step"] <= killed_at
    log = (trial_dir / "trial.log").read_text()  # every run's output (NNI appends; trial.stdout is rewritten)
    for r in runs[1:]:
        assert f"resuming the search of parameter id 0 from step {r['resumed_from_step']} " in log

    # ... and ended where an uninterrupted search ends
    assert reference.wait(timeout=300) == 0, (tmp_path / "reference.stderr").read_text()
    ours = json.loads((expdir / SEARCHES / "param-0" / "genotype.json").read_text())
    ref = json.loads((ref_out / "genotype.json").read_text())
    assert ours["choices"] == ref["choices"] and ours["alpha"] == ref["alpha"]
    finals = [json.loads(json.loads(m["data"])) for m in metrics if m["type"] == "FINAL"]
    assert len(finals) == 1 and finals[0]["default"] == ref["metadata"]["val_psnr_derived"]
    assert {json.loads(json.loads(m["data"]))["step"] for m in metrics if m["type"] == "PERIODICAL"} == \
        {1, 25, 50, 75, 100, 125, 150}
    assert not list(expdir.glob(f"{SEARCHES}/.param-*.partial"))
    out, rec = export_genotype(exp_id, tmp_path / "best.json", workdir=workdir)
    assert rec.trial_id == trial_id and json.loads(out.read_text())["choices"] == ref["choices"]


# -- export and report on a recorded experiment folder ---------------------------------------------

_SCHEMA = [
    "CREATE TABLE TrialJobEvent (timestamp integer, trialJobId text, event text, data text, logPath text, "
    "sequenceId integer, message text, environmentId text)",
    "CREATE TABLE MetricData (timestamp integer, trialJobId text, parameterId text, type text, sequence integer, "
    "data text)",
    "CREATE TABLE ExperimentProfile (params text, id text, execDuration integer, startTime integer, "
    "endTime integer, logDir text, nextSequenceId integer, revision integer)",
]


def _metric_data(value: dict) -> str:
    return json.dumps(json.dumps(value))  # NNI stores the metric JSON-encoded twice


def _record_experiment(root: Path, exp_id: str = "abcd1234", ssim: bool = False, moved_from: str | None = None) -> Path:
    """An experiment folder laid out as NNI 3.0's local training service writes it."""
    from clearer_nni.archs import SpaceConfig
    from clearer_nni.nas.genotype import Genotype

    expdir = root / "nni-experiments" / exp_id
    (expdir / "db").mkdir(parents=True)
    (expdir / "log").mkdir()
    space = SpaceConfig(channels=(4, 8, 16), columns=(2, 2), stem="paper")
    labels = space.labels
    # (trial, λ1, λ2, PSNR, params, status)
    rows = [("tA", 0.0, 0.0, 20.5, 16408, "SUCCEEDED"), ("tB", 0.01, 0.0, 21.0, 14000, "SUCCEEDED"),
            ("tC", 0.1, 0.1, 20.8, 12752, "SUCCEEDED"), ("tD", 0.1, 0.0, 20.0, 15000, "SUCCEEDED"),
            ("tE", 1.0, 0.0, None, None, "FAILED")]
    con = sqlite3.connect(expdir / "db" / "nni.sqlite")
    for sql in _SCHEMA:
        con.execute(sql)
    con.execute("INSERT INTO ExperimentProfile VALUES (?,?,?,?,?,?,?,?)",
                (json.dumps({"experimentName": "recorded", "experimentType": "hpo"}), exp_id, 0, 1, None,
                 str(root / "nni-experiments"), 5, 1))
    t = 1_795_000_000_000
    for seq, (tid, l1, l2, psnr, n, status) in enumerate(rows):
        folder = expdir / "environments" / "local-env" / "trials" / tid
        log_path = str(folder if moved_from is None else Path(moved_from) / exp_id / "environments" / "local-env"
                       / "trials" / tid)
        folder.mkdir(parents=True)
        hp = {"parameter_id": seq, "parameter_source": "algorithm", "parameters": {"lambdas": [l1, l2], "seed": 0},
              "parameter_index": 0}
        con.execute("INSERT INTO TrialJobEvent VALUES (?,?,?,?,?,?,?,?)",
                    (t + 10 * seq, tid, "WAITING", None, log_path, seq, None, None))
        con.execute("INSERT INTO TrialJobEvent VALUES (?,?,?,?,?,?,?,?)",
                    (t + 10 * seq + 1, tid, "RUNNING", json.dumps(hp), log_path, seq, None, "local-env"))
        if psnr is not None:
            choices = {lab: ("fusion" if i % 2 == seq % 2 else "parallel") for i, lab in enumerate(labels)}
            meta = {"lambda_arch": l1, "lambda_comp": l2, "val_psnr_derived": psnr, "params_derived": n,
                    "search_seconds": 30.0 + seq, **({"strategy": "spos", "select": "rank"} if tid == "tD" else {})}
            gpath = folder / "search" / "genotype.json"
            gpath.parent.mkdir()
            Genotype(space, choices, {}, meta).save(gpath)
            for k in range(2):
                con.execute("INSERT INTO MetricData VALUES (?,?,?,?,?,?)",
                            (t + 10 * seq + 2 + k, tid, str(seq), "PERIODICAL", k,
                             _metric_data({"default": psnr - 1 + k, "alpha_entropy": 0.6, "step": 5 * (k + 1)})))
            final = {"default": psnr, "supernet_psnr": psnr - 0.5, "params": n, "genotype": str(gpath),
                     "search_seconds": 30.0 + seq, "lambda_arch": l1, "lambda_comp": l2}
            if ssim:
                final["ssim"] = 0.5 + psnr / 100
            con.execute("INSERT INTO MetricData VALUES (?,?,?,?,?,?)",
                        (t + 10 * seq + 5, tid, str(seq), "FINAL", 0, _metric_data(final)))
        else:
            (folder / "trial.stderr").write_text("error: lambda_arch ...\n")
        con.execute("INSERT INTO TrialJobEvent VALUES (?,?,?,?,?,?,?,?)",
                    (t + 10 * seq + 6, tid, status, None, log_path, seq, None, "local-env"))
    con.commit()
    con.close()
    return expdir


def test_export_picks_the_best_trial_and_builds(tmp_path):
    from clearer_nni.nas.genotype import Genotype

    expdir = _record_experiment(tmp_path)
    trials = load_trials(expdir)
    assert [t.trial_id for t in trials] == ["tA", "tB", "tC", "tD", "tE"]
    assert trials[4].status == "FAILED" and trials[4].final is None and trials[4].genotype_path is None
    assert trials[1].parameters == {"lambdas": [0.01, 0.0], "seed": 0} and trials[1].parameter_id == 1
    assert len(trials[1].intermediate) == 2
    assert best_trial(trials).trial_id == "tB"

    # by id (under --workdir), and by folder
    out, rec = export_genotype("abcd1234", tmp_path / "g.json", workdir=tmp_path)
    assert rec.trial_id == "tB"
    geno = Genotype.load(out)
    assert geno.metadata["nni"]["trial_id"] == "tB" and geno.metadata["nni"]["parameters"]["lambdas"] == [0.01, 0.0]
    assert geno.build() is not None
    from clearer_nni.experiment.export import main as export_main

    assert export_main([str(expdir), "--trial", "tC", "-o", str(tmp_path / "c.json")]) == 0
    assert Genotype.load(tmp_path / "c.json").metadata["params_derived"] == 12752
    assert export_main([str(expdir), "--trial", "tC", "-o", str(tmp_path / "c.json")]) == 2  # exists
    assert export_main([str(expdir), "--trial", "tC", "-o", str(tmp_path / "c.json"), "--overwrite"]) == 0


@pytest.mark.parametrize("args, message", [
    (["nosuchexp"], "experiment 'nosuchexp' not found"),
    (["{exp}", "--trial", "tZ"], "no trial 'tZ'"),
    (["{exp}", "--trial", "tE"], "trial tE (FAILED) has no search/genotype.json"),
    (["{tmp}"], "is not an NNI experiment folder"),
])
def test_export_errors_are_clear(tmp_path, capsys, args, message):
    from clearer_nni.experiment.export import main as export_main

    expdir = _record_experiment(tmp_path)
    args = [a.format(exp=expdir, tmp=tmp_path) for a in args]
    assert export_main(args + ["-o", str(tmp_path / "x.json"), "--workdir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_export_and_report_use_the_parameters_a_trial_ran_with(tmp_path):
    """NNI 3.0's local training service with trialConcurrency > 1 can hand trial A the parameters it
    recorded for trial B: the metrics carry the parameter id the trial really got."""
    expdir = _record_experiment(tmp_path)
    con = sqlite3.connect(expdir / "db" / "nni.sqlite")
    con.execute("UPDATE MetricData SET parameterId = CASE trialJobId WHEN 'tA' THEN '1' ELSE '0' END "
                "WHERE trialJobId IN ('tA', 'tB')")
    con.commit()
    con.close()
    trials = {t.trial_id: t for t in load_trials(expdir)}
    assert trials["tA"].parameters == {"lambdas": [0.01, 0.0], "seed": 0} and trials["tA"].parameter_id == 1
    assert trials["tA"].nni_parameters == {"lambdas": [0.0, 0.0], "seed": 0} and trials["tA"].swapped
    assert not trials["tC"].swapped
    # the trial entry's own record wins over the metrics
    (trials["tC"].folder / "clearer_trial.json").write_text(json.dumps({"parameter_id": 9, "parameters": {"x": 1}}))
    assert {t.trial_id: t for t in load_trials(expdir)}["tC"].parameters == {"x": 1}
    out, rec = export_genotype(expdir, tmp_path / "g.json", trial="tA")
    from clearer_nni.nas.genotype import Genotype

    nni_meta = Genotype.load(out).metadata["nni"]
    assert nni_meta["parameters"]["lambdas"] == [0.01, 0.0] and nni_meta["nni_recorded_parameters"]["lambdas"] == [0.0, 0.0]
    assert "Trials tA, tB, tC ran with other parameters" in write_report(expdir, tmp_path / "rep")["md"].read_text()


def _move_final_genotypes(expdir, path, trial=None):
    """Point the FINAL metrics' genotype paths (of ``trial``, or all) at ``path``."""
    con = sqlite3.connect(expdir / "db" / "nni.sqlite")
    where = "type='FINAL'" + (" AND trialJobId=?" if trial else "")
    rows = con.execute(f"SELECT rowid, data FROM MetricData WHERE {where}", (trial,) if trial else ()).fetchall()
    for rowid, data in rows:
        value = json.loads(json.loads(data))
        value["genotype"] = path
        con.execute("UPDATE MetricData SET data=? WHERE rowid=?", (_metric_data(value), rowid))
    con.commit()
    con.close()


def test_export_finds_trials_of_a_moved_experiment_folder(tmp_path):
    expdir = _record_experiment(tmp_path / "new", moved_from="/somewhere/else/nni-experiments")
    # genotype paths in the metrics point at the old place too: rewrite them to a missing folder
    _move_final_genotypes(expdir, "/somewhere/else/genotype.json")
    trials = load_trials(find_experiment_dir(expdir))
    assert all(t.folder is not None and t.folder.is_relative_to(expdir) for t in trials)
    assert best_trial(trials).genotype_path == expdir / "environments/local-env/trials/tB/search/genotype.json"


def test_export_finds_a_search_by_the_trials_record_without_its_link(tmp_path):
    """Trials search into <experiment>/clearer-searches/param-<id>; without the trial folder's ``search``
    link (a copy that dropped links), export follows clearer_trial.json, also in a moved folder."""
    expdir = _record_experiment(tmp_path)
    trial_b = expdir / "environments" / "local-env" / "trials" / "tB"
    (expdir / SEARCHES).mkdir()
    (trial_b / "search").rename(expdir / SEARCHES / "param-1")
    (trial_b / "clearer_trial.json").write_text(json.dumps({
        "parameter_id": 1, "parameters": {"lambdas": [0.01, 0.0], "seed": 0},
        "search_dir": "/moved/away/clearer-searches/param-1", "search_dir_in_experiment": f"{SEARCHES}/param-1"}))
    _move_final_genotypes(expdir, "/moved/away/clearer-searches/param-1/genotype.json", trial="tB")
    best = best_trial(load_trials(expdir))
    assert best.trial_id == "tB" and best.genotype_path == expdir / SEARCHES / "param-1" / "genotype.json"


def test_report_table_and_pareto_plot(tmp_path, capsys):
    import pandas as pd

    expdir = _record_experiment(tmp_path)
    df = trial_table(load_trials(expdir))
    assert list(df["trial"]) == ["tA", "tB", "tD", "tC"]  # by λ1, λ2; the failed trial has no row
    assert "SSIM" not in df.columns
    front = set(df.loc[pareto_front(df), "trial"])
    assert front == {"tB", "tC"}  # tA: bigger and worse than tB; tD: dominated by tB

    from clearer_nni.experiment.report import main as report_main

    assert report_main([str(expdir), "-o", str(tmp_path / "rep")]) == 0
    csv = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert {"lambda1", "lambda2", "PSNR (dB)", "params (M)", "search time (s)", "pareto"} <= set(csv.columns)
    assert csv.loc[csv.trial == "tB", "pareto"].item() and not csv.loc[csv.trial == "tA", "pareto"].item()
    assert csv.loc[csv.trial == "tC", "params (M)"].item() == pytest.approx(0.012752)
    # each trial's search strategy, from its genotype (none recorded, from before --strategy: DARTS)
    assert dict(zip(csv.trial, csv.strategy)) == {"tA": "darts", "tB": "darts", "tC": "darts", "tD": "spos"}
    assert dict(zip(csv.trial, csv["select"])) == {"tA": "argmax", "tB": "argmax", "tC": "argmax", "tD": "rank"}
    md = (tmp_path / "rep" / "table.md").read_text()
    assert "| trial | pareto | lambda1 | lambda2 | PSNR (dB) | params (M) | search time (s)" in md
    assert "SSIM: not recorded" in md and "| tB | ✓ | 0.01 | 0 | 21.00 |" in md
    png = (tmp_path / "rep" / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (tmp_path / "rep" / "genotype.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # best trial, tB

    expdir2 = _record_experiment(tmp_path / "with_ssim", exp_id="ssim0001", ssim=True)
    df2 = trial_table(load_trials(expdir2))
    assert df2.loc[df2.trial == "tB", "SSIM"].item() == pytest.approx(0.71)
    paths = write_report(expdir2, tmp_path / "rep2")
    assert "SSIM: not recorded" not in paths["md"].read_text() and "| SSIM |" in paths["md"].read_text()


def test_report_without_finished_trials_is_an_error(tmp_path, capsys):
    from clearer_nni.experiment.report import main as report_main

    expdir = _record_experiment(tmp_path)
    con = sqlite3.connect(expdir / "db" / "nni.sqlite")
    con.execute("DELETE FROM MetricData WHERE type='FINAL'")
    con.commit()
    con.close()
    assert report_main([str(expdir), "-o", str(tmp_path / "rep")]) == 2
    assert "no trial of" in capsys.readouterr().err


# -- the shipped experiment files ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["denoise.yml", "denoise-gpu.yml", "derain.yml", "lambda_sweep.yml",
                                  "denoise-remote.yml"])
def test_shipped_experiment_files_are_valid(name):
    import yaml

    path = REPO / "experiments" / name
    doc = yaml.safe_load(path.read_text())
    assert "clearer_nni.experiment.trial" in doc["trialCommand"]
    if doc["trainingService"]["platform"] == "local":
        nnictl.check_config(path)  # what nnictl create checks: fields, search-space file, paths
    else:  # the remote file names SSH keys that do not exist here
        with pytest.raises(ValueError, match="SSH key file"):
            nnictl.check_config(path)
    space = json.loads((path.parent / doc["searchSpaceFile"]).read_text())
    for name_, spec in space.items():  # every value of every parameter maps onto the search's settings
        for value in spec["_value"]:
            cfg = SearchConfig(**parameter_settings({name_: value}))
            cfg.validate()


def test_every_demo_trial_searches_with_the_deciding_lambda1():
    """The demo's tuner varies λ2 and the seed, never λ1 below the recipe's deciding 1 (docs/EXPERIMENTS.md)."""
    from itertools import product

    from clearer_nni.config import resolve_search

    space = json.loads((REPO / "search_spaces" / "hpo_denoise.json").read_text())
    for values in product(*(spec["_value"] for spec in space.values())):
        cfg = resolve_search({"space": "demo"}, parameter_settings(dict(zip(space, values))))
        assert (cfg.lambda_arch, cfg.lambda_arch_schedule, cfg.anneal_fraction) == (1.0, "linear", 0.3)


def test_lambda_sweep_is_the_papers_table_5_grid():
    space = json.loads((REPO / "search_spaces" / "hpo_lambda_sweep.json").read_text())
    assert space == {"lambdas": {"_type": "choice", "_value": [[0.0, 0.0], [0.01, 0.0], [0.1, 0.0], [0.01, 0.01],
                                                               [0.1, 0.1]]}}


def test_a_resumed_trial_knows_which_intermediate_results_nni_stored(tmp_path):
    """After a crash of NNI's manager, a resumed trial sends again what the manager's database lacks."""
    from clearer_nni.experiment.trial import intermediate_metric, recorded_steps

    expdir = _record_experiment(tmp_path)
    assert recorded_steps(expdir, "tA") == {5, 10} and recorded_steps(expdir, "tE") == set()
    assert recorded_steps(tmp_path / "nowhere", "tA") is None and recorded_steps(None, "tA") is None
    assert intermediate_metric({"step": 15, "val_psnr": 20.5, "loss_arch": 0.3}) == {
        "default": 20.5, "alpha_entropy": 0.3, "step": 15}
    assert intermediate_metric({"step": 15, "val_psnr": float("nan")}) is None
