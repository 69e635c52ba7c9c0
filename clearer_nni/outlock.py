"""One output, one process: an advisory lock beside every ``--out`` a command writes.

Two commands given the same ``--out`` would share one staging folder (one wipes the other's files, a
published log mixes both runs). :func:`acquire` takes an exclusive ``flock`` on the hidden file
``.<out>.lock`` beside the output and writes the holder's PID into it; a second process is refused at
once with that PID. The kernel drops a ``flock`` when its process dies (even by SIGKILL), so a lock file
left by a dead process is simply taken over. Locks are re-entrant within a process (a command may
prepare its output twice) and are released by :func:`release` / :func:`release_all` (``run_cli`` calls
the latter when a command ends), which also remove the lock file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["OutputLockedError", "lock_path", "acquire", "release", "release_all", "held"]


class OutputLockedError(ValueError):
    """Another live process writes the same output."""


#: Locks this process holds: absolute output path → (file descriptor, lock file).
_HELD: dict[str, tuple[int, Path]] = {}


def lock_path(out: str | Path) -> Path:
    """The lock file of the output ``out``: ``.<name>.lock`` in the same folder."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


def _key(out: str | Path) -> str:
    return os.path.abspath(os.fspath(out))


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def acquire(out: str | Path) -> Path:
    """Lock the output ``out`` for this process (its folder must exist); return the lock file.

    Raises
    ------
    OutputLockedError
        Another live process holds the lock; the message names its PID.
    """
    key = _key(out)
    if key in _HELD:
        return _HELD[key][1]
    path = lock_path(key)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise OutputLockedError(f"output {out} is being written by another process (pid {pid}; lock file "
                                    f"{path}): wait for it to finish, or choose another output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and flock: lock the new one
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = (fd, path)
    return path


def held(out: str | Path) -> bool:
    """Whether this process holds the lock of ``out``."""
    return _key(out) in _HELD


def release(out: str | Path) -> None:
    """Release this process's lock of ``out`` (if held) and remove its lock file."""
    entry = _HELD.pop(_key(out), None)
    if entry is None:
        return
    fd, path = entry
    try:
        path.unlink(missing_ok=True)  # unlink while still locked: a waiting process then locks a new file
    finally:
        os.close(fd)


def release_all() -> None:
    """Release every lock this process holds."""
    for key in list(_HELD):
        release(key)
