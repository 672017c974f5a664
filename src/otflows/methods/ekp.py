"""Entropy-Kantorovich potentials (EKP): a CNF recovered from two entropic-OT dual potentials.

Finlay, Gerolin, Oberman, Pooladian, "Learning normalizing flows from Entropy-Kantorovich
potentials", arXiv:2006.06033 (2020). Two scalar networks ϕ (data side) and ψ (Gaussian side)
are trained by alternating stochastic ascent on the entropic-OT dual (no ODE during
training); the flow, its density and samples are then read off the potentials.

Implemented here:

* the heat-kernel smoothing ε log H_s[e^{f/ε}] of eq. (16) and the (c, ε)-transform of
  eqs. (7)/(19), both by Monte-Carlo with a log-sum-exp, vectorised over the batch;
* the dual D_ε of eq. (12), the semi-dual of eq. (15) and the constraint residual
  ‖ϕ^(c,ε) − ψ‖ (:func:`dual_terms`);
* Algorithm 1 with the penalised objectives J̃, Ĩ of eqs. (20)–(21) (:class:`EKPTrainer`);
* the flow of eqs. (16)–(18) (:class:`EKPFlow`): ϕ_t = ε log H_{tε}[e^{ϕ/ε}],
  ψ_t = ε log H_{(1−t)ε}[e^{ψ/ε}], log ρ_t = (ϕ_t + ψ_t)/ε, v_t = ∇(ψ_t − ϕ_t)/2, sampling
  backwards with dopri5 and the CNF log-likelihood with the exact divergence;
* the Gaussian closed forms of Appendix C, Example 1 (:func:`w2_geodesic_covariance`,
  :func:`entropic_interpolation_covariance`).

Conventions where the paper's text is inconsistent (each choice is the one under which
Theorem 1, eq. (13) and eq. (17) hold together; see the module's tests):

* The (c, ε)-transform is the ψ-maximiser of D_ε: ϕ^(c,ε)(y) = ε log ν(y) − ε log
  H_ε[e^{ϕ/ε}](y). Eq. (7) prints the opposite sign; eq. (19) is its second term, which is
  what :func:`log_heat_smoothing` estimates. The coupling term of eq. (12) carries the
  heat-kernel normalisation (2πε)^{−d/2} of eq. (7), so that ρ_t of eq. (17) is normalised
  at the optimum (this only shifts the optimal potentials by a constant).
* The velocity is v_t = ∇(ψ_t − ϕ_t)/2, as in Appendix C, eqs. (10)–(11), and as the
  forward Fokker–Planck equation of Appendix C gives (drift ∇ψ_t minus (ε/2)∇log ρ_t).
  Eqs. (4) and (18) print ∇(ϕ_t − ψ_t)/2, the field of the time-reversed flow.
* J̃ and Ĩ (eqs. 20–21) are D_ε with the auxiliary variable as printed: the linear terms take
  this potential's (c, ε)-transform, the coupling term the other network. The coupling
  ∫∫ exp((ϕ+ψ−c)/ε) is estimated by importance sampling under ν (the only computable side);
  ψ^(c,ε) = ε log p_D − ε log H_ε[e^{ψ/ε}] enters without its constant E_μ[ε log p_D], as
  the paper drops it after eq. (19).
* The L2 penalties are subtracted (the objectives are ascended; eqs. 20–21 print +α) and
  both are measured where they are computable, on the Gaussian side: α E_ν[(ϕ^(c,ε) − ψ)²]
  (Ĩ's printed residual ψ^(c,ε) − ϕ needs log p_D, unknown).
* J̃ and Ĩ leave the additive constants of ϕ and ψ almost free (the flow and the normalised
  densities ignore them): the residual r = ϕ^(c,ε) − ψ settles at a positive offset where
  the coupling's pull e^{−r/ε} meets the penalty's 2αr. The logs therefore report the dual
  D_ε at the best constant (max_c D_ε(ϕ, ψ + c), still a lower bound of the optimum), D_ε
  itself, and the residual both raw and centred.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor, nn

from otflows.methods.base import Evaluation
from otflows.ode import dopri5, rk4
from otflows.optim import Adam

__all__ = [
    "DualTerms",
    "EKPConfig",
    "EKPFlow",
    "EKPTrainer",
    "FlowSamples",
    "PotentialMLP",
    "c_eps_transform",
    "cnf_log_likelihood",
    "dual_terms",
    "entropic_interpolation_covariance",
    "log_heat_smoothing",
    "make_trainer",
    "sample_flow",
    "standard_normal_log_density",
    "w2_geodesic_covariance",
]

Potential = Callable[[Tensor], Tensor]  # [m, d] -> [m]

# Points pushed through a potential at once when the flow is evaluated ([chunk · M, d]).
_FLOW_POINTS = 1 << 16
# Times of Fig. 1 (vector field over the log-density at t = 0, .25, .5, .75, 1).
FIELD_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)


# --------------------------------------------------------------------------- networks
class PotentialMLP(nn.Module):
    """Scalar potential R^d → R: ``n_layers`` fully connected layers, ReLU, ``width`` (App. D)."""

    def __init__(self, dim: int, width: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"PotentialMLP: n_layers={n_layers}; expected >= 2 (input and "
                             f"output layer)")
        layers: list[nn.Module] = []
        d_in = dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            d_in = width
        layers.append(nn.Linear(d_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Potential values: x ``[m, d]`` → ``[m]``."""
        return self.net(x).squeeze(-1)


