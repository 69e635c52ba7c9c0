"""clearer-nni: CLEARER (Gou et al., NeurIPS 2020) multi-scale NAS for image restoration, on NNI 3.0."""

__version__ = "0.1.0"

__all__ = ["__version__"]
