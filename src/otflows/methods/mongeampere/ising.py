"""Variational free energy of the continuous Ising model with the Monge-Ampère flow.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188, §4.2: from
z ~ N(0, I) forward to t = T, minimise the reverse KL loss E[ln p(x, T) + E(x)] (eq. 7) with
the reparameterised gradient, for the Hubbard–Stratonovich Ising energy of eq. (8)
(``otflows.data.ising``); optionally with ϕ averaged over spin flip × translations × D4,
one group element sampled per sample and per step (``symmetry.py``). Free energies are in
nats (totals; per-site values are divided by N = L²).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from otflows.data.ising import IsingProblem, ising_energy, sample_spins
from otflows.distributions import standard_normal_log_prob
from otflows.methods.base import DTYPES, Evaluation, checked_tensor, config_from_dict, spec
from otflows.methods.mongeampere.flow import integrate, sample_flow
from otflows.methods.mongeampere.symmetry import SymmetryGroup
from otflows.methods.mongeampere.training import PotentialTrainer

__all__ = ["IsingConfig", "IsingTrainer"]


@dataclass(frozen=True)
class IsingConfig:
    """Reverse-KL training against the continuous Ising energy (§4.2, eqs. 7-8)."""

    task: str = spec(choices=("ising",))  # "ising"
    width: int = spec(min=1)  # h
    epsilon: float = spec(gt=0)  # RK4 step ε
    steps: int = spec(min=1)  # RK4 steps; T = ε·steps
    lr: float = spec(gt=0)  # Adam learning rate
    weight_decay: float = spec()  # Adam weight decay
    batch_size: int = spec(min=2)  # B, samples per step
    iters: int = spec(min=1)  # optimiser steps ("epochs" of the paper's Fig. 4)
    symmetrize: bool = spec()  # average ϕ over spin flip × translations × D4 (§4.2)
    snapshots: int = spec()  # training stages at which generated spins are kept (Fig. 4)
    dtype: str = spec(choices=tuple(DTYPES))  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict) -> IsingConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return config_from_dict(cls, d, "mongeampere (ising task)")


class IsingTrainer(PotentialTrainer):
    """Variational free energy of the continuous Ising model by the reverse KL (eq. 7)."""

    cfg: IsingConfig
    eval_batch_size = 500
    snapshot_tile = 25  # a 5×5 tile of configurations per stage (Fig. 4 insets)

    def __init__(self, cfg: IsingConfig, problem: IsingProblem, seed: int,
                 device: torch.device) -> None:
        super().__init__(cfg, problem.n_sites, seed, device)
        self.problem = problem
        self.d = problem.n_sites
        self.precision = torch.as_tensor(problem.precision, dtype=self.dtype,
                                         device=self.device)
        self.group = SymmetryGroup(problem.L, self.device) if cfg.symmetrize else None
        self.n_steps = cfg.iters
        self.curve: list[float] = []  # per-step batch estimate of the free energy (nats)
        stages = np.linspace(0, cfg.iters, cfg.snapshots, endpoint=False) if cfg.snapshots \
            else np.zeros(0)
        self.snapshot_steps = sorted({int(s) for s in stages})
        self.snapshots: list[Tensor] = []

    def _extra_state(self) -> dict:
        return {"curve": torch.tensor(self.curve, dtype=torch.float64),
                "snapshots": list(self.snapshots)}

    def _load_extra_state(self, state: dict) -> None:
        self.curve = [float(v) for v in state["curve"]]
        self.snapshots = list(state["snapshots"])

    def free_energy_samples(self, n: int, generator: torch.Generator, refine: int = 1
                            ) -> tuple[Tensor, Tensor]:
        """(x ``[n, N]``, ln p(x, T) + E(x) ``[n]`` nats), whose mean is the loss (eq. 7);
        ``refine`` > 1 integrates with step ε/refine (a discretisation check)."""
        z = torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        z = z.to(self.device, self.dtype)
        x, logp = sample_flow(self.potential, z, self.cfg.epsilon / refine,
                              self.cfg.steps * refine, group=self.group, generator=generator)
        return x, logp + ising_energy(x, self.precision)

    def train_step(self) -> dict[str, float]:
        """One Adam step on E_x[ln p(x, T) + E(x)] (eq. 7), reparameterised; python floats."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        self.optimizer.zero_grad(set_to_none=True)
        x, f = self.free_energy_samples(self.cfg.batch_size, self.generator)
        loss = f.mean()
        loss.backward()
        self.optimizer.step()
        if self.step_index in self.snapshot_steps:
            spins = sample_spins(x.detach()[: self.snapshot_tile], self.generator)
            self.snapshots.append(spins.reshape(-1, self.problem.L, self.problem.L)
                                  .to(torch.int8).cpu())
        self.step_index += 1
        value = loss.item()
        self.curve.append(value)
        n = self.problem.n_sites
        exact = self.problem.exact_free_energy
        return {"loss": value, "free_energy_per_site": value / n,
                "free_energy_std_per_site": f.detach().std().item() / n,
                "relative_error": (value - exact) / abs(exact)}

    @torch.no_grad()
    def log_density(self, x: np.ndarray) -> np.ndarray:
        """ln p(x, T) ``[n]`` of the flow; symmetrised: of the flow for one fixed sequence of
        group elements (seed 0), i.e. one member of the paper's random mixture."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(0)
        out = []
        for b in self._batches(xt):
            elements = None
            if self.group is not None:
                elements = [self.group.sample(b.shape[0], gen) for _ in range(self.cfg.steps)]
            r = integrate(self.potential, b, self.cfg.epsilon, self.cfg.steps, reverse=True,
                          group=self.group, elements=elements)
            out.append(standard_normal_log_prob(r.x) - r.delta_logp)
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Variational vs exact free energy (nats, totals and per site), relative error, and
        ``n_samples`` continuous configurations with spins drawn by p(s|x) = Πσ(2sᵢxᵢ)."""
        if n_samples < 2:
            raise ValueError(f"evaluate: n_samples={n_samples}; the Ising estimate needs >= 2")
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        xs, fs = [], []
        for i in range(0, n_samples, self.eval_batch_size):
            x, f = self.free_energy_samples(min(self.eval_batch_size, n_samples - i), gen)
            xs.append(x.double().cpu())
            fs.append(f.double().cpu())
        x, f = torch.cat(xs), torch.cat(fs)
        n, exact = self.problem.n_sites, self.problem.exact_free_energy
        fe = f.mean().item()
        fine = torch.cat([self.free_energy_samples(min(self.eval_batch_size, n_samples - i),
                                                   gen, refine=2)[1].double().cpu()
                          for i in range(0, n_samples, self.eval_batch_size)])
        stderr = (f.std() / math.sqrt(len(f))).item()
        spins = sample_spins(x[: self.snapshot_tile], gen).reshape(-1, self.problem.L,
                                                                     self.problem.L)
        metrics = {
            "L": float(self.problem.L), "coupling": self.problem.coupling,
            "offset": self.problem.offset, "exact_free_energy": exact,
            "variational_free_energy": fe, "free_energy": fe,
            "variational_free_energy_stderr": stderr,
            "exact_free_energy_per_site": exact / n,
            "variational_free_energy_per_site": fe / n,
            "relative_error": (fe - exact) / abs(exact),
            "variational_free_energy_half_step": fine.mean().item(),
            "n_parameters": float(self.n_parameters()),
            "flow_time": self.cfg.epsilon * self.cfg.steps,
        }
        extras = {"loss_curve": np.asarray(self.curve, dtype=np.float64),
                  "exact_free_energy": np.array(exact), "n_sites": np.array(n),
                  "spins": spins.numpy().astype(np.int8)}
        if self.snapshots:
            extras["snapshot_steps"] = np.asarray(self.snapshot_steps[: len(self.snapshots)])
            extras["snapshot_spins"] = torch.stack(self.snapshots).numpy()
        return Evaluation(metrics=metrics, samples=x.numpy(), extras=extras)
