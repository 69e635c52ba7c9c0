"""NNI's remote training service, run for real: an SSH server on 127.0.0.1 stands in for a GPU machine.

The experiment is the shipped ``denoise-remote.yml`` with its machine list pointed at the test server and
its trials made CPU-sized (tiny space, 20 steps, no GPU). NNI connects over SSH, copies the trial code,
starts its trial keeper there and runs the trials; the test checks the metrics, ``export`` from the
manager's database alone (the remote folders are deleted first), the listening sockets, and that
nothing is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from clearer_nni.bundled import LOOPBACK_JS, experiment_path
from clearer_nni.experiment import nnictl, processes, rest
from clearer_nni.experiment.export import export_genotype
from clearer_nni.nas.genotype import Genotype
from helpers import listening_addresses, wait_for_trials
from sshd import loopback_sshd, sshd_missing

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
TRIAL = "--space tiny --steps 20 --warmup-steps 5 --log-every 5 --device cpu"

needs_sshd = pytest.mark.skipif(sshd_missing() is not None, reason=str(sshd_missing()))


def _remote_config(tmp_path: Path, ssh, trials: int = 2) -> Path:
    """The shipped remote experiment, pointed at the test server, with CPU-sized trials."""
    shipped = experiment_path("denoise-remote")
    doc = yaml.safe_load(shipped.read_text())
    code = tmp_path / "code"
    code.mkdir()
    (code / "marker.txt").write_text("copied by NNI\n")
    doc.update(
        searchSpaceFile=str((shipped.parent / doc["searchSpaceFile"]).resolve()),
        trialCommand=f"OMP_NUM_THREADS=1 python3 -m clearer_nni.experiment.trial {TRIAL}",
        trialCodeDirectory=str(code), trialGpuNumber=0, trialConcurrency=1, maxTrialNumber=trials,
        maxExperimentDuration="10m")
    machine = dict(doc["trainingService"]["machineList"][0], host=ssh.host, port=ssh.port, user=ssh.user,
                   sshKeyFile=str(ssh.key), pythonPath=str(Path(sys.executable).parent))
    doc["trainingService"]["machineList"] = [machine]
    path = tmp_path / "remote.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_remote_machine_that_cannot_be_reached_fails_the_run_with_nnis_message(tmp_path, capsys):
    """``nnictl create`` exits 0 and NNI's manager dies seconds later: the launcher says why, exit 2."""
    from clearer_nni.experiment import launch
    from clearer_nni.experiment.processes import experiment_record

    closed = rest.free_port()  # nothing listens there
    key = tmp_path / "key"
    key.write_text("not a key\n")
    ssh = type("Unreachable", (), dict(host="127.0.0.1", port=closed, user="nobody", key=key))
    workdir = tmp_path / "nni"
    cfg = _remote_config(tmp_path, ssh, trials=1)
    assert launch.main(["run", str(cfg), "--port", str(rest.free_port()), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the remote training service did not start: Error: Cannot parse privateKey")
    (exp_id,) = json.loads((workdir / "nni-experiments" / ".experiment").read_text())
    assert processes.experiment_processes(exp_id, workdir) == []
    assert experiment_record(exp_id, workdir)["platform"] == "remote"


def _remote_processes(home: Path) -> list[psutil.Process]:
    """Processes of SSH sessions of the test server's user (their HOME is its HOME)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("HOME") == str(home) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _listening(proc: psutil.Process) -> set[str]:
    try:
        return {c.laddr.ip for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        return set()


@needs_sshd
def test_remote_training_service_over_ssh_on_loopback(tmp_path):
    env = {"PIP_NO_INDEX": "1", "OMP_NUM_THREADS": "1",
           # the trial keeper NNI starts there: loopback only too (docs/SCALE.md)
           "NODE_OPTIONS": f"--require={LOOPBACK_JS}"}
    with loopback_sshd(tmp_path / "ssh", env) as ssh:
        workdir = tmp_path / "nni"
        port = rest.free_port()
        nni_config = tmp_path / "nni-config"
        nni_config.mkdir()
        base = {**os.environ, "NNI_CONFIG_DIR": str(nni_config)}
        exp_id = nnictl.create_experiment(_remote_config(tmp_path, ssh), port, workdir, env=base)
        keeper_addresses: set[str] = set()
        try:
            remote_exp = ssh.home / "nni-experiments" / exp_id
            deadline = time.monotonic() + 240
            trials: list = []
            while time.monotonic() < deadline:
                keeper = [p for p in _remote_processes(ssh.home)
                          if any("trial_keeper" in c for c in p.cmdline())]
                for p in keeper:
                    keeper_addresses |= _listening(p)
                state = rest.rest_get(port, "/check-status") or {}
                assert state.get("status") != "ERROR", state
                trials = rest.rest_get(port, "/trial-jobs") or []
                if len(trials) == 2 and all(t["status"] in rest.TERMINAL_TRIAL_STATUSES for t in trials):
                    break
                time.sleep(0.5)
            trials = wait_for_trials(port, 2, timeout=5)
            assert [t["status"] for t in trials] == ["SUCCEEDED", "SUCCEEDED"], trials

            # NNI copied the code and ran the trials on the "remote machine"
            assert (remote_exp / "environments" / "remote-worker1" / "upload" / "trial_code" / "marker.txt").is_file()
            assert keeper_addresses and keeper_addresses <= LOOPBACK, keeper_addresses
            assert set(listening_addresses(port)) <= LOOPBACK

            metrics = rest.rest_get(port, "/metric-data")
            for t in trials:
                pid = json.loads(t["hyperParameters"][0])["parameter_id"]
                mine = [m for m in metrics if m["trialJobId"] == t["trialJobId"]]
                assert mine and all(str(m["parameterId"]) == str(pid) for m in mine)
                periodic = [json.loads(json.loads(m["data"])) for m in mine if m["type"] == "PERIODICAL"]
                finals = [json.loads(json.loads(m["data"])) for m in mine if m["type"] == "FINAL"]
                assert [m["step"] for m in periodic] == [1, 5, 10, 15, 20]
                assert len(finals) == 1
                assert finals[0]["genotype"].startswith(str(remote_exp))  # the search ran over there
                # the web UI shows the trial's output, fetched from the remote machine
                with __import__("urllib.request").request.urlopen(
                        f"http://127.0.0.1:{port}/api/v1/nni/trial-file/{t['trialJobId']}/stdout", timeout=30) as r:
                    assert b"final: derived-network val PSNR" in r.read()
        finally:
            leftover = nnictl.stop_experiment(exp_id, workdir, env=base)
        assert leftover == []
        deadline = time.monotonic() + 30
        while _remote_processes(ssh.home) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _remote_processes(ssh.home) == []
        assert processes.experiment_processes(exp_id, workdir) == []
        assert listening_addresses(port) == []

    # export needs only the manager's database: the remote machine's files are gone
    shutil.rmtree(ssh.home / "nni-experiments")
    out, rec = export_genotype(exp_id, tmp_path / "best.json", workdir=workdir)
    scores = {t["trialJobId"]: json.loads(json.loads(t["finalMetricData"][0]["data"]))["default"] for t in trials}
    assert rec.trial_id == max(scores, key=scores.get)
    geno = Genotype.load(out)
    assert geno.metadata["nni"]["trial_id"] == rec.trial_id and geno.build() is not None
