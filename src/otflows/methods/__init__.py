"""Registry of methods: the CLI and the Snakefile know methods only by these names.

A method is its module or package under ``methods/`` exposing ``make_trainer(cfg, train,
seed, device[, arrays]) -> Trainer`` (see ``methods/base.py``); registering it here (or with
:func:`register`) is all the harness needs.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from otflows.methods.base import Trainer

# name -> module path; modules are imported lazily so `otflows --help` stays fast.
METHODS: dict[str, str] = {
    "otflow": "otflows.methods.otflow",
    "jko": "otflows.methods.jko",
    "ekp": "otflows.methods.ekp",
    "mongeampere": "otflows.methods.mongeampere",
    "cpflow": "otflows.methods.cpflow",
    "qflow": "otflows.methods.qflow",
    "vae": "otflows.methods.vae",  # the MNIST VAE: prepares latents for Q-flow and CP-Flow
    "nsf": "otflows.methods.nsf",  # benchmark baseline: zuko neural spline flow
    "otcfm": "otflows.methods.otcfm",  # benchmark baseline: flow matching, minibatch-OT pairs
}


def register(name: str, module: str) -> None:
    """Register method ``name`` implemented by the importable ``module`` (a dotted path whose
    module exposes ``make_trainer``); the CLI then knows it like the built-in ones."""
    if not name.isidentifier():
        raise ValueError(f"method name {name!r}: expected a Python identifier")
    if METHODS.get(name, module) != module:
        raise ValueError(f"method {name!r} is already registered as {METHODS[name]}")
    METHODS[name] = module


def get_method(name: str) -> ModuleType:
    """Return the module implementing method ``name`` (it exposes ``make_trainer``)."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    return importlib.import_module(METHODS[name])


def build_trainer(name: str, cfg: dict, data: dict[str, np.ndarray], seed: int,
                  device: torch.device) -> Trainer:
    """``make_trainer`` of method ``name`` on ``data["train"]``. A method whose
    ``make_trainer`` takes ``arrays`` also gets the data file's other arrays (a test split
    to monitor, or a problem description such as the Ising couplings)."""
    make = get_method(name).make_trainer
    if "arrays" in inspect.signature(make).parameters:
        rest = {k: v for k, v in data.items() if k != "train"}
        return make(cfg, data["train"], seed, device, arrays=rest)
    return make(cfg, data["train"], seed, device)
