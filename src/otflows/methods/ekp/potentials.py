"""The two scalar potentials of EKP (Finlay et al., arXiv:2006.06033): ϕ on the data side
(t = 0) and ψ on the Gaussian side (t = 1), fully connected networks (App. D).

Departure from App. D (ReLU): the activation is softplus. The CNF likelihood of eq. (8)
integrates ∇·v_t, v_t = ∇(ψ_t − ϕ_t)/2 (eq. 18), with the heat kernels of eq. (16) taken by
Monte-Carlo at fixed points y + √s ξ_i. With ReLU, ϕ and ψ are piecewise linear: their whole
curvature sits on the kinks, v_t jumps across them, and the exact (autograd) divergence, zero
curvature almost everywhere, misses that singular part. The pushforward of N(0, I) then no
longer matches its computed density: on the default profile's checkerboard the CNF density
integrated to 6.56 on [-6, 6]² (test NLL 2.56 nats < ln 32), while the mean finite-difference
divergence differed from the autograd one by ~1.5 at every t. A smooth activation makes v_t
C^∞ and the exact divergence the true one (mass 0.99); tests/methods/test_ekp.py pins it.

Second departure (issue 19): each potential is the network plus a fixed quadratic,
ϕ(x) = net(x) − ε‖x − m‖²/(2v) with the training data's mean m and variances v, and
ψ(y) = net(y) − ε‖y‖²/2 (= ε log ν up to a constant). The dual of eq. (12) lives on
L^exp_ε, ∫ e^{ϕ/ε} dx < ∞; a network started near a constant is not in it, the coupling
∫∫ e^{(ϕ+ψ−c)/ε} dx dy is infinite, and its importance-sampling estimate under ν has weights
e^{(ψ − ϕ^(c,ε))/ε} ∝ 1/ν(z), unbounded. On App. C's Gaussian pair (Σ0 = diag(0.25, 1.5),
Σ1 = I, ε = 1) 800 steps at lr 1e-3 then left ρ_0 of eq. (17) with variances (8.6, 9.4)
instead of (0.25, 1.5); with the quadratic the same steps give (0.24, 1.53) and ρ_1 = N(0, I)
within 3 % (tests/methods/test_ekp_training.py). The quadratic has no free parameter, the
network can cancel it, and the optimal pair is the same set of functions. It is config key
``quadratic_base``, off by default: on the default checkerboard (batch 256, N = 64, α 0.256)
training blows up at ~210–250 steps: ϕ(0) grows and ψ(0) falls geometrically (×1.1 a step;
by step 250 ϕ(0) 28, ψ(0) −57, residual 0.9 → 17; 0.3 % of samples in the cells). Not the
Jensen bias of eq. (19)'s MC log-mean-exp (E[−ε log m̂] − (−ε log m), measured): ≤ 0.005 nats
on the ϕ side until the runaway starts, which starts at the same step with N = 256 as with
N = 64. On the ψ side (E_μ ψ^(c,ε), log-weights spread ~‖x‖ at the data) it is 0.11–0.15
nats from the start; sampling the quadratic's heat kernel exactly removed it (≤ 0.0005),
yet the runaway still started at ~240 steps, and App. C's Gaussian pair got worse (ρ_0
variance 1.72 for 1.5), so that sampler was not kept.
Nor the L2 penalty: it also blows up with α 10× smaller. With ψ frozen at ε log ν the
ϕ-steps alone stay stable for 400 steps (dual −4.6 → −3.1, ϕ(0) → −5): the runaway comes
from the ψ-steps of the alternating ascent (eq. 21), still open (issue 19).
What the ascent exploits (tests/methods/test_ekp_mc_transform.py): eq. (19)'s ε log of an
N-sample mean overestimates the transforms by a Jensen bias that grows without bound as a
potential peaks against the proposal N(·, ε). For ψ = −ε‖y‖²/(2q) on the checkerboard the
exact semi-dual I falls 2.37 → −24.6 from q = 1 to 0.03 while its N = 64 estimate rises
2.45 → 7.18; ψ's semi-dual ascent alone collapses ρ_1 (covariance 0.85 → 0.001 in 400
steps). Sampling ψ's side from N(x/(1+ε), ε/(1+ε)) (exact for the quadratic) stops that
collapse but not the alternating run's blow-up at ~250 steps; ψ fitted to ϕ^(c,ε) with ϕ on
its semi-dual (eq. 15) is stable to 500 steps, then ϕ peaks: J reads −1.0 with N = 64 but
−14.6 with N = 4096. Metric ``semi_dual_mc_bias`` (J at N minus J at 16N) reports it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["Potential", "PotentialMLP"]

Potential = Callable[[Tensor], Tensor]
"""A scalar potential evaluated on a batch: ``[m, d]`` → ``[m]``."""


class PotentialMLP(nn.Module):
    """Scalar potential R^d → R: ``n_layers`` fully connected layers of ``width`` (App. D),
    softplus instead of App. D's ReLU, and with eps > 0 plus the fixed quadratic
    −ε‖x − mean‖²/(2 var) that keeps e^{ϕ/ε} integrable (both departures: the module
    docstring; the quadratic is config key ``quadratic_base``, off by default)."""

    def __init__(self, dim: int, width: int = 64, n_layers: int = 4, eps: float = 0.0,
                 mean: Tensor | None = None, var: Tensor | None = None) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"PotentialMLP: n_layers={n_layers}; expected >= 2 (input and "
                             f"output layer)")
        layers: list[nn.Module] = []
        d_in = dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(d_in, width), nn.Softplus()]
            d_in = width
        layers.append(nn.Linear(d_in, 1))
        self.net = nn.Sequential(*layers)
        # eps > 0: the fixed quadratic −ε‖x − mean‖²/(2 var) (module docstring; N(0, I) when
        # mean/var are None). eps = 0: the network alone (no buffers: old checkpoints load).
        self.eps = float(eps)
        if self.eps > 0:
            self.register_buffer("mean", torch.zeros(dim) if mean is None
                                 else torch.as_tensor(mean, dtype=torch.float32).clone())
            self.register_buffer("var", torch.ones(dim) if var is None
                                 else torch.as_tensor(var, dtype=torch.float32).clone())

    def forward(self, x: Tensor) -> Tensor:
        """Potential values: x ``[m, d]`` → ``[m]``."""
        out = self.net(x).squeeze(-1)
        if self.eps > 0:
            out = out - self.eps * ((x - self.mean) ** 2 / (2 * self.var)).sum(-1)
        return out
