"""The convolutional input-augmented ICNN of CP-Flow's image models (Huang, Chen, Tsirigotis,
Courville, ICLR 2021, arXiv:2012.05942, §5.3 "Image Data": "we use convolutional layers in
place of fully connected layers").

:class:`ConvAugICNN` maps a flat image x ``[n, C·H·W]`` of shape (C, H, W) to F(x) ``[n]``,
convex in x. It is eq. (7) of the paper with every affine map a 3×3 convolution (stride 1,
padding 1) and the input augmentation of the input-augmented ICNN (§3.1, App. B):

    z₁ = s(n₁(A₁ ⋆ x)),
    zₖ = [s(nₖ(W⁺ₖ ⋆ zₖ₋₁ + Aₖ ⋆ x)), s(Gₖ ⋆ x)]              k = 2..K,
    F(x) = Σ_c q⁺_c · mean_pixels zₖ[c] + mean_pixels(b ⋆ x),

with W⁺ₖ = softplus(Vₖ)/fan_in (non-negative), q⁺ = softplus(u)/width, s = softplus
(convex, non-decreasing), and nₖ(a) = eˢ·a + t a per-channel normalisation with a *positive*
scale (so the unit stays convex in x). The normalisations and the first layer are
initialised from data (:meth:`ConvAugICNN.initialize_from_data`: pre-activations of mean 0
and standard deviation 1 per channel), as the published code's ActNorm layers inside its
convolutional ICNNs are (CW-Huang/CP-Flow, ``lib/icnn.py``, a fact of the reference code).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ConvAugICNN"]


def _param(shape: tuple[int, ...], bound: float, gen: torch.Generator | None,
           dtype: torch.dtype) -> nn.Parameter:
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    return nn.Parameter(((2.0 * u - 1.0) * bound).to(dtype))


class ConvAugICNN(nn.Module):
    """Convex F: flat images ``[n, C·H·W]`` → ``[n]`` (see the module docstring)."""

    def __init__(self, shape: tuple[int, int, int], width: int, depth: int,
                 dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        c, h, w = shape
        if width < 2 or depth < 1 or min(shape) < 1:
            raise ValueError(f"ConvAugICNN: shape={shape}, width={width}, depth={depth}; "
                             f"expected positive sizes, width >= 2, depth >= 1")
        self.shape, self.width, self.depth = (c, h, w), width, depth
        self.d = c * h * w
        self.n_conv = width - width // 2  # channels of the convex path s(n(W⁺z + Ax))
        bound = 1.0 / math.sqrt(9 * c)
        # every x-convolution at once: A₁ (width), then per layer k ≥ 2: Aₖ (n_conv) and
        # Gₖ (width − n_conv), then the linear term b (1 channel)
        self.n_x = width * depth + 1
        self.wx = _param((self.n_x, c, 3, 3), bound, generator, dtype)
        self.bx = _param((self.n_x,), bound, generator, dtype)
        self.wz = nn.ParameterList([_param((self.n_conv, width, 3, 3), 1.0, generator, dtype)
                                    for _ in range(depth - 1)])
        # per-channel normalisation of z₁ and of every convex-path layer: log-scale, shift
        self.log_scale = nn.Parameter(torch.zeros(depth, width, dtype=dtype))
        self.shift = nn.Parameter(torch.zeros(depth, width, dtype=dtype))
        self.wout = _param((width,), 1.0, generator, dtype)

    def _norm(self, k: int, a: Tensor) -> Tensor:
        ch = a.shape[1]
        return a * self.log_scale[k, :ch].exp()[:, None, None] + self.shift[k, :ch][:, None, None]

    def _pre(self, x: Tensor, record: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(h_K ``[n, width, H, W]``, b ⋆ x ``[n, H, W]``); ``record`` collects the
        un-normalised pre-activations of the convex path."""
        n = x.shape[0]
        ax = F.conv2d(x.reshape(n, *self.shape), self.wx, self.bx, padding=1)
        w, nc = self.width, self.n_conv
        pre = ax[:, :w]
        if record is not None:
            record.append(pre)
        h = F.softplus(self._norm(0, pre))
        for k, v in enumerate(self.wz):
            start = w + k * w
            pos = F.softplus(v) / (9 * w)  # W⁺ = softplus(V)/fan_in ≥ 0
            pre = F.conv2d(h, pos, padding=1) + ax[:, start:start + nc]
            if record is not None:
                record.append(pre)
            h = torch.cat([F.softplus(self._norm(k + 1, pre)),
                           F.softplus(ax[:, start + nc:start + w])], 1)
        return h, ax[:, -1]

    def forward(self, x: Tensor) -> Tensor:
        """F(x) ``[n]`` for flat images x ``[n, C·H·W]``."""
        h, linear = self._pre(x)
        q = F.softplus(self.wout) / self.width  # non-negative output weights
        return (h.mean((2, 3)) * q).sum(1) + linear.mean((1, 2))

    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        """Set every normalisation so that its channel's pre-activation has mean 0 and
        standard deviation 1 on ``x`` ``[n, C·H·W]``, layer by layer (scales stay positive,
        so F stays convex)."""
        self.log_scale.zero_()
        self.shift.zero_()
        for k in range(self.depth):
            record: list[Tensor] = []
            self._pre(x, record)
            pre = record[k]
            mean, std = pre.mean((0, 2, 3)), pre.std((0, 2, 3)).clamp_min(1e-6)
            ch = pre.shape[1]
            self.log_scale[k, :ch] = -std.log()
            self.shift[k, :ch] = -mean / std
