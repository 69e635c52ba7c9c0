"""``python -m clearer_nni.evaluate``: PSNR and SSIM of a retrained model under a named protocol (SPEC section 5).

Protocols (the one used is printed and written next to every number):

- ``standard`` (DnCNN/KAIR, Set12/BSD68): whole image, float Gaussian noise ``x + sigma/255 N(0, 1)``
  drawn after ``np.random.seed(0)`` for each image, not clipped; no self-ensemble unless asked.
- ``paper`` (the CLEARER authors', BSD500 test): images center-cropped to a multiple of 64, noise
  ``clip(255 x + sigma N, 0, 255)`` truncated to uint8 (seed 0 per image); ``--patch 64`` restores
  non-overlapping 64x64 patches separately (CLEARER-P) and scores the stitched image, without it the
  whole image (CLEARER).
- ``authors``: the paper's data and noise, CLEARER-P scored as the authors' test code scores it: each
  64x64 patch (``--patch``, 64 unless given) is restored and scored on its own, and PSNR and SSIM are
  the means over the patches (0.05-0.76 dB above the stitched score of the same restored images, SPEC section 8).

In all, the prediction is clipped to [0, 1] and quantised to 8 bits (``round(255 x) / 255``) and then
scored with scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` (``data_range=1``);
``--ssim gaussian`` scores SSIM with the authors' 11x11 Gaussian window instead
(:mod:`clearer_nni.metrics.quality`). ``--self-ensemble [8|authors]``: :mod:`clearer_nni.ensemble`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import THREADS_HELP
from .data.images import MAX_PIXELS
from .metrics.evaluation import (PAPER_CROP, PROTOCOLS, LeakError, check_unseen, evaluate_model, noise_of,
                                 protocol_pairs)
from .runtime import prepare_out, publish, publish_into, resolve_device, set_threads

__all__ = ["PROTOCOLS", "PAPER_CROP", "LeakError", "EvalConfig", "EvalResult", "protocol_pairs",
           "check_unseen", "evaluate_model", "format_summary", "run_evaluate", "main"]

# -- the command ---------------------------------------------------------------------------------

@dataclass
class EvalConfig:
    """Settings of one evaluation."""

    model: str = ""
    data: str = "set12"
    split: str = "test"
    data_root: str | None = None
    sigma: float = 50.0
    #: ``gaussian`` or ``correlated``; None: the model's own noise (its genotype's search), else Gaussian
    degradation: str | None = None
    correlation_length: float | None = None  # correlated noise; None: the model's, else 2 px
    protocol: str = "standard"
    patch: int | None = None  # the authors protocol: 64 when not given
    self_ensemble: str | None = None  # None (off), "8" or "authors" (clearer_nni.ensemble)
    ssim: str = "skimage"
    save_images: str | None = None
    out: str = "runs/eval"
    overwrite: bool = False
    device: str = "auto"
    threads: int = 0
    max_images: int | None = None
    max_pixels: int | None = None  # None: the data layer's default (MAX_PIXELS or $CLEARER_MAX_PIXELS)
    progress: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        from .ensemble import check_ensemble
        from .metrics import SSIM_WINDOWS

        self.self_ensemble = check_ensemble(self.self_ensemble)
        checks = [
            (bool(self.model), "model is required (a model.ckpt written by clearer_nni.retrain)"),
            (self.protocol in PROTOCOLS, f"unknown protocol {self.protocol!r}; expected one of {list(PROTOCOLS)}"),
            (math.isfinite(self.sigma) and self.sigma >= 0, f"sigma must be a finite number >= 0, got {self.sigma}"),
            (self.degradation in (None, "gaussian", "correlated"),
             f"evaluate adds gaussian or correlated noise, got --degradation {self.degradation!r}"),
            (self.correlation_length is None or (math.isfinite(self.correlation_length)
                                                 and 0 <= self.correlation_length <= 64),
             f"correlation_length must be in 0..64 pixels, got {self.correlation_length}"),
            (self.patch is None or self.patch >= 8, f"patch must be >= 8, got {self.patch}"),
            (self.ssim in SSIM_WINDOWS, f"unknown SSIM window {self.ssim!r}; expected one of {list(SSIM_WINDOWS)}"),
            (self.max_images is None or self.max_images >= 1, f"max_images must be >= 1, got {self.max_images}"),
            (self.threads >= 0, f"threads must be >= 0 (0: auto), got {self.threads}"),
            (self.max_pixels is None or self.max_pixels >= 0, f"max_pixels must be >= 0 (0: no limit), got {self.max_pixels}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class EvalResult:
    """What an evaluation produced."""

    summary: dict[str, Any]
    per_image: Any  # pandas.DataFrame
    out: Path | None = None
    notes: list[str] = field(default_factory=list)


def _variant(protocol: str, patch: int | None, self_ensemble: str | None) -> str:
    """E.g. ``whole image``, ``CLEARER-P, 64x64 patches + x8 self-ensemble``."""
    name = f"{patch}x{patch} patches" if patch else "whole image"
    if protocol == "authors":
        name = f"CLEARER-P, {name}, scores averaged over the patches"
    elif protocol == "paper":
        name = f"{'CLEARER-P' if patch else 'CLEARER'}, {name}" + (", stitched" if patch else "")
    ensemble = {"8": "x8 self-ensemble", "authors": "authors' x7 self-ensemble (no identity)"}
    return name + (f" + {ensemble[self_ensemble]}" if self_ensemble else "")


def run_evaluate(cfg: EvalConfig) -> EvalResult:
    """Evaluate ``cfg.model`` on ``cfg.data`` and write ``per_image.csv`` and ``summary.csv`` into ``cfg.out``."""
    import shutil

    import pandas as pd

    from .data import load_dataset, set_max_pixels
    from .training.checkpoint import data_seen, load_checkpoint
    from .metrics import ssim_implementation
    from .runtime import atomic_write_text

    cfg.validate()
    set_threads(cfg.threads)
    if cfg.max_pixels is not None:
        set_max_pixels(cfg.max_pixels)
    device = resolve_device(cfg.device)
    network, genotype, metadata = load_checkpoint(cfg.model)
    data = load_dataset(cfg.data, cfg.split, channels=genotype.space.in_channels, root=cfg.data_root,
                        max_images=cfg.max_images)
    seen = data_seen(genotype, metadata)
    check_unseen(data.name, seen, model=str(cfg.model))
    notes = []
    if data.name in seen:
        notes.append(f"the model's search or training used {data.name} itself: this is not a held-out score")
    recorded = (metadata or {}).get("degradation") or genotype.metadata.get("degradation")  # the training's, else the search's
    degradation = noise_of(recorded, cfg.degradation, cfg.sigma, cfg.correlation_length)
    pairs = protocol_pairs(data, cfg.protocol, cfg.sigma, degradation)
    patch = cfg.patch or (PAPER_CROP if cfg.protocol == "authors" else None)
    save_dir = Path(cfg.save_images) if cfg.save_images else None
    out = Path(cfg.out)
    # the images are staged too (.<DIR>.partial), and published with the tables: all or nothing
    images = prepare_out(save_dir, cfg.overwrite) if save_dir is not None else None
    try:
        staging = prepare_out(out, cfg.overwrite)
    except BaseException:
        if images is not None:
            shutil.rmtree(images, ignore_errors=True)
        raise
    try:
        start = time.time()
        df = evaluate_model(network, pairs, patch=patch, self_ensemble=cfg.self_ensemble, device=device,
                            patch_average=cfg.protocol == "authors", ssim_window=cfg.ssim, save_dir=images,
                            progress=cfg.progress)
        impl = ssim_implementation(cfg.ssim)
        df.insert(len(df.columns), "implementation", impl)
        summary = {
            "dataset": data.name, "protocol": cfg.protocol, "variant": _variant(cfg.protocol, patch, cfg.self_ensemble),
            "sigma": None if data.paired else cfg.sigma, "n_images": len(df),
            **({"noise": "correlated", "correlation_length": degradation.correlation_length}
               if getattr(degradation, "correlation_length", None) is not None and not data.paired else {}),
            "psnr": float(df["psnr"].mean()), "ssim": float(df["ssim"].mean()),
            "psnr_input": float(df["psnr_input"].mean()), "implementation": impl,
            "scored_on": "prediction clipped to [0,1] and rounded to 8 bits, data_range=1"
                         + (f", mean over {patch}x{patch} patches" if cfg.protocol == "authors" else ""),
            "patch": patch, "self_ensemble": cfg.self_ensemble, "ssim_window": cfg.ssim, "model": str(cfg.model),
            "model_data": ";".join(seen), "device": str(device), "seconds": round(time.time() - start, 2),
        }
        atomic_write_text(staging / "per_image.csv", df.to_csv(index=False, float_format="%.6f"))
        atomic_write_text(staging / "summary.csv", pd.DataFrame([summary]).to_csv(index=False, float_format="%.6f"))
        if images is not None:
            publish_into(images, save_dir)  # --overwrite replaces the images, not the folder's other files
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if images is not None:
            shutil.rmtree(images, ignore_errors=True)
        raise
    return EvalResult(summary, df, out, notes)


def format_summary(summary: dict[str, Any]) -> str:
    """The printed table: one header line and one row."""
    sigma = "-" if summary["sigma"] is None else f"{summary['sigma']:g}"
    if summary.get("correlation_length") is not None:
        sigma += f" (correlated, {summary['correlation_length']:g} px)"
    cols = [("dataset", summary["dataset"]), ("protocol", f"{summary['protocol']} ({summary['variant']})"),
            ("sigma", sigma), ("N", str(summary["n_images"])), ("PSNR (dB)", f"{summary['psnr']:.2f}"),
            ("SSIM", f"{summary['ssim']:.4f}"), ("SSIM implementation", summary["implementation"])]
    widths = [max(len(k), len(v)) for k, v in cols]
    head = "  ".join(k.ljust(w) for (k, _), w in zip(cols, widths))
    row = "  ".join(v.ljust(w) for (_, v), w in zip(cols, widths))
    return f"{head}\n{row}"


def _parser() -> argparse.ArgumentParser:
    from .ensemble import ENSEMBLE_HELP, ENSEMBLES
    from .metrics import SSIM_WINDOWS

    d = EvalConfig()
    p = argparse.ArgumentParser(prog="python -m clearer_nni.evaluate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model.ckpt written by clearer_nni.retrain")
    p.add_argument("--data", default=d.data, help="set12, bsd68, bsds500, skimage, rain800, paired:/path or a folder")
    p.add_argument("--split", default=d.split, help="split of a named dataset (never select models on test)")
    p.add_argument("--data-root", default=d.data_root, help="root of named datasets [$CLEARER_DATA_ROOT or ../shared/data]")
    p.add_argument("--sigma", type=float, default=d.sigma, help="Gaussian noise level on the 0..255 scale")
    p.add_argument("--degradation", choices=("gaussian", "correlated"), default=d.degradation,
                   help="the noise added [the model's: correlated when it was searched for correlated noise, "
                        "else gaussian]")
    p.add_argument("--correlation-length", type=float, default=d.correlation_length,
                   help="correlated noise: standard deviation (pixels) of its Gaussian filter [the model's, else 2]")
    p.add_argument("--protocol", choices=PROTOCOLS, default=d.protocol,
                   help="standard (DnCNN/KAIR: float noise, whole image), paper (authors' data: uint8 noise, crop "
                        "to 64) or authors (paper + CLEARER-P scored per 64x64 patch and averaged, as the authors)")
    p.add_argument("--patch", type=int, default=d.patch,
                   help="restore non-overlapping PATCH x PATCH patches (CLEARER-P: 64; the authors protocol: 64)")
    p.add_argument("--ssim", choices=SSIM_WINDOWS, default=d.ssim,
                   help="skimage (7x7 uniform window) or gaussian (the authors' pytorch_ssim, 11x11 Gaussian)")
    p.add_argument("--self-ensemble", nargs="?", const="8", choices=tuple(ENSEMBLES), default=d.self_ensemble,
                   help=ENSEMBLE_HELP)
    p.add_argument("--save-images", default=d.save_images, metavar="DIR", help="also write the restored images here")
    p.add_argument("--max-images", type=int, default=d.max_images, help="only the first N images (quick checks)")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels,
                   help=f"refuse images larger than this many pixels before decoding them (0: no limit) "
                        f"[$CLEARER_MAX_PIXELS or {MAX_PIXELS}]")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=d.threads, help=THREADS_HELP)
    p.add_argument("--out", required=True, help="output folder for per_image.csv and summary.csv")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import run_cli

    try:
        cfg = EvalConfig(**vars(_parser().parse_args(argv)))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0)

    def _run() -> int:
        result = run_evaluate(cfg)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(format_summary(result.summary))
        print(f"scored: {result.summary['scored_on'].replace('[0,1]', '[0, 1]').replace(', data_range=1', '')}; "
              f"wrote {result.out / 'per_image.csv'}, {result.out / 'summary.csv'}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
