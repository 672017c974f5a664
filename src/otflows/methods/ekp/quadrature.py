"""The (c, ε)-transform of EKP by quadrature in 2-D, an unbiased-in-the-limit alternative to
the Monte-Carlo log-mean-exp of eq. (19) that the semi-dual ascent cannot exploit.

Finlay, Gerolin, Oberman, Pooladian, arXiv:2006.06033, eqs. (7)/(19): ϕ^(c,ε)(z) =
ε log ν(z) − ε log H_ε[e^{ϕ/ε}](z), H_ε the heat kernel N(z, εI). Algorithm 1 estimates
H_ε by N Monte-Carlo samples around each z; ε log of an N-sample mean is biased upward by
Jensen, without bound as ϕ sharpens against N(z, ε), and the ascent follows that bias
(issue 19; tests/methods/test_ekp_mc_transform.py). On the default checkerboard at its best
semi-dual the N = 64 bias is 0.15 nats·ε, while the exact optimum is only 0.25 above.

In d = 2 the integral H_ε[e^{ϕ/ε}](z) = ∫ N(x; z, ε) e^{ϕ(x)/ε} dx is a smooth Gaussian
convolution: the midpoint rule on an n × n grid (spacing ≪ √ε) over a box that holds the
data, N(0, I) and 3√ε on every side is accurate to well below the MC noise, evaluates ϕ at n²
points per step instead of B·N (64² = 4096 against 256 · 64 = 16384), and its grid is shifted
by a uniform random fraction of a cell at every step, so that the potential cannot hide
mass between fixed nodes. This is a departure from Algorithm 1's estimator (config key
``quad_grid``; 0 keeps eq. 19's MC).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.ekp.potentials import Potential

__all__ = ["QuadratureGrid", "c_eps_transform_quadrature"]


class QuadratureGrid:
    """Midpoint-rule nodes on ``[lo, hi]`` (a 2-D box), ``n`` per axis, with random shifts."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, n: int) -> None:
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        if lo.shape != (2,) or hi.shape != (2,) or n < 2:
            raise ValueError(f"QuadratureGrid: needs a 2-D box and n >= 2; got lo {lo}, "
                             f"hi {hi}, n {n}")
        self.lo, self.step, self.n = lo, (hi - lo) / n, int(n)
        self.log_cell = float(np.log(self.step).sum())

    def nodes(self, shift: Tensor) -> Tensor:
        """The n² nodes ``[n², 2]`` (float32), moved by ``shift`` ∈ [0, 1)² cells; shift ½
        gives the plain midpoint rule."""
        i = torch.arange(self.n, dtype=torch.float64)
        cols = [torch.as_tensor(self.lo[k]) + self.step[k] * (i + shift[k].double())
                for k in range(2)]
        xx, yy = torch.meshgrid(cols[0], cols[1], indexing="xy")
        return torch.stack([xx.ravel(), yy.ravel()], 1).float()


def c_eps_transform_quadrature(f: Potential, z: Tensor, eps: float, nodes: Tensor,
                               log_cell: float) -> Tensor:
    """f^(c,ε)(z) = ε log ν(z) − ε log ∫ N(x; z, ε) e^{f(x)/ε} dx (eqs. 7, 19) by quadrature
    on ``nodes`` ``[G, 2]`` of cell area e^{log_cell}; z ``[m, 2]`` → ``[m]``, differentiable
    in f's parameters."""
    on_nodes = f(nodes.to(z.device)) / eps
    d2 = torch.cdist(z, nodes.to(z.device)).pow(2)
    log_h = (torch.logsumexp(on_nodes[None, :] - d2 / (2 * eps), 1)
             + log_cell - math.log(2 * math.pi * eps))
    return eps * (standard_normal_log_prob(z) - log_h)
