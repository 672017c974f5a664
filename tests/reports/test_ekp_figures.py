"""EKP's Figs. 1 and 2 (arXiv:2006.06033): the samples are drawn, and one colour bar with a
relative scale reads for every panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otflows.reports.ekp import EKP_LOGP_RANGE, figure_ekp_densities, figure_ekp_field, plt


def _capture(monkeypatch) -> list:
    figs: list = []
    monkeypatch.setattr("otflows.reports.ekp.save_figure", lambda fig, out, **kw: figs.append(fig))
    return figs


def _meshes(fig) -> list:
    return [c for ax in fig.axes for c in ax.collections if hasattr(c, "get_clim")
            and c.get_array() is not None and c.get_array().ndim == 2]


def test_fig1_draws_the_flow_samples_at_each_time_over_a_relative_scale(tmp_path: Path,
                                                                        monkeypatch):
    rng = np.random.default_rng(0)
    t, g = np.array([0.0, 0.5, 1.0]), np.linspace(-3, 3, 10)
    run = {"flow_t": t, "flow_x": g, "flow_y": g, "flow_logp": rng.normal(size=(3, 10, 10)) - 50,
           "flow_arrow_x": g[::2], "flow_arrow_y": g[::2],
           "flow_velocity": rng.normal(size=(3, 5, 5, 2)),
           "flow_samples": rng.normal(size=(3, 40, 2))}
    np.savez(tmp_path / "toy-checkerboard.npz", **run)
    figs = _capture(monkeypatch)
    figure_ekp_field([tmp_path / "toy-checkerboard.npz"], tmp_path / "out.png")
    (fig,) = figs
    panels = [ax for ax in fig.axes if ax.get_title().startswith("t = ")]
    assert len(panels) == 3
    for i, ax in enumerate(panels):
        dots = [c for c in ax.collections if c.get_offsets().shape == (40, 2)]
        assert len(dots) == 1
        np.testing.assert_allclose(dots[0].get_offsets(), run["flow_samples"][i])
        assert ax.get_xticks().size and ax.get_yticks().size
    # log ρ − max: a log-density near −50 still shows (the scale is relative, not absolute).
    assert all(m.get_clim() == (-EKP_LOGP_RANGE, 0.0) for m in _meshes(fig))
    assert max(float(m.get_array().max()) for m in _meshes(fig)) == 0.0
    plt.close(fig)


def test_fig2_has_scatter_samples_and_one_colour_bar(tmp_path: Path, monkeypatch):
    rng = np.random.default_rng(1)
    g = np.linspace(-4, 4, 12)
    paths = []
    for name in ("moons", "8gaussians"):
        run = {"grid_x": g, "grid_y": g, "grid_logp": rng.normal(size=(12, 12)) - 3,
               "samples": rng.normal(size=(50, 2))}
        paths.append(tmp_path / f"toy-{name}.npz")
        np.savez(paths[-1], **run)
    figs = _capture(monkeypatch)
    figure_ekp_densities(paths, tmp_path / "out.png")
    (fig,) = figs
    bars = [ax for ax in fig.axes if "nats" in ax.get_ylabel()]
    assert len(bars) == 1
    titled = [ax for ax in fig.axes if ax.get_title() in ("moons", "8gaussians")]
    assert len(titled) == 2
    dots = [c for ax in fig.axes for c in ax.collections if c.get_offsets().shape == (50, 2)]
    assert len(dots) == 2
    plt.close(fig)
