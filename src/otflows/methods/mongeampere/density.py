"""Density estimation by maximum likelihood with the Monge-Ampère flow (MNIST, 2-D toys).

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188, §4.1: train
ϕ on samples by the NLL of eq. (6) (integrate from data at t = T back to t = 0 and score
N(0, I) there); report the test NLL in nats, bits/dim for images (logit space, Table 1),
the per-epoch curves of Fig. 3a and the flow strip of Fig. 3b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from otflows.data.mnist import bits_per_dim_from_logit_nll, inverse_logit_transform
from otflows.methods.base import DTYPES, Evaluation, checked_tensor, config_from_dict, spec
from otflows.methods.mongeampere.diagnostics import (
    map_condition_number,
    path_eigenvalue_range,
    roundtrip_errors,
)
from otflows.methods.mongeampere.flow import integrate, negative_log_likelihood, sample_flow
from otflows.methods.mongeampere.training import PotentialTrainer

__all__ = ["DensityConfig", "DensityTrainer"]


@dataclass(frozen=True)
class DensityConfig:
    """Maximum-likelihood training on samples (§4.1: MNIST; also the 2-D toys)."""

    task: str = spec(choices=("density",))  # "density"
    width: int = spec(min=1)  # h, hidden units of ϕ
    epsilon: float = spec(gt=0)  # RK4 step ε
    steps: int = spec(min=1)  # RK4 steps; T = ε·steps
    lr: float = spec(gt=0)  # Adam learning rate
    weight_decay: float = spec()  # Adam weight decay (1e-3 in the published MNIST runs)
    batch_size: int = spec(min=1)  # B
    epochs: int = spec(min=1)  # passes over the training set
    monitor: int = spec()  # test examples scored after every epoch (Fig. 3a); 0 = none
    dtype: str = spec(choices=tuple(DTYPES))  # "float32" | "float64"

    @classmethod
    def from_dict(cls, d: dict) -> DensityConfig:
        """Validate and build; raise ValueError naming the offending key."""
        return config_from_dict(cls, d, "mongeampere (density task)")


class DensityTrainer(PotentialTrainer):
    """Maximum likelihood (eq. 6) on ``train`` ``[n, d]``; one shuffled pass per epoch.

    ``monitor`` > 0 scores that many examples of ``test`` after every epoch, for the train
    and test NLL curves of Fig. 3a (the train value is the epoch's running mean). With
    ``logit_lambda`` the data are images in logit space y = logit(λ + (1 − 2λ)x): the NLL
    stays in logit space (the paper's convention) and bits/dim in pixel space is added;
    ``test_labels`` (classes of ``test``) pick one test image per class for Fig. 3b.
    """

    cfg: DensityConfig

    def __init__(self, cfg: DensityConfig, train: np.ndarray, seed: int,
                 device: torch.device, test: np.ndarray | None = None,
                 logit_lambda: float | None = None,
                 test_labels: np.ndarray | None = None) -> None:
        arr = np.asarray(train)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"train has shape {arr.shape}; expected [n, d] with n >= 1")
        super().__init__(cfg, arr.shape[1], seed, device)
        self.train = checked_tensor(arr, "train", self.dtype, self.device)
        self.d = self.train.shape[1]
        self.logit_lambda = logit_lambda  # set: images in logit space (MNIST, §4.1)
        self.test_labels = None if test_labels is None else np.asarray(test_labels)
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

    def generate(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples of the learned model (float64 ``[n, d]``), deterministic in
        ``seed`` (as :meth:`sample`)."""
        return self.sample(n, seed)

    @torch.no_grad()
    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """Data x ``[n, d]`` → latent z = x(0) ``[n, d]``: the flow run back from t = T, as
        in the NLL (eq. 6); float64."""
        xt = checked_tensor(x, "x", self.dtype, self.device, self.d)
        zs = [integrate(self.potential, b, self.cfg.epsilon, self.cfg.steps, reverse=True)
              .x.double().cpu() for b in self._batches(xt)]
        return torch.cat(zs).numpy() if zs else np.zeros((0, self.d))

    @torch.no_grad()
    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """Latent z ``[n, d]`` → data x(T) ``[n, d]``: the flow run forward from t = 0, as in
        :meth:`sample`; float64."""
        zt = checked_tensor(z, "z", self.dtype, self.device, self.d)
        xs = [sample_flow(self.potential, b, self.cfg.epsilon, self.cfg.steps)[0]
              .double().cpu() for b in self._batches(zt)]
        return torch.cat(xs).numpy() if xs else np.zeros((0, self.d))

    @torch.no_grad()
    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Test NLL (nats, mean and standard error; again at ε/2 as a discretisation check),
        transport cost ∫‖∇ϕ‖²dt, the stability and inversion diagnostics of
        :meth:`stability_metrics`, and ``n_samples`` samples."""
        x = checked_tensor(test, "test", self.dtype, self.device, self.d)
        if x.shape[0] < 1:
            raise ValueError("evaluate: the test split is empty")
        nll, fine, kin = [], [], []
        for b in self._batches(x):
            value, out = negative_log_likelihood(self.potential, b, self.cfg.epsilon,
                                                 self.cfg.steps, kinetic=True)
            nll.append(value.double())
            kin.append(out.kinetic.double())
            # Discretisation check: the same NLL with half the step and twice the steps.
            fine.append(negative_log_likelihood(self.potential, b, 0.5 * self.cfg.epsilon,
                                                2 * self.cfg.steps)[0].double())
        nll_t = torch.cat(nll)
        nll_fine = torch.cat(fine).mean().item()
        metrics = {
            "nll_nats": nll_t.mean().item(),
            "nll_nats_stderr": (nll_t.std() / math.sqrt(len(nll_t))).item()
            if len(nll_t) > 1 else 0.0,
            "transport_cost": torch.cat(kin).mean().item(),
            "n_parameters": float(self.n_parameters()),
            "flow_time": self.cfg.epsilon * self.cfg.steps,
            "nll_nats_half_step": nll_fine,
            **self.stability_metrics(x, seed),
        }
        extras: dict[str, np.ndarray] = {}
        if self.curve:
            extras["epoch_curve"] = np.asarray(self.curve, dtype=np.float64)
        samples = self.sample(n_samples, seed)
        if self.logit_lambda is not None:
            metrics.update(self._image_metrics(np.asarray(test), nll_t.cpu().numpy()))
            extras.update(self._image_extras(np.asarray(test), samples))
        return Evaluation(metrics=metrics, samples=samples, extras=extras)

    @torch.no_grad()
    def stability_metrics(self, x: Tensor, seed: int, n_paths: int = 100,
                          n_condition: int = 2) -> dict[str, float]:
        """RK4 stability and invertibility at the trained step (§3), on test data x.

        ``h_lambda_max``: ε·λmax of the Hessian of ϕ over the RK4 step points of the paths
        of ``n_paths`` test points (fewer when the paths have more than 64 steps: at most
        6,400 states, each one exact eigenvalue problem); data → latent contracts along
        λ > 0: stable while below 2.785. ``h_lambda_min_abs``: ε·|λmin| (the same for
        latent → data). Round trips at n and 2n steps (same T):
        ``roundtrip_base_data_base_*`` from ``n_paths`` seeded N(0, I) samples,
        ``roundtrip_data_base_data_*`` from the test points (``inversion_error`` is the
        latter's mean L2 at n steps); max |Δ| and mean L2 norm each. The condition number
        of the data → latent map at the first ``n_condition`` points.
        """
        eps, n = self.cfg.epsilon, self.cfg.steps
        pts = x[:n_paths]
        lo, hi = path_eigenvalue_range(self.potential, pts[: max(8, 6400 // (n + 1))], eps, n)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
        z = torch.randn(pts.shape[0], self.d, generator=gen, dtype=torch.float64)
        z = z.to(self.device, self.dtype)
        out = {"rk4_steps": float(n), "hessian_lambda_max": hi, "hessian_lambda_min": lo,
               "h_lambda_max": eps * hi, "h_lambda_min_abs": eps * abs(lo)}
        for k in (n, 2 * n):
            for start, pts_k, name in (("base", z, "base_data_base"),
                                       ("data", pts, "data_base_data")):
                err = roundtrip_errors(self.potential, pts_k, eps * n / k, k, start)
                out[f"roundtrip_{name}_max_abs_rk4_{k}"] = err["max_abs"]
                out[f"roundtrip_{name}_mean_l2_rk4_{k}"] = err["mean_l2"]
        out["inversion_error"] = out[f"roundtrip_data_base_data_mean_l2_rk4_{n}"]
        with torch.enable_grad():
            cond = map_condition_number(self.potential, x[:n_condition], eps, n)
        out[f"condition_number_data_base_max_rk4_{n}"] = cond.max().item()
        out[f"condition_number_data_base_min_rk4_{n}"] = cond.min().item()
        return out

    def figure_images(self, n_test: int, n: int) -> np.ndarray:
        """Indices (into a test split of ``n_test``) of the test images of Fig. 3b: the first
        test image of each class in ascending class order when labels are known (up to
        ``n``), else a seeded random choice of ``n``."""
        if self.test_labels is not None:
            classes = np.unique(self.test_labels)[:n]
            return np.array([int(np.flatnonzero(self.test_labels == c)[0]) for c in classes])
        rng = np.random.default_rng(0)
        return np.sort(rng.choice(n_test, size=min(n, n_test), replace=False))

    def _image_metrics(self, test: np.ndarray, nll: np.ndarray) -> dict[str, float]:
        """Bits/dim in pixel space from the logit-space NLL (exact logit Jacobian)."""
        lam = self.logit_lambda
        pixels = inverse_logit_transform(test.astype(np.float64), lam)
        bpd = bits_per_dim_from_logit_nll(nll, pixels, lam)
        return {"bpd": float(bpd.mean()), "logit_lambda": float(lam)}

    def _image_extras(self, test: np.ndarray, samples: np.ndarray, n_images: int = 10,
                      n_frames: int = 9) -> dict[str, np.ndarray]:
        """Fig. 3b: one test image per class (:meth:`figure_images`) flowing to N(0, I)
        ``[frames, images, d]`` (pixel scale for the data end, raw latent values elsewhere),
        their indices and labels (−1: unknown), and generated images in (0, 1)."""
        lam = self.logit_lambda
        idx = self.figure_images(test.shape[0], n_images)
        labels = (self.test_labels[idx] if self.test_labels is not None
                  else np.full(len(idx), -1))
        path = self.flow_path(test[idx], n_frames)
        return {"flow_path": path, "flow_index": idx, "flow_labels": labels,
                "flow_pixels": np.clip(inverse_logit_transform(path, lam), 0.0, 1.0),
                "sample_pixels": np.clip(inverse_logit_transform(samples[:16], lam), 0, 1)}
