"""The ``clearer-nni`` command and the error handling shared by every command-line entry point."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Callable, Sequence

__all__ = ["COMMANDS", "run_cli", "main"]

#: Sub-command → module with a ``main(argv)`` function.
COMMANDS = {
    "search": "clearer_nni.search",
    "experiment": "clearer_nni.experiment.launch",
    "export": "clearer_nni.experiment.export",
    "report": "clearer_nni.experiment.report",
    "retrain": "clearer_nni.retrain",
    "evaluate": "clearer_nni.evaluate",
    "restore": "clearer_nni.restore",
}


def _quiet_libraries() -> None:
    # Lightning and NNI talk a lot at INFO level (GPU availability, tips...); they set their
    # loggers' levels on import, so import them first.
    import nni  # noqa: F401
    import pytorch_lightning  # noqa: F401

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "nni"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Validation dataloaders are missing": expected with one-shot strategies.
    logging.getLogger("nni.nas.evaluator.pytorch.lightning").setLevel(logging.ERROR)
    import warnings

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


def run_cli(fn: Callable[[], int]) -> int:
    """Run a command: bad input gives one ``error: ...`` line and exit code 2, Ctrl-C exit code 130."""
    _quiet_libraries()
    debug = os.environ.get("CLEARER_DEBUG")
    try:
        return fn()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, ArithmeticError, OSError, RuntimeError) as exc:
        if debug:
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        names = ", ".join(COMMANDS)
        print(f"usage: clearer-nni {{{names}}} [options]   (clearer-nni COMMAND --help for its options)")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
