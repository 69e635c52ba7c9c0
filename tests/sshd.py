"""An SSH server on 127.0.0.1 for the tests of NNI's remote training service (not a test itself).

Debian's ``openssh-server`` (installed by ``.ci/run``) run by the test: its own config, host key and
authorized key in a temporary folder, on a free loopback port, key authentication only. It stands in for
a GPU machine: the "remote" user is this one, with its own ``HOME`` (``SetEnv``), so that what NNI puts
under the remote ``~/nni-experiments`` is apart from the manager's.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

__all__ = ["SSHD", "SshServer", "loopback_sshd", "sshd_missing"]

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def sshd_missing() -> str | None:
    """Why no test SSH server can start here (None when one can)."""
    if not Path(SSHD).is_file():
        return f"no SSH server: {SSHD} is not installed (.ci/run installs Debian's openssh-server)"
    if not shutil.which("ssh-keygen"):
        return "no ssh-keygen (Debian's openssh-client)"
    return None


@dataclass
class SshServer:
    """A running test SSH server: where to connect, with which key, and the remote user's ``HOME``."""

    host: str
    port: int
    user: str
    key: Path
    home: Path
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback_sshd(folder: Path, env: dict[str, str] | None = None) -> Iterator[SshServer]:
    """Start ``sshd`` on 127.0.0.1 (a free port) with everything it needs in ``folder``; stop it after.

    ``env``: variables every SSH session gets (``SetEnv``), besides ``HOME=folder/home``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "home"
    home.mkdir(exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "clearer-nni-test", "-f",
                        str(folder / name)], check=True, capture_output=True)
    authorized = folder / "authorized_keys"
    shutil.copy(folder / "client_key.pub", authorized)
    authorized.chmod(0o600)
    port = _free_port()
    user = getpass.getuser()
    variables = " ".join(f"{k}={v}" for k, v in {"HOME": str(home), **(env or {})}.items())
    config = folder / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
PidFile {folder / 'sshd.pid'}
AuthorizedKeysFile {authorized}
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {user}
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
SetEnv {variables}
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    log = open(folder / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(folder / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield SshServer("127.0.0.1", port, user, folder / "client_key", home, proc)
    finally:
        # the server and every session it started (they share its process group)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()
