import numpy as np
import pytest

from otflows.metrics.mmd import mmd2_pair, mmd2_unbiased


def _loop_mmd2(x, y, scale):
    def k(a, b):
        return np.exp(-scale * np.sum((a - b) ** 2))

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_matches_direct_double_loop(scale):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(23, 3)), rng.normal(0.5, 1.2, size=(31, 3))
    assert mmd2_unbiased(x, y, scale, chunk=7) == pytest.approx(_loop_mmd2(x, y, scale),
                                                                rel=1e-10, abs=1e-12)


def test_zero_in_expectation_for_equal_distributions():
    rng = np.random.default_rng(1)
    values = [mmd2_unbiased(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)))
              for _ in range(40)]
    # Unbiased: the mean is ~0 (within 4 standard errors) and single draws can be negative.
    mean, se = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 4 * se + 1e-6
    assert min(values) < 0


def test_detects_a_shift_and_is_symmetric():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 2)), rng.normal(1.0, 1.0, size=(300, 2))
    assert mmd2_unbiased(x, y) > 0.05
    assert mmd2_unbiased(x, y) == pytest.approx(mmd2_unbiased(y, x), rel=1e-12)


def test_pair_reports_both_kernels():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(60, 2))
    out = mmd2_pair(x, y)
    assert set(out) == {"mmd2", "mmd2_half"}
    assert out["mmd2_half"] == pytest.approx(mmd2_unbiased(x, y, 0.5))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        mmd2_unbiased(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="two samples"):
        mmd2_unbiased(np.zeros((1, 2)), np.zeros((5, 2)))
