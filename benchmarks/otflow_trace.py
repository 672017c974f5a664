"""Time ∇Φ + tr(∇²_xΦ) of the OT-Flow potential: closed form vs autograd vs Hutchinson.

Usage: ``python benchmarks/otflow_trace.py [--reps N] [--threads T]``. For d ∈ {2, 43, 784}
(toy, MINIBOONE, MNIST sizes), batch 2000, two-layer ResNet of width 32 (d = 2) or 256
(d ≥ 43), float64 for d = 2 and float32 otherwise, it times on the same weights and points:

* closed form: ``OTFlowPotential.grad_and_laplacian`` (the exact trace of OT-Flow,
  arXiv:2006.00104), without (inference) and with (training) the graph for backprop;
* autograd exact: ∇Φ by autograd with ``create_graph``, then one more backward per
  dimension for the diagonal of the Hessian (the faster of a Python loop and
  ``is_grads_batched`` vmap is reported);
* Hutchinson: ∇Φ by autograd and one Rademacher probe vᵀ∇²Φ v (an estimate, not exact).

All rows evaluate the gradient and the trace once, without a parameter backward. Times are
the best of ``--reps`` runs in ms; at d = 784 the autograd exact trace runs on a smaller
batch (reported) and is scaled linearly to 2000 for the speedup.
"""

from __future__ import annotations

import argparse
import time

import torch

from otflows.nn.potentials import OTFlowPotential

CASES = [  # d, width, dtype, batch for the autograd exact trace
    (2, 32, torch.float64, 2000),
    (43, 256, torch.float32, 2000),
    (784, 256, torch.float32, 200),
]
BATCH = 2000


def _best_ms(fn, reps: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def closed_form(phi: OTFlowPotential, s: torch.Tensor, training: bool):
    """∇Φ and the exact Laplacian in closed form; ``training`` builds the backprop graph."""
    with torch.set_grad_enabled(training):
        der = phi.grad_and_laplacian(s)
    return der.grad, der.laplacian


def autograd_exact_loop(phi: OTFlowPotential, s: torch.Tensor):
    """∇Φ by autograd and tr(∇²_xΦ) by one backward per dimension (Python loop)."""
    s = s.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(phi(s).sum(), s, create_graph=True)
    lap = torch.zeros(s.shape[0], dtype=s.dtype)
    for i in range(phi.d):
        (row,) = torch.autograd.grad(grad[:, i].sum(), s, retain_graph=True)
        lap += row[:, i]
    return grad.detach(), lap


def autograd_exact_vmap(phi: OTFlowPotential, s: torch.Tensor):
    """∇Φ by autograd and tr(∇²_xΦ) by one vmapped backward over the d unit vectors."""
    s = s.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(phi(s).sum(), s, create_graph=True)
    d = phi.d
    basis = torch.zeros(d, *grad.shape, dtype=s.dtype)
    basis[torch.arange(d), :, torch.arange(d)] = 1.0
    (rows,) = torch.autograd.grad(grad, s, grad_outputs=basis, is_grads_batched=True)
    lap = rows[torch.arange(d), :, torch.arange(d)].sum(0)
    return grad.detach(), lap


def hutchinson(phi: OTFlowPotential, s: torch.Tensor, v: torch.Tensor):
    """∇Φ by autograd and the one-probe estimate vᵀ∇²_xΦ v, v Rademacher ``[n, d]``."""
    s = s.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(phi(s).sum(), s, create_graph=True)
    (hv,) = torch.autograd.grad((grad[:, : phi.d] * v).sum(), s)
    return grad.detach(), (hv[:, : phi.d] * v).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dims", type=int, nargs="*", default=[c[0] for c in CASES])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = (f"{'d':>4} {'width':>5} {'dtype':>7} {'closed inf':>10} {'closed train':>12} "
              f"{'autograd exact':>14} {'(batch)':>7} {'hutch x1':>9} "
              f"{'speedup vs exact':>16} {'vs hutch':>8}")
    print(f"ms per evaluation of grad + trace, batch {BATCH}, best of {args.reps}, "
          f"{args.threads} threads")
    print(header)
    for d, width, dtype, ad_batch in CASES:
        if d not in args.dims:
            continue
        g = torch.Generator().manual_seed(0)
        phi = OTFlowPotential(d, width, 2, dtype=dtype, generator=g)
        s = torch.randn(BATCH, d + 1, generator=g, dtype=dtype)
        v = torch.randint(0, 2, (BATCH, d), generator=g).to(dtype) * 2 - 1
        # correctness on a few points before timing
        ref = autograd_exact_loop(phi, s[:8])[1]
        assert torch.allclose(closed_form(phi, s[:8], False)[1], ref, rtol=1e-3, atol=1e-3)
        t_inf = _best_ms(lambda: closed_form(phi, s, False), args.reps)  # noqa: B023
        t_train = _best_ms(lambda: closed_form(phi, s, True), args.reps)  # noqa: B023
        sa = s[:ad_batch]
        reps_ad = args.reps if d < 784 else 1
        t_loop = _best_ms(lambda: autograd_exact_loop(phi, sa), reps_ad)  # noqa: B023
        t_vmap = _best_ms(lambda: autograd_exact_vmap(phi, sa), reps_ad)  # noqa: B023
        t_exact = min(t_loop, t_vmap) * BATCH / ad_batch
        t_hutch = _best_ms(lambda: hutchinson(phi, s, v), args.reps)  # noqa: B023
        print(f"{d:>4} {width:>5} {str(dtype)[6:]:>7} {t_inf:>10.1f} {t_train:>12.1f} "
              f"{min(t_loop, t_vmap):>14.1f} {ad_batch:>7} {t_hutch:>9.1f} "
              f"{t_exact / t_inf:>15.1f}x {t_hutch / t_inf:>7.2f}x")
    print("closed inf: no graph (evaluation, sampling); closed train: grad mode, which also "
          "forms the trace's VJPs for the later backward pass; autograd exact: best of loop "
          "and vmap, at the batch shown (speedup scaled to batch 2000); hutch x1: one "
          "Hutchinson probe (stochastic). speedups use closed inf.")


if __name__ == "__main__":
    main()
