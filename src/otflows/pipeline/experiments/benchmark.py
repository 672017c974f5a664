"""The cross-method benchmark (issue 24): every toy x every method x seeds, on equal terms.

Each run trains the method's own toy run config (the run its paper grid lists in the toy
benchmark; ``config[m]["toy"]`` for the two baselines, which have no paper grid) with the
size and step-count overrides of ``benchmark.methods[m]``, which put every method at about
``benchmark.param_target`` parameters and ``benchmark.train_seconds`` of one-thread training
(``benchmarks/benchmark_calibration.py``). Runs exist only when ``benchmark.run`` is true
(``config/benchmark.yaml``), so the default profile is unchanged.
"""

from __future__ import annotations

from otflows.pipeline.experiments import cpflow, ekp, jko, mongeampere, qflow
from otflows.pipeline.experiments.base import Experiment, toy_data

__all__ = ["BASELINES", "SWEEP", "base_config", "experiments", "model_parameters", "run_config",
           "run_name"]

SWEEP = "benchmark"
# method -> (its paper grid, the sweep of that grid's toy runs); the grid's toy-benchmark
# runs (``benchmark=True``) carry the method's toy run config (OT-Flow/JKO-Flow: alpha =
# jko.benchmark_alpha). JKO-Flow trains all K subproblems itself here (no init_from), so
# its whole training counts against the budget.
PAPER_TOY = {"otflow": (jko, "jko_alpha"), "jko": (jko, "jko_alpha"),
             "ekp": (ekp, "ekp_toy"), "cpflow": (cpflow, "cpflow_toy"),
             "qflow": (qflow, "qflow_toy"), "mongeampere": (mongeampere, "mongeampere_toy")}
# what a user would pick instead: their run configs are ``config[m]["toy"]`` as they are
BASELINES = ("nsf", "otcfm")


def model_parameters(method: str, cfg: dict, n_parameters: int) -> int:
    """The parameters of the model a run learns, from its trainer's ``n_parameters()``:
    JKO-Flow's model is its K maps (the trainer counts one), every other method's is one."""
    return n_parameters * int(cfg["K"]) if method == "jko" else n_parameters


def run_name(dataset: str, seed: int) -> str:
    """A benchmark run's experiment name: ``bench-<dataset>-s<seed>``."""
    return f"bench-{dataset}-s{seed}"


def base_config(config: dict, method: str, dataset: str) -> dict:
    """``method``'s own toy run config for ``dataset`` (before the benchmark's overrides):
    its paper grid's toy-benchmark run of that dataset, else of its first toy (the configs
    differ by dataset only in EKP's ``iters``, which the benchmark overrides)."""
    if method in BASELINES:
        return dict(config[method]["toy"])
    if method not in PAPER_TOY:
        raise ValueError(f"benchmark.methods: unknown method {method!r}; expected some of "
                         f"{sorted([*PAPER_TOY, *BASELINES])}")
    grid, sweep = PAPER_TOY[method]
    runs = [e for e in grid.experiments(config)
            if e.method == method and e.in_sweep(sweep) and e.benchmark]
    if not runs:
        raise ValueError(f"benchmark: {method} has no toy run in its grid ({sweep})")
    same = [e for e in runs if e.dataset == dataset]
    return dict((same or runs)[0].cfg)


def run_config(config: dict, method: str, dataset: str) -> dict:
    """The benchmark run config of ``method`` on ``dataset``: :func:`base_config` with the
    overrides of ``benchmark.methods[method]`` (each must be a key of that config)."""
    cfg = base_config(config, method, dataset)
    over = config["benchmark"]["methods"][method] or {}
    unknown = sorted(set(over) - set(cfg))
    if unknown:
        raise ValueError(f"benchmark.methods.{method}: keys {unknown} are not keys of its toy "
                         f"run config {sorted(cfg)}")
    return {**cfg, **over}


def experiments(config: dict) -> list[Experiment]:
    """Every toy of ``data.toy.datasets`` x method of ``benchmark.methods`` x seed of
    ``benchmark.seeds``; none unless ``benchmark.run``."""
    bench = config.get("benchmark") or {}
    if not bench.get("run"):
        return []
    n = int(bench["eval_samples"])
    runs = []
    for method in bench["methods"]:
        for ds in config["data"]["toy"]["datasets"]:
            cfg = run_config(config, method, ds)
            runs += [Experiment(method, run_name(ds, int(s)), ds, SWEEP, cfg, n,
                                data_path=toy_data(ds), seed=int(s), bench_eval=True)
                     for s in bench["seeds"]]
    return runs
