"""Monge-Ampère flow: the gradient flow of one learned scalar potential, integrated by RK4.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188.

The linearised Monge-Ampère equation turns a Brenier map into the flow dx/dt = ∇ϕ(x) (eq. 2)
with the density following d ln p/dt = −∇²ϕ(x) (eq. 3). The package holds:

* ``potential``: ϕ(x) = w₂ᵀσ(W₁x + b₁), σ = softplus (§3), with its closed-form gradient
  and exact Laplacian;
* ``flow``: eqs. (2)-(3) integrated by fixed-step RK4 (T = ε·steps), backwards for the NLL
  of eq. (6), forwards for samples;
* ``symmetry``: spin flip × translations × D4 and the symmetrised potential (§4.2);
* ``training``: the state both trainers share (potential, Adam, generator, state dict);
* ``density``: maximum likelihood (eq. 6) on samples (§4.1, MNIST and the 2-D toys);
* ``ising``: the variational free energy by the reverse KL (eq. 7) for the Ising energy of
  eq. (8) (§4.2);
* ``diagnostics``: Hessian eigenvalues of ϕ along paths (RK4 stability), round-trip errors,
  the condition number of the discrete map;
* ``maf``: the zuko MAF baseline of Table 1 at default scale (matched parameter count).

``make_trainer`` picks the trainer by the run config's ``task``.
"""

from __future__ import annotations

import numpy as np
import torch

from otflows.data.ising import IsingProblem
from otflows.distributions import standard_normal_log_prob
from otflows.methods.mongeampere.density import DensityConfig, DensityTrainer
from otflows.methods.mongeampere.flow import (
    FlowOutput,
    integrate,
    negative_log_likelihood,
    sample_flow,
)
from otflows.methods.mongeampere.ising import IsingConfig, IsingTrainer
from otflows.methods.mongeampere.maf import MAFConfig, MAFTrainer
from otflows.methods.mongeampere.potential import (
    FlowPotential,
    PotentialDerivatives,
    SoftplusPotential,
)
from otflows.methods.mongeampere.symmetry import SymmetryGroup, symmetrized_potential

__all__ = [
    "DensityConfig",
    "DensityTrainer",
    "FlowOutput",
    "FlowPotential",
    "IsingConfig",
    "IsingTrainer",
    "MAFConfig",
    "MAFTrainer",
    "PotentialDerivatives",
    "SoftplusPotential",
    "SymmetryGroup",
    "integrate",
    "make_trainer",
    "negative_log_likelihood",
    "sample_flow",
    "standard_normal_log_prob",
    "symmetrized_potential",
]


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None
                 ) -> DensityTrainer | IsingTrainer | MAFTrainer:
    """The trainer named by ``cfg["task"]``: ``density`` (samples in ``train``; ``arrays``
    may hold the ``test`` split for the per-epoch curve and ``test_labels`` for Fig. 3b),
    ``maf`` (the MAF baseline on the same arrays) or ``ising`` (``train`` is K + aI and
    ``arrays`` the rest of ``data/processed/ising_L<L>.npz``)."""
    task = cfg.get("task") if isinstance(cfg, dict) else None
    arrays = dict(arrays or {})
    if task == "density":
        lam = float(arrays["logit_lambda"]) if "logit_lambda" in arrays else None
        return DensityTrainer(DensityConfig.from_dict(cfg), train, seed, device,
                              test=arrays.get("test"), logit_lambda=lam,
                              test_labels=arrays.get("test_labels"))
    if task == "maf":
        lam = float(arrays["logit_lambda"]) if "logit_lambda" in arrays else None
        return MAFTrainer(MAFConfig.from_dict(cfg), train, seed, device,
                          test=arrays.get("test"), logit_lambda=lam)
    if task == "ising":
        problem = IsingProblem.from_arrays({**arrays, "train": train})
        return IsingTrainer(IsingConfig.from_dict(cfg), problem, seed, device)
    raise ValueError(f"Monge-Ampère config: task={task!r}; expected 'density', 'maf' or "
                     "'ising'")
