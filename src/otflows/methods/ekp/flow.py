"""The CNF of EKP read off the two potentials: the flow of eqs. (16)–(18), its density
(eq. 17), sampling backwards with dopri5 and the CNF log-likelihood (eq. 8).

Finlay, Gerolin, Oberman, Pooladian, "Learning normalizing flows from Entropy-Kantorovich
potentials", arXiv:2006.06033: ϕ_t = ε log H_{tε}[e^{ϕ/ε}], ψ_t = ε log H_{(1−t)ε}[e^{ψ/ε}],
log ρ_t = (ϕ_t + ψ_t)/ε, v_t = ∇(ψ_t − ϕ_t)/2.

The velocity is v_t = ∇(ψ_t − ϕ_t)/2, as in Appendix C, eqs. (10)–(11), and as the forward
Fokker–Planck equation of Appendix C gives (drift ∇ψ_t minus (ε/2)∇log ρ_t). Eqs. (4) and
(18) print ∇(ϕ_t − ψ_t)/2, the field of the time-reversed flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.ekp.potentials import Potential
from otflows.methods.ekp.transform import log_heat_smoothing
from otflows.ode import dopri5, rk4

__all__ = ["EKPFlow", "FlowSamples", "cnf_log_likelihood", "sample_flow", "sample_path"]

# Points pushed through a potential at once when the flow is evaluated ([chunk · M, d]).
_FLOW_POINTS = 1 << 16


@dataclass
class EKPFlow:
    """The CNF of eqs. (16)–(18) recovered from potentials ϕ (data, t = 0) and ψ (t = 1).

    noise_phi, noise_psi: ``[M, d]`` standard normal MC samples of the heat kernels, fixed for
    the lifetime of the object: common random numbers, so that ϕ_t, ψ_t and v_t are
    deterministic functions of (t, y) while an ODE solver integrates them (an adaptive
    solver could not control its error on a field that is resampled at every call).
    """

    phi: Potential
    psi: Potential
    eps: float
    noise_phi: Tensor
    noise_psi: Tensor

    def potentials(self, t: float, y: Tensor) -> tuple[Tensor, Tensor]:
        """(ϕ_t(y), ψ_t(y)), each ``[n]``: ε log H_{tε}[e^{ϕ/ε}], ε log H_{(1−t)ε}[e^{ψ/ε}]."""
        t = min(max(float(t), 0.0), 1.0)
        phi_t = log_heat_smoothing(self.phi, y, t * self.eps, self.eps, self.noise_phi)
        psi_t = log_heat_smoothing(self.psi, y, (1.0 - t) * self.eps, self.eps,
                                   self.noise_psi)
        return phi_t, psi_t

    def _chunks(self, n: int) -> list[slice]:
        step = max(1, _FLOW_POINTS // max(self.noise_phi.shape[0], 1))
        return [slice(i, min(i + step, n)) for i in range(0, n, step)]

    def log_density(self, t: float, y: Tensor) -> Tensor:
        """Unnormalised log ρ_t(y) = (ϕ_t + ψ_t)/ε of eq. (17), nats: y ``[n, d]`` → ``[n]``."""
        with torch.no_grad():
            parts = []
            for sl in self._chunks(y.shape[0]):
                phi_t, psi_t = self.potentials(t, y[sl])
                parts.append((phi_t + psi_t) / self.eps)
            return torch.cat(parts)

    def velocity(self, t: float, y: Tensor, divergence: bool = False
                 ) -> tuple[Tensor, Tensor | None]:
        """v_t(y) = ∇(ψ_t − ϕ_t)/2 (App. C, eqs. 10–11) ``[n, d]`` and, if asked, ∇·v_t ``[n]``.

        The divergence is exact: d autograd passes through the MC field (d = 2 here).
        """
        vs, divs = [], []
        for sl in self._chunks(y.shape[0]):
            with torch.enable_grad():
                yc = y[sl].detach().requires_grad_(True)
                phi_t, psi_t = self.potentials(t, yc)
                g = torch.autograd.grad((psi_t - phi_t).sum(), yc, create_graph=divergence)[0]
                v = 0.5 * g
                if divergence:
                    div = torch.zeros_like(v[:, 0])
                    for j in range(v.shape[1]):
                        div = div + torch.autograd.grad(v[:, j].sum(), yc,
                                                        retain_graph=True)[0][:, j]
                    divs.append(div.detach())
            vs.append(v.detach())
        return torch.cat(vs), (torch.cat(divs) if divergence else None)


@dataclass
class FlowSamples:
    """Samples pushed from N(0, I) at t = 1 to t = 0, and their transport cost."""

    x: Tensor  # [n, d] samples of ρ_0
    kinetic: Tensor  # [n] ∫_0^1 ½‖v_t(x_t)‖² dt along each path


def _integrate(rhs: Callable[[float, Tensor], Tensor], state0: Tensor, t0: float, t1: float,
               rtol: float, atol: float, rk4_steps: int) -> Tensor:
    """The state at t1: dopri5 (App. D) when rk4_steps = 0, else fixed-step RK4."""
    with torch.no_grad():
        if rk4_steps:
            return rk4(rhs, state0, t0, t1, rk4_steps)
        times = torch.tensor([t0, t1], dtype=state0.dtype, device=state0.device)
        return dopri5(lambda t, y: rhs(float(t), y), state0, times, rtol=rtol, atol=atol)[-1]


def sample_flow(flow: EKPFlow, z: Tensor, rtol: float, atol: float,
                rk4_steps: int = 0) -> FlowSamples:
    """Integrate z ``[n, d]`` ~ N(0, I) from t = 1 back to t = 0 with dopri5 (App. D).

    rk4_steps > 0 integrates with that many fixed RK4 steps instead (a bounded cost; with
    ReLU potentials the MC field was discontinuous and dopri5's step control chattered).
    """
    d = z.shape[1]

    def rhs(t: float, state: Tensor) -> Tensor:
        v, _ = flow.velocity(t, state[:, :d])
        return torch.cat([v, 0.5 * (v * v).sum(1, keepdim=True)], dim=1)

    state0 = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
    end = _integrate(rhs, state0, 1.0, 0.0, rtol, atol, rk4_steps)
    # Integrated backwards: the kinetic state ends at −∫_0^1 ½‖v‖² dt.
    return FlowSamples(x=end[:, :d], kinetic=-end[:, d])


def sample_path(flow: EKPFlow, z: Tensor, times: tuple[float, ...], rtol: float,
                atol: float) -> Tensor:
    """Positions ``[T, n, d]`` at each of ``times`` (in [0, 1]) of z ``[n, d]`` ~ N(0, I) at
    t = 1 pushed back along v_t by one dopri5 solve (App. D): the samples of Fig. 1."""
    grid = [1.0, *sorted({float(t) for t in times if float(t) < 1.0}, reverse=True)]
    if len(grid) == 1:
        return z[None].expand(len(times), *z.shape).clone()

    def rhs(t: Tensor, y: Tensor) -> Tensor:
        return flow.velocity(float(t), y)[0]

    with torch.no_grad():
        path = dopri5(rhs, z, torch.tensor(grid, dtype=z.dtype), rtol=rtol, atol=atol)
    return torch.stack([path[grid.index(min(float(t), 1.0))] for t in times])


def cnf_log_likelihood(flow: EKPFlow, x: Tensor, rtol: float, atol: float,
                       rk4_steps: int = 0) -> Tensor:
    """log ρ_0(x) by the CNF change of variables (eq. 8), nats: x ``[n, d]`` → ``[n]``.

    Integrates (x_t, ℓ_t) from t = 0 to 1 with dx/dt = v_t, dℓ/dt = ∇·v_t (exact), then
    log ρ_0(x) = log N(x_1; 0, I) + ℓ_1; dopri5, or rk4_steps fixed RK4 steps. The exact
    divergence is the true one only for a C¹ field: smooth potentials (``potentials.py``).
    """
    d = x.shape[1]

    def rhs(t: float, state: Tensor) -> Tensor:
        v, div = flow.velocity(t, state[:, :d], divergence=True)
        return torch.cat([v, div[:, None]], dim=1)

    state0 = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    end = _integrate(rhs, state0, 0.0, 1.0, rtol, atol, rk4_steps)
    return standard_normal_log_prob(end[:, :d]) + end[:, d]
