"""Density estimation and the optimal coupling with Convex Potential Flows (Huang, Chen,
Tsirigotis, Courville, ICLR 2021, arXiv:2012.05942), and the zuko baselines they are
compared with.

* the model: input-augmented ICNN (eq. 7; ``otflows.nn.icnn``), fully connected or
  convolutional, F_α = α/2‖x‖² + F (§3.1), f = ∇F_α, blocks stacked (``core.CPFlow``);
* maximum-likelihood training with the O(1)-memory surrogate of Algorithm 2 (CG with
  tolerance ``cg_tol``, batched Hessian-vector products), Adam with betas (0.9, 0.99)
  (the published tabular setting) and the learning rate halved every ``lr_halve_every``
  steps (the published toy schedule);
* evaluation: exact log det where d ≤ ``exact_max_dim``, else SLQ with ``slq_steps`` Lanczos
  steps; sampling and inversion by L-BFGS (Algorithm 1) with tolerance ``invert_tol``;
* the optimal-coupling experiment (§5.2, Fig. 4): every ``monitor_every`` steps, the KL to
  the Gaussian data and the transport cost E‖x − f(x)‖², against the closed-form W₂²;
* baselines from zuko (``baselines``): MAF and NAF for Fig. 3, linear IAF for Fig. 4,
  trained by the same trainer with ``model`` set.

NLLs are in nats per example; bits/dim in pixel space for images.
"""

from __future__ import annotations

import copy
import math
import os
import shutil

import numpy as np
import torch
from torch import Tensor, nn

from otflows.data.coupling import gaussian_entropy, gaussian_w2_squared, optimal_map
from otflows.data.mnist import bits_per_dim_from_logit_nll, inverse_logit_transform
from otflows.methods.base import DTYPES, Evaluation, checked_step, checked_tensor
from otflows.methods.cpflow.baselines import build_baseline, matched_hidden, n_parameters
from otflows.methods.cpflow.config import CPFlowConfig
from otflows.methods.cpflow.core import CPFlow
from otflows.nn.icnn import ICNN, ConvexPotential, ConvICNN

__all__ = ["BETAS", "IMAGE_SIDE", "DensityTrainer", "build_flow"]

_STATE_FORMAT = "otflows.cpflow/1"
BETAS = (0.9, 0.99)
"""Adam betas of the published tabular runs (kept constant: the published settings)."""
IMAGE_SIDE = 28
"""Side of the images the convolutional ICNN expects (MNIST, d = 28²)."""


def build_flow(cfg: CPFlowConfig, d: int, generator: torch.Generator,
               context: int = 0) -> CPFlow:
    """The CP-Flow of ``cfg`` on R^d: ``blocks`` potentials F_α with ICNNs from ``generator``."""
    dtype = DTYPES[cfg.dtype]
    if cfg.architecture == "multiscale":  # hook (issue 18): Table 2's multi-scale image flow
        from otflows.methods.cpflow.image import ImageCPFlow, image_shape

        return ImageCPFlow(image_shape(d), cfg.blocks, cfg.width, cfg.depth, cfg.alpha,
                           dtype=dtype, generator=generator)
    pots = []
    for _ in range(cfg.blocks):
        if cfg.architecture == "conv":
            if d != IMAGE_SIDE * IMAGE_SIDE or context:
                raise ValueError(f"architecture 'conv' expects 28×28 images (d = 784), got "
                                 f"d = {d}; use architecture 'fc'")
            icnn: nn.Module = ConvICNN((1, IMAGE_SIDE, IMAGE_SIDE), cfg.width, cfg.depth,
                                       dtype, generator)
        else:
            icnn = ICNN(d, cfg.width, cfg.depth, context, dtype, generator, cfg.activation)
        pots.append(ConvexPotential(icnn, alpha=cfg.alpha))
    return CPFlow(pots, actnorm=cfg.actnorm)


