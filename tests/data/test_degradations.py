"""Degradations: both noise forms, blind sigma, rain, JPEG, the two evaluation protocols."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clearer_nni.data.degradations import (
    Degradation,
    GaussianNoise,
    JPEGCompression,
    RainStreaks,
    make_degradation,
    paper_noisy,
    standard_noisy,
)
from clearer_nni.data.images import DataError


def _clean(h: int = 128, w: int = 128, c: int = 1, seed: int = 0) -> np.ndarray:
    """A smooth clean image on the 8-bit grid, away from 0 and 1."""
    rng = np.random.default_rng(seed)
    return (rng.integers(60, 196, (h, w, c)) / 255.0).astype(np.float32)


def test_standard_gaussian_statistics():
    x = _clean(256, 256)
    y = GaussianNoise(25)(x, np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == x.shape
    r = (y - x).astype(np.float64)
    assert r.std() == pytest.approx(25 / 255, rel=0.02)
    assert abs(r.mean()) < 0.002
    big = GaussianNoise(50)(np.full((64, 64, 1), 0.98, np.float32), np.random.default_rng(1))
    assert big.max() > 1.0 and big.min() < 1.0  # standard form does not clip


def test_clipped_gaussian_uint8_form():
    x = _clean(256, 256)
    y = GaussianNoise(50, clip=True)(x, np.random.default_rng(0))
    assert y.dtype == np.float32 and 0.0 <= y.min() and y.max() <= 1.0
    levels = y.astype(np.float64) * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # multiples of 1/255
    # truncation (floor) biases the noise downwards by about half a level
    assert (levels - x * 255).mean() == pytest.approx(-0.5, abs=0.2)
    edge = GaussianNoise(70, clip=True)(np.zeros((32, 32, 1), np.float32), np.random.default_rng(2))
    assert edge.min() == 0.0  # clipped, not negative
    # sigma 0 keeps an 8-bit image exactly (no truncation slip from float32 round-off)
    np.testing.assert_array_equal(GaussianNoise(0, clip=True)(x, np.random.default_rng(0)), x)


def test_blind_sigma_range():
    d = GaussianNoise((0, 75))
    rng = np.random.default_rng(3)
    sigmas = [d.sample_sigma(rng) for _ in range(200)]
    assert 0 <= min(sigmas) < 10 and 65 < max(sigmas) <= 75
    x = _clean(64, 64)
    stds = {round(float((d(x, np.random.default_rng(s)) - x).std() * 255)) for s in range(6)}
    assert len(stds) > 1  # each call draws its own sigma
    assert d.describe() == {"kind": "gaussian", "sigma": [0.0, 75.0], "clip": False, "form": "standard"}
    json.dumps(d.describe())


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "abc", (10, 5), (1, 2, 3), (-5, 5)])
def test_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(bad)


def test_bad_sigma_protocols():
    with pytest.raises(DataError, match="sigma"):
        standard_noisy(_clean(), -3)
    with pytest.raises(DataError, match="sigma"):
        paper_noisy(_clean(), float("nan"))


def test_standard_noisy_matches_dncnn_kair_code():
    x = _clean(40, 30)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    y = standard_noisy(x, 50)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # global state untouched
    np.random.seed(0)
    ref = (x + np.random.normal(0, 50 / 255.0, x.shape)).astype(np.float32)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(standard_noisy(x, 50), y)  # reproducible, per image
    # H x W x 1 gives the same noise as the H x W arrays of DnCNN's test code
    np.testing.assert_array_equal(standard_noisy(x[..., 0], 50), y[..., 0])


def test_paper_noisy():
    x = _clean(40, 30)
    y = paper_noisy(x, 30)
    np.random.seed(0)
    ref = np.clip(np.rint(x.astype(np.float64) * 255) + np.random.normal(0, 30, x.shape), 0, 255)
    np.testing.assert_array_equal(y, ref.astype(np.uint8).astype(np.float32) / 255)
    np.testing.assert_array_equal(paper_noisy(x, 30), y)


def test_rain_changes_image_and_stays_in_range():
    x = _clean(96, 96, 3)
    d = RainStreaks()
    y = d(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert (y >= x - 1e-7).all()  # rain only brightens
    assert (y > x + 0.05).mean() > 0.01  # visible streaks
    np.testing.assert_array_equal(y, d(x, np.random.default_rng(0)))  # seeded
    assert not np.array_equal(y, d(x, np.random.default_rng(1)))
    assert d.describe()["kind"] == "rain"
    with pytest.raises(DataError, match="density"):
        RainStreaks(density=0)
    with pytest.raises(DataError, match="length"):
        RainStreaks(length=0)


def test_jpeg_changes_image_and_stays_in_range():
    rng = np.random.default_rng(0)
    for c in (1, 3):
        x = rng.random((48, 48, c)).astype(np.float32)
        y = JPEGCompression(10)(x, rng)
        assert y.shape == x.shape and y.dtype == np.float32
        assert 0.0 <= y.min() and y.max() <= 1.0
        assert np.abs(y - x).mean() > 0.02
    for q in (0, 101, 50.5, True):
        with pytest.raises(DataError, match="quality"):
            JPEGCompression(q)


def test_factory_and_protocol():
    assert isinstance(make_degradation("gaussian", sigma=15), GaussianNoise)
    assert isinstance(make_degradation("rain"), RainStreaks)
    assert make_degradation("jpeg", quality=20).describe() == {"kind": "jpeg", "quality": 20}
    for d in (GaussianNoise(5), RainStreaks(), JPEGCompression(50)):
        assert isinstance(d, Degradation)
    with pytest.raises(DataError, match="unknown degradation"):
        make_degradation("blur")
    with pytest.raises(DataError, match="bad arguments"):
        make_degradation("jpeg", q=3)


def test_degradation_rejects_bad_shape():
    with pytest.raises(DataError, match="H x W x C"):
        GaussianNoise(5)(np.zeros((8, 8)), np.random.default_rng(0))


# -- correlated noise -------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1.0, 2.0, 3.5])
def test_correlated_noise_statistics(length):
    from clearer_nni.data import CorrelatedNoise

    x = np.full((384, 384, 1), 0.5, np.float32)
    y = CorrelatedNoise(50, length)(x, np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == x.shape
    n = (y - x)[..., 0].astype(np.float64) * 255 / 50  # unit variance
    assert abs(n.mean()) < 0.05 and n.std() == pytest.approx(1.0, rel=0.05)
    for lag in (1, 2, 4):  # the autocorrelation of Gaussian-filtered white noise: exp(-d^2 / (4 l^2))
        rho = (n[:, :-lag] * n[:, lag:]).mean() / n.var()
        assert rho == pytest.approx(np.exp(-lag ** 2 / (4 * length ** 2)), abs=0.04), lag


def test_correlated_noise_is_stationary_up_to_the_border_and_white_at_length_0():
    from clearer_nni.data import CorrelatedNoise

    d = CorrelatedNoise(50, 2.0)
    field = np.stack([d.noise((16, 16, 1), np.random.default_rng(i))[..., 0] for i in range(400)])
    corner, centre = field[:, 0, 0].std(), field[:, 8, 8].std()
    assert corner == pytest.approx(1.0, rel=0.12) and centre == pytest.approx(1.0, rel=0.12)
    white = CorrelatedNoise(50, 0.0).noise((256, 256, 1), np.random.default_rng(0))[..., 0]
    assert abs((white[:, :-1] * white[:, 1:]).mean()) < 0.02
    described = d.describe()
    assert described == {"kind": "correlated", "sigma": 50.0, "correlation_length": 2.0, "clip": False}
    assert make_degradation(**described).describe() == described


@pytest.mark.parametrize("kwargs, message", [
    ({"sigma": -1}, "sigma must be a finite number >= 0"),
    ({"sigma": 50, "correlation_length": -1}, "correlation_length must be in 0..64 pixels"),
    ({"sigma": 50, "correlation_length": "wide"}, "correlation_length must be a number of pixels"),
])
def test_correlated_noise_bad_settings_are_named(kwargs, message):
    from clearer_nni.data import CorrelatedNoise

    with pytest.raises(DataError, match=message):
        CorrelatedNoise(**kwargs)


def test_protocol_noise_is_the_standard_protocols_for_gaussian_and_seeded_for_correlated():
    from clearer_nni.data import CorrelatedNoise, degradation_for, protocol_noisy

    x = _clean(64, 48)
    np.testing.assert_array_equal(protocol_noisy(GaussianNoise(50))(x), standard_noisy(x, 50))
    np.testing.assert_array_equal(protocol_noisy(GaussianNoise(50), clip=True)(x), paper_noisy(x, 50))
    c = CorrelatedNoise(50, 2.0)
    np.testing.assert_array_equal(protocol_noisy(c)(x), protocol_noisy(c)(x))  # seed 0 per image
    assert not np.array_equal(protocol_noisy(c)(x), protocol_noisy(CorrelatedNoise(50, 3.0))(x))
    # a run's settings fall back on what its search recorded
    recorded = c.describe()
    assert degradation_for(recorded=recorded).describe() == recorded
    assert degradation_for("correlated", 25, None, recorded).describe()["correlation_length"] == 2.0
    assert degradation_for("correlated", None, None, None, 4.0).describe() == {
        "kind": "correlated", "sigma": 50.0, "correlation_length": 4.0, "clip": False}
