"""The two scalar potentials of EKP (Finlay et al., arXiv:2006.06033): ϕ on the data side
(t = 0) and ψ on the Gaussian side (t = 1), fully connected ReLU networks (App. D)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["Potential", "PotentialMLP"]

Potential = Callable[[Tensor], Tensor]
"""A scalar potential evaluated on a batch: ``[m, d]`` → ``[m]``."""


class PotentialMLP(nn.Module):
    """Scalar potential R^d → R: ``n_layers`` fully connected layers, ReLU, ``width`` (App. D)."""

    def __init__(self, dim: int, width: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"PotentialMLP: n_layers={n_layers}; expected >= 2 (input and "
                             f"output layer)")
        layers: list[nn.Module] = []
        d_in = dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            d_in = width
        layers.append(nn.Linear(d_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Potential values: x ``[m, d]`` → ``[m]``."""
        return self.net(x).squeeze(-1)
