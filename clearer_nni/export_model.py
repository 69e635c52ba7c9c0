"""``clearer-nni export-model``: a retrained model as an ONNX or TorchScript file for deployment.

::

    clearer-nni export-model runs/retrain/model.ckpt --format onnx -o model.onnx
    clearer-nni restore noisy.png -o clean.png --model model.onnx      # through onnxruntime

The file takes images of any height and width; it is checked against the PyTorch network on several
odd sizes before it is written (:mod:`clearer_nni.deploy`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from .deploy import FORMATS

    p = argparse.ArgumentParser(prog="clearer-nni export-model", description=__doc__.split("\n")[0])
    p.add_argument("model", help="model.ckpt written by clearer_nni.retrain")
    p.add_argument("--format", choices=FORMATS, help="onnx or torchscript [from the suffix of -o: .onnx, .pt/.ts]")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    try:
        ns = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)

    def _run() -> int:
        from .training.checkpoint import load_checkpoint
        from .deploy import TOLERANCE, export_model, format_of

        fmt = ns.format or format_of(ns.output)
        out = Path(ns.output)
        if out.exists() and not ns.overwrite:
            raise ValueError(f"{out} exists (pass --overwrite to replace it)")
        if out.is_dir():
            raise ValueError(f"{out} is a folder; -o names the file to write")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"output folder not found: {out.parent}")
        network, genotype, _ = load_checkpoint(ns.model)
        result = export_model(network, genotype, out, fmt, opset=ns.opset)
        sizes = ", ".join(f"{h}x{w}" for h, w in result.sizes)
        print(f"wrote {result.path} ({fmt}, any height and width); max |export - PyTorch| = "
              f"{result.max_abs_diff:.2g} on {sizes} (tolerance {TOLERANCE:g})")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
