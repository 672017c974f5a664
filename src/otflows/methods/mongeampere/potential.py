"""The scalar potential of the Monge-Ampère flow and its exact gradient and Laplacian.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188, §3:
ϕ(x) = w₂ᵀσ(W₁x + b₁), σ = softplus, one hidden layer, with the closed-form gradient
∇ϕ = W₁ᵀ(w₂ ⊙ σ′(a)) and the exact Laplacian ∇²ϕ = Σₖ w₂ₖ σ″(aₖ)‖W₁ₖ‖², a = W₁x + b₁:
O(h·d) per point, no autograd loop over dimensions and no Hutchinson probe.

Since dx/dt = ∇ϕ = W₁ᵀv always lies in the row space of W₁, a path is x(t) = x₀ + W₁ᵀu(t)
with u ``[h]`` and a = a₀ + G u, G = W₁W₁ᵀ, a₀ = W₁x₀ + b₁: with h < d the flow can be
integrated in u (:meth:`SoftplusPotential.hidden_field`), O(h²) per point and stage instead
of O(h·d), the same RK4 in exact arithmetic (RK4 commutes with the affine map u ↦ x).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

__all__ = ["FlowPotential", "HiddenField", "PotentialDerivatives", "SoftplusPotential"]


@dataclass
class PotentialDerivatives:
    """Closed-form derivatives of ϕ: grad ``[n, d]`` = ∇ϕ, laplacian ``[n]`` = ∇²ϕ."""

    grad: Tensor
    laplacian: Tensor


@dataclass
class HiddenField:
    """The flow (2)-(3) in the coordinates u of x = x₀ + W₁ᵀu (module docstring).

    field: u ``[n, h]`` ↦ (du/dt = v = w₂ ⊙ σ′(a) ``[n, h]``, ∇²ϕ ``[n]``, ‖∇ϕ‖² = vᵀGv
    ``[n]`` or None) with a = a₀ + uG; to_x: u ``[n, h]`` ↦ x = x₀ + uW₁ ``[n, d]``.
    """

    width: int
    field: Callable[[Tensor, bool], tuple[Tensor, Tensor, Tensor | None]]
    to_x: Callable[[Tensor], Tensor]


class FlowPotential(Protocol):
    """What :func:`integrate` needs of a potential: its dimension and its vector field."""

    d: int

    def vector_field(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """x ``[n, d]`` ↦ (∇ϕ ``[n, d]``, ∇²ϕ ``[n]``)."""
        ...


class SoftplusPotential(nn.Module):
    """ϕ(x) = w₂ᵀ softplus(W₁x + b₁) with W₁ ``[h, d]``, b₁ ``[h]``, w₂ ``[h]`` (§3).

    Initialised like ``nn.Linear`` (uniform ±1/√fan_in) from an explicit generator.
    """

    def __init__(self, d: int, width: int, dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if d < 1 or width < 1:
            raise ValueError(f"SoftplusPotential: d={d}, width={width}; both must be >= 1")
        self.d, self.width = int(d), int(width)

        def uniform(shape: tuple[int, ...], bound: float) -> nn.Parameter:
            u = torch.rand(shape, generator=generator, dtype=torch.float64)
            return nn.Parameter(((2.0 * u - 1.0) * bound).to(dtype))

        self.weight = uniform((width, d), 1.0 / math.sqrt(d))  # W₁
        self.bias = uniform((width,), 1.0 / math.sqrt(d))  # b₁
        self.out = uniform((width,), 1.0 / math.sqrt(width))  # w₂

    def forward(self, x: Tensor) -> Tensor:
        """ϕ(x) for x ``[n, d]``; returns ``[n]``."""
        return nn.functional.softplus(torch.addmm(self.bias, x, self.weight.t())) @ self.out

    def derivatives(self, x: Tensor) -> PotentialDerivatives:
        """∇ϕ and ∇²ϕ at x ``[n, d]`` in closed form (no autograd over dimensions)."""
        grad, lap = _field(x, self.weight, self.bias, self.out, self._curvature())
        return PotentialDerivatives(grad=grad, laplacian=lap)

    def _curvature(self) -> Tensor:
        """w₂ₖ‖W₁ₖ‖² ``[h]``, the per-unit weight of σ″ in the Laplacian."""
        return self.out * self.weight.square().sum(1)

    def vector_field(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """x ``[n, d]`` ↦ (∇ϕ ``[n, d]``, ∇²ϕ ``[n]``), with w₂ₖ‖W₁ₖ‖² computed once (per
        integration, not per RK4 stage). Any object with ``d`` and this method can be
        integrated by :func:`integrate`."""
        weight, bias, out, curvature = self.weight, self.bias, self.out, self._curvature()
        return lambda x: _field(x, weight, bias, out, curvature)

    def hidden_field(self, x0: Tensor) -> HiddenField:
        """The flow from x₀ ``[n, d]`` in hidden coordinates u (x = x₀ + W₁ᵀu): G = W₁W₁ᵀ
        and a₀ = W₁x₀ + b₁ computed once per integration; worth it while h < d."""
        weight, out, curvature = self.weight, self.out, self._curvature()
        gram = weight @ weight.t()  # G = W₁W₁ᵀ [h, h]
        a0 = torch.addmm(self.bias, x0, weight.t())  # a₀ = W₁x₀ + b₁

        def field(u: Tensor, kinetic: bool) -> tuple[Tensor, Tensor, Tensor | None]:
            s = torch.sigmoid(torch.addmm(a0, u, gram))  # σ′(a), a = a₀ + Gu
            v = s * out  # ∇ϕ = W₁ᵀv
            lap = (s - s * s) @ curvature  # ∇²ϕ = Σₖ w₂ₖ σ″(aₖ)‖W₁ₖ‖²
            return v, lap, ((v @ gram) * v).sum(1) if kinetic else None  # ‖∇ϕ‖² = vᵀGv

        return HiddenField(width=self.width, field=field,
                           to_x=lambda u: torch.addmm(x0, u, weight))


def _field(x: Tensor, weight: Tensor, bias: Tensor, out: Tensor, curvature: Tensor
           ) -> tuple[Tensor, Tensor]:
    """(∇ϕ ``[n, d]``, ∇²ϕ ``[n]``): σ′ = sigmoid, σ″ = s(1 − s) for softplus."""
    s = torch.sigmoid(torch.addmm(bias, x, weight.t()))  # σ′(a), a = W₁x + b₁
    grad = (s * out) @ weight  # ∇ϕ = W₁ᵀ(w₂ ⊙ σ′(a))
    lap = (s - s * s) @ curvature  # ∇²ϕ = Σₖ w₂ₖ σ″(aₖ)‖W₁ₖ‖²
    return grad, lap

