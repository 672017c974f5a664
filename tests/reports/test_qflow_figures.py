"""Q-flow's Fig. 2 (moons → checkerboard): the interval log-ratio row has a colour scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otflows.reports.qflow import figure_qflow_toys, plt


def test_log_ratio_row_has_a_colourbar_and_a_scale_set_where_samples_are(tmp_path: Path,
                                                                        monkeypatch):
    rng = np.random.default_rng(0)
    k1, L, size = 5, 4, 20
    fx = fy = np.linspace(-3, 3, size)
    field = rng.normal(size=(L, size, size))
    field[:, 0, :] = 50.0  # an extrapolated edge must not set the colour scale
    run = {"trajectory": rng.normal(size=(k1, 300, 2)), "bridge": rng.normal(size=(k1, 300, 2)),
           "field": field, "field_x": fx, "field_y": fy, "ratio_grid": np.linspace(0, 1, L + 1),
           "ratio_bridge": rng.normal(size=(L + 1, 300, 2))}
    path = tmp_path / "moons-checkerboard.npz"
    np.savez(path, **run)
    figs = []
    monkeypatch.setattr("otflows.reports.qflow.save_figure",
                        lambda fig, out, dpi=110: figs.append(fig))
    figure_qflow_toys([path], tmp_path / "out.png")
    (fig,) = figs
    meshes = [c for ax in fig.axes for c in ax.collections if hasattr(c, "get_clim")
              and c.get_array() is not None and c.get_array().ndim == 2]
    vmin, vmax = meshes[-1].get_clim()
    assert vmax == -vmin and 0 < vmax < 10
    every = [a for ax in fig.axes for a in (ax, *ax.child_axes)]  # the bar may be an inset
    assert any("interval log-ratio" in a.get_ylabel() for a in every)
    plt.close(fig)
