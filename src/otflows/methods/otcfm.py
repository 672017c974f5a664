"""Conditional flow matching with a minibatch-OT coupling (OT-CFM), a benchmark baseline.

Lipman, Chen, Ben-Hamu, Nickel, Le, "Flow Matching for Generative Modeling", ICLR 2023,
arXiv:2210.02747: regress a time-conditioned velocity v_θ(x, t) on the conditional velocity
of a probability path between a source x0 ~ N(0, I) and a data point x1 (the CFM loss,
eq. (9) there). The path is flow_matching's ``AffineProbPath(scheduler=CondOTScheduler())``:
x_t = t·x1 + (1 − t)·x0 with velocity x1 − x0, i.e. the OT path of Lipman et al. eq. (20)
with σ_min = 0 as flow_matching's CondOTScheduler defines it (α_t = t, σ_t = 1 − t).

The coupling is the minibatch optimal transport plan of Tong, Fatras, Malkin, Huguet,
Zhang, Rector-Brooks, Wolf, Bengio, "Improving and generalizing flow-based generative models
with minibatch optimal transport", TMLR 2024, arXiv:2302.00482 (their OT-CFM), and
of Pooladian, Ben-Hamu, Domingo-Enrich, Amos, Lipman, Chen, "Multisample Flow Matching",
ICML 2023: each minibatch pairs x0 with x1 by the exact plan of POT's ``ot.emd`` on the
squared-Euclidean cost with uniform weights (:func:`ot_pairing`).

Sampling integrates dx/dt = v_θ(x, t) from t = 0 to 1 with flow_matching's ``ODESolver``
(dopri5, atol/rtol from the config); the log-density is the instantaneous change of
variables log p1(x) = log N(x0; 0, I) − ∫₀¹ ∇·v_θ(x_t, t) dt, solved backward by
``ODESolver.compute_likelihood`` with the exact divergence (d = 2).

The Trainer is invertible: ``forward_map`` integrates data → base (t: 1 → 0),
``inverse_map`` base → data (t: 0 → 1).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import CondOTScheduler
from flow_matching.solver import ODESolver
from flow_matching.utils import ModelWrapper
from torch import Tensor, nn

from otflows.distributions import standard_normal_log_prob
from otflows.methods.base import (
    DTYPES,
    Evaluation,
    checked_step,
    checked_tensor,
    config_from_dict,
    spec,
)

__all__ = ["OTCFMConfig", "OTCFMTrainer", "VelocityMLP", "make_trainer", "ot_pairing"]

_STATE_FORMAT = "otflows.otcfm/1"


@dataclass(frozen=True)
class OTCFMConfig:
    """One OT-CFM run (every key required; defaults in the params schema)."""

    width: int = spec(min=1)  # hidden units of the velocity MLP (Tong et al. 2-D: 64)
    depth: int = spec(min=1)  # hidden layers of the velocity MLP (Tong et al. 2-D: 3)
    lr: float = spec(gt=0)  # Adam learning rate (Tong et al. 2-D: 1e-3)
    batch_size: int = spec(min=2)  # pairs per step = size of the OT problem (Tong: 256)
    iters: int = spec(min=1)  # optimiser steps
    atol: float = spec(gt=0)  # dopri5 absolute tolerance (sampling and likelihood)
    rtol: float = spec(gt=0)  # dopri5 relative tolerance
    dtype: str = spec(choices=tuple(DTYPES))  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict, section: str = "otcfm") -> OTCFMConfig:
        """Build from a plain dict; raise ValueError naming unknown, missing or bad keys."""
        return config_from_dict(cls, d, section)


def ot_pairing(x0: Tensor, x1: Tensor) -> np.ndarray:
    """For equal-size batches x0, x1 ``[b, d]``: the permutation σ (``[b]``) such that
    (x0[σ[j]], x1[j]) are the pairs of the exact OT plan of POT's ``ot.emd`` on the
    squared-Euclidean cost with uniform weights (OT-CFM of Tong et al. 2024)."""
    if x0.shape != x1.shape or x0.dim() != 2:
        raise ValueError(f"ot_pairing: shapes {tuple(x0.shape)}, {tuple(x1.shape)}; expected "
                         f"two equal [b, d]")
    import ot  # POT (~1 CPU-s): here, so the method registry and the fork server's default
    # preload do not pay it in runs that train no OT-CFM

    a = x0.detach().double().cpu().numpy()
    b = x1.detach().double().cpu().numpy()
    w = np.full(len(a), 1.0 / len(a))
    plan = ot.emd(w, w, ot.dist(a, b, metric="sqeuclidean"))
    # equal uniform marginals: the optimal vertex is a permutation matrix scaled by 1/b
    return np.argmax(plan, axis=0)


class VelocityMLP(ModelWrapper):
    """v_θ(x, t): an MLP on (x, t) with ``depth`` SELU hidden layers of ``width`` units (the
    2-D velocity net of Tong et al. 2024), called by flow_matching's solvers as ``(x, t)``."""

    def __init__(self, d: int, width: int, depth: int) -> None:
        sizes = [d + 1] + [width] * depth
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.SELU()]
        super().__init__(nn.Sequential(*layers, nn.Linear(sizes[-1], d)))

    def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
        """Velocity ``[n, d]`` at x ``[n, d]`` and time t (a scalar or ``[n]``)."""
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1)
        return self.model(torch.cat([x, tt.expand(x.shape[0], 1)], dim=1))


