"""Opt-in speed-ups shared by search and retraining: channels_last, ``torch.compile``, mixed precision.

All of them are off by default, and each keeps the model the same object (NNI's one-shot module finds
its mixed layers, and ``state_dict`` keys stay unchanged), so they can be switched on after the search
space has been mutated into a super-network.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import torch
import torch.nn as nn

__all__ = ["PRECISIONS", "apply_fast_path", "check_precision", "to_channels_last"]

#: Values of ``--precision`` (passed to the Lightning ``Trainer``).
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def check_precision(precision: str, accelerator: str) -> str:
    """Return ``precision`` if it can run on ``accelerator`` (``cpu`` or ``gpu``), else raise ``ValueError``."""
    precision = str(precision)  # a space file's YAML may say 32
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "16-mixed" and accelerator != "gpu":
        # float16 autocast needs a GradScaler and a CUDA device; on CPU it is slow or unsupported.
        raise ValueError("precision 16-mixed needs a CUDA GPU; on CPU use bf16-mixed or 32")
    return precision


def to_channels_last(batch: Any) -> Any:
    """``batch`` with every 4-d tensor in channels_last memory format (tuples, lists and dicts are walked)."""
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: to_channels_last(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        items = [to_channels_last(v) for v in batch]
        return type(batch)(items) if isinstance(batch, list) else tuple(items)
    return batch


def _channels_last_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return to_channels_last(args)


class _CompiledForward:
    """``torch.compile`` d forward that falls back to eager, with one warning, the first time compiling fails.

    ``torch.compile`` is lazy: a missing C++ compiler or an unsupported operation only shows at the first
    call, so the fallback has to live at call time.
    """

    def __init__(self, eager: Callable[..., Any]) -> None:
        self.eager = eager
        self.compiled: Callable[..., Any] | None = torch.compile(eager)
        functools.update_wrapper(self, eager)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
                warnings.warn(f"torch.compile failed, running eagerly instead: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}", RuntimeWarning, stacklevel=2)
                self.compiled = None
        return self.eager(*args, **kwargs)


def apply_fast_path(model: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Switch ``model`` (in place) to the CPU/GPU fast path; returns the same object.

    Parameters
    ----------
    channels_last
        Weights and 4-d inputs in NHWC memory format (a forward pre-hook converts the inputs); oneDNN and
        cuDNN convolutions are faster on it.
    compile
        ``torch.compile`` the forward; falls back to eager with a ``RuntimeWarning`` if compiling fails.
        The first steps are slow while it compiles (and again for each new input shape).
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_channels_last_inputs)
    if compile:
        # An instance attribute, not torch.compile(model): the module (and its state_dict keys) stay as they are.
        model.forward = _CompiledForward(model.forward)  # type: ignore[method-assign]
    return model
