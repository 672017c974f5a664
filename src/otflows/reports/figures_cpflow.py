"""CP-Flow figures (Huang et al., ICLR 2021): Fig. 3 (toy densities, CP-Flow vs zuko MAF/NAF)
and Fig. 4 (transport cost vs KL during training, against the closed-form W₂²)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from otflows.reports.plots import _hist, _limits, _load_runs, plt, save_figure

__all__ = ["FIGURES", "figure_coupling", "figure_fig3"]

_MODELS = {"cpflow": "CP-Flow", "maf": "MAF (zuko)", "naf": "NAF (zuko)",
           "linear_iaf": "linear IAF (zuko)"}


def _model_of(experiment: str) -> tuple[str, str]:
    """(model, dataset) of ``toy-<ds>`` (CP-Flow) or ``fig3-<model>-<ds>``."""
    parts = experiment.split("-", 2)
    if parts[0] == "fig3":
        return parts[1], parts[2]
    return "cpflow", experiment.split("-", 1)[1]


def figure_fig3(inputs: list[Path], out: Path) -> None:
    """Fig. 3: rows data, CP-Flow, MAF, NAF densities exp(log p) on a grid; one column per
    dataset; each panel titled with the model's parameter count in the npz."""
    runs = [r for r in _load_runs(inputs) if "grid_logp" in r]
    by = {_model_of(r["experiment"]): r for r in runs}
    datasets = list(dict.fromkeys(ds for (_, ds) in by))
    models = [m for m in ("cpflow", "maf", "naf") if any((m, ds) in by for ds in datasets)]
    fig, axes = plt.subplots(1 + len(models), len(datasets),
                             figsize=(2.6 * len(datasets), 2.6 * (1 + len(models))),
                             squeeze=False)
    for j, ds in enumerate(datasets):
        ref = next(by[(m, ds)] for m in models if (m, ds) in by)
        lim = _limits(ref["test"])
        _hist(axes[0, j], ref["test"], lim)
        axes[0, j].set_title(ds)
        for i, m in enumerate(models, start=1):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (m, ds) not in by:
                ax.axis("off")
                continue
            r = by[(m, ds)]
            ax.pcolormesh(r["grid_x"], r["grid_y"], np.exp(r["grid_logp"]), cmap="viridis",
                          shading="auto")
            ax.set_xlim(lim[0][0], lim[1][0])
            ax.set_ylim(lim[0][1], lim[1][1])
            ax.set_aspect("equal")
    axes[0, 0].set_ylabel("data")
    for i, m in enumerate(models, start=1):
        axes[i, 0].set_ylabel(_MODELS[m])
    fig.suptitle("CP-Flow Fig. 3: learned toy densities (parameter counts matched)")
    save_figure(fig, out)


def figure_coupling(inputs: list[Path], out: Path) -> None:
    """Fig. 4: E‖x − f(x)‖² against KL(data ‖ model) during training, one panel per
    dimension, CP-Flow and the linear IAF, with the closed-form W₂² as a dashed line."""
    runs = [r for r in _load_runs(inputs) if "coupling_curve" in r]
    dims = sorted({int(r["experiment"].split("-")[1][1:]) for r in runs})
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.3), squeeze=False)
    for j, d in enumerate(dims):
        ax = axes[0, j]
        for r in runs:
            _, dim, model = r["experiment"].split("-", 2)
            if int(dim[1:]) != d:
                continue
            curve = r["coupling_curve"]
            kl = np.clip(curve[:, 1], 1e-4, None)
            ax.plot(kl, curve[:, 2], marker=".", ms=3, label=_MODELS.get(model, model))
            w2 = float(r["w2_squared"])
        ax.axhline(w2, color="k", ls="--", lw=1, label="closed-form W₂²")
        ax.set_xscale("log")
        ax.invert_xaxis()  # training minimises the KL: curves read right to left in time
        ax.set_xlabel("KL (nats)")
        ax.set_title(f"d = {d}")
        if j == 0:
            ax.set_ylabel("E‖x − f(x)‖²")
            ax.legend(fontsize=7)
    fig.suptitle("CP-Flow Fig. 4: transport cost vs KL during training")
    save_figure(fig, out)


FIGURES: dict[str, Callable[[list[Path], Path], None]] = {
    "cpflow-fig3": figure_fig3,
    "cpflow-coupling": figure_coupling,
}
