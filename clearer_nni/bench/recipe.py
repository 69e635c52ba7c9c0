"""How a ground-truth table is made: the space, the task, the data and the training every row gets.

A :class:`TableRecipe` is stored beside its table (``<table>.json``), so that every figure of the table can
be traced to the settings, machine, date and commit that made it, and a table can be extended (more
seeds, a longer budget) with exactly the same settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archs.space import SpaceConfig

__all__ = ["TableRecipe", "RecipeError", "load_recipe", "TEST_SETS"]

#: The test sets of a table (standard protocol: whole images, seed 0 per image, scored on the 8-bit range).
TEST_SETS = ("set12", "bsd68")


class RecipeError(ValueError):
    """A table recipe is malformed."""


@dataclass(frozen=True)
class TableRecipe:
    """The settings shared by every row of a table.

    Parameters
    ----------
    name
        The table's name (its files are ``<name>.csv`` and ``<name>.json``).
    space
        The space (:class:`~clearer_nni.archs.space.SpaceConfig` as a dict) whose every architecture is trained.
    degradation
        ``Degradation.describe()`` form, e.g. ``{"kind": "correlated", "sigma": 50, "correlation_length": 2}``.
    train_data
        Named dataset; its images minus every ``holdout``-th (by name) train the weights, the held-out
        ones give the validation patches (disjoint from both test sets).
    holdout
        Every ``holdout``-th training image is held out for validation.
    steps, batch_size, patch_size, lr, grad_clip
        Retraining's optimisation (Adam, ``lr`` cosine to 0, MSE, gradient-norm clip; SPEC section 4).
    val_every, val_patches, val_seed
        The validation curve: PSNR on ``val_patches`` fixed patches (drawn with ``val_seed``, the same
        for every seed and architecture) every ``val_every`` steps. The kept network is the best one.
    test_sets
        Scored at the end with the standard protocol (whole images; the noise drawn with seed 0 per image).
    seeds
        The training seeds of every architecture (initialisation and patch stream).
    """

    name: str = "table"
    space: dict[str, Any] = field(default_factory=lambda: {"channels": [8, 16, 32], "columns": [2, 2],
                                                          "stem": "paper"})
    degradation: dict[str, Any] = field(default_factory=lambda: {"kind": "gaussian", "sigma": 50.0})
    train_data: str = "bsd400"
    holdout: int = 5
    steps: int = 2000
    batch_size: int = 16
    patch_size: int = 48
    lr: float = 0.01
    grad_clip: float = 5.0
    val_every: int = 250
    val_patches: int = 256
    val_seed: int = 1000
    test_sets: tuple[str, ...] = TEST_SETS
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_sets", tuple(self.test_sets))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        problems = [text for ok, text in (
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.patch_size >= 8, f"patch_size must be >= 8, got {self.patch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (1 <= self.val_every <= self.steps, f"val_every must be in 1..steps, got {self.val_every}"),
            (self.val_patches >= 1, f"val_patches must be >= 1, got {self.val_patches}"),
            (self.holdout >= 2, f"holdout must be >= 2, got {self.holdout}"),
            (bool(self.seeds) and all(s >= 0 for s in self.seeds), f"seeds must be >= 0, got {list(self.seeds)}"),
            (isinstance(self.degradation, dict) and "kind" in self.degradation,
             f"degradation must be a mapping with a 'kind', got {self.degradation!r}"),
        ) if not ok]
        if problems:
            raise RecipeError(f"table recipe {self.name!r}: " + "; ".join(problems))
        self.space_config()  # a bad space is named here, not after hours of training

    def space_config(self) -> SpaceConfig:
        from ..archs.space import SpaceFileError

        try:
            return SpaceConfig.from_dict(dict(self.space), source=f"table recipe {self.name!r}: space")
        except SpaceFileError as exc:
            raise RecipeError(str(exc)) from None

    def make_degradation(self) -> Any:
        from ..data import make_degradation

        return make_degradation(**self.degradation)

    def training_key(self) -> dict[str, Any]:
        """What must be equal for two rows to belong to the same table (all but the name and the seeds)."""
        d = self.to_dict()
        d.pop("name")
        d.pop("seeds")
        return d

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["test_sets"], d["seeds"] = list(self.test_sets), list(self.seeds)
        d["space"] = self.space_config().to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "table recipe") -> "TableRecipe":
        if not isinstance(d, dict):
            raise RecipeError(f"{source}: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RecipeError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise RecipeError(f"{source}: {exc}") from None


def load_recipe(path: str | Path) -> TableRecipe:
    """A recipe from a YAML or JSON file (a table's ``.json`` holds it under ``recipe``)."""
    import yaml

    from ..runtime import expect_file

    path = expect_file(path, "table recipe", RecipeError)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not a YAML/JSON table recipe ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("recipe"), dict):
        doc = doc["recipe"]
    recipe = TableRecipe.from_dict(doc, source=str(path))
    return recipe if "name" in doc else dataclasses.replace(recipe, name=path.stem)
