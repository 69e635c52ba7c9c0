"""``python -m clearer_nni.experiment``: start, watch, view and stop NNI experiments of CLEARER searches.

::

    python -m clearer_nni.experiment run experiments/denoise.yml [--port P] [--workdir DIR] [--public]
                                         [--wait [--timeout S]] [--keep-home]
    python -m clearer_nni.experiment resume EXPERIMENT_ID [--port P] [--workdir DIR] [--public]
                                            [--wait [--timeout S]] [--keep-home]
    python -m clearer_nni.experiment view EXPERIMENT_ID [--port P] [--workdir DIR] [--public]
    python -m clearer_nni.experiment stop EXPERIMENT_ID [--workdir DIR]
    python -m clearer_nni.experiment status [--port P]

``run`` calls ``nnictl create`` with three changes to its environment:

- ``NODE_OPTIONS=--require clearer_nni/experiment/loopback.js``: NNI's web server listens on
  127.0.0.1 only (NNI itself listens on every interface). ``--public`` skips this, deliberately.
- ``HOME=DIR`` (``--workdir``, default ``runs/nni``): NNI writes ``~/nni-experiments`` and its
  experiment list under ``$HOME`` and offers no other switch, so the experiment's files go to
  ``DIR/nni-experiments/<id>/``. ``--keep-home`` leaves ``HOME`` alone. The trials get the real
  ``HOME`` back (``CLEARER_USER_HOME``) so caches and datasets are found where they usually are.
- ``CLEARER_PYTHON`` = this Python (and its folder first on ``PATH``): the experiment files' trial
  command ``${CLEARER_PYTHON:-python3} -m clearer_nni.experiment.trial`` runs with this interpreter.

``resume`` calls ``nnictl resume`` with the same environment: NNI runs again the trials that were
WAITING or RUNNING when the experiment's NNI manager ended without stopping them (a crash, a SIGKILL, a
reboot), and each continues its search from its checkpoint (``clearer_nni/experiment/trial.py``).

With ``--wait`` it polls the REST API (``http://127.0.0.1:PORT/api/v1/nni/check-status``) until the
experiment is done (or ``--timeout`` seconds pass), prints the trials, and stops the experiment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "LOOPBACK_JS", "API", "TERMINAL_TRIAL_STATUSES", "free_port", "port_in_use", "rest_get", "nni_env",
    "check_config", "create_experiment", "resume_experiment", "wait_for_trials", "wait_for_experiment",
    "experiment_processes", "trial_processes", "listening_addresses", "stop_experiment", "pick_port",
    "trial_metric", "main",
]

LOOPBACK_JS = Path(__file__).resolve().with_name("loopback.js")
API = "/api/v1/nni"
DEFAULT_WORKDIR = "runs/nni"
DEFAULT_PORT = 8080
TERMINAL_TRIAL_STATUSES = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}
DONE_STATUSES = {"DONE", "STOPPED", "ERROR"}


# -- small helpers (also used by the tests) --------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now on ``host`` and whose successor is free too (NNI may use port + 1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port < 65535 and not port_in_use(port) and not port_in_use(port + 1):
            return port
    raise RuntimeError("could not find a free TCP port")


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on ``port`` (on loopback, IPv4 or IPv6) or has it bound."""
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex((addr, port)) == 0:
                    return True
        except OSError:
            pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # as Node.js does: connections of a stopped experiment in TIME_WAIT do not block the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
    except OSError:
        return True
    return False


def rest_get(port: int, path: str, timeout: float = 10.0, host: str = "127.0.0.1") -> Any:
    """GET ``http://host:port/api/v1/nni<path>`` and decode the JSON answer."""
    url = f"http://{host}:{port}{API}{path if path.startswith('/') else '/' + path}"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL
        body = resp.read().decode("utf-8")
    return json.loads(body) if body.strip() else None


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
    if "CLEARER_DATA_ROOT" not in env:  # the trials run in another folder: pin the data root seen from here
        shared = Path.cwd().parent / "shared" / "data"
        if shared.is_dir():
            env["CLEARER_DATA_ROOT"] = str(shared.resolve())
    return env


