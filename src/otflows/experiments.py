"""Experiment grids: which runs (method, experiment, dataset, run config) params asks for.

The Snakefile enumerates targets from here and hands each training job exactly its own
resolved run config, so an edit reruns precisely the runs whose config changed.
Torch-free on purpose: it is imported when the Snakefile is parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["Experiment", "all_experiments", "experiment_index"]

# Keys of the `otflow` section that configure evaluation, not training.
_EVAL_KEYS = ("eval_samples",)
DENSITY_GRID = 120  # grid points per axis for 2-D density figures


@dataclass(frozen=True)
class Experiment:
    """One training run and its evaluation."""

    method: str
    name: str
    dataset: str
    sweep: str
    cfg: dict = field(compare=False, hash=False)
    eval_samples: int = 5000
    density_grid: int = 0  # >0: evaluate log-density on a grid (2-D figures)
    benchmark: bool = False  # shown in the cross-method toy benchmark and Fig. 2

    @property
    def data(self) -> str:
        """Prepared data file the run trains and is evaluated on."""
        return f"data/processed/toy/{self.dataset}.npz"

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    def cfg_json(self) -> str:
        """The run config as canonical JSON (what the train rule passes and compares)."""
        return json.dumps(self.cfg, sort_keys=True, separators=(",", ":"))


def _fmt(value: float) -> str:
    return f"{value:g}"


def _otflow_runs(config: dict) -> list[Experiment]:
    solver = {k: v for k, v in config["otflow"].items() if k not in _EVAL_KEYS}
    jko = config["jko"]
    eval_samples = config["otflow"]["eval_samples"]
    runs: list[Experiment] = []

    def add(sweep: str, dataset: str, name: str, alpha: float, width: int, grid: bool) -> None:
        for method, k in (("otflow", 1), ("jko", jko["K"])):
            cfg = {**solver, "alpha": float(alpha), "width": int(width), "K": int(k)}
            runs.append(Experiment(method, name, dataset, sweep, cfg, eval_samples,
                                   DENSITY_GRID if grid else 0, grid))

    for ds in jko["datasets"]:
        for alpha in jko["alphas"]:
            grid = float(alpha) == float(jko["benchmark_alpha"])
            add("jko_alpha", ds, f"alpha-{ds}-a{_fmt(alpha)}", alpha, solver["width"], grid)
        width_alpha = jko["width_alpha"].get(ds, jko["default_width_alpha"])
        for width in jko["widths"]:
            add("jko_width", ds, f"width-{ds}-m{width}", width_alpha, width, False)
    return runs


def all_experiments(config: dict) -> list[Experiment]:
    """Every run params asks for, in a stable order."""
    return _otflow_runs(config)


def experiment_index(config: dict) -> dict[tuple[str, str], Experiment]:
    """``{(method, experiment name): Experiment}``."""
    return {(e.method, e.name): e for e in all_experiments(config)}
