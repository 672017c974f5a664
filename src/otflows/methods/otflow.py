"""OT-Flow: one OT-regularised CNF solve, the single-shot form of JKO-Flow.

Onken, Wu Fung, Li, Ruthotto, "OT-Flow: Fast and Accurate Continuous Normalizing Flows via
Optimal Transport", AAAI 2021, arXiv:2006.00104, as used by Vidal, Wu Fung, Tenorio, Osher,
Nurbekyan, "Taming Hyperparameter Tuning in Continuous Normalizing Flows Using the JKO
Scheme", arXiv:2211.16757.

Implemented here (equation numbers of arXiv:2211.16757):

* the characteristics and log-determinant ODE (5) with v = −∇_xΦ, augmented with the
  kinetic energy L = ∫ ½‖v‖² dt and the HJB residual R = ∫ |∂_tΦ − ½‖∇_xΦ‖²| dt of OT-Flow,
  integrated with fixed-step RK4 over t ∈ [0, 1];
* the objective (6) (= one JKO subproblem (11)): α_L·E[L] + α·E[C] + α_R·E[R] with
  C(x) = −log N(z(x, 1); 0, I) − ℓ(x, 1), the negative log-likelihood in nats;
* sampling by the inverse flow and density by the change of variables, composed over any
  number of maps so that ``methods/jko.py`` reuses them unchanged.

The Trainer is invertible: ``forward_map`` is the push-forward x → z, ``inverse_map`` the
pull-back z → x, both RK4 with ``nt_eval`` steps.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from otflows.distributions import standard_normal_log_prob
from otflows.methods.base import DTYPES, Evaluation, checked_step, config_from_dict, spec
from otflows.nn.potentials import OTFlowPotential
from otflows.ode import rk4

__all__ = [
    "FlowOutput",
    "OTFlowConfig",
    "OTFlowTrainer",
    "integrate",
    "make_trainer",
    "objective",
    "pull_back",
    "push_forward",
    "terminal_cost",
]

_STATE_FORMAT = "otflows.otflow/1"


@dataclass(frozen=True)
class OTFlowConfig:
    """Solver settings of one OT-Flow / JKO-Flow run (every key required)."""

    width: int = spec(min=1)  # m, hidden width of the ResNet
    n_layers: int = spec(min=2)  # M ≥ 2 ResNet layers, opening layer included
    rank: int = spec(min=1)  # rows of A (capped at d + 1)
    nt: int = spec(min=1)  # RK4 steps in training
    nt_eval: int = spec(min=1)  # RK4 steps in evaluation
    alpha: float = spec()  # weight on C, the α of eqs. (6) and (11)
    alpha_L: float = spec()  # weight on the kinetic energy L
    alpha_R: float = spec()  # weight on the HJB penalty R
    lr: float = spec(gt=0)  # Adam learning rate
    weight_decay: float = spec()  # Adam weight decay
    batch_size: int = spec(min=1)  # samples per optimiser step
    iters: int = spec(min=1)  # optimiser steps per subproblem
    K: int = spec(min=1)  # JKO outer iterations (1 = single-shot OT-Flow)
    dtype: str = spec(choices=tuple(DTYPES))  # "float64" | "float32"

    @classmethod
    def from_dict(cls, d: dict, section: str = "otflow") -> OTFlowConfig:
        """Build from a plain dict; raise ValueError naming unknown, missing or bad keys."""
        return config_from_dict(cls, d, section)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        return DTYPES[self.dtype]


@dataclass
class FlowOutput:
    """End state of one or more flows applied to a batch.

    z: image points ``[n, d]``; logdet: log|det ∇(applied map)| ``[n]`` (nats; for a
    reverse integration it is the log-det of the inverse map); kinetic: Σ over maps of
    ∫₀¹ ½‖v‖² dt ``[n]``; hjb: Σ over maps of ∫₀¹ |∂_tΦ − ½‖∇_xΦ‖²| dt ``[n]``.
    """

    z: Tensor
    logdet: Tensor
    kinetic: Tensor
    hjb: Tensor


def _rhs(potential: OTFlowPotential, d: int):
    """Right-hand side of (5) augmented with L and R; state ``[n, d+3]`` = (z, ℓ, L, R)."""

    def f(t: float, state: Tensor) -> Tensor:
        z = state[:, :d]
        s = torch.cat([z, z.new_full((z.shape[0], 1), t)], dim=1)
        der = potential.grad_and_laplacian(s)
        gx = der.grad[:, :d]
        kin = 0.5 * gx.square().sum(1, keepdim=True)  # ½‖v‖², v = −∇_xΦ
        hjb = (der.grad[:, d:] - kin).abs()  # |∂_tΦ − ½‖∇_xΦ‖²|
        return torch.cat([-gx, -der.laplacian.unsqueeze(1), kin, hjb], dim=1)  # eq. (5)

    return f


def integrate(potential: OTFlowPotential, x: Tensor, nt: int, reverse: bool = False
              ) -> FlowOutput:
    """Apply one map: RK4 with ``nt`` steps of (5) from t=0 to 1 (``reverse``: 1 to 0).

    x: ``[n, d]`` in the potential's dtype. Forward: z = f(x), logdet = ℓ(1) =
    log det ∇f(x). Reverse: z = f⁻¹(x), logdet = log det ∇f⁻¹(x) = −log det ∇f(z).
    kinetic and hjb are reported as positive path integrals in both directions.
    """
    if x.dim() != 2 or x.shape[1] != potential.d:
        raise ValueError(f"integrate: x has shape {tuple(x.shape)}; expected [n, "
                         f"{potential.d}]")
    d = potential.d
    state = torch.cat([x, x.new_zeros(x.shape[0], 3)], dim=1)
    t0, t1 = (1.0, 0.0) if reverse else (0.0, 1.0)
    out = rk4(_rhs(potential, d), state, t0, t1, nt)
    sign = -1.0 if reverse else 1.0  # ∫₁⁰ of a positive integrand is negative
    return FlowOutput(z=out[:, :d], logdet=out[:, d], kinetic=sign * out[:, d + 1],
                      hjb=sign * out[:, d + 2])


def push_forward(potentials: Sequence[OTFlowPotential], x: Tensor, nt: int) -> FlowOutput:
    """Compose maps 1..K on x ``[n, d]``: z = f_K∘…∘f_1(x), log-dets and costs summed."""
    return _compose(potentials, x, nt, reverse=False)


def pull_back(potentials: Sequence[OTFlowPotential], y: Tensor, nt: int) -> FlowOutput:
    """Inverse maps K..1 on y ``[n, d]``: z = f_1⁻¹∘…∘f_K⁻¹(y); logdet of that inverse."""
    return _compose(list(potentials)[::-1], y, nt, reverse=True)


def _compose(potentials: Sequence[OTFlowPotential], x: Tensor, nt: int, reverse: bool
             ) -> FlowOutput:
    if len(potentials) == 0:
        raise ValueError("no maps to apply: the flow has no trained potential yet")
    total = integrate(potentials[0], x, nt, reverse=reverse)
    for potential in potentials[1:]:
        out = integrate(potential, total.z, nt, reverse=reverse)
        total = FlowOutput(z=out.z, logdet=total.logdet + out.logdet,
                           kinetic=total.kinetic + out.kinetic, hjb=total.hjb + out.hjb)
    return total


def terminal_cost(z: Tensor, logdet: Tensor) -> Tensor:
    """C = −log N(z; 0, I) − logdet = −log ρ̂₀(x), the NLL in nats ``[n]``; z: ``[n, d]``."""
    return -standard_normal_log_prob(z) - logdet


def objective(potential: OTFlowPotential, x: Tensor, cfg: OTFlowConfig
              ) -> tuple[Tensor, dict[str, float]]:
    """Loss (6)/(11): α_L·E[L] + α·E[C] + α_R·E[R] on the batch x ``[n, d]``; and its logs."""
    out = integrate(potential, x, cfg.nt)
    L = out.kinetic.mean()
    C = terminal_cost(out.z, out.logdet).mean()
    R = out.hjb.mean()
    loss = cfg.alpha_L * L + cfg.alpha * C + cfg.alpha_R * R
    logs = {"loss": loss.item(), "L": L.item(), "C": C.item(), "R": R.item()}
    return loss, logs


def _as_data(a: np.ndarray, name: str, dtype: torch.dtype, device: torch.device,
             d: int | None = None) -> Tensor:
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] == 0 or (d is not None and arr.shape[1] != d):
        want = f"[n, {d}]" if d is not None else "[n, d] with n >= 1"
        raise ValueError(f"{name} has shape {arr.shape}; expected {want}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values")
    return torch.as_tensor(arr, dtype=dtype, device=device)


class OTFlowTrainer:
    """Single-shot OT-Flow: Adam on objective (6) for ``iters`` steps (Trainer protocol).

    The flow it reports is the list of maps given by :meth:`final_potentials`; JKO-Flow
    (``methods/jko.py``) subclasses it and only changes the outer loop.
    """

    eval_batch_size: int = 5000

    def __init__(self, cfg: OTFlowConfig, train: np.ndarray, seed: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = cfg.torch_dtype
        self.train = _as_data(train, "train", self.dtype, self.device)
        self.d = self.train.shape[1]
        # one CPU generator: network initialisation first, then the batch indices
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        self.potential = OTFlowPotential(self.d, cfg.width, cfg.n_layers, cfg.rank,
                                         dtype=self.dtype, generator=self.generator)
        self.potential.to(self.device)
        self.optimizer = self._new_optimizer()
        self.data = self.train  # the samples of the current subproblem (ρ^(k) in Alg. 1)
        self.n_steps = cfg.K * cfg.iters
        self.step_index = 0

    def _new_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.potential.parameters(), lr=self.cfg.lr,
                                weight_decay=self.cfg.weight_decay)

    def _next_batch(self) -> Tensor:
        n = self.data.shape[0]
        idx = torch.randperm(n, generator=self.generator)[: self.cfg.batch_size]
        return self.data[idx.to(self.device)]

    def train_step(self) -> dict[str, float]:
        """One Adam step on (6) for a fresh batch; returns loss, L, C, R as floats."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        x = self._next_batch()
        self.optimizer.zero_grad(set_to_none=True)
        loss, logs = objective(self.potential, x, self.cfg)
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        return logs

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Weights, Adam state, RNG state and step; loads with torch.load(weights_only=True)."""
        return copy.deepcopy({
            "format": _STATE_FORMAT,
            "step_index": self.step_index,
            "potential": self.potential.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        })

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict` of a trainer of the same config."""
        step = checked_step(state, _STATE_FORMAT, "an OT-Flow trainer", self.n_steps)
        self.potential.load_state_dict(state["potential"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step

    # ------------------------------------------------------------------ the model
    def final_potentials(self) -> list[OTFlowPotential]:
        """The maps of the learned flow, in the order they are applied to data."""
        return [self.potential]

    def n_parameters(self) -> int:
        """Trainable parameters of one potential network (the published count, c included)."""
        return sum(p.numel() for p in self.potential.parameters())

    def parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the loss reaches: all of Φ's but its constant c, which enters
        neither ∇Φ nor ΔΦ (so never gets a gradient, as in the published code; it is still
        counted by ``n_parameters``, the published count)."""
        return [p for p in self.potential.parameters() if p is not self.potential.c]

    def _batches(self, x: Tensor) -> Iterator[Tensor]:
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield x[i : i + self.eval_batch_size]

    def _base_draws(self, n_samples: int, seed: int) -> Tensor:
        """The float64 N(0, I) draws ``[n_samples, d]`` that :meth:`evaluate` pulls back."""
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        return torch.randn(int(n_samples), self.d, generator=gen, dtype=torch.float64)

    def _pull_back_all(self, maps: Sequence[OTFlowPotential], y: Tensor) -> np.ndarray:
        """Inverse of ``maps`` on y ``[n, d]`` in evaluation batches: float64 ``[n, d]``."""
        parts = [pull_back(maps, b.to(self.device, self.dtype), self.cfg.nt_eval).z.double()
                 .cpu() for b in self._batches(y)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.d), dtype=np.float64)

    @torch.no_grad()
    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """Data ``[n, d]`` → latent: z = f_K∘…∘f_1(x), RK4 with nt_eval steps, float64."""
        maps = self.final_potentials()
        xt = _as_data(x, "x", self.dtype, self.device, self.d)
        return torch.cat([push_forward(maps, b, self.cfg.nt_eval).z.double().cpu()
                          for b in self._batches(xt)]).numpy()

    @torch.no_grad()
    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """Latent ``[n, d]`` → data: x = f_1⁻¹∘…∘f_K⁻¹(z) (how samples are drawn), float64."""
        zt = _as_data(z, "z", torch.float64, torch.device("cpu"), self.d)
        return self._pull_back_all(self.final_potentials(), zt)

    @torch.no_grad()
    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log ρ̂₀(x) = log N(f(x)) + log det ∇f(x) in nats, ``[n]``, with nt_eval steps."""
        maps = self.final_potentials()
        xt = _as_data(x, "x", self.dtype, self.device, self.d)
        out = [-terminal_cost((o := push_forward(maps, b, self.cfg.nt_eval)).z, o.logdet)
               for b in self._batches(xt)]
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed``: the base draws of :meth:`evaluate` pulled back through every map."""
        return self._pull_back_all(self.final_potentials(), self._base_draws(n, seed))

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """NLL (nats), transport and displacement costs, inversion error; f⁻¹(N(0,I)) samples;
        the extra ``forward``, float64 ``[n_test, d]``: the test points pushed forward, f(x)
        (the middle panels of the paper's Figs. 4, 17-19)."""
        maps, nt = self.final_potentials(), self.cfg.nt_eval
        x = _as_data(test, "test", self.dtype, self.device, self.d)
        nll, transport, displacement, forward = [], [], [], []
        for b in self._batches(x):
            out = push_forward(maps, b, nt)
            forward.append(out.z.double().cpu())
            nll.append(terminal_cost(out.z, out.logdet))
            transport.append(2.0 * out.kinetic)  # ∫₀¹‖v‖² dt summed over maps
            displacement.append((out.z - b).square().sum(1))
        xs = x[:1000]
        back = pull_back(maps, push_forward(maps, xs, nt).z, nt).z
        inversion = (back - xs).norm(dim=1).mean()
        samples = self._pull_back_all(maps, self._base_draws(n_samples, seed))
        metrics = {
            "nll_nats": torch.cat(nll).mean().item(),
            "transport_cost": torch.cat(transport).mean().item(),
            "displacement_cost": torch.cat(displacement).mean().item(),
            "inversion_error": inversion.item(),
            "n_parameters": float(self.n_parameters()),
        }
        return Evaluation(metrics=metrics, samples=samples,
                          extras={"forward": torch.cat(forward).numpy()})


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device
                 ) -> OTFlowTrainer:
    """Single-shot OT-Flow trainer; ``cfg`` holds every OTFlowConfig key and K must be 1."""
    config = OTFlowConfig.from_dict(cfg)
    if config.K != 1:
        raise ValueError(f"otflow is the single-shot method and needs K == 1; got K={config.K}."
                         f" Use method 'jko' for K > 1 outer iterations")
    return OTFlowTrainer(config, train, seed, device)