# --------------------------------------------------------------------------- transforms
def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) in nats: z ``[n, d]`` → ``[n]``."""
    d = z.shape[-1]
    return -0.5 * (z * z).sum(-1) - 0.5 * d * math.log(2.0 * math.pi)


def log_heat_smoothing(f: Potential, y: Tensor, s: float, eps: float, noise: Tensor) -> Tensor:
    """ε log H_s[e^{f/ε}](y) by Monte-Carlo (eq. 16): ε log (1/N) Σ_i exp(f(y + √s ξ_i)/ε).

    y: ``[n, d]``; s ≥ 0: variance of the heat kernel; noise ξ: ``[N, d]`` standard normal,
    shared by every point (common random numbers), or ``[n, N, d]``, one set per point.
    Returns ``[n]`` (units of f). With s = ε this is the MC estimate of eq. (19).
    """
    if s < 0:
        raise ValueError(f"log_heat_smoothing: variance s={s} < 0")
    if s == 0.0:
        return f(y)
    n, d = y.shape
    if noise.dim() == 2:
        pts = y[:, None, :] + math.sqrt(s) * noise[None, :, :]
    elif noise.dim() == 3 and noise.shape[0] == n:
        pts = y[:, None, :] + math.sqrt(s) * noise
    else:
        raise ValueError(f"log_heat_smoothing: noise shape {tuple(noise.shape)}; expected "
                         f"[N, {d}] or [{n}, N, {d}]")
    n_mc = pts.shape[1]
    vals = f(pts.reshape(-1, d)).reshape(n, n_mc) / eps
    return eps * (torch.logsumexp(vals, dim=1) - math.log(n_mc))


def c_eps_transform(f: Potential, y: Tensor, eps: float, noise: Tensor,
                    log_density: Tensor | None = None) -> Tensor:
    """(c, ε)-transform f^(c,ε)(y) = ε log ν(y) − ε log H_ε[e^{f/ε}](y) (eqs. 7, 19).

    The ψ-maximiser of D_ε for fixed ϕ = f (Proposition 1). y: ``[n, d]``; noise as in
    :func:`log_heat_smoothing`; log_density: log ν(y) ``[n]`` in nats, or None to drop that
    term (it does not depend on f; the paper's remark after eq. 19). Returns ``[n]``.
    """
    out = -log_heat_smoothing(f, y, eps, eps, noise)
    return out if log_density is None else out + eps * log_density


@dataclass
class DualTerms:
    """Dual quantities of one batch (scalars, units of the potentials)."""

    dual: Tensor  # max over a constant c of D_ε(ϕ, ψ + c), eq. (12): the flow ignores c
    dual_raw: Tensor  # D_ε(ϕ, ψ) of eq. (12), coupling normalised as in eq. (7)
    semi_dual: Tensor  # J(ϕ) = D_ε(ϕ, ϕ^(c,ε)) (eq. 15, Proposition 1)
    residual: Tensor  # ‖ϕ^(c,ε) − ψ‖ in L²(ν), the constraint of Theorem 1
    residual_centred: Tensor  # the same after removing its mean (the additive constant)


def _coupling(psi_z: Tensor, phi_c: Tensor, eps: float) -> Tensor:
    """(2πε)^{−d/2} ∫∫ exp((ϕ(x)+ψ(y)−½‖x−y‖²)/ε) dx dy = E_ν exp((ψ − ϕ^(c,ε))/ε) (float64)."""
    expo = (psi_z.double() - phi_c.double()) / eps
    return torch.exp(torch.logsumexp(expo, 0) - math.log(expo.numel())).to(psi_z.dtype)


def _dual_terms(phi_x: Tensor, psi_z: Tensor, phi_c: Tensor, eps: float) -> DualTerms:
    phi_x, psi_z, phi_c = phi_x.double(), psi_z.double(), phi_c.double()
    r = phi_c - psi_z
    log_coupling = torch.logsumexp(-r / eps, 0) - math.log(r.numel())
    base = phi_x.mean() + psi_z.mean()
    return DualTerms(dual=base - eps * log_coupling - eps,
                     dual_raw=base - eps * torch.exp(log_coupling),
                     semi_dual=phi_x.mean() + phi_c.mean() - eps,
                     residual=r.pow(2).mean().sqrt(), residual_centred=r.std(unbiased=False))


def dual_terms(phi: Potential, psi: Potential, x: Tensor, z: Tensor, eps: float,
               noise: Tensor) -> DualTerms:
    """D_ε(ϕ, ψ), J(ϕ) and the residual on data x ``[n, d]`` and z ``[m, d]`` ~ N(0, I).

    The coupling ε ∫∫ exp((ϕ(x)+ψ(y)−½‖x−y‖²)/ε) dx dy / (2πε)^{d/2} equals
    ε E_{z∼ν}[exp((ψ(z) − ϕ^(c,ε)(z))/ε)] (importance sampling with ν = N(0, I)); noise is
    the MC noise of ϕ^(c,ε) at z (``[N, d]`` or ``[m, N, d]``). Computed in float64.
    """
    phi_c = c_eps_transform(phi, z, eps, noise, standard_normal_log_density(z))
    return _dual_terms(phi(x), psi(z), phi_c, eps)


# --------------------------------------------------------------------------- the flow
@dataclass
class EKPFlow:
    """The CNF of eqs. (16)–(18) recovered from potentials ϕ (data, t = 0) and ψ (t = 1).

    noise_phi, noise_psi: ``[M, d]`` standard normal MC samples of the heat kernels, fixed for
    the lifetime of the object: common random numbers, so that ϕ_t, ψ_t and v_t are
    deterministic functions of (t, y) while an ODE solver integrates them (an adaptive
    solver could not control its error on a field that is resampled at every call).
    """

    phi: Potential
    psi: Potential
    eps: float
    noise_phi: Tensor
    noise_psi: Tensor

    def potentials(self, t: float, y: Tensor) -> tuple[Tensor, Tensor]:
        """(ϕ_t(y), ψ_t(y)), each ``[n]``: ε log H_{tε}[e^{ϕ/ε}], ε log H_{(1−t)ε}[e^{ψ/ε}]."""
        t = min(max(float(t), 0.0), 1.0)
        phi_t = log_heat_smoothing(self.phi, y, t * self.eps, self.eps, self.noise_phi)
        psi_t = log_heat_smoothing(self.psi, y, (1.0 - t) * self.eps, self.eps,
                                   self.noise_psi)
        return phi_t, psi_t

    def _chunks(self, n: int) -> list[slice]:
        step = max(1, _FLOW_POINTS // max(self.noise_phi.shape[0], 1))
        return [slice(i, min(i + step, n)) for i in range(0, n, step)]

    def log_density(self, t: float, y: Tensor) -> Tensor:
        """Unnormalised log ρ_t(y) = (ϕ_t + ψ_t)/ε of eq. (17), nats: y ``[n, d]`` → ``[n]``."""
        with torch.no_grad():
            parts = []
            for sl in self._chunks(y.shape[0]):
                phi_t, psi_t = self.potentials(t, y[sl])
                parts.append((phi_t + psi_t) / self.eps)
            return torch.cat(parts)

    def velocity(self, t: float, y: Tensor, divergence: bool = False
                 ) -> tuple[Tensor, Tensor | None]:
        """v_t(y) = ∇(ψ_t − ϕ_t)/2 (App. C, eqs. 10–11) ``[n, d]`` and, if asked, ∇·v_t ``[n]``.

        The divergence is exact: d autograd passes through the MC field (d = 2 here).
        """
        vs, divs = [], []
        for sl in self._chunks(y.shape[0]):
            with torch.enable_grad():
                yc = y[sl].detach().requires_grad_(True)
                phi_t, psi_t = self.potentials(t, yc)
                g = torch.autograd.grad((psi_t - phi_t).sum(), yc, create_graph=divergence)[0]
                v = 0.5 * g
                if divergence:
                    div = torch.zeros_like(v[:, 0])
                    for j in range(v.shape[1]):
                        div = div + torch.autograd.grad(v[:, j].sum(), yc,
                                                        retain_graph=True)[0][:, j]
                    divs.append(div.detach())
            vs.append(v.detach())
        return torch.cat(vs), (torch.cat(divs) if divergence else None)


@dataclass
class FlowSamples:
    """Samples pushed from N(0, I) at t = 1 to t = 0, and their transport cost."""

    x: Tensor  # [n, d] samples of ρ_0
    kinetic: Tensor  # [n] ∫_0^1 ½‖v_t(x_t)‖² dt along each path


def _integrate(rhs: Callable[[float, Tensor], Tensor], state0: Tensor, t0: float, t1: float,
               rtol: float, atol: float, rk4_steps: int) -> Tensor:
    """The state at t1: dopri5 (App. D) when rk4_steps = 0, else fixed-step RK4."""
    with torch.no_grad():
        if rk4_steps:
            return rk4(rhs, state0, t0, t1, rk4_steps)
        times = torch.tensor([t0, t1], dtype=state0.dtype, device=state0.device)
        return dopri5(lambda t, y: rhs(float(t), y), state0, times, rtol=rtol, atol=atol)[-1]


def sample_flow(flow: EKPFlow, z: Tensor, rtol: float, atol: float,
                rk4_steps: int = 0) -> FlowSamples:
    """Integrate z ``[n, d]`` ~ N(0, I) from t = 1 back to t = 0 with dopri5 (App. D).

    rk4_steps > 0 integrates with that many fixed RK4 steps instead: dopri5's step control
    chatters where the MC field of ReLU potentials is discontinuous (a cost without bound).
    """
    d = z.shape[1]

    def rhs(t: float, state: Tensor) -> Tensor:
        v, _ = flow.velocity(t, state[:, :d])
        return torch.cat([v, 0.5 * (v * v).sum(1, keepdim=True)], dim=1)

    state0 = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
    end = _integrate(rhs, state0, 1.0, 0.0, rtol, atol, rk4_steps)
    # Integrated backwards: the kinetic state ends at −∫_0^1 ½‖v‖² dt.
    return FlowSamples(x=end[:, :d], kinetic=-end[:, d])


def cnf_log_likelihood(flow: EKPFlow, x: Tensor, rtol: float, atol: float,
                       rk4_steps: int = 0) -> Tensor:
    """log ρ_0(x) by the CNF change of variables (eq. 8), nats: x ``[n, d]`` → ``[n]``.

    Integrates (x_t, ℓ_t) from t = 0 to 1 with dx/dt = v_t, dℓ/dt = ∇·v_t (exact), then
    log ρ_0(x) = log N(x_1; 0, I) + ℓ_1; dopri5, or rk4_steps fixed RK4 steps.
    """
    d = x.shape[1]

    def rhs(t: float, state: Tensor) -> Tensor:
        v, div = flow.velocity(t, state[:, :d], divergence=True)
        return torch.cat([v, div[:, None]], dim=1)

    state0 = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    end = _integrate(rhs, state0, 0.0, 1.0, rtol, atol, rk4_steps)
    return standard_normal_log_density(end[:, :d]) + end[:, d]


# --------------------------------------------------------------------------- App. C
def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, u = np.linalg.eigh(0.5 * (a + a.T))
    return (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T


def _mixing_term(sigma0: np.ndarray, sigma1: np.ndarray, shift: float) -> np.ndarray:
    """(shift·I + Σ0Σ1)^{1/2} + (shift·I + Σ1Σ0)^{1/2}, via Σ1^{±1/2} (Σ1 positive definite)."""
    w, u = np.linalg.eigh(sigma1)
    if w.min() <= 0:
        raise ValueError(f"Σ1 must be positive definite (smallest eigenvalue {w.min():.3g}); "
                         f"swap the roles of Σ0 and Σ1 (the formulas are symmetric)")
    s1h = (u * np.sqrt(w)) @ u.T
    s1ih = (u / np.sqrt(w)) @ u.T
    inner = _sqrtm_psd(shift * np.eye(len(w)) + s1h @ sigma0 @ s1h)
    m = s1ih @ inner @ s1h
    return m + m.T


def w2_geodesic_covariance(sigma0: np.ndarray, sigma1: np.ndarray, t: float) -> np.ndarray:
    """Σ_t of the W₂ geodesic between N(·, Σ0) and N(·, Σ1) (App. C, Example 1): ``[d, d]``."""
    s0, s1 = np.asarray(sigma0, float), np.asarray(sigma1, float)
    return (1 - t) ** 2 * s0 + t**2 * s1 + t * (1 - t) * _mixing_term(s0, s1, 0.0)


def entropic_interpolation_covariance(sigma0: np.ndarray, sigma1: np.ndarray, t: float,
                                      eps: float) -> np.ndarray:
    """Σ_t^ε of the entropic interpolation ρ_t^ε of eq. (17) between two Gaussians: ``[d, d]``.

    Σ_t^ε = (1−t)²Σ0 + t²Σ1 + t(1−t)[(ε²/4 I + Σ0Σ1)^{1/2} + (ε²/4 I + Σ1Σ0)^{1/2}]: App. C,
    Example 1, in the convention of eqs. (10), (16), (17) (cost ½‖x−y‖², heat kernel of
    variance tε). Example 1 prints ε²/16, the same curve for the cost ‖x−y‖² (its ε is twice
    this one); the covariance of eq. (17) with the exact potentials is the one here.
    """
    s0, s1 = np.asarray(sigma0, float), np.asarray(sigma1, float)
    return (1 - t) ** 2 * s0 + t**2 * s1 + t * (1 - t) * _mixing_term(s0, s1, eps**2 / 4.0)


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class EKPConfig:
    """Run configuration (the `ekp` section of params.yaml, App. D for the paper's values)."""

    width: int = 64  # hidden width of both potentials
    n_layers: int = 4  # fully connected layers per potential
    eps: float = 1.0  # entropic regularisation ε
    alpha: float = 1e-5  # L2 penalty α of eqs. (20)-(21)
    lr: float = 1e-3  # Adam step size η of Algorithm 1
    batch_size: int = 1000  # B, from the data and from N(0, I)
    n_mc: int = 100  # N, MC samples of the (c, ε)-transform in training
    iters: int = 20000  # k_max
    n_mc_flow: int = 200  # MC samples of the heat kernels in the flow (App. D: 200)
    flow_batch: int = 1000  # points per ODE solve (App. D: 1000)
    rtol: float = 1e-5  # dopri5 tolerances
    atol: float = 1e-5
    rk4_steps: int = 0  # > 0: fixed-step RK4 with this many steps instead of dopri5
    nll_points: int = 0  # test points scored by the CNF likelihood (0: all)
    norm_grid: int = 128  # grid points per axis normalising eq. (17) in 2-D
    field_grid: int = 64  # grid points per axis of the Fig. 1 heat maps

    @classmethod
    def from_dict(cls, cfg: dict) -> EKPConfig:
        """Typed config from a run config dict; unknown keys are an error."""
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(cfg) - set(names))
        if unknown:
            raise KeyError(f"ekp: unknown config key(s) {unknown}; known: {sorted(names)}")
        kw = {k: (float(v) if names[k].type == "float" else int(v)) for k, v in cfg.items()}
        out = cls(**kw)
        for key in ("width", "n_layers", "batch_size", "n_mc", "iters", "n_mc_flow",
                    "flow_batch", "norm_grid", "field_grid"):
            if getattr(out, key) < 1:
                raise ValueError(f"ekp.{key}={getattr(out, key)}; expected >= 1")
        if out.rk4_steps < 0 or out.nll_points < 0:
            raise ValueError(f"ekp.rk4_steps={out.rk4_steps}, ekp.nll_points={out.nll_points}; "
                             f"expected >= 0")
        for key in ("eps", "lr", "rtol", "atol"):
            if getattr(out, key) <= 0:
                raise ValueError(f"ekp.{key}={getattr(out, key)}; expected > 0")
        return out


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
            self.phi = PotentialMLP(self.dim, cfg.width, cfg.n_layers).to(device)
            self.psi = PotentialMLP(self.dim, cfg.width, cfg.n_layers).to(device)
        self.opt_phi = Adam(self.phi.parameters(), lr=cfg.lr)
        self.opt_psi = Adam(self.psi.parameters(), lr=cfg.lr)
        # Batches and MC noise come from this generator only (CPU: bit-identical on resume).
        self.gen = torch.Generator().manual_seed(self.seed + 1)
        self._log_z: float | None = None

    # ------------------------------------------------------------------ harness API
    def _randn(self, *shape: int, gen: torch.Generator | None = None) -> Tensor:
        return torch.randn(*shape, generator=gen or self.gen).to(self.device)

    def train_step(self) -> dict[str, float]:
        """One iteration of Algorithm 1; returns J̃, Ĩ and the :class:`DualTerms` of the new pair."""
        c, eps = self.cfg, self.cfg.eps
        idx = torch.randint(0, self.train.shape[0], (c.batch_size,), generator=self.gen)
        x = self.train[idx.to(self.device)]
        z = self._randn(c.batch_size, self.dim)
        noise_z = self._randn(c.batch_size, c.n_mc, self.dim)  # MC around z for ϕ^(c,ε)
        noise_x = self._randn(c.batch_size, c.n_mc, self.dim)  # MC around x for ψ^(c,ε)
        log_nu = standard_normal_log_density(z)

        # ϕ-step, eq. (20): J̃(ϕ) = D_ε(ϕ, ϕ^(c,ε), ψ) − α E_ν (ϕ^(c,ε) − ψ)², ψ fixed, with
        # D_ε(ϕ, ϕ̃, ψ) = E_μ ϕ + E_ν ϕ̃ − ε E_ν exp((ψ − ϕ^(c,ε))/ε) (coupling as in eq. 12).
        phi_c = c_eps_transform(self.phi, z, eps, noise_z, log_nu)
        with torch.no_grad():
            psi_z = self.psi(z)
        j_tilde = (self.phi(x).mean() + phi_c.mean() - eps * _coupling(psi_z, phi_c, eps)
                   - c.alpha * (phi_c - psi_z).pow(2).sum())
        self.opt_phi.zero_grad(set_to_none=True)
        (-j_tilde).backward()
        self.opt_phi.step()

        # ψ-step, eq. (21): Ĩ(ψ) = D_ε(ψ, ψ^(c,ε), ϕ) − α E_ν (ϕ^(c,ε) − ψ)², with the updated
        # ϕ fixed; ψ^(c,ε) = ε log p_D − ε log H_ε[e^{ψ/ε}] without its constant E_μ[ε log p_D].
        with torch.no_grad():
            phi_c = c_eps_transform(self.phi, z, eps, noise_z, log_nu)
        psi_z = self.psi(z)
        i_tilde = (psi_z.mean() + c_eps_transform(self.psi, x, eps, noise_x).mean()
                   - eps * _coupling(psi_z, phi_c, eps)
                   - c.alpha * (phi_c - psi_z).pow(2).sum())
        self.opt_psi.zero_grad(set_to_none=True)
        (-i_tilde).backward()
        self.opt_psi.step()

        # Diagnostics of the new pair on this batch: D_ε (eq. 12), J (eq. 15), ‖ϕ^(c,ε) − ψ‖.
        with torch.no_grad():
            terms = _dual_terms(self.phi(x), self.psi(z), phi_c, eps)
        self.step_index += 1
        self._log_z = None
        j_tilde, i_tilde = float(j_tilde.detach()), float(i_tilde.detach())
        return {"loss": -(j_tilde + i_tilde), "J_tilde": j_tilde, "I_tilde": i_tilde,
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

    # ------------------------------------------------------------------ the flow
    def flow(self, gen: torch.Generator) -> EKPFlow:
        """The CNF of the current potentials with fresh common random numbers from gen."""
        m = self.cfg.n_mc_flow
        return EKPFlow(self.phi, self.psi, self.cfg.eps, self._randn(m, self.dim, gen=gen),
                       self._randn(m, self.dim, gen=gen))

    def _density_flow(self) -> EKPFlow:
        # log_density must be one deterministic function: its MC noise depends on the seed only.
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

    def sample(self, n: int, gen: torch.Generator) -> FlowSamples:
        """n samples of ρ_0 from N(0, I), in solves of ``flow_batch`` with their own MC noise."""
        xs, ks = [], []
        for start in range(0, n, self.cfg.flow_batch):
            m = min(self.cfg.flow_batch, n - start)
            z = self._randn(m, self.dim, gen=gen)
            out = sample_flow(self.flow(gen), z, self.cfg.rtol, self.cfg.atol,
                              self.cfg.rk4_steps)
            xs.append(out.x)
            ks.append(out.kinetic)
        return FlowSamples(torch.cat(xs), torch.cat(ks))

    def field(self, times: tuple[float, ...] = FIELD_TIMES, arrows: int = 16
              ) -> dict[str, np.ndarray]:
        """Fig. 1 data: log ρ_t (grid-normalised) and v_t on grids, at each t in ``times``."""
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
        return {"flow_t": np.asarray(times), "flow_x": gx, "flow_y": gy,
                "flow_logp": np.stack(logps), "flow_arrow_x": ax, "flow_arrow_y": ay,
                "flow_velocity": np.stack(vels)}

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Samples (dopri5), test NLL two ways, final dual/residual, Fig. 1 fields."""
        c = self.cfg
        gen = torch.Generator().manual_seed(int(seed) + 1000)
        test_t = torch.as_tensor(np.asarray(test, dtype=np.float32), device=self.device)
        drawn = self.sample(n_samples, gen)
        if c.nll_points and c.nll_points < len(test_t):
            pick = torch.randperm(len(test_t), generator=gen)[: c.nll_points]
            scored = test_t[pick.to(self.device)]
        else:
            scored = test_t
        logp_cnf = torch.cat([
            cnf_log_likelihood(self.flow(gen), scored[i: i + c.flow_batch], c.rtol, c.atol,
                               c.rk4_steps)
            for i in range(0, len(scored), c.flow_batch)])
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
                   "constraint_residual_centred": float(terms.residual_centred)}
        extras: dict[str, np.ndarray] = {}
        if self.dim == 2:
            metrics["nll_closed_form_nats"] = float(-self.log_density(test).mean())
            metrics["log_normaliser"] = self.log_normaliser()
            extras = self.field()
        return Evaluation(metrics=metrics,
                          samples=drawn.x.double().cpu().numpy().astype(np.float64),
                          extras=extras)


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device) -> EKPTrainer:
    """The harness entry point: an :class:`EKPTrainer` for run config ``cfg``."""
    return EKPTrainer(EKPConfig.from_dict(cfg), train, seed, device)
