"""Registry of methods: the CLI and the Snakefile know methods only by these names."""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> module path; modules are imported lazily so `otflows --help` stays fast.
METHODS: dict[str, str] = {
    "otflow": "otflows.methods.otflow",
    "jko": "otflows.methods.jko",
    "ekp": "otflows.methods.ekp",
    "mongeampere": "otflows.methods.mongeampere",
    "cpflow": "otflows.methods.cpflow",
    "qflow": "otflows.methods.qflow",
    "vae": "otflows.methods.vae",  # the MNIST VAE: prepares latents for Q-flow and CP-Flow
}


def get_method(name: str) -> ModuleType:
    """Return the module implementing method ``name`` (it exposes ``make_trainer``)."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    return importlib.import_module(METHODS[name])
