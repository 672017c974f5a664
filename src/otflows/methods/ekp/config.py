"""The run configuration of EKP (Finlay et al., arXiv:2006.06033): the ``ekp`` section of
params.yaml, every key required (defaults: ``schemas/params.schema.yaml``; App. D values)."""

from __future__ import annotations

from dataclasses import dataclass

from otflows.methods.base import config_from_dict, spec

__all__ = ["EKPConfig"]


@dataclass(frozen=True)
class EKPConfig:
    """Run configuration (the `ekp` section of params.yaml, App. D for the paper's values)."""

    width: int = spec(min=1)  # hidden width of both potentials
    n_layers: int = spec(min=2)  # fully connected layers per potential
    quadratic_base: bool = spec()  # add −ε‖x−m‖²/(2v) to ϕ, −ε‖y‖²/2 to ψ (potentials.py)
    eps: float = spec(gt=0)  # entropic regularisation ε
    alpha: float = spec()  # L2 penalty α of eqs. (20)-(21)
    lr: float = spec(gt=0)  # Adam step size η of Algorithm 1
    batch_size: int = spec(min=1)  # B, from the data and from N(0, I)
    n_mc: int = spec(min=1)  # N, MC samples of the (c, ε)-transform in training
    ascent: str = spec(choices=("alg1", "semi_dual"))  # trainer.py: Algorithm 1's J̃/Ĩ steps,
    # or ϕ on the semi-dual of eq. (15) with ψ := ϕ^(c,ε) fitted by least squares
    quad_grid: int = spec()  # 0: eq. (19)'s MC transform; n > 0 (2-D): quadrature, n² nodes
    iters: int = spec(min=1)  # k_max
    n_mc_flow: int = spec(min=1)  # MC samples of the heat kernels in the flow (App. D: 200)
    flow_batch: int = spec(min=1)  # points per ODE solve (App. D: 1000)
    rtol: float = spec(gt=0)  # dopri5 tolerances
    atol: float = spec(gt=0)
    rk4_steps: int = spec()  # > 0: fixed-step RK4 with this many steps instead of dopri5
    nll_points: int = spec()  # test points scored by the CNF likelihood (0: all)
    norm_grid: int = spec(min=1)  # grid points per axis normalising eq. (17) in 2-D
    mass_grid: int = spec(min=2)  # grid points per axis of the CNF density's mass check
    field_grid: int = spec(min=1)  # grid points per axis of the Fig. 1 heat maps

    @classmethod
    def from_dict(cls, cfg: dict) -> EKPConfig:
        """Typed config from a run config dict; a ValueError names unknown, missing or bad keys."""
        return config_from_dict(cls, cfg, "ekp")
