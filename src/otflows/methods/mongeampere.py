"""Monge-Ampère flow: the gradient flow of one learned scalar potential, integrated by RK4.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188.

The linearised Monge-Ampère equation turns a Brenier map into the flow dx/dt = ∇ϕ(x) (eq. 2)
with the density following d ln p/dt = −∇²ϕ(x) (eq. 3). Implemented here:

* the potential ϕ(x) = w₂ᵀσ(W₁x + b₁), σ = softplus, one hidden layer (§3), with the
  closed-form gradient ∇ϕ = W₁ᵀ(w₂ ⊙ σ′(a)) and the exact Laplacian
  ∇²ϕ = Σₖ w₂ₖ σ″(aₖ)‖W₁ₖ‖², a = W₁x + b₁: O(h·d) per point, no autograd loop over
  dimensions and no Hutchinson probe;
* eqs. (2)-(3) integrated by fixed-step RK4 (``otflows.ode.rk4``) with step ε and ``steps``
  steps, T = ε·steps; the same integrator runs backwards (data → latent) for inference;
* density estimation by maximum likelihood (eq. 6): integrate from data at t = T back to
  t = 0 and score N(0, I) there (§4.1, MNIST and the 2-D toys);
* variational free energy by the reverse KL (eq. 7): from z ~ N(0, I) forward to t = T,
  loss E[ln p(x, T) + E(x)] with the reparameterised gradient, for the Hubbard–Stratonovich
  Ising energy of eq. (8) (§4.2, ``otflows.data.ising``);
* the symmetrised potential ϕ(x) = |G|⁻¹ Σ_g ϕ̃(gx) over spin flip × translations × D4, one
  group element sampled per sample and per integration step (§4.2). Because ∇(ϕ̃∘g) = gᵀ∇ϕ̃∘g
  and the Laplacian is invariant under the orthogonal g, a step of the sampled field equals
  the step of ϕ̃ taken in the coordinates y = gx (RK4 commutes with linear maps), so each step
  costs one gather in and one out, not one per stage.

Free energies and NLLs are in nats (totals; per-site values are divided by N = L²).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from otflows.data.ising import IsingProblem, ising_energy, lattice_permutations, sample_spins
from otflows.data.mnist import bits_per_dim_from_logit_nll, inverse_logit_transform
from otflows.methods.base import Evaluation, checked_tensor
from otflows.ode import rk4
from otflows.optim import Adam

__all__ = [
    "DensityConfig",
    "DensityTrainer",
    "FlowOutput",
    "FlowPotential",
    "IsingConfig",
    "IsingTrainer",
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

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_STATE_FORMAT = "otflows.mongeampere/1"


# ---------------------------------------------------------------------------------- config
def _parse(cls: type, d: dict, task: str, ints: dict[str, int], positive: tuple[str, ...],
           nonnegative: tuple[str, ...], bools: tuple[str, ...] = ()) -> Any:
    """Build dataclass ``cls`` for ``task`` from ``d``; raise ValueError naming unknown,
    missing or bad keys."""
    what = cls.__name__
    if not isinstance(d, dict):
        raise ValueError(f"{what}: expected a dict, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]
    unknown, missing = sorted(set(d) - set(names)), [n for n in names if n not in d]
    if unknown or missing:
        raise ValueError(f"{what}: unknown keys {unknown}, missing keys {missing}; expected "
                         f"exactly {names}")
    values: dict[str, Any] = {}
    for name in names:
        v = d[name]
        if name in ints:
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < ints[name]:
                raise ValueError(f"{what}: {name}={v!r}; expected an int >= {ints[name]}")
            values[name] = int(v)
        elif name in bools:
            if not isinstance(v, bool):
                raise ValueError(f"{what}: {name}={v!r}; expected true or false")
            values[name] = v
        elif name == "dtype":
            if v not in _DTYPES:
                raise ValueError(f"{what}: dtype={v!r}; expected one of {sorted(_DTYPES)}")
            values[name] = v
        elif name == "task":
            if v != task:
                raise ValueError(f"{what}: task={v!r}; expected {task!r}")
            values[name] = v
        else:
            ok = not isinstance(v, bool) and isinstance(v, int | float | np.number)
            f = float(v) if ok else math.nan
            if not ok or not math.isfinite(f) or (name in positive and f <= 0) or (
                    name in nonnegative and f < 0):
                bound = "> 0" if name in positive else ">= 0"
                raise ValueError(f"{what}: {name}={v!r}; expected a finite number {bound}")
            values[name] = f
    return cls(**values)


@dataclass(frozen=True)
class DensityConfig:
    """Maximum-likelihood training on samples (§4.1: MNIST; also the 2-D toys)."""

    task: str  # "density"
    width: int  # h, hidden units of ϕ
    epsilon: float  # RK4 step ε
    steps: int  # RK4 steps; T = ε·steps
    lr: float  # Adam learning rate
    weight_decay: float  # Adam weight decay (1e-3 in the published MNIST runs)
    batch_size: int  # B
    epochs: int  # passes over the training set
    monitor: int  # test examples scored after every epoch (Fig. 3a); 0 = none
    dtype: str  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict) -> DensityConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return _parse(cls, d, "density", {"width": 1, "steps": 1, "batch_size": 1,
                                          "epochs": 1, "monitor": 0},
                      ("epsilon", "lr"), ("weight_decay",))


@dataclass(frozen=True)
class IsingConfig:
    """Reverse-KL training against the continuous Ising energy (§4.2, eqs. 7-8)."""

    task: str  # "ising"
    width: int  # h
    epsilon: float  # RK4 step ε
    steps: int  # RK4 steps; T = ε·steps
    lr: float  # Adam learning rate
    weight_decay: float  # Adam weight decay
    batch_size: int  # B, samples per step
    iters: int  # optimiser steps ("epochs" of the paper's Fig. 4)
    symmetrize: bool  # average ϕ over spin flip × translations × D4 (§4.2)
    snapshots: int  # training stages at which generated spins are kept (Fig. 4 insets)
    dtype: str

    @classmethod
    def from_dict(cls, d: dict) -> IsingConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return _parse(cls, d, "ising", {"width": 1, "steps": 1, "batch_size": 2, "iters": 1,
                                        "snapshots": 0},
                      ("epsilon", "lr"), ("weight_decay",), ("symmetrize",))


# ------------------------------------------------------------------------------- potential
@dataclass
class PotentialDerivatives:
    """Closed-form derivatives of ϕ: grad ``[n, d]`` = ∇ϕ, laplacian ``[n]`` = ∇²ϕ."""

    grad: Tensor
    laplacian: Tensor


class FlowPotential(Protocol):
    """What :func:`integrate` needs of a potential: its dimension and its vector field."""

    d: int

    def vector_field(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """x ``[n, d]`` ↦ (∇ϕ ``[n, d]``, ∇²ϕ ``[n]``)."""
        ...


class SoftplusPotential(nn.Module):
    """ϕ(x) = w₂ᵀ softplus(W₁x + b₁) with W₁ ``[h, d]``, b₁ ``[h]``, w₂ ``[h]`` (§3).

    Initialised like ``nn.Linear`` (uniform ±1/√fan_in) from an explicit generator.
    """

    def __init__(self, d: int, width: int, dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if d < 1 or width < 1:
            raise ValueError(f"SoftplusPotential: d={d}, width={width}; both must be >= 1")
        self.d, self.width = int(d), int(width)

        def uniform(shape: tuple[int, ...], bound: float) -> nn.Parameter:
            u = torch.rand(shape, generator=generator, dtype=torch.float64)
            return nn.Parameter(((2.0 * u - 1.0) * bound).to(dtype))

        self.weight = uniform((width, d), 1.0 / math.sqrt(d))  # W₁
        self.bias = uniform((width,), 1.0 / math.sqrt(d))  # b₁
        self.out = uniform((width,), 1.0 / math.sqrt(width))  # w₂

    def forward(self, x: Tensor) -> Tensor:
        """ϕ(x) for x ``[n, d]``; returns ``[n]``."""
        return nn.functional.softplus(torch.addmm(self.bias, x, self.weight.t())) @ self.out

    def derivatives(self, x: Tensor) -> PotentialDerivatives:
        """∇ϕ and ∇²ϕ at x ``[n, d]`` in closed form (no autograd over dimensions)."""
        grad, lap = _field(x, self.weight, self.bias, self.out, self._curvature())
        return PotentialDerivatives(grad=grad, laplacian=lap)

    def _curvature(self) -> Tensor:
        """w₂ₖ‖W₁ₖ‖² ``[h]``, the per-unit weight of σ″ in the Laplacian."""
        return self.out * self.weight.square().sum(1)

    def vector_field(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """x ``[n, d]`` ↦ (∇ϕ ``[n, d]``, ∇²ϕ ``[n]``), with w₂ₖ‖W₁ₖ‖² computed once (per
        integration, not per RK4 stage). Any object with ``d`` and this method can be
        integrated by :func:`integrate`."""
        weight, bias, out, curvature = self.weight, self.bias, self.out, self._curvature()
        return lambda x: _field(x, weight, bias, out, curvature)


def _field(x: Tensor, weight: Tensor, bias: Tensor, out: Tensor, curvature: Tensor
           ) -> tuple[Tensor, Tensor]:
    """(∇ϕ ``[n, d]``, ∇²ϕ ``[n]``): σ′ = sigmoid, σ″ = s(1 − s) for softplus."""
    s = torch.sigmoid(torch.addmm(bias, x, weight.t()))  # σ′(a), a = W₁x + b₁
    grad = (s * out) @ weight  # ∇ϕ = W₁ᵀ(w₂ ⊙ σ′(a))
    lap = (s - s * s) @ curvature  # ∇²ϕ = Σₖ w₂ₖ σ″(aₖ)‖W₁ₖ‖²
    return grad, lap


# ------------------------------------------------------------------------------- symmetry
class SymmetryGroup:
    """Spin flip × translations × D4 of the L×L torus as signed site permutations (§4.2).

    An element is (index into :func:`lattice_permutations`, sign ±1) acting as
    (gx)ᵢ = sign · x[π(i)]; it is orthogonal, so g⁻¹ = gᵀ.
    """

    def __init__(self, L: int, device: torch.device | str = "cpu") -> None:
        perms = torch.as_tensor(lattice_permutations(L), device=device)
        self.L = L
        self.perms = perms  # [8L², N]
        self.inverse = torch.argsort(perms, dim=1)  # [8L², N]

    @property
    def order(self) -> int:
        """|G| = 2 · 8L² (with repetitions at L = 2)."""
        return 2 * self.perms.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n uniform elements: (permutation indices ``[n]``, signs ``[n, 1]``), from generator."""
        idx = torch.randint(0, self.perms.shape[0], (n,), generator=generator)
        sign = torch.randint(0, 2, (n, 1), generator=generator) * 2 - 1
        return idx.to(self.perms.device), sign.to(self.perms.device)

    def act(self, x: Tensor, idx: Tensor, sign: Tensor) -> Tensor:
        """g x for one element per row; x ``[n, N]``."""
        return x.gather(1, self.perms[idx]) * sign.to(x.dtype)

    def act_inverse(self, y: Tensor, idx: Tensor, sign: Tensor) -> Tensor:
        """g⁻¹ y for one element per row; y ``[n, N]``."""
        return y.gather(1, self.inverse[idx]) * sign.to(y.dtype)


