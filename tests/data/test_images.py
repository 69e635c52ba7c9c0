"""Image reading/writing: every pixel format the data layer accepts, and every bad file it refuses."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearer_nni.data.images import DataError, bit_depth, read_image, to_luma, write_image


def _save(path: Path, img: Image.Image, **kw) -> Path:
    img.save(path, **kw)
    return path


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_gray_png_values_and_channels(tmp_path):
    a = np.arange(30, dtype=np.uint8).reshape(5, 6) * 8
    p = _save(tmp_path / "g.png", Image.fromarray(a))
    x = read_image(p, 1)
    assert x.dtype == np.float32 and x.shape == (5, 6, 1)
    np.testing.assert_allclose(x[..., 0], a / 255.0, atol=1e-7)
    y = read_image(p, 3)
    assert y.shape == (5, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(y[..., c], x[..., 0])


def test_rgb_to_gray_uses_bt601_luma(tmp_path):
    a = _rgb()
    p = _save(tmp_path / "c.png", Image.fromarray(a))
    x3 = read_image(p, 3)
    np.testing.assert_allclose(x3, a / 255.0, atol=1e-7)
    x1 = read_image(p, 1)
    luma = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    # rounded to the 8-bit grid, like OpenCV/PIL/MATLAB gray conversion
    np.testing.assert_allclose(x1[..., 0], np.rint(luma) / 255.0, atol=1e-7)
    # not BT.709 (skimage.color.rgb2gray): pure red differs clearly between the two
    red = np.zeros((1, 1, 3))
    red[..., 0] = 1.0
    assert to_luma(red)[0, 0, 0] == pytest.approx(0.299)
    assert to_luma(red, keepdims=False).shape == (1, 1)


def test_to_luma_rejects_non_rgb():
    with pytest.raises(DataError, match="length 3"):
        to_luma(np.zeros((4, 4, 2)))


def test_16bit_gray_png(tmp_path):
    a = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000 + 7)
    p = _save(tmp_path / "g16.png", Image.fromarray(a))
    assert bit_depth(p) == 16
    x = read_image(p, 1)
    np.testing.assert_allclose(x[..., 0], a / 65535.0, atol=1e-7)


def test_16bit_rgb_tiff(tmp_path):
    import tifffile

    a = (np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 1000 + 11)
    p = tmp_path / "c16.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    assert bit_depth(p) == 16
    np.testing.assert_allclose(read_image(p, 3), a / 65535.0, atol=1e-7)
    luma = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(read_image(p, 1)[..., 0], np.rint(luma) / 65535.0, atol=1e-7)


def test_1bit_image(tmp_path):
    a = np.zeros((4, 6), dtype=bool)
    a[1:3, 2:5] = True
    p = _save(tmp_path / "b.png", Image.fromarray(a))
    assert Image.open(p).mode == "1"
    x = read_image(p, 1)
    np.testing.assert_array_equal(x[..., 0], a.astype(np.float32))
    assert bit_depth(p) == 8


def test_palette_image(tmp_path):
    a = _rgb(8, 8)
    img = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p = _save(tmp_path / "p.png", img)
    assert Image.open(p).mode == "P"
    expected = np.asarray(img.convert("RGB")) / 255.0
    np.testing.assert_allclose(read_image(p, 3), expected, atol=1e-7)
    assert read_image(p, 1).shape == (8, 8, 1)


def test_rgba_alpha_is_dropped(tmp_path):
    a = _rgb()
    alpha = np.full(a.shape[:2] + (1,), 10, np.uint8)  # nearly transparent: would change a composite
    p = _save(tmp_path / "a.png", Image.fromarray(np.concatenate([a, alpha], -1), "RGBA"))
    np.testing.assert_allclose(read_image(p, 3), a / 255.0, atol=1e-7)


def test_la_alpha_is_dropped(tmp_path):
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    la = np.stack([g, np.zeros_like(g)], -1)
    p = _save(tmp_path / "la.png", Image.fromarray(la, "LA"))
    np.testing.assert_allclose(read_image(p, 1)[..., 0], g / 255.0, atol=1e-7)


def test_jpeg_reads(tmp_path):
    p = _save(tmp_path / "j.jpg", Image.fromarray(_rgb(16, 16)), quality=95)
    x = read_image(p, 3)
    assert x.shape == (16, 16, 3) and 0.0 <= x.min() and x.max() <= 1.0
    assert bit_depth(p) == 8


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png.*empty file"):
        read_image(p, 1)


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="PNG")
    p = tmp_path / "trunc.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match=r"trunc\.png"):
        read_image(p, 3)


def test_corrupt_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="JPEG")
    data = buf.getvalue()
    p = tmp_path / "bad.jpg"
    p.write_bytes(data[:200] + b"\x00garbage" * 10)  # header kept, entropy-coded data destroyed
    with pytest.raises(DataError, match=r"bad\.jpg"):
        read_image(p, 3)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not a PNG")
    with pytest.raises(DataError, match=r"notes\.png"):
        read_image(p, 1)


def test_missing_file_and_bad_channels(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "nope.png", 1)
    p = _save(tmp_path / "g.png", Image.fromarray(np.zeros((3, 3), np.uint8)))
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        read_image(p, 2)


def test_write_image_roundtrip_8_and_16(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((7, 9, 3)).astype(np.float32)
    out = write_image(tmp_path / "sub" / "o.png", x)
    assert out.exists() and bit_depth(out) == 8
    np.testing.assert_allclose(read_image(out, 3), np.rint(x * 255) / 255, atol=1e-6)
    g = rng.random((7, 9, 1))
    out16 = write_image(tmp_path / "o16.png", g, bit_depth=16)
    assert bit_depth(out16) == 16
    np.testing.assert_allclose(read_image(out16, 1), np.rint(g * 65535) / 65535, atol=1e-7)
    c16 = write_image(tmp_path / "c16.tif", x, bit_depth=16)
    np.testing.assert_allclose(read_image(c16, 3), np.rint(x.astype(np.float64) * 65535) / 65535, atol=1e-7)
    # overshoot is clipped; no temporary files are left behind
    write_image(tmp_path / "clip.png", np.full((2, 2), 1.7))
    assert read_image(tmp_path / "clip.png", 1).max() == 1.0
    assert not [p for p in tmp_path.rglob(".*")]


def test_write_image_refusals(tmp_path):
    with pytest.raises(DataError, match="NaN"):
        write_image(tmp_path / "n.png", np.full((2, 2), np.nan))
    with pytest.raises(DataError, match="16-bit colour"):
        write_image(tmp_path / "c.png", np.zeros((2, 2, 3)), bit_depth=16)
    with pytest.raises(DataError, match="bit_depth"):
        write_image(tmp_path / "x.png", np.zeros((2, 2)), bit_depth=12)
    with pytest.raises(DataError, match="shape"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 2)))
    assert not list(tmp_path.iterdir())


def test_conversions_are_said_once_per_kind(tmp_path, monkeypatch):
    from PIL import Image

    import clearer_nni.data.images as images

    monkeypatch.setattr(images, "_SAID", set())
    rgba = np.zeros((8, 8, 4), np.uint8)
    for i in range(2):
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"a{i}.png")
    with pytest.warns(images.ConversionWarning) as record:
        images.read_image(tmp_path / "a0.png", 3)
        images.read_image(tmp_path / "a1.png", 3)
    messages = [str(r.message) for r in record]
    assert sum("alpha channel dropped" in m for m in messages) == 1 and "a0.png" in messages[0]
