"""What a Q-flow run (Xu, Cheng, Xie, arXiv:2305.11857) reports, decided in one place.

:func:`plan_evaluations` reads the run config (``task``, ``dre``, ``field_grid``) and the
arrays the prepared data file provides, once, and returns the :class:`EvalPlan` the trainer
follows: the toy task's NLL, the DRE errors against an analytic log-ratio (GMMs, §4.2),
bits/dim of the energy-based MNIST model (§4.4), MI (§4.3), the interval log-ratio field
(Fig. 2b), the digit-translation scores (§4.5 adapted), and the true W₂² where known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from otflows.methods.qflow.config import QFlowConfig
from otflows.metrics.ratio import ratio_errors

__all__ = ["TRANSLATION_KEY", "EvalPlan", "assignment_w2", "dre_metrics", "field_extras",
           "independent_pair_cost", "plan_evaluations"]

TRANSLATION_KEY = "decoder.from_latent.0.weight"
"""An array of the VAE decoder: present in the digit-translation data file only."""


@dataclass(frozen=True)
class EvalPlan:
    """Which evaluations a run makes, beyond the transport metrics every run reports."""

    nll: bool  # toy task: test NLL by the instantaneous change of variables
    ratio_errors: bool  # dre + ratio_points/ratio_truth: log-ratio MAE and max error (§4.2)
    bpd: bool  # dre + test_log_q: NLL and bits/dim of log q − ∫ r ds on MNIST (§4.4)
    mi: bool  # dre + mi_true: MI = E_P[log p − log q] on test_p (§4.3)
    field: bool  # dre, field_grid > 0, d = 2: interval log-ratios on a grid (Fig. 2b)
    translation: bool  # the VAE decoder is in the file: digit translation scores (§4.5)
    w2_true: bool  # the file knows the true W₂² between P and Q


def plan_evaluations(cfg: QFlowConfig, arrays: dict[str, np.ndarray], d: int) -> EvalPlan:
    """The evaluations of a run of ``cfg`` on a data file with ``arrays``, points ``[·, d]``."""
    return EvalPlan(
        nll=cfg.task == "toy",
        ratio_errors=cfg.dre and "ratio_points" in arrays and "ratio_truth" in arrays,
        bpd=cfg.dre and "test_log_q" in arrays,
        mi=cfg.dre and "mi_true" in arrays,
        field=cfg.dre and bool(cfg.field_grid) and d == 2,
        translation=TRANSLATION_KEY in arrays,
        w2_true="w2_squared_true" in arrays)


def assignment_w2(x: np.ndarray, y: np.ndarray) -> float:
    """Exact discrete W₂² between two equal-size point clouds ``[n, d]`` (Hungarian)."""
    cost = np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None] - 2.0 * x @ y.T, 0.0)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def independent_pair_cost(x: Tensor, y: Tensor, gen: torch.Generator) -> float:
    """E‖X₁ − X₀‖² over independent pairs: the particle cost of the linear interpolant."""
    k = min(len(x), len(y))
    perm = torch.randperm(len(y), generator=gen)[:k].to(y.device)
    return float((y[perm] - x[:k]).square().sum(1).mean())


def dre_metrics(plan: EvalPlan, arrays: dict[str, np.ndarray],
                log_ratios: Callable[[np.ndarray], dict[str, np.ndarray]],
                extras: dict[str, np.ndarray]) -> dict[str, float]:
    """MAE/max error on ``ratio_points``, NLL/bits-per-dim and MI estimates on ``test_p``,
    per DRE method, as ``plan`` says; ``log_ratios(x)`` gives each method's log p − log q."""
    metrics: dict[str, float] = {}
    if plan.ratio_errors:
        est = log_ratios(arrays["ratio_points"])
        truth = np.asarray(arrays["ratio_truth"], dtype=np.float64)
        for name, e in est.items():
            errs = ratio_errors(e, truth)
            metrics[f"{name}_mae"] = errs["mae"]
            metrics[f"{name}_max_error"] = errs["max_error"]
        extras["ratio_points"] = np.asarray(arrays["ratio_points"], dtype=np.float64)
        extras["ratio_truth"] = truth
        for name, e in est.items():
            extras[f"ratio_{name}"] = e
    if plan.bpd:  # §4.4: log p̂(x) = log q(x) − ∫₀¹ r(x, s) ds, in bits/dim
        from otflows.data.mnist import bits_per_dim_from_logit_nll

        est = log_ratios(arrays["test_p"])
        log_q = np.asarray(arrays["test_log_q"], dtype=np.float64)
        px, lam = arrays["test_pixels01"], float(arrays["logit_lambda"])
        metrics["q_bpd"] = float(bits_per_dim_from_logit_nll(-log_q, px, lam).mean())
        for name, e in est.items():
            nll = -(log_q + e)
            metrics[f"{name}_nll_nats"] = float(nll.mean())
            metrics[f"{name}_bpd"] = float(bits_per_dim_from_logit_nll(nll, px, lam).mean())
    if plan.mi:
        est = log_ratios(arrays["test_p"])
        mi = float(arrays["mi_true"])
        metrics["mi_true"] = mi
        for name, e in est.items():
            metrics[f"{name}_mi"] = float(e.mean())
            metrics[f"{name}_mi_abs_error"] = abs(float(e.mean()) - mi)
    return metrics


def field_extras(points: Tensor, size: int, interval_log_ratios: Callable[[Tensor], Tensor],
                 ratio_grid: Tensor, bridge: Callable[[], list[Tensor]]
                 ) -> dict[str, np.ndarray]:
    """Fig. 2b's arrays: the interval log-ratios ``[L, size, size]`` on a grid padded 10%
    around ``points`` ``[n, 2]``, its axes, the ratio grid and ``bridge()``'s samples
    ``[L+1, m, 2]``."""
    lo, hi = points.min(0).values, points.max(0).values
    pad = 0.1 * (hi - lo)
    gx = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), size)
    gy = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), size)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid_pts = torch.stack([xx.ravel(), yy.ravel()], 1).to(points.device, points.dtype)
    field = interval_log_ratios(grid_pts)
    return {"field": field.view(-1, *xx.shape).double().cpu().numpy(),
            "field_x": gx.double().numpy(), "field_y": gy.double().numpy(),
            "ratio_grid": ratio_grid.double().cpu().numpy(),
            "ratio_bridge": torch.stack(bridge()).double().cpu().numpy()}
