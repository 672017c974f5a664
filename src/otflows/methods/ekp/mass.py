"""The mass ∫ p dx of a 2-D density on a uniform grid, with its own quadrature-error estimate.

Issue 19: the CNF density of eq. (8) must integrate to one (a likelihood is a density). The
sum over a uniform grid (trapezoid rule; the density vanishes on the box edge) converges
spectrally for a smooth density: on a Gaussian of standard deviation s with spacing h its
error is ~2 exp(−2π² s²/h²), negligible for h ≲ s but large once ridges are narrower than the
spacing (a mixture of s = 0.05 Gaussians on a 64² grid of [−6, 6]²: −25 %). A jittered
(stratified) grid is unbiased but loses the spectral accuracy (±9 % at s = 0.1 where the
uniform grid is within 0.6 %), so it is not used. The estimate therefore comes with its own
check, free of extra density evaluations: the two interleaved half-resolution grids (every
other point, offsets 0 and 1) give two coarser integrals; their largest distance to the full
grid's is an upper estimate of the full grid's error (spectral convergence: halving h
squares the error's small factor). tests/methods/test_ekp_mass.py pins both on closed forms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["GridMass", "grid_mass", "grid_points"]


@dataclass(frozen=True)
class GridMass:
    """The grid integral of a density and its estimated quadrature error (both unitless)."""

    mass: float  # Σ p(x_ij) · cell over the n × n grid
    error: float  # max over the two interleaved half grids of |their integral − mass|


def grid_points(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n × n grid over the box [lo, hi] ⊂ R²: points ``[n², 2]`` (x fastest) and cell area."""
    gx, gy = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    xx, yy = np.meshgrid(gx, gy)
    return np.stack([xx.ravel(), yy.ravel()], 1), float((gx[1] - gx[0]) * (gy[1] - gy[0]))


def grid_mass(log_p: Callable[[Tensor], Tensor], lo: np.ndarray, hi: np.ndarray, n: int,
              dtype: torch.dtype = torch.float32) -> GridMass:
    """∫_box exp(log_p) dx on an n × n uniform grid (n ≥ 4, raised to odd) and its error estimate.

    log_p: points ``[m, 2]`` → log-density ``[m]`` (nats), called once on all n² points. An even
    n is raised by one: with an even n the reflections of the box swap the two half grids, and
    on a density with those symmetries all four subgrid sums agree whatever the error (a
    mixture of s = 0.05 Gaussians on a 64² grid: −25 % with an estimate of 0).
    """
    if n < 4:
        raise ValueError(f"grid_mass: n={n}; expected >= 4 (two interleaved half grids)")
    n += 1 - n % 2
    pts, cell = grid_points(np.asarray(lo, float), np.asarray(hi, float), n)
    logp = log_p(torch.as_tensor(pts, dtype=dtype)).double().reshape(n, n)

    def integral(lp: Tensor, area: float) -> float:
        return float(torch.exp(torch.logsumexp(lp.reshape(-1), 0)) * area)

    full = integral(logp, cell)
    halves = [integral(logp[k::2, k::2], 4.0 * cell) for k in (0, 1)]
    return GridMass(mass=full, error=max(abs(h - full) for h in halves))
