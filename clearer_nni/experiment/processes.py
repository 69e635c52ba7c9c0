"""The processes of an NNI experiment and of its trials, and NNI's list of experiments (``~/nni-experiments/.experiment``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["experiments_file", "experiment_record", "experiment_processes", "trial_processes"]


def experiments_file(home: str | Path) -> Path:
    """NNI's list of experiments under ``home`` (NNI's HOME)."""
    return Path(home) / "nni-experiments" / ".experiment"


def experiment_record(exp_id: str, home: str | Path) -> dict[str, Any] | None:
    """NNI's record of an experiment (status, port, pid...), or None."""
    path = experiments_file(home)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(exp_id)
    except (OSError, ValueError):
        return None


def _psutil():
    import psutil

    return psutil


def experiment_processes(exp_id: str, home: str | Path | None = None) -> list[Any]:
    """The live processes of an experiment: its NNI manager (from the experiment list, or found by the
    ``--experiment-id`` argument of NNI's ``main.js``) and all their descendants, as psutil objects."""
    psutil = _psutil()
    roots = []
    record = experiment_record(exp_id, home) if home is not None else None
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
