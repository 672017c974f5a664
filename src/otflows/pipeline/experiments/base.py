"""What one run is: the ``Experiment`` record and the helpers the per-paper grids share.

Torch-free on purpose: it is imported when the Snakefile is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from otflows.data.miniboone import raw_path

__all__ = ["DENSITY_GRID", "MINIBOONE_DATA", "Experiment", "fmt", "miniboone_present",
           "mnist_name", "select_runs", "toy_data"]

DENSITY_GRID = 120  # grid points per axis for 2-D density figures
MINIBOONE_DATA = "data/processed/miniboone.npz"


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
    data_path: str = ""  # prepared .npz with `train` and `test`; empty: the toy file
    # "<method>/<name>" of a finished run this one continues from (JKO-Flow from its
    # single-shot run, whose training is exactly JKO's subproblem 1); empty: from scratch
    init_from: str = ""
    # further sweeps this run belongs to (the alpha run at the width sweep's alpha and the
    # default width is also that sweep's point: trained once, shown in both)
    also_in: tuple[str, ...] = ()
    # False: the generic `evaluate` rule skips it (the VAE is scored by `prepare mnist-latents`)
    evaluate: bool = True
    seed: int | None = None  # this run's seed for training and evaluation; None: params' seed
    # a cross-method benchmark run (experiments/benchmark.py): evaluated on the first
    # eval_samples test points, with the exact W2^2, its noise floor and the sampling time
    bench_eval: bool = False

    def seed_or(self, default: int) -> int:
        """The run's own seed, else ``default`` (params' global ``seed``)."""
        return default if self.seed is None else self.seed

    def in_sweep(self, sweep: str) -> bool:
        """Whether the run is a point of ``sweep``."""
        return sweep == self.sweep or sweep in self.also_in

    @property
    def data(self) -> str:
        """Prepared data file the run trains and is evaluated on."""
        return self.data_path or f"data/processed/toy/{self.dataset}.npz"

    @property
    def metrics_path(self) -> str:
        """Its metrics JSON (``otflows evaluate``; the VAE's: ``prepare mnist-latents``)."""
        return f"results/metrics/{self.method}/{self.name}.json"

    @property
    def samples_path(self) -> str:
        """Its samples ``.npz`` (generated samples, test split, figure arrays)."""
        return f"results/samples/{self.method}/{self.name}.npz"

    @property
    def model_path(self) -> str:
        """Its final checkpoint (``otflows train``)."""
        return f"results/checkpoints/{self.method}/{self.name}/model.pt"

    @property
    def record_path(self) -> str:
        """Its run record for MLflow (``otflows train``)."""
        return f"results/records/{self.method}/{self.name}.json"

    @property
    def history_path(self) -> str:
        """Its training history CSV."""
        return f"results/plots/{self.method}/{self.name}.csv"

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    def cfg_json(self) -> str:
        """The run config as canonical JSON (what the train rule passes and compares)."""
        return json.dumps(self.cfg, sort_keys=True, separators=(",", ":"))


def fmt(value: float) -> str:
    """A sweep value as it appears in experiment names (``5``, ``0.5``, ``1e-05``)."""
    return f"{value:g}"


def toy_data(dataset: str) -> str:
    """The prepared 2-D toy file of ``dataset`` (``otflows prepare toy``)."""
    return f"data/processed/toy/{dataset}.npz"


def mnist_name(config: dict) -> str:
    """The prepared MNIST file's stem: ``mnist5k`` or ``mnist`` (full; never mistaken)."""
    return "mnist5k" if config["data"]["mnist"]["source"] == "mnist5k" else "mnist"


def miniboone_present(config: dict, root: str | Path) -> bool:
    """Whether the raw MINIBOONE file that params name lies under ``root``."""
    source = config.get("data", {}).get("miniboone", {}).get("source", "maf")
    return (Path(root) / raw_path(source)).is_file()


def select_runs(runs: Iterable[Experiment], methods: Iterable[str], sweep: str | None = None,
                dataset: str | None = None, benchmark: bool | None = None) -> list[Experiment]:
    """The runs of ``methods``, optionally only those of ``sweep``, ``dataset``, ``benchmark``,
    in their given order."""
    methods = set(methods)
    return [e for e in runs
            if e.method in methods and (sweep is None or e.in_sweep(sweep))
            and (dataset is None or e.dataset == dataset)
            and (benchmark is None or e.benchmark == benchmark)]
