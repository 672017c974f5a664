"""Density-ratio estimation (DRE) by logistic classification, and its error measures.

Used by Q-flow (arXiv:2305.11857, §3.1 eqs. (5), (8); §4.1) and by its baselines:
"1 ratio" (one classifier between P and Q) and telescoping DRE (TRE, Rhodes, Xu, Gutmann,
NeurIPS 2020) over a bridge of waymark distributions P = P₀, P₁, …, P_L = Q.

Sign convention (eq. (5)): a classifier r trained by
``logistic_loss(r(a), r(b)) = mean log(1 + e^{r(a)}) + mean log(1 + e^{−r(b)})`` with
a ~ A, b ~ B has the population optimum r* = log(b/a). A telescoping estimate of
log p − log q is then −Σ_k r_k(x) with r_k trained on (a, b) = (P_{k−1}, P_k).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Classifier", "MultiHeadClassifier", "TimeClassifier", "linear_waymarks",
           "logistic_loss", "ratio_errors"]


def logistic_loss(r_a: Tensor, r_b: Tensor) -> Tensor:
    """Eq. (5): mean softplus(r(a)) + mean softplus(−r(b)); optimum r = log(b/a). Scalar."""
    return nn.functional.softplus(r_a).mean() + nn.functional.softplus(-r_b).mean()


def _mlp(d_in: int, width: int, n_layers: int, d_out: int) -> nn.Sequential:
    """``n_layers`` hidden SiLU layers of ``width`` then a linear map to ``d_out``."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(d_in if i == 0 else width, width), nn.SiLU()]
    layers.append(nn.Linear(width if n_layers else d_in, d_out))
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """r(x) ``[n]`` for x ``[n, d]``: an MLP with a scalar logit (eqs. (5), (8); 1 ratio)."""

    def __init__(self, d: int, width: int, n_layers: int = 2) -> None:
        super().__init__()
        self.net = _mlp(d, width, n_layers, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[:, 0]


class MultiHeadClassifier(nn.Module):
    """TRE: one logit per bridge interval on a shared body; x ``[n, d]`` → ``[n, L]``."""

    def __init__(self, d: int, width: int, n_heads: int, n_layers: int = 2) -> None:
        super().__init__()
        self.net = _mlp(d, width, n_layers, n_heads)
        self.n_heads = n_heads

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def log_ratio(self, x: Tensor) -> Tensor:
        """Telescoped log p − log q = −Σ_k r_k(x), ``[n]`` nats."""
        return -self.net(x).sum(1)


class TimeClassifier(nn.Module):
    """The Q-flow-ratio net (§4.1): a time-conditioned classifier g(x, s) whose value at the
    midpoint s_k of [t_{k−1}, t_k] is that interval's logit, log p(x, t_k) − log p(x, t_{k−1})
    at the optimum. The rate r(x, s) = g(x, s)/h_k is then ∂_s log p(x, s), and
    log p(x) − log q(x) = −∫₀¹ r(x, s) ds = −Σ_k h_k r(x, s_k) = −Σ_k g(x, s_k) (midpoint rule
    along the grid). Outputting g rather than r keeps the logits O(1) at any L."""

    def __init__(self, d: int, width: int, n_layers: int = 2) -> None:
        super().__init__()
        self.net = _mlp(d + 1, width, n_layers, 1)

    def forward(self, x: Tensor, s: Tensor | float) -> Tensor:
        """g(x, s) ``[n]``; s a float or ``[n]``."""
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
        s = s.expand(x.shape[0]) if s.dim() == 0 else s
        return self.net(torch.cat([x, s[:, None]], dim=1))[:, 0]

    def interval_logits(self, x: Tensor, grid: Tensor) -> Tensor:
        """g(x, s_k) ``[L, n]`` at the midpoints of the time grid ``[L+1]``."""
        mids = 0.5 * (grid[1:] + grid[:-1])
        n, L = x.shape[0], len(mids)
        return self(x.repeat(L, 1), mids.repeat_interleave(n)).view(L, n)

    def log_ratio(self, x: Tensor, grid: Tensor) -> Tensor:
        """log p(x) − log q(x) = −Σ_k g(x, s_k) ``[n]`` (nats) over the grid ``[L+1]``."""
        return -self.interval_logits(x, grid).sum(0)


def linear_waymarks(x_p: Tensor, x_q: Tensor, alphas: Tensor) -> Tensor:
    """TRE's linear-combination waymarks x_k = √(1 − α_k²) x_p + α_k x_q for independent
    pairs (Rhodes et al. 2020, §3.2); x_p, x_q ``[n, d]``, alphas ``[L+1]`` in [0, 1] →
    ``[L+1, n, d]``."""
    a = alphas.to(x_p)[:, None, None]
    return torch.sqrt(1.0 - a * a) * x_p[None] + a * x_q[None]


def ratio_errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean absolute and max error of an estimated log-ratio against the truth (nats)."""
    if estimate.shape != truth.shape:
        raise ValueError(f"ratio_errors: shapes {estimate.shape} and {truth.shape} differ")
    err = np.abs(np.asarray(estimate, dtype=np.float64) - truth)
    return {"mae": float(err.mean()), "max_error": float(err.max())}
