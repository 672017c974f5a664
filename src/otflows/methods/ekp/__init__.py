"""Entropy-Kantorovich potentials (EKP): a CNF recovered from two entropic-OT dual potentials.

Finlay, Gerolin, Oberman, Pooladian, "Learning normalizing flows from Entropy-Kantorovich
potentials", arXiv:2006.06033 (2020). Two scalar networks ϕ (data side) and ψ (Gaussian side)
are trained by alternating stochastic ascent on the entropic-OT dual (no ODE during
training); the flow, its density and samples are then read off the potentials.

Modules: ``potentials`` (the ϕ, ψ networks, App. D), ``transform`` (the MC heat smoothing of
eq. 16, the (c, ε)-transform of eqs. 7/19, the dual of eqs. 12/15), ``flow`` (the flow of
eqs. 16–18, its density eq. 17, dopri5 sampling and the CNF likelihood), ``gaussian``
(App. C's closed-form Gaussian interpolations), ``mass`` (the grid integral of the CNF
density and its quadrature-error estimate, claim E4), ``quadrature`` (the (c, ε)-transform by
quadrature in 2-D, without eq. 19's exploitable MC bias), ``config`` (the run config) and
``trainer`` (Algorithm 1, eqs. 20–21, or the semi-dual ascent of eq. 15, and the
evaluation). Each module's docstring lists where it departs from the paper's printed signs
and factors.
"""

from otflows.methods.ekp.config import EKPConfig
from otflows.methods.ekp.flow import EKPFlow, FlowSamples, cnf_log_likelihood, sample_flow
from otflows.methods.ekp.gaussian import (
    entropic_interpolation_covariance,
    w2_geodesic_covariance,
)
from otflows.methods.ekp.mass import GridMass, grid_mass
from otflows.methods.ekp.potentials import Potential, PotentialMLP
from otflows.methods.ekp.quadrature import QuadratureGrid, c_eps_transform_quadrature
from otflows.methods.ekp.trainer import FIELD_TIMES, EKPTrainer, make_trainer
from otflows.methods.ekp.transform import (
    DualTerms,
    c_eps_transform,
    coupling,
    dual_terms,
    dual_terms_from_values,
    log_heat_smoothing,
)

__all__ = [
    "FIELD_TIMES",
    "DualTerms",
    "EKPConfig",
    "EKPFlow",
    "EKPTrainer",
    "FlowSamples",
    "GridMass",
    "Potential",
    "PotentialMLP",
    "QuadratureGrid",
    "c_eps_transform",
    "c_eps_transform_quadrature",
    "cnf_log_likelihood",
    "coupling",
    "dual_terms",
    "dual_terms_from_values",
    "entropic_interpolation_covariance",
    "grid_mass",
    "log_heat_smoothing",
    "make_trainer",
    "sample_flow",
    "w2_geodesic_covariance",
]
