"""Settings of one Q-flow run (Xu, Cheng, Xie, arXiv:2305.11857): Algorithm 1's
hyperparameters {γ, {t_k}, Tot, E, E₀, E_in}, the networks' sizes and the training phases."""

from __future__ import annotations

from dataclasses import dataclass

from otflows.methods.base import DTYPES, config_from_dict, spec
from otflows.metrics.ratio import HEADS

__all__ = ["PHASES", "TASKS", "QFlowConfig"]

TASKS = ("toy", "pair")
"""``toy``: P = N(0, I), Q = the toy samples; ``pair``: P and Q two sample sets."""

PHASES = ("init", "refine", "ratio", "one_ratio", "tre_linear", "tre_qflow", "dre_inf")
"""Training phases in order; each ``train_step`` runs one step of one phase."""


@dataclass(frozen=True)
class QFlowConfig:
    """One Q-flow run (the ``qflow`` section's run keys; every key required)."""

    task: str = spec(choices=TASKS)  # "toy" | "pair"
    width: int = spec(min=1)  # hidden units of the velocity MLP
    n_layers: int = spec(min=1)  # hidden layers of the velocity MLP
    K: int = spec(min=1)  # W₂ grid intervals (eq. (7))
    S: int = spec(min=1)  # RK4 sub-steps per interval (§3.2: 3-5)
    gamma: float = spec(min=0)  # weight γ of the W₂ term (eq. (3))
    grad_checkpoint: bool = spec()  # Algorithm 1: recompute each grid interval in backward
    lr: float = spec(gt=0)  # Adam, velocity, initial flow
    refine_lr: float = spec(gt=0)  # Adam, velocity, Algorithm 1 (smaller: KL is adversarial)
    batch_size: int = spec(min=2)  # samples of P and of Q per step
    init_iters: int = spec(min=0)  # flow-matching steps of the initial flow (§3.3)
    tot: int = spec(min=0)  # outer iterations "Tot" of Algorithm 1 (0: no refinement)
    E: int = spec(min=1)  # θ steps per leg and Iter
    E0: int = spec(min=0)  # classifier steps before a leg's first θ step (Iter 1)
    E_in: int = spec(min=0)  # classifier steps after every θ step
    clf_width: int = spec(min=1)  # hidden units of r₁, r̃₀ and of the baselines' classifiers
    clf_lr: float = spec(gt=0)  # Adam, classifiers
    dre: bool = spec()  # train the Q-flow-ratio net (§4.1)
    baselines: bool = spec()  # with dre: also the DRE baselines (1 ratio, TRE ×2, DRE-∞)
    ratio_width: int = spec(min=1)  # hidden units of r(x, s)
    ratio_head: str = spec(choices=HEADS)  # "mlp" | "quadratic": every DRE net's logit family
    ratio_intervals: int = spec(min=1)  # L, intervals of the ratio grid (and of both TREs)
    ratio_iters: int = spec(min=0)  # Adam steps of the ratio net (and of each baseline)
    ratio_lr: float = spec(gt=0)  # Adam, ratio net and baselines
    field_grid: int = spec(min=0)  # 2-D: Fig. 2b log-ratios on a grid this size; 0 none
    dtype: str = spec(choices=tuple(DTYPES))  # "float32" | "float64"

    def __post_init__(self) -> None:
        if self.task == "toy" and self.dre:
            raise ValueError("qflow: dre=true needs task 'pair' (a P sample set)")

    @classmethod
    def from_dict(cls, d: dict) -> QFlowConfig:
        """Validate and build; raise ValueError naming unknown, missing or bad keys."""
        return config_from_dict(cls, d, "qflow")

    def phase_lengths(self) -> dict[str, int]:
        """Steps of each phase of :data:`PHASES`."""
        n = self.ratio_iters if self.dre else 0
        b = n if self.baselines else 0
        return {"init": self.init_iters, "refine": 2 * self.tot * self.E, "ratio": n,
                "one_ratio": b, "tre_linear": b, "tre_qflow": b, "dre_inf": b}