def _nnictl(args: Sequence[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nni.tools.nnictl.nnictl", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _experiments_file(home: str | Path) -> Path:
    return Path(home) / "nni-experiments" / ".experiment"


def _experiment_record(exp_id: str, home: str | Path) -> dict[str, Any] | None:
    path = _experiments_file(home)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(exp_id)
    except (OSError, ValueError):
        return None


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
    proc = _nnictl(args, env, timeout=timeout)
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
    return exp_id


def resume_experiment(exp_id: str, port: int, workdir: str | Path | None = DEFAULT_WORKDIR, public: bool = False,
                      debug: bool = False, env: dict[str, str] | None = None, timeout: float = 180.0) -> str:
    """``nnictl resume`` a stopped (or crashed) experiment on ``port``, with the environment of
    :func:`create_experiment`; return its id.

    Raises ``ValueError`` when the experiment is not in the work folder's experiment list or still
    runs, ``RuntimeError`` when ``nnictl`` fails.
    """
    env = nni_env(workdir, public, env)
    record = _experiment_record(exp_id, env["HOME"])
    if record is None:
        raise ValueError(f"no experiment {exp_id} in {_experiments_file(env['HOME'])} (wrong --workdir?)")
    if record.get("status") != "STOPPED" and experiment_processes(exp_id, env["HOME"]):
        raise ValueError(f"experiment {exp_id} is running (port {record.get('port')}): stop it before resuming it")
    orphans = trial_processes(exp_id)
    if orphans:  # they would search into the same folders as the trials NNI runs again
        raise ValueError(f"trial processes of experiment {exp_id} still run (pids {sorted(p.pid for p in orphans)}): "
                         "a trial whose NNI manager died ends when it next reports a metric; wait for them, or end "
                         "them, before resuming")
    if port_in_use(port):
        raise ValueError(f"port {port} is already in use (choose another with --port)")
    args = ["resume", exp_id, "--port", str(port)]
    if debug:
        args.append("--debug")
    proc = _nnictl(args, env, timeout=timeout)
    out = (proc.stdout or "") + (proc.stderr or "")
    try:
        answered = rest_get(port, "/experiment", timeout=5).get("id")
    except (OSError, ValueError, AttributeError):
        answered = None
    if proc.returncode != 0 or answered != exp_id:
        lines = [ln for ln in out.strip().splitlines() if "pkg_resources" not in ln]
        raise RuntimeError(f"nnictl resume failed (exit code {proc.returncode}):\n" + "\n".join(lines[-15:]))
    return exp_id


def wait_for_trials(port: int, count: int, timeout: float = 300.0, poll: float = 1.0,
                    statuses: Iterable[str] = TERMINAL_TRIAL_STATUSES) -> list[dict[str, Any]]:
    """Poll ``/trial-jobs`` until ``count`` trials have one of ``statuses``; return all trials.

    Raises ``TimeoutError`` (with the last trial statuses) after ``timeout`` seconds, and
    ``RuntimeError`` when the experiment reports ERROR.
    """
    statuses = set(statuses)
    deadline = time.monotonic() + timeout
    trials: list[dict[str, Any]] = []
    while True:
        try:
            trials = rest_get(port, "/trial-jobs") or []
            state = rest_get(port, "/check-status") or {}
        except (OSError, ValueError):
            state = {}
        if state.get("status") == "ERROR":
            raise RuntimeError(f"experiment error: {state.get('errors')}")
        if sum(t.get("status") in statuses for t in trials) >= count:
            return trials
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} trials did not finish in {timeout:.0f} s; trials now: "
                               f"{[(t.get('trialJobId'), t.get('status')) for t in trials]}")
        time.sleep(poll)


