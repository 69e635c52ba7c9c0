"""Deployable exports of a retrained model: ONNX (any height and width) and TorchScript.

:func:`export_model` writes the file, then runs it (ONNX through onnxruntime, TorchScript through
``torch.jit.load``) beside the PyTorch network on several odd image sizes and refuses the export when
they differ by more than :data:`TOLERANCE`. The genotype travels inside the file (ONNX metadata
property / TorchScript extra file ``clearer-nni-genotype.json``), so :func:`load_model` can give
``restore`` a network that knows its image channels, whatever file it gets.

ONNX needs the optional extra ``pip install 'clearer-nni[onnx]'`` (onnx, onnxruntime and onnxscript,
which torch's ONNX exporter uses); TorchScript needs nothing beyond torch.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from .nas.genotype import Genotype
from .runtime import atomic_write

__all__ = ["FORMATS", "CHECK_SIZES", "TOLERANCE", "GENOTYPE_KEY", "ExportResult", "ExportedNetwork",
           "OnnxNetwork", "export_model", "load_model", "max_difference", "format_of"]

FORMATS = ("onnx", "torchscript")
#: Image sizes (height, width) an export is checked on: odd, unequal, and not multiples of 8.
CHECK_SIZES: tuple[tuple[int, int], ...] = ((37, 45), (64, 64), (17, 99), (101, 33), (9, 9))
#: Largest absolute difference allowed between the export and the PyTorch network (float32).
TOLERANCE = 1e-4
#: Where the genotype JSON is kept inside an exported file.
GENOTYPE_KEY = "clearer-nni-genotype.json"
_ONNX_HINT = "ONNX export needs the optional extra: pip install 'clearer-nni[onnx]' (onnx, onnxruntime, onnxscript)"


def _need_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"{_ONNX_HINT}; missing: {', '.join(missing)}")


class ExportedNetwork(nn.Module):
    """An exported file seen as a network: ``N x C x H x W`` in, the same shape out, plus its genotype.

    ``config`` is the genotype's space (``restore`` reads the image channels there).
    """

    def __init__(self, genotype: Genotype, path: Path) -> None:
        super().__init__()
        self.genotype, self.config, self.path = genotype, genotype.space, path


class OnnxNetwork(ExportedNetwork):
    """An ONNX export run by onnxruntime on the CPU (inputs on another device come back there)."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        _need_onnx()
        import onnxruntime as ort

        path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a readable ONNX model ({str(exc).strip().splitlines()[0]})") from None
        props = session.get_modelmeta().custom_metadata_map
        if GENOTYPE_KEY not in props:
            raise ValueError(f"{path}: an ONNX model without a clearer-nni genotype (not written by export-model)")
        super().__init__(Genotype.from_dict(json.loads(props[GENOTYPE_KEY]), source=f"{path}: genotype"), path)
        self.session, self.input_name = session, session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().to("cpu", torch.float32).numpy()})[0]
        return torch.from_numpy(out).to(x.device)


class _TorchScriptNetwork(ExportedNetwork):
    def __init__(self, path: Path, module: torch.jit.ScriptModule, genotype: Genotype) -> None:
        super().__init__(genotype, path)
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 2)[1:2] == ["code"] for n in z.namelist())
    except (zipfile.BadZipFile, OSError, IndexError):
        return False


def load_model(path: str | Path, threads: int = 0) -> nn.Module:
    """A network from a checkpoint (``model.ckpt``), an ONNX export (``.onnx``) or a TorchScript export.

    Every kind has ``config`` (the space, for the image channels) and maps ``N x C x H x W`` to the same shape.
    """
    from .training.checkpoint import load_checkpoint

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        return OnnxNetwork(path, threads)
    if path.is_file() and _is_torchscript(path):
        extra = {GENOTYPE_KEY: ""}
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        if not extra[GENOTYPE_KEY]:
            raise ValueError(f"{path}: a TorchScript file without a clearer-nni genotype (not written by export-model)")
        geno = Genotype.from_dict(json.loads(extra[GENOTYPE_KEY]), source=f"{path}: genotype")
        return _TorchScriptNetwork(path, module.eval(), geno)
    return load_checkpoint(path)[0]


