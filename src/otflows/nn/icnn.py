"""Input-convex neural networks for Convex Potential Flows.

Huang, Chen, Tsirigotis, Courville, "Convex Potential Flows: Universal Probability
Distributions with Optimal Transport and Convex Optimization", ICLR 2021, arXiv:2012.05942.

* :class:`ICNN`: the input-augmented ICNN of eq. (7), fully connected, for vectors ``[n, d]``;
  with ``context > 0`` it is partially input convex (Amos et al. 2017): the context enters
  every affine-in-x term as an extra bias, so F(·; c) is convex for every c (Table 3's
  amortised posterior).
* :class:`ConvICNN`: the same architecture with 3×3 convolutions, for 28×28 images.
* :class:`ConvexPotential`: F_α(x) = α/2‖x‖² + β·F(x) with α = softplus(a), β = softplus(b)
  (§3.1, strong convexity: ∇²F_α ⪰ αI ≻ 0); both learned.

Positive layers L⁺ use W⁺ = softplus(V)/fan_in (non-negative, so a non-decreasing convex
activation keeps each unit convex in x). The activation is softplus-type (§3.1; the paper's
App. B is not in our copy): ``softplus`` s(a) = log(1 + eᵃ), or ``gaussian_softplus``
s(a) = E[max(0, a + ε)] = aΦ(a) + φ(a), ε ~ N(0, 1) (s′ = Φ, s″ = φ), the activation of the
published code per the issue's facts. α = softplus(a) is learned from its configured
starting value; the published code's α start, input ActNorm and first-layer variant differ
from ours (see ``otflows.methods.cpflow.core.ActNorm`` and the CP-Flow config).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "ConvICNN", "ConvexPotential", "ICNN", "activation_derivatives",
           "inverse_softplus"]


def inverse_softplus(y: float) -> float:
    """a with softplus(a) = y (y > 0)."""
    if y <= 0:
        raise ValueError(f"inverse_softplus: y={y}; expected y > 0")
    return y + math.log(-math.expm1(-y))


def _softplus_inverse(y: Tensor) -> Tensor:
    """Elementwise a with softplus(a) = y > 0."""
    return y + torch.log(-torch.expm1(-y))


ACTIVATIONS = ("softplus", "gaussian_softplus")
"""Softplus-type activations s (non-decreasing, convex, twice differentiable; §3.1)."""
_SQRT_2PI = math.sqrt(2.0 * math.pi)
HESSIAN_CHUNK = 1 << 20
"""Elements per row chunk of the closed-form Hessian's ``[rows, d, width]`` Jacobians (a
cache-sized chunk: 1 << 22 was 10-30 % slower at d = 43)."""


def activation_derivatives(name: str, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(s(a), s′(a), s″(a)) of the activation ``name`` elementwise."""
    if name == "softplus":
        sig = torch.sigmoid(a)
        return F.softplus(a), sig, torch.addcmul(sig, sig, sig, value=-1.0)  # σ(1 − σ)
    if name == "gaussian_softplus":  # E[max(0, a + ε)], ε ~ N(0, 1)
        pdf = torch.exp(-0.5 * a * a) / _SQRT_2PI
        cdf = 0.5 * (1.0 + torch.erf(a / math.sqrt(2.0)))
        return a * cdf + pdf, cdf, pdf
    raise ValueError(f"activation {name!r} unknown; expected one of {ACTIVATIONS}")


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    if name == "softplus":
        return F.softplus
    return lambda a: activation_derivatives(name, a)[0]


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator | None,
             dtype: torch.dtype) -> nn.Parameter:
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    return nn.Parameter(((2.0 * u - 1.0) * bound).to(dtype))


def _normal(shape: tuple[int, ...], mean: float, std: float, gen: torch.Generator | None,
            dtype: torch.dtype) -> nn.Parameter:
    z = torch.randn(shape, generator=gen, dtype=torch.float64)
    return nn.Parameter((mean + std * z).to(dtype))


