"""``nnictl`` with our environment: the web UI on loopback only, NNI's files under a chosen folder, this Python.

``create_experiment``, ``resume_experiment`` and ``stop_experiment`` wrap ``nnictl create``, ``resume``
and ``stop`` (see :mod:`clearer_nni.experiment.launch` for the environment they set).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from ..bundled import LOOPBACK_JS
from .processes import experiment_processes, experiment_record, experiments_file, trial_processes
from .remote import log_size, wait_for_training_service
from .rest import port_in_use, rest_get

__all__ = ["DEFAULT_WORKDIR", "nni_env", "run_nnictl", "check_config", "create_experiment", "resume_experiment",
           "stop_experiment"]

DEFAULT_WORKDIR = "runs/nni"


def nni_env(workdir: str | Path | None = DEFAULT_WORKDIR, public: bool = False,
            base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``nnictl``: the loopback shim (unless ``public``), ``HOME=workdir`` (unless
    ``None``), this Python."""
    env = dict(os.environ if base is None else base)
    if public:
        env["CLEARER_NNI_PUBLIC"] = "1"
    else:
        env.pop("CLEARER_NNI_PUBLIC", None)
        js = str(LOOPBACK_JS)
        require = f'--require "{js}"' if " " in js else f"--require {js}"
        opts = env.get("NODE_OPTIONS", "")
        if js not in opts:
            env["NODE_OPTIONS"] = f"{opts} {require}".strip()
    if workdir is not None:
        home = Path(workdir).expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        env.setdefault("CLEARER_USER_HOME", env.get("HOME", str(Path.home())))
        env["HOME"] = str(home)
    env["CLEARER_PYTHON"] = sys.executable
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if "CLEARER_DATA_ROOT" not in env:  # the trials get another HOME: pin the data root seen from here
        from ..data.datasets import default_data_root

        env["CLEARER_DATA_ROOT"] = str(default_data_root().expanduser().resolve())
    return env


def run_nnictl(args: Sequence[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nni.tools.nnictl.nnictl", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def check_config(config: str | Path) -> None:
    """Load and check an experiment file as ``nnictl create`` will (fields, search-space file, paths);
    raise ``ValueError`` with NNI's message, instead of ``nnictl``'s traceback."""
    from nni.experiment.config import ExperimentConfig, utils

    try:
        ExperimentConfig.load(config).canonical_copy()
    except Exception as exc:  # NNI raises ValueError, AttributeError, TypeError, yaml errors...
        raise ValueError(f"{config}: {type(exc).__name__}: {exc}") from None
    finally:
        # ExperimentConfig.load leaves a global "base path" set when the file is bad, and every later
        # load then fails an assertion (NNI 3.0): reset it.
        utils.unset_base_path()


def create_experiment(config: str | Path, port: int, workdir: str | Path | None = DEFAULT_WORKDIR,
                      public: bool = False, debug: bool = False, env: dict[str, str] | None = None,
                      timeout: float = 180.0) -> str:
    """``nnictl create`` the experiment described by ``config`` on ``port``; return its id.

    ``workdir`` becomes ``HOME`` of NNI's processes (``None``: keep ``HOME``).
    """
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"experiment config not found: {config}")
    check_config(config)
    if port_in_use(port):
        raise ValueError(f"port {port} is already in use (choose another with --port)")
    env = nni_env(workdir, public, env)
    args = ["create", "--config", str(config), "--port", str(port)]
    if debug:
        args.append("--debug")
    proc = run_nnictl(args, env, timeout=timeout)
    out = (proc.stdout or "") + (proc.stderr or "")
    exp_id = None
    try:
        exp_id = rest_get(port, "/experiment", timeout=5).get("id")
    except (OSError, ValueError, AttributeError):
        match = re.search(r"Experiment ID:\s*(\w+)", out)
        exp_id = match.group(1) if match else None
    if proc.returncode != 0 or not exp_id:
        lines = [ln for ln in out.strip().splitlines() if "pkg_resources" not in ln]
        raise RuntimeError(f"nnictl create failed (exit code {proc.returncode}):\n" + "\n".join(lines[-15:]))
    _check_started(exp_id, env["HOME"])
    return exp_id


def _check_started(exp_id: str, home: str, since: int = 0) -> None:
    """``nnictl`` exits 0 before a remote training service has connected: wait for it (:mod:`.remote`)."""
    record = experiment_record(exp_id, home) or {}
    if record.get("platform") == "remote":
        expdir = Path(home) / "nni-experiments" / exp_id
        try:
            wait_for_training_service(expdir, lambda: experiment_processes(exp_id, home), since)
        except RuntimeError:
            stop_experiment(exp_id, home, timeout=30)  # the manager is shutting down: leave nothing running
            raise


def resume_experiment(exp_id: str, port: int, workdir: str | Path | None = DEFAULT_WORKDIR, public: bool = False,
                      debug: bool = False, env: dict[str, str] | None = None, timeout: float = 180.0) -> str:
    """``nnictl resume`` a stopped (or crashed) experiment on ``port``, with the environment of
    :func:`create_experiment`; return its id.

    Raises ``ValueError`` when the experiment is not in the work folder's experiment list or still
    runs, ``RuntimeError`` when ``nnictl`` fails.
    """
    env = nni_env(workdir, public, env)
    record = experiment_record(exp_id, env["HOME"])
    if record is None:
        raise ValueError(f"no experiment {exp_id} in {experiments_file(env['HOME'])} (wrong --workdir?)")
    if record.get("status") != "STOPPED" and experiment_processes(exp_id, env["HOME"]):
        raise ValueError(f"experiment {exp_id} is running (port {record.get('port')}): stop it before resuming it")
    orphans = trial_processes(exp_id)
    if orphans:  # they would search into the same folders as the trials NNI runs again
        raise ValueError(f"trial processes of experiment {exp_id} still run (pids {sorted(p.pid for p in orphans)}): "
                         "a trial whose NNI manager died ends when it next reports a metric; wait for them, or end "
                         "them, before resuming")
    if port_in_use(port):
        raise ValueError(f"port {port} is already in use (choose another with --port)")
    since = log_size(Path(env["HOME"]) / "nni-experiments" / exp_id)
    args = ["resume", exp_id, "--port", str(port)]
    if debug:
        args.append("--debug")
    proc = run_nnictl(args, env, timeout=timeout)
    out = (proc.stdout or "") + (proc.stderr or "")
    try:
        answered = rest_get(port, "/experiment", timeout=5).get("id")
    except (OSError, ValueError, AttributeError):
        answered = None
    if proc.returncode != 0 or answered != exp_id:
        lines = [ln for ln in out.strip().splitlines() if "pkg_resources" not in ln]
        raise RuntimeError(f"nnictl resume failed (exit code {proc.returncode}):\n" + "\n".join(lines[-15:]))
    _check_started(exp_id, env["HOME"], since)
    return exp_id


def stop_experiment(exp_id: str, workdir: str | Path | None = DEFAULT_WORKDIR, timeout: float = 60.0,
                    env: dict[str, str] | None = None) -> list[int]:
    """``nnictl stop`` the experiment, wait for its processes to end; terminate any left after ``timeout``.

    Returns the pids that had to be terminated (empty when NNI shut everything down itself).
    """
    import psutil
    env = nni_env(workdir, base=env)
    procs = experiment_processes(exp_id, env["HOME"])
    run_nnictl(["stop", exp_id], env, timeout=timeout + 30)
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    leftover = []
    for p in alive:
        try:
            leftover.append(p.pid)
            p.terminate()
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(alive, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return leftover
