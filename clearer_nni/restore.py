"""``clearer-nni restore``: apply a retrained model to image files of any size, tile by tile
(:mod:`clearer_nni.models.tiling`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from .data.images import MAX_PIXELS
from .config import THREADS_HELP
from .models.tiling import check_tiling, check_tiling_for, network_space, restore_array
from .runtime import prepare_out, publish_into, resolve_device, set_threads, staging_dir

__all__ = ["CONVERSIONS", "RestoreConfig", "RestoreResult", "restore_file", "run_restore", "main"]


#: Channel conversions :func:`restore_file` may make, and what they mean.
CONVERSIONS = {
    "to_gray": "colour image(s) converted to gray (BT.601 luma) for the 1-channel model",
    "to_rgb": "gray image(s) repeated to 3 channels for the 3-channel model, written as colour",
}


def _model_input(network: nn.Module, src: Path) -> tuple[np.ndarray, int, str | None]:
    """``src`` as the network takes it, its bit depth, and the channel conversion made (or ``None``)."""
    from .data import load_image, to_channels

    channels = int(network_space(network).in_channels)
    image, depth = load_image(src)
    if channels == 1 and image.shape[-1] == 3 and np.array_equal(image[..., 0], image[..., 1]) \
            and np.array_equal(image[..., 0], image[..., 2]):
        image = image[..., :1]  # a gray picture stored as RGB is gray: no conversion to speak of
    conversion = None
    if image.shape[-1] != channels:
        conversion = "to_gray" if channels == 1 else "to_rgb"
    return to_channels(image, channels, depth), depth, conversion


def restore_file(network: nn.Module, src: str | Path, dst: str | Path, tile: int | None = 256, overlap: int = 32,
                 device: str | torch.device = "cpu", self_ensemble: str | None = None) -> str | None:
    """Restore the image file ``src`` into ``dst`` (format from ``dst``'s suffix, at ``src``'s bit depth).

    The image is read as viewers show it (EXIF orientation applied). A colour image given to a 1-channel
    model is converted to luma (ITU-R BT.601) and restored gray; a gray image given to a 3-channel model
    is repeated to 3 channels and written as colour; a gray image stored as RGB counts as gray.
    ``self_ensemble`` (``"8"``, ``"authors"``): average the tiled restorations of flipped and rotated
    copies (:mod:`clearer_nni.ensemble`).

    Returns
    -------
    str or None
        The channel conversion made (a key of :data:`CONVERSIONS`), else ``None``.

    Raises
    ------
    DataError
        ``src`` is unreadable or too large, or ``dst``'s format cannot hold the result (checked before
        the image is restored).
    """
    from .data import write_image
    from .data.images import check_writable
    from .ensemble import self_ensemble as self_ensemble_of

    x, depth, conversion = _model_input(network, Path(src))
    check_writable(dst, network_space(network).out_channels == 3, depth)
    restore = partial(restore_array, network, tile=tile, overlap=overlap, device=device)
    write_image(dst, self_ensemble_of(restore, x, self_ensemble) if self_ensemble else restore(x), bit_depth=depth)
    return conversion


# -- command line ----------------------------------------------------------------------------------

@dataclass
class RestoreConfig:
    """Settings of ``clearer-nni restore``."""

    input: str = ""
    output: str = ""
    model: str = ""
    tile: int | None = 256  # None or 0: whole images
    overlap: int = 32
    self_ensemble: str | None = None  # None (off), "8" or "authors" (clearer_nni.ensemble)
    device: str = "auto"
    threads: int = 0
    overwrite: bool = False
    resume: bool = False
    max_pixels: int | None = None  # None: the data layer's default (MAX_PIXELS or $CLEARER_MAX_PIXELS)
    progress: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        from .ensemble import check_ensemble

        for name in ("input", "output", "model"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        check_tiling(self.tile or None, self.overlap)
        self.self_ensemble = check_ensemble(self.self_ensemble)
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: auto), got {self.threads}")
        if self.max_pixels is not None and self.max_pixels < 0:
            raise ValueError(f"max_pixels must be >= 0 (0: no limit), got {self.max_pixels}")


@dataclass
class RestoreResult:
    """The files written, those skipped (``--resume``: already complete) and the channel conversions made
    (input file → :data:`CONVERSIONS` key)."""

    written: list[Path] = field(default_factory=list)
    conversions: dict[Path, str] = field(default_factory=dict)
    skipped: list[Path] = field(default_factory=list)
    renamed: list[Path] = field(default_factory=list)


def _means_folder(output: str) -> bool:
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _folder_jobs(files: Sequence[Path], dst: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(input, output) pairs keeping each input's name; a format never written (GIF) becomes ``.png``."""
    from .data.images import WRITE_EXTENSIONS

    jobs, renamed, seen = [], [], {}
    for f in files:
        name = f.name if f.suffix.lower() in WRITE_EXTENSIONS else f.stem + ".png"
        if name != f.name:
            renamed.append(f)
        if name in seen:
            raise ValueError(f"{f} and {seen[name]} would both be written as {dst / name}; rename one of them")
        seen[name] = f
        jobs.append((f, dst / name))
    return jobs, renamed


