"""Dataset layouts (built in tmp_path), the embedded default, the real shared data, bad inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearer_nni.data import datasets as ds
from clearer_nni.data.datasets import (
    SKIMAGE_SPLITS,
    ImageSet,
    available_datasets,
    default_data_root,
    load_dataset,
    register_dataset,
)
from clearer_nni.data.images import DataError, read_image

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _img(path: Path, h: int = 20, w: int = 24, value: int | None = None, rgb: bool = False, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if rgb else (h, w)
    a = np.full(shape, value, np.uint8) if value is not None else rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


# ------------------------------------------------------------------ layouts


@pytest.mark.parametrize("layout", ["BSDS500/{s}", "BSR/BSDS500/data/images/{s}"])
def test_bsds500_layouts(tmp_path, layout):
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        for i in range(n):
            _img(tmp_path / layout.format(s=split) / f"{100 + i}.jpg", rgb=True, seed=i)
    (tmp_path / layout.format(s="train") / "Thumbs.db").write_bytes(b"junk")  # ignored: not an image
    d = load_dataset("bsds500", "val", channels=3, root=str(tmp_path))
    assert d.name == "bsds500/val" and len(d) == 2 and d.targets is None
    assert d.images[0].shape == (20, 24, 3) and d.images[0].dtype == np.float32
    tr = load_dataset("BSDS500", "train", channels=1, root=str(tmp_path))
    assert [Path(p).name for p in tr.paths] == ["100.jpg", "101.jpg", "102.jpg"]
    assert tr.images[0].shape == (20, 24, 1)
    assert len(load_dataset("bsds500", "train", root=str(tmp_path), max_images=2)) == 2


def test_bsd400_set12_bsd68_layouts_and_splits(tmp_path):
    for i in (2, 1, 3):
        _img(tmp_path / "BSD400" / f"test_{i:03d}.png", seed=i)
    for i in range(1, 4):
        _img(tmp_path / "Set12" / f"{i:02d}.png", seed=i)
        _img(tmp_path / "BSD68" / f"test{i:03d}.png", seed=i)
    (tmp_path / "Set12" / "MANIFEST.txt").write_text("not an image")
    d = load_dataset("bsd400", "train", root=str(tmp_path))
    assert d.name == "bsd400/train" and [Path(p).name for p in d.paths] == [
        "test_001.png", "test_002.png", "test_003.png"]
    assert load_dataset("set12", "test", root=str(tmp_path)).name == "set12/test"
    assert len(load_dataset("bsd68", "test", channels=3, root=str(tmp_path))) == 3
    with pytest.raises(DataError, match="only the 'test' split"):
        load_dataset("set12", "train", root=str(tmp_path))
    with pytest.raises(DataError, match="only the 'train' split"):
        load_dataset("bsd400", "val", root=str(tmp_path))


def _rain_pair(path: Path, clean_value: int, rain_value: int, h: int = 16, w: int = 20) -> None:
    """ID-CGAN layout: clean on the LEFT, rainy on the RIGHT."""
    a = np.concatenate([np.full((h, w, 3), clean_value, np.uint8), np.full((h, w, 3), rain_value, np.uint8)], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_rain800_side_by_side(tmp_path):
    for i in range(14):
        _rain_pair(tmp_path / "Rain800" / "training" / f"{i}.png", clean_value=10 + i, rain_value=200)
    for i in range(3):
        _rain_pair(tmp_path / "Rain800" / "test_syn" / f"{i}.png", clean_value=50, rain_value=220)
    root = str(tmp_path)
    te = load_dataset("rain800", "test", channels=3, root=root)
    assert te.name == "rain800/test" and len(te) == 3 and te.targets is not None
    assert te.images[0].shape == (16, 20, 3)
    np.testing.assert_allclose(te.images[0], 220 / 255, atol=1e-6)  # rainy input = right half
    np.testing.assert_allclose(te.targets[0], 50 / 255, atol=1e-6)  # clean target = left half
    tr = load_dataset("rain800", "train", root=root)
    va = load_dataset("rain800", "val", root=root)
    assert len(va) == 2 and len(tr) == 12  # 14 // 7 = 2 validation images (100 of 700 in the real set)
    assert not set(tr.paths) & set(va.paths)
    assert va.paths == load_dataset("rain800", "val", root=root).paths  # deterministic
    flipped = load_dataset("rain800", "test", root=root, rain_side="left")
    np.testing.assert_allclose(flipped.images[0], 50 / 255, atol=1e-6)
    with pytest.raises(DataError, match="rain_side"):
        load_dataset("rain800", "test", root=root, rain_side="top")


def test_rain800_val_is_100_of_700():
    names = [f"{i}.jpg" for i in range(700)]
    val = ds._rain800_val_names(names)
    assert len(val) == 100 and val == ds._rain800_val_names(names)


def test_rain800_odd_width(tmp_path):
    p = tmp_path / "Rain800" / "test_syn" / "odd.png"
    _img(p, h=8, w=21, rgb=True)
    with pytest.raises(DataError, match=r"odd\.png.*odd"):
        load_dataset("rain800", "test", root=str(tmp_path))


def test_paired_folder(tmp_path):
    for stem in ("b", "a"):
        _img(tmp_path / "pairs" / "input" / f"{stem}.png", value=100)
        _img(tmp_path / "pairs" / "target" / f"{stem}.jpg", value=30)
    d = load_dataset(f"paired:{tmp_path / 'pairs'}", channels=1)
    assert d.name.startswith("paired:") and len(d) == 2 and d.paired
    assert [Path(p).name for p in d.paths] == ["a.png", "b.png"]
    np.testing.assert_allclose(d.images[0], 100 / 255, atol=1e-6)
    np.testing.assert_allclose(d.targets[0], 30 / 255, atol=2 / 255)  # jpeg


def test_plain_folder(tmp_path):
    for n in ("z.png", "a.png", "m.bmp"):
        _img(tmp_path / "imgs" / n)
    (tmp_path / "imgs" / "readme.txt").write_text("skip me")
    d = load_dataset(str(tmp_path / "imgs"), split="whatever", channels=3)
    assert d.name.startswith("folder:") and [Path(p).name for p in d.paths] == ["a.png", "m.bmp", "z.png"]
    assert d.targets is None and d.images[0].shape == (20, 24, 3)


def test_skimage_splits_disjoint_and_non_empty():
    seen: set[str] = set()
    for split in ("train", "val", "test"):
        d = load_dataset("skimage", split, channels=1)
        assert d.name == f"skimage/{split}" and len(d) == len(SKIMAGE_SPLITS[split]) > 0
        assert not seen & set(d.paths)
        seen |= set(d.paths)
        for x in d.images:
            assert x.dtype == np.float32 and x.ndim == 3 and x.shape[2] == 1 and min(x.shape[:2]) >= 256
            assert 0.0 <= x.min() and x.max() <= 1.0
    assert load_dataset("skimage", "val", channels=3).images[0].shape[2] == 3


def test_register_dataset(tmp_path):
    def loader(root, split, channels, max_images, **options):
        return ImageSet(f"toy/{split}", [np.zeros((8, 8, channels), np.float32)], ["toy:0"])

    register_dataset("toy-test", loader, overwrite=True)
    assert "toy-test" in available_datasets()
    assert load_dataset("toy-test", "val", channels=3).images[0].shape == (8, 8, 3)
    with pytest.raises(DataError, match="already registered"):
        register_dataset("toy-test", loader)
    with pytest.raises(DataError, match="invalid dataset name"):
        register_dataset("a:b", loader)


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CLEARER_DATA_ROOT", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("CLEARER_DATA_ROOT")
    # a source checkout: its sibling shared/data when that exists, wherever the current folder is
    checkout = Path(__file__).resolve().parents[2]
    shared = checkout.parent / "shared" / "data"
    work = tmp_path / "repo"
    (work.parent / "shared" / "data").mkdir(parents=True)
    work.mkdir()
    monkeypatch.chdir(work)
    expected = shared if shared.is_dir() else Path.home() / ".cache" / "clearer_nni" / "data"
    assert default_data_root() == expected


# ------------------------------------------------------------------ bad inputs


def test_unknown_dataset_name():
    with pytest.raises(DataError, match=r"unknown dataset 'bsd500x'.*bsds500"):
        load_dataset("bsd500x")


def test_missing_named_folder(tmp_path):
    with pytest.raises(DataError, match=r"BSDS500 'val' images not found.*BSR/BSDS500/data/images/val"):
        load_dataset("bsds500", "val", root=str(tmp_path))


def test_empty_folder(tmp_path):
    (tmp_path / "Set12").mkdir()
    with pytest.raises(DataError, match=r"Set12: no image files"):
        load_dataset("set12", "test", root=str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_dataset(str(tmp_path / "empty"))


def test_unpaired_file(tmp_path):
    _img(tmp_path / "p" / "input" / "a.png")
    _img(tmp_path / "p" / "input" / "lonely.png")
    _img(tmp_path / "p" / "target" / "a.png")
    with pytest.raises(DataError, match=r"lonely\.png: no matching target"):
        load_dataset(f"paired:{tmp_path / 'p'}")
    _img(tmp_path / "q" / "input" / "a.png")
    _img(tmp_path / "q" / "target" / "a.png")
    _img(tmp_path / "q" / "target" / "extra.png")
    with pytest.raises(DataError, match=r"extra\.png: no matching input"):
        load_dataset(f"paired:{tmp_path / 'q'}")
    (tmp_path / "r" / "input").mkdir(parents=True)
    with pytest.raises(DataError, match="input/ and target/"):
        load_dataset(f"paired:{tmp_path / 'r'}")


def test_mismatched_sizes(tmp_path):
    _img(tmp_path / "p" / "input" / "a.png", h=20, w=24)
    _img(tmp_path / "p" / "target" / "a.png", h=20, w=22)
    with pytest.raises(DataError, match=r"a\.png: size 24x20 differs from its target"):
        load_dataset(f"paired:{tmp_path / 'p'}")


def test_bad_image_in_dataset_names_file(tmp_path):
    _img(tmp_path / "Set12" / "01.png")
    (tmp_path / "Set12" / "02.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"02\.png: empty file"):
        load_dataset("set12", "test", root=str(tmp_path))


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="channels"):
        load_dataset("skimage", channels=2)
    with pytest.raises(DataError, match="max_images"):
        load_dataset("skimage", max_images=0)
    with pytest.raises(DataError, match="splits"):
        load_dataset("skimage", "holdout")
    with pytest.raises(DataError, match="takes no options"):
        load_dataset("skimage", rain_side="left")


# ------------------------------------------------------------------ the real shared data


def _need_shared(sub: str) -> Path:
    folder = SHARED / sub
    if not folder.is_dir():
        pytest.skip(f"{SHARED}/{sub} not present: the shared datasets sit beside the clone "
                    "(../shared/data) in CI and on the dev machine only")
    return folder


def test_real_set12_bsd68():
    _need_shared("Set12")
    _need_shared("BSD68")
    s12 = load_dataset("set12", "test", root=str(SHARED))
    assert len(s12) == 12 and {x.shape for x in s12.images} == {(256, 256, 1), (512, 512, 1)}
    b68 = load_dataset("bsd68", "test", root=str(SHARED))
    assert len(b68) == 68 and all(set(x.shape[:2]) == {321, 481} for x in b68.images)


def test_real_bsd400():
    _need_shared("BSD400")
    d = load_dataset("bsd400", "train", root=str(SHARED), max_images=5)
    assert len(d) == 5 and all(x.shape == (180, 180, 1) for x in d.images)
    assert len(ds.list_images(SHARED / "BSD400")) == 400


def test_real_bsds500_splits_and_bt601():
    folder = _need_shared("BSDS500")
    for split, n in (("train", 200), ("val", 100), ("test", 200)):
        assert len(ds.list_images(folder / split)) == n
    d = load_dataset("bsds500", "val", root=str(SHARED), max_images=2, channels=3)
    assert d.name == "bsds500/val" and all(set(x.shape[:2]) == {321, 481} for x in d.images)
    # BSD68 test001 is the BT.601 gray version of BSDS500 val/101085 (see its MANIFEST)
    bsd68 = _need_shared("BSD68") / "test001.png"
    gray = read_image(folder / "val" / "101085.jpg", 1)
    assert np.abs(gray - read_image(bsd68, 1)).mean() * 255 < 0.2
