"""``clearer-nni experiment``: start, watch, view and stop NNI experiments of CLEARER searches.

::

    clearer-nni experiment run CONFIG [--port P] [--workdir DIR] [--public] [--wait [--timeout S]] [--keep-home]
    clearer-nni experiment resume EXPERIMENT_ID [--port P] [--workdir DIR] [--public] [--wait [--timeout S]]
    clearer-nni experiment view EXPERIMENT_ID [--port P] [--workdir DIR] [--public]
    clearer-nni experiment stop EXPERIMENT_ID [--workdir DIR]
    clearer-nni experiment status [--port P]

``CONFIG`` is an experiment file, or the name of a shipped one (``denoise``, ``lambda_sweep``, ``derain``,
``denoise-gpu``, ``denoise-remote``: ``experiments/`` in the repository).

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
import shlex
import socket
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any, Sequence

from ..bundled import experiment_path
from .nnictl import DEFAULT_WORKDIR, create_experiment, nni_env, resume_experiment, run_nnictl, stop_experiment
from .processes import experiment_record, experiments_file
from .rest import DEFAULT_PORT, pick_port, rest_get, trial_metric, wait_for_experiment

__all__ = ["main"]


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
    p = argparse.ArgumentParser(prog="clearer-nni experiment",
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
    run.add_argument("config", help="experiment file, or a shipped name (denoise, lambda_sweep, derain...)")
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


def _url(port: int, public: bool) -> str:
    if public:
        return f"http://{socket.gethostname()}:{port} (all interfaces; also http://127.0.0.1:{port})"
    return f"http://127.0.0.1:{port}"


def _launch_settings(ns: argparse.Namespace) -> tuple[str | None, int]:
    """The work folder and port of ``run`` and ``resume``; warns about ``--public``."""
    if ns.public:
        print("warning: --public: the web UI and REST API (which can stop the experiment and change its "
              "settings) listen on every network interface, without authentication", file=sys.stderr)
    return (None if ns.keep_home else ns.workdir), pick_port(ns.port)


def _cmd_run(ns: argparse.Namespace) -> int:
    workdir, port = _launch_settings(ns)
    config = experiment_path(ns.config)
    exp_id = create_experiment(config, port, workdir, public=ns.public, debug=ns.debug)
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
    print(f"stop it with: clearer-nni experiment stop {exp_id}"
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
        from ..cli import interrupted_code

        print("interrupted: stopping the experiment", file=sys.stderr)
        code = interrupted_code()
    finally:
        try:
            trials = _print_trials(port)
            if any(t.get("status") == "FAILED" for t in trials):
                print(f"some trials FAILED: see trial.stderr in {home / 'nni-experiments' / exp_id}/environments/"
                      "*/trials/<trial id>/", file=sys.stderr)
        except (OSError, ValueError):
            pass
        stop_experiment(exp_id, workdir)
        print(f"experiment {exp_id} stopped; best genotype: clearer-nni export {exp_id}"
              + ("" if workdir is None else f" --workdir {shlex.quote(str(workdir))}"))
    return code


def _cmd_view(ns: argparse.Namespace) -> int:
    workdir = None if ns.keep_home else ns.workdir
    port = pick_port(ns.port)
    env = nni_env(workdir, ns.public)
    proc = run_nnictl(["view", ns.experiment_id, "--port", str(port)], env)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode == 0:
        print(f"web UI: {_url(port, ns.public)}; stop the viewer with: clearer-nni experiment "
              f"stop {ns.experiment_id}" + ("" if workdir is None else f" --workdir {shlex.quote(str(workdir))}"))
    return proc.returncode


def _cmd_stop(ns: argparse.Namespace) -> int:
    workdir = None if ns.keep_home else ns.workdir
    home = Path(workdir).resolve() if workdir else Path.home()
    if experiment_record(ns.experiment_id, home) is None:
        raise ValueError(f"no experiment {ns.experiment_id} in {experiments_file(home)} (wrong --workdir?)")
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
    from ..cli import run_cli

    commands = {"run": _cmd_run, "resume": _cmd_resume, "view": _cmd_view, "stop": _cmd_stop, "status": _cmd_status}

    def _run() -> int:
        ns = _parser().parse_args(argv)
        return commands[ns.command](ns)

    # no torch or Lightning to quiet: the experiment's trials import them, not this process
    return run_cli(_run, quiet=False)


if __name__ == "__main__":
    sys.exit(main())
