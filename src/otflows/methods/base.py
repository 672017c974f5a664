"""The contract every method module fulfils, so that the harness (CLI, training loop,
checkpoints, tracking) knows methods only through it.

A method module exposes ``make_trainer(cfg, train, seed, device) -> Trainer``. The harness
owns the loop: it calls ``train_step`` ``n_steps`` times, logs what it returns, checkpoints
``state_dict()`` atomically and resumes with ``load_state_dict``. Methods never read files,
parse params or log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
"""Floating-point precisions a run config may name (its ``dtype`` key)."""

ConfigT = TypeVar("ConfigT")


def spec(*, min: float | None = None, gt: float | None = None,
         choices: tuple[str, ...] | None = None) -> Any:
    """A required config field with its check: ``min`` (inclusive) or ``gt`` (exclusive) lower
    bound for numbers, ``choices`` for strings. Numbers without a bound must be finite, ≥ 0."""
    return field(metadata={"min": min, "gt": gt, "choices": choices})


def config_from_dict(cls: type[ConfigT], d: dict, section: str) -> ConfigT:
    """Build the frozen config dataclass ``cls`` from the run config ``d`` of ``section``.

    Every field is required (defaults live once, in the params schema); ints, floats, bools
    and strings are checked by the field's type and :func:`spec`; a ValueError names the
    section, the key, its value and what is allowed.
    """
    if not isinstance(d, dict):
        raise ValueError(f"{section}: expected a dict of settings, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown, missing = sorted(set(d) - set(names)), [n for n in names if n not in d]
    if unknown or missing:
        raise ValueError(f"{section}: unknown keys {unknown}, missing keys {missing}; expected "
                         f"exactly the keys {names}")
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        values[f.name] = _checked_value(section, f.name, d[f.name],
                                         getattr(f.type, "__name__", f.type), f.metadata)
    return cls(**values)


def _checked_value(section: str, key: str, v: Any, kind: str, meta: Any) -> Any:
    where = f"{section}.{key}={v!r}"
    choices, lo, gt = meta.get("choices"), meta.get("min"), meta.get("gt")
    if kind == "str":
        if choices is not None and v not in choices:
            raise ValueError(f"{where}; expected one of {list(choices)}")
        if not isinstance(v, str):
            raise ValueError(f"{where}; expected a string")
        return v
    if kind == "bool":
        if not isinstance(v, bool | np.bool_):
            raise ValueError(f"{where}; expected true or false")
        return bool(v)
    if isinstance(v, bool) or not isinstance(v, int | float | np.number):
        raise ValueError(f"{where}; expected a number")
    if kind == "int":
        if not float(v).is_integer():
            raise ValueError(f"{where}; expected an integer")
        v = int(v)
    else:
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"{where}; expected a finite number")
    if gt is not None and not v > gt:
        raise ValueError(f"{where}; expected a number > {gt:g}")
    bound = 0 if lo is None and gt is None else lo
    if bound is not None and v < bound:
        raise ValueError(f"{where}; expected a number >= {bound:g}")
    return v


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

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every trainable parameter of the model (the contract test checks each gets a
        gradient)."""
        ...


class InvertibleTrainer(Trainer, Protocol):
    """A Trainer whose learned map is invertible: the contract test checks
    ``inverse_map(forward_map(x)) ≈ x``."""

    def forward_map(self, x: np.ndarray) -> np.ndarray:
        """The learned map ``[n, d]`` → ``[n, d]``: data → base for a density model (OT-Flow,
        CP-Flow, Monge-Ampère), P → Q for a transport between two sample sets (Q-flow)."""
        ...

    def inverse_map(self, z: np.ndarray) -> np.ndarray:
        """The inverse of ``forward_map`` (base → data; Q → P)."""
        ...


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda`` to a device; ``auto`` takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False; "
                           "set device: auto or cpu in params.yaml")
    return torch.device(name)


def checked_step(state: Any, fmt: str, what: str, n_steps: int, **fields: Any) -> int:
    """The ``step_index`` of trainer ``state`` after checking it is a dict of format ``fmt``
    (and ``fields``, e.g. the task) whose step lies in ``[0, n_steps]``; a ValueError that
    names ``what`` the state should have been otherwise."""
    expected = {"format": fmt, **fields}
    got = {k: state.get(k) for k in expected} if isinstance(state, dict) else type(state).__name__
    if got != expected:
        raise ValueError(f"not {what} state (got {got!r}, expected {expected!r}); retrain, or "
                         f"delete the checkpoint")
    step = int(state["step_index"])
    if not 0 <= step <= n_steps:
        raise ValueError(f"state step_index={step} outside [0, {n_steps}]: the checkpoint "
                         f"belongs to a different config")
    return step


def checked_tensor(a: np.ndarray, name: str, dtype: torch.dtype, device: torch.device,
                   d: int | None = None) -> torch.Tensor:
    """``a`` ``[n, d]`` as a tensor, after checking its shape and that it is finite."""
    arr = np.asarray(a)
    if arr.ndim != 2 or (d is not None and arr.shape[1] != d):
        raise ValueError(f"{name} has shape {arr.shape}; expected [n, {d or 'd'}]")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds non-finite values")
    return torch.as_tensor(arr, dtype=dtype, device=device)
