"""Random training patches, data loaders and whole-image evaluation pairs.

Every patch is a pure function of ``(seed, epoch, index)``: it does not depend on the number of
workers, their order, or what was drawn before.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .datasets import ImageSet
from .degradations import Degradation
from .images import DataError

__all__ = [
    "PatchDataset",
    "search_batches",
    "center_crop_multiple",
    "dihedral",
    "eval_pairs",
    "fixed_batches",
    "inverse_dihedral",
    "make_loader",
    "worker_init_fn",
]


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """Apply dihedral transform ``k`` (0..7) to an ``H x W [x C]`` array.

    ``k % 4`` quarter turns counter-clockwise, then a left-right flip when ``k >= 4``;
    ``k == 0`` is the identity.
    """
    if not 0 <= int(k) < 8:
        raise DataError(f"dihedral transform index must be in 0..7, got {k!r}")
    y = np.rot90(x, int(k) % 4, axes=(0, 1))
    return np.flip(y, axis=1) if k >= 4 else y


def inverse_dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """Undo :func:`dihedral` ``k`` (for self-ensembles)."""
    if not 0 <= int(k) < 8:
        raise DataError(f"dihedral transform index must be in 0..7, got {k!r}")
    y = np.flip(x, axis=1) if k >= 4 else x
    return np.rot90(y, -(int(k) % 4), axes=(0, 1))


def center_crop_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Center-crop ``H x W [x C]`` so both sides are multiples of ``multiple`` (paper protocol: 64)."""
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise DataError(f"crop multiple must be a positive integer, got {multiple!r}")
    h, w = x.shape[:2]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise DataError(f"image of size {w}x{h} is smaller than the crop multiple {multiple}")
    top, left = (h - nh) // 2, (w - nw) // 2
    return x[top: top + nh, left: left + nw]


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (2, 0, 1)), dtype=np.float32))


