"""Dataset loaders: named benchmark sets, paired folders, plain folders and the embedded default.

``load_dataset(spec, split, channels)`` returns an :class:`ImageSet` of whole images held in memory
(``float32`` ``H x W x C`` in [0, 1]). File layouts, splits and sources are described in docs/DATA.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from .images import IMAGE_EXTENSIONS, DataError, read_image, to_luma

__all__ = [
    "DEFAULT_DATA_ROOT",
    "ImageSet",
    "SKIMAGE_SPLITS",
    "DatasetLoader",
    "available_datasets",
    "default_data_root",
    "holdout_split",
    "search_sets",
    "list_images",
    "load_dataset",
    "register_dataset",
    "split_side_by_side",
]

SPLITS = ("train", "val", "test")


@dataclass
class ImageSet:
    """Whole images of one dataset split, in memory.

    Attributes
    ----------
    name : str
        Identifier such as ``"bsds500/val"``, ``"set12/test"``, ``"paired:/abs/path"`` or
        ``"folder:/abs/path"``; evaluation code checks it (e.g. no BSD68 score after training on
        ``"bsds500/val"``).
    images : list of numpy.ndarray
        For unpaired sets the clean images; for paired sets the degraded inputs.
    paths : list of str
        Source of each image (a file path, or ``"skimage:<name>"`` for the embedded images).
    targets : list of numpy.ndarray or None
        Clean images of a paired set, aligned with ``images``; ``None`` for unpaired sets.
    """

    name: str
    images: list[np.ndarray]
    paths: list[str]
    targets: Optional[list[np.ndarray]] = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def paired(self) -> bool:
        """Whether the set holds (degraded input, clean target) pairs."""
        return self.targets is not None


class DatasetLoader(Protocol):
    """Signature of a loader given to :func:`register_dataset`."""

    def __call__(self, root: Path, split: str, channels: int, max_images: Optional[int],
                 **options: object) -> ImageSet: ...


def default_data_root() -> Path:
    """Where named datasets are looked for when ``root`` is not given.

    Returns
    -------
    pathlib.Path
        ``$CLEARER_DATA_ROOT`` if set; else, when this package runs from a source checkout, the
        checkout's sibling ``shared/data`` if that folder exists (the project's own machines); else
        ``~/.cache/clearer_nni/data``. The current folder never matters.
    """
    env = os.environ.get("CLEARER_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    shared = checkout.parent / "shared" / "data"
    if (checkout / "setup.py").is_file() and shared.is_dir():
        return shared
    return Path.home() / ".cache" / "clearer_nni" / "data"


#: Value of :func:`default_data_root` at import time (``load_dataset`` re-evaluates it per call).
DEFAULT_DATA_ROOT: Path = default_data_root()

_REGISTRY: dict[str, DatasetLoader] = {}


def register_dataset(name: str, loader_fn: DatasetLoader, overwrite: bool = False) -> None:
    """Make ``load_dataset(name, ...)`` call ``loader_fn(root, split, channels, max_images, **options)``.

    Parameters
    ----------
    name : str
        Dataset name (case-insensitive; no ``:`` or path separators).
    loader_fn : callable
        Returns an :class:`ImageSet`; ``root`` is a :class:`pathlib.Path`.
    overwrite : bool, default False
        Replace an existing registration instead of raising.

    Raises
    ------
    DataError
        Bad name, non-callable loader, or name taken and ``overwrite`` is False.
    """
    key = name.strip().lower()
    if not key or ":" in key or "/" in key or os.sep in key:
        raise DataError(f"invalid dataset name {name!r}: must be non-empty, without ':' or '/'")
    if not callable(loader_fn):
        raise DataError(f"loader for dataset {name!r} is not callable")
    if key in _REGISTRY and not overwrite:
        raise DataError(f"dataset {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[key] = loader_fn


def available_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, hidden files skipped), sorted by name.

    Raises
    ------
    DataError
        If ``folder`` is missing, not a folder, or holds no image file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.name,
    )
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return files


def _limit(items: Sequence, max_images: Optional[int]) -> list:
    return list(items if max_images is None else items[:max_images])


def _read_all(files: Sequence[Path], channels: int) -> list[np.ndarray]:
    return [read_image(f, channels) for f in files]


def _find_dir(root: Path, candidates: Sequence[str], what: str) -> Path:
    """First existing ``root/<candidate>`` folder; DataError listing every place tried."""
    tried = []
    for rel in candidates:
        p = root / rel
        if p.is_dir():
            return p
        tried.append(str(p))
    raise DataError(f"{what} not found; looked for " + ", ".join(tried)
                    + f" (the data root is {root}: pass --data-root DIR or set CLEARER_DATA_ROOT to where the "
                      "datasets are; see docs/DATA.md for the layout and download instructions)")


def _only_split(dataset: str, split: str, allowed: str) -> None:
    if split != allowed:
        raise DataError(f"dataset {dataset!r} has only the {allowed!r} split, got split={split!r}")


# --------------------------------------------------------------------------------------------
# the embedded default: scikit-image's bundled photographs (no download)

#: Deterministic, disjoint split of scikit-image's bundled natural photographs (``skimage.data``
#: function names; ``"motorcycle"`` is the left view of ``stereo_motorcycle``). ``cat`` is left out:
#: it is the same photograph as ``chelsea``.
SKIMAGE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "rocket", "brick", "grass", "gravel", "motorcycle"),
    "val": ("chelsea", "coins"),
    "test": ("camera", "moon"),
}


def _skimage_image(name: str) -> np.ndarray:
    from skimage import data as skdata

    if name == "motorcycle":
        arr = skdata.stereo_motorcycle()[0]
    else:
        arr = getattr(skdata, name)()
    return np.asarray(arr)


def _load_skimage(root: Path, split: str, channels: int, max_images: Optional[int],
                  **options: object) -> ImageSet:
    _no_options("skimage", options)
    if split not in SKIMAGE_SPLITS:
        raise DataError(f"dataset 'skimage' has splits {list(SKIMAGE_SPLITS)}, got split={split!r}")
    images, paths = [], []
    for name in _limit(SKIMAGE_SPLITS[split], max_images):
        try:
            raw = _skimage_image(name)
        except Exception as exc:  # noqa: BLE001 - e.g. an install without the bundled files
            raise DataError(f"skimage:{name}: scikit-image could not load this bundled image ({exc})") from exc
        x = raw.astype(np.float64) / 255.0  # all the chosen images are uint8
        if x.ndim == 2:
            x = x[..., None]
        if channels == 1 and x.shape[-1] == 3:
            x = np.rint(to_luma(x).astype(np.float64) * 255.0) / 255.0  # same rule as read_image
        elif channels == 3 and x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        images.append(np.ascontiguousarray(x, dtype=np.float32))
        paths.append(f"skimage:{name}")
    return ImageSet(f"skimage/{split}", images, paths)


# --------------------------------------------------------------------------------------------
# named benchmark sets


def _no_options(dataset: str, options: dict) -> None:
    if options:
        raise DataError(f"dataset {dataset!r} takes no options, got {sorted(options)}")


def _load_bsds500(root: Path, split: str, channels: int, max_images: Optional[int],
                  **options: object) -> ImageSet:
    _no_options("bsds500", options)
    if split not in SPLITS:
        raise DataError(f"dataset 'bsds500' has splits {list(SPLITS)}, got split={split!r}")
    folder = _find_dir(
        root,
        [f"BSDS500/{split}", f"BSR/BSDS500/data/images/{split}", f"BSDS500/data/images/{split}"],
        f"BSDS500 {split!r} images",
    )
    files = _limit(list_images(folder), max_images)
    return ImageSet(f"bsds500/{split}", _read_all(files, channels), [str(f) for f in files])


def _simple_loader(key: str, folders: Sequence[str], split_name: str) -> DatasetLoader:
    def load(root: Path, split: str, channels: int, max_images: Optional[int],
             **options: object) -> ImageSet:
        _no_options(key, options)
        _only_split(key, split, split_name)
        folder = _find_dir(root, folders, f"{key} images")
        files = _limit(list_images(folder), max_images)
        return ImageSet(f"{key}/{split}", _read_all(files, channels), [str(f) for f in files])

    load.__name__ = f"_load_{key}"
    load.__doc__ = f"Load {key} ({', '.join(folders)} under the data root; split {split_name!r} only)."
    return load


def split_side_by_side(pair: np.ndarray, rain_side: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Split a side-by-side image into ``(rainy, clean)`` halves.

    Parameters
    ----------
    pair : numpy.ndarray
        ``H x 2W x C`` image.
    rain_side : {"right", "left"}
        Half that holds the rainy image.
    path : str
        File name for error messages.

    Raises
    ------
    DataError
        Odd width (no exact half) or a bad ``rain_side``.
    """
    if rain_side not in ("left", "right"):
        raise DataError(f"rain_side must be 'left' or 'right', got {rain_side!r}")
    width = pair.shape[1]
    if width % 2:
        raise DataError(f"{path}: width {width} is odd, cannot split it into two equal halves "
                        "(expected a side-by-side clean|rainy pair)")
    left = np.ascontiguousarray(pair[:, : width // 2])
    right = np.ascontiguousarray(pair[:, width // 2:])
    return (right, left) if rain_side == "right" else (left, right)


def _rain800_val_names(names: Sequence[str]) -> set[str]:
    """Deterministic validation subset of Rain800 ``training``: 100 of 700 (n // 7 when fewer)."""
    n_val = min(100, max(1, len(names) // 7))
    order = np.random.default_rng(800).permutation(len(names))  # fixed seed: same split everywhere
    return {names[i] for i in order[:n_val]}


def _load_rain800(root: Path, split: str, channels: int, max_images: Optional[int],
                  rain_side: str = "right", **options: object) -> ImageSet:
    _no_options("rain800", options)
    if rain_side not in ("left", "right"):
        raise DataError(f"rain_side must be 'left' or 'right', got {rain_side!r}")
    if split not in SPLITS:
        raise DataError(f"dataset 'rain800' has splits {list(SPLITS)}, got split={split!r}")
    sub = "test_syn" if split == "test" else "training"
    folder = _find_dir(root, [f"Rain800/{sub}", f"rain800/{sub}", f"rain/{sub}"], f"Rain800 {sub!r} images")
    files = list_images(folder)
    if split != "test":
        val = _rain800_val_names([f.name for f in files])
        files = [f for f in files if (f.name in val) == (split == "val")]
        if not files:
            raise DataError(f"{folder}: too few images to make a Rain800 {split!r} split")
    files = _limit(files, max_images)
    rainy, clean = [], []
    for f in files:
        r, c = split_side_by_side(read_image(f, channels), rain_side, str(f))
        rainy.append(r)
        clean.append(c)
    return ImageSet(f"rain800/{split}", rainy, [str(f) for f in files], targets=clean)


def _load_paired(folder: Path, channels: int, max_images: Optional[int]) -> ImageSet:
    if not ((folder / "input").is_dir() and (folder / "target").is_dir()):
        raise DataError(f"{folder}: a paired dataset needs sub-folders input/ and target/ "
                        "holding files with matching names (stems)")
    inputs, targets = list_images(folder / "input"), list_images(folder / "target")

    def by_stem(files: list[Path]) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for f in files:
            if f.stem in out:
                raise DataError(f"{f}: two files share the name {f.stem!r} ({out[f.stem].name}); "
                                "cannot tell which one to pair")
            out[f.stem] = f
        return out

    ins, tgs = by_stem(inputs), by_stem(targets)
    for stem, f in ins.items():
        if stem not in tgs:
            raise DataError(f"{f}: no matching target file {folder / 'target' / stem}.*")
    for stem, f in tgs.items():
        if stem not in ins:
            raise DataError(f"{f}: no matching input file {folder / 'input' / stem}.*")
    stems = _limit(sorted(ins), max_images)
    images, clean = [], []
    for s in stems:
        x, y = read_image(ins[s], channels), read_image(tgs[s], channels)
        if x.shape != y.shape:
            raise DataError(f"{ins[s]}: size {x.shape[1]}x{x.shape[0]} differs from its target "
                            f"{tgs[s]} ({y.shape[1]}x{y.shape[0]})")
        images.append(x)
        clean.append(y)
    return ImageSet(f"paired:{folder}", images, [str(ins[s]) for s in stems], targets=clean)


register_dataset("skimage", _load_skimage)
register_dataset("bsds500", _load_bsds500)
register_dataset("bsd400", _simple_loader("bsd400", ["BSD400", "Train400", "bsd400"], "train"))
register_dataset("set12", _simple_loader("set12", ["Set12", "set12"], "test"))
register_dataset("bsd68", _simple_loader("bsd68", ["BSD68", "Set68", "bsd68"], "test"))
register_dataset("rain800", _load_rain800)


def holdout_split(data: ImageSet, every: int = 5) -> tuple[ImageSet, ImageSet]:
    """Split one set into (train, validation) images: every ``every``-th image in name order (the last one
    when there are fewer) is held out for validation. Both keep ``data.name``.

    Raises
    ------
    DataError
        Fewer than 2 images: nothing to split.
    """
    if len(data) < 2:
        raise DataError(f"dataset {data.name!r} has {len(data)} image: a validation split needs at least 2")
    order = sorted(range(len(data)), key=lambda i: data.paths[i])
    held = set(order[every - 1::every]) or {order[-1]}

    def subset(keep: list[int]) -> ImageSet:
        targets = None if data.targets is None else [data.targets[i] for i in keep]
        return ImageSet(data.name, [data.images[i] for i in keep], [data.paths[i] for i in keep], targets)

    return subset([i for i in order if i not in held]), subset([i for i in order if i in held])


def search_sets(data: str, val_data: str | None, channels: int = 1,
                root: Optional[str] = None) -> tuple[ImageSet, ImageSet, bool]:
    """A search's (weights, α) image sets: ``data``'s train split and ``val_data``'s (else ``data``'s) val
    split; a set without a separate val split is held out from (:func:`holdout_split`). Returns the two
    sets and whether they were held out.

    Raises
    ------
    ValueError
        The two sets share images (the architecture step needs images disjoint from the weights').
    """
    train_set = load_dataset(data, "train", channels=channels, root=root)
    try:
        val_set = load_dataset(val_data or data, "val", channels=channels, root=root)
    except DataError as exc:
        if val_data or "has only the 'train' split" not in str(exc):
            raise
        val_set = train_set  # a training-only set (bsd400): held out from below
    held_out = sorted(train_set.paths) == sorted(val_set.paths) and not val_data
    if held_out:  # a folder: the architecture step needs images disjoint from the weights', so hold some out
        train_set, val_set = holdout_split(train_set)
    if set(train_set.paths) & set(val_set.paths):
        raise ValueError(f"data {val_set.name!r} shares images with {train_set.name!r}: the architecture step needs "
                         "images disjoint from the weights' (use a dataset with train/val splits, or --val-data)")
    return train_set, val_set, held_out


def load_dataset(spec: str, split: str = "train", channels: int = 1, root: Optional[str] = None,
                 max_images: Optional[int] = None, **options: object) -> ImageSet:
    """Load a dataset split into memory.

    Parameters
    ----------
    spec : str
        A registered name (``"skimage"``, ``"bsds500"``, ``"bsd400"``, ``"set12"``, ``"bsd68"``,
        ``"rain800"``, or one added with :func:`register_dataset`), ``"paired:/path"`` (a folder
        with ``input/`` and ``target/``), or any other string: a folder of images (split ignored).
    split : {"train", "val", "test"}, default "train"
        Split of a named dataset (``bsd400``: train only; ``set12``, ``bsd68``: test only).
    channels : {1, 3}, default 1
        Output channels (colour to gray by BT.601 luma; gray repeated to 3).
    root : str, optional
        Data root for named datasets; default :func:`default_data_root`.
    max_images : int, optional
        Keep only the first ``max_images`` images (in name order).
    **options
        Loader options, e.g. ``rain_side="right"`` for ``rain800``.

    Returns
    -------
    ImageSet

    Raises
    ------
    DataError
        Unknown name, missing or empty folder, wrong split, bad arguments, or any bad image file.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec must be a non-empty string, got {spec!r}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images < 1):
        raise DataError(f"max_images must be a positive integer or None, got {max_images!r}")
    key = spec.strip().lower()
    if key in _REGISTRY:
        base = Path(root).expanduser() if root is not None else default_data_root()
        data = _REGISTRY[key](base, split, channels, max_images, **options)
    elif key.startswith("paired:"):
        _no_options("paired", options)
        folder = Path(spec.strip()[len("paired:"):]).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: paired dataset folder not found (expected {folder}/input "
                            f"and {folder}/target)")
        data = _load_paired(folder.resolve(), channels, max_images)
    else:
        _no_options("folder", options)
        folder = Path(spec.strip()).expanduser()
        if not folder.exists():
            raise DataError(f"unknown dataset {spec!r}: not one of {available_datasets()}, not "
                            "'paired:/path' and not an existing folder")
        files = _limit(list_images(folder), max_images)
        data = ImageSet(f"folder:{folder.resolve()}", _read_all(files, channels), [str(f) for f in files])
    if len(data) == 0:
        raise DataError(f"dataset {data.name!r} is empty")
    return data
