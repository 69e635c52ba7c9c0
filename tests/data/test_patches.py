"""The patch sampler: reproducibility, worker independence, epochs, augmentation, pairs, errors."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from clearer_nni.data.datasets import ImageSet
from clearer_nni.data.degradations import GaussianNoise, standard_noisy
from clearer_nni.data.images import DataError
from clearer_nni.data.patches import (
    PatchDataset,
    center_crop_multiple,
    dihedral,
    eval_pairs,
    inverse_dihedral,
    make_loader,
    worker_init_fn,
)


def _set(n: int = 3, h: int = 40, w: int = 50, c: int = 1, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    images = [rng.random((h + i, w + 2 * i, c)).astype(np.float32) for i in range(n)]
    return ImageSet("toy/train", images, [f"/data/img{i}.png" for i in range(n)])


def _paired(n: int = 2) -> ImageSet:
    clean = _set(n)
    noisy = [x + 1.0 for x in clean.images]  # inputs = targets + 1, so pairing is checkable
    return ImageSet("toy-pairs", noisy, clean.paths, targets=clean.images)


def test_shapes_and_types():
    ds = PatchDataset(_set(c=3), patch_size=16, degradation=GaussianNoise(25), length=10)
    assert len(ds) == 10
    degraded, clean = ds[3]
    assert degraded.shape == clean.shape == (3, 16, 16)
    assert degraded.dtype == clean.dtype == torch.float32
    assert not torch.equal(degraded, clean)
    with pytest.raises(IndexError):
        ds[10]


def test_same_seed_same_patches_other_seed_differs():
    data = _set()
    a = PatchDataset(data, 16, GaussianNoise(25), length=8, seed=5)
    b = PatchDataset(data, 16, GaussianNoise(25), length=8, seed=5)
    c = PatchDataset(data, 16, GaussianNoise(25), length=8, seed=6)
    for i in range(8):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
    assert any(not torch.equal(a[i][1], c[i][1]) for i in range(8))
    # order independence: item 5 is the same whether or not items 0..4 were drawn first
    torch.testing.assert_close(PatchDataset(data, 16, GaussianNoise(25), length=8, seed=5)[5], a[5])


def test_epochs_differ_reproducibly():
    ds = PatchDataset(_set(), 16, GaussianNoise(10), length=6, seed=1)
    e0 = [ds[i][1] for i in range(6)]
    ds.set_epoch(1)
    assert ds.epoch == 1
    e1 = [ds[i][1] for i in range(6)]
    assert any(not torch.equal(x, y) for x, y in zip(e0, e1))
    ds.set_epoch(0)
    for i in range(6):
        torch.testing.assert_close(ds[i][1], e0[i])
    with pytest.raises(DataError, match="epoch"):
        ds.set_epoch(-1)


def _batches(loader):
    return [(d.clone(), c.clone()) for d, c in loader]


def test_independent_of_worker_count_and_epoch_reaches_workers():
    ds = PatchDataset(_set(), 16, GaussianNoise(25), length=12, seed=3)
    serial = make_loader(ds, batch_size=4, num_workers=0)
    parallel = make_loader(ds, batch_size=4, num_workers=2)
    assert parallel.persistent_workers and parallel.worker_init_fn is worker_init_fn
    b0, b2 = _batches(serial), _batches(parallel)
    assert len(b0) == len(b2) == 3
    for (d0, c0), (d2, c2) in zip(b0, b2):
        torch.testing.assert_close(d0, d2, rtol=0, atol=0)
        torch.testing.assert_close(c0, c2, rtol=0, atol=0)
    # the sampler's set_epoch (what Lightning calls) reaches persistent workers
    parallel.sampler.set_epoch(1)
    serial.sampler.set_epoch(1)
    e1_parallel, e1_serial = _batches(parallel), _batches(serial)
    assert not torch.equal(e1_parallel[0][1], b0[0][1])
    for (_, c1), (_, c2) in zip(e1_parallel, e1_serial):
        torch.testing.assert_close(c1, c2, rtol=0, atol=0)


def test_shuffle_is_seeded_permutation():
    ds = PatchDataset(_set(), 8, None, length=10, seed=2)
    order = lambda: list(iter(make_loader(ds, batch_size=1, shuffle=True).sampler))  # noqa: E731
    assert sorted(order()) == list(range(10)) and order() == order()
    assert order() != list(range(10))


def test_augmentation_covers_all_8_transforms():
    data = _set(n=1, h=20, w=20)
    ds = PatchDataset(data, 20, None, length=200)  # whole image: patch = dihedral(image, k)
    seen = {ds.sample_params(i)[3] for i in range(200)}
    assert seen == set(range(8))
    img = data.images[0]
    for i in range(16):
        k = ds.sample_params(i)[3]
        np.testing.assert_array_equal(ds[i][1].numpy().transpose(1, 2, 0), dihedral(img, k))
    authors = PatchDataset(data, 20, None, length=200, exclude_identity=True)
    assert {authors.sample_params(i)[3] for i in range(200)} == set(range(1, 8))
    plain = PatchDataset(data, 20, None, length=50, augment=False)
    assert {plain.sample_params(i)[3] for i in range(50)} == {0}


def test_dihedral_group():
    x = np.arange(12).reshape(3, 4, 1)
    outs = {dihedral(x, k).tobytes() + bytes(dihedral(x, k).shape) for k in range(8)}
    assert len(outs) == 8
    for k in range(8):
        np.testing.assert_array_equal(inverse_dihedral(dihedral(x, k), k), x)
    with pytest.raises(DataError):
        dihedral(x, 8)


def test_paired_patches_share_crop_and_transform():
    ds = PatchDataset(_paired(), 16, None, length=20, seed=4)
    for i in range(20):
        degraded, clean = ds[i]
        torch.testing.assert_close(degraded, clean + 1.0)
    with pytest.raises(DataError, match="paired.*degradation must be None"):
        PatchDataset(_paired(), 16, GaussianNoise(5))


def test_image_smaller_than_patch():
    data = _set(n=3, h=40, w=50)
    data.images[1] = data.images[1][:10]
    with pytest.raises(DataError, match=r"/data/img1\.png: image 52x10 is smaller than the 16x16 patch"):
        PatchDataset(data, 16)
    with pytest.raises(DataError, match="every image .* is smaller than the 64x64 patch"):
        PatchDataset(_set(n=2, h=20, w=20), 64)


def test_empty_and_bad_arguments():
    with pytest.raises(DataError, match="empty"):
        PatchDataset(ImageSet("void", [], []), 8)
    with pytest.raises(DataError, match="patch_size"):
        PatchDataset(_set(), 0)
    with pytest.raises(DataError, match="length"):
        PatchDataset(_set(), 8, length=0)
    with pytest.raises(DataError, match="seed"):
        PatchDataset(_set(), 8, seed=-1)
    with pytest.raises(DataError, match="fewer than batch_size"):
        make_loader(PatchDataset(_set(), 8, length=4), batch_size=8)


def test_worker_init_fn_sets_one_thread():
    before = torch.get_num_threads()
    try:
        worker_init_fn(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_eval_pairs():
    data = _set(n=2, h=70, w=130)
    pairs = eval_pairs(data, partial(standard_noisy, sigma=50))
    assert len(pairs) == 2
    noisy, clean, path = pairs[0]
    assert path == "/data/img0.png" and noisy.shape == clean.shape == (70, 130, 1)
    np.testing.assert_array_equal(noisy, standard_noisy(data.images[0], 50))
    cropped = eval_pairs(data, GaussianNoise(30, clip=True), crop_multiple=64)
    assert cropped[0][1].shape == (64, 128, 1)
    np.testing.assert_array_equal(cropped[0][1], center_crop_multiple(data.images[0], 64))
    again = eval_pairs(data, GaussianNoise(30, clip=True), crop_multiple=64)
    np.testing.assert_array_equal(cropped[1][0], again[1][0])  # seeded per image
    paired = eval_pairs(_paired())
    np.testing.assert_array_equal(paired[0][0], paired[0][1] + 1.0)
    with pytest.raises(DataError, match="give a degradation"):
        eval_pairs(data)
    with pytest.raises(DataError, match="paired"):
        eval_pairs(_paired(), GaussianNoise(5))
