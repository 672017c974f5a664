"""The multi-block, multi-scale CP-Flow for images of Table 2 (Huang et al., ICLR 2021,
arXiv:2012.05942, §5.3 "Image Data": convolutional ICNNs, "we also compose multiple blocks
of CP-Flows").

Architecture (the published image model's defaults, CW-Huang/CP-Flow ``train_img.py``:
``--nblocks 3-3-3 --actnorm True --factor_out False``, facts of the reference code): for each
of ``PUBLISHED_SCALES`` = 3 scales, ``blocks`` times [per-channel ActNorm, then one CP-Flow
block f = ∇F_α with F a convolutional input-augmented ICNN (``otflows.nn.icnn_conv``)], and
a 2×2 squeeze (space to depth, (C, H, W) → (4C, H/2, W/2)) between scales. Every layer acts on
flat vectors ``[n, C·H·W]`` in its scale's layout, so the CP-Flow pieces of ``core`` (Alg. 1
inversion, Alg. 2 surrogate, SLQ) apply to each block unchanged.

log p(x) = log N(z; 0, I) + Σ_blocks log det ∇²F_α + Σ_actnorms H·W·Σ_c s_c (eq. 1; the
squeeze is a permutation, log det 0). ActNorms and the ICNNs' normalisations are initialised
from the first training batch (:meth:`ImageCPFlow.initialize`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from otflows.distributions import standard_normal_log_prob
from otflows.linalg import exact_log_det, slq_log_det
from otflows.methods.cpflow.core import (
    InversionResult,
    gradient_map,
    invert_potential,
    surrogate_log_det,
)
from otflows.nn.icnn import ConvexPotential
from otflows.nn.icnn_conv import ConvAugICNN

__all__ = ["IMAGE_SHAPES", "PUBLISHED_SCALES", "ActNorm", "ImageCPFlow", "image_shape",
           "squeeze", "unsqueeze"]

PUBLISHED_SCALES = 3  # train_img.py: --nblocks 3-3-3 (three scales)
IMAGE_SHAPES = {28 * 28: (1, 28, 28), 3 * 32 * 32: (3, 32, 32)}  # MNIST, CIFAR-10


def image_shape(d: int) -> tuple[int, int, int]:
    """(C, H, W) of a flat image of d values: MNIST (784) or CIFAR-10 (3072)."""
    if d not in IMAGE_SHAPES:
        raise ValueError(f"architecture 'multiscale' expects MNIST (d = 784) or CIFAR-10 "
                         f"(d = 3072) images; got d = {d}")
    return IMAGE_SHAPES[d]


def squeeze(x: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """Space to depth: flat ``[n, C·H·W]`` in (C, H, W) → flat in (4C, H/2, W/2)."""
    c, h, w = shape
    y = x.reshape(-1, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return y.reshape(x.shape[0], -1)


def unsqueeze(y: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """Inverse of :func:`squeeze`; ``shape`` is the (C, H, W) before squeezing."""
    c, h, w = shape
    x = y.reshape(-1, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(y.shape[0], -1)


class ActNorm(nn.Module):
    """Per-channel affine y = (x + t)·eˢ on flat images of shape (C, H, W); log det =
    H·W·Σ s (Glow's ActNorm, Kingma & Dhariwal 2018, as the published image model uses)."""

    def __init__(self, shape: tuple[int, int, int], dtype: torch.dtype) -> None:
        super().__init__()
        self.shape = shape
        self.log_scale = nn.Parameter(torch.zeros(shape[0], dtype=dtype))
        self.shift = nn.Parameter(torch.zeros(shape[0], dtype=dtype))

    def _view(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def forward(self, x: Tensor) -> Tensor:
        """y ``[n, C·H·W]``."""
        y = (self._view(x) + self.shift[:, None, None]) * self.log_scale.exp()[:, None, None]
        return y.reshape(x.shape[0], -1)

    def inverse(self, y: Tensor) -> Tensor:
        """x with forward(x) = y."""
        x = self._view(y) * (-self.log_scale).exp()[:, None, None] - self.shift[:, None, None]
        return x.reshape(y.shape[0], -1)

    def log_det(self) -> Tensor:
        """log |det ∂y/∂x| (the same for every row)."""
        return self.log_scale.sum() * (self.shape[1] * self.shape[2])

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Per channel: mean 0 and standard deviation 1 on ``x``."""
        v = self._view(x)
        mean, std = v.mean((0, 2, 3)), v.std((0, 2, 3)).clamp_min(1e-6)
        self.shift.copy_(-mean)
        self.log_scale.copy_(-std.log())


class ImageCPFlow(nn.Module):
    """Data → latent: [ActNorm, ∇F_α] × ``blocks`` per scale, squeeze between scales."""

    def __init__(self, shape: tuple[int, int, int], blocks: int, width: int, depth: int,
                 alpha: float, scales: int = PUBLISHED_SCALES,
                 dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        c, h, w = shape
        if blocks < 1 or scales < 1 or h % 2 ** (scales - 1) or w % 2 ** (scales - 1):
            raise ValueError(f"ImageCPFlow: shape {shape}, {scales} scales, {blocks} blocks: "
                             f"H and W must be divisible by 2^(scales - 1), blocks >= 1")
        self.d = c * h * w
        self.input_shape = shape
        self.plan: list[tuple[str, int, tuple[int, int, int]]] = []  # (kind, index, shape)
        pots, norms = [], []
        for s in range(scales):
            for _ in range(blocks):
                self.plan.append(("norm", len(norms), (c, h, w)))
                norms.append(ActNorm((c, h, w), dtype))
                self.plan.append(("block", len(pots), (c, h, w)))
                icnn = ConvAugICNN((c, h, w), width, depth, dtype, generator)
                pots.append(ConvexPotential(icnn, alpha=alpha))
            if s < scales - 1:
                self.plan.append(("squeeze", 0, (c, h, w)))
                c, h, w = 4 * c, h // 2, w // 2
        self.blocks = nn.ModuleList(pots)
        self.norms = nn.ModuleList(norms)
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent initialisation, layer by layer on the batch ``x`` ``[n, d]``."""
        h = x.detach()
        for kind, i, shape in self.plan:
            if kind == "norm":
                self.norms[i].initialize(h)
                h = self.norms[i](h)
            elif kind == "block":
                self.blocks[i].icnn.initialize_from_data(h)
                h = gradient_map(self.blocks[i], h).detach()
            else:
                h = squeeze(h, shape)
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """z = f(x) ``[n, d]`` (no graph kept)."""
        h = x.detach()
        for kind, i, shape in self.plan:
            if kind == "norm":
                with torch.no_grad():
                    h = self.norms[i](h)
            elif kind == "block":
                h = gradient_map(self.blocks[i], h).detach()
            else:
                h = squeeze(h, shape)
        return h

    def surrogate_nll(self, x: Tensor, generator: torch.Generator, cg_tol: float,
                      cg_max_iter: int, context: Tensor | None = None
                      ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """(objective ``[n]``, −log N(z) ``[n]``, CG logs); the objective's gradient is an
        unbiased estimate of ∇_θ NLL (Alg. 2 per block, exact ActNorm log dets)."""
        if not bool(self.initialized):
            self.initialize(x)
        h = x.detach()
        sur = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        iters, res = 0, 0.0
        for kind, i, shape in self.plan:
            if kind == "norm":
                h = self.norms[i](h)
                sur = sur + self.norms[i].log_det()
            elif kind == "block":
                if not h.requires_grad:
                    h = h.requires_grad_(True)
                out = surrogate_log_det(self.blocks[i], h, generator, cg_tol, cg_max_iter)
                sur = sur + out.surrogate
                iters, res = max(iters, out.cg_iterations), max(res, out.cg_residual)
                h = out.output
            else:
                h = squeeze(h, shape)
        prior = -standard_normal_log_prob(h)
        return prior - sur, prior, {"cg_iterations": float(iters), "cg_residual": res}

    def log_prob(self, x: Tensor, method: str, slq_steps: int = 0, slq_probes: int = 1,
                 generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> Tensor:
        """log p(x) ``[n]`` (nats), block log dets exact or by SLQ (no graph kept)."""
        if method not in ("exact", "slq"):
            raise ValueError(f"log_prob: method={method!r}; expected 'exact' or 'slq'")
        if method == "slq" and generator is None:
            raise ValueError("log_prob: SLQ needs a generator for its probes")
        h = x.detach()
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for kind, i, shape in self.plan:
            if kind == "norm":
                with torch.no_grad():
                    h = self.norms[i](h)
                    logdet = logdet + self.norms[i].log_det()
            elif kind == "squeeze":
                h = squeeze(h, shape)
            elif method == "exact":
                logdet = logdet + exact_log_det(self.blocks[i], h).detach()
                h = gradient_map(self.blocks[i], h).detach()
            else:
                with torch.enable_grad():
                    hx = h.detach().requires_grad_(True)
                    g = torch.autograd.grad(self.blocks[i](hx).sum(), hx, create_graph=True)[0]

                    def hvp(v: Tensor, g: Tensor = g, hx: Tensor = hx) -> Tensor:
                        return torch.autograd.grad(g, hx, v, retain_graph=True)[0]

                    logdet = logdet + slq_log_det(hvp, x.shape[0], x.shape[1], slq_steps,
                                                  slq_probes, generator, x.dtype,
                                                  x.device).detach()
                h = g.detach()
        return standard_normal_log_prob(h) + logdet

    def inverse(self, z: Tensor, tol: float, max_iter: int,
                context: Tensor | None = None) -> InversionResult:
        """x = f⁻¹(z), last layer first (Alg. 1 per block); error of the last block's solve
        per row, L-BFGS iterations summed."""
        h, iters = z.detach(), 0
        err = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for kind, i, shape in reversed(self.plan):
            if kind == "norm":
                with torch.no_grad():
                    h = self.norms[i].inverse(h)
            elif kind == "block":
                out = invert_potential(self.blocks[i], h, tol, max_iter)
                h, err, iters = out.x, out.error, iters + out.iterations
            else:
                h = unsqueeze(h, shape)
        return InversionResult(x=h, error=err, iterations=iters)

    def initialize_from_data(self, x: Tensor) -> None:
        """The trainer's name for :meth:`initialize`."""
        self.initialize(x)
