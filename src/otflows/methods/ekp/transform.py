"""The Monte-Carlo heat smoothing and (c, ε)-transform of EKP, and the dual they enter.

Finlay, Gerolin, Oberman, Pooladian, "Learning normalizing flows from Entropy-Kantorovich
potentials", arXiv:2006.06033: the heat-kernel smoothing ε log H_s[e^{f/ε}] of eq. (16) and
the (c, ε)-transform of eqs. (7)/(19), both by Monte-Carlo with a log-sum-exp, vectorised
over the batch; the dual D_ε of eq. (12), the semi-dual of eq. (15) and the constraint
residual ‖ϕ^(c,ε) − ψ‖ (:func:`dual_terms`).

Conventions where the paper's text is inconsistent (each choice is the one under which
Theorem 1, eq. (13) and eq. (17) hold together; see the package's tests):

* The (c, ε)-transform is the ψ-maximiser of D_ε: ϕ^(c,ε)(y) = ε log ν(y) − ε log
  H_ε[e^{ϕ/ε}](y). Eq. (7) prints the opposite sign; eq. (19) is its second term, which is
  what :func:`log_heat_smoothing` estimates. The coupling term of eq. (12) carries the
  heat-kernel normalisation (2πε)^{−d/2} of eq. (7), so that ρ_t of eq. (17) is normalised
  at the optimum (this only shifts the optimal potentials by a constant).
* J̃ and Ĩ leave the additive constants of ϕ and ψ almost free (the flow and the normalised
  densities ignore them): the residual r = ϕ^(c,ε) − ψ settles at a positive offset where
  the coupling's pull e^{−r/ε} meets the penalty's 2αr. :class:`DualTerms` therefore holds
  the dual D_ε at the best constant (max_c D_ε(ϕ, ψ + c), still a lower bound of the
  optimum), D_ε itself, and the residual both raw and centred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.ekp.potentials import Potential

__all__ = ["DualTerms", "c_eps_transform", "coupling", "dual_terms", "dual_terms_from_values",
           "i_tilde", "j_tilde", "log_heat_smoothing"]


def log_heat_smoothing(f: Potential, y: Tensor, s: float, eps: float, noise: Tensor) -> Tensor:
    """ε log H_s[e^{f/ε}](y) by Monte-Carlo (eq. 16): ε log (1/N) Σ_i exp(f(y + √s ξ_i)/ε).

    y: ``[n, d]``; s ≥ 0: variance of the heat kernel; noise ξ: ``[N, d]`` standard normal,
    shared by every point (common random numbers), or ``[n, N, d]``, one set per point.
    Returns ``[n]`` (units of f). With s = ε this is the MC estimate of eq. (19).
    """
    if s < 0:
        raise ValueError(f"log_heat_smoothing: variance s={s} < 0")
    if s == 0.0:
        return f(y)
    n, d = y.shape
    if noise.dim() == 2:
        pts = y[:, None, :] + math.sqrt(s) * noise[None, :, :]
    elif noise.dim() == 3 and noise.shape[0] == n:
        pts = y[:, None, :] + math.sqrt(s) * noise
    else:
        raise ValueError(f"log_heat_smoothing: noise shape {tuple(noise.shape)}; expected "
                         f"[N, {d}] or [{n}, N, {d}]")
    n_mc = pts.shape[1]
    vals = f(pts.reshape(-1, d)).reshape(n, n_mc) / eps
    return eps * (torch.logsumexp(vals, dim=1) - math.log(n_mc))


def c_eps_transform(f: Potential, y: Tensor, eps: float, noise: Tensor,
                    log_density: Tensor | None = None) -> Tensor:
    """(c, ε)-transform f^(c,ε)(y) = ε log ν(y) − ε log H_ε[e^{f/ε}](y) (eqs. 7, 19).

    The ψ-maximiser of D_ε for fixed ϕ = f (Proposition 1). y: ``[n, d]``; noise as in
    :func:`log_heat_smoothing`; log_density: log ν(y) ``[n]`` in nats, or None to drop that
    term (it does not depend on f; the paper's remark after eq. 19). Returns ``[n]``.
    """
    out = -log_heat_smoothing(f, y, eps, eps, noise)
    return out if log_density is None else out + eps * log_density


@dataclass
class DualTerms:
    """Dual quantities of one batch (scalars, units of the potentials)."""

    dual: Tensor  # max over a constant c of D_ε(ϕ, ψ + c), eq. (12): the flow ignores c
    dual_raw: Tensor  # D_ε(ϕ, ψ) of eq. (12), coupling normalised as in eq. (7)
    semi_dual: Tensor  # J(ϕ) = D_ε(ϕ, ϕ^(c,ε)) (eq. 15, Proposition 1)
    residual: Tensor  # ‖ϕ^(c,ε) − ψ‖ in L²(ν), the constraint of Theorem 1
    residual_centred: Tensor  # the same after removing its mean (the additive constant)


def coupling(psi_z: Tensor, phi_c: Tensor, eps: float) -> Tensor:
    """(2πε)^{−d/2} ∫∫ exp((ϕ(x)+ψ(y)−½‖x−y‖²)/ε) dx dy = E_ν exp((ψ − ϕ^(c,ε))/ε) (float64).

    psi_z: ψ(z), phi_c: ϕ^(c,ε)(z), both ``[m]`` at z ~ ν = N(0, I); a scalar in psi_z's dtype.
    """
    expo = (psi_z.double() - phi_c.double()) / eps
    return torch.exp(torch.logsumexp(expo, 0) - math.log(expo.numel())).to(psi_z.dtype)


def dual_terms_from_values(phi_x: Tensor, psi_z: Tensor, phi_c: Tensor, eps: float
                           ) -> DualTerms:
    """:class:`DualTerms` from ϕ(x) ``[n]``, ψ(z) ``[m]`` and ϕ^(c,ε)(z) ``[m]`` (float64)."""
    phi_x, psi_z, phi_c = phi_x.double(), psi_z.double(), phi_c.double()
    r = phi_c - psi_z
    log_coupling = torch.logsumexp(-r / eps, 0) - math.log(r.numel())
    base = phi_x.mean() + psi_z.mean()
    return DualTerms(dual=base - eps * log_coupling - eps,
                     dual_raw=base - eps * torch.exp(log_coupling),
                     semi_dual=phi_x.mean() + phi_c.mean() - eps,
                     residual=r.pow(2).mean().sqrt(), residual_centred=r.std(unbiased=False))


def dual_terms(phi: Potential, psi: Potential, x: Tensor, z: Tensor, eps: float,
               noise: Tensor) -> DualTerms:
    """D_ε(ϕ, ψ), J(ϕ) and the residual on data x ``[n, d]`` and z ``[m, d]`` ~ N(0, I).

    The coupling ε ∫∫ exp((ϕ(x)+ψ(y)−½‖x−y‖²)/ε) dx dy / (2πε)^{d/2} equals
    ε E_{z∼ν}[exp((ψ(z) − ϕ^(c,ε)(z))/ε)] (importance sampling with ν = N(0, I)); noise is
    the MC noise of ϕ^(c,ε) at z (``[N, d]`` or ``[m, N, d]``). Computed in float64.
    """
    phi_c = c_eps_transform(phi, z, eps, noise, standard_normal_log_prob(z))
    return dual_terms_from_values(phi(x), psi(z), phi_c, eps)


def j_tilde(phi: Potential, psi_z: Tensor, x: Tensor, z: Tensor, eps: float, alpha: float,
            noise_z: Tensor) -> Tensor:
    """J̃(ϕ) of eq. (20) on one batch (a scalar).

    J̃ = E_μ ϕ + E_ν ϕ^(c,ε) − ε E_ν exp((ψ − ϕ^(c,ε))/ε) − α E_ν (ϕ^(c,ε) − ψ)²: D_ε with the
    auxiliary variable, coupling as in eq. (12), penalty subtracted (the objective is
    ascended; eq. 20 prints +α). Every term is a batch mean, so the objective estimates
    the same functional whatever the batch size: ‖·‖² is the L²(ν) norm (an expectation).
    A sum over the batch made α's weight grow with B (α 1e-3 × B 256 ≈ 0.26 per point).
    x: data ``[n, d]``; z ~ ν ``[m, d]``; psi_z = ψ(z) ``[m]``; noise_z ``[m, N, d]``.
    """
    phi_c = c_eps_transform(phi, z, eps, noise_z, standard_normal_log_prob(z))
    return (phi(x).mean() + phi_c.mean() - eps * coupling(psi_z, phi_c, eps)
            - alpha * (phi_c - psi_z).pow(2).mean())


def i_tilde(psi: Potential, phi_c: Tensor, x: Tensor, z: Tensor, eps: float, alpha: float,
            noise_x: Tensor) -> Tensor:
    """Ĩ(ψ) of eq. (21) on one batch (batch means, as :func:`j_tilde`).

    Ĩ = E_ν ψ + E_μ ψ^(c,ε) − ε E_ν exp((ψ − ϕ^(c,ε))/ε) − α E_ν (ϕ^(c,ε) − ψ)², with ϕ fixed
    through phi_c = ϕ^(c,ε)(z) ``[m]``; ψ^(c,ε) = ε log p_D − ε log H_ε[e^{ψ/ε}] without its
    constant E_μ[ε log p_D] (dropped after eq. 19); noise_x ``[n, N, d]``.
    """
    psi_z = psi(z)
    return (psi_z.mean() + c_eps_transform(psi, x, eps, noise_x).mean()
            - eps * coupling(psi_z, phi_c, eps) - alpha * (phi_c - psi_z).pow(2).mean())
