"""Files shipped inside the package: space files, run recipes, NNI experiment files, the loopback shim.

They live in ``clearer_nni/resources/`` (the repository's ``search_spaces/``, ``recipes/`` and
``experiments/`` are links to them), so an installed wheel finds them without the repository. A name
(``demo``) is looked up there; a path is taken as it is.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RESOURCES", "SPACES", "RECIPES", "EXPERIMENTS", "LOOPBACK_JS", "find_resource", "space_path",
           "recipe_path", "experiment_path", "names"]

RESOURCES = Path(__file__).resolve().with_name("resources")
SPACES = RESOURCES / "search_spaces"
RECIPES = RESOURCES / "recipes"
EXPERIMENTS = RESOURCES / "experiments"
#: ``node --require`` shim that makes NNI's web server listen on 127.0.0.1 only.
LOOPBACK_JS = Path(__file__).resolve().parent / "experiment" / "loopback.js"


def names(folder: Path, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[str]:
    """The names of the shipped files of ``folder`` (without suffix)."""
    return sorted(p.stem for p in folder.iterdir() if p.suffix in suffixes) if folder.is_dir() else []


def find_resource(value: str | Path, folder: Path, what: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> Path:
    """``value`` as an existing file path, else the shipped file of that name in ``folder``.

    Raises
    ------
    FileNotFoundError
        Neither exists; the message lists the shipped names.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise FileNotFoundError(f"{what} path is a folder, not a file: {path}")
    if len(path.parts) == 1:
        for suffix in ("", *suffixes):
            candidate = folder / f"{path.name}{suffix}"
            if candidate.is_file() and candidate.suffix in suffixes:
                return candidate
    raise FileNotFoundError(f"{what} not found: {value} (give a path, or one of the shipped names: "
                            f"{', '.join(names(folder, suffixes))})")


def space_path(value: str | Path) -> Path:
    """A space file: a path, or a shipped name (``denoise``, ``derain``, ``demo``, ``tiny``)."""
    return find_resource(value, SPACES, "space file")


def recipe_path(value: str | Path) -> Path:
    """A run recipe: a path, or a shipped name (``paper``, ``derain``, ``demo``, ``tiny``)."""
    return find_resource(value, RECIPES, "recipe")


def experiment_path(value: str | Path) -> Path:
    """An NNI experiment file: a path, or a shipped name (``denoise``, ``lambda_sweep``...)."""
    return find_resource(value, EXPERIMENTS, "experiment file", (".yml", ".yaml"))