def symmetrized_potential(potential: SoftplusPotential, group: SymmetryGroup, x: Tensor
                          ) -> Tensor:
    """ϕ(x) = |G|⁻¹ Σ_g ϕ̃(gx) over every element of ``group`` (§4.2); x ``[n, N]`` → ``[n]``.

    Exact but |G| times the cost: for checks; training samples one element per step.
    """
    n, N = x.shape
    moved = x[:, group.perms]  # [n, 8L², N]: (g x)ᵢ = x[π_g(i)]
    values = potential(torch.cat([moved, -moved], dim=1).reshape(-1, N)).reshape(n, -1)
    return values.mean(1)


# -------------------------------------------------------------------------------- the flow
@dataclass
class FlowOutput:
    """End of one integration of eqs. (2)-(3).

    x: end points ``[n, d]``; delta_logp: ln p(end) − ln p(start) along each trajectory
    ``[n]`` (nats); kinetic: ∫‖∇ϕ‖² dt over the path ``[n]`` (or None); path: the states
    recorded every ``record_every`` steps, start included (or []); elements: the group
    elements used, one (indices, signs) per step in integration order (or []).
    """

    x: Tensor
    delta_logp: Tensor
    kinetic: Tensor | None = None
    path: list[Tensor] | None = None
    elements: list[tuple[Tensor, Tensor]] | None = None