class PatchDataset(Dataset):
    """A virtual epoch of random ``(degraded, clean)`` patches from an :class:`ImageSet`.

    Parameters
    ----------
    data : ImageSet
        Unpaired (clean images, degraded here) or paired (inputs and targets cropped together).
    patch_size : int, default 64
        Side of the square patches.
    degradation : Degradation, optional
        Applied to each clean patch of an unpaired set (``None``: the patch is returned twice).
        Must be ``None`` for a paired set.
    length : int, default 1000
        Patches per epoch (``__len__``).
    seed : int, default 0
        Non-negative base seed.
    augment : bool, default True
        Apply one of the 8 dihedral transforms (rotations by 90 degrees and flips) per patch.
    exclude_identity : bool, default False
        Draw only the 7 non-identity transforms, as the CLEARER authors' code does.

    Notes
    -----
    Item ``i`` uses ``numpy.random.default_rng([seed, epoch, i])`` for everything it draws (image,
    crop position, transform, degradation), so results do not depend on worker count or order.
    The epoch lives in shared memory, so :meth:`set_epoch` reaches persistent loader workers.
    """

    def __init__(self, data: ImageSet, patch_size: int = 64, degradation: Optional[Degradation] = None,
                 length: int = 1000, seed: int = 0, augment: bool = True,
                 exclude_identity: bool = False) -> None:
        if not isinstance(data, ImageSet):
            raise DataError(f"PatchDataset needs an ImageSet, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError(f"dataset {data.name!r} is empty: no images to cut patches from")
        self.patch_size = _check_int(patch_size, "patch_size", 1)
        self.length = _check_int(length, "length", 1)
        self.seed = _check_int(seed, "seed", 0)
        if data.targets is not None:
            if degradation is not None:
                raise DataError(f"dataset {data.name!r} is paired (inputs are already degraded): "
                                "degradation must be None")
            if len(data.targets) != len(data.images):
                raise DataError(f"dataset {data.name!r}: {len(data.images)} inputs but "
                                f"{len(data.targets)} targets")
            for x, y, p in zip(data.images, data.targets, data.paths):
                if x.shape != y.shape:
                    raise DataError(f"{p}: input shape {x.shape} differs from target shape {y.shape}")
        if degradation is not None and not callable(degradation):
            raise DataError(f"degradation must be callable(clean, rng), got {degradation!r}")
        for x, p in zip(data.images, data.paths):
            if x.ndim != 3:
                raise DataError(f"{p}: expected an H x W x C array, got shape {x.shape}")
        small = [(p, x.shape) for x, p in zip(data.images, data.paths)
                 if min(x.shape[0], x.shape[1]) < self.patch_size]
        if len(small) == len(data):
            raise DataError(f"every image of {data.name!r} is smaller than the {self.patch_size}x"
                            f"{self.patch_size} patch (e.g. {small[0][0]}: "
                            f"{small[0][1][1]}x{small[0][1][0]}); use a smaller patch_size")
        if small:
            p, shape = small[0]
            raise DataError(f"{p}: image {shape[1]}x{shape[0]} is smaller than the "
                            f"{self.patch_size}x{self.patch_size} patch ({len(small)} of {len(data)} "
                            f"images of {data.name!r} are); remove it or use a smaller patch_size")
        self.data = data
        self.degradation = degradation
        self.augment = bool(augment)
        self.exclude_identity = bool(exclude_identity)
        # shared-memory scalar: persistent DataLoader workers see set_epoch made in the main process
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """Current epoch (mixed into every item's seed)."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Select the sampling of ``epoch`` (>= 0); epochs differ from each other reproducibly."""
        self._epoch.fill_(_check_int(epoch, "epoch", 0))

    def __len__(self) -> int:
        return self.length

    def sample_params(self, index: int) -> tuple[int, int, int, int]:
        """``(image_index, top, left, transform)`` drawn for item ``index`` in the current epoch."""
        return self._draw(self._rng(index))

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(f"patch index {index} out of range for length {self.length}")
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _draw(self, rng: np.random.Generator) -> tuple[int, int, int, int]:
        n = int(rng.integers(len(self.data)))
        h, w = self.data.images[n].shape[:2]
        top = int(rng.integers(h - self.patch_size + 1))
        left = int(rng.integers(w - self.patch_size + 1))
        if not self.augment:
            k = 0
        elif self.exclude_identity:
            k = int(rng.integers(1, 8))
        else:
            k = int(rng.integers(8))
        return n, top, left, k

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(int(index))
        n, top, left, k = self._draw(rng)
        p = self.patch_size
        window = (slice(top, top + p), slice(left, left + p))
        if self.data.targets is not None:
            # paired: input and target share the crop window and the transform
            degraded = dihedral(self.data.images[n][window], k)
            clean = dihedral(self.data.targets[n][window], k)
            return _to_tensor(degraded), _to_tensor(clean)
        clean = dihedral(self.data.images[n][window], k)
        if self.degradation is not None:
            degraded = self.degradation(np.ascontiguousarray(clean), rng)
        else:
            degraded = clean
        return _to_tensor(degraded), _to_tensor(clean)


def fixed_batches(dataset: Dataset, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Materialise a small, deterministic dataset of (degraded, clean) pairs as a list of batches
    (fixed validation and calibration sets)."""
    items = [dataset[i] for i in range(len(dataset))]
    return [(torch.stack([x for x, _ in items[i:i + batch_size]]), torch.stack([y for _, y in items[i:i + batch_size]]))
            for i in range(0, len(items), batch_size)]


def worker_init_fn(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's signature
    """Give each loader worker one torch thread: on few cores, oversubscription slows torch badly."""
    torch.set_num_threads(1)


class _EpochSampler(Sampler[int]):
    """Sequential or seeded-shuffled indices; ``set_epoch`` (called by Lightning) reaches the dataset."""

    def __init__(self, dataset: Dataset, shuffle: bool, seed: int) -> None:
        self.dataset, self.shuffle, self.seed, self.epoch = dataset, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        n = len(self)
        if self.shuffle:
            return iter(np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist())
        return iter(range(n))


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, num_workers: int = 0,
                pin_memory: bool = False, drop_last: bool = True) -> DataLoader:
    """A DataLoader with reproducible order, one thread per worker and persistent workers.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Usually a :class:`PatchDataset`.
    batch_size : int
        Items per batch.
    shuffle : bool, default False
        Permute indices with ``default_rng([dataset.seed, epoch])`` (patches are already random).
    num_workers : int, default 0
        Worker processes (persistent when > 0).
    pin_memory : bool, default False
        Pin batches (GPU training).
    drop_last : bool, default True
        Drop a last incomplete batch.

    Returns
    -------
    torch.utils.data.DataLoader
        Its sampler has ``set_epoch`` (Lightning calls it each epoch), forwarded to the dataset.

    Raises
    ------
    DataError
        Bad sizes, or ``drop_last`` with fewer items than one batch (an empty loader).
    """
    batch_size = _check_int(batch_size, "batch_size", 1)
    num_workers = _check_int(num_workers, "num_workers", 0)
    n = len(dataset)  # type: ignore[arg-type]
    if drop_last and n < batch_size:
        raise DataError(f"dataset has {n} items, fewer than batch_size={batch_size} with drop_last=True: "
                        "the loader would be empty; raise the dataset length")
    sampler = _EpochSampler(dataset, bool(shuffle), int(getattr(dataset, "seed", 0)))
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        pin_memory=pin_memory, drop_last=drop_last,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
    )


ProtocolFn = Callable[[np.ndarray], np.ndarray]


def eval_pairs(data: ImageSet, degradation: Union[Degradation, ProtocolFn, None] = None, seed: int = 0,
               crop_multiple: Optional[int] = None) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Whole-image ``(degraded, clean, path)`` triples for evaluation.

    Parameters
    ----------
    data : ImageSet
        Paired sets give ``(input, target, path)``; unpaired sets are degraded here.
    degradation : Degradation or callable, optional
        A :class:`Degradation` is called as ``d(clean, default_rng([seed, i]))`` for image ``i``; any
        other callable as ``fn(clean)`` (e.g. ``functools.partial(standard_noisy, sigma=50)``, which
        seeds itself). Required for unpaired sets, must be ``None`` for paired ones.
    seed : int, default 0
        Base seed for :class:`Degradation` objects.
    crop_multiple : int, optional
        Center-crop each image to multiples of this first (paper protocol on BSD500: 64).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray, str)
    """
    if len(data) == 0:
        raise DataError(f"dataset {data.name!r} is empty")
    seed = _check_int(seed, "seed", 0)
    crop = (lambda a: center_crop_multiple(a, crop_multiple)) if crop_multiple else (lambda a: a)
    out: list[tuple[np.ndarray, np.ndarray, str]] = []
    if data.targets is not None:
        if degradation is not None:
            raise DataError(f"dataset {data.name!r} is paired (inputs are already degraded): "
                            "degradation must be None")
        for x, y, p in zip(data.images, data.targets, data.paths):
            if x.shape != y.shape:
                raise DataError(f"{p}: input shape {x.shape} differs from target shape {y.shape}")
            out.append((np.ascontiguousarray(crop(x)), np.ascontiguousarray(crop(y)), p))
        return out
    if degradation is None:
        raise DataError(f"dataset {data.name!r} holds clean images only: give a degradation or a "
                        "protocol function (e.g. partial(standard_noisy, sigma=50))")
    is_degradation = isinstance(degradation, Degradation)
    for i, (x, p) in enumerate(zip(data.images, data.paths)):
        clean = np.ascontiguousarray(crop(x))
        if is_degradation:
            degraded = degradation(clean, np.random.default_rng([seed, i]))
        else:
            degraded = degradation(clean)  # type: ignore[call-arg]
        out.append((np.asarray(degraded, dtype=np.float32), clean, p))
    return out


def search_batches(train_set: Any, val_set: Any, patch_size: int, degradation: Any, seed: int, val_patches: int,
                   batch_size: int, finetune_steps: int = 0) -> dict[str, list]:
    """The fixed batches a search draws besides its training stream, by purpose and seed, so that
    whoever re-scores a search (``rank``, the benchmarks) sees the same patches:

    - ``monitor``: ``val_patches`` validation patches (seed + 2, no augmentation): every PSNR of the search;
    - ``calibration``: as many training patches (seed + 3) to re-estimate a derived network's BatchNorm;
    - ``finetune``: ``finetune_steps`` batches of training patches (seed + 4) for the fine-tune estimate.

    (Seeds + 0 and + 1 are the weights' and α's streams.)
    """
    out = {"monitor": fixed_batches(PatchDataset(val_set, patch_size, degradation, length=val_patches,
                                                 seed=seed + 2, augment=False), batch_size),
           "calibration": fixed_batches(PatchDataset(train_set, patch_size, degradation, length=val_patches,
                                                     seed=seed + 3), batch_size),
           "finetune": []}
    if finetune_steps:
        out["finetune"] = fixed_batches(PatchDataset(train_set, patch_size, degradation,
                                                     length=finetune_steps * batch_size, seed=seed + 4), batch_size)
    return out
