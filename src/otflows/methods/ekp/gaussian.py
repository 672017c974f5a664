"""Closed-form Gaussian interpolations of EKP, Appendix C, Example 1 (Finlay et al.,
arXiv:2006.06033): the W₂ geodesic and the entropic interpolation ρ_t^ε of eq. (17) between
two centred Gaussians, as covariance matrices (numpy, float64)."""

from __future__ import annotations

import numpy as np

__all__ = ["entropic_interpolation_covariance", "w2_geodesic_covariance"]


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, u = np.linalg.eigh(0.5 * (a + a.T))
    return (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T


def _mixing_term(sigma0: np.ndarray, sigma1: np.ndarray, shift: float) -> np.ndarray:
    """(shift·I + Σ0Σ1)^{1/2} + (shift·I + Σ1Σ0)^{1/2}, via Σ1^{±1/2} (Σ1 positive definite)."""
    w, u = np.linalg.eigh(sigma1)
    if w.min() <= 0:
        raise ValueError(f"Σ1 must be positive definite (smallest eigenvalue {w.min():.3g}); "
                         f"swap the roles of Σ0 and Σ1 (the formulas are symmetric)")
    s1h = (u * np.sqrt(w)) @ u.T
    s1ih = (u / np.sqrt(w)) @ u.T
    inner = _sqrtm_psd(shift * np.eye(len(w)) + s1h @ sigma0 @ s1h)
    m = s1ih @ inner @ s1h
    return m + m.T


def w2_geodesic_covariance(sigma0: np.ndarray, sigma1: np.ndarray, t: float) -> np.ndarray:
    """Σ_t of the W₂ geodesic between N(·, Σ0) and N(·, Σ1) (App. C, Example 1): ``[d, d]``."""
    s0, s1 = np.asarray(sigma0, float), np.asarray(sigma1, float)
    return (1 - t) ** 2 * s0 + t**2 * s1 + t * (1 - t) * _mixing_term(s0, s1, 0.0)


def entropic_interpolation_covariance(sigma0: np.ndarray, sigma1: np.ndarray, t: float,
                                      eps: float) -> np.ndarray:
    """Σ_t^ε of the entropic interpolation ρ_t^ε of eq. (17) between two Gaussians: ``[d, d]``.

    Σ_t^ε = (1−t)²Σ0 + t²Σ1 + t(1−t)[(ε²/4 I + Σ0Σ1)^{1/2} + (ε²/4 I + Σ1Σ0)^{1/2}]: App. C,
    Example 1, in the convention of eqs. (10), (16), (17) (cost ½‖x−y‖², heat kernel of
    variance tε). Example 1 prints ε²/16, the same curve for the cost ‖x−y‖² (its ε is twice
    this one); the covariance of eq. (17) with the exact potentials is the one here.
    """
    s0, s1 = np.asarray(sigma0, float), np.asarray(sigma1, float)
    return (1 - t) ** 2 * s0 + t**2 * s1 + t * (1 - t) * _mixing_term(s0, s1, eps**2 / 4.0)