def _plan(cfg: RestoreConfig) -> tuple[list[tuple[Path, Path]], list[Path], bool]:
    """(input file, output file) pairs, inputs renamed on the way (GIF → PNG), and whether the output is a folder.

    Output paths mean what a user means: a folder input gives a folder output (a name with an image
    suffix is refused as a likely mistake, unless it ends with ``/``); a file input written to an existing
    folder, or to a name ending with ``/``, keeps its name there; otherwise the output file's suffix
    picks the format and must be one that is written. Nothing is overwritten without ``overwrite``.
    """
    from .data import list_images
    from .data.images import IMAGE_EXTENSIONS, check_writable

    src, dst = Path(cfg.input), Path(cfg.output)
    if not src.exists():
        raise FileNotFoundError(f"input not found: {src}")
    if src.is_dir():
        files = list_images(src)
        if dst.exists() and not dst.is_dir():
            raise ValueError(f"input {src} is a folder, so the output must be a folder; {dst} is a file")
        if not dst.exists() and dst.suffix.lower() in IMAGE_EXTENSIONS and not _means_folder(cfg.output):
            raise ValueError(f"input {src} is a folder, so the output must be a folder; {dst} is named like an "
                             f"image file (end it with '/' if you mean a folder of that name)")
        if dst.exists() and dst.resolve() == src.resolve():
            raise ValueError(f"output folder {dst} is the input folder: the originals would be overwritten")
        jobs, renamed = _folder_jobs(files, dst)
        return jobs, renamed, True
    if _means_folder(cfg.output):
        if dst.exists() and not dst.is_dir():
            raise ValueError(f"output {cfg.output} ends with '/' but {dst} is a file")
        jobs, renamed = _folder_jobs([src], dst)
        target = jobs[0][1]
    else:
        target, renamed = dst, []
        check_writable(target, False)  # the suffix now; what it must hold once the image is read
    if target.exists() and target.resolve() == src.resolve():
        raise ValueError(f"output {target} is the input file: it would be overwritten")
    if target.exists() and not cfg.overwrite:
        raise ValueError(f"output file exists: {target} (pass --overwrite to replace it)")
    return [(src, target)], renamed, False


def _folder_staging(cfg: RestoreConfig, out: Path) -> Path:
    """The staging folder of a folder restore: fresh, or (``resume``) the interrupted run's, kept."""
    from . import outlock

    if not cfg.resume:
        return prepare_out(out, cfg.overwrite)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path exists and is not a folder: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    outlock.acquire(out)
    staging = staging_dir(out)
    staging.mkdir(exist_ok=True)
    return staging