class DensityTrainer:
    """Maximum likelihood on samples (toys, MINIBOONE, MNIST) or on Gaussian data with the
    coupling monitor of Fig. 4; CP-Flow by Alg. 2, baselines by exact zuko log-likelihoods."""

    def __init__(self, cfg: CPFlowConfig, train: np.ndarray, seed: int,
                 device: torch.device, arrays: dict[str, np.ndarray] | None = None) -> None:
        arrays = dict(arrays or {})
        cxx = os.environ.get("CXX", "g++")  # the compiler Inductor calls on CPU
        if cfg.compile and cfg.model == "cpflow":
            if cfg.architecture != "fc":
                raise ValueError(f"cpflow.compile=True: compiles the fully connected CP-Flow's "
                                 f"training step only; got architecture={cfg.architecture!r} "
                                 f"(set compile: false)")
            if torch.device(device).type == "cpu" and shutil.which(cxx) is None:
                raise ValueError(f"cpflow.compile=True: torch.compile on CPU needs a C++ "
                                 f"compiler; {cxx!r} ($CXX, else g++) is not on PATH (install "
                                 f"g++, or set compile: false)")
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = DTYPES[cfg.dtype]
        self.train = checked_tensor(train, "train", self.dtype, self.device)
        self.n, self.d = self.train.shape
        if self.n < 1:
            raise ValueError("train split is empty")
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        init = torch.Generator(device="cpu")
        init.manual_seed(self.seed + 1)
        self.flow = build_flow(cfg, self.d, init).to(self.device)
        if cfg.architecture == "fc" or cfg.actnorm:  # data-dependent initialisation
            self.flow.initialize_from_data(self.train[:1024])
        self.baseline: nn.Module | None = None
        self.hidden = 0
        if cfg.model != "cpflow":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + 2)
                target = n_parameters(self.flow)
                self.hidden = matched_hidden(cfg.model, self.d, cfg.transforms, target)
                self.baseline = build_baseline(cfg.model, self.d, cfg.transforms,
                                               self.hidden).to(self.device, self.dtype)
        self.model: nn.Module = self.baseline if self.baseline is not None else self.flow
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=BETAS,
                                          weight_decay=cfg.weight_decay)
        # fc CPFlow only (checked above); ImageCPFlow.surrogate_nll has no compiled path
        self._surrogate_options = {"compiled": True} if cfg.compile else {}
        self.n_steps = cfg.iters
        self.step_index = 0
        self.logit_lambda = float(arrays["logit_lambda"]) if "logit_lambda" in arrays else None
        self.cov = np.asarray(arrays["cov"], dtype=np.float64) if "cov" in arrays else None
        if cfg.task == "coupling" and self.cov is None:
            raise ValueError("task 'coupling' needs the Gaussian data file's `cov` array "
                             "(otflows prepare gaussian)")
        monitor = arrays.get("test", train)
        self.monitor_set = checked_tensor(np.asarray(monitor)[:500], "monitor set", self.dtype,
                                      self.device, self.d)
        self.curve: list[list[float]] = []  # [step, KL (nats), E‖x − f(x)‖²]

    # ----------------------------------------------------------------- harness protocol
    def n_parameters(self) -> int:
        """Trainable parameters of the trained model (CP-Flow or the baseline)."""
        return n_parameters(self.model)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter of the trained model (CP-Flow or the baseline)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def state_dict(self) -> dict:
        """Weights, Adam state, batch RNG, step and the coupling curve (bit-exact resume)."""
        return {"format": _STATE_FORMAT, "model": copy.deepcopy(self.model.state_dict()),
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "generator": self.generator.get_state(), "step_index": self.step_index,
                "curve": torch.tensor(self.curve, dtype=torch.float64).reshape(-1, 3)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        step = checked_step(state, _STATE_FORMAT, "a CP-Flow trainer", self.n_steps)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_index = step
        self.curve = [list(map(float, row)) for row in state["curve"].tolist()]

    def _lr(self) -> float:
        every = self.cfg.lr_halve_every
        return self.cfg.lr * (0.5 ** (self.step_index // every) if every else 1.0)

    def train_step(self) -> dict[str, float]:
        """One Adam step on the batch mean of the NLL (CP-Flow: the Alg. 2 surrogate)."""
        if self.step_index >= self.n_steps:
            raise RuntimeError(f"train_step called after the last step ({self.n_steps})")
        if self.cfg.task == "coupling" and self.cfg.monitor_every and \
                self.step_index % self.cfg.monitor_every == 0:
            self.curve.append([float(self.step_index), *self._coupling_point()])
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        idx = torch.randint(0, self.n, (min(self.cfg.batch_size, self.n),),
                            generator=self.generator)
        x = self.train[idx.to(self.device)]
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        if self.baseline is not None:
            loss = -self.baseline().log_prob(x).mean()
        else:
            objective, prior, logs = self.flow.surrogate_nll(x, self.generator, self.cfg.cg_tol,
                                                             self.cfg.cg_max_iter,
                                                             **self._surrogate_options)
            loss = objective.mean()
            logs["prior_nll"] = prior.mean().item()
            logs["alpha"] = float(self.flow.blocks[0].alpha.detach())
        loss.backward()
        self.optimizer.step()
        self.step_index += 1
        logs.update(loss=loss.item(), lr=self._lr())
        if self.step_index == self.n_steps and self.cfg.task == "coupling" and \
                self.cfg.monitor_every:
            self.curve.append([float(self.step_index), *self._coupling_point()])
        return logs

    # ----------------------------------------------------------------- evaluation
    def _batches(self, x: Tensor, rows: int = 4096):
        size = max(1, rows // max(1, self.d if self._exact() else 1))
        for i in range(0, x.shape[0], size):
            yield x[i:i + size]

    def _exact(self) -> bool:
        return self.d <= self.cfg.exact_max_dim

    def _log_prob(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if self.baseline is not None:
            with torch.no_grad():
                return self.baseline().log_prob(x)
        method = "exact" if self._exact() else "slq"
        return self.flow.log_prob(x, method, self.cfg.slq_steps, self.cfg.slq_probes,
                                  generator)

    def _push_forward(self, x: Tensor) -> Tensor:
        """The learned data → latent map f(x) ``[n, d]``."""
        if self.baseline is not None:
            with torch.no_grad():
                return self.baseline().transform(x)
        return self.flow(x)

    def _paired_cost(self, x: Tensor, cost: Tensor) -> float:
        """E‖x − f(x)‖² on Gaussian data, estimated against the optimal map on the same
        points: W₂² + mean(‖x − f(x)‖² − ‖x − Σ^{-1/2}x‖²). Unbiased like the plain mean
        ``cost.mean()``, but the sampling noise that both costs share cancels (the plain mean
        of the optimal map itself is +1.5 % off W₂² on 1000 test points at d = 2)."""
        a = torch.as_tensor(optimal_map(self.cov), dtype=torch.float64, device=x.device)
        xd = x.double()
        best = (xd - xd @ a.T).square().sum(1)
        return gaussian_w2_squared(self.cov) + (cost.double() - best).mean().item()

    def _coupling_point(self) -> list[float]:
        """[KL(data ‖ model) nats, E‖x − f(x)‖² (paired estimate)] on the monitor set
        (Fig. 4's axes)."""
        x = self.monitor_set
        gen = torch.Generator().manual_seed(0)
        nll = -self._log_prob(x, gen).double().mean().item()
        cost = (self._push_forward(x) - x).square().sum(1)
        return [nll - gaussian_entropy(self.cov), self._paired_cost(x, cost)]

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log p(x) in nats ``[n]`` (exact log det where d ≤ exact_max_dim, else SLQ)."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        gen = torch.Generator().manual_seed(0)
        out = [self._log_prob(b, gen).detach() for b in self._batches(xt)]
        return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, float, int]:
        """(n samples float64 ``[n, d]``, max inversion error, L-BFGS iterations); CP-Flow
        inverts z ~ N(0, I) by Alg. 1."""
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(int(n), self.d, generator=gen, dtype=torch.float64)
        z = z.to(self.device, self.dtype)
        if self.baseline is not None:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                x = self.baseline().sample((int(n),))
            return x.double().cpu().numpy(), 0.0, 0
        return self._pull_back(z)

    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed``: :meth:`sample` without its diagnostics."""
        return self.sample(n, seed)[0]

    def _pull_back(self, z: Tensor) -> tuple[np.ndarray, float, int]:
        """CP-Flow's x = f⁻¹(z) by Alg. 1 in chunks of 2048 rows: (x float64 ``[n, d]``,
        max inversion error, L-BFGS iterations summed)."""
        xs, err, iters = [], 0.0, 0
        for b in z.split(2048):
            out = self.flow.inverse(b, self.cfg.invert_tol, self.cfg.invert_max_iter)
            xs.append(out.x.double().cpu())
            err, iters = max(err, float(out.error.max())), iters + out.iterations
        return torch.cat(xs).numpy(), err, iters

    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """Data ``[n, d]`` → latent ``[n, d]`` (float64): z = f(x), the composition of the
        gradient maps ∇F_α (a baseline: its zuko transform)."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        out = [self._push_forward(b).detach().double().cpu() for b in self._batches(xt)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.d))

    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """Latent ``[n, d]`` → data ``[n, d]`` (float64): x = f⁻¹(z) by L-BFGS (Alg. 1),
        last block first (a baseline: the inverse of its zuko transform)."""
        zt = checked_tensor(z, "z", self.dtype, self.device, self.d)
        if zt.shape[0] == 0:
            return np.zeros((0, self.d))
        if self.baseline is not None:
            with torch.no_grad():
                return self.baseline().transform.inv(zt).double().cpu().numpy()
        return self._pull_back(zt)[0]

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test NLL (nats; exact log det or SLQ), its SLQ estimate on up to 200 points,
        transport cost E‖x − f(x)‖², inversion error of sampling and of f⁻¹(f(x)) (L-BFGS),
        bits/dim for images, the coupling gap to W₂² for Gaussian data, and samples."""
        x = checked_tensor(test, "test", self.dtype, self.device, self.d)
        if x.shape[0] < 1:
            raise ValueError("evaluate: the test split is empty")
        gen = torch.Generator().manual_seed(int(seed))
        logp = torch.cat([self._log_prob(b, gen).detach().double() for b in self._batches(x)])
        nll = -logp
        cost = torch.cat([(self._push_forward(b) - b).square().sum(1).double()
                          for b in self._batches(x)])
        metrics: dict[str, float] = {
            "nll_nats": nll.mean().item(),
            "nll_nats_stderr": (nll.std() / math.sqrt(len(nll))).item() if len(nll) > 1
            else 0.0,
            "transport_cost": cost.mean().item(),
            "n_parameters": float(self.n_parameters()),
            "train_steps": float(self.cfg.iters), "n_test_points": float(len(nll)),
        }
        if self.baseline is None:
            sub = x[:200]
            if self._exact():
                slq = self.flow.log_prob(sub, "slq", self.cfg.slq_steps, self.cfg.slq_probes,
                                         gen).double()
                metrics["nll_nats_slq"] = -slq.mean().item()
                metrics["slq_abs_error"] = (slq + nll[:200]).abs().mean().item()
            rt = sub[:100]
            back = self.flow.inverse(self.flow(rt), self.cfg.invert_tol,
                                     self.cfg.invert_max_iter)
            metrics["roundtrip_error"] = (back.x - rt).norm(dim=1).double().max().item()
            # the learned α of every block (the run's `alpha` key is the configured start)
            alphas = [float(b.alpha.detach()) for b in self.flow.blocks]
            metrics["alpha_learned"] = alphas[0]
            metrics["alpha_learned_min"] = min(alphas)
        else:
            metrics["hidden_features"] = float(self.hidden)
        samples, err, iters = self.sample(n_samples, seed)
        if self.baseline is None:
            metrics["inversion_error"] = err
            metrics["inversion_iterations"] = float(iters)
        extras: dict[str, np.ndarray] = {}
        if self.cfg.task == "coupling" and self.cov is not None:
            w2 = gaussian_w2_squared(self.cov)
            kl = metrics["nll_nats"] - gaussian_entropy(self.cov)
            metrics["transport_cost_sample"] = metrics["transport_cost"]  # plain test mean
            metrics["transport_cost"] = self._paired_cost(x, cost)
            metrics.update(w2_squared=w2, kl_nats=kl, transport_gap=metrics["transport_cost"] - w2)
            extras.update(coupling_curve=np.asarray(self.curve, dtype=np.float64).reshape(-1, 3),
                          w2_squared=np.array(w2))
        if self.logit_lambda is not None:
            lam = self.logit_lambda
            pixels = inverse_logit_transform(np.asarray(test, dtype=np.float64), lam)
            metrics["bpd"] = float(bits_per_dim_from_logit_nll(nll.cpu().numpy(), pixels,
                                                               lam).mean())
            extras["sample_pixels"] = np.clip(inverse_logit_transform(samples[:16], lam), 0, 1)
        return Evaluation(metrics=metrics, samples=samples, extras=extras)
