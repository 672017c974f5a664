"""Closed-form Laplacian of the Monge-Ampère potential against the autograd Laplacian.

Usage: ``python benchmarks/mongeampere_laplacian.py [--d 784] [--width 1024] [--batch 100]``.
ϕ(x) = w₂ᵀ softplus(W₁x + b₁): the closed form is ∇²ϕ = Σₖ w₂ₖ σ″(aₖ)‖W₁ₖ‖² (one matmul
and one matvec, O(h·d) per point); the autograd reference takes ∇ϕ by autograd with
``create_graph`` and then one backward pass per dimension for the Hessian diagonal (d
backward passes). Both in float32 on 2 threads, forward only (what one RK4 stage needs);
prints median milliseconds, the speed-up (target ≥ 50×) and the largest difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from otflows.methods.mongeampere import SoftplusPotential


def autograd_laplacian(phi: SoftplusPotential, x: torch.Tensor) -> torch.Tensor:
    """tr ∇²ϕ by autograd: ∇ϕ with create_graph, then d backward passes; ``[n]``."""
    x = x.detach().requires_grad_(True)
    grad = torch.autograd.grad(phi(x).sum(), x, create_graph=True)[0]
    diag = [torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i]
            for i in range(x.shape[1])]
    return torch.stack(diag, 1).sum(1)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=784)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timed autograd repeats")
    args = parser.parse_args()
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    phi = SoftplusPotential(args.d, args.width, torch.float32, gen)
    x = torch.randn(args.batch, args.d, generator=gen)
    with torch.no_grad():
        closed = phi.derivatives(x).laplacian
    reference = autograd_laplacian(phi, x).detach()
    err = (closed - reference).abs().max().item() / reference.abs().max().item()
    field = phi.vector_field()  # what an RK4 stage calls: W₁‖·‖² precomputed per integration

    def closed_form() -> None:
        with torch.no_grad():
            field(x)

    t_closed = _median_ms(closed_form, 50)
    t_auto = _median_ms(lambda: autograd_laplacian(phi, x), args.repeats)
    print(f"{'method':<40} {'median ms':>10}")
    print(f"{'closed form (grad + Laplacian)':<40} {t_closed:>10.2f}")
    print(f"{'autograd Laplacian (d backward passes)':<40} {t_auto:>10.1f}")
    print(f"speed-up: {t_auto / t_closed:.0f}x (target >= 50x); max relative difference "
          f"{err:.1e}")
    print(f"d {args.d}, width {args.width}, batch {args.batch}, float32, 2 threads")


if __name__ == "__main__":
    main()