class _Kinetic(ModelWrapper):
    """The ODE on (x, c) with dc/dt = ‖v_θ(x, t)‖²: c(1) is the path's transport cost."""

    def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
        v = self.model(x[:, :-1], t)
        return torch.cat([v, v.square().sum(1, keepdim=True)], dim=1)


class OTCFMTrainer:
    """Adam on the OT-CFM loss for ``iters`` steps (Trainer protocol); dopri5 ODE solves."""

    eval_batch_size: int = 5000

    def __init__(self, cfg: OTCFMConfig, train: np.ndarray, seed: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = DTYPES[cfg.dtype]
        self.train = checked_tensor(train, "train", self.dtype, self.device)
        if self.train.shape[0] < 1:
            raise ValueError("train is empty")
        self.d = self.train.shape[1]
        with torch.random.fork_rng(devices=[]):  # initialise from the seed, globals untouched
            torch.manual_seed(int(seed))
            self.velocity = VelocityMLP(self.d, cfg.width, cfg.depth)
        self.velocity.to(self.device, self.dtype)
        self.path = AffineProbPath(scheduler=CondOTScheduler())
        # one generator for the batch indices, x0 ~ N(0, I) and t ~ U[0, 1], in that order
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
        self.optimizer = self._new_optimizer()
        self.n_steps = cfg.iters
        self.step_index = 0

    def _new_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.velocity.parameters(), lr=self.cfg.lr)

    def coupled_batch(self) -> tuple[Tensor, Tensor]:
        """A minibatch (x0, x1) coupled by the exact OT plan (OT-CFM, Tong et al. 2024)."""
        n, b = self.train.shape[0], self.cfg.batch_size
        idx = torch.randperm(n, generator=self.generator)[:b]
        x1 = self.train[idx.to(self.device)]
        x0 = torch.randn(x1.shape, generator=self.generator, dtype=self.dtype).to(self.device)
        return x0[torch.as_tensor(ot_pairing(x0, x1), device=self.device)], x1

    def train_step(self) -> dict[str, float]:
        """One Adam step on E‖v_θ(x_t, t) − (x1 − x0)‖² for a fresh OT-coupled batch."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        x0, x1 = self.coupled_batch()
        t = torch.rand(x1.shape[0], generator=self.generator, dtype=self.dtype).to(self.device)
        sample = self.path.sample(x_0=x0, x_1=x1, t=t)
        self.optimizer.zero_grad(set_to_none=True)
        loss = (self.velocity(sample.x_t, sample.t) - sample.dx_t).square().sum(1).mean()
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        return {"loss": loss.item()}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Weights, Adam state, the sampler's RNG and step (``weights_only`` loadable)."""
        return copy.deepcopy({
            "format": _STATE_FORMAT,
            "step_index": self.step_index,
            "velocity": self.velocity.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        })

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict` of a trainer of the same config."""
        step = checked_step(state, _STATE_FORMAT, "an OT-CFM trainer", self.n_steps)
        self.velocity.load_state_dict(state["velocity"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step

    # ------------------------------------------------------------------ the model
    def n_parameters(self) -> int:
        """Trainable parameters of the velocity MLP."""
        return sum(p.numel() for p in self.velocity.parameters())

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter of the velocity MLP."""
        return list(self.velocity.parameters())

    def _batches(self, x: Tensor) -> Iterator[Tensor]:
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield x[i : i + self.eval_batch_size]

    def _grid(self, t0: float, t1: float) -> Tensor:
        return torch.tensor([t0, t1], dtype=self.dtype, device=self.device)

    def _solve(self, model: ModelWrapper, x: Tensor, t0: float, t1: float) -> Tensor:
        """dopri5 solve of dx/dt = model(x, t) from t0 to t1 (flow_matching's ODESolver)."""
        return ODESolver(velocity_model=model).sample(
            x_init=x, step_size=None, method="dopri5", atol=self.cfg.atol,
            rtol=self.cfg.rtol, time_grid=self._grid(t0, t1))

    def _flow(self, x: np.ndarray, name: str, t0: float, t1: float) -> np.ndarray:
        xt = checked_tensor(x, name, self.dtype, self.device, self.d)
        with torch.no_grad():
            parts = [self._solve(self.velocity, b, t0, t1).double().cpu()
                     for b in self._batches(xt)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.d))

    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """Data ``[n, d]`` → base: the ODE integrated backward from t = 1 to 0; float64."""
        return self._flow(x, "x", 1.0, 0.0)

    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """Base ``[n, d]`` → data: the ODE integrated forward from t = 0 to 1; float64."""
        return self._flow(z, "z", 0.0, 1.0)

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log p1(x) = log N(x0) − ∫₀¹ ∇·v_θ dt in nats, ``[n]`` (exact divergence)."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        solver = ODESolver(velocity_model=self.velocity)
        parts = []
        for b in self._batches(xt):
            _, logp = solver.compute_likelihood(
                x_1=b, log_p0=standard_normal_log_prob, step_size=None, method="dopri5",
                atol=self.cfg.atol, rtol=self.cfg.rtol, time_grid=self._grid(1.0, 0.0),
                exact_divergence=True)
            parts.append(logp.detach().double().cpu())
        return torch.cat(parts).numpy() if parts else np.zeros(0)

    def _base_draws(self, n: int, seed: int) -> np.ndarray:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return torch.randn(int(n), self.d, generator=gen, dtype=torch.float64).numpy()

    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed``: the ODE from z ~ N(0, I) at t = 0 to t = 1 (dopri5)."""
        return self.inverse_map(self._base_draws(n, seed))

    def transport_costs(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per draw z ``[n, d]``: ∫₀¹ ‖v_θ(x_t, t)‖² dt along its generated path (the
        kinetic cost, as OT-Flow's ``transport_cost``) and ‖x1 − z‖² with x1 its image."""
        zt = checked_tensor(z, "z", self.dtype, self.device, self.d)
        kin, disp = [], []
        with torch.no_grad():
            for b in self._batches(zt):
                aug = torch.cat([b, b.new_zeros(b.shape[0], 1)], dim=1)
                end = self._solve(_Kinetic(self.velocity), aug, 0.0, 1.0).double()
                kin.append(end[:, -1].cpu())
                disp.append((end[:, :-1] - b.double()).square().sum(1).cpu())
        if not kin:
            return np.zeros(0), np.zeros(0)
        return torch.cat(kin).numpy(), torch.cat(disp).numpy()

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test NLL (nats, exact divergence), the transport cost ∫‖v‖² dt and the
        displacement ‖x1 − x0‖² along the generated paths, inversion error, and samples
        (:meth:`generate` with ``seed``)."""
        if np.asarray(test).shape[0] < 1:
            raise ValueError("evaluate: the test split is empty")
        nll = -self.log_density(test)
        z = self._base_draws(n_samples, seed)
        samples = self.inverse_map(z)
        kinetic, displacement = self.transport_costs(z)
        xs = np.asarray(test, dtype=np.float64)[:1000]
        inversion = np.linalg.norm(self.inverse_map(self.forward_map(xs)) - xs, axis=1)
        metrics = {
            "nll_nats": float(nll.mean()),
            "nll_nats_stderr": float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1
            else 0.0,
            "transport_cost": float(kinetic.mean()) if len(z) else 0.0,
            "displacement_cost": float(displacement.mean()) if len(z) else 0.0,
            "inversion_error": float(inversion.mean()),
            "n_parameters": float(self.n_parameters()),
        }
        return Evaluation(metrics=metrics, samples=samples)


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device
                 ) -> OTCFMTrainer:
    """OT-CFM trainer; ``cfg`` holds every OTCFMConfig key."""
    return OTCFMTrainer(OTCFMConfig.from_dict(cfg), train, seed, device)
