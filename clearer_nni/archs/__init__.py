"""Architectures: CLEARER's modules, its multi-scale search space, and hand-designed baselines."""

from .baselines import *  # noqa: F401,F403
from .baselines import __all__ as _baselines_all
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .space import *  # noqa: F401,F403
from .space import __all__ as _space_all

__all__ = list(_modules_all) + list(_space_all) + list(_baselines_all)
