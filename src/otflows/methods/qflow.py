"""Q-flow: a neural-ODE optimal-transport flow between two distributions known by samples.

Xu, Cheng, Xie, "Computing high-dimensional optimal transport by flow neural networks",
arXiv:2305.11857 (our copy has no appendices).

A time-conditioned velocity f(x, t; θ) transports P (t = 0) to Q (t = 1) by dx/dt = f
(eq. (1)); T_s^t is its solution map (eq. (4)), the reverse map the same ODE backwards.
Implemented here:

* integration on the W₂ grid 0 = t₀ < … < t_K = 1 (uniform), each interval split into S
  fixed RK4 sub-steps (§3.2, ``otflows.ode.rk4``); the inversion error
  ‖T_1^0(T_0^1(x)) − x‖ is reported;
* the initial flow (§3.3): f regressed on the linear interpolant x_t = (1 − t)x₀ + t x₁ of
  independent x₀ ~ P, x₁ ~ Q, target x₁ − x₀ (the stochastic-interpolant / flow-matching
  construction of Albergo & Vanden-Eijnden 2023 cited there);
* the refinement, Algorithm 1: per Iter a P→Q leg then a Q→P leg; each leg first trains its
  classifier (r₁ by the logistic loss (5), r̃₀ by (8)) for E₀ steps (Iter 1 only), then E
  times: one Adam step on θ for L = L_KL + γ L_T (eq. (3)) with L_KL = −mean r₁(T_0^1 X)
  (eq. (6)) (resp. −mean r̃₀(T_1^0 X̃)) and L_T the W₂ cost (7) on the grid, followed by
  E_in classifier steps on the just-pushed samples;
* the Q-flow-ratio net (§4.1): a time-conditioned classifier r(x, s) trained by the logistic
  loss between neighbouring bridge distributions P_{t_{k−1}}, P_{t_k} of a ratio grid of L
  intervals, interval logit h_k r(x, s_k) at the midpoint s_k; then
  log p(x) − log q(x) = −∫₀¹ r(x, s) ds;
* the DRE baselines of §4.2-4.3: one classifier between P and Q ("1 ratio"), TRE over TRE's
  linear-combination waymarks, and TRE over Q-flow's own bridge (one head per interval).

What the missing appendices would have fixed, and our choices (documented once here):
an Algorithm-1 "epoch" is one minibatch step (the harness counts steps); the grid is uniform;
the velocity is an MLP on (x, t) with SiLU activations (width × n_layers); the classifiers
are 2-hidden-layer SiLU MLPs; the E_in classifier steps reuse the pushed samples of the
flow step (the paper notes they are already computed) with fresh samples of the other
side; the bridge of the ratio net and of TRE-on-Q-flow is P_{t_k} = (T_0^{t_k})#P for
k < L and the Q samples themselves at k = L (so the telescoped estimate stays consistent
when T_0^1#P ≠ Q exactly); the ratio grid is integrated with max(1, ⌈K·S/L⌉) sub-steps per
interval; bridge minibatches are drawn independently at every k; the initial flow uses
``lr`` and Algorithm 1 a separate, smaller ``refine_lr`` (the classifier-KL term is
adversarial: at the initial-flow step size the flow exploits r₁ and diverges); TRE's
waymarks use α_k = k/L; Adam for every network; the two-CNF initialisation of §3.3 is not
implemented (the linear interpolant is). §4.4: the ratio net is trained between F⁻¹#P and
N(0, I), not in pixel space (log p − log q is invariant under the common bijection F),
and BPD comes from log p̂ = log q − ∫ r ds; the improved sampler (F ∘ T_1^0)#N(0, I) is
not scored.

Tasks (``cfg["task"]``): ``toy`` — P = N(0, I), Q = the toy samples (the shared 2-D
benchmark; log-density by the instantaneous change of variables with the exact divergence);
``pair`` — P = ``train``, Q = ``arrays["train_q"]`` (GMMs, moons ↔ checkerboard, MI,
VAE latents, energy-based MNIST; see ``otflows.data.pairs`` for the file layout).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from otflows.methods.base import Evaluation
from otflows.metrics.ratio import (
    Classifier,
    MultiHeadClassifier,
    TimeClassifier,
    linear_waymarks,
    logistic_loss,
    ratio_errors,
    standard_normal_log_prob,
)
from otflows.ode import rk4

__all__ = ["QFlowConfig", "QFlowTrainer", "VelocityNet", "grid_path", "make_trainer",
           "path_cost", "PHASES"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_STATE_FORMAT = "otflows.qflow/1"
_TASKS = ("toy", "pair")
# Training phases in order; each train_step runs one step of one phase.
PHASES = ("init", "refine", "ratio", "one_ratio", "tre_linear", "tre_qflow")
DRE_METHODS = {"qflow_ratio": "Ours (Q-flow-ratio)", "one_ratio": "1 ratio",
               "tre_linear": "TRE (linear waymarks)", "tre_qflow": "TRE on Q-flow path"}


# ---------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class QFlowConfig:
    """One Q-flow run (Algorithm 1 hyperparameters {γ, {t_k}, Tot, E, E₀, E_in})."""

    task: str  # "toy" | "pair"
    width: int  # hidden units of the velocity MLP
    n_layers: int  # hidden layers of the velocity MLP
    K: int  # W₂ grid intervals (eq. (7))
    S: int  # RK4 sub-steps per interval (§3.2: 3-5)
    gamma: float  # weight γ of the W₂ term (eq. (3))
    lr: float  # Adam, velocity, initial flow
    refine_lr: float  # Adam, velocity, Algorithm 1 (smaller: the KL term is adversarial)
    batch_size: int  # samples of P and of Q per step
    init_iters: int  # flow-matching steps of the initial flow (§3.3)
    tot: int  # outer iterations "Tot" of Algorithm 1 (0: no refinement)
    E: int  # θ steps per leg and Iter
    E0: int  # classifier steps before a leg's first θ step (Iter 1)
    E_in: int  # classifier steps after every θ step
    clf_width: int  # hidden units of r₁, r̃₀ and of the baselines' classifiers
    clf_lr: float  # Adam, classifiers
    dre: bool  # train the Q-flow-ratio net (§4.1)
    baselines: bool  # with dre: also the three DRE baselines (1 ratio, TRE ×2)
    ratio_width: int  # hidden units of r(x, s)
    ratio_intervals: int  # L, intervals of the ratio grid (and of both TREs)
    ratio_iters: int  # Adam steps of the ratio net (and of each baseline)
    ratio_lr: float
    field_grid: int  # 2-D only: interval log-ratios on a grid of this size (Fig. 2b); 0 none
    dtype: str  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict) -> QFlowConfig:
        """Validate and build; raise ValueError naming unknown, missing or bad keys."""
        if not isinstance(d, dict):
            raise ValueError(f"QFlowConfig: expected a dict, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(d) - set(names)), [n for n in names if n not in d]
        if unknown or missing:
            raise ValueError(f"QFlowConfig: unknown keys {unknown}, missing keys {missing}; "
                             f"expected exactly {names}")
        ints = {"width": 1, "n_layers": 1, "K": 1, "S": 1, "batch_size": 2, "init_iters": 0,
                "tot": 0, "E": 1, "E0": 0, "E_in": 0, "clf_width": 1, "ratio_width": 1,
                "ratio_intervals": 1, "ratio_iters": 0, "field_grid": 0}
        out: dict[str, Any] = {}
        for name in names:
            v = d[name]
            if name in ints:
                if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < ints[name]:
                    raise ValueError(f"QFlowConfig: {name}={v!r}; expected an int >= "
                                     f"{ints[name]}")
                out[name] = int(v)
            elif name == "task":
                if v not in _TASKS:
                    raise ValueError(f"QFlowConfig: task={v!r}; expected one of {_TASKS}")
                out[name] = v
            elif name == "dtype":
                if v not in _DTYPES:
                    raise ValueError(f"QFlowConfig: dtype={v!r}; expected one of "
                                     f"{sorted(_DTYPES)}")
                out[name] = v
            elif name in ("dre", "baselines"):
                if not isinstance(v, bool):
                    raise ValueError(f"QFlowConfig: {name}={v!r}; expected true or false")
                out[name] = v
            else:
                ok = not isinstance(v, bool) and isinstance(v, int | float | np.number)
                if not ok or not math.isfinite(float(v)) or float(v) < 0 or (
                        name != "gamma" and float(v) == 0):
                    raise ValueError(f"QFlowConfig: {name}={v!r}; expected a finite number "
                                     f"{'>= 0' if name == 'gamma' else '> 0'}")
                out[name] = float(v)
        if out["task"] == "toy" and out["dre"]:
            raise ValueError("QFlowConfig: dre=true needs task 'pair' (a P sample set)")
        return cls(**out)

    def phase_lengths(self) -> dict[str, int]:
        """Steps of each phase of :data:`PHASES`."""
        n = self.ratio_iters if self.dre else 0
        b = n if self.baselines else 0
        return {"init": self.init_iters, "refine": 2 * self.tot * self.E, "ratio": n,
                "one_ratio": b, "tre_linear": b, "tre_qflow": b}


# ------------------------------------------------------------------------------- velocity
class VelocityNet(nn.Module):
    """f(x, t; θ) ``[n, d]`` (eq. (1)): an MLP on (x, t), SiLU, ``n_layers`` hidden layers.

    The time enters the first layer as t·w_t (a concatenated input), so a float t costs one
    fused ``addmm``.
    """

    def __init__(self, d: int, width: int, n_layers: int) -> None:
        super().__init__()
        self.d = d
        self.inp = nn.Linear(d, width)
        self.time = nn.Parameter(torch.empty(width).uniform_(-1.0, 1.0))
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(n_layers - 1))
        self.out = nn.Linear(width, d)
        self.evals = 0  # function evaluations (rows) since the last reset, §3.2's count

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x ``[n, d]``, t a float or ``[n, 1]`` → f ``[n, d]``."""
        self.evals += x.shape[0]
        if isinstance(t, Tensor):
            h = self.inp(x) + t * self.time
        else:
            h = torch.addmm(torch.add(self.inp.bias, self.time, alpha=float(t)), x,
                            self.inp.weight.t())
        h = nn.functional.silu(h)
        for layer in self.hidden:
            h = nn.functional.silu(layer(h))
        return self.out(h)