def format_of(path: str | Path) -> str:
    """The export format a file name asks for: ``.onnx`` → onnx, ``.pt``/``.ts``/``.torchscript`` → torchscript."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".pt", ".ts", ".torchscript", ".jit"):
        return "torchscript"
    raise ValueError(f"cannot tell the format from {Path(path).name!r}: pass --format onnx or torchscript")


@torch.no_grad()
def max_difference(exported: nn.Module, network: nn.Module, channels: int,
                   sizes: Sequence[tuple[int, int]] = CHECK_SIZES, seed: int = 0) -> float:
    """Largest ``|exported(x) - network(x)|`` over random ``1 x channels x H x W`` images of ``sizes``."""
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, channels, h, w, generator=g)
        a, b = exported(x), network(x)
        if a.shape != b.shape:
            raise RuntimeError(f"the export maps {tuple(x.shape)} to {tuple(a.shape)}, the network to {tuple(b.shape)}")
        worst = max(worst, float((a.float() - b.float()).abs().max()))
    return worst


@dataclass
class ExportResult:
    """The file written and how far it is from the PyTorch network on :data:`CHECK_SIZES`."""

    path: Path
    format: str
    max_abs_diff: float
    sizes: tuple[tuple[int, int], ...]


def _write_onnx(network: nn.Module, example: torch.Tensor, genotype_json: str, tmp: Path, opset: int) -> None:
    import logging
    import warnings

    import onnx

    # "torchvision is not installed. Skipping torchvision::nms": irrelevant here
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    dim = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(network, (example,), None, dynamo=True, opset_version=opset,
                                    input_names=["degraded"], output_names=["restored"],
                                    dynamic_shapes={"x": {0: dim, 2: dim, 3: dim}}, verbose=False,
                                    external_data=False)
    model = program.model_proto
    onnx.helper.set_model_props(model, {GENOTYPE_KEY: genotype_json})
    onnx.save_model(model, str(tmp))


def export_model(network: nn.Module, genotype: Genotype, path: str | Path, fmt: str, *, opset: int = 18,
                 sizes: Sequence[tuple[int, int]] = CHECK_SIZES, tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``network`` (built from ``genotype``) to ``path`` as ``fmt`` and check it on ``sizes``.

    Parameters
    ----------
    network
        The PyTorch network (e.g. from :func:`~clearer_nni.training.checkpoint.load_checkpoint`); exported in eval
        mode, on the CPU, in float32.
    genotype
        Stored inside the file.
    path
        Destination; written atomically, and only if the check passes.
    fmt
        ``onnx`` (dynamic batch, height and width) or ``torchscript`` (traced; its shapes stay symbolic).
    opset
        ONNX opset.
    sizes, tolerance
        The check: the export must agree with ``network`` within ``tolerance`` on every size.

    Raises
    ------
    RuntimeError
        The ONNX extra is missing, or the export disagrees with the network.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {list(FORMATS)}")
    if fmt == "onnx":
        _need_onnx()
    path = Path(path)
    network = network.to("cpu").float().eval()
    channels = genotype.space.in_channels
    genotype_json = json.dumps(genotype.to_dict())
    example = torch.rand(2, channels, 48, 56, generator=torch.Generator().manual_seed(0))
    result: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        if fmt == "onnx":
            _write_onnx(network, example, genotype_json, tmp, opset)
            exported: nn.Module = OnnxNetwork(tmp)
        else:
            import warnings

            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # TracerWarnings: the shapes are checked below instead
                traced = torch.jit.trace(network, example)
            torch.jit.save(traced, str(tmp), _extra_files={GENOTYPE_KEY: genotype_json})
            exported = load_model(tmp)
        diff = max_difference(exported, network, channels, sizes)
        if not diff <= tolerance:
            raise RuntimeError(f"the {fmt} export differs from the PyTorch network by {diff:.3g} (> {tolerance:g}) "
                               f"on the sizes {list(sizes)}; nothing was written")
        result["diff"] = diff

    atomic_write(path, write, suffix=path.suffix or ".tmp")
    return ExportResult(path, fmt, result["diff"], tuple(sizes))