def _rhs(potential: FlowPotential, d: int, kinetic: bool
         ) -> Callable[[float, Tensor], Tensor]:
    """Right-hand side of (2)-(3) on the state (x, ℓ[, κ]) ``[n, d+1(+1)]``."""
    field = potential.vector_field()

    def f(t: float, state: Tensor) -> Tensor:
        grad, lap = field(state[:, :d])
        cols = [grad, -lap.unsqueeze(1)]  # dx/dt = ∇ϕ (2), d ln p/dt = −∇²ϕ (3)
        if kinetic:
            cols.append(grad.square().sum(1, keepdim=True))
        return torch.cat(cols, dim=1)

    return f


def integrate(potential: FlowPotential, x: Tensor, epsilon: float, steps: int, *,
              reverse: bool = False, kinetic: bool = False, group: SymmetryGroup | None = None,
              generator: torch.Generator | None = None,
              elements: list[tuple[Tensor, Tensor]] | None = None,
              record_every: int = 0) -> FlowOutput:
    """Integrate (2)-(3) by RK4 from t = 0 to T = ε·steps (``reverse``: from T to 0).

    x: ``[n, d]`` in the potential's dtype; ``kinetic`` also integrates ‖∇ϕ‖². With
    ``group``, each step uses the field of ϕ̃∘g for one element g per sample, drawn from
    ``generator`` or replayed from ``elements`` (pass a forward run's ``elements[::-1]`` to
    invert it). ``record_every`` > 0 keeps the states every that many steps in ``path``.
    """
    if x.dim() != 2 or x.shape[1] != potential.d:
        raise ValueError(f"integrate: x has shape {tuple(x.shape)}; expected [n, "
                         f"{potential.d}]")
    n, d = x.shape
    extra = 2 if kinetic else 1
    state = torch.cat([x, x.new_zeros(n, extra)], dim=1)
    f = _rhs(potential, d, kinetic)
    T = float(epsilon) * steps
    t0, t1 = (T, 0.0) if reverse else (0.0, T)
    path: list[Tensor] = [x.detach().clone()] if record_every else []
    used: list[tuple[Tensor, Tensor]] = []
    if group is None and not record_every:
        state = rk4(f, state, t0, t1, steps)
    else:
        if group is not None and elements is None and generator is None:
            raise ValueError("integrate: a symmetry group needs a generator or elements")
        if elements is not None and len(elements) != steps:
            raise ValueError(f"integrate: {len(elements)} group elements for {steps} steps")
        h = (t1 - t0) / steps
        for i in range(steps):
            if group is not None:
                g = elements[i] if elements is not None else group.sample(n, generator)
                used.append(g)
                state = torch.cat([group.act(state[:, :d], *g), state[:, d:]], dim=1)
            state = rk4(f, state, t0 + i * h, t0 + (i + 1) * h, 1)
            if group is not None:
                state = torch.cat([group.act_inverse(state[:, :d], *g), state[:, d:]], dim=1)
            if record_every and ((i + 1) % record_every == 0 or i + 1 == steps):
                path.append(state[:, :d].detach().clone())
    sign = -1.0 if reverse else 1.0  # ∫_T^0 of a positive integrand is negative
    return FlowOutput(x=state[:, :d], delta_logp=state[:, d],
                      kinetic=sign * state[:, d + 1] if kinetic else None,
                      path=path, elements=used)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """ln N(z; 0, I) for z ``[n, d]``; returns ``[n]`` nats."""
    return -0.5 * z.square().sum(1) - 0.5 * z.shape[1] * math.log(2.0 * math.pi)


