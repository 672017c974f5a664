"""The contract every method module fulfils, so that the harness (CLI, training loop,
checkpoints, tracking) knows methods only through it.

A method module exposes ``make_trainer(cfg, train, seed, device) -> Trainer``. The harness
owns the loop: it calls ``train_step`` ``n_steps`` times, logs what it returns, checkpoints
``state_dict()`` atomically and resumes with ``load_state_dict``. Methods never read files,
parse params or log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch


@dataclass
class Evaluation:
    """What a trained method reports on held-out data.

    metrics: scalar metrics by name (``nll_nats``, ``transport_cost``, ...).
    samples: generated samples, float64 ``[n, d]``.
    extras: named arrays for figures (e.g. a density on a grid).
    """

    metrics: dict[str, float]
    samples: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class Trainer(Protocol):
    """One training run of one method; resumable from ``state_dict``."""

    n_steps: int
    step_index: int

    def train_step(self) -> dict[str, float]:
        """Run one optimiser step; return scalar logs including ``loss``."""
        ...

    def state_dict(self) -> dict:
        """Everything needed to resume bit-exactly (weights, optimiser, RNG, step)."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore a state produced by ``state_dict``."""
        ...

    def n_parameters(self) -> int:
        """Number of trainable parameters of the final model."""
        ...

    def evaluate(self, test: np.ndarray, n_samples: int, seed: int) -> Evaluation:
        """Score held-out ``test`` ``[n, d]`` and draw ``n_samples`` samples."""
        ...

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """Log-density of the learned model at ``x`` ``[n, d]``, in nats, shape ``[n]``."""
        ...


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda`` to a device; ``auto`` takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False; "
                           "set device: auto or cpu in params.yaml")
    return torch.device(name)


def checked_tensor(a: np.ndarray, name: str, dtype: torch.dtype, device: torch.device,
                   d: int | None = None) -> torch.Tensor:
    """``a`` ``[n, d]`` as a tensor, after checking its shape and that it is finite."""
    arr = np.asarray(a)
    if arr.ndim != 2 or (d is not None and arr.shape[1] != d):
        raise ValueError(f"{name} has shape {arr.shape}; expected [n, {d or 'd'}]")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds non-finite values")
    return torch.as_tensor(arr, dtype=dtype, device=device)
