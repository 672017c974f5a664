"""Experiment grids: which runs (method, experiment, dataset, run config) params asks for.

The Snakefile enumerates targets from here and hands each training job exactly its own
resolved run config, so an edit reruns precisely the runs whose config changed.
Torch-free on purpose: it is imported when the Snakefile is parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from otflows.data.miniboone import FETCH_HINT, RAW_DIR, raw_path

__all__ = ["Experiment", "all_experiments", "experiment_index", "experiments_not_run",
           "mongeampere_ising_data"]

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
    data_path: str = ""  # prepared .npz with `train` and `test`; empty: the toy file

    @property
    def data(self) -> str:
        """Prepared data file the run trains and is evaluated on."""
        return self.data_path or f"data/processed/toy/{self.dataset}.npz"

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
                                   DENSITY_GRID if grid else 0, grid,
                                   f"data/processed/toy/{dataset}.npz"))

    for ds in jko["datasets"]:
        for alpha in jko["alphas"]:
            grid = float(alpha) == float(jko["benchmark_alpha"])
            add("jko_alpha", ds, f"alpha-{ds}-a{_fmt(alpha)}", alpha, solver["width"], grid)
        width_alpha = jko["width_alpha"].get(ds, jko["default_width_alpha"])
        for width in jko["widths"]:
            add("jko_width", ds, f"width-{ds}-m{width}", width_alpha, width, False)
    return runs


# Keys of the `ekp` section that select runs or configure evaluation, not one training run.
_EKP_RUN_KEYS_EXCLUDED = ("datasets", "eval_samples", "iters_by_dataset")


def _ekp_runs(config: dict) -> list[Experiment]:
    """EKP (arXiv:2006.06033) Figs. 1-2: one run per toy; App. D's iterations per dataset."""
    ekp = config.get("ekp")
    if not ekp:
        return []
    base = {k: v for k, v in ekp.items() if k not in _EKP_RUN_KEYS_EXCLUDED}
    runs = []
    for ds in ekp["datasets"]:
        cfg = {**base, "iters": int(ekp["iters_by_dataset"].get(ds, ekp["iters"]))}
        runs.append(Experiment("ekp", f"toy-{ds}", ds, "ekp_toy", cfg, ekp["eval_samples"],
                               DENSITY_GRID, True, f"data/processed/toy/{ds}.npz"))
    return runs


MINIBOONE_DATA = "data/processed/miniboone.npz"


def _miniboone_runs(config: dict) -> list[Experiment]:
    """JKO-Flow Table 3: every alpha x {single shot (otflow, K=1), JKO-Flow (jko, K)}."""
    section = config.get("jko_miniboone")
    if not section:
        return []
    solver = {k: v for k, v in section.items()
              if k not in ("alphas", "eval_samples", "figure_alpha")}
    runs = []
    for alpha in section["alphas"]:
        for method, k in (("otflow", 1), ("jko", section["K"])):
            cfg = {**solver, "alpha": float(alpha), "K": int(k)}
            runs.append(Experiment(method, f"miniboone-a{_fmt(alpha)}", "miniboone",
                                   "jko_miniboone", cfg, section["eval_samples"],
                                   data_path=MINIBOONE_DATA))
    return runs


def _miniboone_present(config: dict, root: str | Path) -> bool:
    source = config.get("data", {}).get("miniboone", {}).get("source", "maf")
    return (Path(root) / raw_path(source)).is_file()


# Keys of the `mongeampere` subsections that are not part of one run's trainer config:
# evaluation size, and the Ising problem itself (it lives in the prepared data file).
_MA_EVAL_KEYS = ("eval_samples",)
_MA_ISING_PROBLEM_KEYS = ("L", "coupling", "min_eigenvalue")


def mongeampere_ising_data(config: dict) -> str:
    """The prepared Ising problem of the `mongeampere.ising` section (``otflows prepare ising``)."""
    return f"data/processed/ising_L{config['mongeampere']['ising']['L']}.npz"


def _mnist_name(config: dict) -> str:
    """The prepared MNIST file's stem in rules/data.smk: ``mnist5k`` or ``mnist`` (full)."""
    return "mnist5k" if config["data"]["mnist"]["source"] == "mnist5k" else "mnist"


def _mongeampere_runs(config: dict) -> list[Experiment]:
    """Monge-Ampère flow (arXiv:1809.10188): every toy (the toy benchmark), MNIST (§4.1,
    Table 1, Fig. 3) and the critical Ising model (§4.2, Fig. 4)."""
    ma = config.get("mongeampere")
    if not ma:
        return []

    def run_cfg(section: dict, task: str, drop: tuple[str, ...] = ()) -> dict:
        return {"task": task, **{k: v for k, v in section.items()
                                 if k not in _MA_EVAL_KEYS + drop}}

    toy = {**run_cfg(ma["toy"], "density"), "monitor": 0}
    runs = [Experiment("mongeampere", f"toy-{ds}", ds, "mongeampere_toy", toy,
                       ma["toy"]["eval_samples"], DENSITY_GRID, True,
                       f"data/processed/toy/{ds}.npz")
            for ds in config["data"]["toy"]["datasets"]]
    mnist = _mnist_name(config)
    runs.append(Experiment("mongeampere", mnist, mnist, "mongeampere_mnist",
                           run_cfg(ma["mnist"], "density"), ma["mnist"]["eval_samples"],
                           data_path=f"data/processed/{mnist}.npz"))
    ising = ma["ising"]
    runs.append(Experiment("mongeampere", f"ising-L{ising['L']}", f"ising_L{ising['L']}",
                           "mongeampere_ising", run_cfg(ising, "ising", _MA_ISING_PROBLEM_KEYS),
                           ising["eval_samples"], data_path=mongeampere_ising_data(config)))
    return runs


def all_experiments(config: dict, root: str | Path = ".") -> list[Experiment]:
    """Every run params asks for whose raw data is present under ``root``, in a stable
    order. MINIBOONE runs need data/raw/miniboone; nothing ever stands in for it."""
    runs = _otflow_runs(config) + _ekp_runs(config) + _mongeampere_runs(config)
    if _miniboone_present(config, root):
        runs += _miniboone_runs(config)
    return runs


def experiments_not_run(config: dict, root: str | Path = ".") -> list[dict[str, str]]:
    """Runs params asks for but whose raw data is absent: method, experiment, dataset and
    the reason, for the not-run list of the summary and the report."""
    if _miniboone_present(config, root):
        return []
    reason = f"not run: {RAW_DIR} absent ({FETCH_HINT})"
    return [{"method": e.method, "experiment": e.name, "dataset": e.dataset, "reason": reason}
            for e in _miniboone_runs(config)]


def experiment_index(config: dict, root: str | Path = ".") -> dict[tuple[str, str], Experiment]:
    """``{(method, experiment name): Experiment}``."""
    return {(e.method, e.name): e for e in all_experiments(config, root)}
