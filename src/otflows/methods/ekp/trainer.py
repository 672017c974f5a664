"""EKP training and evaluation: Algorithm 1 of Finlay, Gerolin, Oberman, Pooladian, "Learning
normalizing flows from Entropy-Kantorovich potentials", arXiv:2006.06033 — alternating
stochastic ascent on the penalised objectives J̃(ϕ), Ĩ(ψ) of eqs. (20)–(21) (no ODE during
training) — and the flow, densities, samples and Fig. 1 fields read off the potentials.

Conventions where the paper's text is inconsistent:

* J̃ and Ĩ (eqs. 20–21) are D_ε with the auxiliary variable as printed: the linear terms take
  this potential's (c, ε)-transform, the coupling term the other network. The coupling
  ∫∫ exp((ϕ+ψ−c)/ε) is estimated by importance sampling under ν (the only computable side);
  ψ^(c,ε) = ε log p_D − ε log H_ε[e^{ψ/ε}] enters without its constant E_μ[ε log p_D], as
  the paper drops it after eq. (19).
* The L2 penalties are subtracted (the objectives are ascended; eqs. 20–21 print +α) and
  both are measured where they are computable, on the Gaussian side: α E_ν[(ϕ^(c,ε) − ψ)²]
  (Ĩ's printed residual ψ^(c,ε) − ϕ needs log p_D, unknown), a batch mean (transform.py's
  :func:`~otflows.methods.ekp.transform.j_tilde`).
* ``ascent: semi_dual`` (an option, issue 19; the default stays Algorithm 1) replaces the two
  steps: ϕ ascends the semi-dual J(ϕ) of eq. (15), concave in ϕ, and ψ := ϕ^(c,ε)
  (Proposition 1) is fitted by least squares in L²(ν); with ``quad_grid`` > 0 the transform
  is computed by quadrature (quadrature.py). On checkerboard Algorithm 1 ends 800 steps at
  J ≈ −2.8 (N = 64 estimate; optimum −1.77 by a grid Sinkhorn), the semi-dual ascent with
  quadrature (lr 1e-2) at −1.96, in a third of the CPU; with MC transforms (N doubled up to
  256 on a bias guard) it reads −2.35 at N = 64 but is −2.78 exact after 200 steps — the
  ascent follows eq. (19)'s Jensen bias. Its sharper potentials defeat the flow's MC heat
  kernels (flow.py, ``n_mc_flow``): checkerboard eq. (17) NLL 3.65, CNF NLL 16.2 (M = 32),
  5.27 (M = 128); one 100-point CNF solve takes 878 field calls at rtol 1e-4, and one toy's
  evaluation > 6 CPU-min (Algorithm 1's models: ~40 s).
* The logs report the dual at the best additive constant, D_ε itself and the residual raw
  and centred (:class:`~otflows.methods.ekp.transform.DualTerms`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.base import Evaluation
from otflows.methods.ekp.config import EKPConfig
from otflows.methods.ekp.flow import (
    EKPFlow,
    FlowSamples,
    cnf_log_likelihood,
    sample_flow,
    sample_path,
)
from otflows.methods.ekp.mass import GridMass, grid_mass
from otflows.methods.ekp.potentials import Potential, PotentialMLP
from otflows.methods.ekp.quadrature import QuadratureGrid, c_eps_transform_quadrature
from otflows.methods.ekp.transform import (
    c_eps_transform,
    dual_terms,
    dual_terms_from_values,
    i_tilde,
    j_tilde,
)

__all__ = ["FIELD_TIMES", "EKPTrainer", "make_trainer"]

# Times of Fig. 1 (vector field over the log-density at t = 0, .25, .5, .75, 1).
FIELD_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)


class EKPTrainer:
    """Algorithm 1: alternating ascent on J̃(ϕ) and Ĩ(ψ); the flow, densities and samples."""

    def __init__(self, cfg: EKPConfig, train: np.ndarray, seed: int,
                 device: torch.device) -> None:
        train = np.asarray(train, dtype=np.float32)
        if train.ndim != 2 or train.shape[0] < 2:
            raise ValueError(f"ekp: training data must be [n >= 2, d]; got {train.shape}")
        self.cfg, self.seed, self.device = cfg, int(seed), device
        self.n_steps, self.step_index = cfg.iters, 0
        self.dim = train.shape[1]
        self.train = torch.as_tensor(train, device=device)
        self._lo, self._hi = train.min(0), train.max(0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            # quadratic_base: ϕ starts at ε log N(data mean, data variances), ψ at ε log ν
            # (potentials.py); otherwise both are the networks alone (near a constant).
            base = cfg.eps if cfg.quadratic_base else 0.0
            moments = self.train.mean(0).cpu(), self.train.var(0).clamp_min(1e-6).cpu()
            self.phi = PotentialMLP(self.dim, cfg.width, cfg.n_layers, base,
                                    *moments).to(device)
            self.psi = PotentialMLP(self.dim, cfg.width, cfg.n_layers, base).to(device)
        self.opt_phi = torch.optim.Adam(self.phi.parameters(), lr=cfg.lr)
        self.opt_psi = torch.optim.Adam(self.psi.parameters(), lr=cfg.lr)
        # Batches and MC noise come from this generator only (CPU: bit-identical on resume).
        self.gen = torch.Generator().manual_seed(self.seed + 1)
        self._log_z: float | None = None
        self._quad: QuadratureGrid | None = None
        if cfg.quad_grid:  # the data box ∪ [−3, 3]² and 3√ε on every side (quadrature.py)
            self._require_2d("quad_grid")
            lo, hi = self._box(0.0, include_gaussian=True)
            pad = 3.0 * math.sqrt(cfg.eps)
            self._quad = QuadratureGrid(lo - pad, hi + pad, cfg.quad_grid)

    # ------------------------------------------------------------------ harness API
    def _randn(self, *shape: int, gen: torch.Generator | None = None) -> Tensor:
        return torch.randn(*shape, generator=gen or self.gen).to(self.device)

    def train_step(self) -> dict[str, float]:
        """One iteration of Algorithm 1 (or of the semi-dual ascent, ``ascent``); returns the
        objectives and the DualTerms of the new pair."""
        c, eps = self.cfg, self.cfg.eps
        idx = torch.randint(0, self.train.shape[0], (c.batch_size,), generator=self.gen)
        x = self.train[idx.to(self.device)]
        z = self._randn(c.batch_size, self.dim)
        if c.ascent == "semi_dual":
            return self._semi_dual_step(x, z)
        noise_z = self._randn(c.batch_size, c.n_mc, self.dim)  # MC around z for ϕ^(c,ε)
        noise_x = self._randn(c.batch_size, c.n_mc, self.dim)  # MC around x for ψ^(c,ε)

        # ϕ-step, eq. (20), ψ fixed; then the ψ-step, eq. (21), with the updated ϕ fixed.
        with torch.no_grad():
            psi_z = self.psi(z)
        j_val = j_tilde(self.phi, psi_z, x, z, eps, c.alpha, noise_z)
        self.opt_phi.zero_grad(set_to_none=True)
        (-j_val).backward()
        self.opt_phi.step()
        with torch.no_grad():
            phi_c = c_eps_transform(self.phi, z, eps, noise_z, standard_normal_log_prob(z))
        i_val = i_tilde(self.psi, phi_c, x, z, eps, c.alpha, noise_x)
        self.opt_psi.zero_grad(set_to_none=True)
        (-i_val).backward()
        self.opt_psi.step()

        # Diagnostics of the new pair on this batch: D_ε (eq. 12), J (eq. 15), ‖ϕ^(c,ε) − ψ‖.
        with torch.no_grad():
            terms = dual_terms_from_values(self.phi(x), self.psi(z), phi_c, eps)
        self.step_index += 1
        self._log_z = None
        j_f, i_f = float(j_val.detach()), float(i_val.detach())
        return {"loss": -(j_f + i_f), "J_tilde": j_f, "I_tilde": i_f,
                **{k: float(v) for k, v in vars(terms).items()}}

    def _transform(self, z: Tensor) -> Callable[[Potential], Tensor]:
        """ϕ ↦ ϕ^(c,ε)(z) (eqs. 7, 19) for this step: quadrature on a grid shifted at random
        (``quad_grid`` > 0, quadrature.py) or eq. (19)'s MC with N = ``n_mc`` fresh samples."""
        c = self.cfg
        log_nu = standard_normal_log_prob(z)
        if c.quad_grid:
            nodes = self._quad.nodes(torch.rand(2, generator=self.gen))
            return lambda f: c_eps_transform_quadrature(f, z, c.eps, nodes, self._quad.log_cell)
        noise = self._randn(z.shape[0], c.n_mc, self.dim)
        return lambda f: c_eps_transform(f, z, c.eps, noise, log_nu)

    def _semi_dual_step(self, x: Tensor, z: Tensor) -> dict[str, float]:
        # ϕ ascends the semi-dual J(ϕ) = E_μ ϕ + E_ν ϕ^(c,ε) − ε (eq. 15; concave in ϕ); ψ is
        # the maximiser of D_ε(ϕ, ·), ϕ^(c,ε) (Proposition 1), fitted by least squares in
        # L²(ν) — the residual that eqs. (20)–(21) penalise. Algorithm 1's J̃ adds ψ-coupling
        # and penalty terms that do not move ϕ's shape (issue 19), and with MC transforms the
        # ascent follows eq. (19)'s Jensen bias (quadrature.py).
        transform = self._transform(z)
        j_val = self.phi(x).mean() + transform(self.phi).mean() - self.cfg.eps
        self.opt_phi.zero_grad(set_to_none=True)
        (-j_val).backward()
        self.opt_phi.step()
        with torch.no_grad():
            phi_c = transform(self.phi)
        fit = (self.psi(z) - phi_c).pow(2).mean()
        self.opt_psi.zero_grad(set_to_none=True)
        fit.backward()
        self.opt_psi.step()
        with torch.no_grad():
            terms = dual_terms_from_values(self.phi(x), self.psi(z), phi_c, self.cfg.eps)
        self.step_index += 1
        self._log_z = None
        j_f = float(j_val.detach())
        return {"loss": -j_f, "semi_dual_step": j_f, "psi_fit": float(fit.detach()),
                **{k: float(v) for k, v in vars(terms).items()}}

    def state_dict(self) -> dict:
        """Weights, optimisers, the generator state and the step (weights_only-loadable)."""
        return {"phi": self.phi.state_dict(), "psi": self.psi.state_dict(),
                "opt_phi": self.opt_phi.state_dict(), "opt_psi": self.opt_psi.state_dict(),
                "gen": self.gen.get_state(), "step": self.step_index}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        self.phi.load_state_dict(state["phi"])
        self.psi.load_state_dict(state["psi"])
        self.opt_phi.load_state_dict(state["opt_phi"])
        self.opt_psi.load_state_dict(state["opt_psi"])
        self.gen.set_state(state["gen"])
        self.step_index = int(state["step"])
        self._log_z = None

    def n_parameters(self) -> int:
        """Parameters of both potentials (the flow needs ϕ and ψ)."""
        return sum(p.numel() for m in (self.phi, self.psi) for p in m.parameters())

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter: those of ϕ, then those of ψ."""
        return [*self.phi.parameters(), *self.psi.parameters()]

    # ------------------------------------------------------------------ the flow
    def flow(self, gen: torch.Generator) -> EKPFlow:
        """The CNF of the current potentials with fresh common random numbers from gen."""
        m = self.cfg.n_mc_flow
        return EKPFlow(self.phi, self.psi, self.cfg.eps, self._randn(m, self.dim, gen=gen),
                       self._randn(m, self.dim, gen=gen))

    def _density_flow(self) -> EKPFlow:
        # The model's CNF: one fixed set of MC heat-kernel noise (from the seed only), shared by
        # eq. (17), the CNF likelihood, the mass and the samples. A fresh set per solve of
        # flow_batch points stitched several different flows into one "density": on the default
        # checkerboard its grid mass moved from 1.006 to 0.942 with the noise (issue 19).
        return self.flow(torch.Generator().manual_seed(self.seed + 7))

    def _box(self, pad: float, include_gaussian: bool) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._lo.astype(float), self._hi.astype(float)
        if include_gaussian:
            lo, hi = np.minimum(lo, -3.0), np.maximum(hi, 3.0)
        span = hi - lo
        return lo - pad * span, hi + pad * span

    def _grid(self, n: int, include_gaussian: bool) -> tuple[np.ndarray, np.ndarray, Tensor]:
        lo, hi = self._box(0.25 if not include_gaussian else 0.05, include_gaussian)
        gx, gy = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        xx, yy = np.meshgrid(gx, gy)
        pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32,
                              device=self.device)
        return gx, gy, pts

    def _require_2d(self, what: str) -> None:
        if self.dim != 2:
            raise ValueError(f"ekp: {what} normalises eq. (17) on a grid, which needs d = 2 "
                             f"(data has d = {self.dim})")

    def log_normaliser(self) -> float:
        """log ∫ exp((ϕ + ψ_0)/ε) dx over the data box ± 25 % (grid, 2-D), nats."""
        if self._log_z is None:
            self._require_2d("log_density")
            gx, gy, pts = self._grid(self.cfg.norm_grid, include_gaussian=False)
            logp = self._density_flow().log_density(0.0, pts).double()
            cell = (gx[1] - gx[0]) * (gy[1] - gy[0])
            self._log_z = float(torch.logsumexp(logp, 0)) + math.log(cell)
        return self._log_z

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log ρ_0^ε(x) of eq. (17), normalised on a grid, nats: x ``[n, d]`` → ``[n]``."""
        self._require_2d("log_density")
        pts = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        logp = self._density_flow().log_density(0.0, pts).double() - self.log_normaliser()
        return logp.cpu().numpy()

    def cnf_log_density(self, x: Tensor) -> Tensor:
        """log ρ_0(x) by the CNF change of variables (eq. 8) of the model's flow, nats:
        x ``[n, d]`` → ``[n]``, in solves of ``flow_batch`` points."""
        c, flow = self.cfg, self._density_flow()
        return torch.cat([cnf_log_likelihood(flow, x[i: i + c.flow_batch], c.rtol, c.atol,
                                             c.rk4_steps)
                          for i in range(0, len(x), c.flow_batch)])

    def density_mass(self) -> GridMass:
        """∫ exp(log ρ_0) dx of the CNF density (eq. 8) on a ``mass_grid``² grid over the data
        box ∪ [−3, 3]² ± 25 % (2-D), with its quadrature-error estimate (``mass.py``): 1 for a
        flow whose density is computed correctly."""
        self._require_2d("density_mass")
        lo, hi = self._box(0.25, include_gaussian=True)
        return grid_mass(lambda pts: self.cnf_log_density(pts.to(self.device)), lo, hi,
                         self.cfg.mass_grid)

    def sample(self, n: int, gen: torch.Generator) -> FlowSamples:
        """n samples of ρ_0: z ~ N(0, I) from gen pushed by the model's flow, ``flow_batch`` at
        a time."""
        xs, ks = [], []
        flow = self._density_flow()
        for start in range(0, n, self.cfg.flow_batch):
            m = min(self.cfg.flow_batch, n - start)
            z = self._randn(m, self.dim, gen=gen)
            out = sample_flow(flow, z, self.cfg.rtol, self.cfg.atol, self.cfg.rk4_steps)
            xs.append(out.x)
            ks.append(out.kinetic)
        return FlowSamples(torch.cat(xs), torch.cat(ks))

    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed``."""
        # The same generator, solver and tolerances as evaluate's samples: for one seed both
        # return the same points (the transport-cost state rides along; it adds no field call).
        gen = torch.Generator().manual_seed(int(seed) + 1000)
        return self.sample(int(n), gen).x.double().cpu().numpy()

    def field(self, times: tuple[float, ...] = FIELD_TIMES, arrows: int = 16,
              samples: int = 400) -> dict[str, np.ndarray]:
        """Fig. 1 data: log ρ_t (grid-normalised) and v_t on grids, and ``samples`` points of
        N(0, I) pushed back by the flow (their own seed), at each t in ``times``."""
        self._require_2d("field")
        flow = self._density_flow()
        gx, gy, pts = self._grid(self.cfg.field_grid, include_gaussian=True)
        ax, ay, apts = self._grid(arrows, include_gaussian=True)
        cell = (gx[1] - gx[0]) * (gy[1] - gy[0])
        logps, vels = [], []
        for t in times:
            logp = flow.log_density(t, pts).double()
            logp = logp - torch.logsumexp(logp, 0) - math.log(cell)
            logps.append(logp.reshape(len(gy), len(gx)).cpu().numpy())
            v, _ = flow.velocity(t, apts)
            vels.append(v.reshape(len(ay), len(ax), 2).cpu().numpy())
        z = self._randn(samples, self.dim, gen=torch.Generator().manual_seed(self.seed + 11))
        path = sample_path(flow, z, times, self.cfg.rtol, self.cfg.atol)
        return {"flow_t": np.asarray(times), "flow_x": gx, "flow_y": gy,
                "flow_logp": np.stack(logps), "flow_arrow_x": ax, "flow_arrow_y": ay,
                "flow_velocity": np.stack(vels),
                "flow_samples": path.double().cpu().numpy()}

    def _semi_dual_mc_bias(self, x: Tensor, gen: torch.Generator, points: int = 500,
                           factor: int = 16) -> float:
        """J(ϕ) of eq. (15) with training's N MC samples of ϕ^(c,ε) (eq. 19) minus J with
        factor·N: the Jensen bias the ascent can exploit (tests/methods/test_ekp_mc_transform.py;
        ≈ 0 while ϕ is wide against N(z, ε), growing as ϕ becomes peaked), nats·ε."""
        c = self.cfg
        z = self._randn(points, self.dim, gen=gen)
        with torch.no_grad():
            phi_x = self.phi(x[:points]).double().mean()
            js = [float(phi_x + c_eps_transform(self.phi, z, c.eps,
                                                self._randn(points, n, self.dim, gen=gen),
                                                standard_normal_log_prob(z)).double().mean())
                  for n in (c.n_mc, factor * c.n_mc)]
        return js[0] - js[1]

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Samples (dopri5), test NLL two ways, the CNF density's mass on a grid, final
        dual/residual, Fig. 1 fields."""
        c = self.cfg
        gen = torch.Generator().manual_seed(int(seed) + 1000)  # as generate's
        test_t = torch.as_tensor(np.asarray(test, dtype=np.float32), device=self.device)
        drawn = self.sample(n_samples, gen)
        if c.nll_points and c.nll_points < len(test_t):
            pick = torch.randperm(len(test_t), generator=gen)[: c.nll_points]
            scored = test_t[pick.to(self.device)]
        else:
            scored = test_t
        logp_cnf = self.cnf_log_density(scored)
        z = self._randn(len(test_t), self.dim, gen=gen)
        with torch.no_grad():
            terms = dual_terms(self.phi, self.psi, test_t, z, c.eps,
                               self._randn(len(test_t), c.n_mc, self.dim, gen=gen))
        metrics = {"nll_nats": float(-logp_cnf.double().mean()),
                   "n_parameters": float(self.n_parameters()),
                   "transport_cost": float(drawn.kinetic.double().mean()),
                   "dual_objective": float(terms.dual),
                   "dual_objective_raw": float(terms.dual_raw),
                   "semi_dual": float(terms.semi_dual),
                   "constraint_residual": float(terms.residual),
                   "constraint_residual_centred": float(terms.residual_centred),
                   "semi_dual_mc_bias": self._semi_dual_mc_bias(test_t, gen)}
        extras: dict[str, np.ndarray] = {}
        if self.dim == 2:
            metrics["nll_closed_form_nats"] = float(-self.log_density(test).mean())
            metrics["log_normaliser"] = self.log_normaliser()
            mass = self.density_mass()
            metrics["density_mass"] = mass.mass
            metrics["density_mass_error"] = mass.error
            # The share of generated samples outside density_mass's box: the two add up to 1.
            lo, hi = self._box(0.25, include_gaussian=True)
            x = drawn.x.double().cpu().numpy()
            metrics["samples_outside_mass_box"] = float(np.mean(np.any((x < lo) | (x > hi), 1)))
            extras = self.field()
        return Evaluation(metrics=metrics,
                          samples=drawn.x.double().cpu().numpy().astype(np.float64),
                          extras=extras)


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device) -> EKPTrainer:
    """The harness entry point: an :class:`EKPTrainer` for run config ``cfg``."""
    return EKPTrainer(EKPConfig.from_dict(cfg), train, seed, device)
