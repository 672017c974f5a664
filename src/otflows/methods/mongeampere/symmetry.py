"""The lattice symmetry group of the symmetrised Ising potential (Monge-Ampère flow, §4.2).

Zhang, E, Wang, arXiv:1809.10188, §4.2: ϕ(x) = |G|⁻¹ Σ_g ϕ̃(gx) over spin flip ×
translations × D4 of the L×L torus. Training samples one group element per sample and per
integration step (``otflows.methods.mongeampere.flow.integrate``); the exact average is kept
for checks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from otflows.data.ising import lattice_permutations
from otflows.methods.mongeampere.potential import SoftplusPotential

__all__ = ["SymmetryGroup", "symmetrized_potential"]


class SymmetryGroup:
    """Spin flip × translations × D4 of the L×L torus as signed site permutations (§4.2).

    An element is (index into :func:`lattice_permutations`, sign ±1) acting as
    (gx)ᵢ = sign · x[π(i)]; it is orthogonal, so g⁻¹ = gᵀ.
    """

    def __init__(self, L: int, device: torch.device | str = "cpu") -> None:
        perms = torch.as_tensor(lattice_permutations(L), device=device)
        self.L = L
        self.perms = perms  # [8L², N]
        self.inverse = torch.argsort(perms, dim=1)  # [8L², N]

    @property
    def order(self) -> int:
        """|G| = 2 · 8L² (with repetitions at L = 2)."""
        return 2 * self.perms.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n uniform elements: (permutation indices ``[n]``, signs ``[n, 1]``), from generator."""
        idx = torch.randint(0, self.perms.shape[0], (n,), generator=generator)
        sign = torch.randint(0, 2, (n, 1), generator=generator) * 2 - 1
        return idx.to(self.perms.device), sign.to(self.perms.device)

    def act(self, x: Tensor, idx: Tensor, sign: Tensor) -> Tensor:
        """g x for one element per row; x ``[n, N]``."""
        return x.gather(1, self.perms[idx]) * sign.to(x.dtype)

    def act_inverse(self, y: Tensor, idx: Tensor, sign: Tensor) -> Tensor:
        """g⁻¹ y for one element per row; y ``[n, N]``."""
        return y.gather(1, self.inverse[idx]) * sign.to(y.dtype)


def symmetrized_potential(potential: SoftplusPotential, group: SymmetryGroup, x: Tensor
                          ) -> Tensor:
    """ϕ(x) = |G|⁻¹ Σ_g ϕ̃(gx) over every element of ``group`` (§4.2); x ``[n, N]`` → ``[n]``.

    Exact but |G| times the cost: for checks; training samples one element per step.
    """
    n, N = x.shape
    moved = x[:, group.perms]  # [n, 8L², N]: (g x)ᵢ = x[π_g(i)]
    values = potential(torch.cat([moved, -moved], dim=1).reshape(-1, N)).reshape(n, -1)
    return values.mean(1)

