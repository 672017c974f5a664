"""Convex Potential Flows (Huang et al., arXiv:2012.05942): the runs of Figs. 3-4 and Tables 1-3."""

from __future__ import annotations

from otflows.data.cifar10 import FETCH_HINT as CIFAR10_FETCH_HINT
from otflows.data.cifar10 import RAW_PATH as CIFAR10_RAW
from otflows.data.tabular import FETCH_HINT as TABULAR_FETCH_HINT
from otflows.data.tabular import raw_paths as tabular_raw_paths
from otflows.pipeline.experiments.base import (
    DENSITY_GRID,
    MINIBOONE_DATA,
    Experiment,
    mnist_name,
    toy_data,
)

__all__ = ['experiments', 'gated_experiments', 'miniboone_experiments', 'tabular_data']


# Keys of a `cpflow` run subsection that configure evaluation, not the trainer.
_CP_EVAL_KEYS = ("eval_samples",)


def _cpflow_run(section: dict, task: str, model: str = "cpflow", **over: object) -> dict:
    return {"task": task, "model": model,
            **{k: v for k, v in section.items() if k not in _CP_EVAL_KEYS}, **over}


def experiments(config: dict) -> list[Experiment]:
    """CP-Flow (arXiv:2012.05942): every toy (the toy benchmark, and Fig. 3's CP-Flow
    column), Fig. 3's zuko MAF/NAF baselines, Fig. 4's Gaussian coupling (CP-Flow and a
    zuko linear IAF per dimension), MNIST bits/dim (Table 2), amortised VI (Table 3)."""
    cp = config.get("cpflow")
    if not cp:
        return []
    toy = cp["toy"]
    toys = list(config["data"]["toy"]["datasets"])
    runs = [Experiment("cpflow", f"toy-{ds}", ds, "cpflow_toy", _cpflow_run(toy, "density"),
                       toy["eval_samples"], DENSITY_GRID, True, toy_data(ds))
            for ds in toys]
    fig3 = cp["fig3"]
    for ds in [d for d in fig3["datasets"] if d in toys]:
        for model in ("maf", "naf"):
            runs.append(Experiment("cpflow", f"fig3-{model}-{ds}", ds, "cpflow_fig3",
                                   _cpflow_run(toy, "density", model,
                                               transforms=fig3["transforms"]),
                                   toy["eval_samples"], DENSITY_GRID, False,
                                   toy_data(ds)))
    coupling = cp["coupling"]
    for d in cp["coupling_data"]["dims"]:
        for model in ("cpflow", "linear_iaf"):
            runs.append(Experiment("cpflow", f"coupling-d{d}-{model}", f"gaussian_d{d}",
                                   "cpflow_coupling", _cpflow_run(coupling, "coupling", model),
                                   coupling["eval_samples"],
                                   data_path=f"data/processed/gaussian_d{d}.npz"))
    mnist = mnist_name(config)
    runs.append(Experiment("cpflow", mnist, mnist, "cpflow_mnist",
                           _cpflow_run(cp["mnist"], "density"), cp["mnist"]["eval_samples"],
                           data_path=f"data/processed/{mnist}.npz"))
    if cp.get("vae"):
        vae = {k: v for k, v in cp["vae"].items() if k not in _CP_EVAL_KEYS}
        for posterior in ("cpflow", "gaussian"):
            runs.append(Experiment("cpflow", f"vae-{posterior}-{mnist}", mnist, "cpflow_vae",
                                   {"task": "vae", **vae, "posterior": posterior},
                                   cp["vae"]["eval_samples"],
                                   data_path=f"data/processed/{mnist}.npz"))
    return runs


def miniboone_experiments(config: dict) -> list[Experiment]:
    """CP-Flow Table 1: MINIBOONE test NLL (runs only when data/raw/miniboone is present)."""
    cp = config.get("cpflow")
    if not cp:
        return []
    mb = cp["miniboone"]
    return [Experiment("cpflow", "miniboone", "miniboone", "cpflow_miniboone",
                       _cpflow_run(mb, "density"), mb["eval_samples"],
                       data_path=MINIBOONE_DATA)]


CIFAR10_DATA = "data/processed/cifar10.npz"


def tabular_data(name: str) -> str:
    """The prepared file of the MAF tabular dataset ``name`` (``otflows prepare tabular``)."""
    return f"data/processed/{name}.npz"


def gated_experiments(config: dict) -> list[tuple[Experiment, tuple[str, ...], str]]:
    """CP-Flow Table 1's POWER, GAS, HEPMASS and BSDS300 runs (and Table 2's CIFAR-10 where
    ``cifar10_data.run``), each with the raw files it needs and how to fetch them: a run is
    made only when its files are present, and is listed as not run otherwise (nothing stands
    in for the data)."""
    cp = config.get("cpflow")
    if not cp:
        return []
    out = []
    if cp.get("tabular"):
        run = cp["tabular"]
        out += [(Experiment("cpflow", name, name, "cpflow_tabular", _cpflow_run(run, "density"),
                            run["eval_samples"], data_path=tabular_data(name)),
                 tuple(tabular_raw_paths(name)), TABULAR_FETCH_HINT)
                for name in cp["tabular_data"]["datasets"]]
    if cp.get("cifar10_data", {}).get("run"):  # Table 2 CIFAR-10: paper scope
        run = cp["cifar10"]
        out.append((Experiment("cpflow", "cifar10", "cifar10", "cpflow_cifar10",
                               _cpflow_run(run, "density"), run["eval_samples"],
                               data_path=CIFAR10_DATA), (CIFAR10_RAW,), CIFAR10_FETCH_HINT))
    return out
