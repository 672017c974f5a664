"""The CP-Flow map and its three numerical pieces (Huang et al., ICLR 2021, arXiv:2012.05942).

* :class:`CPFlow`: blocks f_k = ∇F_{α,k} (§3.1) composed data → latent, z = f_K∘…∘f_1(x),
  log p(x) = log N(z; 0, I) + Σ_k log det ∇²F_k (change of variables, eq. 1), each block
  optionally preceded by a data-initialised :class:`ActNorm` (its log det counted);
* :func:`invert_potential`: Algorithm 1, minimise F_α(x) − yᵀx by L-BFGS with a strong-Wolfe
  line search, the batch summed into one objective;
* :func:`surrogate_log_det`: Algorithm 2, z = stop-grad CG(H, v) for a Rademacher probe v and
  the surrogate hvp(z)ᵀv whose gradient is an unbiased estimate of ∇_θ log det H (eq. 3-4);
* log det at evaluation: SLQ or the exact log det (``otflows.linalg``).

Hessian-vector products are batched: H_i v_i for every sample comes from one autograd call
on ∇F summed over the batch (the samples are independent).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from otflows.distributions import standard_normal_log_prob
from otflows.linalg import conjugate_gradient, exact_log_det, rademacher, slq_log_det
from otflows.nn.icnn import ConvexPotential

__all__ = ["ActNorm", "CPFlow", "InversionResult", "LogDetMethod", "SurrogateResult",
           "compiled_surrogate_log_det", "gradient_map", "invert_potential",
           "surrogate_log_det"]


def gradient_map(potential: nn.Module, x: Tensor, context: Tensor | None = None,
                 create_graph: bool = False) -> Tensor:
    """f(x) = ∇F_α(x) ``[n, d]``; x must require grad when ``create_graph`` is set.
    Closed form where the potential has one (no autograd through x)."""
    if getattr(potential, "closed_form", False):
        if create_graph:
            return potential.derivatives(x, context)[1]
        with torch.no_grad():
            return potential.derivatives(x, context)[1]
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        f = potential(x, context) if context is not None else potential(x)
        return torch.autograd.grad(f.sum(), x, create_graph=create_graph)[0]


@dataclass
class SurrogateResult:
    """Per-sample surrogate hvp(z)ᵀv ``[n]`` (differentiable), the block output ∇F(x)
    ``[n, d]`` (differentiable), CG iterations and the final CG residual ‖Hz − v‖_∞ (max)."""

    surrogate: Tensor
    output: Tensor
    cg_iterations: int
    cg_residual: float


def surrogate_log_det(potential: nn.Module, x: Tensor, generator: torch.Generator,
                      cg_tol: float, cg_max_iter: int,
                      context: Tensor | None = None) -> SurrogateResult:
    """Algorithm 2 at x ``[n, d]`` (x requires grad, or is a leaf that will be made to).

    g = ∇F(x) with its graph; v Rademacher; z = CG(hvp, v) without a graph; the returned
    surrogate vᵀ(Hz) has d/dθ = vᵀ(∂H/∂θ)H⁻¹v, whose mean over v is ∂ log det H/∂θ (eq. 3).
    """
    v = rademacher(tuple(x.shape), generator, x.dtype, x.device)
    if getattr(potential, "closed_form", False):  # closed-form ∇F and Hv, batched
        _, g, closed_hvp = potential.derivatives(x, context)
        with torch.no_grad():
            cg = conjugate_gradient(closed_hvp, v, cg_tol, cg_max_iter)
        hz = closed_hvp(cg.x.detach())  # H z, with graph
        return SurrogateResult(surrogate=(hz * v).sum(1), output=g,
                               cg_iterations=cg.iterations,
                               cg_residual=float(cg.residual.max()))
    if not x.requires_grad:
        x = x.requires_grad_(True)
    f = potential(x, context) if context is not None else potential(x)
    g = torch.autograd.grad(f.sum(), x, create_graph=True)[0]

    def hvp(u: Tensor) -> Tensor:  # H_i u_i for every row, one call (no graph)
        return torch.autograd.grad(g, x, u, retain_graph=True)[0]

    with torch.no_grad():
        cg = conjugate_gradient(hvp, v, cg_tol, cg_max_iter)
    hz = torch.autograd.grad(g, x, cg.x.detach(), create_graph=True)[0]  # H z, with graph
    return SurrogateResult(surrogate=(hz * v).sum(1), output=g, cg_iterations=cg.iterations,
                           cg_residual=float(cg.residual.max()))


@functools.cache
def compiled_surrogate_log_det() -> Callable[..., SurrogateResult]:
    """:func:`surrogate_log_det` through ``torch.compile`` (Inductor, static shapes), built
    once per process: the same algorithm, with its elementwise work fused forward and
    backward. Not bitwise equal to eager (fused kernels round differently); deterministic on
    CPU. Compiles once per batch shape and per x.requires_grad (first block or later ones):
    ~15-50 s on 2 CPU cores, less from Inductor's on-disk cache. Measured in
    ``benchmarks/cpflow_step.py``; ``compile`` in the params turns it on."""
    # The CG's stopping test reads one scalar per iteration (its iteration count depends on
    # the data), a graph break by design; Dynamo warns of it at each compile.
    logging.getLogger("torch._dynamo.variables.tensor").setLevel(logging.ERROR)
    return torch.compile(surrogate_log_det, dynamic=False)


@dataclass
class InversionResult:
    """x ``[n, d]`` with ∇F(x) ≈ y; error ‖∇F(x) − y‖_∞ per row ``[n]``; L-BFGS iterations."""

    x: Tensor
    error: Tensor
    iterations: int


def invert_potential(potential: nn.Module, y: Tensor, tol: float, max_iter: int,
                     context: Tensor | None = None, history_size: int = 20) -> InversionResult:
    """Algorithm 1: x* = argmin_x F_α(x) − yᵀx for every row of y ``[n, d]``, by L-BFGS
    (strong Wolfe) on the batch sum, from x = y. Stops when max ‖∇F(x) − y‖_∞ ≤ ``tol``."""
    y = y.detach()
    x = y.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
                            tolerance_grad=tol, tolerance_change=0.0,
                            history_size=history_size, line_search_fn="strong_wolfe")

    closed = getattr(potential, "closed_form", False)

    def objective() -> Tensor:
        if closed:
            with torch.no_grad():
                f, g, _ = potential.derivatives(x, context)
                x.grad = g - y
                return (f - (y * x).sum(1)).sum()
        with torch.enable_grad():
            f = potential(x, context) if context is not None else potential(x)
            loss = (f - (y * x).sum(1)).sum()
            x.grad = torch.autograd.grad(loss, x)[0]
        return loss.detach()

    opt.step(objective)
    iters = int(opt.state[x].get("n_iter", 0))  # x is the optimiser's one parameter
    x = x.detach()
    err = (gradient_map(potential, x, context) - y).abs().amax(1)
    return InversionResult(x=x, error=err.detach(), iterations=iters)


LogDetMethod = str  # "exact" | "slq"


class ActNorm(nn.Module):
    """Per-dimension affine input scaling x̃ = (x − m)/s before a convex block, s = exp(ℓ),
    data-initialised to zero mean and unit variance, trained with the flow; its log det
    −Σℓ enters the change of variables (eq. 1). The published CP-Flow code puts one before
    each convex block (the issue's facts; Kingma & Dhariwal 2018's ActNorm)."""

    def __init__(self, d: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(d, dtype=dtype))
        self.log_scale = nn.Parameter(torch.zeros(d, dtype=dtype))

    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        """m = mean of x ``[n, d]``, s = its standard deviation per dimension."""
        self.shift.copy_(x.mean(0))
        self.log_scale.copy_(x.std(0).clamp_min(1e-6).log())

    def forward(self, x: Tensor) -> Tensor:
        """x̃ = (x − m)/s ``[n, d]``."""
        return (x - self.shift) * torch.exp(-self.log_scale)

    def log_det(self) -> Tensor:
        """log det ∂x̃/∂x = −Σℓ (a scalar, the same for every row)."""
        return -self.log_scale.sum()

    def inverse(self, y: Tensor) -> Tensor:
        """x = m + s ⊙ y."""
        return self.shift + y * torch.exp(self.log_scale)


class CPFlow(nn.Module):
    """Composition of CP-Flow blocks, data → latent: z = f_K∘…∘f_1(x), f_k = ∇F_{α,k}, each
    optionally preceded by an :class:`ActNorm` (``actnorm``)."""

    def __init__(self, potentials: list[ConvexPotential], actnorm: bool = False) -> None:
        super().__init__()
        if not potentials:
            raise ValueError("CPFlow: needs at least one block")
        self.blocks = nn.ModuleList(potentials)
        self.d = potentials[0].d
        dtype = next(potentials[0].parameters()).dtype
        self.norms = nn.ModuleList([ActNorm(self.d, dtype) for _ in potentials]
                                   if actnorm else [])

    def _norm(self, k: int, h: Tensor) -> tuple[Tensor, Tensor | float]:
        """(x̃, log det) of block k's input scaling (identity and 0 without ActNorm)."""
        if not self.norms:
            return h, 0.0
        return self.norms[k](h), self.norms[k].log_det()

    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        """Data-dependent initialisation, block by block: ActNorm to zero mean and unit
        variance, then the ICNN's units (``ICNN.initialize_from_data``) where it has one."""
        h = x
        for k, pot in enumerate(self.blocks):
            if self.norms:
                self.norms[k].initialize_from_data(h)
            h = self._norm(k, h)[0]
            if hasattr(pot.icnn, "initialize_from_data"):
                pot.icnn.initialize_from_data(h)
            h = gradient_map(pot, h).detach()

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """z = f(x) ``[n, d]`` (no graph kept)."""
        h = x
        for k, pot in enumerate(self.blocks):
            with torch.no_grad():
                h = self._norm(k, h)[0]
            h = gradient_map(pot, h, context).detach()
        return h

    def surrogate_nll(self, x: Tensor, generator: torch.Generator, cg_tol: float,
                      cg_max_iter: int, context: Tensor | None = None, compiled: bool = False
                      ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """(training objective ``[n]`` = −log N(z) − Σ_k surrogate_k, −log N(z) ``[n]``,
        CG logs). The objective's gradient is an unbiased estimate of ∇_θ NLL (Alg. 2).
        ``compiled``: each block's surrogate by :func:`compiled_surrogate_log_det`."""
        surrogate = compiled_surrogate_log_det() if compiled else surrogate_log_det
        h = x.detach()
        sur = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        iters, res = 0, 0.0
        for k, pot in enumerate(self.blocks):
            h, norm_logdet = self._norm(k, h)  # (closed form: no gradient w.r.t. the data)
            out = surrogate(pot, h, generator, cg_tol, cg_max_iter, context)
            sur = sur + out.surrogate + norm_logdet
            iters, res = max(iters, out.cg_iterations), max(res, out.cg_residual)
            h = out.output
        prior = -standard_normal_log_prob(h)
        return prior - sur, prior, {"cg_iterations": float(iters), "cg_residual": res}

    def exact_nll(self, x: Tensor, context: Tensor | None = None,
                  create_graph: bool = False) -> Tensor:
        """−log p(x) ``[n]`` with exact log dets; ``create_graph`` to backpropagate
        through them (the O(d)-memory alternative to Alg. 2)."""
        h = x.detach().requires_grad_(True) if create_graph else x
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k, pot in enumerate(self.blocks):
            with torch.set_grad_enabled(create_graph):
                h, norm_logdet = self._norm(k, h)
            logdet = logdet + norm_logdet + exact_log_det(pot, h, create_graph, context)
            h = gradient_map(pot, h, context, create_graph=create_graph)
            if not create_graph:
                h = h.detach()
        return -(standard_normal_log_prob(h) + logdet)

    def log_prob(self, x: Tensor, method: LogDetMethod, slq_steps: int = 0,
                 slq_probes: int = 1, generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> Tensor:
        """log p(x) ``[n]`` (nats) with exact log dets or SLQ (no graph kept)."""
        if method == "exact":
            return -self.exact_nll(x, context).detach()
        if method != "slq":
            raise ValueError(f"log_prob: method={method!r}; expected 'exact' or 'slq'")
        if generator is None:
            raise ValueError("log_prob: SLQ needs a generator for its probes")
        h = x.detach()
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k, pot in enumerate(self.blocks):
            with torch.no_grad():
                h, norm_logdet = self._norm(k, h)
                logdet = logdet + norm_logdet
            if getattr(pot, "closed_form", False):
                with torch.no_grad():
                    _, g, closed_hvp = pot.derivatives(h, context)
                    logdet = logdet + slq_log_det(closed_hvp, x.shape[0], x.shape[1],
                                                  slq_steps, slq_probes, generator, x.dtype,
                                                  x.device)
                h = g
                continue
            with torch.enable_grad():
                hx = h.requires_grad_(True)
                f = pot(hx, context) if context is not None else pot(hx)
                g = torch.autograd.grad(f.sum(), hx, create_graph=True)[0]

                def hvp(v: Tensor, g: Tensor = g, hx: Tensor = hx) -> Tensor:
                    return torch.autograd.grad(g, hx, v, retain_graph=True)[0]

                logdet = logdet + slq_log_det(hvp, x.shape[0], x.shape[1], slq_steps,
                                              slq_probes, generator, x.dtype, x.device)
            h = g.detach()
        return standard_normal_log_prob(h) + logdet

    def inverse(self, z: Tensor, tol: float, max_iter: int,
                context: Tensor | None = None) -> InversionResult:
        """x = f⁻¹(z) block by block (Alg. 1), last block first; error of the last solve
        per row (in the scaled coordinates x̃ where an ActNorm precedes it), iterations
        summed over blocks."""
        h, iters, err = z.detach(), 0, None
        for k in reversed(range(len(self.blocks))):
            out = invert_potential(self.blocks[k], h, tol, max_iter, context)
            h, err, iters = out.x, out.error, iters + out.iterations
            if self.norms:
                with torch.no_grad():
                    h = self.norms[k].inverse(h)
        return InversionResult(x=h, error=err, iterations=iters)
