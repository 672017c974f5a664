"""Batched linear algebra with Hessian-vector products only: conjugate gradient, stochastic
Lanczos quadrature (SLQ) for log det, and the exact Hessian / log det of a scalar potential.

Used by CP-Flow (Huang et al., ICLR 2021, §3.1-3.2). Every routine works on a batch of
independent symmetric positive-definite matrices H_i ``[d, d]`` given only through
``hvp(V) -> [n, d]`` with row i equal to H_i V_i (one autograd call for the whole batch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CGResult", "conjugate_gradient", "exact_log_det", "hessian", "lanczos",
           "rademacher", "slq_log_det"]

HVP = Callable[[Tensor], Tensor]


@dataclass
class CGResult:
    """x ``[n, d]`` ≈ H⁻¹b; iterations run; residual ‖Hx − b‖_∞ per row ``[n]``."""

    x: Tensor
    iterations: int
    residual: Tensor


def rademacher(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
               device: torch.device | str = "cpu") -> Tensor:
    """Entries ±1 with probability 1/2 each, drawn from ``generator`` (on the CPU)."""
    r = torch.randint(0, 2, shape, generator=generator).to(device=device, dtype=dtype)
    return 2.0 * r - 1.0


def conjugate_gradient(hvp: HVP, b: Tensor, tol: float, max_iter: int) -> CGResult:
    """Solve H_i x_i = b_i for every row by CG (Nocedal & Wright Alg. 5.2), from x = 0.

    Stops a row once ‖H x − b‖_∞ < ``tol`` (the paper's criterion, §3.2) and the batch once
    every row has, or after ``max_iter`` iterations. b ``[n, d]``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(1)
    res = r.abs().amax(1)
    it = 0
    while it < max_iter and bool((res >= tol).any()):
        active = (res >= tol).to(b.dtype)
        hp = hvp(p)
        php = (p * hp).sum(1)
        step = torch.where(php > 0, rs / php.clamp_min(torch.finfo(b.dtype).tiny),
                           torch.zeros_like(rs)) * active
        x = x + step[:, None] * p
        r = r - step[:, None] * hp
        rs_new = (r * r).sum(1)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(b.dtype).tiny),
                           torch.zeros_like(rs))
        p = r + beta[:, None] * p
        rs = rs_new
        res = r.abs().amax(1)
        it += 1
    return CGResult(x=x, iterations=it, residual=res)


def lanczos(hvp: HVP, q0: Tensor, steps: int) -> Tensor:
    """``steps`` Lanczos steps from unit vectors q0 ``[n, d]`` with full reorthogonalisation;
    returns the tridiagonal matrices T ``[n, m, m]``, m = min(steps, d). A row whose Krylov
    space is exhausted early gets a decoupled identity block (it adds nothing to e₁ᵀf(T)e₁)."""
    n, d = q0.shape
    m = min(int(steps), d)
    eps = torch.finfo(q0.dtype).eps
    basis = [q0]
    alphas, betas = [], []
    alive = torch.ones(n, dtype=torch.bool, device=q0.device)
    q, q_prev, beta_prev = q0, torch.zeros_like(q0), torch.zeros(n, dtype=q0.dtype,
                                                                   device=q0.device)
    scale = None
    for j in range(m):
        w = hvp(q)
        a = (w * q).sum(1)
        if scale is None:
            scale = a.abs().clamp_min(eps)
        w = w - a[:, None] * q - beta_prev[:, None] * q_prev
        stack = torch.stack(basis, 1)  # [n, j+1, d]
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - torch.einsum("njd,nj->nd", stack, torch.einsum("njd,nd->nj", stack, w))
        alphas.append(torch.where(alive, a, torch.ones_like(a)))
        if j == m - 1:
            break
        b = w.norm(dim=1)
        broke = alive & (b <= 1e3 * eps * scale)
        alive = alive & ~broke
        b = torch.where(alive, b, torch.zeros_like(b))
        betas.append(b)
        q_prev, q = q, torch.where(alive[:, None], w / b.clamp_min(eps)[:, None],
                                   torch.zeros_like(w))
        beta_prev = b
        basis.append(q)
    t = torch.diag_embed(torch.stack(alphas, 1))
    if betas:
        off = torch.stack(betas, 1)
        t = t + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    return t


