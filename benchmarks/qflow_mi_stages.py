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
  P_{t_{k−1}}: on training particles, and on fresh test P points pushed to t_{k−1} (unseen
  but in distribution). An error in distribution is a fitting error; one on P only is an
  extrapolation error.

``--oracle`` adds, per interval, a quadratic logistic regression (the exact family when the
bridge is Gaussian) fitted to convergence by L-BFGS on the full banks P_{t_{k−1}} vs P_{t_k}
(eq. (5)), evaluated on test P points: what the best quadratic classifier on this bridge gives,
without any network's fitting or extrapolation error. Unregularised: at d ≥ 80 its
d(d+1)/2 + d + 1 coefficients overfit the 10,000 bank samples (d = 80, interval 1: 1.28 vs
0.82 nats), so read it at d ≤ 40.

``--bank mix`` trains every interior bridge time on half P pushed forward to t_k and half Q
pushed backward to t_k (the flow is invertible, so both ends give samples of P_{t_k}); the
ends stay P and Q.

    python benchmarks/qflow_mi_stages.py --d 8 --tot 0 [--ratio-iters 400] [--bank mix] [--oracle]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from otflows.data.pairs import mi_problem
from otflows.methods.qflow import make_trainer
from otflows.methods.qflow.flow import grid_path
from otflows.methods.qflow.ratio import Bridge


class MixedBridge(Bridge):
    """P at t = 0, Q at t = 1, and at every interior t_k half (T_0^{t_k})#P, half (T_1^{t_k})#Q."""

    def sample(self, n: int) -> list[torch.Tensor]:
        """L + 1 minibatches ``[n, d]``, independent draws from each time's bank."""
        x_p, x_q, L = self.sampler.x_p, self.sampler.x_q, self.intervals
        if self._bank is None:
            with torch.no_grad():
                fw = grid_path(self.f, x_p, self.grid, self.substeps)
                bw = grid_path(self.f, x_q, self.grid, self.substeps, True)[::-1]
            self._bank = [x_p] + [torch.cat([fw[k], bw[k]]) for k in range(1, L)] + [x_q]
        gen = self.sampler.generator
        return [b[torch.randint(0, b.shape[0], (n,), generator=gen)] for b in self._bank]


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


def quadratic_features(x: torch.Tensor) -> torch.Tensor:
    """[x_i x_j (i ≤ j), x, 1] ``[n, d(d+1)/2 + d + 1]``."""
    iu = torch.triu_indices(x.shape[1], x.shape[1])
    quad = (x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]]
    return torch.cat([quad, x, torch.ones(len(x), 1, dtype=x.dtype)], 1)


def oracle_interval(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    """Mean over x of −w·φ(x), w the quadratic logistic regression of (5) between the banks a
    and b (optimum w·φ = log b/a), fitted to convergence by L-BFGS: E_x[log a(x) − log b(x)]."""
    fa, fb = (quadratic_features(torch.as_tensor(v, dtype=torch.float64)) for v in (a, b))
    w = torch.zeros(fa.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-10,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.softplus(fa @ w).mean()
                + torch.nn.functional.softplus(-(fb @ w)).mean())
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float(-(quadratic_features(torch.as_tensor(x, dtype=torch.float64)) @ w).mean())


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
    p.add_argument("--bank", default="p", choices=("p", "mix"))
    p.add_argument("--oracle", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    arrays = mi_problem(args.d, 10000, 1000, args.seed)
    tr = make_trainer(config(args), arrays["train"], args.seed, torch.device("cpu"), arrays)
    if args.bank == "mix":
        rb = tr.ratio_bridge
        tr.ratio_bridge = MixedBridge(rb.f, rb.grid, rb.substeps, rb.sampler, rb.eval_batch)
    while tr.step_index < tr.n_steps:
        tr.train_step()
    grid = tr.ratio_grid.double().numpy()
    with torch.no_grad():  # P pushed forward on the ratio grid (the closed forms' covariances)
        bank = [b.double().numpy() for b in grid_path(tr.f, tr.x_p, tr.ratio_grid,
                                                      tr.ratio_bridge.substeps)]
        fresh = grid_path(tr.f, torch.as_tensor(arrays["test_p"], dtype=torch.float32),
                          tr.ratio_grid, tr.ratio_bridge.substeps)
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
    tot_est, tot_cf, tot_or = 0.0, 0.0, 0.0
    ends = bank[:-1] + [arrays["train_q"]]  # the bridge the ratio net trains on: Q at t = 1
    print(" k   t_k   KL(bank|interp)  E_P[-g]  E_P[delta]  | E_{k-1}[-g]  E_{k-1}[delta]"
          "  | fresh E_{k-1}[-g]  E_{k-1}[delta]" + ("  | oracle E_P" if args.oracle else ""))
    for k in range(1, L + 1):
        t = grid[k - 1]
        interp = (1 - t) ** 2 * sigma + t * t * np.eye(d)
        kl = gauss_kl(covs[k - 1], interp)
        delta = gauss_logpdf(test_p, covs[k - 1]) - gauss_logpdf(test_p, covs[k])
        xs = bank[k - 1][:1000]
        g_in = net(torch.as_tensor(xs, dtype=torch.float32),
                   float(0.5 * (grid[k - 1] + grid[k]))).double().numpy()
        delta_in = gauss_logpdf(xs, covs[k - 1]) - gauss_logpdf(xs, covs[k])
        xf = fresh[k - 1]
        g_f = net(xf, float(0.5 * (grid[k - 1] + grid[k]))).double().numpy()
        xf = xf.double().numpy()
        delta_f = gauss_logpdf(xf, covs[k - 1]) - gauss_logpdf(xf, covs[k])
        est = -g_test[k - 1].mean()
        tot_est += est
        tot_cf += delta.mean()
        orc = oracle_interval(ends[k - 1], ends[k], test_p) if args.oracle else math.nan
        tot_or += orc
        print(f"{k:2d} {t:5.3f} {kl:12.4f} {est:12.3f} {delta.mean():10.3f}  | "
              f"{-g_in.mean():10.3f} {delta_in.mean():12.3f}  | {-g_f.mean():15.3f} "
              f"{delta_f.mean():14.3f}" + (f"  | {orc:10.3f}" if args.oracle else ""))
    print(f"sum: ratio net {tot_est:.3f}, closed form {tot_cf:.3f}, true {mi:.3f}"
          + (f", oracle {tot_or:.3f}" if args.oracle else ""))


if __name__ == "__main__":
    main()
