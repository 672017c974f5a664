"""Figures of the prepared data sets: the 2-D toys (training split, one panel each) and the
MNIST VAE whose latents other methods model (test images, reconstructions, decoded samples).

Figure kinds: ``toys``, ``vae``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from otflows.reports.common import hist2d, image_grid, limits, load_npz, load_runs, plt, save_figure

__all__ = ["FIGURES", "TABLES"]


def figure_toys(inputs: list[Path], out: Path) -> None:
    """All toy datasets (``train`` ``[n, 2]`` of each prepared ``.npz``), one panel each."""
    n = len(inputs)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, path in zip(axes.ravel(), inputs, strict=False):
        x = load_npz(path)["train"]
        ax.axis("on")
        hist2d(ax, x, limits(x))
        ax.set_title(Path(path).stem)
    save_figure(fig, out)


def figure_vae(inputs: list[Path], out: Path) -> None:
    """MNIST VAE: test images, their reconstructions (decoder of the latent mean) and
    decoded samples of z ~ N(0, I) (pixel probabilities)."""
    run = load_runs(inputs[:1])[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    image_grid(axes[0], run["originals"][:32], 8)
    axes[0].set_title("test images")
    image_grid(axes[1], run["reconstructions"][:32], 8)
    axes[1].set_title("reconstructions")
    image_grid(axes[2], run["samples"][:64], 8)
    axes[2].set_title("decoded z ~ N(0, I)")
    fig.suptitle(out.stem)
    save_figure(fig, out)


FIGURES: dict[str, Callable[[list[Path], Path], None]] = {
    "toys": figure_toys,
    "vae": figure_vae,
}
TABLES: dict[str, Callable[[list[Path], Path, Path], None]] = {}
