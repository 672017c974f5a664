"""The exact empirical squared 2-Wasserstein distance between two point clouds (POT)."""

from __future__ import annotations

import numpy as np

__all__ = ["empirical_w2sq"]


def empirical_w2sq(x: np.ndarray, y: np.ndarray, max_iter: int = 1_000_000) -> float:
    """W₂²(μ̂_x, μ̂_y) = min_π Σ π_ij ‖x_i − y_j‖² over couplings of the uniform empirical
    measures of ``x`` ``[n, d]`` and ``y`` ``[m, d]``: the exact linear program (network
    simplex, ``ot.emd2``), not an entropic approximation. Raises if the solver stops early."""
    import ot

    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"empirical_w2sq: expected [n, d] and [m, d]; got {a.shape}, {b.shape}")
    cost = ot.dist(a, b, metric="sqeuclidean")
    wa, wb = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    value, log = ot.emd2(wa, wb, cost, numItermax=max_iter, log=True)
    if log.get("warning"):
        raise RuntimeError(f"empirical_w2sq: the network simplex stopped early ({log['warning']})")
    return float(value)
