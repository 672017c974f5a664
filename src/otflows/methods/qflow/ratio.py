"""Density-ratio estimation with Q-flow (Xu, Cheng, Xie, arXiv:2305.11857, §4.1-4.3): the
Q-flow-ratio net and the DRE baselines, trained once the flow is frozen.

* the Q-flow-ratio net (§4.1): a time-conditioned classifier r(x, s) trained by the logistic
  loss (5) between neighbouring bridge distributions P_{t_{k−1}}, P_{t_k} of a ratio grid of
  L intervals, interval logit h_k r(x, s_k) at the midpoint s_k; then
  log p(x) − log q(x) = −∫₀¹ r(x, s) ds;
* the baselines of §4.2-4.3: one classifier between P and Q ("1 ratio"), TRE over TRE's
  linear-combination waymarks (α_k = k/L), and TRE over Q-flow's own bridge (one head per
  interval).

The bridge is P_{t_k} = (T_0^{t_k})#P for k < L and the Q samples themselves at k = L (so the
telescoped estimate stays consistent when T_0^1#P ≠ Q exactly); the ratio grid is integrated
with max(1, ⌈K·S/L⌉) sub-steps per interval; bridge minibatches are drawn independently at
every k.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from otflows.methods.qflow.config import QFlowConfig
from otflows.methods.qflow.flow import VelocityNet, grid_path
from otflows.methods.qflow.samples import PairSampler
from otflows.metrics.ratio import (
    Classifier,
    MultiHeadClassifier,
    TimeClassifier,
    linear_waymarks,
    logistic_loss,
    time_score_loss,
)

__all__ = ["DRE_INF_NODES", "DRE_METHODS", "Bridge", "build_ratio_nets", "log_ratio", "ratio_loss"]

DRE_METHODS = {"qflow_ratio": "Ours (Q-flow-ratio)", "one_ratio": "1 ratio",
               "tre_linear": "TRE (linear waymarks)", "tre_qflow": "TRE on Q-flow path",
               "dre_inf": "DRE-∞"}
"""The DRE methods by key (their metric prefix) and display name."""


DRE_INF_NODES = 32
"""Midpoints of DRE-∞'s quadrature of −∫₀¹ s(x, t) dt (Choi et al. solve it as an ODE)."""


def build_ratio_nets(cfg: QFlowConfig, d: int) -> dict[str, nn.Module]:
    """The networks ``dre`` trains, by key of :data:`DRE_METHODS` (none without ``dre``)."""
    if not cfg.dre:
        return {}
    head = cfg.ratio_head
    nets: dict[str, nn.Module] = {"qflow_ratio": TimeClassifier(d, cfg.ratio_width, head=head)}
    if cfg.baselines:
        L = cfg.ratio_intervals
        nets.update({"one_ratio": Classifier(d, cfg.clf_width, head=head),
                     "tre_linear": MultiHeadClassifier(d, cfg.clf_width, L, head=head),
                     "tre_qflow": MultiHeadClassifier(d, cfg.clf_width, L, head=head),
                     "dre_inf": TimeClassifier(d, cfg.ratio_width, head=head)})
    return nets


class Bridge:
    """Samples of Q-flow's bridge on the ratio grid ``[L+1]``: (T_0^{t_k})#P for k < L, Q at L.

    The flow is frozen once the ratio phases start, so every P sample is pushed once (a bank
    ``[L, N, d]``, rebuilt identically after a resume, in batches of ``eval_batch``) and
    minibatches are drawn from it, independently at every k."""

    def __init__(self, f: VelocityNet, grid: Tensor, substeps: int, sampler: PairSampler,
                 eval_batch: int) -> None:
        self.f, self.grid, self.substeps = f, grid, substeps
        self.sampler, self.eval_batch = sampler, eval_batch
        self.intervals = len(grid) - 1
        self._bank: Tensor | None = None

    @classmethod
    def for_config(cls, cfg: QFlowConfig, f: VelocityNet, sampler: PairSampler,
                   eval_batch: int, dtype: torch.dtype, device: torch.device) -> Bridge:
        """The ratio grid of ``ratio_intervals`` intervals, max(1, ⌈K·S/L⌉) RK4 sub-steps each."""
        L = cfg.ratio_intervals
        grid = torch.linspace(0.0, 1.0, L + 1, dtype=dtype, device=device)
        return cls(f, grid, max(1, math.ceil(cfg.K * cfg.S / L)), sampler, eval_batch)

    def sample(self, n: int) -> list[Tensor]:
        """L + 1 minibatches ``[n, d]``, one per ratio-grid time."""
        x_p, L = self.sampler.x_p, self.intervals
        if self._bank is None:
            with torch.no_grad():
                parts = [grid_path(self.f, b, self.grid, self.substeps)[:-1]
                         for b in torch.split(x_p, self.eval_batch)]
                self._bank = torch.stack([torch.cat([p[k] for p in parts]) for k in range(L)])
        # independent draws per bridge time: eq. (5)'s two expectations use separate samples,
        # and a classifier cannot memorise the displacement of a shared point
        idx = torch.randint(0, x_p.shape[0], (L, n),
                            generator=self.sampler.generator).to(x_p.device)
        states = [self._bank[k, idx[k]] for k in range(L)]
        return states + [self.sampler.batch("q", n)]


def ratio_loss(name: str, net: nn.Module, bridge: Bridge, sampler: PairSampler,
               batch_size: int) -> Tensor:
    """The logistic loss (5) of DRE method ``name`` on fresh minibatches (scalar)."""
    L = bridge.intervals
    if name == "qflow_ratio":
        states = bridge.sample(batch_size)
        g = bridge.grid
        mids = (0.5 * (g[1:] + g[:-1])).tolist()
        losses = [logistic_loss(net(states[k - 1], mids[k - 1]), net(states[k], mids[k - 1]))
                  for k in range(1, L + 1)]
        return torch.stack(losses).mean()
    if name == "one_ratio":
        return logistic_loss(net(sampler.batch("p")), net(sampler.batch("q")))
    if name == "dre_inf":
        x_p = sampler.batch("p")
        t = torch.rand(x_p.shape[0], generator=sampler.generator, dtype=torch.float64)
        return time_score_loss(net, x_p, sampler.batch("q"), t.to(x_p.device, x_p.dtype))
    if name == "tre_linear":
        alphas = torch.linspace(0.0, 1.0, L + 1, dtype=sampler.x_q.dtype)
        states = list(linear_waymarks(sampler.batch("p"), sampler.batch("q"), alphas))
    else:
        states = bridge.sample(batch_size)
    return torch.stack([logistic_loss(net(states[k - 1])[:, k - 1], net(states[k])[:, k - 1])
                        for k in range(1, L + 1)]).mean()


def log_ratio(name: str, net: nn.Module, x: Tensor, grid: Tensor) -> Tensor:
    """Estimated log p(x) − log q(x) ``[n]`` (nats) of DRE method ``name`` at x ``[n, d]``."""
    if name == "qflow_ratio":
        return net.log_ratio(x, grid)
    if name == "one_ratio":
        return -net(x)
    if name == "dre_inf":  # −∫₀¹ s(x, t) dt, midpoint rule on DRE_INF_NODES intervals
        fine = torch.linspace(0.0, 1.0, DRE_INF_NODES + 1, dtype=x.dtype, device=x.device)
        return -net.interval_logits(x, fine).mean(0)
    return net.log_ratio(x)
