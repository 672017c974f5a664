"""Gaussian data with a random covariance for CP-Flow's optimal-coupling experiment (§5.2,
Fig. 4 of Huang et al., ICLR 2021): x ~ N(0, Σ), Σ = Q diag(λ) Qᵀ with Q a Haar-random
rotation and log λ ~ U(−1.5, 1.5) (our choice; the paper states only "a random covariance").

Closed forms: W₂²(N(0, Σ), N(0, I)) = tr Σ + d − 2 tr Σ^{1/2}, attained by the linear map
x ↦ Σ^{-1/2}x, the gradient of the convex potential ½xᵀΣ^{-1/2}x; the entropy
½ log det(2πeΣ) turns a test NLL into KL(data ‖ model).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LOG_EIGEN_RANGE", "gaussian_entropy", "gaussian_w2_squared", "optimal_map",
           "random_covariance"]

LOG_EIGEN_RANGE = 1.5  # log-eigenvalues uniform in [−1.5, 1.5] (our choice)


def random_covariance(d: int, rng: np.random.Generator) -> np.ndarray:
    """Σ ``[d, d]`` = Q diag(λ) Qᵀ, Q Haar-random (QR of a Gaussian matrix, signs fixed)."""
    if d < 1:
        raise ValueError(f"random_covariance: d={d}; expected d >= 1")
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    lam = np.exp(rng.uniform(-LOG_EIGEN_RANGE, LOG_EIGEN_RANGE, d))
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
