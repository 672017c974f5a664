"""Time EKP's hot paths (arXiv:2006.06033) at the paper's App. D sizes and print a table.

* one (c, ε)-transform, eq. (19): a batch of 1000 points, N = 100 MC samples each;
* one velocity evaluation v_t, eq. (18), with 200 MC samples (batch 1000), with and without
  the exact divergence used by the CNF likelihood;
* one training iteration of Algorithm 1 (batch 1000, N = 100: both steps and diagnostics).

Usage: python benchmarks/ekp_transform.py [--threads 1] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from otflows.distributions import standard_normal_log_prob
from otflows.methods.ekp import EKPConfig, EKPTrainer, c_eps_transform

# App. D: width 64, 4 layers, B = 1000, N = 100, 200 MC in the flow, batches of 1000 (the
# `ekp` defaults of schemas/params.schema.yaml).
APP_D = {"width": 64, "n_layers": 4, "quadratic_base": False,
         "ascent": "alg1", "quad_grid": 0,
         "eps": 1.0, "alpha": 1e-5, "lr": 1e-3, "batch_size": 1000,
         "n_mc": 100, "iters": 20000, "n_mc_flow": 200, "flow_batch": 1000, "rtol": 1e-5,
         "atol": 1e-5, "rk4_steps": 0, "nll_points": 0, "norm_grid": 128,
         "mass_grid": 48, "field_grid": 64}


def _time(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rng = np.random.default_rng(0)
    train = rng.normal(size=(6000, 2)).astype(np.float32) * [0.7, 1.2] + [1.0, -0.5]
    cfg = EKPConfig.from_dict(APP_D)
    trainer = EKPTrainer(cfg, train, seed=0, device=device)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(cfg.batch_size, 2, generator=gen).to(device)
    noise = torch.randn(cfg.batch_size, cfg.n_mc, 2, generator=gen).to(device)
    log_nu = standard_normal_log_prob(z)
    flow = trainer.flow(gen)
    y = torch.randn(cfg.flow_batch, 2, generator=gen).to(device)

    def transform() -> None:
        with torch.no_grad():
            c_eps_transform(trainer.phi, z, cfg.eps, noise, log_nu)

    def transform_grad() -> None:
        trainer.phi.zero_grad()
        c_eps_transform(trainer.phi, z, cfg.eps, noise, log_nu).mean().backward()

    cases = [
        (f"(c,ε)-transform, eq. 19: B={cfg.batch_size}, N={cfg.n_mc}", transform),
        (f"(c,ε)-transform + backward: B={cfg.batch_size}, N={cfg.n_mc}", transform_grad),
        (f"velocity v_t, eq. 18: n={cfg.flow_batch}, M={cfg.n_mc_flow}",
         lambda: flow.velocity(0.5, y)),
        (f"velocity + exact divergence: n={cfg.flow_batch}, M={cfg.n_mc_flow}",
         lambda: flow.velocity(0.5, y, divergence=True)),
        (f"training iteration, Alg. 1: B={cfg.batch_size}, N={cfg.n_mc}", trainer.train_step),
    ]
    print(f"EKP hot paths on {device} ({args.threads} thread(s)), median of {args.repeats} "
          f"after one warm-up, torch {torch.__version__}")
    print(f"| {'operation':<52} | median ms | min ms |")
    print(f"|{'-' * 54}|-----------|--------|")
    for name, fn in cases:
        times = _time(fn, args.repeats, device)
        print(f"| {name:<52} | {1e3 * statistics.median(times):9.1f} | "
              f"{1e3 * min(times):6.1f} |")


if __name__ == "__main__":
    main()
