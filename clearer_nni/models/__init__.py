"""Lightning modules: how a restoration network is trained (shared by search and retrain)."""

from .restoration import OptimConfig, RestorationModule

__all__ = ["OptimConfig", "RestorationModule"]