def grid_path(f: VelocityNet, x: Tensor, grid: Tensor, substeps: int, reverse: bool = False
              ) -> list[Tensor]:
    """States at every grid time: T_0^{t_k}(x) for k = 0..K (``reverse``: T_1^{t_k}(x) for
    k = K..0, listed in integration order). x ``[n, d]``; RK4 with ``substeps`` per interval."""
    times = grid.flip(0) if reverse else grid
    states = [x]
    for a, b in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        states.append(rk4(lambda t, y: f(y, t), states[-1], a, b, substeps))
    return states


def path_cost(states: list[Tensor], grid: Tensor) -> Tensor:
    """Eq. (7): Σ_k mean‖X(t_k) − X(t_{k−1})‖² / h_k over consecutive states (scalar)."""
    h = (grid[1:] - grid[:-1]).abs()
    return sum(((b - a).square().sum(1).mean() / hk)
               for a, b, hk in zip(states[:-1], states[1:], h.tolist(), strict=True))


def _assignment_w2(x: np.ndarray, y: np.ndarray) -> float:
    """Exact discrete W₂² between two equal-size point clouds (Hungarian assignment)."""
    cost = np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None] - 2.0 * x @ y.T, 0.0)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def _independent_pair_cost(x: Tensor, y: Tensor, gen: torch.Generator) -> float:
    """E‖X₁ − X₀‖² over independent pairs: the particle cost of the linear interpolant."""
    k = min(len(x), len(y))
    perm = torch.randperm(len(y), generator=gen)[:k].to(y.device)
    return float((y[perm] - x[:k]).square().sum(1).mean())


