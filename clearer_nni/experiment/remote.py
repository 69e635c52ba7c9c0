"""NNI 3.0's remote training service (trials on other machines over SSH): what our launcher adds to it.

NNI's remote platform works as it is (``tests/test_remote.py`` runs it against an SSH server on
loopback), with one defect: ``nnictl create`` reports success before the training service has
connected, and when it then fails (no SSH server, a refused key, ``pip install nni`` failing over there)
NNI's manager logs ``Training srevice initialize failed: ...`` and exits a few seconds later, while the
user was told the experiment had started. :func:`wait_for_training_service` watches the manager's log
until the service is up (its first trial created, or its code uploaded) or has failed, and turns a
failure into an error with NNI's own message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["STARTED", "FAILED", "log_size", "wait_for_training_service"]

#: Lines of ``nnimanager.log`` saying the remote training service is up.
STARTED = ("Upload success", "Created trial")
#: Lines saying it failed (NNI's own spelling, then a corrected one should a fork fix it).
FAILED = ("Training srevice initialize failed", "Training service initialize failed")


def _log_verdict(log: Path, since: int) -> tuple[bool | None, str]:
    """(True: started / False: failed / None: not yet, the deciding line), from byte ``since`` of ``log`` on."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None, ""
    for line in text.splitlines():
        failed = next((m for m in FAILED if m in line), None)
        if failed:
            return False, line.split(failed, 1)[1].lstrip(": ").strip()
        if any(marker in line for marker in STARTED):
            return True, line.strip()
    return None, ""


def log_size(expdir: str | Path) -> int:
    """The size of the manager's log now: a resumed experiment's manager appends to it."""
    try:
        return (Path(expdir) / "log" / "nnimanager.log").stat().st_size
    except OSError:
        return 0


def wait_for_training_service(expdir: str | Path, alive: Callable[[], Any], since: int = 0,
                              timeout: float = 600.0, poll: float = 0.5) -> None:
    """Wait until the remote training service of the experiment in ``expdir`` is up.

    Parameters
    ----------
    expdir
        The experiment's folder (``<HOME>/nni-experiments/<id>``), holding ``log/nnimanager.log``.
    alive
        Whether NNI's manager still runs (a manager that died without a log line is a failure too).
    since
        Where in the log this run of the manager starts (:func:`log_size` before ``nnictl resume``).
    timeout
        Seconds to wait (connecting and ``pip install nni`` on a slow machine take a while); after it,
        return without a verdict.

    Raises
    ------
    RuntimeError
        The training service failed to start (NNI's error line and where the log is).
    """
    log = Path(expdir) / "log" / "nnimanager.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started, line = _log_verdict(log, since)
        if started:
            return
        if started is False or not alive():
            started, line = _log_verdict(log, since)  # the manager may have logged it as it went
            if started:
                return
            raise RuntimeError(f"the remote training service did not start: {line or 'NNI manager exited'} (NNI's "
                               f"manager has stopped; its log: {log}; docs/SCALE.md lists what the machines need)")
        time.sleep(poll)
