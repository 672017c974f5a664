"""What a claim is, what it reads, and how its verdict is written.

A claim of a paper is checked by a function of the run's :class:`Evidence` (its metrics
files and a few samples files) that returns a :class:`Verdict`: what was measured, against
which threshold, and whether it reproduced. A claim whose inputs are absent is ``not run``
with the reason and the command that would run it; it is never dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["NOT_REPRODUCED", "NOT_RUN", "REPRODUCED", "SCOPES", "Claim", "Evidence",
           "MissingInput", "Verdict", "count_verdict", "fmt", "verdict"]

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
SCOPES = ("default", "paper", "data")
# Why a claim of each scope lacks its inputs, and the command that would produce them.
SCOPE_HINTS = {
    "default": "the default profile did not produce it: run `snakemake --cores all`",
    "paper": "needs the paper profile on GPUs: `snakemake --cores all --configfile "
             "config/paper.yaml` (or config/gpu-slice.yaml for a slice)",
    "data": "data/raw/miniboone/data.npy missing: see README \"Real data: MINIBOONE, MNIST, "
            "VAE latents\" (`snakemake download_miniboone`)",
}


class MissingInput(Exception):
    """The evidence a claim needs is absent (a run was not made, or a metric not written)."""


@dataclass(frozen=True)
class Verdict:
    """``measured`` and ``threshold`` carry their units ("27/28 cells", "3.47 nats")."""

    measured: str
    threshold: str
    status: str
    note: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim of one paper (ids fixed by the ledger's issue; thresholds never loosened)."""

    paper: str  # "JKO-Flow", "CP-Flow", "EKP", "Q-flow", "Monge-Ampère", "all methods"
    id: str  # "J1", ...
    claim: str  # what the paper says, one sentence
    source: str  # section / table / figure of the paper
    scope: str  # "default" | "paper" | "data"
    check: Callable[[Evidence], Verdict] = field(compare=False, repr=False)

    def judge(self, evidence: Evidence) -> Verdict:
        """The verdict on ``evidence``; ``not run`` with the reason when inputs are absent."""
        try:
            return self.check(evidence)
        except MissingInput as missing:
            return Verdict("—", "—", NOT_RUN, f"not run: {missing}; {SCOPE_HINTS[self.scope]}")


class Evidence:
    """The run's own outputs as the claims read them: metrics by (method, experiment), and
    samples files by (method, experiment), loaded on demand."""

    def __init__(self, metrics: dict[tuple[str, str], dict],
                 samples: dict[tuple[str, str], Path] | None = None) -> None:
        self._metrics = metrics
        self._samples = samples or {}

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> Evidence:
        """Read ``results/metrics/<method>/<exp>.json`` and ``results/samples/<method>/<exp>.npz``
        files (other inputs, such as summaries, are ignored)."""
        metrics, samples = {}, {}
        for path in map(Path, paths):
            key = (path.parent.name, path.stem)
            if path.suffix == ".json" and path.parent.parent.name == "metrics":
                metrics[key] = json.loads(path.read_text())
            elif path.suffix == ".npz" and path.parent.parent.name == "samples":
                samples[key] = path
        return cls(metrics, samples)

    def has(self, method: str, experiment: str) -> bool:
        """Whether the run's metrics are present."""
        return (method, experiment) in self._metrics

    def metrics(self, method: str, experiment: str) -> dict:
        """The metrics of one run; MissingInput naming it when absent."""
        try:
            return self._metrics[(method, experiment)]
        except KeyError:
            raise MissingInput(f"no metrics for {method}/{experiment}") from None

    def value(self, method: str, experiment: str, key: str) -> float:
        """One metric of one run as a float; MissingInput when the run or the key is absent."""
        m = self.metrics(method, experiment)
        if key not in m or m[key] is None:
            raise MissingInput(f"{method}/{experiment} has no metric {key!r}")
        return float(m[key])

    def experiments(self, method: str, prefix: str = "") -> list[str]:
        """Names of the runs of ``method`` whose name starts with ``prefix``, sorted."""
        return sorted(e for m, e in self._metrics if m == method and e.startswith(prefix))

    def samples(self, method: str, experiment: str) -> dict[str, np.ndarray]:
        """The arrays of one run's samples file; MissingInput when it was not given."""
        if (method, experiment) not in self._samples:
            raise MissingInput(f"no samples file for {method}/{experiment}")
        with np.load(self._samples[(method, experiment)], allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


def fmt(x: float, unit: str = "") -> str:
    """A number for the ledger: 4 significant digits, then its unit."""
    if not math.isfinite(x):
        text = str(x)
    elif x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        text = f"{x:.3e}"
    else:
        text = f"{x:.4g}"
    return f"{text} {unit}".strip()


def verdict(ok: bool, measured: str, threshold: str, note: str = "") -> Verdict:
    """``reproduced`` when ``ok``, else ``not reproduced``."""
    return Verdict(measured, threshold, REPRODUCED if ok else NOT_REPRODUCED, note)


def count_verdict(hits: int, total: int, need: int, what: str, note: str = "") -> Verdict:
    """A count claim: ``hits`` of ``total`` ``what`` (e.g. "cells") must reach ``need``."""
    if total == 0:
        raise MissingInput(f"no {what} to count")
    return verdict(hits >= need, f"{hits}/{total} {what}", f"≥ {need}/{total} {what}", note)