def run_restore(cfg: RestoreConfig) -> RestoreResult:
    """Restore ``cfg.input`` (a file or a folder of images) into ``cfg.output``.

    A folder is restored all-or-nothing: images are written into the hidden staging folder
    ``.<output>.partial`` and moved into ``output`` only when every one is done. A run that fails or is
    interrupted keeps the finished images there, and ``resume`` finishes the rest (it also skips
    outputs already in ``output``).
    """
    from tqdm import tqdm

    from . import outlock
    from .data import DataError, frame_count, probe_image, set_max_pixels
    from .deploy import load_model

    cfg.validate()
    set_threads(cfg.threads)
    if cfg.max_pixels is not None:
        set_max_pixels(cfg.max_pixels)
    device = resolve_device(cfg.device)
    network = load_model(cfg.model, cfg.threads)  # a checkpoint, or an ONNX / TorchScript export
    tile = cfg.tile or None  # tile 0: whole images
    check_tiling_for(network, tile, cfg.overlap)
    jobs, renamed, folder = _plan(cfg)
    for src, _ in jobs:
        probe_image(src)  # every header before the first image: an unreadable or huge file fails now
        frames = frame_count(src)
        if frames > 1:  # never a silent first frame
            raise DataError(f"{src}: {frames} frames (an animation or a multi-page file); restore restores single "
                            "images and would keep only the first: save the frames as separate images (for example "
                            "with PIL.ImageSequence) and restore their folder")
    result = RestoreResult(renamed=renamed)
    out = Path(cfg.output)
    if not folder:
        target = jobs[0][1]
        target.parent.mkdir(parents=True, exist_ok=True)
        outlock.acquire(target)
        conversion = restore_file(network, jobs[0][0], target, tile, cfg.overlap, device, cfg.self_ensemble)
        outlock.release(target)
        result.written.append(target)
        if conversion:
            result.conversions[jobs[0][0]] = conversion
        return result
    staging = _folder_staging(cfg, out)
    todo = []
    for src, dst in jobs:
        if cfg.resume and ((staging / dst.name).is_file() or dst.is_file()):
            result.skipped.append(dst)  # written atomically, so a file that exists is complete
        elif dst.exists() and not cfg.overwrite and not cfg.resume:
            raise ValueError(f"output file exists: {dst} (pass --overwrite to replace it)")
        else:
            todo.append((src, dst))
    try:
        for src, dst in tqdm(todo, desc="restore", unit="image", disable=not cfg.progress or len(todo) < 2):
            conversion = restore_file(network, src, staging / dst.name, tile, cfg.overlap, device, cfg.self_ensemble)
            result.written.append(dst)
            if conversion:
                result.conversions[src] = conversion
        publish_into(staging, out)
    except BaseException:
        if not any(staging.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)
            raise
        done = len(result.written) + len(result.skipped)
        hint = (f"clearer-nni restore {cfg.input} -o {cfg.output} --model {cfg.model} --resume")
        print(f"restore stopped after {done} of {len(jobs)} images; they are kept in {staging}: finish the rest "
              f"with `{hint}`", file=sys.stderr)
        raise
    return result


def _parser() -> argparse.ArgumentParser:
    from .ensemble import ENSEMBLE_HELP, ENSEMBLES

    d = RestoreConfig()
    p = argparse.ArgumentParser(prog="clearer-nni restore", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input", help="an image file, or a folder of images")
    p.add_argument("-o", "--output", required=True,
                   help="output file (its suffix picks the format: .png, .tif, .jpg...), or a folder (an existing "
                        "one, or a name ending with '/'; always when the input is a folder)")
    p.add_argument("--model", required=True,
                   help="model.ckpt written by clearer-nni retrain, or its export (model.onnx runs through "
                        "onnxruntime; a TorchScript file through torch.jit)")
    p.add_argument("--tile", type=int, default=d.tile, help="tile side in pixels (0: whole images)")
    p.add_argument("--overlap", type=int, default=d.overlap, help="pixels shared by neighbouring tiles, blended")
    p.add_argument("--self-ensemble", nargs="?", const="8", choices=tuple(ENSEMBLES), default=d.self_ensemble,
                   help=ENSEMBLE_HELP)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=d.threads, help=THREADS_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted folder restore: skip the images already written (in the output "
                        "folder or its staging folder .OUTPUT.partial) and restore the rest")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels,
                   help=f"refuse images larger than this many pixels before decoding them (0: no limit) "
                        f"[$CLEARER_MAX_PIXELS or {MAX_PIXELS}]")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    try:
        cfg = RestoreConfig(**vars(_parser().parse_args(argv)))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)

    def _run() -> int:
        result = run_restore(cfg)
        for kind, message in CONVERSIONS.items():
            files = [src for src, c in result.conversions.items() if c == kind]
            if files:
                which = files[0] if len(files) == 1 else f"{len(files)} of {len(result.written)} images"
                print(f"note: {which}: {message}", file=sys.stderr)
        if result.renamed:
            print(f"note: {len(result.renamed)} image(s) written as .png (e.g. {result.renamed[0].name}): "
                  "GIF holds 256 colours", file=sys.stderr)
        where = result.written[0] if len(result.written) == 1 and not result.skipped else Path(cfg.output)
        skipped = f" ({len(result.skipped)} already there, skipped)" if result.skipped else ""
        print(f"restored {len(result.written)} image(s) into {where}{skipped}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
