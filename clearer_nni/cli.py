"""``clearer-nni``: the one program, and the error handling every command shares.

::

    clearer-nni search | retrain | evaluate | restore | experiment | export | rank | report | export-model | bench | demo  [options]

``python -m clearer_nni.search`` and ``python -m clearer_nni.retrain`` are the same commands.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Callable, Sequence

from .runtime import quiet_libraries

__all__ = ["COMMANDS", "run_cli", "main"]

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


def run_cli(fn: Callable[[], int], quiet: bool = True) -> int:
    """Run a command: bad input gives one ``error: ...`` line and exit code 2, Ctrl-C exit code 130,
    an argparse exit (``--help``, a usage error) its own code. ``CLEARER_DEBUG=1`` shows tracebacks."""
    if quiet:
        quiet_libraries()
    try:
        return fn()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
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
