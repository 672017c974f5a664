"""Where does Q-flow's MI estimate (arXiv:2305.11857, §4.3) pick up its bias? Stage by stage
against the Gaussian closed form.

P = N(0, Σ) (correlated pairs), Q = N(0, I). Every bridge distribution P_{t_k} of a flow
between two Gaussians is close to Gaussian, so each interval's log-ratio
δ_k(x) = log p(x, t_{k−1}) − log p(x, t_k) has a closed form from the bank's covariance
(Ĉ_k, the sample covariance of (T_0^{t_k})#P; Ĉ_L = I for the Q end), and Σ_k E_P[δ_k] = MI.
Printed, per ratio-grid interval:

* the flow: Gaussian KL between the pushed P at t_k and the linear interpolant's
  N(0, (1 − t)²Σ + t²I) (the initial flow's target), and KL((T_0^1)#P ‖ Q);
* the ratio net: E_P[−g(x, s_k)] (its interval contribution to the MI, on test P points)
  against E_P[δ_k] (closed form), and the same on the interval's own training distribution
  P_{t_{k−1}} (in distribution: a fitting error; on P only: an extrapolation error).

    python benchmarks/qflow_mi_stages.py --d 8 --tot 0 [--ratio-iters 400]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from otflows.data.pairs import mi_problem
from otflows.methods.qflow import make_trainer


def gauss_logpdf(x: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x; 0, cov) ``[n]``."""
    sign, logdet = np.linalg.slogdet(cov)
    sol = np.linalg.solve(cov, x.T).T
    return -0.5 * ((x * sol).sum(1) + logdet + x.shape[1] * math.log(2 * math.pi))


def gauss_kl(a: np.ndarray, b: np.ndarray) -> float:
    """KL(N(0, a) ‖ N(0, b))."""
    d = a.shape[0]
    return 0.5 * (np.trace(np.linalg.solve(b, a)) - d + np.linalg.slogdet(b)[1]
                  - np.linalg.slogdet(a)[1])


def config(args: argparse.Namespace) -> dict:
    """The default profile's ``qflow.mi`` run keys (params.yaml), with the CLI's changes."""
    return {"task": "pair", "width": 128, "n_layers": 2, "K": 4, "S": 3, "gamma": 0.05,
            "grad_checkpoint": False,
            "lr": 0.003, "refine_lr": 0.00005, "batch_size": 256, "init_iters": args.init_iters,
            "tot": args.tot, "E": 5, "E0": 20, "E_in": 20, "clf_width": 128, "clf_lr": 0.001,
            "dre": True, "baselines": False, "ratio_width": 128, "ratio_head": args.head,
            "ratio_intervals": args.L,
            "ratio_iters": args.ratio_iters, "ratio_lr": args.ratio_lr, "field_grid": 0,
            "dtype": "float32"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--tot", type=int, default=0)
    p.add_argument("--init-iters", type=int, default=400)
    p.add_argument("--ratio-iters", type=int, default=400)
    p.add_argument("--ratio-lr", type=float, default=0.001)
    p.add_argument("--L", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", default="mlp", choices=("mlp", "quadratic"))
    args = p.parse_args()
    torch.set_num_threads(1)
    arrays = mi_problem(args.d, 10000, 1000, args.seed)
    tr = make_trainer(config(args), arrays["train"], args.seed, torch.device("cpu"), arrays)
    while tr.step_index < tr.n_steps:
        tr.train_step()
    bank = tr.ratio_bridge._bank.double().numpy()  # noqa: SLF001 (diagnostic)
    grid = tr.ratio_grid.double().numpy()
    L, d = len(grid) - 1, args.d
    sigma = np.cov(arrays["train"].T)
    covs = [np.cov(bank[k].T) for k in range(L)] + [np.eye(d)]
    test_p = arrays["test_p"]
    mi = float(arrays["mi_true"])
    print(f"d={d} tot={args.tot} L={L} MI true {mi:.3f}")
    pushed_end = tr.forward_map(arrays["train"][:5000])
    print(f"KL((T_0^1)#P || Q) = {gauss_kl(np.cov(pushed_end.T), np.eye(d)):.4f}")
    torch.set_grad_enabled(False)
    net = tr.nets["qflow_ratio"]
    g_test = net.interval_logits(torch.as_tensor(test_p, dtype=torch.float32),
                                 tr.ratio_grid).double().numpy()
    tot_est, tot_cf = 0.0, 0.0
    print(" k   t_k   KL(bank|interp)  E_P[-g]  E_P[delta]  | E_{k-1}[-g]  E_{k-1}[delta]")
    for k in range(1, L + 1):
        t = grid[k - 1]
        interp = (1 - t) ** 2 * sigma + t * t * np.eye(d)
        kl = gauss_kl(covs[k - 1], interp)
        delta = gauss_logpdf(test_p, covs[k - 1]) - gauss_logpdf(test_p, covs[k])
        xs = bank[k - 1][:1000]
        g_in = net(torch.as_tensor(xs, dtype=torch.float32),
                   float(0.5 * (grid[k - 1] + grid[k]))).double().numpy()
        delta_in = gauss_logpdf(xs, covs[k - 1]) - gauss_logpdf(xs, covs[k])
        est = -g_test[k - 1].mean()
        tot_est += est
        tot_cf += delta.mean()
        print(f"{k:2d} {t:5.3f} {kl:12.4f} {est:12.3f} {delta.mean():10.3f}  | "
              f"{-g_in.mean():10.3f} {delta_in.mean():12.3f}")
    print(f"sum: ratio net {tot_est:.3f}, closed form {tot_cf:.3f}, true {mi:.3f}")


if __name__ == "__main__":
    main()
