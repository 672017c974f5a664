"""Q-flow's transport (Xu, Cheng, Xie, arXiv:2305.11857): the velocity field f(x, t; θ) of
eq. (1), its RK4 integration on the W₂ grid (§3.2), the W₂ path cost (7), the
linear-interpolant initial flow (§3.3) and the instantaneous change of variables.

The grid 0 = t₀ < … < t_K = 1 is uniform and every interval takes S fixed RK4 sub-steps
(``otflows.ode.rk4``); T_s^t (eq. (4)) is the solution map, the reverse map the same ODE
integrated backwards.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _recompute

from otflows.ode import rk4

__all__ = ["VelocityNet", "divergence_path", "flow_matching_loss", "grid_path", "path_cost"]


class VelocityNet(nn.Module):
    """f(x, t; θ) ``[n, d]`` (eq. (1)): an MLP on (x, t), SiLU, ``n_layers`` hidden layers.

    The time enters the first layer as t·w_t (a concatenated input), so a float t costs one
    fused ``addmm``.
    """

    def __init__(self, d: int, width: int, n_layers: int) -> None:
        super().__init__()
        self.d = d
        self.inp = nn.Linear(d, width)
        self.time = nn.Parameter(torch.empty(width).uniform_(-1.0, 1.0))
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(n_layers - 1))
        self.out = nn.Linear(width, d)
        self.evals = 0  # function evaluations (rows) since the last reset, §3.2's count

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x ``[n, d]``, t a float or ``[n, 1]`` → f ``[n, d]``."""
        self.evals += x.shape[0]
        if isinstance(t, Tensor):
            h = self.inp(x) + t * self.time
        else:
            h = torch.addmm(torch.add(self.inp.bias, self.time, alpha=float(t)), x,
                            self.inp.weight.t())
        h = nn.functional.silu(h)
        for layer in self.hidden:
            h = nn.functional.silu(layer(h))
        return self.out(h)


def grid_path(f: VelocityNet, x: Tensor, grid: Tensor, substeps: int, reverse: bool = False,
              recompute: bool = False) -> list[Tensor]:
    """States at every grid time: T_0^{t_k}(x) for k = 0..K (``reverse``: T_1^{t_k}(x) for
    k = K..0, listed in integration order). x ``[n, d]``; RK4 with ``substeps`` per interval.

    ``recompute`` (gradient checkpointing): autograd keeps only the grid states and re-runs
    one interval's RK4 stages during the backward pass, so the graph holds one interval's
    activations instead of K; same values and gradients, one extra forward pass."""
    times = grid.flip(0) if reverse else grid
    states = [x]
    for a, b in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        def step(y: Tensor, a: float = a, b: float = b) -> Tensor:
            return rk4(lambda t, z: f(z, t), y, a, b, substeps)

        if recompute and torch.is_grad_enabled():
            states.append(_recompute(step, states[-1], use_reentrant=False))
        else:
            states.append(step(states[-1]))
    return states


def path_cost(states: list[Tensor], grid: Tensor) -> Tensor:
    """Eq. (7): Σ_k mean‖X(t_k) − X(t_{k−1})‖² / h_k over consecutive states (scalar)."""
    h = (grid[1:] - grid[:-1]).abs()
    return sum(((b - a).square().sum(1).mean() / hk)
               for a, b, hk in zip(states[:-1], states[1:], h.tolist(), strict=True))


def flow_matching_loss(f: VelocityNet, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """§3.3's initial flow: mean ‖f(x_t, t) − (x₁ − x₀)‖² on the linear interpolant
    x_t = (1 − t)x₀ + t x₁ of independent x₀ ~ P, x₁ ~ Q ``[n, d]``, t ``[n, 1]`` (scalar)."""
    xt = (1 - t) * x0 + t * x1
    return (f(xt, t) - (x1 - x0)).square().sum(1).mean()


def divergence_path(f: VelocityNet, x: Tensor, grid: Tensor, substeps: int
                    ) -> tuple[Tensor, Tensor]:
    """(T_1^0 x ``[n, d]``, ℓ ``[n]``) with ℓ = ∫₀¹ ∇·f dt along the path, by RK4 on (x, ℓ)
    backwards over ``grid``; exact divergence by one autograd pass per dimension (2-D toys)."""
    d = x.shape[1]

    def rhs(t: float, state: Tensor) -> Tensor:
        with torch.enable_grad():
            y = state[:, :d].detach().requires_grad_(True)
            v = f(y, t)
            div = sum(torch.autograd.grad(v[:, i].sum(), y, retain_graph=i < d - 1)[0][:, i]
                      for i in range(d))
        return torch.cat([v.detach(), -div.detach()[:, None]], dim=1)

    state = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
    for a, b in zip(grid.flip(0)[:-1].tolist(), grid.flip(0)[1:].tolist(), strict=True):
        state = rk4(rhs, state, a, b, substeps)
    return state[:, :d], state[:, d]