def negative_log_likelihood(potential: SoftplusPotential, x: Tensor, epsilon: float,
                            steps: int, kinetic: bool = False
                            ) -> tuple[Tensor, FlowOutput]:
    """−ln p(x, T) ``[n]`` nats (eq. 6): integrate x ``[n, d]`` back to z = x(0).

    ln p(x, T) = ln N(z) − [ln p(z, 0) − ln p(x, T)] with the bracket the reverse run's
    delta_logp = ∫₀ᵀ ∇²ϕ dt.
    """
    out = integrate(potential, x, epsilon, steps, reverse=True, kinetic=kinetic)
    return out.delta_logp - standard_normal_log_prob(out.x), out


def sample_flow(potential: SoftplusPotential, z: Tensor, epsilon: float, steps: int, *,
                group: SymmetryGroup | None = None, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
    """Samples x(T) ``[n, d]`` and ln p(x, T) ``[n]`` from z ``[n, d]`` ~ N(0, I) (§4.2)."""
    out = integrate(potential, z, epsilon, steps, group=group, generator=generator)
    return out.x, standard_normal_log_prob(z) + out.delta_logp


# ------------------------------------------------------------------------------- trainers


class _Trainer:
    """Shared parts: the potential, Adam, one CPU generator, the state dict."""

    eval_batch_size = 1000

    def __init__(self, cfg: DensityConfig | IsingConfig, d: int, seed: int,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = _DTYPES[cfg.dtype]
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        self.potential = SoftplusPotential(d, cfg.width, self.dtype, self.generator)
        self.potential.to(self.device)
        self.optimizer = self._new_optimizer()
        self.step_index = 0

    def _new_optimizer(self) -> Adam:
        return Adam(self.potential.parameters(), lr=self.cfg.lr,
                    weight_decay=self.cfg.weight_decay)

    def _randn(self, n: int, d: int) -> Tensor:
        z = torch.randn(n, d, generator=self.generator, dtype=torch.float64)
        return z.to(self.device, self.dtype)

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        """Weights, Adam state, RNG state, step and curves; loads with weights_only=True."""
        return copy.deepcopy({
            "format": _STATE_FORMAT, "task": self.cfg.task, "step_index": self.step_index,
            "potential": self.potential.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), **self._extra_state()})

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict` of a trainer with the same config."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT or \
                state.get("task") != self.cfg.task:
            got = (state.get("format"), state.get("task")) if isinstance(state, dict) else state
            raise ValueError(f"not a Monge-Ampère {self.cfg.task} state (got {got!r}, "
                             f"expected {(_STATE_FORMAT, self.cfg.task)!r})")
        step = int(state["step_index"])
        if not 0 <= step <= self.n_steps:
            raise ValueError(f"state step_index={step} outside [0, {self.n_steps}]: the "
                             f"checkpoint belongs to a different config")
        self.potential.load_state_dict(state["potential"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step
        self._load_extra_state(state)

    def n_parameters(self) -> int:
        """Trainable parameters of ϕ: h·d + 2h."""
        return sum(p.numel() for p in self.potential.parameters())

    def _batches(self, x: Tensor):
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield x[i : i + self.eval_batch_size]


class DensityTrainer(_Trainer):
    """Maximum likelihood (eq. 6) on ``train`` ``[n, d]``; one shuffled pass per epoch.

    ``monitor`` > 0 scores that many examples of ``test`` after every epoch, for the train
    and test NLL curves of Fig. 3a (the train value is the epoch's running mean). With
    ``logit_lambda`` the data are images in logit space y = logit(λ + (1 − 2λ)x): the NLL
    stays in logit space (the paper's convention) and bits/dim in pixel space is added.
    """

    def __init__(self, cfg: DensityConfig, train: np.ndarray, seed: int,
                 device: torch.device, test: np.ndarray | None = None,
                 logit_lambda: float | None = None) -> None:
        arr = np.asarray(train)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"train has shape {arr.shape}; expected [n, d] with n >= 1")
        super().__init__(cfg, arr.shape[1], seed, device)
        self.train = checked_tensor(arr, "train", self.dtype, self.device)
        self.d = self.train.shape[1]
        self.logit_lambda = logit_lambda  # set: images in logit space (MNIST, §4.1)
        self.monitor_set = (None if test is None or cfg.monitor == 0 else checked_tensor(
            np.asarray(test)[: cfg.monitor], "test", self.dtype, self.device, self.d))
        self.steps_per_epoch = -(-self.train.shape[0] // cfg.batch_size)
        self.n_steps = cfg.epochs * self.steps_per_epoch
        self.perm = torch.zeros(0, dtype=torch.int64)
        self.epoch_sum, self.epoch_count = 0.0, 0
        self.curve: list[list[float]] = []  # [epoch, train NLL, test NLL (nan: none)]

    def _extra_state(self) -> dict:
        return {"perm": self.perm, "epoch_sum": self.epoch_sum,
                "epoch_count": self.epoch_count, "curve": self.curve}

    def _load_extra_state(self, state: dict) -> None:
        self.perm = state["perm"]
        self.epoch_sum, self.epoch_count = float(state["epoch_sum"]), int(state["epoch_count"])
        self.curve = [list(map(float, row)) for row in state["curve"]]

    def train_step(self) -> dict[str, float]:
        """One Adam step on the batch mean of −ln p(x, T) (eq. 6); returns python floats."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        k = self.step_index % self.steps_per_epoch
        if k == 0:
            self.perm = torch.randperm(self.train.shape[0], generator=self.generator)
        idx = self.perm[k * self.cfg.batch_size : (k + 1) * self.cfg.batch_size]
        x = self.train[idx.to(self.device)]
        self.optimizer.zero_grad(set_to_none=True)
        nll, _ = negative_log_likelihood(self.potential, x, self.cfg.epsilon, self.cfg.steps)
        loss = nll.mean()
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        value = loss.item()
        self.epoch_sum += value * x.shape[0]
        self.epoch_count += x.shape[0]
        logs = {"loss": value}
        if k == self.steps_per_epoch - 1:  # the epoch ends: Fig. 3a's points
            epoch = self.step_index // self.steps_per_epoch
            train_nll = self.epoch_sum / self.epoch_count
            test_nll = self._nll(self.monitor_set) if self.monitor_set is not None else math.nan
            self.curve.append([float(epoch), train_nll, test_nll])
            self.epoch_sum, self.epoch_count = 0.0, 0
            logs.update(epoch=float(epoch), train_nll_epoch=train_nll)
            if math.isfinite(test_nll):
                logs["test_nll_epoch"] = test_nll
        return logs

    @torch.no_grad()
    def _nll(self, x: Tensor) -> float:
        total = sum(negative_log_likelihood(self.potential, b, self.cfg.epsilon,
                                            self.cfg.steps)[0].double().sum().item()
                    for b in self._batches(x))
        return total / x.shape[0]

    @torch.no_grad()
    def log_density(self, x: np.ndarray) -> np.ndarray:
        """ln p(x, T) in nats ``[n]`` for x ``[n, d]``."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        out = [-negative_log_likelihood(self.potential, b, self.cfg.epsilon,
                                        self.cfg.steps)[0] for b in self._batches(xt)]
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def flow_path(self, x: np.ndarray, n_frames: int) -> np.ndarray:
        """x ``[n, d]`` integrated back to the latent space, ``[n_frames, n, d]`` (Fig. 3b)."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        every = max(1, self.cfg.steps // max(1, n_frames - 1))
        out = integrate(self.potential, xt, self.cfg.epsilon, self.cfg.steps, reverse=True,
                        record_every=every)
        return torch.stack(out.path).double().cpu().numpy()

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        """n samples x(T) from z ~ N(0, I) (seeded), float64 ``[n, d]``."""
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        z = torch.randn(int(n), self.d, generator=gen, dtype=torch.float64)
        xs = [sample_flow(self.potential, b.to(self.device, self.dtype), self.cfg.epsilon,
                          self.cfg.steps)[0].double().cpu() for b in self._batches(z)]
        return torch.cat(xs).numpy() if xs else np.zeros((0, self.d))

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test NLL (nats, mean and standard error; again at ε/2 as a discretisation check),
        transport cost ∫‖∇ϕ‖²dt, inversion error ‖F(F⁻¹(x)) − x‖ of reverse-then-forward
        integration (large when the learned flow contracts strongly: the generative
        direction then amplifies every rounding error), and ``n_samples`` samples."""
        x = checked_tensor(test, "test", self.dtype, self.device, self.d)
        if x.shape[0] < 1:
            raise ValueError("evaluate: the test split is empty")
        nll, fine, kin, back = [], [], [], []
        for b in self._batches(x):
            value, out = negative_log_likelihood(self.potential, b, self.cfg.epsilon,
                                                 self.cfg.steps, kinetic=True)
            nll.append(value.double())
            kin.append(out.kinetic.double())
            # Discretisation check: the same NLL with half the step and twice the steps.
            fine.append(negative_log_likelihood(self.potential, b, 0.5 * self.cfg.epsilon,
                                                2 * self.cfg.steps)[0].double())
            if sum(t.shape[0] for t in back) < 1000:
                fwd = integrate(self.potential, out.x, self.cfg.epsilon, self.cfg.steps).x
                back.append((fwd - b).norm(dim=1).double())
        nll_t = torch.cat(nll)
        nll_fine = torch.cat(fine).mean().item()
        metrics = {
            "nll_nats": nll_t.mean().item(),
            "nll_nats_stderr": (nll_t.std() / math.sqrt(len(nll_t))).item()
            if len(nll_t) > 1 else 0.0,
            "transport_cost": torch.cat(kin).mean().item(),
            "inversion_error": torch.cat(back).mean().item(),
            "n_parameters": float(self.n_parameters()),
            "flow_time": self.cfg.epsilon * self.cfg.steps,
            "nll_nats_half_step": nll_fine,
        }
        extras: dict[str, np.ndarray] = {}
        if self.curve:
            extras["epoch_curve"] = np.asarray(self.curve, dtype=np.float64)
        samples = self.sample(n_samples, seed)
        if self.logit_lambda is not None:
            metrics.update(self._image_metrics(np.asarray(test), nll_t.cpu().numpy()))
            extras.update(self._image_extras(np.asarray(test), samples))
        return Evaluation(metrics=metrics, samples=samples, extras=extras)

    def _image_metrics(self, test: np.ndarray, nll: np.ndarray) -> dict[str, float]:
        """Bits/dim in pixel space from the logit-space NLL (exact logit Jacobian)."""
        lam = self.logit_lambda
        pixels = inverse_logit_transform(test.astype(np.float64), lam)
        bpd = bits_per_dim_from_logit_nll(nll, pixels, lam)
        return {"bpd": float(bpd.mean()), "logit_lambda": float(lam)}

    def _image_extras(self, test: np.ndarray, samples: np.ndarray, n_images: int = 8,
                      n_frames: int = 9) -> dict[str, np.ndarray]:
        """Fig. 3b: test images flowing to N(0, I) ``[frames, images, d]`` (pixel scale for
        the data end, raw latent values elsewhere), and generated images in (0, 1)."""
        lam = self.logit_lambda
        path = self.flow_path(test[:n_images], n_frames)
        return {"flow_path": path,
                "flow_pixels": np.clip(inverse_logit_transform(path, lam), 0.0, 1.0),
                "sample_pixels": np.clip(inverse_logit_transform(samples[:16], lam), 0, 1)}


class IsingTrainer(_Trainer):
    """Variational free energy of the continuous Ising model by the reverse KL (eq. 7)."""

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


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None) -> DensityTrainer | IsingTrainer:
    """The trainer named by ``cfg["task"]``: ``density`` (samples in ``train``; ``arrays``
    may hold the ``test`` split for the per-epoch curve) or ``ising`` (``train`` is K + aI
    and ``arrays`` the rest of ``data/processed/ising_L<L>.npz``)."""
    task = cfg.get("task") if isinstance(cfg, dict) else None
    arrays = dict(arrays or {})
    if task == "density":
        lam = float(arrays["logit_lambda"]) if "logit_lambda" in arrays else None
        return DensityTrainer(DensityConfig.from_dict(cfg), train, seed, device,
                              test=arrays.get("test"), logit_lambda=lam)
    if task == "ising":
        problem = IsingProblem.from_arrays({**arrays, "train": train})
        return IsingTrainer(IsingConfig.from_dict(cfg), problem, seed, device)
    raise ValueError(f"Monge-Ampère config: task={task!r}; expected 'density' or 'ising'")
