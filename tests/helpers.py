"""Helpers for the tests (not tests themselves): waiting on NNI's REST API, reading listening sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, Iterable

from clearer_nni.experiment.rest import TERMINAL_TRIAL_STATUSES, rest_get

__all__ = ["experiment_file", "wait_for_trials", "listening_addresses"]


def experiment_file(folder: Path, trial_args: str, search_space: dict[str, Any], trials: int,
                    code_dir: str | Path = ".", name: str = "test.yml", extra: str = "", concurrency: int = 1) -> Path:
    """A local NNI experiment file in ``folder``: ``trials`` trials, ``concurrency`` at a time, GridSearch over
    ``search_space`` (written beside it), each ``clearer_nni.experiment.trial TRIAL_ARGS`` with one torch thread;
    ``extra``: more top-level lines (``maxExperimentDuration: 20s``)."""
    import json

    (folder / f"{name}.hpo.json").write_text(json.dumps(search_space))
    path = folder / name
    path.write_text(f"""\
experimentName: clearer-{Path(name).stem}
searchSpaceFile: {name}.hpo.json
trialCommand: OMP_NUM_THREADS=1 ${{CLEARER_PYTHON:-python3}} -m clearer_nni.experiment.trial {trial_args}
trialCodeDirectory: {code_dir}
trialConcurrency: {concurrency}
maxTrialNumber: {trials}
{extra}
tuner:
  name: GridSearch
trainingService:
  platform: local
""")
    return path


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


