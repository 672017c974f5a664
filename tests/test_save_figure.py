"""save_figure: the PNG is what matplotlib draws; the SVG keeps axes, text and lines as
vectors and embeds dense meshes and point clouds as pixels (issue 23: writing 14 400 vector
quads per density panel took ~80 % of every figure job's time)."""

from __future__ import annotations

import numpy as np
import pytest

from otflows.reports.common import plt, rasterize_dense, save_figure


def _figure(layout: str | None = None):
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3), layout=layout)
    grid = np.linspace(-3, 3, 121)
    xx, yy = np.meshgrid(grid, grid)
    a.pcolormesh(xx, yy, -(xx**2 + yy**2), shading="auto")
    a.plot([-3, 3], [0, 0], color="red")
    b.scatter(*np.random.default_rng(0).normal(size=(2, 3000)), s=1)
    b.scatter([0.0, 1.0], [0.0, 1.0], s=20, color="black")  # a few markers: stay vectors
    a.set_title("density")
    fig.suptitle("a long figure title that sets the tight bounding box's width")
    return fig


@pytest.mark.parametrize("layout", [None, "constrained"])
def test_dense_collections_are_rasterized_in_the_svg_only(tmp_path, layout):
    """The PNG is the same bytes as matplotlib's own ``bbox_inches="tight"`` save (which
    save_figure replaces by one measuring draw), with and without a layout engine."""
    fig = _figure(layout)
    fig.savefig(tmp_path / "plain.png", format="png", dpi=130, bbox_inches="tight")
    save_figure(fig, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    svg = (tmp_path / "fig.svg").read_text()
    assert svg.count("<image") == 2  # the mesh and the 3000-point cloud
    assert svg.count("<path") < 200  # axes, ticks, the red line, two markers, glyphs
    assert (tmp_path / "fig.svg").stat().st_size < 300_000
    assert "density" in svg or "<use" in svg  # the title is text (glyphs), not pixels


def test_rasterize_dense_leaves_sparse_artists_alone():
    fig = _figure()
    assert rasterize_dense(fig) == 2
    kinds = sorted(type(a).__name__ for ax in fig.axes for a in ax.get_children()
                   if a.get_rasterized())
    assert kinds == ["PathCollection", "QuadMesh"]
    plt.close(fig)
