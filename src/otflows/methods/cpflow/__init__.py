"""Convex Potential Flows: the flow is the gradient map of a strongly convex ICNN potential.

Huang, Chen, Tsirigotis, Courville, "Convex Potential Flows: Universal Probability
Distributions with Optimal Transport and Convex Optimization", ICLR 2021, arXiv:2012.05942.

The package, bottom up (no module imports this one, none imports another in a circle):

* ``core``: the flow (blocks ∇F_α, §3.1), Algorithm 1 (L-BFGS inversion), Algorithm 2 (the
  CG surrogate of ∇ log det), SLQ or exact log det at evaluation;
* ``baselines``: the zuko MAF, NAF and linear IAF of Fig. 3 and Fig. 4;
* ``config``: :class:`CPFlowConfig` and :class:`VAEFlowConfig` (``config_from_dict``);
* ``density``: :func:`build_flow` and :class:`DensityTrainer` (density estimation §5.1/5.3,
  the optimal coupling §5.2);
* ``vae``: :class:`VAEFlowTrainer`, amortised variational inference (§5.4, Table 3).

:func:`make_trainer` dispatches on the run config's ``task``.
"""

from __future__ import annotations

import numpy as np
import torch

from otflows.methods.cpflow.config import TASKS, CPFlowConfig, VAEFlowConfig
from otflows.methods.cpflow.core import CPFlow, invert_potential, surrogate_log_det
from otflows.methods.cpflow.density import DensityTrainer, build_flow
from otflows.methods.cpflow.vae import VAEFlowTrainer, make_vae_trainer

__all__ = ["CPFlow", "CPFlowConfig", "DensityTrainer", "VAEFlowConfig", "VAEFlowTrainer",
           "build_flow", "invert_potential", "make_trainer", "surrogate_log_det"]


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None
                 ) -> DensityTrainer | VAEFlowTrainer:
    """The trainer named by ``cfg["task"]``: ``density`` or ``coupling`` (samples in
    ``train`` ``[n, d]``; ``arrays`` may hold ``test``, ``cov``, ``logit_lambda``) or ``vae``
    (amortised VI on MNIST pixels in ``arrays``)."""
    task = cfg.get("task") if isinstance(cfg, dict) else None
    if task in ("density", "coupling"):
        return DensityTrainer(CPFlowConfig.from_dict(cfg), train, seed, device, arrays)
    if task == "vae":
        return make_vae_trainer(cfg, train, seed, device, arrays)
    raise ValueError(f"CP-Flow config: task={task!r}; expected one of {list(TASKS)}")