def wait_for_experiment(port: int, timeout: float | None = None, poll: float = 2.0,
                        on_poll: Any = None) -> dict[str, Any]:
    """Poll ``/check-status`` until the experiment is DONE, STOPPED or ERROR; return the last status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    state: dict[str, Any] = {}
    while True:
        state = rest_get(port, "/check-status") or {}
        if on_poll is not None:
            on_poll(state)
        if state.get("status") in DONE_STATUSES:
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"experiment not done after {timeout:.0f} s (status {state.get('status')})")
        time.sleep(poll)


def _psutil():
    import psutil

    return psutil


def experiment_processes(exp_id: str, home: str | Path | None = None) -> list[Any]:
    """The live processes of an experiment: its NNI manager (from the experiment list, or found by the
    ``--experiment-id`` argument of NNI's ``main.js``) and all their descendants, as psutil objects."""
    psutil = _psutil()
    roots = []
    record = _experiment_record(exp_id, home) if home is not None else None
    if record and record.get("pid"):
        try:
            roots.append(psutil.Process(int(record["pid"])))
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info.get("cmdline") or []
        except psutil.Error:
            continue
        if any(c.endswith("main.js") for c in cmd) and exp_id in cmd:
            roots.append(proc)
    found: dict[int, Any] = {}
    for root in roots:
        try:
            if root.is_running():
                found[root.pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
        except psutil.Error:
            continue
    alive = []
    for p in found.values():
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.Error:
            pass
    return alive


def trial_processes(exp_id: str) -> list[Any]:
    """Live processes started for a trial of the experiment (``NNI_EXP_ID`` in their environment), wherever
    they are in the process tree: a trial whose NNI manager was killed runs on, orphaned, until it next
    tries to report a metric."""
    psutil = _psutil()
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("NNI_EXP_ID") == exp_id and proc.environ().get("NNI_TRIAL_JOB_ID") \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def listening_addresses(port: int) -> list[str]:
    """The local addresses on which some process listens on TCP ``port`` (from /proc/net/tcp{,6})."""
    found = []
    for name, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != "0A":  # 0A = LISTEN
                continue
            addr_hex, port_hex = parts[1].split(":")
            if int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            if v6:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append(socket.inet_ntop(socket.AF_INET6, raw))
            else:
                found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


def stop_experiment(exp_id: str, workdir: str | Path | None = DEFAULT_WORKDIR, timeout: float = 60.0,
                    env: dict[str, str] | None = None) -> list[int]:
    """``nnictl stop`` the experiment, wait for its processes to end; terminate any left after ``timeout``.

    Returns the pids that had to be terminated (empty when NNI shut everything down itself).
    """
    psutil = _psutil()
    env = nni_env(workdir, base=env)
    procs = experiment_processes(exp_id, env["HOME"])
    _nnictl(["stop", exp_id], env, timeout=timeout + 30)
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


# -- command line ----------------------------------------------------------------------------------

def trial_metric(trial: dict[str, Any]) -> Any:
    """The ``default`` value of a trial's final result, as the REST API's ``/trial-jobs`` gives it (or None)."""
    value = trial.get("finalMetricData")
    if not value:
        return None
    try:
        data = value[0]["data"] if isinstance(value, list) else value
        while isinstance(data, str):
            data = json.loads(data)
        return data.get("default") if isinstance(data, dict) else data
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _print_trials(port: int) -> list[dict[str, Any]]:
    trials = rest_get(port, "/trial-jobs") or []
    print(f"{'trial':<8} {'status':<10} {'PSNR (dB)':>10}  parameters")
    for t in sorted(trials, key=lambda t: t.get("sequenceId", 0)):
        params = None
        try:
            params = json.loads(t["hyperParameters"][0]).get("parameters")
        except (KeyError, IndexError, TypeError, ValueError):
            pass
        m = trial_metric(t)
        print(f"{t.get('trialJobId', '?'):<8} {t.get('status', '?'):<10} "
              f"{(f'{m:.3f}' if isinstance(m, (int, float)) else '-'):>10}  {json.dumps(params)}")
    return trials


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clearer_nni.experiment",
                                description="NNI experiments of CLEARER searches (web UI on 127.0.0.1 by default).")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, port: bool = True) -> None:
        sp.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="HOME of NNI's processes: experiments go to WORKDIR/nni-experiments/<id> [%(default)s]")
        sp.add_argument("--keep-home", action="store_true",
                        help="leave HOME alone (NNI's default ~/nni-experiments); --workdir is then ignored")
        if port:
            sp.add_argument("--port", type=int, default=None,
                            help=f"web UI / REST port [{DEFAULT_PORT}, or a free one if that is taken]")
            sp.add_argument("--public", action="store_true",
                            help="let the web UI listen on ALL network interfaces (NNI's behaviour): anyone "
                                 "who can reach this machine can see and control the experiment")

    run = sub.add_parser("run", help="start an experiment (nnictl create) from an experiment YAML file")
    run.add_argument("config", help="experiment file, e.g. experiments/denoise.yml")
    common(run)
    run.add_argument("--wait", action="store_true", help="wait until the experiment is done, then stop it")
    run.add_argument("--timeout", type=float, default=None,
                     help="with --wait: stop the experiment after this many seconds, exit code 3")
    run.add_argument("--debug", action="store_true", help="NNI manager debug logging")

    resume = sub.add_parser("resume", help="start a stopped or crashed experiment again (nnictl resume): its "
                                           "unfinished trials continue their searches")
    resume.add_argument("experiment_id")
    common(resume)
    resume.add_argument("--wait", action="store_true", help="wait until the experiment is done, then stop it")
    resume.add_argument("--timeout", type=float, default=None,
                        help="with --wait: stop the experiment after this many seconds, exit code 3")
    resume.add_argument("--debug", action="store_true", help="NNI manager debug logging")

    view = sub.add_parser("view", help="show a stopped experiment in the web UI (nnictl view)")
    view.add_argument("experiment_id")
    common(view)

    stop = sub.add_parser("stop", help="stop a running experiment (nnictl stop) and wait for its processes")
    stop.add_argument("experiment_id")
    common(stop, port=False)

    status = sub.add_parser("status", help="print the status and trials of the experiment on a port")
    status.add_argument("--port", type=int, default=DEFAULT_PORT)
    return p


