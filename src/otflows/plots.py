"""Figures (PNG and SVG side by side) from prepared data and evaluated runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from otflows.checkpoint import atomic_write  # noqa: E402

__all__ = ["FIGURES", "save_figure"]

APPROACH = {"otflow": "single shot", "jko": "JKO-Flow"}


def save_figure(fig: plt.Figure, out_png: Path) -> None:
    """Write ``fig`` atomically as PNG and as SVG beside it, then close it."""
    for path, fmt in ((out_png, "png"), (out_png.with_suffix(".svg"), "svg")):
        atomic_write(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=130,
                                                            bbox_inches="tight"))
    plt.close(fig)


def _hist(ax: plt.Axes, x: np.ndarray, lim: tuple[np.ndarray, np.ndarray], bins: int = 120):
    ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=[[lim[0][0], lim[1][0]],
                                                  [lim[0][1], lim[1][1]]], cmap="viridis")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")


def _limits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.quantile(x, 0.002, axis=0), np.quantile(x, 0.998, axis=0)
    pad = 0.1 * (hi - lo)
    return lo - pad, hi + pad


def _load_runs(paths: list[Path]) -> list[dict]:
    """Samples files with the run's identity parsed from results/samples/<method>/<exp>.npz."""
    runs = []
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            run = {k: data[k] for k in data.keys()}
        run["method"] = path.parent.name
        run["experiment"] = path.stem
        runs.append(run)
    return runs


def figure_toys(inputs: list[Path], out: Path) -> None:
    """All toy datasets (training split), one panel each."""
    n = len(inputs)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, path in zip(axes.ravel(), inputs, strict=False):
        with np.load(path) as data:
            x = data["train"]
        ax.axis("on")
        _hist(ax, x, _limits(x))
        ax.set_title(path.stem)
    save_figure(fig, out)


def _sweep_grid(inputs: list[Path], out: Path, key: str, label: str, title: str) -> None:
    runs = _load_runs(inputs)
    values = sorted({_sweep_value(r["experiment"], key) for r in runs})
    methods = [m for m in ("otflow", "jko") if any(r["method"] == m for r in runs)]
    fig, axes = plt.subplots(len(methods), len(values),
                             figsize=(2.6 * len(values), 2.6 * len(methods)), squeeze=False)
    lim = _limits(runs[0]["test"])
    for run in runs:
        i = methods.index(run["method"])
        j = values.index(_sweep_value(run["experiment"], key))
        _hist(axes[i, j], run["samples"], lim)
        if i == 0:
            axes[i, j].set_title(f"{label} = {values[j]:g}")
        if j == 0:
            axes[i, j].set_ylabel(APPROACH.get(run["method"], run["method"]))
    fig.suptitle(title)
    save_figure(fig, out)


def _sweep_value(experiment: str, key: str) -> float:
    # Experiment names end in -a<alpha> or -m<width> (see otflows.experiments).
    tail = experiment.rsplit("-", 1)[-1]
    if not tail.startswith(key):
        raise ValueError(f"experiment {experiment!r} does not end in -{key}<value>")
    return float(tail[len(key):])


def figure_jko_alpha(inputs: list[Path], out: Path) -> None:
    """JKO-Flow Fig. 1: samples, rows single shot / JKO-Flow, columns alpha."""
    _sweep_grid(inputs, out, "a", "α", f"Generated samples by α — {out.stem}")


def figure_jko_width(inputs: list[Path], out: Path) -> None:
    """JKO-Flow Fig. 3: samples, rows single shot / JKO-Flow, columns network width."""
    _sweep_grid(inputs, out, "m", "m", f"Generated samples by width — {out.stem}")


def figure_density(inputs: list[Path], out: Path) -> None:
    """JKO-Flow Fig. 2: rows data, estimated density, samples; one column per dataset."""
    runs = [r for r in _load_runs(inputs) if "grid_logp" in r]
    fig, axes = plt.subplots(3, len(runs), figsize=(2.6 * len(runs), 7.8), squeeze=False)
    for j, run in enumerate(runs):
        lim = _limits(run["test"])
        _hist(axes[0, j], run["test"], lim)
        axes[0, j].set_title(run["experiment"].split("-")[1])
        ax = axes[1, j]
        ax.pcolormesh(run["grid_x"], run["grid_y"], np.exp(run["grid_logp"]), cmap="viridis",
                      shading="auto")
        ax.set_xlim(lim[0][0], lim[1][0])
        ax.set_ylim(lim[0][1], lim[1][1])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
        _hist(axes[2, j], run["samples"], lim)
    for i, name in enumerate(("data", "estimated density", "samples")):
        axes[i, 0].set_ylabel(name)
    fig.suptitle(f"{out.stem}: data, density and samples")
    save_figure(fig, out)


FIGURES: dict[str, Callable[[list[Path], Path], None]] = {
    "toys": figure_toys,
    "jko-alpha": figure_jko_alpha,
    "jko-width": figure_jko_width,
    "density": figure_density,
}
