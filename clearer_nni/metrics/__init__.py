"""Image-quality metrics. PSNR in torch for training-time monitoring; evaluation uses scikit-image's."""

from __future__ import annotations

import torch

from .quality import SSIM_WINDOWS, patch_average, psnr, quantize_8bit, score, ssim, ssim_implementation

__all__ = ["SSIM_WINDOWS", "batch_psnr", "mean_psnr", "patch_average", "psnr", "quantize_8bit", "score", "ssim", "ssim_implementation"]


def batch_psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean PSNR (dB) over a batch of NCHW images; ``pred`` is clamped to ``[0, data_range]``.

    Returns a 0-dim tensor (no host sync, so it can be called inside a training loop).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    mse = (pred.float().clamp(0, data_range) - target.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-12))).mean()


@torch.no_grad()
def mean_psnr(network: torch.nn.Module, batches: "list[tuple[torch.Tensor, torch.Tensor]]",
              device: "torch.device | str") -> float:
    """Mean PSNR (dB) of ``network`` over fixed (degraded, clean) batches, in eval mode (BatchNorm
    running statistics); the network's mode is put back. One host sync, at the end."""
    was_training = network.training
    network.eval()
    try:
        total = torch.zeros((), device=device)
        for degraded, clean in batches:
            total += batch_psnr(network(degraded.to(device)), clean.to(device))
        return float(total) / len(batches)
    finally:
        network.train(was_training)
