"""Convex Potential Flows (Huang et al., arXiv:2012.05942): the runs of Figs. 3-4 and Tables 1-3."""

from __future__ import annotations

from otflows.pipeline.experiments.base import (
    DENSITY_GRID,
    MINIBOONE_DATA,
    Experiment,
    mnist_name,
    toy_data,
)

__all__ = ['experiments', 'miniboone_experiments']


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
