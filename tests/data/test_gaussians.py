"""Closed forms of the Q-flow Gaussian problems: MI (§4.3), GMM densities (§4.2), W₂²."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from otflows.data.gaussians import (
    MI_RHO_SQUARED,
    correlated_gaussian_log_ratio,
    gmm_pair,
    mutual_information,
    sample_correlated_gaussian,
)
from otflows.data.pairs import gmm_problem, mi_problem


def _sigma(d: int, rho: float) -> np.ndarray:
    h = d // 2
    eye = np.eye(h)
    return np.block([[eye, rho * eye], [rho * eye, eye]])


@pytest.mark.parametrize("d", [2, 8, 40])
def test_mi_closed_form_is_minus_half_log_det_sigma(d: int):
    rho = math.sqrt(MI_RHO_SQUARED)
    # KL(N(0, Σ) ‖ N(0, I)) = ½(tr Σ − d − log det Σ) = −½ log det Σ (tr Σ = d)
    assert mutual_information(d, rho) == pytest.approx(-0.5 * np.linalg.slogdet(_sigma(d, rho))[1])
    assert mutual_information(d, rho) == pytest.approx(d / 4)  # our App. B.2 choice


def test_log_ratio_matches_scipy_and_its_mean_is_the_mi():
    d, rho = 6, 0.6
    rng = np.random.default_rng(0)
    x = sample_correlated_gaussian(20000, d, rho, rng)
    lr = correlated_gaussian_log_ratio(x[:50], rho)
    ref = (multivariate_normal(np.zeros(d), _sigma(d, rho)).logpdf(x[:50])
           - multivariate_normal(np.zeros(d), np.eye(d)).logpdf(x[:50]))
    assert np.allclose(lr, ref)
    assert np.cov(x.T) == pytest.approx(_sigma(d, rho), abs=0.03)
    full = correlated_gaussian_log_ratio(x, rho)
    se = full.std() / math.sqrt(len(full))
    assert abs(full.mean() - mutual_information(d, rho)) < 4 * se


def test_gmm_log_density_matches_scipy_and_the_problem_stores_the_truth():
    p, q = gmm_pair()
    x = np.random.default_rng(1).standard_normal((30, 2)) * 2
    for gm in (p, q):
        ref = np.log(np.mean([multivariate_normal(m, s * s * np.eye(2)).pdf(x)
                              for m, s in zip(gm.means, gm.stds, strict=True)], axis=0))
        assert np.allclose(gm.log_density(x), ref)
    prob = gmm_problem(100, 40, 0)
    assert np.allclose(prob["ratio_truth"],
                       p.log_density(prob["ratio_points"]) - q.log_density(prob["ratio_points"]))
    assert len(p.means) == 3 and len(q.means) == 2


def test_mi_problem_w2_closed_form():
    prob = mi_problem(4, 10, 10, 0)
    rho = float(prob["rho"])
    s = _sigma(4, rho)
    w, v = np.linalg.eigh(s)
    root = (v * np.sqrt(w)) @ v.T  # W₂²(N(0,Σ), N(0,I)) = tr(Σ + I − 2Σ^{1/2})
    assert float(prob["w2_squared_true"]) == pytest.approx(np.trace(s + np.eye(4) - 2 * root))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="even"):
        mutual_information(3, 0.5)
    with pytest.raises(ValueError, match="rho"):
        mutual_information(4, 1.0)
