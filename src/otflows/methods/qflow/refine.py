"""Algorithm 1 of Q-flow (Xu, Cheng, Xie, arXiv:2305.11857): the refinement of the flow.

Per Iter a P→Q leg then a Q→P leg; each leg first trains its classifier (r₁ by the logistic
loss (5), r̃₀ by (8)) for E₀ steps (Iter 1 only), then E times: one Adam step on θ for
L = L_KL + γ L_T (eq. (3)) with L_KL = −mean r₁(T_0^1 X) (eq. (6)) (resp. −mean r̃₀(T_1^0 X̃))
and L_T the W₂ cost (7) on the grid, followed by E_in classifier steps on the just-pushed
samples (the paper notes they are already computed) with fresh samples of the other side.
An Algorithm-1 "epoch" is one minibatch step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from otflows.methods.qflow.config import QFlowConfig
from otflows.methods.qflow.flow import VelocityNet, grid_path, path_cost
from otflows.methods.qflow.samples import PairSampler
from otflows.metrics.ratio import logistic_loss

__all__ = ["Leg", "classifier_steps", "refine_step"]

Leg = tuple[nn.Module, torch.optim.Optimizer]
"""A leg's classifier (r₁ for P→Q, r̃₀ for Q→P) and its optimiser."""


def classifier_steps(clf: nn.Module, opt: torch.optim.Optimizer, pushed: Tensor,
                     sampler: PairSampler, target: str, n: int) -> float:
    """``n`` Adam steps of eq. (5) (or (8)): pushed samples ``[m, d]`` get logit +r, the
    other side's (``target``) real samples −r. Returns the last loss (nan when n = 0)."""
    value = math.nan
    for _ in range(n):
        idx = torch.randint(0, pushed.shape[0], (min(sampler.batch_size, pushed.shape[0]),),
                            generator=sampler.generator).to(pushed.device)
        loss = logistic_loss(clf(pushed[idx]), clf(sampler.batch(target)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
    return value


def refine_step(cfg: QFlowConfig, f: VelocityNet, opt_f: torch.optim.Optimizer,
                grid: Tensor, forward_leg: Leg, reverse_leg: Leg, sampler: PairSampler,
                local: int) -> dict[str, float]:
    """Step ``local`` of the refinement phase: one θ step of Algorithm 1 (lines 4-5 or
    9-10), with the E₀ warm-up first; returns python floats including ``loss``."""
    leg_index, within = divmod(local, cfg.E)
    forward = leg_index % 2 == 0  # P→Q legs first, then Q→P (Algorithm 1)
    src, dst = ("p", "q") if forward else ("q", "p")
    clf, opt = forward_leg if forward else reverse_leg
    if leg_index < 2 and within == 0 and cfg.E0 > 0:  # lines 2 and 7: Iter 1 only
        with torch.no_grad():
            pushed = grid_path(f, sampler.batch(src, 4 * cfg.batch_size), grid, cfg.S,
                               not forward)[-1]
        classifier_steps(clf, opt, pushed, sampler, dst, cfg.E0)
    x = sampler.batch(src)
    states = grid_path(f, x, grid, cfg.S, not forward, cfg.grad_checkpoint)
    kl = -clf(states[-1]).mean()  # eq. (6) / its Q→P analogue
    w2 = path_cost(states, grid)  # eq. (7)
    loss = kl + cfg.gamma * w2  # eq. (3)
    opt_f.zero_grad(set_to_none=True)
    loss.backward()
    opt_f.step()
    clf_loss = classifier_steps(clf, opt, states[-1].detach(), sampler, dst, cfg.E_in)
    return {"loss": loss.item(), "kl": kl.item(), "w2": w2.item(),
            "clf_loss": clf_loss, "forward": float(forward)}
