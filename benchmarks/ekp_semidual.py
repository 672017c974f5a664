"""Diagnose EKP's training (arXiv:2006.06033) on a 2-D toy: Algorithm 1 as shipped against a
ϕ-step on the semi-dual J(ϕ) of eq. (15) with ψ := ϕ^(c,ε) (issue 19's lead), with or without a
guard on the Monte-Carlo bias of eq. (19), and against the same ascent with the transform by
quadrature (no MC, so no Jensen bias: the reference for what the estimator costs).

Every ``--every`` steps it prints the training signals — the semi-dual J(ϕ) with the transform
by quadrature on a fine grid (``J_quad``, nearly exact), with training's N MC samples
(``J_mc``), their difference (the bias the ascent sees), the MC bias ``J_N − J_16N`` the guard
reads, and the centred residual ‖ϕ^(c,ε) − ψ‖ — and, for the report only, the share of the
eq. (17) density ρ_0 ∝ e^{ϕ/ε} H_ε[e^{ψ/ε}] (quadrature) in the checkerboard's cells.

Variants (``--variant``):
* ``trainer``: :meth:`EKPTrainer.train_step` with ``--ascent``/``--quad-grid`` (``alg1``/0:
  J̃/Ĩ alternating, eqs. 20–21, MC transforms);
* ``semi``: ϕ ascends the MC semi-dual (eqs. 15, 19) with N = n_mc; ψ regresses on ϕ^(c,ε);
* ``guard``: ``semi`` and N doubles (to ``--n-max``) whenever the bias J_N − J_16N > ``--tau``;
* ``quad``: ``semi`` with the transform by quadrature on a randomly shifted grid.

Usage: OMP_NUM_THREADS=1 python benchmarks/ekp_semidual.py --dataset checkerboard --variant
guard --data /path/to/data/processed/toy [--iters 800]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch
import yaml
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.ekp import EKPConfig, EKPTrainer, c_eps_transform

BOX = 8.0  # quadrature box [−8, 8]²: N(0, I) ± 5 kernel widths and the toys' support


def grid(n: int, shift: Tensor | None = None) -> tuple[Tensor, float]:
    """n² points on [−BOX, BOX]² (shifted by ``shift`` ∈ [0, 1)² cells) and the cell area."""
    h = 2 * BOX / n
    g = -BOX + h * (torch.arange(n, dtype=torch.float32) + 0.5)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    if shift is not None:
        pts = pts + (shift - 0.5) * h
    return pts, h * h


def log_heat_quad(f_vals: Tensor, pts: Tensor, cell: float, y: Tensor, s: float) -> Tensor:
    """log H_s[e^f](y) = log ∫ N(x; y, s) e^{f(x)} dx by quadrature (f_vals = f(pts)/ε)."""
    d2 = torch.cdist(y, pts).pow(2)
    return (torch.logsumexp(f_vals[None, :] - d2 / (2 * s), 1)
            + math.log(cell / (2 * math.pi * s)))


def phi_c_quad(phi, z: Tensor, eps: float, pts: Tensor, cell: float) -> Tensor:
    """ϕ^(c,ε)(z) = ε log ν(z) − ε log H_ε[e^{ϕ/ε}](z) by quadrature (eqs. 7, 19)."""
    return eps * (standard_normal_log_prob(z)
                  - log_heat_quad(phi(pts) / eps, pts, cell, z, eps))


class Diagnose:
    """Training signals of one (ϕ, ψ) pair, all on fixed draws (no test data)."""

    def __init__(self, train: np.ndarray, eps: float, n_mc: int) -> None:
        g = torch.Generator().manual_seed(123)
        self.x = torch.as_tensor(train[:2000], dtype=torch.float32)
        self.z = torch.randn(2000, 2, generator=g)
        self.noise = torch.randn(2000, n_mc, 2, generator=g)
        self.noise16 = torch.randn(2000, 16 * n_mc, 2, generator=g)
        self.pts, self.cell = grid(112)  # J's quadrature
        self.pts_rho, self.cell_rho = grid(64)  # ρ_0's grid (spacing 0.25 against √ε)
        self.eps = eps
        self.cells = None

    def __call__(self, phi, psi, n_mc: int) -> dict[str, float]:
        """J_quad, J_mc(N), bias J_N − J_16N, centred residual, eq. (17) cell share."""
        e = self.eps
        with torch.no_grad():
            ex = phi(self.x).double().mean()
            pc = phi_c_quad(phi, self.z, e, self.pts, self.cell).double()
            logn = standard_normal_log_prob(self.z)
            mc = [c_eps_transform(phi, self.z[:500], e, nz[:500, : k], logn[:500]).double()
                  for nz, k in ((self.noise, n_mc), (self.noise16, 16 * n_mc))]
            mc_n = c_eps_transform(phi, self.z, e, self.noise[:, : min(n_mc, 64)],
                                   logn).double()
            r = pc - psi(self.z).double()
            # ρ_0 ∝ e^{ϕ/ε} H_ε[e^{ψ/ε}] (eq. 17) on the grid, by quadrature.
            pr = self.pts_rho
            logp = phi(pr) / e + log_heat_quad(psi(pr) / e, pr, self.cell_rho, pr, e)
            w = torch.softmax(logp.double(), 0)
        share = float(w[self.cells].sum()) if self.cells is not None else float("nan")
        return {"J_quad": float(ex + pc.mean() - e), "J_mc64": float(ex + mc_n.mean() - e),
                "bias16": float(mc[0].mean() - mc[1].mean()),
                "res_c": float(r.std()), "share17": share}


def checker_mask(pts: Tensor) -> Tensor:
    """Points in the 8 occupied squares of FFJORD's checkerboard (side 2 on [−4, 4)²)."""
    i = torch.floor((pts[:, 0] + 4) / 2).long()
    j = torch.floor((pts[:, 1] + 4) / 2).long()
    inside = (i >= 0) & (i < 4) & (j >= 0) & (j < 4)
    return inside & ((i + j) % 2 == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="checkerboard")
    ap.add_argument("--data", required=True)
    ap.add_argument("--variant", default="guard", choices=["trainer", "semi", "guard", "quad"])
    ap.add_argument("--ascent", default="alg1", help="trainer: config key ascent")
    ap.add_argument("--quad-grid", type=int, default=0, help="trainer: config key quad_grid")
    ap.add_argument("--iters", type=int, default=800)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--tau", type=float, default=0.02)
    ap.add_argument("--n-max", type=int, default=512)
    ap.add_argument("--quad-n", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=0, help="then draw this many samples (dopri5)")
    ap.add_argument("--n-mc-flow", type=int, nargs="+", default=[32], help="for --sample")
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = yaml.safe_load(open("params.yaml"))["ekp"]
    cfg = {k: v for k, v in params.items()
           if k not in ("datasets", "eval_samples", "iters_by_dataset")}
    cfg.update(rk4_steps=0, iters=args.iters, ascent=args.ascent, quad_grid=args.quad_grid)
    if args.lr:
        cfg["lr"] = args.lr
    train = np.load(f"{args.data}/{args.dataset}.npz")["train"]
    tr = EKPTrainer(EKPConfig.from_dict(cfg), train, args.seed, torch.device("cpu"))
    c, eps = tr.cfg, tr.cfg.eps
    diag = Diagnose(train, eps, c.n_mc)
    if args.dataset == "checkerboard":
        diag.cells = checker_mask(diag.pts_rho)
        inside = checker_mask(torch.as_tensor(train, dtype=torch.float32)).float().mean()
        assert float(inside) > 0.99, "checker_mask misses the sampler's squares"
    n_mc, cpu = c.n_mc, 0.0
    for k in range(1, args.iters + 1):
        t0 = time.process_time()
        if args.variant == "trainer":
            tr.train_step()
        else:
            idx = torch.randint(0, tr.train.shape[0], (c.batch_size,), generator=tr.gen)
            x, z = tr.train[idx], torch.randn(c.batch_size, 2, generator=tr.gen)
            if args.variant == "quad":
                pts, cell = grid(args.quad_n, torch.rand(2, generator=tr.gen))
                pc = phi_c_quad(tr.phi, z, eps, pts, cell)
            else:
                noise = torch.randn(c.batch_size, n_mc, 2, generator=tr.gen)
                pc = c_eps_transform(tr.phi, z, eps, noise, standard_normal_log_prob(z))
            j = tr.phi(x).mean() + pc.mean()  # eq. (15) without its constant −ε
            tr.opt_phi.zero_grad(set_to_none=True)
            (-j).backward()
            tr.opt_phi.step()
            with torch.no_grad():  # ψ := ϕ^(c,ε): regression target (quadrature or 4N MC)
                if args.variant == "quad":
                    target = phi_c_quad(tr.phi, z, eps, pts, cell)
                else:
                    nz = torch.randn(c.batch_size, 4 * n_mc, 2, generator=tr.gen)
                    target = c_eps_transform(tr.phi, z, eps, nz, standard_normal_log_prob(z))
            loss = (tr.psi(z) - target).pow(2).mean()
            tr.opt_psi.zero_grad(set_to_none=True)
            loss.backward()
            tr.opt_psi.step()
            if args.variant == "guard" and k % 25 == 0 and n_mc < args.n_max:
                b = diag(tr.phi, tr.psi, n_mc)["bias16"]
                if b > args.tau:
                    n_mc = min(2 * n_mc, args.n_max)
                    print(f"  step {k}: bias {b:.3f} > {args.tau} -> N = {n_mc}", flush=True)
        cpu += time.process_time() - t0  # training (and the guard's check), not diagnostics
        if k % args.every == 0 or k == args.iters:
            s = diag(tr.phi, tr.psi, n_mc)
            print(f"{args.dataset} {args.variant} step {k:5d} cpu {cpu:6.1f}s N {n_mc:4d} "
                  + " ".join(f"{key} {v:8.4f}" for key, v in s.items()), flush=True)
    for m in args.n_mc_flow if args.sample else []:  # reported only: ODE samples in the cells
        tr.cfg = dataclasses.replace(tr.cfg, n_mc_flow=m)
        t0 = time.process_time()
        x = torch.as_tensor(tr.generate(args.sample, seed=0), dtype=torch.float32)
        share = float(checker_mask(x).float().mean()) if diag.cells is not None else float("nan")
        print(f"samples {args.sample} (n_mc_flow {m}): cpu {time.process_time() - t0:.1f}s, "
              f"share in cells {share:.3f}, |x| max {float(x.abs().max()):.2f}", flush=True)


if __name__ == "__main__":
    main()
