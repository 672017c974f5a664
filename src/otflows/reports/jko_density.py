"""JKO-Flow (Vidal et al., arXiv:2211.16757) Fig. 2: test data, the density of the inverse
flow and generated samples, one column per 2-D toy (also drawn for other methods' toys)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otflows.reports.common import hist2d, limits, load_runs, plt, save_figure

__all__ = ["DENSITY_LOG_RANGE", "figure_density"]


def _common_limits(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """The test data's plot limits cut to the density grid's extent, so that no panel of the
    column shows area the grid does not cover (the white strip of an earlier version)."""
    lo, hi = limits(run["test"])
    gx, gy = np.asarray(run["grid_x"]), np.asarray(run["grid_y"])
    grid_lo = np.array([gx.min(), gy.min()])
    grid_hi = np.array([gx.max(), gy.max()])
    return np.maximum(lo, grid_lo), np.minimum(hi, grid_hi)


# log ρ̂ shown down to this many nats below its maximum (lower values share one colour)
DENSITY_LOG_RANGE = 6.0


def figure_density(inputs: list[Path], out: Path) -> None:
    """JKO-Flow Fig. 2: rows data, estimated density (log ρ̂₀, clipped to
    ``DENSITY_LOG_RANGE`` nats below its maximum, with a colour bar), samples; one column
    per dataset."""
    runs = [r for r in load_runs(inputs) if "grid_logp" in r]
    fig, axes = plt.subplots(3, len(runs), figsize=(2.7 * len(runs), 8.2), squeeze=False,
                             constrained_layout=True)
    for j, run in enumerate(runs):
        lim = _common_limits(run)
        hist2d(axes[0, j], run["test"], lim)
        name = run["experiment"].split("-")[1] if "-" in run["experiment"] \
            else run["experiment"]
        axes[0, j].set_title(name)
        ax = axes[1, j]
        logp = np.asarray(run["grid_logp"], dtype=float)
        top = float(np.nanmax(logp))
        mesh = ax.pcolormesh(run["grid_x"], run["grid_y"], logp, cmap="viridis",
                             vmin=top - DENSITY_LOG_RANGE, vmax=top, shading="auto")
        ax.set_xlim(lim[0][0], lim[1][0])
        ax.set_ylim(lim[0][1], lim[1][1])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
        cbar = fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.06, pad=0.03)
        cbar.ax.tick_params(labelsize=6)
        cbar.set_label("log ρ̂₀ (nats)", fontsize=7)
        hist2d(axes[2, j], run["samples"], lim)
    for i, name in enumerate(("data", "estimated density", "samples")):
        axes[i, 0].set_ylabel(name)
    fig.suptitle(f"{out.stem}: test data, density of the inverse flow, generated samples")
    save_figure(fig, out)
