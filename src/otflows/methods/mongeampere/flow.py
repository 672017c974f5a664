"""RK4 integration of the Monge-Ampère flow: samples, densities, NLL and inversion.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188. The
linearised Monge-Ampère equation turns a Brenier map into the flow dx/dt = ∇ϕ(x) (eq. 2)
with the density following d ln p/dt = −∇²ϕ(x) (eq. 3). Both are integrated by fixed-step
RK4 (``otflows.ode.rk4``) with step ε and ``steps`` steps, T = ε·steps; the same integrator
runs backwards (data → latent) for inference, which gives the NLL of eq. (6).

With a symmetry group (§4.2) one element g per sample and per step is used. Because
∇(ϕ̃∘g) = gᵀ∇ϕ̃∘g and the Laplacian is invariant under the orthogonal g, a step of the
sampled field equals the step of ϕ̃ taken in the coordinates y = gx (RK4 commutes with
linear maps), so each step costs one gather in and one out, not one per stage.

Without a group and with fewer hidden units than dimensions, the RK4 runs in the hidden
coordinates u of x = x₀ + W₁ᵀu (``SoftplusPotential.hidden_field``): the same steps in
exact arithmetic, O(h²) instead of O(h·d) per point and stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.mongeampere.potential import (
    FlowPotential,
    HiddenField,
    SoftplusPotential,
)
from otflows.methods.mongeampere.symmetry import SymmetryGroup
from otflows.ode import rk4

__all__ = ["FlowOutput", "integrate", "negative_log_likelihood", "sample_flow"]


@dataclass
class FlowOutput:
    """End of one integration of eqs. (2)-(3).

    x: end points ``[n, d]``; delta_logp: ln p(end) − ln p(start) along each trajectory
    ``[n]`` (nats); kinetic: ∫‖∇ϕ‖² dt over the path ``[n]`` (or None); path: the states
    recorded every ``record_every`` steps, start included (or []); elements: the group
    elements used, one (indices, signs) per step in integration order (or []).
    """

    x: Tensor
    delta_logp: Tensor
    kinetic: Tensor | None = None
    path: list[Tensor] | None = None
    elements: list[tuple[Tensor, Tensor]] | None = None


def _rhs(potential: FlowPotential, d: int, kinetic: bool
         ) -> Callable[[float, Tensor], Tensor]:
    """Right-hand side of (2)-(3) on the state (x, ℓ[, κ]) ``[n, d+1(+1)]``."""
    field = potential.vector_field()

    def f(t: float, state: Tensor) -> Tensor:
        grad, lap = field(state[:, :d])
        cols = [grad, -lap.unsqueeze(1)]  # dx/dt = ∇ϕ (2), d ln p/dt = −∇²ϕ (3)
        if kinetic:
            cols.append(grad.square().sum(1, keepdim=True))
        return torch.cat(cols, dim=1)

    return f


def _hidden_rhs(field: HiddenField, kinetic: bool) -> Callable[[float, Tensor], Tensor]:
    """Right-hand side of (2)-(3) on the hidden state (u, ℓ[, κ]) ``[n, h+1(+1)]``."""
    h = field.width

    def f(t: float, state: Tensor) -> Tensor:
        v, lap, kin = field.field(state[:, :h], kinetic)
        cols = [v, -lap.unsqueeze(1)]  # du/dt = v (dx/dt = W₁ᵀv, 2), d ln p/dt = −∇²ϕ (3)
        if kinetic:
            cols.append(kin.unsqueeze(1))
        return torch.cat(cols, dim=1)

    return f


def _uses_hidden(potential: FlowPotential, group: SymmetryGroup | None, coordinates: str
                 ) -> bool:
    if coordinates not in ("auto", "x", "hidden"):
        raise ValueError(f"integrate: coordinates={coordinates!r}; expected 'auto', 'x' or "
                         "'hidden'")
    able = group is None and hasattr(potential, "hidden_field")
    if coordinates == "hidden" and not able:
        raise ValueError("integrate: hidden coordinates need a SoftplusPotential, no group")
    return able and (coordinates == "hidden" or (
        coordinates == "auto" and potential.width < potential.d))


def _integrate_hidden(hidden: HiddenField, x: Tensor, t0: float, t1: float, steps: int,
                      kinetic: bool, record_every: int) -> FlowOutput:
    """:func:`integrate` in the hidden coordinates u of x = x₀ + W₁ᵀu (u₀ = 0)."""
    n, k = x.shape[0], hidden.width
    state = x.new_zeros(n, k + (2 if kinetic else 1))
    f = _hidden_rhs(hidden, kinetic)
    path: list[Tensor] = [x.detach().clone()] if record_every else []
    every = record_every or steps
    h = (t1 - t0) / steps
    for i in range(0, steps, every):
        m = min(every, steps - i)
        state = rk4(f, state, t0 + i * h, t0 + (i + m) * h, m)
        if record_every:
            path.append(hidden.to_x(state[:, :k]).detach())
    sign = -1.0 if t1 < t0 else 1.0  # ∫_T^0 of a positive integrand is negative
    return FlowOutput(x=hidden.to_x(state[:, :k]), delta_logp=state[:, k],
                      kinetic=sign * state[:, k + 1] if kinetic else None, path=path,
                      elements=[])


def integrate(potential: FlowPotential, x: Tensor, epsilon: float, steps: int, *,
              reverse: bool = False, kinetic: bool = False, group: SymmetryGroup | None = None,
              generator: torch.Generator | None = None,
              elements: list[tuple[Tensor, Tensor]] | None = None,
              record_every: int = 0, coordinates: str = "auto") -> FlowOutput:
    """Integrate (2)-(3) by RK4 from t = 0 to T = ε·steps (``reverse``: from T to 0).

    x: ``[n, d]`` in the potential's dtype; ``kinetic`` also integrates ‖∇ϕ‖². With
    ``group``, each step uses the field of ϕ̃∘g for one element g per sample, drawn from
    ``generator`` or replayed from ``elements`` (pass a forward run's ``elements[::-1]`` to
    invert it). ``record_every`` > 0 keeps the states every that many steps in ``path``.
    ``coordinates``: "x" integrates in x, "hidden" in u (x = x₀ + W₁ᵀu), "auto" in u when
    there is no group and h < d.
    """
    if x.dim() != 2 or x.shape[1] != potential.d:
        raise ValueError(f"integrate: x has shape {tuple(x.shape)}; expected [n, "
                         f"{potential.d}]")
    n, d = x.shape
    extra = 2 if kinetic else 1
    T = float(epsilon) * steps
    t0, t1 = (T, 0.0) if reverse else (0.0, T)
    if _uses_hidden(potential, group, coordinates):
        return _integrate_hidden(potential.hidden_field(x), x, t0, t1, steps, kinetic,
                                 record_every)
    sign = -1.0 if reverse else 1.0  # ∫_T^0 of a positive integrand is negative
    path: list[Tensor] = [x.detach().clone()] if record_every else []
    used: list[tuple[Tensor, Tensor]] = []
    state = torch.cat([x, x.new_zeros(n, extra)], dim=1)
    f = _rhs(potential, d, kinetic)
    if group is None and not record_every:
        state = rk4(f, state, t0, t1, steps)
    else:
        if group is not None and elements is None and generator is None:
            raise ValueError("integrate: a symmetry group needs a generator or elements")
        if elements is not None and len(elements) != steps:
            raise ValueError(f"integrate: {len(elements)} group elements for {steps} steps")
        h = (t1 - t0) / steps
        for i in range(steps):
            if group is not None:
                g = elements[i] if elements is not None else group.sample(n, generator)
                used.append(g)
                state = torch.cat([group.act(state[:, :d], *g), state[:, d:]], dim=1)
            state = rk4(f, state, t0 + i * h, t0 + (i + 1) * h, 1)
            if group is not None:
                state = torch.cat([group.act_inverse(state[:, :d], *g), state[:, d:]], dim=1)
            if record_every and ((i + 1) % record_every == 0 or i + 1 == steps):
                path.append(state[:, :d].detach().clone())
    return FlowOutput(x=state[:, :d], delta_logp=state[:, d],
                      kinetic=sign * state[:, d + 1] if kinetic else None,
                      path=path, elements=used)


def negative_log_likelihood(potential: SoftplusPotential, x: Tensor, epsilon: float,
                            steps: int, kinetic: bool = False
                            ) -> tuple[Tensor, FlowOutput]:
    """−ln p(x, T) ``[n]`` nats (eq. 6): integrate x ``[n, d]`` back to z = x(0).

    ln p(x, T) = ln N(z) − [ln p(z, 0) − ln p(x, T)] with the bracket the reverse run's
    delta_logp = ∫₀ᵀ ∇²ϕ dt.
    """
    out = integrate(potential, x, epsilon, steps, reverse=True, kinetic=kinetic)
    return out.delta_logp - standard_normal_log_prob(out.x), out


def sample_flow(potential: SoftplusPotential, z: Tensor, epsilon: float, steps: int, *,
                group: SymmetryGroup | None = None, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
    """Samples x(T) ``[n, d]`` and ln p(x, T) ``[n]`` from z ``[n, d]`` ~ N(0, I) (§4.2)."""
    out = integrate(potential, z, epsilon, steps, group=group, generator=generator)
    return out.x, standard_normal_log_prob(z) + out.delta_logp

