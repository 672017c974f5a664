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
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["Potential", "PotentialMLP"]

Potential = Callable[[Tensor], Tensor]
"""A scalar potential evaluated on a batch: ``[m, d]`` → ``[m]``."""


class PotentialMLP(nn.Module):
    """Scalar potential R^d → R: ``n_layers`` fully connected layers of ``width`` (App. D),
    softplus instead of App. D's ReLU (a C^∞ field, see the module docstring)."""

    def __init__(self, dim: int, width: int = 64, n_layers: int = 4) -> None:
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

    def forward(self, x: Tensor) -> Tensor:
        """Potential values: x ``[m, d]`` → ``[m]``."""
        return self.net(x).squeeze(-1)