class ICNN(nn.Module):
    """Input-augmented ICNN (eq. 7): x ``[n, d]`` (context c ``[n, context]``) → F(x) ``[n]``.

    h₁ = s(L₁x); for k = 2..K: h̃ₖ = s(L⁺ₖ hₖ₋₁ + Lₖx), h^gₖ = s(L^gₖ x), hₖ = [h̃ₖ, h^gₖ];
    F = L⁺_{K+1} h_K + L_{K+1} x. Every affine-in-x map of all layers is one matmul.
    ``width`` is the size of hₖ; h̃ₖ has width − width//2 units, h^gₖ width//2.
    """

    def __init__(self, d: int, width: int, depth: int, context: int = 0,
                 dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None,
                 activation: str = "softplus") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"ICNN: activation={activation!r}; expected one of {ACTIVATIONS}")
        self.activation = activation
        self.s = _activation(activation)
        if d < 1 or width < 2 or depth < 1 or context < 0:
            raise ValueError(f"ICNN: d={d}, width={width}, depth={depth}, context={context}; "
                             f"expected d >= 1, width >= 2, depth >= 1, context >= 0")
        self.d, self.width, self.depth, self.context = d, width, depth, context
        self.n_conv = width - width // 2  # units of h̃ₖ (the convex path)
        # Affine maps of x for: layer 1 (width), layers 2..K (width each: L_k and L^g_k),
        # and the output's linear term (1).
        self.n_affine = width * depth + 1
        bound = 1.0 / math.sqrt(d)
        self.wx = _uniform((self.n_affine, d), bound, generator, dtype)
        self.bx = _uniform((self.n_affine,), bound, generator, dtype)
        if context:
            self.wc = _uniform((self.n_affine, context), 1.0 / math.sqrt(context), generator,
                               dtype)
        # Positive maps L⁺ₖ: h_{k-1} (width) → h̃ₖ (n_conv); output L⁺_{K+1}: width → 1.
        self.wz = nn.ParameterList([_normal((self.n_conv, width), 0.0, 1.0, generator, dtype)
                                    for _ in range(depth - 1)])
        self.wout = _normal((1, width), 0.0, 1.0, generator, dtype)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """F(x) ``[n]`` for x ``[n, d]`` (and context ``[n, context]`` when configured)."""
        a = torch.addmm(self.bx, x, self.wx.t())
        if self.context:
            if context is None:
                raise ValueError("ICNN: this network is conditional; pass context [n, "
                                 f"{self.context}]")
            a = a + context @ self.wc.t()
        w, n_conv = self.width, self.n_conv
        s = self.s
        h = s(a[:, :w])  # h₁ = s(L₁x)
        if self.depth > 1:
            rest = a[:, w:-1].reshape(a.shape[0], self.depth - 1, w)
            aug = s(rest[:, :, n_conv:])  # h^gₖ = s(L^gₖ x), all layers at once
            for k, v in enumerate(self.wz):
                pos = F.softplus(v) / w  # W⁺ = softplus(V)/fan_in ≥ 0
                h = torch.cat([s(h @ pos.t() + rest[:, k, :n_conv]), aug[:, k]], 1)
        out = h @ (F.softplus(self.wout) / w).t()
        return out.squeeze(1) + a[:, -1]


    @torch.no_grad()
    def initialize_from_data(self, x: Tensor, context: Tensor | None = None) -> None:
        """Data-dependent initialisation (in the spirit of the ActNorm layers of the published
        code): rescale and shift every unit so that its pre-activation has mean 0 and std 1
        on ``x`` ``[n, d]``. Only positive factors multiply the positive weights (V is
        re-solved so that softplus(V) is scaled), so the network stays convex in x. It
        shortens the initial plateau where F_α stays nearly quadratic (8 Gaussians, 1500
        steps: test NLL 3.18 with it, 3.65 without)."""
        w, nc = self.width, self.n_conv

        def standardise(rows: slice, pre: Tensor) -> Tensor:
            mean, std = pre.mean(0), pre.std(0).clamp_min(1e-6)
            self.wx[rows] /= std[:, None]
            self.bx[rows] = (self.bx[rows] - mean) / std
            if self.context:
                self.wc[rows] /= std[:, None]
            return std

        def affine(rows: slice) -> Tensor:
            a = x @ self.wx[rows].t() + self.bx[rows]
            return a + context @ self.wc[rows].t() if self.context else a

        s = self.s
        standardise(slice(0, w), affine(slice(0, w)))
        h = s(affine(slice(0, w)))
        for k, v in enumerate(self.wz):
            start = w + k * w
            conv, aug = slice(start, start + nc), slice(start + nc, start + w)
            standardise(aug, affine(aug))
            pre = h @ (F.softplus(v) / w).t() + affine(conv)
            std = standardise(conv, pre)
            v.copy_(_softplus_inverse(F.softplus(v) / std[:, None]))
            h = torch.cat([s(h @ (F.softplus(v) / w).t() + affine(conv)), s(affine(aug))], 1)

    def _passes(self, x: Tensor, context: Tensor | None) -> dict:
        """The forward pass (pre-activations, s′, s″ of every unit) and the reverse pass
        (δₖ = ∂F/∂hₖ) shared by :meth:`derivatives` and :meth:`hessian`."""
        n = x.shape[0]
        a = torch.addmm(self.bx, x, self.wx.t())
        if self.context:
            if context is None:
                raise ValueError("ICNN: this network is conditional; pass context [n, "
                                 f"{self.context}]")
            a = a + context @ self.wc.t()
        w, nc, k1 = self.width, self.n_conv, self.depth - 1
        # split, not slices: its backward is one cat instead of zero-filled copies of a
        a1, rest, a_out = a.split([w, k1 * w, 1], 1)
        a_conv, a_aug = rest.reshape(n, k1, w).split([nc, w - nc], 2)
        a_conv = a_conv.unbind(1)  # unbind, not [:, k]: its backward stacks once
        pos = [F.softplus(v) / w for v in self.wz]  # W⁺ₖ
        q = F.softplus(self.wout[0]) / w  # output weights ≥ 0
        act = self.activation
        h, s1, c1 = activation_derivatives(act, a1)
        h_aug_all, s_aug_all, c_aug_all = activation_derivatives(act, a_aug)
        h_aug = h_aug_all.unbind(1)
        sig, curv = [], []
        for k in range(k1):
            hk, sk, ck = activation_derivatives(act, torch.addmm(a_conv[k], h, pos[k].t()))
            sig.append(sk)
            curv.append(ck)
            h = torch.cat([hk, h_aug[k]], 1)
        # reverse pass: δₖ = ∂F/∂hₖ (convex and augmented halves), from δ_K = q
        delta = q.expand(n, w)
        d_conv, d_aug, ga_conv = [None] * k1, [None] * k1, [None] * k1
        for k in reversed(range(k1)):
            d_conv[k], d_aug[k] = delta.split([nc, w - nc], 1)
            ga_conv[k] = d_conv[k] * sig[k]  # ∂F/∂a of the convex-path units
            delta = ga_conv[k] @ pos[k]
        return {"value": h @ q + a_out[:, 0], "pos": pos, "s1": s1, "c1": c1,
                "s_aug": s_aug_all, "c_aug": c_aug_all, "sig": sig, "curv": curv,
                "d_conv": d_conv, "d_aug": d_aug, "ga_conv": ga_conv, "delta1": delta}

    def hessian(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """∇²F(x) ``[n, d, d]`` in closed form. F is affine between its activations, so
        ∇²F = Σ_u δ_u s″(a_u) ∇a_u ∇a_uᵀ over every unit u (a_u its pre-activation,
        δ_u = ∂F/∂h_u ≥ 0). ∇a_u is a row of L (constant) for layer 1 and the augmented
        units, and is propagated forward layer by layer for the convex path; no copy of x
        per basis vector. The Jacobians are kept transposed, ``[n, d, units]``, so each
        layer's propagation is one matmul over n·d rows and its rank-``units`` term is one
        batched matmul added into the Hessian (no concatenation of all layers). Rows are
        processed in chunks of :data:`HESSIAN_CHUNK` elements of ``[rows, d, width]``
        (cache-sized: memory does not grow with the batch)."""
        n, d = x.shape
        w, nc, k1 = self.width, self.n_conv, self.depth - 1
        fixed = torch.cat([self.wx[:w]] + [self.wx[w + k * w + nc:w + (k + 1) * w]
                                            for k in range(k1)])  # constant ∇a rows
        if fixed.shape[0] * d * (d + 1) // 2 <= 4 * HESSIAN_CHUNK:  # products: <= 4 Mi numbers
            # Σ_u c_u l_u l_uᵀ as one matmul onto the upper triangle's d(d+1)/2 products,
            # mirrored into both triangles (half the work of all d² entries)
            iu = torch.triu_indices(d, d, device=x.device)
            products = fixed[:, iu[0]] * fixed[:, iu[1]]
            slots = (iu[0] * d + iu[1], iu[1] * d + iu[0])
        else:
            products = slots = None
        rows = max(1, HESSIAN_CHUNK // (w * d))
        out = []
        for i in range(0, n, rows):
            xi = x[i:i + rows]
            p = self._passes(xi, None if context is None else context[i:i + rows])
            c_fixed = torch.cat([p["delta1"] * p["c1"]] + [p["d_aug"][k] * p["c_aug"][:, k]
                                                           for k in range(k1)], 1)
            if products is not None:
                upper = c_fixed @ products
                h = xi.new_empty(xi.shape[0], d * d)
                h = h.index_copy(1, slots[0], upper).index_copy(1, slots[1], upper)
                h = h.view(-1, d, d)
            else:  # Lᵀ diag(c) L, one matmul over rows·d rows
                h = torch.matmul(fixed.t() * c_fixed[:, None, :], fixed)
            out.append(self._add_convex_path(h, p))
        return torch.cat(out) if len(out) > 1 else out[0]

    def _add_convex_path(self, h: Tensor, p: dict) -> Tensor:
        """h ``[n, d, d]`` + Σ over the convex-path units of δ s″ ∇a ∇aᵀ (:meth:`hessian`)."""
        w, nc, wx = self.width, self.n_conv, self.wx
        jt = p["s1"][:, None, :] * wx[:w].t()  # (∇h₁)ᵀ = ∇a₁ᵀ s′(a₁) ``[n, d, w]``
        for k, pos in enumerate(p["pos"]):
            lo = w + k * w
            if k == 0:
                ja = torch.matmul(jt, pos.t())  # (∇a)ᵀ of the convex path ``[n, d, nc]``
            else:  # h_{k-1} = [h̃, h^g]: two matmuls instead of a concatenation
                ja = torch.matmul(jt * p["sig"][k - 1][:, None, :], pos[:, :nc].t())
                wg = wx[lo - w + nc:lo].t()  # ∇a of the previous layer's augmented units
                ja = ja + torch.matmul(wg * p["s_aug"][:, k - 1, None, :], pos[:, nc:].t())
            ja = ja + wx[lo:lo + nc].t()
            coef = p["d_conv"][k] * p["curv"][k]
            h = torch.baddbmm(h, ja * coef[:, None, :], ja.transpose(1, 2))  # + Σ c ∇a ∇aᵀ
            jt = ja
        return h

    def derivatives(self, x: Tensor, context: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
        """(F(x) ``[n]``, ∇F(x) ``[n, d]``, v ↦ ∇²F(x)v ``[n, d] → [n, d]``) in closed form:
        ∇F by a hand-written reverse pass, ∇²F v by its forward-mode tangent (so autograd
        differentiates once, w.r.t. θ, instead of two or three nested times). σ = s′ is the
        activation's s′ (the sigmoid for softplus), σ′ = s″."""
        n = x.shape[0]
        p = self._passes(x, context)
        w, nc, k1 = self.width, self.n_conv, self.depth - 1
        pos, sig, curv, delta1 = p["pos"], p["sig"], p["curv"], p["delta1"]
        s1, c1, s_aug_all, c_aug_all = p["s1"], p["c1"], p["s_aug"], p["c_aug"]
        s_aug = s_aug_all.unbind(1)
        value = p["value"]
        ga_conv = p["ga_conv"]
        ga_aug = [p["d_aug"][k] * s_aug[k] for k in range(k1)]
        # ∇F = Lᵀ(∂F/∂a), one matmul over every affine map, laid out as the rows of L
        pieces = [t for k in range(k1) for t in (ga_conv[k], ga_aug[k])]
        wx, w_out = self.wx.split([self.n_affine - 1, 1])
        wxt = wx.t()
        grad = torch.addmm(w_out[0], torch.cat([delta1 * s1, *pieces], 1), wx)
        # δ ⊙ s″ of every unit, shared by every hvp call
        dc1 = delta1 * c1
        dc_conv = [p["d_conv"][k] * curv[k] for k in range(k1)]
        dc_aug = torch.stack(p["d_aug"], 1) * c_aug_all if k1 else None

        def hvp(v: Tensor) -> Tensor:
            ad = v @ wxt  # ȧ (tangent of every affine map but the output's)
            ad1, rd = ad.split([w, k1 * w], 1)
            ad_conv, ad_aug = rd.reshape(n, k1, w).split([nc, w - nc], 2)
            ad_conv = ad_conv.unbind(1)
            hd_aug = (s_aug_all * ad_aug).unbind(1)
            # ∂/∂δ part of the aug units' gradient tangent, all layers at once
            curv_aug = (dc_aug * ad_aug).unbind(1) if k1 else ()
            hd = s1 * ad1
            pred = []
            for k in range(k1):
                pd = torch.addmm(ad_conv[k], hd, pos[k].t())
                pred.append(pd)
                hd = torch.cat([sig[k] * pd, hd_aug[k]], 1)
            dd = None  # δ̇_K = 0: the last layer's terms without it
            out = [None] * (2 * k1)
            for k in reversed(range(k1)):
                ud = dc_conv[k] * pred[k]
                gg = curv_aug[k]
                if dd is not None:
                    dd_conv, dd_aug = dd.split([nc, w - nc], 1)
                    ud = torch.addcmul(ud, dd_conv, sig[k])
                    gg = torch.addcmul(gg, dd_aug, s_aug[k])
                out[2 * k], out[2 * k + 1] = ud, gg
                dd = ud @ pos[k]
            g1 = dc1 * ad1 if dd is None else torch.addcmul(dc1 * ad1, dd, s1)
            return torch.cat([g1, *out], 1) @ wx

        return value, grad, hvp


class ConvICNN(nn.Module):
    """Convolutional input-augmented ICNN for images: x ``[n, C·H·W]`` → F(x) ``[n]``.

    The layers of eq. (7) with 3×3 convolutions (stride 1, padding 1): the convex path uses
    non-negative kernels softplus(V)/fan_in; the output is a non-negative per-channel
    weighting of h_K averaged over pixels plus a linear term wᵀx.
    """

    def __init__(self, shape: tuple[int, int, int], width: int, depth: int,
                 dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        c, hgt, wid = shape
        if width < 2 or depth < 1:
            raise ValueError(f"ConvICNN: width={width}, depth={depth}; expected width >= 2, "
                             f"depth >= 1")
        self.shape, self.width, self.depth = (c, hgt, wid), width, depth
        self.d = c * hgt * wid
        self.n_conv = width - width // 2
        bound = 1.0 / math.sqrt(9 * c)
        self.wx = _uniform((width * depth, c, 3, 3), bound, generator, dtype)
        self.bx = _uniform((width * depth,), bound, generator, dtype)
        self.wz = nn.ParameterList([_normal((self.n_conv, width, 3, 3), 0.0, 1.0, generator,
                                            dtype) for _ in range(depth - 1)])
        self.wout = _normal((width,), 0.0, 1.0, generator, dtype)
        self.wlin = _uniform((self.d,), 1.0 / self.d, generator, dtype)

    def forward(self, x: Tensor) -> Tensor:
        """F(x) ``[n]`` for flat images x ``[n, C·H·W]``."""
        n = x.shape[0]
        img = x.reshape(n, *self.shape)
        a = F.conv2d(img, self.wx, self.bx, padding=1)  # every affine-in-x map at once
        w, n_conv = self.width, self.n_conv
        h = F.softplus(a[:, :w])
        for k, v in enumerate(self.wz):
            ak = a[:, (k + 1) * w:(k + 2) * w]
            pos = F.softplus(v) / (9 * w)
            h = torch.cat([F.softplus(F.conv2d(h, pos, padding=1) + ak[:, :n_conv]),
                           F.softplus(ak[:, n_conv:])], 1)
        out = (h.mean((2, 3)) * (F.softplus(self.wout) / w)).sum(1)
        return out + x @ self.wlin


class ConvexPotential(nn.Module):
    """F_α(x) = α/2‖x‖² + β·F(x), α = softplus(a), β = softplus(b) (§3.1); x ``[n, d]`` →
    ``[n]``. ∇F_α is one CP-Flow block; its Jacobian ∇²F_α ⪰ αI is positive definite."""

    def __init__(self, icnn: nn.Module, alpha: float = 1.0, beta: float = 1.0) -> None:
        super().__init__()
        self.icnn = icnn
        self.d = int(icnn.d)
        dtype = next(icnn.parameters()).dtype
        self.a = nn.Parameter(torch.tensor(inverse_softplus(alpha), dtype=dtype))
        self.b = nn.Parameter(torch.tensor(inverse_softplus(beta), dtype=dtype))

    @property
    def alpha(self) -> Tensor:
        """The strong-convexity constant α = softplus(a) (a scalar tensor)."""
        return F.softplus(self.a)

    @property
    def closed_form(self) -> bool:
        """Whether the ICNN provides closed-form derivatives (the fully connected one)."""
        return hasattr(self.icnn, "derivatives")

    def derivatives(self, x: Tensor, context: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
        """(F_α(x) ``[n]``, ∇F_α(x) ``[n, d]``, v ↦ ∇²F_α(x)v) with ∇²F_α = αI + β∇²F."""
        alpha, beta = self.alpha, F.softplus(self.b)
        value, grad, hvp = self.icnn.derivatives(x, context)
        return (0.5 * alpha * x.square().sum(1) + beta * value, alpha * x + beta * grad,
                lambda v: alpha * v + beta * hvp(v))

    def hessian(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """∇²F_α(x) = αI + β∇²F(x) ``[n, d, d]`` (closed form, :meth:`ICNN.hessian`)."""
        h = F.softplus(self.b) * self.icnn.hessian(x, context)
        return h + self.alpha * torch.eye(self.d, dtype=h.dtype, device=h.device)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """F_α(x) ``[n]``."""
        inner = self.icnn(x, context) if context is not None else self.icnn(x)
        return 0.5 * self.alpha * x.square().sum(1) + F.softplus(self.b) * inner
