"""Gaussian data with a random covariance for CP-Flow's optimal-coupling experiment (§5.2,
Fig. 4 of Huang et al., ICLR 2021): x ~ N(0, Σ), Σ = Q diag(λ) Qᵀ with Q a Haar-random
rotation and log λ evenly spaced over [−1.5, 1.5] (our choice; the paper states only "a
random covariance"). The spectrum is fixed (condition number e³ at every d ≥ 2) rather than
drawn: a drawn one can come out nearly isotropic (log λ ~ U(−1.5, 1.5) gave λ = 0.359, 0.418
at d = 2), and then every whitening map, a triangular one included, is nearly the optimal
one (the best lower-triangular map cost 0.6 % above W₂² there), so Fig. 4 compares nothing.

Closed forms: W₂²(N(0, Σ), N(0, I)) = tr Σ + d − 2 tr Σ^{1/2}, attained by the linear map
x ↦ Σ^{-1/2}x, the gradient of the convex potential ½xᵀΣ^{-1/2}x; the entropy
½ log det(2πeΣ) turns a test NLL into KL(data ‖ model).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LOG_EIGEN_RANGE", "gaussian_entropy", "gaussian_w2_squared", "optimal_map",
           "random_covariance"]

LOG_EIGEN_RANGE = 1.5  # log-eigenvalues evenly spaced over [−1.5, 1.5] (our choice)


def random_covariance(d: int, rng: np.random.Generator) -> np.ndarray:
    """Σ ``[d, d]`` = Q diag(λ) Qᵀ, Q Haar-random (QR of a Gaussian matrix, signs fixed),
    log λ evenly spaced over [−LOG_EIGEN_RANGE, LOG_EIGEN_RANGE]."""
    if d < 1:
        raise ValueError(f"random_covariance: d={d}; expected d >= 1")
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    lam = np.exp(np.linspace(-LOG_EIGEN_RANGE, LOG_EIGEN_RANGE, d)) if d > 1 else np.ones(1)
    cov = (q * lam) @ q.T
    return 0.5 * (cov + cov.T)


def gaussian_w2_squared(cov: np.ndarray) -> float:
    """W₂²(N(0, Σ), N(0, I)) = tr Σ + d − 2 tr Σ^{1/2} (squared Euclidean cost)."""
    eig = np.linalg.eigvalsh(np.asarray(cov, dtype=np.float64))
    return float(eig.sum() + len(eig) - 2.0 * np.sqrt(np.clip(eig, 0.0, None)).sum())


def optimal_map(cov: np.ndarray) -> np.ndarray:
    """Σ^{-1/2} ``[d, d]``: the Brenier map from N(0, Σ) to N(0, I), x ↦ Σ^{-1/2}x."""
    eig, vec = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    return (vec / np.sqrt(eig)) @ vec.T


def gaussian_entropy(cov: np.ndarray) -> float:
    """Differential entropy of N(m, Σ) in nats: ½ log det(2πeΣ)."""
    cov = np.asarray(cov, dtype=np.float64)
    return 0.5 * (cov.shape[0] * math.log(2.0 * math.pi * math.e) + np.linalg.slogdet(cov)[1])
