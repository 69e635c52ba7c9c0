"""The retrained-model checkpoint: one file holding the genotype, the weights and how they were made.

Layout (version 1), a dict that ``torch.load(path, weights_only=True)`` reads (plain types and tensors
only, nothing is unpickled as code)::

    {"format": "clearer-nni-checkpoint", "version": 1,
     "genotype": {...Genotype.to_dict()...},
     "state_dict": {"stem.entry.0.weight": tensor, ...},   # of Genotype.build()
     "metadata": {"train_data": "bsds500/train", "val_data": "bsds500/val",
                  "search": {"train_data": ..., "val_data": ...}, "steps": ..., "best_val_psnr": ...,
                  "best_step": ..., "seconds": ..., "software": {...}, ...}}

Loading validates the file and rebuilds the network with :meth:`Genotype.build`; every problem raises
:class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn

from ..nas.genotype import Genotype, GenotypeError, check_header
from ..runtime import atomic_save, expect_file, sniff

__all__ = ["FORMAT", "VERSION", "SUPERNET_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "read_torch_file", "data_seen", "save_supernet", "load_supernet", "init_from_supernet"]

FORMAT = "clearer-nni-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint (or super-network) file is missing, foreign, corrupt or does not fit its genotype."""


def read_torch_file(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on CPU, with one clear :class:`CheckpointError` on failure.

    Parameters
    ----------
    path
        The file.
    what
        What the file should be, for messages (``checkpoint``, ``super-network``).
    """
    path = expect_file(path, what, CheckpointError)
    kind = sniff(path)
    if kind is not None and not kind.startswith("a torch file"):
        hint = (": a genotype is trained into a model with `clearer-nni retrain --genotype FILE`"
                if kind == "a JSON file" else "")
        raise CheckpointError(f"{path}: not a {what} file, it is {kind}{hint}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on garbage (pickle, zip, EOF...)
        if "Weights only load failed" in str(exc):
            # torch's own advice (retry with weights_only=False) is exactly the unsafe thing: not repeated
            raise CheckpointError(f"{path}: not a readable {what} file: it holds Python objects beyond tensors and "
                                  "plain data, refused unexecuted (unpickling them could run code)") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable {what} file (torch.load failed: {first})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: not a clearer-nni {what} (holds a {type(doc).__name__}, expected a dict)")
    return doc


def _plain_metadata(metadata: Mapping[str, Any], path: Path) -> dict[str, Any]:
    # A JSON round trip guarantees plain types, so weights_only loading never meets an unknown class.
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: metadata must be JSON-like (str, numbers, lists, dicts): {exc}") from None


def save_checkpoint(path: str | Path, network: nn.Module, genotype: Genotype,
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``network``'s weights with ``genotype`` and ``metadata`` as one checkpoint file, atomically.

    Parameters
    ----------
    path
        Destination file (its folder must exist).
    network
        The network built by ``genotype.build()`` (any device; the weights are saved on CPU).
    genotype
        The architecture; stored as :meth:`Genotype.to_dict`.
    metadata
        JSON-like facts about the training (data names, steps, PSNR, software versions...).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "genotype": genotype.to_dict(),
        "state_dict": {k: v.detach().to("cpu").clone().contiguous() for k, v in network.state_dict().items()},
        "metadata": _plain_metadata(metadata or {}, path),
    }
    atomic_save(doc, path)
    return path


def load_checkpoint(path: str | Path, genotype: Genotype | None = None) -> tuple[nn.Module, Genotype, dict[str, Any]]:
    """Read a checkpoint: the network (built from its genotype, weights loaded, CPU, eval mode), genotype, metadata.

    Parameters
    ----------
    path
        A file written by :func:`save_checkpoint`.
    genotype
        If given, the checkpoint must hold exactly this architecture (same space and choices).

    Raises
    ------
    CheckpointError
        Missing or unreadable file, another kind of file (e.g. a ``supernet.pt``), unsupported version,
        malformed genotype, weights that do not fit the genotype's network, or another architecture
        than ``genotype``.
    """
    path = Path(path)
    doc = read_torch_file(path)
    hint = (" (this is a search's super-network: retrain it with `python -m clearer_nni.retrain "
            "--genotype genotype.json --init-from-supernet` to get a model)") \
        if doc.get("format") == "clearer-nni-supernet" else ""
    check_header(doc, FORMAT, VERSION, str(path), "checkpoint", CheckpointError, hint=hint)
    for key in ("genotype", "state_dict"):
        if key not in doc:
            raise CheckpointError(f"{path}: checkpoint is missing its {key!r} entry")
    try:
        geno = Genotype.from_dict(doc["genotype"], source=f"{path}: genotype")
    except GenotypeError as exc:
        raise CheckpointError(str(exc)) from None
    if genotype is not None and (geno.space != genotype.space or geno.choices != genotype.choices):
        raise CheckpointError(f"{path}: checkpoint holds another architecture than the one expected "
                              f"(checkpoint:\n{geno.summary()}\nexpected:\n{genotype.summary()})")
    state = doc["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'state_dict' must map parameter names to tensors")
    network = geno.build()
    mismatch = _state_mismatch(network, state)
    if mismatch:
        raise CheckpointError(f"{path}: the weights do not fit the checkpoint's genotype network ({mismatch}); "
                              "the file was edited or written for another architecture")
    network.load_state_dict(state, strict=True)
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: 'metadata' must be a dict, got {type(metadata).__name__}")
    return network.eval(), geno, metadata


def _state_mismatch(network: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """A short description of how ``state`` differs from ``network.state_dict()`` (empty if it fits)."""
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    parts = []
    for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            parts.append(f"{len(keys)} {name}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}")
    return "; ".join(parts)


def _data_names(doc: Any) -> Iterator[str]:
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            if isinstance(key, str) and key.endswith("_data") and isinstance(value, str):
                yield value
            else:
                yield from _data_names(value)
    elif isinstance(doc, (list, tuple)):
        for value in doc:
            yield from _data_names(value)


def data_seen(genotype: Genotype, metadata: Mapping[str, Any] | None = None) -> list[str]:
    """Every data-set name recorded as used by the search (genotype) or the training (checkpoint metadata).

    Collects the string values of all ``*_data`` keys (``train_data``, ``val_data``...) at any depth, e.g.
    ``["bsds500/train", "bsds500/val"]``; used to refuse scores on test sets a model has seen.
    """
    names = list(_data_names(genotype.metadata)) + list(_data_names(metadata or {}))
    return sorted(set(names))


# -- the super-network file (supernet.pt) ---------------------------------------------------------

SUPERNET_FORMAT = "clearer-nni-supernet"


def save_supernet(path: str | Path, space: Any, mixing: str, state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write a search's super-network weights (``supernet.pt``) with its space and mixing, atomically."""
    doc = {"format": SUPERNET_FORMAT, "version": 1, "space": space.to_dict(), "mixing": mixing,
           "state_dict": {k: v.detach().to("cpu") for k, v in state_dict.items()}}
    return atomic_save(doc, Path(path))


def load_supernet(path: str | Path) -> Any:
    """A search's ``supernet.pt`` as an unfrozen :class:`~clearer_nni.archs.ClearerSpace` holding its weights.

    Raises
    ------
    CheckpointError
        Missing, foreign or corrupt file, or weights that do not fit the space it names.
    """
    from ..archs.space import MIXING_MODES, ClearerSpace, SpaceConfig, SpaceFileError

    path = Path(path)
    doc = read_torch_file(path, "super-network")
    if doc.get("format") != SUPERNET_FORMAT:
        raise CheckpointError(f"{path}: not a clearer-nni super-network (format is {doc.get('format')!r}, "
                              f"expected {SUPERNET_FORMAT!r}: the supernet.pt a search writes)")
    if doc.get("version") != 1:
        raise CheckpointError(f"{path}: unsupported super-network version {doc.get('version')!r}")
    try:
        space = SpaceConfig.from_dict(doc.get("space"), source=f"{path}: space")
    except SpaceFileError as exc:
        raise CheckpointError(str(exc)) from None
    state = doc.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: super-network file has no 'state_dict'")
    try:  # files written before the mixing was recorded: the mode whose modules the weights fit
        return ClearerSpace.from_supernet_state(space, state, doc["mixing"] if doc.get("mixing") in MIXING_MODES
                                                else None)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def init_from_supernet(network: nn.Module, genotype: Genotype, path: str | Path) -> int:
    """Copy the chosen candidates' weights (and the fixed parts) of a search's ``supernet.pt`` into ``network``.

    Returns
    -------
    int
        The number of tensors copied (all of ``network.state_dict()``).

    Raises
    ------
    CheckpointError
        Missing, foreign or corrupt file, a super-network of another space, or weights that do not fit.
    """
    supernet = load_supernet(path)
    if supernet.config != genotype.space:
        ours, theirs = genotype.space.to_dict(), supernet.config.to_dict()
        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        raise CheckpointError(f"{path}: the super-network was made for another space than the genotype; "
                              f"differences (genotype, super-network): {diff}")
    try:
        return supernet.transfer_to(network, genotype.choices)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
