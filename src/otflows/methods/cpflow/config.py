"""Run settings of the CP-Flow experiments (Huang et al., ICLR 2021, arXiv:2012.05942):
:class:`CPFlowConfig` for density estimation and the optimal coupling (§5.1-5.3, Fig. 3-4,
Tables 1-2), :class:`VAEFlowConfig` for amortised variational inference (§5.4, Table 3).

Both are built by ``otflows.methods.base.config_from_dict``: every key required, checked by
its :func:`~otflows.methods.base.spec`; the defaults live once, in the params schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from otflows.methods.base import DTYPES, config_from_dict, spec
from otflows.methods.cpflow.baselines import BASELINES
from otflows.nn.icnn import ACTIVATIONS as ICNN_ACTIVATIONS

__all__ = ["MODELS", "TASKS", "CPFlowConfig", "VAEFlowConfig"]

MODELS = ("cpflow", *BASELINES)
"""Models a density/coupling run may train: CP-Flow or one of the zuko baselines."""
TASKS = ("density", "coupling", "vae")
"""The ``task`` values ``make_trainer`` dispatches on."""


@dataclass(frozen=True)
class CPFlowConfig:
    """One density-estimation or optimal-coupling run (CP-Flow or a zuko baseline)."""

    task: str = spec(choices=("density", "coupling"))
    model: str = spec(choices=MODELS)
    # fc: vectors; conv: 28×28 images, one conv ICNN per block; multiscale: Table 2's
    # multi-scale image flow (methods/cpflow/image.py; MNIST or CIFAR-10)
    architecture: str = spec(choices=("fc", "conv", "multiscale"))
    blocks: int = spec(min=1)  # CP-Flow blocks
    depth: int = spec(min=1)  # ICNN hidden layers K
    width: int = spec(min=2)  # ICNN hidden units (channels for conv) per layer
    alpha: float = spec(gt=0)  # initial α of F_α = α/2‖x‖² + F (§3.1)
    activation: str = spec(choices=ICNN_ACTIVATIONS)  # softplus-type s of eq. (7) (§3.1)
    actnorm: bool = spec()  # data-initialised ActNorm before each block (published code)
    lr: float = spec(gt=0)  # Adam learning rate
    weight_decay: float = spec()  # Adam weight decay
    lr_halve_every: int = spec(min=0)  # halve the learning rate every this many steps (0: never)
    batch_size: int = spec(min=1)
    iters: int = spec(min=1)  # Adam steps
    cg_tol: float = spec(gt=0)  # CG stops when ‖Hz − v‖_∞ < cg_tol (Alg. 2)
    cg_max_iter: int = spec(min=1)
    slq_steps: int = spec(min=1)  # Lanczos steps of SLQ
    slq_probes: int = spec(min=1)  # Rademacher probes of SLQ
    exact_max_dim: int = spec(min=0)  # exact log det when d ≤ this, else SLQ
    invert_tol: float = spec(gt=0)  # L-BFGS stops when max ‖∇F(x) − y‖_∞ ≤ invert_tol (Alg. 1)
    invert_max_iter: int = spec(min=1)
    transforms: int = spec(min=1)  # transforms of a MAF/NAF baseline
    monitor_every: int = spec(min=0)  # coupling: steps between KL/cost evaluations (0: none)
    dtype: str = spec(choices=tuple(DTYPES))
    # CP-Flow's training surrogate through torch.compile (architecture fc; core.py): the same
    # algorithm, float rounding differs from eager; pays off over long runs (compile ~15-50 s)
    compile: bool = spec()

    @classmethod
    def from_dict(cls, d: dict) -> CPFlowConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return config_from_dict(cls, d, "cpflow")


@dataclass(frozen=True)
class VAEFlowConfig:
    """One amortised-VI run: the MNIST VAE with a CP-Flow or a Gaussian posterior."""

    task: str = spec(choices=("vae",))
    posterior: str = spec(choices=("cpflow", "gaussian"))
    latent_dim: int = spec(min=1)
    width: int = spec(min=1)  # channels of the VAE's first convolution
    icnn_width: int = spec(min=2)
    icnn_depth: int = spec(min=1)
    context: int = spec(min=1)  # encoder features conditioning the ICNN
    lr: float = spec(gt=0)  # Adam learning rate
    batch_size: int = spec(min=1)
    iters: int = spec(min=1)  # Adam steps
    cg_tol: float = spec(gt=0)  # CG tolerance of the Alg. 2 surrogate
    cg_max_iter: int = spec(min=1)
    elbo_samples: int = spec(min=1)  # draws of z₀ per test image in the −ELBO estimate

    @classmethod
    def from_dict(cls, d: dict) -> VAEFlowConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return config_from_dict(cls, d, "cpflow (vae)")
