"""``clearer-nni``: the one program, and the error handling every command shares.

::

    clearer-nni search | retrain | evaluate | restore | experiment | export | rank | report | export-model | bench | demo  [options]

``python -m clearer_nni.search`` and ``python -m clearer_nni.retrain`` are the same commands.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Callable, Sequence

from .runtime import quiet_libraries

__all__ = ["COMMANDS", "STOP_SIGNALS", "interrupted_code", "run_cli", "main"]

#: Sub-command → (module with a ``main(argv)`` function, one line of help).
COMMANDS = {
    "search": ("clearer_nni.search", "one CLEARER search: genotype.json, alpha.png, search_log.csv"),
    "retrain": ("clearer_nni.retrain", "train a genotype from scratch: model.ckpt"),
    "evaluate": ("clearer_nni.evaluate", "PSNR / SSIM of a model on a test set"),
    "restore": ("clearer_nni.restore", "restore your own images with a model (tiled)"),
    "experiment": ("clearer_nni.experiment.launch", "NNI experiments of searches: run, resume, view, stop, status"),
    "export": ("clearer_nni.experiment.export", "the best trial's genotype of an experiment"),
    "rank": ("clearer_nni.rank", "every architecture of a search's space scored with its super-network: Pareto front"),
    "report": ("clearer_nni.experiment.report", "an experiment's trials: table and Pareto plot"),
    "export-model": ("clearer_nni.export_model", "a model.ckpt as ONNX or TorchScript, checked against PyTorch"),
    "bench": ("clearer_nni.bench.command", "ground-truth tables: every architecture of a space trained; query, stats, build"),
    "demo": ("clearer_nni.quickstart", "the whole flow on the embedded images (make demo)"),
}

#: What a command turns into one ``error: ...`` line (exit code 2): bad input and failed resources.
ERRORS = (ValueError, ArithmeticError, OSError, RuntimeError, subprocess.SubprocessError)


#: Stopped from outside like Ctrl-C: what a cluster scheduler, ``docker stop``, ``timeout``, systemd and NNI
#: send (SIGTERM), and a closed terminal (SIGHUP).
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class _StopSignal:
    """The handler of :data:`STOP_SIGNALS`: the first raises ``KeyboardInterrupt`` (so every command keeps
    what it keeps after Ctrl-C), a second one during that shutdown ends the process at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            os._exit(128 + signum)
        self.signum = signum
        raise KeyboardInterrupt


_STOP = _StopSignal()


def interrupted_code() -> int:
    """The exit code of a command stopped by a signal: 128 + the signal (143 for SIGTERM, 129 for SIGHUP),
    130 for Ctrl-C."""
    return 128 + (_STOP.signum or signal.SIGINT)


def _handle_stop_signals() -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    _STOP.signum = None
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        # an ignored SIGHUP (nohup) stays ignored
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, _STOP)
    return previous


def run_cli(fn: Callable[[], int], quiet: bool = True) -> int:
    """Run a command: bad input gives one ``error: ...`` line and exit code 2; Ctrl-C, SIGTERM and SIGHUP
    stop it as Ctrl-C does (what can be kept is kept), with exit code 128 + the signal (130, 143, 129); an
    argparse exit (``--help``, a usage error) its own code. ``CLEARER_DEBUG=1`` shows tracebacks."""
    if quiet:
        quiet_libraries()
    previous = _handle_stop_signals()
    try:
        return fn()
    except KeyboardInterrupt:
        code = interrupted_code()
        print("interrupted" if code == 130 else f"stopped by {signal.Signals(code - 128).name}", file=sys.stderr)
        return code
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except ERRORS as exc:
        if os.environ.get("CLEARER_DEBUG"):
            raise
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 2
    finally:
        from .outlock import release_all

        release_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _describe(exc: BaseException) -> str:
    """The one-line message of ``exc``; a full disk is said so, with the file when the error names one."""
    import errno

    from .runtime import DiskFullError

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and not isinstance(exc, DiskFullError):
        return "no space left on device" + (f" writing {exc.filename}" if exc.filename else "")
    return str(exc)


def _usage() -> str:
    lines = ["usage: clearer-nni COMMAND [options]   (clearer-nni COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<11} {text}" for name, (_module, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"{_usage()}\n\nerror: unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
