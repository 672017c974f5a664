"""Helpers shared by the per-paper report modules: reading run outputs, drawing, writing.

Run outputs live at ``results/samples/<method>/<experiment>.npz`` and
``results/metrics/<method>/<experiment>.json``; the loaders here attach that identity
(``method``, ``experiment``) to what they read. Figures are written atomically as PNG with an
SVG beside it, tables atomically as markdown + CSV.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from otflows.pipeline.checkpoint import atomic_write, write_text  # noqa: E402

__all__ = ["APPROACH", "plt", "rasterize_dense", "save_figure", "write_table", "load_npz",
           "load_runs", "load_metrics", "metrics_records", "metrics_by_run", "limits", "hist2d",
           "image_grid", "fmt_sci", "fmt_or_dash"]

# Display names of the two approaches the JKO-Flow paper compares.
APPROACH = {"otflow": "single shot", "jko": "JKO-Flow"}


# --------------------------------------------------------------------------- writing
# A collection of more elements than this (a density mesh, a 2-D histogram, a cloud of
# samples) is one embedded image in the SVG, not one vector path per element: a 120 x 120
# density mesh was 14 400 SVG paths, and writing the SVGs took ~80 % of every figure job.
_RASTER_OVER = 500


def _elements(artist: object) -> int:
    """How many vector paths ``artist`` would write to an SVG (0 for a non-collection)."""
    from matplotlib.collections import Collection, QuadMesh

    if isinstance(artist, QuadMesh):
        rows, cols = artist.get_coordinates().shape[:2]
        return (rows - 1) * (cols - 1)
    if isinstance(artist, Collection):
        return max(len(artist.get_offsets()), len(artist.get_paths()))
    return 0


def rasterize_dense(fig: plt.Figure, over: int = _RASTER_OVER) -> int:
    """Mark every collection of ``fig`` with more than ``over`` elements rasterized (vector
    formats embed it as pixels at the save's dpi; raster formats are unaffected); how many."""
    dense = [a for ax in fig.axes for a in ax.get_children() if _elements(a) > over]
    for artist in dense:
        artist.set_rasterized(True)
    return len(dense)


def save_figure(fig: plt.Figure, out_png: Path, dpi: int = 130) -> None:
    """Write ``fig`` atomically as PNG (``dpi`` dots per inch) and SVG beside it (axes, text
    and lines as vectors, dense meshes and point clouds as pixels); close it.

    Both files are cropped to the figure's tight bounding box, measured once by a draw that
    paints nothing, at the PNG's dpi (what ``bbox_inches="tight"`` measures, so the PNG is
    the same bytes); the layout engine runs in that draw only. ``"tight"`` on each save
    measured the figure twice (once per format)."""
    screen_dpi, fig.dpi = fig.dpi, dpi
    try:
        fig.draw_without_rendering()  # lays out and places; measures text, paints nothing
        bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(
            plt.rcParams["savefig.pad_inches"])
    finally:
        fig.dpi = screen_dpi
    if fig.get_layout_engine() is not None:  # laid out by that draw: keep those places
        fig.set_layout_engine("none")  # (constrained layout was ~30 % of a figure's time)
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=bbox))
    rasterize_dense(fig)  # after the PNG, which is therefore exactly as before
    atomic_write(out_png.with_suffix(".svg"), lambda tmp: fig.savefig(
        tmp, format="svg", dpi=dpi, bbox_inches=bbox))
    plt.close(fig)


def write_table(lines: list[str], out_md: Path, table: pd.DataFrame, out_csv: Path) -> None:
    """Write ``table`` atomically as CSV (no index) and ``lines`` as the markdown file."""
    write_text(table.to_csv(index=False), out_csv)
    write_text("\n".join(lines) + "\n", out_md)


# --------------------------------------------------------------------------- reading
def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, loaded into memory (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.keys()}


def load_runs(paths: list[Path]) -> list[dict]:
    """Samples files as dicts of arrays plus ``method`` and ``experiment``, parsed from
    ``results/samples/<method>/<experiment>.npz``."""
    runs = []
    for path in map(Path, paths):
        run: dict = load_npz(path)
        run["method"] = path.parent.name
        run["experiment"] = path.stem
        runs.append(run)
    return runs


def load_metrics(paths: list[Path]) -> pd.DataFrame:
    """One row per metrics JSON file; FileNotFoundError naming the snakemake target if one
    is missing."""
    rows = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"metrics file {path} not found: run `snakemake {path}`")
        rows.append(json.loads(Path(path).read_text()))
    return pd.DataFrame(rows)


def metrics_records(paths: list[Path]) -> list[dict]:
    """The parsed metrics JSON files among ``paths`` (other files are skipped), in order."""
    return [json.loads(Path(p).read_text()) for p in paths if str(p).endswith(".json")]


def metrics_by_run(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """The metrics JSON files among ``paths`` keyed by ``(method, experiment)``, parsed from
    ``results/metrics/<method>/<experiment>.json``."""
    return {(p.parent.name, p.stem): json.loads(p.read_text()) for p in map(Path, paths)
            if p.suffix == ".json"}


# --------------------------------------------------------------------------- drawing
def limits(x: np.ndarray, pad: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Axis limits ``(lo, hi)``, each ``[d]``: the 0.2% and 99.8% quantiles of ``x`` ``[n, d]``
    widened by ``pad`` times their distance on each side."""
    lo, hi = np.quantile(x, 0.002, axis=0), np.quantile(x, 0.998, axis=0)
    pad = pad * (hi - lo)
    return lo - pad, hi + pad


def hist2d(ax: plt.Axes, x: np.ndarray, lim: tuple[np.ndarray, np.ndarray],
           bins: int = 120) -> None:
    """2-D histogram of the first two columns of ``x`` ``[n, d]`` within ``lim`` (as returned
    by :func:`limits`), square, without ticks."""
    ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=[[lim[0][0], lim[1][0]],
                                                  [lim[0][1], lim[1][1]]], cmap="viridis")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")


def image_grid(ax: plt.Axes, images: np.ndarray, cols: int) -> None:
    """Tile grey images ``[n, 784]`` (values in [0, 1]) into one picture, ``cols`` per row,
    one pixel of white border."""
    n = images.shape[0]
    rows = -(-n // cols)
    canvas = np.ones((rows * 29 + 1, cols * 29 + 1))
    for i, img in enumerate(images.reshape(n, 28, 28)):
        r, c = divmod(i, cols)
        canvas[1 + 29 * r : 29 * (r + 1), 1 + 29 * c : 29 * (c + 1)] = img
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.axis("off")


# --------------------------------------------------------------------------- numbers
def fmt_sci(x: float | None) -> str:
    """``x`` as ``1.23e-04``; an en dash for None or NaN."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"


def fmt_or_dash(x: object, fmt: str = ".3f") -> str:
    """``format(x, fmt)``; an en dash for None or a non-finite float."""
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) \
        else format(x, fmt)