def slq_log_det(hvp: HVP, n: int, d: int, steps: int, probes: int,
                generator: torch.Generator, dtype: torch.dtype,
                device: torch.device | str = "cpu") -> Tensor:
    """Stochastic Lanczos quadrature (Ubaru et al. 2017; CP-Flow §3.1): log det H_i ≈
    mean over Rademacher probes v of ‖v‖² Σ_j τ_j² log θ_j, with (θ_j, τ_j) the eigenvalues
    and first eigenvector components of the Lanczos matrix T from v/‖v‖. Returns ``[n]``
    (nats). With ``steps`` ≥ d each probe's term equals vᵀ log(H) v exactly."""
    total = torch.zeros(n, dtype=dtype, device=device)
    for _ in range(probes):
        v = rademacher((n, d), generator, dtype, device)
        t = lanczos(hvp, v / d ** 0.5, steps)
        theta, u = torch.linalg.eigh(t)
        tau2 = u[:, 0, :].square()
        total = total + d * (tau2 * theta.clamp_min(torch.finfo(dtype).tiny).log()).sum(1)
    return total / probes


def hessian(potential: Callable[..., Tensor], x: Tensor, create_graph: bool = False,
            context: Tensor | None = None) -> Tensor:
    """Full Hessians ∇²F(x_i) ``[n, d, d]`` of a scalar potential F: ``[n, d] → [n]`` at
    x ``[n, d]``. Where ``potential`` has a closed form (``closed_form`` and ``hessian``, the
    fully connected ICNN) that is used; otherwise one double-backward call: x is replicated
    d times and row (i, j) receives e_j as its output gradient. ``create_graph`` keeps the
    graph (to backpropagate through log det)."""
    n, d = x.shape
    if getattr(potential, "closed_form", False):
        with torch.set_grad_enabled(create_graph):
            h = potential.hessian(x, context)
        return h if create_graph else h.detach()
    ctx = context.repeat_interleave(d, 0) if context is not None else None
    if create_graph and x.requires_grad:
        xr = x.repeat_interleave(d, 0)
    else:
        xr = x.detach().repeat_interleave(d, 0).requires_grad_(True)
    with torch.enable_grad():
        f = potential(xr, ctx) if ctx is not None else potential(xr)
        g = torch.autograd.grad(f.sum(), xr, create_graph=True)[0]
        eye = torch.eye(d, dtype=x.dtype, device=x.device).repeat(n, 1)
        h = torch.autograd.grad((g * eye).sum(), xr, create_graph=create_graph)[0]
    return h.reshape(n, d, d)


HESSIAN_CHUNK_ELEMENTS = 1 << 22
"""Rows of x per Hessian chunk in :func:`exact_log_det`: about this many elements of
``[rows, d, d]`` (32 MiB in float64), so memory does not grow with the batch."""


def exact_log_det(potential: Callable[..., Tensor], x: Tensor, create_graph: bool = False,
                  context: Tensor | None = None) -> Tensor:
    """log det ∇²F(x_i) ``[n]`` (nats) from the full Hessian by its Cholesky factor
    (2 Σ log L_jj), over chunks of rows (:data:`HESSIAN_CHUNK_ELEMENTS`).

    Raises ValueError where a Hessian is not positive definite."""
    n, d = x.shape
    rows = max(1, HESSIAN_CHUNK_ELEMENTS // (d * d))
    out = []
    for i in range(0, n, rows):
        ctx = context[i:i + rows] if context is not None else None
        h = hessian(potential, x[i:i + rows], create_graph, ctx)
        # Cholesky (H is symmetric positive definite for a strongly convex F): a failure is
        # exactly "not positive definite" (a sign test on det passes an even number of
        # negative eigenvalues), and MKL's batched LU behind slogdet printed SLASWP errors
        # and ran for minutes on 64 float32 Hessians at d = 784 (benchmarks/cpflow_logdet.py).
        chol, info = torch.linalg.cholesky_ex(h)  # reads the lower triangle only
        if bool((info > 0).any()):
            raise ValueError(f"exact_log_det: {int((info > 0).sum())} Hessian(s) not positive "
                             f"definite; the potential is not strongly convex there")
        out.append(2.0 * chol.diagonal(dim1=1, dim2=2).log().sum(1))
    return torch.cat(out) if len(out) > 1 else out[0]
