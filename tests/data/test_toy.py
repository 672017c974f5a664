import numpy as np
import pytest

from otflows.data.toy import TOY_DATASETS, sample_toy


def test_eight_ffjord_datasets():
    assert set(TOY_DATASETS) == {"checkerboard", "swissroll", "rings", "moons", "circles",
                                 "2spirals", "pinwheel", "8gaussians"}


@pytest.mark.parametrize("name", TOY_DATASETS)
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_shape_dtype_and_finite(name, n):
    x = sample_toy(name, n, np.random.default_rng(0))
    assert x.shape == (n, 2) and x.dtype == np.float64 and np.isfinite(x).all()


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_reproducible_under_seed_and_independent_of_global_rng(name):
    np.random.seed(1)
    a = sample_toy(name, 500, np.random.default_rng(42))
    np.random.seed(2)
    b = sample_toy(name, 500, np.random.default_rng(42))
    c = sample_toy(name, 500, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_checkerboard_lives_on_dark_squares():
    x = sample_toy("checkerboard", 5000, np.random.default_rng(0))
    assert np.abs(x).max() <= 4.0
    # Squares of side 2: the parity of floor(x/2) + floor(y/2) is the same for every point.
    parity = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2
    assert len(np.unique(parity)) == 1


def test_eight_gaussians_modes():
    x = sample_toy("8gaussians", 8000, np.random.default_rng(0))
    radius = np.linalg.norm(x, axis=1)
    assert abs(np.median(radius) - 4 / 1.414) < 0.2


def test_bad_input():
    with pytest.raises(ValueError, match="unknown toy dataset"):
        sample_toy("spiral", 10, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        sample_toy("moons", 10, 0)
    with pytest.raises(ValueError, match="positive"):
        sample_toy("moons", 0, np.random.default_rng(0))