# -------------------------------------------------------------------------------- trainer
class QFlowTrainer:
    """Initial flow, Algorithm 1, then (``dre``) the ratio net and the DRE baselines."""

    eval_batch = 2000

    def __init__(self, cfg: QFlowConfig, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None) -> None:
        arrays = dict(arrays or {})
        self.cfg, self.device, self.dtype = cfg, device, _DTYPES[cfg.dtype]
        self.arrays = arrays
        q = np.asarray(train if cfg.task == "toy" else arrays.get("train_q", np.zeros(0)))
        if cfg.task == "pair" and q.ndim != 2:
            raise ValueError("QFlow pair task: the data file has no `train_q` [m, d] (the Q "
                             "samples); prepare it with `otflows prepare qflow ...`")
        self.x_q = self._tensor(q, "Q samples")
        self.d = self.x_q.shape[1]
        self.x_p = None if cfg.task == "toy" else self._tensor(train, "P samples (train)")
        if self.x_p is not None and self.x_p.shape[1] != self.d:
            raise ValueError(f"QFlow: P has d={self.x_p.shape[1]}, Q has d={self.d}")
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):  # initialisation from the seed alone
            torch.manual_seed(int(seed))
            self._build(cfg)
        self.lengths = cfg.phase_lengths()
        self.n_steps = sum(self.lengths.values())
        if self.n_steps < 1:
            raise ValueError("QFlowConfig: init_iters, tot and ratio_iters are all 0: "
                             "nothing to train")
        self.step_index = 0
        self.initial_cost = math.nan  # W₂ cost (7) of the initial flow (the interpolant bridge)
        self._bank: Tensor | None = None  # bridge states of all P samples (after refinement)

    def _build(self, cfg: QFlowConfig) -> None:
        """Networks, optimisers and grids (under the seeded RNG of ``__init__``)."""
        device = self.device
        self.f = VelocityNet(self.d, cfg.width, cfg.n_layers).to(device, self.dtype)
        self.r1 = Classifier(self.d, cfg.clf_width).to(device, self.dtype)  # log(q/p₁), eq. (5)
        self.r0 = Classifier(self.d, cfg.clf_width).to(device, self.dtype)  # log(p/q₀), eq. (8)
        self.opt_f = torch.optim.Adam(self.f.parameters(),
                                      lr=cfg.lr if cfg.init_iters else cfg.refine_lr)
        self.opt_r1 = torch.optim.Adam(self.r1.parameters(), lr=cfg.clf_lr)
        self.opt_r0 = torch.optim.Adam(self.r0.parameters(), lr=cfg.clf_lr)
        self.grid = torch.linspace(0.0, 1.0, cfg.K + 1, dtype=self.dtype, device=device)
        L = cfg.ratio_intervals
        self.ratio_grid = torch.linspace(0.0, 1.0, L + 1, dtype=self.dtype, device=device)
        self.ratio_substeps = max(1, math.ceil(cfg.K * cfg.S / L))
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        if cfg.dre:
            self.nets = {"qflow_ratio": TimeClassifier(self.d, cfg.ratio_width)}
            if cfg.baselines:
                self.nets.update({"one_ratio": Classifier(self.d, cfg.clf_width),
                                  "tre_linear": MultiHeadClassifier(self.d, cfg.clf_width, L),
                                  "tre_qflow": MultiHeadClassifier(self.d, cfg.clf_width, L)})
            for k, net in self.nets.items():
                net.to(device, self.dtype)
                self.opts[k] = torch.optim.Adam(net.parameters(), lr=cfg.ratio_lr)

    # ------------------------------------------------------------------ helpers
    def _tensor(self, x: np.ndarray, what: str) -> Tensor:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"QFlow: {what} has shape {x.shape}; expected [n >= 2, d]")
        return torch.as_tensor(x, dtype=self.dtype, device=self.device)

    def _batch(self, which: str, n: int | None = None) -> Tensor:
        """A minibatch of P (N(0, I) for the toy task) or Q, drawn from the generator."""
        n = n or self.cfg.batch_size
        if which == "p" and self.x_p is None:
            z = torch.randn(n, self.d, generator=self.generator, dtype=torch.float64)
            return z.to(self.device, self.dtype)
        data = self.x_p if which == "p" else self.x_q
        idx = torch.randint(0, data.shape[0], (n,), generator=self.generator)
        return data[idx.to(self.device)]

    def phase(self, step: int | None = None) -> tuple[str, int]:
        """(phase name, index within it) of training step ``step`` (default: the next)."""
        i = self.step_index if step is None else step
        for name in PHASES:
            if i < self.lengths[name]:
                return name, i
            i -= self.lengths[name]
        raise RuntimeError(f"step {step} is past the last step ({self.n_steps})")

    def path(self, x: Tensor, reverse: bool = False, grid: Tensor | None = None,
             substeps: int | None = None) -> list[Tensor]:
        """Grid states of the learned flow from x (P side; ``reverse``: from the Q side)."""
        return grid_path(self.f, x, self.grid if grid is None else grid,
                         substeps or self.cfg.S, reverse)

    # ------------------------------------------------------------------ phases
    def _init_step(self) -> dict[str, float]:
        """§3.3: regress f(x_t, t) on x₁ − x₀ along x_t = (1 − t)x₀ + t x₁."""
        x0, x1 = self._batch("p"), self._batch("q")
        t = torch.rand(x0.shape[0], 1, generator=self.generator, dtype=torch.float64)
        t = t.to(self.device, self.dtype)
        xt = (1 - t) * x0 + t * x1
        loss = (self.f(xt, t) - (x1 - x0)).square().sum(1).mean()
        self.opt_f.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_f.step()
        return {"loss": loss.item(), "fm_loss": loss.item()}

    def _classifier_steps(self, clf: nn.Module, opt: torch.optim.Optimizer, pushed: Tensor,
                          target: str, n: int) -> float:
        """``n`` Adam steps of eq. (5) (or (8)): pushed samples get logit +r, the other
        side's real samples −r. Returns the last loss (nan when n = 0)."""
        value = math.nan
        for _ in range(n):
            idx = torch.randint(0, pushed.shape[0], (min(self.cfg.batch_size, pushed.shape[0]),),
                                generator=self.generator).to(self.device)
            loss = logistic_loss(clf(pushed[idx]), clf(self._batch(target)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
        return value

    def _refine_step(self, local: int) -> dict[str, float]:
        """One θ step of Algorithm 1 (lines 4-5 or 9-10), with the E₀ warm-up first."""
        cfg = self.cfg
        leg_index, within = divmod(local, cfg.E)
        forward = leg_index % 2 == 0  # P→Q legs first, then Q→P (Algorithm 1)
        src, dst = ("p", "q") if forward else ("q", "p")
        clf, opt = (self.r1, self.opt_r1) if forward else (self.r0, self.opt_r0)
        if leg_index < 2 and within == 0 and cfg.E0 > 0:  # lines 2 and 7: Iter 1 only
            with torch.no_grad():
                pushed = self.path(self._batch(src, 4 * cfg.batch_size), reverse=not forward)[-1]
            self._classifier_steps(clf, opt, pushed, dst, cfg.E0)
        x = self._batch(src)
        states = self.path(x, reverse=not forward)
        kl = -clf(states[-1]).mean()  # eq. (6) / its Q→P analogue
        w2 = path_cost(states, self.grid)  # eq. (7)
        loss = kl + cfg.gamma * w2  # eq. (3)
        self.opt_f.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_f.step()
        clf_loss = self._classifier_steps(clf, opt, states[-1].detach(), dst, cfg.E_in)
        return {"loss": loss.item(), "kl": kl.item(), "w2": w2.item(),
                "clf_loss": clf_loss, "forward": float(forward)}

    def bridge(self, n: int) -> list[Tensor]:
        """Samples of Q-flow's bridge on the ratio grid: (T_0^{t_k})#P for k < L, Q at L.

        The flow is frozen once the ratio phases start, so every P sample is pushed once
        (a bank ``[L, N, d]``, rebuilt identically after a resume) and minibatches are drawn
        from it, independently at every k."""
        if self._bank is None:
            with torch.no_grad():
                parts = [self.path(b, grid=self.ratio_grid, substeps=self.ratio_substeps)[:-1]
                         for b in self._batches(self.x_p)]
                self._bank = torch.stack([torch.cat([p[k] for p in parts])
                                          for k in range(self.cfg.ratio_intervals)])
        # independent draws per bridge time: eq. (5)'s two expectations use separate samples,
        # and a classifier cannot memorise the displacement of a shared point
        idx = torch.randint(0, self.x_p.shape[0], (self.cfg.ratio_intervals, n),
                            generator=self.generator).to(self.device)
        states = [self._bank[k, idx[k]] for k in range(self.cfg.ratio_intervals)]
        return states + [self._batch("q", n)]

    def _ratio_step(self, name: str) -> dict[str, float]:
        """One Adam step of the ratio net (§4.1) or of one baseline."""
        net, L, b = self.nets[name], self.cfg.ratio_intervals, self.cfg.batch_size
        if name == "qflow_ratio":
            states = self.bridge(b)
            g = self.ratio_grid
            mids = (0.5 * (g[1:] + g[:-1])).tolist()
            losses = [logistic_loss(net(states[k - 1], mids[k - 1]), net(states[k], mids[k - 1]))
                      for k in range(1, L + 1)]
            loss = torch.stack(losses).mean()
        elif name == "one_ratio":
            loss = logistic_loss(net(self._batch("p")), net(self._batch("q")))
        else:
            if name == "tre_linear":
                alphas = torch.linspace(0.0, 1.0, L + 1, dtype=self.dtype)
                states = list(linear_waymarks(self._batch("p"), self._batch("q"), alphas))
            else:
                states = self.bridge(b)
            loss = torch.stack([logistic_loss(net(states[k - 1])[:, k - 1],
                                              net(states[k])[:, k - 1])
                                for k in range(1, L + 1)]).mean()
        opt = self.opts[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), f"{name}_loss": loss.item()}

    def train_step(self) -> dict[str, float]:
        """One step of the current phase; returns python floats including ``loss``."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        name, local = self.phase()
        if name == "init":
            logs = self._init_step()
        elif name == "refine":
            logs = self._refine_step(local)
        else:
            logs = self._ratio_step("qflow_ratio" if name == "ratio" else name)
        self.step_index += 1
        if self.step_index == self.lengths["init"]:
            for group in self.opt_f.param_groups:
                group["lr"] = self.cfg.refine_lr
            self.initial_cost = self.cost_of(self._batch("p", self.eval_batch))
        logs["phase"] = float(PHASES.index(name))
        return logs

    # ------------------------------------------------------------------ state
    def _modules(self) -> dict[str, nn.Module]:
        return {"f": self.f, "r1": self.r1, "r0": self.r0, **self.nets}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"f": self.opt_f, "r1": self.opt_r1, "r0": self.opt_r0, **self.opts}

    def state_dict(self) -> dict:
        """Weights, optimisers, RNG and step (loads with ``weights_only=True``)."""
        return copy.deepcopy({
            "format": _STATE_FORMAT, "step_index": self.step_index,
            "initial_cost": self.initial_cost,
            "modules": {k: m.state_dict() for k, m in self._modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self._optimizers().items()},
            "generator": self.generator.get_state()})

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict` of a trainer of the same config."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError(f"not a Q-flow trainer state (expected format {_STATE_FORMAT!r})")
        step = int(state["step_index"])
        if not 0 <= step <= self.n_steps or set(state["modules"]) != set(self._modules()):
            raise ValueError(f"state (step {step}, modules {sorted(state['modules'])}) does not "
                             f"fit this config ({self.n_steps} steps): another config's "
                             f"checkpoint")
        for k, m in self._modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self._optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        self.generator.set_state(state["generator"])
        self.step_index = step
        self.initial_cost = float(state["initial_cost"])

    def n_parameters(self) -> int:
        """Parameters of the velocity net f (the transport model)."""
        return sum(p.numel() for p in self.f.parameters())

    # ------------------------------------------------------------------ evaluation
    def _batches(self, x: Tensor) -> list[Tensor]:
        return list(torch.split(x, self.eval_batch))

    @torch.no_grad()
    def push(self, x: Tensor, reverse: bool = False) -> list[Tensor]:
        """Grid states of many points, batched: a list of K + 1 tensors ``[n, d]``."""
        parts = [self.path(b, reverse) for b in self._batches(x)]
        return [torch.cat([p[k] for p in parts]) for k in range(self.cfg.K + 1)]

    @torch.no_grad()
    def cost_of(self, x: Tensor, reverse: bool = False) -> float:
        """W₂ cost (7) of the flow from points x ``[n, d]`` (P side; ``reverse``: Q side)."""
        return float(path_cost(self.push(x, reverse), self.grid))

    def _divergence_path(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T_1^0 x, ℓ) with ℓ = ∫₀¹ ∇·f dt along the path, by RK4 on (x, ℓ) backwards;
        exact divergence by one autograd pass per dimension (the toy task is 2-D)."""
        d = self.d

        def rhs(t: float, state: Tensor) -> Tensor:
            with torch.enable_grad():
                y = state[:, :d].detach().requires_grad_(True)
                v = self.f(y, t)
                div = sum(torch.autograd.grad(v[:, i].sum(), y, retain_graph=i < d - 1)[0][:, i]
                          for i in range(d))
            return torch.cat([v.detach(), -div.detach()[:, None]], dim=1)

        state = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
        for a, b in zip(self.grid.flip(0)[:-1].tolist(), self.grid.flip(0)[1:].tolist(),
                        strict=True):
            state = rk4(rhs, state, a, b, self.cfg.S)
        return state[:, :d], state[:, d]

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log q̂(x) ``[n]`` (nats) of the flow's pushforward of N(0, I) (toy task only):
        log N(T_1^0 x) − ∫₀¹ ∇·f dt by the instantaneous change of variables."""
        if self.cfg.task != "toy":
            raise ValueError("QFlow.log_density: only the toy task (P = N(0, I)) has a "
                             "density; a pair task estimates log p − log q (see evaluate)")
        xt = self._tensor(x, "x")
        out = []
        for b in self._batches(xt):
            z, ell = self._divergence_path(b)
            out.append(standard_normal_log_prob(z) - ell)
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def log_ratios(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Estimated log p(x) − log q(x) ``[n]`` (nats) by each DRE method (``dre`` only)."""
        xt = self._tensor(x, "x")
        out = {}
        for name, net in self.nets.items():
            if name == "qflow_ratio":
                est = torch.cat([net.log_ratio(b, self.ratio_grid) for b in self._batches(xt)])
            elif name == "one_ratio":
                est = -torch.cat([net(b) for b in self._batches(xt)])
            else:
                est = torch.cat([net.log_ratio(b) for b in self._batches(xt)])
            out[name] = est.double().cpu().numpy()
        return out

    @torch.no_grad()
    def interval_log_ratios(self, x: Tensor) -> Tensor:
        """log p(x, t_k) − log p(x, t_{k−1}) = h_k r(x, s_k) ``[L, n]`` (Fig. 2b)."""
        return self.nets["qflow_ratio"].interval_logits(x, self.ratio_grid)

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Transport cost (7) both ways, inversion error, pushforward samples; toy: NLL;
        ``dre``: log-ratio errors (``ratio_points``/``ratio_truth``) and MI (``mi_true``)."""
        cfg, arrays = self.cfg, self.arrays
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        if cfg.task == "toy":
            src = torch.randn(n_samples, self.d, generator=gen, dtype=torch.float64)
            src = src.to(self.device, self.dtype)
        else:
            src = self._tensor(arrays["test_p"], "test_p")[:n_samples]
        states = self.push(src)
        x1 = states[-1]
        back = self.push(x1, reverse=True)[-1]
        tgt = self._tensor(test, "test") if len(test) >= 2 else x1
        metrics: dict[str, float] = {
            "transport_cost": float(path_cost(states, self.grid)),
            "transport_cost_reverse": self.cost_of(tgt, reverse=True),
            "interpolant_pair_cost": _independent_pair_cost(src, tgt, gen),
            "inversion_error": float((back - src).norm(dim=1).mean()),
            "inversion_error_max": float((back - src).norm(dim=1).max()),
            "K": float(cfg.K), "S": float(cfg.S), "gamma": cfg.gamma,
            "n_parameters": float(self.n_parameters()),
        }
        if math.isfinite(self.initial_cost):  # absent without an initial-flow phase
            metrics["transport_cost_initial"] = self.initial_cost
        m = min(len(src), len(tgt), 1000)
        metrics["ot_cost_assignment"] = _assignment_w2(src[:m].double().cpu().numpy(),
                                                       tgt[:m].double().cpu().numpy())
        if "w2_squared_true" in arrays:
            metrics["w2_squared_true"] = float(arrays["w2_squared_true"])
        extras: dict[str, np.ndarray] = {}
        n_traj = min(len(src), 2000 if self.d <= 3 else 64)
        extras["trajectory"] = torch.stack([s[:n_traj] for s in states]).double().cpu().numpy()
        if len(tgt) >= 2:
            k = min(len(src), len(tgt), n_traj)
            t = self.grid[:, None, None]
            extras["bridge"] = ((1 - t) * src[None, :k] + t * tgt[None, :k]).double().cpu().numpy()
        if cfg.task == "toy" and len(test) >= 2:
            nll = -self.log_density(np.asarray(test)[:2000])
            metrics["nll_nats"] = float(nll.mean())
        if cfg.dre:
            metrics.update(self._dre_metrics(extras))
        if "decoder.from_latent.0.weight" in arrays:
            from otflows.data.pairs import translation_scores

            metrics.update(translation_scores(arrays, states, extras))
        return Evaluation(metrics=metrics, samples=x1.double().cpu().numpy(), extras=extras)

    def _dre_metrics(self, extras: dict[str, np.ndarray]) -> dict[str, float]:
        """MAE/max error on ``ratio_points`` and MI estimates on ``test_p``, per method."""
        arrays, metrics = self.arrays, {}
        if "ratio_points" in arrays and "ratio_truth" in arrays:
            est = self.log_ratios(arrays["ratio_points"])
            truth = np.asarray(arrays["ratio_truth"], dtype=np.float64)
            for name, e in est.items():
                errs = ratio_errors(e, truth)
                metrics[f"{name}_mae"] = errs["mae"]
                metrics[f"{name}_max_error"] = errs["max_error"]
            extras["ratio_points"] = np.asarray(arrays["ratio_points"], dtype=np.float64)
            extras["ratio_truth"] = truth
            for name, e in est.items():
                extras[f"ratio_{name}"] = e
        if "test_log_q" in arrays:  # §4.4: log p̂(x) = log q(x) − ∫₀¹ r(x, s) ds, in bits/dim
            from otflows.data.mnist import bits_per_dim_from_logit_nll

            est = self.log_ratios(arrays["test_p"])
            log_q = np.asarray(arrays["test_log_q"], dtype=np.float64)
            px, lam = arrays["test_pixels01"], float(arrays["logit_lambda"])
            metrics["q_bpd"] = float(bits_per_dim_from_logit_nll(-log_q, px, lam).mean())
            for name, e in est.items():
                nll = -(log_q + e)
                metrics[f"{name}_nll_nats"] = float(nll.mean())
                metrics[f"{name}_bpd"] = float(bits_per_dim_from_logit_nll(nll, px, lam).mean())
        if "mi_true" in arrays:
            est = self.log_ratios(arrays["test_p"])
            mi = float(arrays["mi_true"])
            metrics["mi_true"] = mi
            for name, e in est.items():
                metrics[f"{name}_mi"] = float(e.mean())
                metrics[f"{name}_mi_abs_error"] = abs(float(e.mean()) - mi)
        if self.cfg.field_grid and self.d == 2:
            pts = torch.cat([self._tensor(self.arrays["test_p"], "test_p"), self.x_q])
            lo, hi = pts.min(0).values, pts.max(0).values
            pad = 0.1 * (hi - lo)
            gx = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), self.cfg.field_grid)
            gy = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), self.cfg.field_grid)
            xx, yy = torch.meshgrid(gx, gy, indexing="xy")
            grid_pts = torch.stack([xx.ravel(), yy.ravel()], 1).to(self.device, self.dtype)
            field = self.interval_log_ratios(grid_pts)
            extras["field"] = field.view(-1, *xx.shape).double().cpu().numpy()
            extras["field_x"], extras["field_y"] = gx.double().numpy(), gy.double().numpy()
            extras["ratio_grid"] = self.ratio_grid.double().cpu().numpy()
            with torch.no_grad():
                extras["ratio_bridge"] = torch.stack(self.bridge(1000)).double().cpu().numpy()
        return metrics


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None) -> QFlowTrainer:
    """Q-flow trainer for ``cfg`` (every QFlowConfig key): task ``toy`` (``train`` = the toy
    samples = Q) or ``pair`` (``train`` = P, ``arrays`` the rest of the prepared file)."""
    return QFlowTrainer(QFlowConfig.from_dict(cfg), train, seed, device, arrays)
