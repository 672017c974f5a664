"""Gaussian problems with closed forms for Q-flow (Xu, Cheng, Xie, "Computing high-dimensional
optimal transport by flow neural networks", arXiv:2305.11857): the mutual-information
problem of §4.3 and the 2-D Gaussian mixtures of §4.2.

Mutual information (§4.3, set up as in Rhodes et al. 2020 (TRE) and Choi et al. 2022
(DRE-∞)): P = N(0, Σ) on R^d, d even, pairs (x_i, x_{i+d/2}) correlated with coefficient ρ
and independent across pairs; Q = N(0, I) is the product of P's marginals. The MI between
the two halves is I = KL(P‖Q) = −(d/4) log(1 − ρ²) nats (d/2 independent pairs, each
−½ log(1 − ρ²)). Our copy of the paper has no App. B.2: we choose ρ² = 1 − e⁻¹, so that
I = d/4 nats (10, 20, 40, 80 nats at d = 40, 80, 160, 320, the MI range of TRE's and
DRE-∞'s figures).

Gaussian mixtures (§4.2, App. B.1 not in our copy; our choice): P has three isotropic
components, Q two; both log-densities are analytic, so the true log-ratio log p − log q is
known at every point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MI_RHO_SQUARED", "GaussianMixture", "correlated_gaussian_log_ratio",
           "gmm_pair", "mutual_information", "sample_correlated_gaussian"]

MI_RHO_SQUARED = 1.0 - math.exp(-1.0)  # our App. B.2 choice: MI = d/4 nats


def _check_dim(d: int) -> None:
    if not isinstance(d, int | np.integer) or d < 2 or d % 2:
        raise ValueError(f"correlated Gaussian: d={d!r}; expected an even int >= 2")


def _check_rho(rho: float) -> None:
    if not -1.0 < rho < 1.0:
        raise ValueError(f"correlated Gaussian: rho={rho!r}; expected -1 < rho < 1")


def mutual_information(d: int, rho: float) -> float:
    """I(x_{1:d/2}; x_{d/2+1:d}) = −(d/4) log(1 − ρ²) nats, the closed form of §4.3."""
    _check_dim(d)
    _check_rho(rho)
    return -0.25 * d * math.log1p(-rho * rho)


def sample_correlated_gaussian(n: int, d: int, rho: float, rng: np.random.Generator
                               ) -> np.ndarray:
    """n samples ``[n, d]`` of P = N(0, Σ), Σ = [[I, ρI], [ρI, I]] (blocks of size d/2)."""
    _check_dim(d)
    _check_rho(rho)
    h = d // 2
    a = rng.standard_normal((n, h))
    b = rho * a + math.sqrt(1.0 - rho * rho) * rng.standard_normal((n, h))
    return np.concatenate([a, b], axis=1)


def correlated_gaussian_log_ratio(x: np.ndarray, rho: float) -> np.ndarray:
    """log p(x) − log q(x) ``[n]`` (nats) of P = N(0, Σ) against Q = N(0, I), x ``[n, d]``."""
    _check_rho(rho)
    h = x.shape[1] // 2
    a, b = x[:, :h], x[:, h:]
    s = 1.0 - rho * rho
    # log N(a, b; Σ) per pair = −log 2π − ½ log s − (a² − 2ρab + b²)/(2s)
    quad = (a * a - 2 * rho * a * b + b * b) / (2 * s)
    return (-0.5 * math.log(s) - quad + 0.5 * (a * a + b * b)).sum(1)


@dataclass(frozen=True)
class GaussianMixture:
    """Equal-weight isotropic Gaussian mixture: means ``[c, d]``, one std per component."""

    means: np.ndarray
    stds: np.ndarray

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n samples ``[n, d]``."""
        comp = rng.integers(0, len(self.means), n)
        noise = rng.standard_normal((n, self.means.shape[1]))
        return self.means[comp] + self.stds[comp, None] * noise

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log p(x) ``[n]`` in nats, x ``[n, d]`` (log-sum-exp over components)."""
        d = x.shape[1]
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)  # [n, c]
        var = self.stds[None] ** 2
        logc = -0.5 * sq / var - 0.5 * d * np.log(2 * math.pi * var) - math.log(len(self.means))
        m = logc.max(1, keepdims=True)
        return (m + np.log(np.exp(logc - m).sum(1, keepdims=True)))[:, 0]


def gmm_pair() -> tuple[GaussianMixture, GaussianMixture]:
    """(P, Q) of §4.2 (our App. B.1 choice): P three components on a triangle, std 0.5;
    Q two components, std 0.7, overlapping P's support so the log-ratio is moderate."""
    p = GaussianMixture(np.array([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]]),
                        np.array([0.5, 0.5, 0.5]))
    q = GaussianMixture(np.array([[-1.0, 0.5], [1.0, 0.5]]), np.array([0.7, 0.7]))
    return p, q
