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

__all__ = ["HEADS", "Classifier", "MultiHeadClassifier", "QuadraticHeads", "TimeClassifier",
           "linear_waymarks", "logistic_loss", "ratio_errors", "time_score_loss"]

HEADS = ("mlp", "quadratic")
"""Logit families: a SiLU MLP, or quadratic forms x^T A x + w·x + b (TRE's Gaussian heads)."""


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


class QuadraticHeads(nn.Module):
    """``n_out`` quadratic forms x^T A_j x + w_j·x + b_j ``[n, n_out]`` of x ``[n, d]``.

    The log-ratio of two Gaussians is exactly such a form; TRE (Rhodes et al., NeurIPS 2020,
    §4 and its code's "quadratic heads") parameterises the bridge log-ratios of its Gaussian
    MI experiment so. Zero-initialised (every ratio starts at 1)."""

    def __init__(self, d: int, n_out: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(n_out, d, d))
        self.w = nn.Parameter(torch.zeros(n_out, d))
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        """``[n, n_out]``."""
        ax = torch.einsum("jde,ne->njd", self.a, x)
        return (ax * x[:, None]).sum(2) + x @ self.w.t() + self.b


def _body(d: int, width: int, n_layers: int, n_out: int, head: str) -> nn.Module:
    if head not in HEADS:
        raise ValueError(f"ratio head {head!r}: expected one of {HEADS}")
    return QuadraticHeads(d, n_out) if head == "quadratic" else _mlp(d, width, n_layers, n_out)


class Classifier(nn.Module):
    """r(x) ``[n]`` for x ``[n, d]``: an MLP (or quadratic form) with a scalar logit
    (eqs. (5), (8); 1 ratio)."""

    def __init__(self, d: int, width: int, n_layers: int = 2, head: str = "mlp") -> None:
        super().__init__()
        self.net = _body(d, width, n_layers, 1, head)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[:, 0]


class MultiHeadClassifier(nn.Module):
    """TRE: one logit per bridge interval on a shared body; x ``[n, d]`` → ``[n, L]``."""

    def __init__(self, d: int, width: int, n_heads: int, n_layers: int = 2,
                 head: str = "mlp") -> None:
        super().__init__()
        self.net = _body(d, width, n_layers, n_heads, head)
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
    along the grid). Outputting g rather than r keeps the logits O(1) at any L.

    ``head="quadratic"``: g(x, s) = Σ_{j<4} s^j q_j(x) with q_j quadratic forms of x (a
    Gaussian bridge's log-ratios are quadratic in x at every s; cubic in s)."""

    degree = 4  # polynomial basis 1, s, s², s³ of the quadratic head

    def __init__(self, d: int, width: int, n_layers: int = 2, head: str = "mlp") -> None:
        super().__init__()
        self.head = head
        self.net = (_body(d, width, n_layers, self.degree, head) if head == "quadratic"
                    else _body(d + 1, width, n_layers, 1, head))

    def forward(self, x: Tensor, s: Tensor | float) -> Tensor:
        """g(x, s) ``[n]``; s a float or ``[n]``."""
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
        s = s.expand(x.shape[0]) if s.dim() == 0 else s
        if self.head == "quadratic":
            powers = s[:, None] ** torch.arange(self.degree, device=x.device, dtype=x.dtype)
            return (self.net(x) * powers).sum(1)
        return self.net(torch.cat([x, s[:, None]], dim=1))[:, 0]

    def interval_logits(self, x: Tensor, grid: Tensor) -> Tensor:
        """g(x, s_k) ``[L, n]`` at the midpoints of the time grid ``[L+1]``."""
        mids = 0.5 * (grid[1:] + grid[:-1])
        n, L = x.shape[0], len(mids)
        if self.head == "quadratic":  # q_j(x) once, then the polynomial in s at each midpoint
            powers = mids[:, None] ** torch.arange(self.degree, device=x.device, dtype=x.dtype)
            return powers.to(x.dtype) @ self.net(x).t()
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


def time_score_loss(net: TimeClassifier, x_p: Tensor, x_q: Tensor, t: Tensor) -> Tensor:
    """DRE-∞'s time score matching (Choi, Meng, Song, Ermon, AISTATS 2022, §3, weight λ ≡ 1):
    2 E_P[s(x, 0)] − 2 E_Q[s(x, 1)] + E_t E_{p_t}[2 ∂_t s(x, t) + s(x, t)²], whose minimiser
    is s = ∂_t log p_t, on TRE's linear-combination interpolant p_t (``linear_waymarks``, as
    the Q-flow paper runs DRE-∞, §4.2); x_p, x_q ``[n, d]``, t ``[n]`` uniform on [0, 1]."""
    xt = torch.sqrt(1.0 - t * t)[:, None] * x_p + t[:, None] * x_q
    tt = t.detach().clone().requires_grad_(True)
    st = net(xt.detach(), tt)
    (ds_dt,) = torch.autograd.grad(st.sum(), tt, create_graph=True)
    ends = net(x_p, 0.0).mean() - net(x_q, 1.0).mean()
    return 2.0 * ends + (2.0 * ds_dt + st.square()).mean()


def ratio_errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean absolute and max error of an estimated log-ratio against the truth (nats)."""
    if estimate.shape != truth.shape:
        raise ValueError(f"ratio_errors: shapes {estimate.shape} and {truth.shape} differ")
    err = np.abs(np.asarray(estimate, dtype=np.float64) - truth)
    return {"mae": float(err.mean()), "max_error": float(err.max())}
