"""Stability and invertibility diagnostics of the RK4-integrated Monge-Ampère flow.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188, §3: the flow
dx/dt = ∇ϕ(x) (eq. 2) is integrated by fixed-step RK4 and claimed reversible. The Jacobian
of the field is the Hessian H(x) = W₁ᵀ diag(w₂ ⊙ σ″(a)) W₁ of ϕ, so a step h is stable only
while h·λ stays inside RK4's stability region; on the real axis that is h·|λ| < 2.785 for
the eigenvalues λ that contract in the integration direction (λ > 0 when integrating data →
latent, λ < 0 latent → data). Past it the discrete forward and backward maps stop being
inverses of each other. This module measures:

* the extreme Hessian eigenvalues of ϕ along integration paths (exact, batched);
* round-trip errors in both directions (base → data → base, data → base → data);
* the condition number of the discrete data → latent map (its full Jacobian, float64).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from otflows.methods.mongeampere.flow import integrate
from otflows.methods.mongeampere.potential import SoftplusPotential

__all__ = ["RK4_REAL_STABILITY", "hessian_eigenvalue_range", "map_condition_number",
           "path_eigenvalue_range", "roundtrip_errors", "stable_steps"]

# RK4's stability interval on the negative real axis: |1 + z + z²/2 + z³/6 + z⁴/24| ≤ 1
# for z ∈ [−2.7853, 0] (Hairer & Wanner, Solving ODEs II, §IV.2, Fig. 2.1).
RK4_REAL_STABILITY = 2.785


@torch.no_grad()
def hessian_eigenvalue_range(potential: SoftplusPotential, x: Tensor,
                             chunk: int = 256) -> tuple[Tensor, Tensor]:
    """(λmin ``[n]``, λmax ``[n]``) of the Hessian of ϕ at x ``[n, d]``, exact.

    H(x) = W₁ᵀ C W₁ with C = diag(w₂ ⊙ σ″(W₁x + b₁)) (§3). With h ≤ d hidden units, the thin
    QR W₁ᵀ = QR gives H = Q (R C Rᵀ) Qᵀ, so the nonzero spectrum is that of the h×h matrix
    R C Rᵀ and the other d − h eigenvalues are 0; with h > d, H itself is d×d. One batched
    ``eigvalsh`` per chunk of points (float64), no loop over points or dimensions.
    """
    w = potential.weight.detach().double()
    h, d = w.shape
    reduced = h < d
    factor = torch.linalg.qr(w.t(), mode="reduced").R if reduced else None  # [h, h]
    lo, hi = [], []
    for i in range(0, x.shape[0], chunk):
        xb = x[i : i + chunk].double()
        s = torch.sigmoid(xb @ w.t() + potential.bias.detach().double())
        c = (s - s * s) * potential.out.detach().double()  # w₂ₖ σ″(aₖ), [n, h]
        if reduced:
            m = (factor.unsqueeze(0) * c.unsqueeze(1)) @ factor.t()  # R C Rᵀ, [n, h, h]
        else:
            m = w.t().unsqueeze(0) @ (c.unsqueeze(2) * w.unsqueeze(0))  # W₁ᵀ C W₁ [n, d, d]
        ev = torch.linalg.eigvalsh(m)
        lo_b, hi_b = ev[:, 0], ev[:, -1]
        if reduced:  # the d − h zero eigenvalues
            lo_b, hi_b = lo_b.clamp(max=0.0), hi_b.clamp(min=0.0)
        lo.append(lo_b)
        hi.append(hi_b)
    return torch.cat(lo), torch.cat(hi)


@torch.no_grad()
def path_eigenvalue_range(potential: SoftplusPotential, x: Tensor, epsilon: float,
                          steps: int, reverse: bool = True) -> tuple[float, float]:
    """(min λmin, max λmax) of the Hessian of ϕ over every RK4 step point of the paths
    started at x ``[n, d]`` (``reverse``: data at t = T back to the latent at t = 0)."""
    out = integrate(potential, x, epsilon, steps, reverse=reverse, record_every=1)
    lo, hi = hessian_eigenvalue_range(potential, torch.cat(out.path))
    return lo.min().item(), hi.max().item()


def stable_steps(flow_time: float, lam_max: float, margin: float = 0.8) -> int:
    """The fewest RK4 steps over ``flow_time`` that keep h·λmax ≤ margin × 2.785."""
    need = flow_time * max(lam_max, 0.0) / (margin * RK4_REAL_STABILITY)
    return max(1, int(-(-need // 1)))


@torch.no_grad()
def roundtrip_errors(potential: SoftplusPotential, x: Tensor, epsilon: float, steps: int,
                     start: str) -> dict[str, float]:
    """Round-trip errors of the discrete flow from x ``[n, d]`` at ``steps`` RK4 steps of ε.

    ``start="base"``: x are latents, integrated to data (t: 0 → T) and back; ``"data"``: x
    are data, integrated to the latent (T → 0) and forward again. Returns the max |Δ| over
    every coordinate and the mean and max Euclidean norm of Δ over points.
    """
    if start not in ("base", "data"):
        raise ValueError(f"roundtrip_errors: start={start!r}; expected 'base' or 'data'")
    there = integrate(potential, x, epsilon, steps, reverse=start == "data").x
    back = integrate(potential, there, epsilon, steps, reverse=start == "base").x
    delta = (back - x).double()
    norms = delta.norm(dim=1)
    return {"max_abs": delta.abs().max().item(), "mean_l2": norms.mean().item(),
            "max_l2": norms.max().item()}


def map_condition_number(potential: SoftplusPotential, x: Tensor, epsilon: float,
                         steps: int) -> Tensor:
    """Condition number σmax/σmin ``[n]`` of the Jacobian of the discrete data → latent map
    (``steps`` RK4 steps of ε from t = T to 0) at each row of x ``[n, d]``; the Jacobian is
    computed in float64 by forward-mode differentiation on a float64 copy of ϕ."""
    pot = copy.deepcopy(potential).double().requires_grad_(False)

    def latent(point: Tensor) -> Tensor:
        return integrate(pot, point.unsqueeze(0), epsilon, steps, reverse=True).x.squeeze(0)

    conds = []
    for point in x.detach().double():
        jac = torch.func.jacfwd(latent)(point)  # [d, d]
        sv = torch.linalg.svdvals(jac)
        conds.append(sv[0] / sv[-1])
    return torch.stack(conds)
