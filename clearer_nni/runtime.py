"""What every command shares: choosing the device, and output folders that are never half-written.

A command writes into a hidden staging folder beside ``--out`` and renames it to ``--out`` when it
has finished, so ``--out`` holds either nothing or a complete result.
"""

from __future__ import annotations

import errno
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["quiet_libraries", "resolve_device", "lightning_accelerator", "set_threads", "free_cpus", "staging_dir", "check_out", "prepare_out",
           "publish", "publish_into", "expect_file", "sniff", "DiskFullError", "disk_full_error", "atomic_write",
           "atomic_write_text", "atomic_savefig", "atomic_save", "software_versions"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA if torch sees a GPU, else CPU), ``cpu`` or ``cuda[:N]`` as a :class:`torch.device`."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("cuda", "gpu") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but torch sees no CUDA GPU")
        return torch.device("cuda" if name == "gpu" else name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")


def lightning_accelerator(name: str) -> str:
    """Lightning's accelerator name (``cpu`` or ``gpu``) for a ``--device`` value."""
    return "gpu" if resolve_device(name).type == "cuda" else "cpu"


def set_threads(threads: int = 0) -> int:
    """Set torch's intra-op CPU threads and return how many.

    ``0`` (auto) keeps ``$OMP_NUM_THREADS`` when it is set, else leaves one CPU of those this process
    may use for the rest of the machine (at least 1 thread). On a 2-core machine torch's own default
    (one thread per core) ran a search step 5x slower than 1 thread while another job shared the cores,
    and up to 200x slower beside a busy process (docs/RESULTS.md, data pipeline).

    Raises
    ------
    ValueError
        ``threads`` is negative.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an integer >= 0 (0: auto), got {threads!r}")
    if threads == 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) > 0:
            threads = int(env)
        else:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            threads = max(1, cpus - 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def free_cpus(sample: float = 1.0) -> int:
    """How many of the CPUs this process may use are idle now (at least 1): their count less the busy
    share measured over ``sample`` seconds, rounded. For a job that runs alone after others ended (the
    demo's retraining after its experiment), where :func:`set_threads`'s auto (one CPU left free) wastes a
    core of a 2-core machine, while a neighbour's load still keeps threads from spin-waiting on a busy core."""
    import psutil

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = psutil.cpu_percent(interval=sample) / 100.0 * (os.cpu_count() or cpus)
    return max(1, min(cpus, round(cpus - busy)))


def expect_file(path: str | Path, what: str, error: type[Exception] = ValueError) -> Path:
    """``path`` as a :class:`Path` if it is an existing regular file; else ``error`` saying what it is instead."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise error(f"{what} path is a folder, not a file: {path}")
    if path.exists():
        raise error(f"{what} path is not a regular file: {path}")
    raise error(f"{what} file not found: {path}")


#: Leading bytes of files that are often passed in the wrong place, and what they are.
_MAGIC = ((b"PK\x03\x04", "a torch file (a model checkpoint, super-network or resume state)"),
          (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"{", "a JSON file"),
          (b"[", "a JSON file"))


def sniff(path: str | Path) -> str | None:
    """What ``path`` holds, judged by its first bytes, when it is one of the usual mix-ups (see ``_MAGIC``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return None
    return next((what for magic, what in _MAGIC if head.startswith(magic)), None)


def staging_dir(out: str | Path) -> Path:
    """The hidden folder a command writes into before it is renamed to ``out``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def check_out(out: str | Path, overwrite: bool) -> Path:
    """Refuse an ``out`` that is a file, or a non-empty folder unless ``overwrite``, or in a folder that
    cannot be written; create nothing but its parent folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"output folder is not empty: {out} (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"output folder is not writable: {out.parent}")
    return out


def prepare_out(out: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty ``out`` unless ``overwrite``, lock it for this process (:mod:`clearer_nni.outlock`:
    a second process is refused at once, naming the first); return a fresh, empty staging folder."""
    from . import outlock

    out = check_out(out, overwrite)
    staging = staging_dir(out)
    try:
        outlock.acquire(out)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except BaseException as exc:
        outlock.release(out)
        raise (disk_full_error(exc, out.parent) or exc) from None
    return staging


def publish(staging: Path, out: str | Path) -> Path:
    """Replace ``out`` by the finished staging folder (and release the lock :func:`prepare_out` took)."""
    from . import outlock

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    outlock.release(out)
    return out


def publish_into(staging: Path, out: str | Path) -> Path:
    """Move the finished staging folder's files into ``out``, keeping the other files there (a plain rename
    when ``out`` is new or empty), and release the lock :func:`prepare_out` took."""
    from . import outlock

    out = Path(out)
    for f in staging.glob(".*"):
        f.unlink()  # a temporary file of a write that SIGKILL cut short
    if out.is_dir() and any(out.iterdir()):
        for f in sorted(staging.iterdir()):
            os.replace(f, out / f.name)  # each one atomic, and every file is complete in staging
        staging.rmdir()
    else:
        if out.is_dir():
            out.rmdir()
        staging.rename(out)
    outlock.release(out)
    return out


def software_versions() -> dict[str, str]:
    """Versions of the software that produced a result (for metadata)."""
    import nni
    import numpy
    import pytorch_lightning
    import torch

    from . import __version__

    return {"clearer_nni": __version__, "nni": nni.__version__, "torch": torch.__version__,
            "pytorch_lightning": pytorch_lightning.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


class DiskFullError(OSError):
    """A file could not be written because its file system is full; the message names the folder."""

    def __str__(self) -> str:
        return str(self.strerror)  # without OSError's "[Errno 28]" prefix: the message says it


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize  # root may use reserved blocks


def disk_full_error(exc: BaseException, folder: Path) -> DiskFullError | None:
    """A :class:`DiskFullError` for ``exc`` if it means ``folder``'s file system is full, else ``None``.

    ``torch.save`` reports a full disk as its serializer's internal assertion (``[enforce fail at
    inline_container.cc:...] unexpected pos ...``) without an errno: it is read as a full disk when the
    file system has (almost) no space left at the moment of failure, the half-written file still on it.
    """
    if isinstance(exc, DiskFullError):
        return None
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full and isinstance(exc, RuntimeError) and "inline_container" in str(exc):
        free = _free_bytes(folder)
        full = free is not None and free < 1 << 20
    if not full:
        return None
    return DiskFullError(errno.ENOSPC, f"no space left on device in {folder}: free some space there, or write "
                                       "the output elsewhere")


def atomic_write(path: str | Path, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``: no reader
    (and no crash) ever sees a half-written file. ``suffix`` lets writers that pick a format by
    extension (images) see the right one.

    Raises
    ------
    DiskFullError
        The file system of ``path`` is full (whatever the writer raised); the message names the folder.
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:
        raise (disk_full_error(exc, path.parent) or exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        full = disk_full_error(exc, path.parent)  # before the unlink: the half-written file fills the disk
        tmp.unlink(missing_ok=True)
        if full is not None:
            raise full from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_savefig(fig: Any, path: str | Path, **options: Any) -> Path:
    """Save the matplotlib figure ``fig`` as the PNG ``path`` atomically (``options``: ``savefig``'s)."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", **options), suffix=".png")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def quiet_libraries() -> None:
    """Quiet Lightning's and NNI's INFO chatter and known-harmless warnings; warnings print as one line
    (``CLEARER_DEBUG=1`` keeps Python's format). Every command calls it; so can a benchmark or notebook."""
    # Lightning and NNI talk a lot at INFO level (GPU availability, tips...); they set their
    # loggers' levels on import, so import them first.
    import logging
    import warnings

    import nni  # noqa: F401
    import pytorch_lightning  # noqa: F401

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "nni"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Validation dataloaders are missing": expected with one-shot strategies.
    logging.getLogger("nni.nas.evaluator.pytorch.lightning").setLevel(logging.ERROR)
    # NNI 3.0 warns once per torch class it does not know; harmless with recent torch.
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    if not os.environ.get("CLEARER_DEBUG"):
        warnings.formatwarning = _one_line_warning


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """A warning as users read it: ``warning: <message>``, without the source line that raised it."""
    return f"warning: {message}\n"
