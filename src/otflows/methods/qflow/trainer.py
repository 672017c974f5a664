"""The Q-flow trainer (Xu, Cheng, Xie, arXiv:2305.11857): the initial flow (§3.3),
Algorithm 1 (``refine``), then with ``dre`` the Q-flow-ratio net and the DRE baselines
(``ratio``), one harness step at a time; evaluation as :func:`plan_evaluations` decides."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn

from otflows.distributions import standard_normal_log_prob
from otflows.methods.base import DTYPES, Evaluation
from otflows.methods.qflow.config import PHASES, QFlowConfig
from otflows.methods.qflow.evaluation import (
    assignment_w2,
    dre_metrics,
    field_extras,
    independent_pair_cost,
    plan_evaluations,
)
from otflows.methods.qflow.flow import (
    VelocityNet,
    divergence_path,
    flow_matching_loss,
    grid_path,
    path_cost,
)
from otflows.methods.qflow.ratio import Bridge, build_ratio_nets, log_ratio, ratio_loss
from otflows.methods.qflow.refine import refine_step
from otflows.methods.qflow.samples import PairSampler, as_points
from otflows.metrics.mmd import mmd2_unbiased
from otflows.metrics.ratio import Classifier

__all__ = ["QFlowTrainer", "make_trainer"]

_STATE_FORMAT = "otflows.qflow/2"  # 2: + f_initial, dre_inf


class QFlowTrainer:
    """Initial flow, Algorithm 1, then (``dre``) the ratio net and the DRE baselines."""

    eval_batch = 2000

    def __init__(self, cfg: QFlowConfig, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None) -> None:
        arrays = dict(arrays or {})
        self.cfg, self.device, self.dtype = cfg, device, DTYPES[cfg.dtype]
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
        self.sampler = PairSampler(self.x_p, self.x_q, cfg.batch_size, self.generator)
        self.plan = plan_evaluations(cfg, arrays, self.d)
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

    def _build(self, cfg: QFlowConfig) -> None:
        """Networks, optimisers and grids (under the seeded RNG of ``__init__``)."""
        device = self.device
        self.f = VelocityNet(self.d, cfg.width, cfg.n_layers).to(device, self.dtype)
        # the initial flow (§3.3), frozen when its phase ends: Q3 compares its pushforward
        self.f_initial = copy.deepcopy(self.f).requires_grad_(False)
        self.r1 = Classifier(self.d, cfg.clf_width).to(device, self.dtype)  # log(q/p₁), eq. (5)
        self.r0 = Classifier(self.d, cfg.clf_width).to(device, self.dtype)  # log(p/q₀), eq. (8)
        self.opt_f = torch.optim.Adam(self.f.parameters(),
                                      lr=cfg.lr if cfg.init_iters else cfg.refine_lr)
        self.opt_r1 = torch.optim.Adam(self.r1.parameters(), lr=cfg.clf_lr)
        self.opt_r0 = torch.optim.Adam(self.r0.parameters(), lr=cfg.clf_lr)
        self.grid = torch.linspace(0.0, 1.0, cfg.K + 1, dtype=self.dtype, device=device)
        self.ratio_bridge = Bridge.for_config(cfg, self.f, self.sampler, self.eval_batch,
                                              self.dtype, device)
        self.ratio_grid = self.ratio_bridge.grid
        self.nets: dict[str, nn.Module] = build_ratio_nets(cfg, self.d)
        self.opts: dict[str, torch.optim.Optimizer] = {}
        for k, net in self.nets.items():
            net.to(device, self.dtype)
            self.opts[k] = torch.optim.Adam(net.parameters(), lr=cfg.ratio_lr)

    # ------------------------------------------------------------------ helpers
    def _tensor(self, x: np.ndarray, what: str) -> Tensor:
        return as_points(x, what, self.dtype, self.device)

    def phase(self, step: int | None = None) -> tuple[str, int]:
        """(phase name, index within it) of training step ``step`` (default: the next)."""
        i = self.step_index if step is None else step
        for name in PHASES:
            if i < self.lengths[name]:
                return name, i
            i -= self.lengths[name]
        raise RuntimeError(f"step {step} is past the last step ({self.n_steps})")

    def path(self, x: Tensor, reverse: bool = False) -> list[Tensor]:
        """Grid states ``K+1 × [n, d]`` of the learned flow from x (P side; ``reverse``: Q)."""
        return grid_path(self.f, x, self.grid, self.cfg.S, reverse)

    def bridge(self, n: int) -> list[Tensor]:
        """L + 1 minibatches ``[n, d]`` of Q-flow's bridge on the ratio grid (see Bridge)."""
        return self.ratio_bridge.sample(n)

    # ------------------------------------------------------------------ phases
    def _init_step(self) -> dict[str, float]:
        """§3.3: regress f(x_t, t) on x₁ − x₀ along x_t = (1 − t)x₀ + t x₁."""
        x0, x1 = self.sampler.batch("p"), self.sampler.batch("q")
        t = torch.rand(x0.shape[0], 1, generator=self.generator, dtype=torch.float64)
        t = t.to(self.device, self.dtype)
        loss = flow_matching_loss(self.f, x0, x1, t)
        self.opt_f.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_f.step()
        return {"loss": loss.item(), "fm_loss": loss.item()}

    def _ratio_step(self, name: str) -> dict[str, float]:
        """One Adam step of the ratio net (§4.1) or of one baseline."""
        loss = ratio_loss(name, self.nets[name], self.ratio_bridge, self.sampler,
                          self.cfg.batch_size)
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
            logs = refine_step(self.cfg, self.f, self.opt_f, self.grid, (self.r1, self.opt_r1),
                               (self.r0, self.opt_r0), self.sampler, local)
        else:
            logs = self._ratio_step("qflow_ratio" if name == "ratio" else name)
        self.step_index += 1
        if self.step_index == self.lengths["init"]:
            for group in self.opt_f.param_groups:
                group["lr"] = self.cfg.refine_lr
            self.initial_cost = self.cost_of(self.sampler.batch("p", self.eval_batch))
            self.f_initial.load_state_dict(self.f.state_dict())
        logs["phase"] = float(PHASES.index(name))
        return logs

    # ------------------------------------------------------------------ state
    def networks(self) -> dict[str, nn.Module]:
        """Every trained network by name: f, r1, r0 and the DRE nets of :data:`DRE_METHODS`."""
        return {"f": self.f, "r1": self.r1, "r0": self.r0, **self.nets}

    def _modules(self) -> dict[str, nn.Module]:
        """What a checkpoint holds: the networks and the frozen initial flow."""
        return {**self.networks(), "f_initial": self.f_initial}

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

    def parameters(self) -> list[nn.Parameter]:
        """Every parameter the config trains: f, the classifiers r₁, r̃₀ when Algorithm 1
        runs (``tot`` > 0), and the DRE nets when ``dre``."""
        nets = [self.f, *([self.r1, self.r0] if self.cfg.tot > 0 else []), *self.nets.values()]
        return [p for net in nets for p in net.parameters()]

    # ------------------------------------------------------------------ evaluation
    def _batches(self, x: Tensor) -> list[Tensor]:
        return list(torch.split(x, self.eval_batch))

    @torch.no_grad()
    def push(self, x: Tensor, reverse: bool = False) -> list[Tensor]:
        """Grid states of many points, batched: a list of K + 1 tensors ``[n, d]``."""
        parts = [self.path(b, reverse) for b in self._batches(x)]
        return [torch.cat([p[k] for p in parts]) for k in range(self.cfg.K + 1)]

    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """T_0^1: P → Q, the learned ODE integrated t: 0 → 1; float64 ``[n, d]`` both ways."""
        return self.push(self._tensor(x, "x"))[-1].double().cpu().numpy()

    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """T_1^0: Q → P, the learned ODE integrated t: 1 → 0; float64 ``[n, d]`` both ways."""
        return self.push(self._tensor(z, "z"), reverse=True)[-1].double().cpu().numpy()

    @torch.no_grad()
    def cost_of(self, x: Tensor, reverse: bool = False) -> float:
        """W₂ cost (7) of the flow from points x ``[n, d]`` (P side; ``reverse``: Q side)."""
        return float(path_cost(self.push(x, reverse), self.grid))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log q̂(x) ``[n]`` (nats) of the flow's pushforward of N(0, I) (toy task only):
        log N(T_1^0 x) − ∫₀¹ ∇·f dt by the instantaneous change of variables."""
        if self.cfg.task != "toy":
            raise ValueError("QFlow.log_density: only the toy task (P = N(0, I)) has a "
                             "density; a pair task estimates log p − log q (see evaluate)")
        xt = self._tensor(x, "x")
        out = []
        for b in self._batches(xt):
            z, ell = divergence_path(self.f, b, self.grid, self.cfg.S)
            out.append(standard_normal_log_prob(z) - ell)
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def log_ratios(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Estimated log p(x) − log q(x) ``[n]`` (nats) by each DRE method (``dre`` only)."""
        xt = self._tensor(x, "x")
        return {name: torch.cat([log_ratio(name, net, b, self.ratio_grid)
                                 for b in self._batches(xt)]).double().cpu().numpy()
                for name, net in self.nets.items()}

    @torch.no_grad()
    def interval_log_ratios(self, x: Tensor) -> Tensor:
        """log p(x, t_k) − log p(x, t_{k−1}) = h_k r(x, s_k) ``[L, n]`` (Fig. 2b)."""
        return self.nets["qflow_ratio"].interval_logits(x, self.ratio_grid)

    def _normal_draws(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` draws ``[n, d]`` of P = N(0, I) (toy task) from ``gen``, in the run's dtype."""
        z = torch.randn(n, self.d, generator=gen, dtype=torch.float64)
        return z.to(self.device, self.dtype)

    @torch.no_grad()
    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed``."""
        if self.cfg.task != "toy":
            raise ValueError("QFlow.generate: only the toy task (P = N(0, I)) is a generative "
                             "model; a pair task transports given P samples (forward_map)")
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        src = self._normal_draws(int(n), gen)  # the draws evaluate() pushes for its samples
        out = [grid_path(self.f, b, self.grid, self.cfg.S)[-1] for b in self._batches(src)]
        return torch.cat(out).double().cpu().numpy()

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Transport cost (7) both ways, inversion error, pushforward samples, and what
        ``self.plan`` holds (toy: NLL; ``dre``: log-ratio errors, bits/dim, MI, field)."""
        cfg, arrays, plan = self.cfg, self.arrays, self.plan
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        if cfg.task == "toy":
            src = self._normal_draws(n_samples, gen)
        else:
            src = self._tensor(arrays["test_p"], "test_p")[:n_samples]
        states = self.push(src)
        x1 = states[-1]
        back = self.push(x1, reverse=True)[-1]
        tgt = self._tensor(test, "test") if len(test) >= 2 else x1
        metrics: dict[str, float] = {
            "transport_cost": float(path_cost(states, self.grid)),
            "transport_cost_reverse": self.cost_of(tgt, reverse=True),
            "interpolant_pair_cost": independent_pair_cost(src, tgt, gen),
            "inversion_error": float((back - src).norm(dim=1).mean()),
            "inversion_error_max": float((back - src).norm(dim=1).max()),
            "K": float(cfg.K), "S": float(cfg.S), "gamma": cfg.gamma,
            "n_parameters": float(self.n_parameters()),
        }
        if math.isfinite(self.initial_cost):  # absent without an initial-flow phase
            # Q3: the initial flow (§3.3) scored on the same points as the refined one: its
            # cost (7), and the MMD² to the Q test samples of both pushforwards
            parts = [grid_path(self.f_initial, b, self.grid, cfg.S) for b in self._batches(src)]
            init_states = [torch.cat([p[k] for p in parts]) for k in range(cfg.K + 1)]
            metrics["transport_cost_initial"] = float(path_cost(init_states, self.grid))
            metrics["transport_cost_initial_train"] = self.initial_cost
            if len(test) >= 2:  # kernel exp(−‖x−y‖²/d): exp(−‖x−y‖²) underflows at d ≥ 40
                y = np.asarray(test, dtype=np.float64)
                for key, x in (("mmd2_pushforward", x1), ("mmd2_initial", init_states[-1])):
                    metrics[key] = mmd2_unbiased(x.double().cpu().numpy(), y, 1.0 / self.d)
        m = min(len(src), len(tgt), 1000)
        metrics["ot_cost_assignment"] = assignment_w2(src[:m].double().cpu().numpy(),
                                                      tgt[:m].double().cpu().numpy())
        if plan.w2_true:
            metrics["w2_squared_true"] = float(arrays["w2_squared_true"])
        extras: dict[str, np.ndarray] = {}
        n_traj = min(len(src), 2000 if self.d <= 3 else 64)
        extras["trajectory"] = torch.stack([s[:n_traj] for s in states]).double().cpu().numpy()
        if len(tgt) >= 2:
            k = min(len(src), len(tgt), n_traj)
            t = self.grid[:, None, None]
            extras["bridge"] = ((1 - t) * src[None, :k] + t * tgt[None, :k]).double().cpu().numpy()
        if plan.nll and len(test) >= 2:
            nll = -self.log_density(np.asarray(test)[:2000])
            metrics["nll_nats"] = float(nll.mean())
        metrics.update(dre_metrics(plan, arrays, self.log_ratios, extras))
        if plan.field:
            pts = torch.cat([self._tensor(arrays["test_p"], "test_p"), self.x_q])
            extras.update(field_extras(pts, cfg.field_grid, self.interval_log_ratios,
                                       self.ratio_grid, lambda: self.bridge(1000)))
        if plan.translation:
            from otflows.data.pairs import translation_scores

            metrics.update(translation_scores(arrays, states, extras))
        return Evaluation(metrics=metrics, samples=x1.double().cpu().numpy(), extras=extras)


def make_trainer(cfg: dict, train: np.ndarray, seed: int, device: torch.device,
                 arrays: dict[str, np.ndarray] | None = None) -> QFlowTrainer:
    """Q-flow trainer for ``cfg`` (every QFlowConfig key): task ``toy`` (``train`` = the toy
    samples = Q) or ``pair`` (``train`` = P, ``arrays`` the rest of the prepared file)."""
    return QFlowTrainer(QFlowConfig.from_dict(cfg), train, seed, device, arrays)
