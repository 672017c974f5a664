"""Entropy-Kantorovich potentials (Finlay et al., arXiv:2006.06033): Fig. 1 (velocity over
log-density), Fig. 2 (true and estimated log-densities, samples), App. C Fig. 1 (W₂ vs
entropic interpolation, closed forms) and the training curves of Algorithm 1.

Figure kinds: ``ekp-field``, ``ekp-densities``, ``ekp-interpolation``, ``ekp-training``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from otflows.data.toy import sample_toy
from otflows.reports.common import load_runs, plt, save_figure

__all__ = ["FIGURES", "TABLES"]

EKP_TRUE_SAMPLES = 1_000_000  # fresh toy draws behind the "true log-density" row of Fig. 2
EKP_LOGP_RANGE = 8.0  # heat maps show log-densities within this many nats of the maximum


def _toy_name(run: dict) -> str:
    return run["experiment"].removeprefix("toy-")


def _logp_image(ax: plt.Axes, gx: np.ndarray, gy: np.ndarray, logp: np.ndarray,
                top: float | None = None) -> object:
    """Heat map of log ρ − top clipped to [−EKP_LOGP_RANGE, 0] (top: its maximum if None):
    relative values, so that one colour bar reads for panels with different maxima."""
    if top is None:
        top = float(np.nanmax(logp[np.isfinite(logp)]))
    image = ax.pcolormesh(gx, gy, np.clip(logp - top, -EKP_LOGP_RANGE, 0.0), cmap="viridis",
                          vmin=-EKP_LOGP_RANGE, vmax=0.0, shading="auto", rasterized=True)
    _axis_ticks(ax)
    return image


def _axis_ticks(ax: plt.Axes) -> None:
    ax.set_aspect("equal")
    ax.locator_params(nbins=4)
    ax.tick_params(labelsize=7)


def _histogram_logp(name: str, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """log of a 2-D histogram density of fresh toy draws on the cell centres (gx, gy)."""
    x = sample_toy(name, EKP_TRUE_SAMPLES, np.random.default_rng(12345))
    ex = np.concatenate([[gx[0] - (gx[1] - gx[0]) / 2], (gx[1:] + gx[:-1]) / 2,
                         [gx[-1] + (gx[-1] - gx[-2]) / 2]])
    ey = np.concatenate([[gy[0] - (gy[1] - gy[0]) / 2], (gy[1:] + gy[:-1]) / 2,
                         [gy[-1] + (gy[-1] - gy[-2]) / 2]])
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[ex, ey])
    area = np.outer(np.diff(ex), np.diff(ey))
    with np.errstate(divide="ignore"):
        return np.log(counts / (len(x) * area)).T  # [len(gy), len(gx)]


def figure_ekp_densities(inputs: list[Path], out: Path) -> None:
    """EKP Fig. 2: rows true log-density (histogram of 10⁶ fresh draws), log ρ₀^ε of
    eq. (17) normalised on the grid, generated samples; one column per toy."""
    runs = [r for r in load_runs(inputs) if "grid_logp" in r]
    if not runs:
        raise ValueError(f"ekp-densities: none of {inputs} holds grid_logp; evaluate the EKP "
                         f"runs with a density grid")
    fig, axes = plt.subplots(3, len(runs), figsize=(2.6 * len(runs) + 1.2, 8.2),
                             squeeze=False, layout="constrained")
    images: list[object] = [None, None]
    for j, run in enumerate(runs):
        gx, gy = run["grid_x"], run["grid_y"]
        true = _histogram_logp(_toy_name(run), gx, gy)
        # Both density rows share the true density's colour scale (top: its maximum).
        top = float(np.nanmax(true[np.isfinite(true)]))
        images[0] = _logp_image(axes[0, j], gx, gy, true, top)
        axes[0, j].set_title(_toy_name(run))
        images[1] = _logp_image(axes[1, j], gx, gy, run["grid_logp"], top)
        # Samples as dots on the same box (a 60² histogram of 1000 draws showed 0–4 counts
        # per bin: speckle, not shape).
        x = run["samples"]
        axes[2, j].scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color="C0", linewidths=0,
                           rasterized=True)
        axes[2, j].set_xlim(gx[0], gx[-1])
        axes[2, j].set_ylim(gy[0], gy[-1])
        _axis_ticks(axes[2, j])
    for i, name in enumerate(("true log-density", "log ρ₀^ε (eq. 17)",
                              f"{len(runs[0]['samples'])} samples (flow from N(0, I))")):
        axes[i, 0].set_ylabel(name)
    fig.colorbar(images[1], ax=axes[:2, :], shrink=0.6,
                 label="log-density − max of the true one, nats")
    fig.suptitle("EKP Fig. 2: true log-density, estimated log-density, generated samples "
                 f"(colour: top {EKP_LOGP_RANGE:g} nats of each toy)")
    save_figure(fig, out)


def figure_ekp_field(inputs: list[Path], out: Path) -> None:
    """EKP Fig. 1: v_t (arrows) over log ρ_t (heat map) and the flow's samples (dots) at
    t = 0, .25, .5, .75, 1; one run."""
    if len(inputs) != 1:
        raise ValueError(f"ekp-field draws one run; got {len(inputs)} inputs")
    run = load_runs(inputs)[0]
    times = run["flow_t"]
    fig, axes = plt.subplots(1, len(times), figsize=(3.0 * len(times) + 1.0, 3.6),
                             squeeze=False, layout="constrained")
    logp = run["flow_logp"]
    top = float(np.nanmax(logp[np.isfinite(logp)]))  # one colour scale for every t
    image = None
    for i, t in enumerate(times):
        ax = axes[0, i]
        image = _logp_image(ax, run["flow_x"], run["flow_y"], logp[i], top)
        v = run["flow_velocity"][i]
        ax.quiver(run["flow_arrow_x"], run["flow_arrow_y"], v[..., 0], v[..., 1],
                  color="black", angles="xy", width=0.004)
        if "flow_samples" in run:  # N(0, I) draws pushed back along v_t (older runs: none)
            xs = run["flow_samples"][i]
            ax.scatter(xs[:, 0], xs[:, 1], s=3, color="tab:red", linewidths=0, alpha=0.8,
                       rasterized=True)
            ax.set_xlim(run["flow_x"][0], run["flow_x"][-1])
            ax.set_ylim(run["flow_y"][0], run["flow_y"][-1])
        ax.set_title(f"t = {t:g}")
    fig.colorbar(image, ax=axes[0, :], shrink=0.9, label="log ρ_t − max over t, nats")
    fig.suptitle(f"EKP Fig. 1 ({_toy_name(run)}): v_t (arrows) over log ρ_t, and samples "
                 f"(red) flowing from N(0, I) at t = 1 to the data at t = 0")
    save_figure(fig, out)


def _ellipse_samples(mean: np.ndarray, cov: np.ndarray, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    w, u = np.linalg.eigh(cov)
    return mean + (rng.standard_normal((n, len(mean))) * np.sqrt(np.clip(w, 0, None))) @ u.T


def figure_ekp_interpolation(inputs: list[Path], out: Path) -> None:
    """EKP App. C Fig. 1: W₂ geodesic (top) and entropic interpolation, ε = 1 (bottom),
    from a degenerate Gaussian to N(0, I), by the closed forms of Example 1 (no run inputs)."""
    if inputs:
        raise ValueError(f"ekp-interpolation is drawn from closed forms and reads no inputs; "
                         f"got {inputs}")
    from otflows.methods.ekp import entropic_interpolation_covariance, w2_geodesic_covariance

    eps = 1.0
    u = np.array([2.0, 1.0]) / np.sqrt(5.0)
    sigma0, m0 = 4.0 * np.outer(u, u), np.zeros(2)  # rank one: a line
    sigma1, m1 = np.eye(2), np.zeros(2)
    times = np.linspace(0.0, 1.0, 6)
    rows = (("W₂ geodesic", lambda t: w2_geodesic_covariance(sigma0, sigma1, t)),
            (f"entropic, ε = {eps:g}",
             lambda t: entropic_interpolation_covariance(sigma0, sigma1, t, eps)))
    fig, axes = plt.subplots(2, len(times), figsize=(2.4 * len(times), 5.4), squeeze=False,
                             layout="constrained")
    for i, (label, cov) in enumerate(rows):
        for j, t in enumerate(times):
            ax = axes[i, j]
            rng = np.random.default_rng(j)
            x = _ellipse_samples((1 - t) * m0 + t * m1, cov(t), 3000, rng)
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, color=f"C{i}", rasterized=True)
            ax.set_xlim(-5, 5)
            ax.set_ylim(-5, 5)
            _axis_ticks(ax)
            if i == 0:
                ax.set_title(f"t = {t:.1f}")
        axes[i, 0].set_ylabel(label)
    fig.suptitle("EKP App. C Fig. 1: N(m₀, Σ₀) with rank-one Σ₀ to N(0, I)")
    save_figure(fig, out)


def figure_ekp_training(inputs: list[Path], out: Path) -> None:
    """EKP training (Algorithm 1), per toy: the dual D_ε (eq. 12, at the best additive
    constant) and the residual ‖ϕ^(c,ε) − ψ‖ in L²(N(0, I)), raw and centred."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    for i, path in enumerate(inputs):
        hist = pd.read_csv(path)
        label = path.stem.removeprefix("toy-")
        axes[0].plot(hist["step"], hist["dual"], color=f"C{i}", label=label)
        axes[1].plot(hist["step"], hist["residual_centred"], color=f"C{i}")
        axes[2].plot(hist["step"], hist["residual"], color=f"C{i}")
    axes[0].set_title("dual D_ε (eq. 12), batch estimate", fontsize=10)
    axes[1].set_title("‖ϕ^(c,ε) − ψ‖ centred (constant removed)", fontsize=10)
    axes[2].set_title("‖ϕ^(c,ε) − ψ‖ raw", fontsize=10)
    for ax in axes[1:]:
        # Labelled ticks at 1, 2, 5 × 10^k: a log axis spanning under a decade keeps labels.
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(NullFormatter())
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("EKP training (Algorithm 1)")
    save_figure(fig, out)


FIGURES: dict[str, Callable[[list[Path], Path], None]] = {
    "ekp-densities": figure_ekp_densities,
    "ekp-field": figure_ekp_field,
    "ekp-interpolation": figure_ekp_interpolation,
    "ekp-training": figure_ekp_training,
}
TABLES: dict[str, Callable[[list[Path], Path, Path], None]] = {}
