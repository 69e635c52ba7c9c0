"""NNI's REST API on loopback: free ports, GET requests, waiting for an experiment, reading trial results."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any

__all__ = ["API", "DEFAULT_PORT", "TERMINAL_TRIAL_STATUSES", "DONE_STATUSES", "free_port", "port_in_use",
           "pick_port", "rest_get", "wait_for_experiment", "trial_metric"]

API = "/api/v1/nni"
DEFAULT_PORT = 8080
TERMINAL_TRIAL_STATUSES = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}
DONE_STATUSES = {"DONE", "STOPPED", "ERROR"}


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


def pick_port(port: int | None) -> int:
    """``port`` if given, else 8080 when it (and 8081) are free, else a free port."""
    if port is not None:
        return port
    return DEFAULT_PORT if not port_in_use(DEFAULT_PORT) and not port_in_use(DEFAULT_PORT + 1) else free_port()


def rest_get(port: int, path: str, timeout: float = 10.0, host: str = "127.0.0.1") -> Any:
    """GET ``http://host:port/api/v1/nni<path>`` and decode the JSON answer."""
    url = f"http://{host}:{port}{API}{path if path.startswith('/') else '/' + path}"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL
        body = resp.read().decode("utf-8")
    return json.loads(body) if body.strip() else None


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