def pick_port(port: int | None) -> int:
    """``port`` if given, else 8080 when it (and 8081) are free, else a free port."""
    if port is not None:
        return port
    return DEFAULT_PORT if not port_in_use(DEFAULT_PORT) and not port_in_use(DEFAULT_PORT + 1) else free_port()


def _url(port: int, public: bool) -> str:
    if public:
        return f"http://{socket.gethostname()}:{port} (all interfaces; also http://127.0.0.1:{port})"
    return f"http://127.0.0.1:{port}"


def _warn_concurrency(config: str | Path) -> None:
    """NNI 3.0's local training service (training_service/v3/compat.js) queues parameters and gives them to
    whichever trial asks first: with several trials at once, a trial may run another trial's parameters
    while the web UI shows its own. The metrics carry the right parameter id (the tuner is right), and
    export/report use what each trial ran; the web UI's parameter column can be wrong."""
    try:
        import yaml

        doc = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        platform = (doc.get("trainingService") or {}).get("platform")
        if platform == "local" and int(doc.get("trialConcurrency", 1)) > 1:
            print("note: trialConcurrency > 1 with NNI 3.0's local training service: a trial may run with another "
                  "trial's parameters while the web UI lists its own (the metrics, export and report are right); "
                  "each trial's clearer_trial.json and trial.log say what it ran", file=sys.stderr)
    except (OSError, ValueError, TypeError, AttributeError, ImportError):
        pass


def _launch_settings(ns: argparse.Namespace) -> tuple[str | None, int]:
    """The work folder and port of ``run`` and ``resume``; warns about ``--public``."""
    if ns.public:
        print("warning: --public: the web UI and REST API (which can stop the experiment and change its "
              "settings) listen on every network interface, without authentication", file=sys.stderr)
    return (None if ns.keep_home else ns.workdir), pick_port(ns.port)


def _cmd_run(ns: argparse.Namespace) -> int:
    workdir, port = _launch_settings(ns)
    _warn_concurrency(ns.config)
    exp_id = create_experiment(ns.config, port, workdir, public=ns.public, debug=ns.debug)
    return _started(exp_id, port, workdir, ns, "started")


def _cmd_resume(ns: argparse.Namespace) -> int:
    workdir, port = _launch_settings(ns)
    exp_id = resume_experiment(ns.experiment_id, port, workdir, public=ns.public, debug=ns.debug)
    return _started(exp_id, port, workdir, ns, "resumed")


