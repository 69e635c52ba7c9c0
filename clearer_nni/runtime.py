"""What every command shares: choosing the device, and output folders that are never half-written.

A command writes into a hidden staging folder beside ``--out`` and renames it to ``--out`` when it
has finished, so ``--out`` holds either nothing or a complete result.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["resolve_device", "lightning_accelerator", "set_threads", "staging_dir", "check_out", "prepare_out",
           "publish", "atomic_write", "atomic_write_text", "atomic_save", "software_versions"]


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
    """Refuse a non-empty ``out`` unless ``overwrite``; return a fresh, empty staging folder."""
    out = check_out(out, overwrite)
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish(staging: Path, out: str | Path) -> Path:
    """Replace ``out`` by the finished staging folder."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
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


def atomic_write(path: str | Path, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``: no reader
    (and no crash) ever sees a half-written file. ``suffix`` lets writers that pick a format by
    extension (images) see the right one."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