def _started(exp_id: str, port: int, workdir: str | None, ns: argparse.Namespace, what: str) -> int:
    """Print where an experiment that has just started is; with ``--wait``, wait for it and stop it."""
    home = Path(workdir).resolve() if workdir else Path.home()
    print(f"experiment {exp_id} {what}")
    print(f"web UI: {_url(port, ns.public)}   (overview /oview, trials /detail)")
    print(f"files: {home / 'nni-experiments' / exp_id}")
    home_env = "" if workdir is None else f"HOME={shlex.quote(str(home))} "
    print(f"stop it with: {sys.executable} -m clearer_nni.experiment stop {exp_id}"
          + ("" if workdir is None else f" --workdir {shlex.quote(str(workdir))}")
          + f"   (or {home_env}nnictl stop {exp_id})")
    if not ns.wait:
        return 0
    last = [None]

    def on_poll(state: dict[str, Any]) -> None:
        if state.get("status") != last[0]:
            last[0] = state.get("status")
            print(f"[{time.strftime('%H:%M:%S')}] status {last[0]}", flush=True)

    code = 0
    try:
        state = wait_for_experiment(port, ns.timeout, on_poll=on_poll)
        if state.get("status") == "ERROR":
            print(f"error: the experiment failed: {state.get('errors')}", file=sys.stderr)
            code = 1
    except TimeoutError as exc:
        print(f"timeout: {exc}; stopping it", file=sys.stderr)
        code = 3
    except KeyboardInterrupt:
        print("interrupted: stopping the experiment", file=sys.stderr)
        code = 130
    finally:
        try:
            trials = _print_trials(port)
            if any(t.get("status") == "FAILED" for t in trials):
                print(f"some trials FAILED: see trial.stderr in {home / 'nni-experiments' / exp_id}/environments/"
                      "*/trials/<trial id>/", file=sys.stderr)
        except (OSError, ValueError):
            pass
        stop_experiment(exp_id, workdir)
        print(f"experiment {exp_id} stopped; best genotype: {sys.executable} -m clearer_nni.export {exp_id}"
              + ("" if workdir is None else f" --workdir {shlex.quote(str(workdir))}"))
    return code


def _cmd_view(ns: argparse.Namespace) -> int:
    workdir = None if ns.keep_home else ns.workdir
    port = pick_port(ns.port)
    env = nni_env(workdir, ns.public)
    proc = _nnictl(["view", ns.experiment_id, "--port", str(port)], env)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode == 0:
        print(f"web UI: {_url(port, ns.public)}; stop the viewer with: {sys.executable} -m clearer_nni.experiment "
              f"stop {ns.experiment_id}" + ("" if workdir is None else f" --workdir {shlex.quote(str(workdir))}"))
    return proc.returncode


def _cmd_stop(ns: argparse.Namespace) -> int:
    workdir = None if ns.keep_home else ns.workdir
    home = Path(workdir).resolve() if workdir else Path.home()
    if _experiment_record(ns.experiment_id, home) is None:
        raise ValueError(f"no experiment {ns.experiment_id} in {_experiments_file(home)} (wrong --workdir?)")
    leftover = stop_experiment(ns.experiment_id, workdir)
    print(f"experiment {ns.experiment_id} stopped" + (f" (terminated leftover processes {leftover})" if leftover else ""))
    return 0


def _cmd_status(ns: argparse.Namespace) -> int:
    try:
        state = rest_get(ns.port, "/check-status")
        exp = rest_get(ns.port, "/experiment")
    except urllib.error.URLError as exc:
        raise RuntimeError(f"no NNI experiment answers on http://127.0.0.1:{ns.port} ({exc.reason})") from None
    print(f"experiment {exp.get('id')}: {state.get('status')}")
    _print_trials(ns.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # The error handling of clearer_nni.cli.run_cli, without importing torch and Lightning.
    ns = _parser().parse_args(argv)
    try:
        commands = {"run": _cmd_run, "resume": _cmd_resume, "view": _cmd_view, "stop": _cmd_stop, "status": _cmd_status}
        return commands[ns.command](ns)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError, TimeoutError,
            subprocess.TimeoutExpired) as exc:
        if os.environ.get("CLEARER_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
