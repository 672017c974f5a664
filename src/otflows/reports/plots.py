"""Figures (PNG and SVG side by side) from prepared data and evaluated runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from otflows.pipeline.checkpoint import atomic_write  # noqa: E402

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
    values = sorted({_run_value(r, key) for r in runs})
    methods = [m for m in ("otflow", "jko") if any(r["method"] == m for r in runs)]
    fig, axes = plt.subplots(len(methods), len(values),
                             figsize=(2.6 * len(values), 2.6 * len(methods)), squeeze=False)
    lim = _limits(runs[0]["test"])
    for run in runs:
        i = methods.index(run["method"])
        j = values.index(_run_value(run, key))
        _hist(axes[i, j], run["samples"], lim)
        if i == 0:
            axes[i, j].set_title(f"{label} = {values[j]:g}")
        if j == 0:
            axes[i, j].set_ylabel(APPROACH.get(run["method"], run["method"]))
    fig.suptitle(title)
    save_figure(fig, out)


_SWEEP_FIELDS = {"a": "alpha", "m": "width"}


def _run_value(run: dict, key: str) -> float:
    """The run's alpha (key "a") or width ("m"): saved with its samples, else from its name."""
    field = _SWEEP_FIELDS[key]
    return float(run[field]) if field in run else _sweep_value(run["experiment"], key)


def _sweep_value(experiment: str, key: str) -> float:
    # Experiment names end in -a<alpha> or -m<width> (see otflows.pipeline.experiments).
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


def _image_grid(ax: plt.Axes, images: np.ndarray, cols: int) -> None:
    """Tile grey images ``[n, 784]`` (values in [0, 1]) into one picture, ``cols`` per row."""
    n = images.shape[0]
    rows = -(-n // cols)
    canvas = np.ones((rows * 29 + 1, cols * 29 + 1))
    for i, img in enumerate(images.reshape(n, 28, 28)):
        r, c = divmod(i, cols)
        canvas[1 + 29 * r : 29 * (r + 1), 1 + 29 * c : 29 * (c + 1)] = img
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.axis("off")


def figure_vae(inputs: list[Path], out: Path) -> None:
    """MNIST VAE: test images, their reconstructions (decoder of the latent mean) and
    decoded samples of z ~ N(0, I) (pixel probabilities)."""
    run = _load_runs(inputs[:1])[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    _image_grid(axes[0], run["originals"][:32], 8)
    axes[0].set_title("test images")
    _image_grid(axes[1], run["reconstructions"][:32], 8)
    axes[1].set_title("reconstructions")
    _image_grid(axes[2], run["samples"][:64], 8)
    axes[2].set_title("decoded z ~ N(0, I)")
    fig.suptitle(out.stem)
    save_figure(fig, out)


def _slice_hist(ax: plt.Axes, x: np.ndarray | None, cols: tuple[int, int], title: str) -> None:
    if x is None:
        ax.text(0.5, 0.5, "not provided\nby the trainer", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.hist2d(x[:, cols[0]], x[:, cols[1]], bins=33, range=[[-4, 4], [-4, 4]],
                  cmap="viridis")
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=8)


def figure_miniboone_slices(inputs: list[Path], out: Path) -> None:
    """JKO-Flow Fig. 4: MINIBOONE 2-D slices (16, 17) and (28, 29) of the data x ~ ρ0, the
    forward flow f(x) (``forward`` in the samples file, when the trainer provides it) and
    the generated samples f⁻¹(y); rows single shot and JKO-Flow."""
    from otflows.reports.tables import MINIBOONE_SLICES

    runs = sorted(_load_runs(inputs), key=lambda r: r["method"] != "otflow")
    panels = [(label, cols, what) for label, cols in MINIBOONE_SLICES.items()
              for what in ("test", "forward", "samples")]
    names = {"test": "x ~ ρ0", "forward": "f(x)", "samples": "f⁻¹(y)"}
    fig, axes = plt.subplots(len(runs), len(panels), figsize=(2.2 * len(panels),
                                                             2.4 * len(runs)), squeeze=False)
    for i, run in enumerate(runs):
        for j, (label, cols, what) in enumerate(panels):
            x = run.get(what) if max(cols) < run["test"].shape[1] else None
            _slice_hist(axes[i, j], x, cols, f"{names[what]}, dims {label}")
        axes[i, 0].set_ylabel(APPROACH.get(run["method"], run["method"]))
    fig.suptitle(f"{out.stem}: {', '.join(sorted({r['experiment'] for r in runs}))}")
    save_figure(fig, out)


def figure_miniboone_iterations(inputs: list[Path], out: Path) -> None:
    """JKO-Flow Fig. 5: MMD² vs JKO iteration on the slices (16, 17) and (28, 29), one line
    per α. Inputs: the JKO runs' samples (``.npz``) and metrics (``.json``, for K). Needs
    ``iterate_samples`` ``[K, n, d]`` (samples after maps 1..k) in the samples file; a run
    without it shows only its final MMD² at iteration K."""
    import json

    from otflows.metrics.mmd import mmd2_unbiased
    from otflows.reports.tables import MINIBOONE_SLICES

    meta = {(p.parent.name, p.stem): json.loads(p.read_text()) for p in inputs
            if p.suffix == ".json"}
    runs = sorted(_load_runs([p for p in inputs if p.suffix == ".npz"]),
                  key=lambda r: _sweep_value(r["experiment"], "a"))
    fig, axes = plt.subplots(1, len(MINIBOONE_SLICES), figsize=(5 * len(MINIBOONE_SLICES), 3.6),
                             squeeze=False)
    missing = []
    for ax, (label, cols) in zip(axes[0], MINIBOONE_SLICES.items(), strict=True):
        for run in runs:
            if max(cols) >= run["test"].shape[1]:
                continue
            test = run["test"][:, cols]
            alpha = _sweep_value(run["experiment"], "a")
            if "iterate_samples" in run:
                its = run["iterate_samples"]
                ks = np.arange(1, its.shape[0] + 1)
                vals = [mmd2_unbiased(s[:, cols], test) for s in its]
                ax.semilogy(ks, np.abs(vals), marker="o", ms=3, label=f"α = {alpha:g}")
            else:
                missing.append(run["experiment"])
                k = meta.get((run["method"], run["experiment"]), {}).get("K", 1)
                ax.semilogy([k],
                            [abs(mmd2_unbiased(run["samples"][:, cols], test))], marker="s",
                            ls="", label=f"α = {alpha:g} (final only)")
        ax.set_xlabel("JKO-Flow iteration")
        ax.set_ylabel("|MMD²|")
        ax.set_title(f"dims {label}")
        ax.legend(fontsize=7)
    title = f"{out.stem}: MMD² per JKO iteration"
    if missing:
        title += "\n(per-iteration samples not provided by the trainer: final values only)"
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out)


# --------------------------------------------------------------------------- EKP
# Entropy-Kantorovich potentials (Finlay et al., arXiv:2006.06033): Figs. 1-2, App. C Fig. 1.
EKP_TRUE_SAMPLES = 1_000_000  # fresh toy draws behind the "true log-density" row of Fig. 2
EKP_LOGP_RANGE = 8.0  # heat maps show log-densities within this many nats of the maximum


def _toy_name(run: dict) -> str:
    return run["experiment"].removeprefix("toy-")


def _logp_image(ax: plt.Axes, gx: np.ndarray, gy: np.ndarray, logp: np.ndarray) -> None:
    top = np.nanmax(logp[np.isfinite(logp)])
    ax.pcolormesh(gx, gy, np.clip(logp, top - EKP_LOGP_RANGE, top), cmap="viridis",
                  shading="auto", rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")


def _histogram_logp(name: str, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """log of a 2-D histogram density of fresh toy draws on the cell centres (gx, gy)."""
    from otflows.data.toy import sample_toy

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
    runs = [r for r in _load_runs(inputs) if "grid_logp" in r]
    if not runs:
        raise ValueError(f"ekp-densities: none of {inputs} holds grid_logp; evaluate the EKP "
                         f"runs with a density grid")
    fig, axes = plt.subplots(3, len(runs), figsize=(2.4 * len(runs), 7.4), squeeze=False)
    for j, run in enumerate(runs):
        gx, gy = run["grid_x"], run["grid_y"]
        _logp_image(axes[0, j], gx, gy, _histogram_logp(_toy_name(run), gx, gy))
        axes[0, j].set_title(_toy_name(run))
        _logp_image(axes[1, j], gx, gy, run["grid_logp"])
        x = run["samples"]
        axes[2, j].hist2d(x[:, 0], x[:, 1], bins=120, range=[[gx[0], gx[-1]], [gy[0], gy[-1]]],
                          cmap="viridis", rasterized=True)
        axes[2, j].set_xticks([])
        axes[2, j].set_yticks([])
        axes[2, j].set_aspect("equal")
    for i, name in enumerate(("true log-density", "log ρ₀^ε (eq. 17)", "samples")):
        axes[i, 0].set_ylabel(name)
    fig.suptitle("EKP Fig. 2: true log-density, estimated log-density, generated samples")
    save_figure(fig, out)


def figure_ekp_field(inputs: list[Path], out: Path) -> None:
    """EKP Fig. 1: v_t (arrows) over log ρ_t (heat map) at t = 0, .25, .5, .75, 1; one run."""
    if len(inputs) != 1:
        raise ValueError(f"ekp-field draws one run; got {len(inputs)} inputs")
    run = _load_runs(inputs)[0]
    times = run["flow_t"]
    fig, axes = plt.subplots(1, len(times), figsize=(3.0 * len(times), 3.2), squeeze=False)
    for i, t in enumerate(times):
        ax = axes[0, i]
        _logp_image(ax, run["flow_x"], run["flow_y"], run["flow_logp"][i])
        v = run["flow_velocity"][i]
        ax.quiver(run["flow_arrow_x"], run["flow_arrow_y"], v[..., 0], v[..., 1],
                  color="black", angles="xy", width=0.004)
        ax.set_title(f"t = {t:g}")
    fig.suptitle(f"EKP Fig. 1 ({_toy_name(run)}): v_t over log ρ_t, data at t = 0, "
                 f"N(0, I) at t = 1")
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
    fig, axes = plt.subplots(2, len(times), figsize=(2.4 * len(times), 5.0), squeeze=False)
    for i, (label, cov) in enumerate(rows):
        for j, t in enumerate(times):
            ax = axes[i, j]
            rng = np.random.default_rng(j)
            x = _ellipse_samples((1 - t) * m0 + t * m1, cov(t), 3000, rng)
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, color=f"C{i}", rasterized=True)
            ax.set_xlim(-5, 5)
            ax.set_ylim(-5, 5)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t:.1f}")
        axes[i, 0].set_ylabel(label)
    fig.suptitle("EKP App. C Fig. 1: N(m₀, Σ₀) with rank-one Σ₀ to N(0, I)")
    save_figure(fig, out)


def figure_ekp_training(inputs: list[Path], out: Path) -> None:
    """EKP training (Algorithm 1), per toy: the dual D_ε (eq. 12, at the best additive
    constant) and the residual ‖ϕ^(c,ε) − ψ‖ in L²(N(0, I)), raw and centred."""
    import pandas as pd

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, path in enumerate(inputs):
        hist = pd.read_csv(path)
        label = path.stem.removeprefix("toy-")
        axes[0].plot(hist["step"], hist["dual"], color=f"C{i}", label=label)
        axes[1].plot(hist["step"], hist["residual_centred"], color=f"C{i}")
        axes[2].plot(hist["step"], hist["residual"], color=f"C{i}")
    axes[0].set_title("dual D_ε (eq. 12), batch estimate")
    axes[0].set_yscale("symlog")
    axes[1].set_title("‖ϕ^(c,ε) − ψ‖ centred (constant removed)")
    axes[1].set_yscale("log")
    axes[2].set_title("‖ϕ^(c,ε) − ψ‖ raw")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[0].legend(fontsize=7)
    fig.suptitle("EKP training (Algorithm 1)")
    save_figure(fig, out)


# ----------------------------------------------------------------- Monge-Ampère flow
# Zhang, E, Wang, arXiv:1809.10188: Fig. 3a (NLL per epoch), Fig. 3b (images flowing to the
# Gaussian), Fig. 4 (variational free energy per epoch, exact value as a line, generated spins).
# Baselines of Fig. 3a / Table 1: Papamakarios et al. 2017, Table 2 (standard Gaussian base).
MNIST_BASELINES_NLL = {"MADE": 1380.8, "Real NVP": 1323.2, "MAF": 1300.5}
MONGEAMPERE_PAPER_NLL = 1255.5


def _spin_tile(spins: np.ndarray, cols: int = 5) -> np.ndarray:
    """Tile spin configurations ``[n, L, L]`` (±1) into one image, one pixel of border."""
    n, L = spins.shape[0], spins.shape[1]
    rows = -(-n // cols)
    canvas = np.full((rows * (L + 1) + 1, cols * (L + 1) + 1), 0.5)
    for i, s in enumerate(spins):
        r, c = divmod(i, cols)
        canvas[1 + (L + 1) * r : (L + 1) * (r + 1), 1 + (L + 1) * c : (L + 1) * (c + 1)] = \
            (s + 1) / 2
    return canvas


def figure_mongeampere_nll(inputs: list[Path], out: Path) -> None:
    """Monge-Ampère Fig. 3a: train and test NLL (nats, logit space) per epoch, with the flow
    baselines of MAF's Table 2 and the paper's test NLL as horizontal lines."""
    run = _load_runs(inputs[:1])[0]
    curve = run.get("epoch_curve")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if curve is not None and len(curve):
        ax.plot(curve[:, 0], curve[:, 1], marker=".", label="train (running mean over the epoch)")
        if np.isfinite(curve[:, 2]).any():
            ax.plot(curve[:, 0], curve[:, 2], marker=".", label="test")
        ax.set_xscale("log")
    for (name, value), color in zip(MNIST_BASELINES_NLL.items(), ("C2", "C3", "C4"),
                                    strict=True):
        ax.axhline(value, color=color, ls="--", lw=1, label=f"{name} ({value})")
    ax.axhline(MONGEAMPERE_PAPER_NLL, color="k", ls=":", lw=1,
               label=f"Monge-Ampère, paper ({MONGEAMPERE_PAPER_NLL})")
    values = curve[:, 1:][np.isfinite(curve[:, 1:])] if curve is not None else np.zeros(0)
    if values.size and values.max() > 2000.0:  # far from the baselines: a log axis shows both
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (nats, logit space)")
    ax.legend(fontsize=7)
    ax.set_title(f"{out.stem}: {run['experiment']}", fontsize=9)
    save_figure(fig, out)


def figure_mongeampere_flow(inputs: list[Path], out: Path) -> None:
    """Monge-Ampère Fig. 3b: test images (top row) integrated back to the Gaussian (bottom
    row); rows are intermediate RK4 steps, shown in pixel space (inverse logit)."""
    import math

    run = _load_runs(inputs[:1])[0]
    frames = run["flow_pixels"]  # [frames, images, d]
    n_frames, n_images, d = frames.shape
    side = int(round(math.sqrt(d)))
    fig, axes = plt.subplots(n_frames, n_images, figsize=(1.1 * n_images, 1.1 * n_frames),
                             squeeze=False)
    for i in range(n_frames):
        for j in range(n_images):
            axes[i, j].imshow(frames[i, j].reshape(side, side), cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")
            axes[i, j].axis("off")
    fig.suptitle(f"{out.stem}: {run['experiment']}, data (top) → N(0, I) (bottom)",
                 fontsize=9)
    save_figure(fig, out)


def figure_mongeampere_ising(inputs: list[Path], out: Path) -> None:
    """Monge-Ampère Fig. 4: variational free energy per site per training step, the exact
    value (Kaufman + Hubbard–Stratonovich) as a red line, and generated spin configurations
    p(s|x) = Πσ(2sᵢxᵢ) at training stages as insets; relative error in the title."""
    import json
    import math

    run = _load_runs([p for p in inputs if p.suffix == ".npz"][:1])[0]
    metrics = [json.loads(p.read_text()) for p in inputs if p.suffix == ".json"]
    n = float(run["n_sites"])
    curve = run["loss_curve"] / n
    exact = float(run["exact_free_energy"]) / n
    stages = list(run["snapshot_spins"]) if "snapshot_spins" in run else []
    steps = list(run["snapshot_steps"]) if "snapshot_steps" in run else []
    stages.append(run["spins"])
    steps.append(len(curve))
    fig = plt.figure(figsize=(2.0 * max(4, len(stages)), 6.0))
    grid = fig.add_gridspec(2, len(stages), height_ratios=[1, 2.2])
    for k, (spins, step) in enumerate(zip(stages, steps, strict=True)):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(_spin_tile(np.asarray(spins)[:25]), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(f"step {int(step)}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    ax.plot(np.arange(1, len(curve) + 1), curve, lw=0.8, label="variational (batch mean)")
    ax.axhline(exact, color="r", lw=2, label=f"exact −ln Z / N = {exact:.5f}")
    if metrics:  # the evaluation's estimate (many samples), else the last 10% of steps
        final = metrics[0]["variational_free_energy_per_site"]
        rel, how = metrics[0]["relative_error"], "evaluated"
    else:
        final = curve[-max(1, len(curve) // 10):].mean()
        rel, how = (final - exact) / abs(exact), "last 10% of steps"
    ax.axhline(final, color="C1", ls="--", lw=1, label=f"variational, {how}: {final:.5f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("free energy per site (nats)")
    ax.legend(fontsize=8)
    L = int(round(math.sqrt(n)))
    fig.suptitle(f"{out.stem}: {L}×{L} periodic Ising at K_c, relative error {rel:.2%} "
                 f"({how})", fontsize=9)
    save_figure(fig, out)


def figure_mongeampere_spins(inputs: list[Path], out: Path) -> None:
    """Generated Ising configurations of the trained flow: a 5×5 tile of spins drawn by
    p(s|x) = Πσ(2sᵢxᵢ) from x ~ p(x, T) (App. B; the insets of Fig. 4)."""
    run = _load_runs(inputs[:1])[0]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(_spin_tile(run["spins"][:25]), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"{out.stem}: {run['experiment']}", fontsize=9)
    save_figure(fig, out)


FIGURES: dict[str, Callable[[list[Path], Path], None]] = {
    "toys": figure_toys,
    "jko-alpha": figure_jko_alpha,
    "jko-width": figure_jko_width,
    "density": figure_density,
    "vae": figure_vae,
    "miniboone-slices": figure_miniboone_slices,
    "miniboone-iterations": figure_miniboone_iterations,
    "ekp-densities": figure_ekp_densities,
    "ekp-field": figure_ekp_field,
    "ekp-interpolation": figure_ekp_interpolation,
    "ekp-training": figure_ekp_training,
    "mongeampere-nll": figure_mongeampere_nll,
    "mongeampere-flow": figure_mongeampere_flow,
    "mongeampere-ising": figure_mongeampere_ising,
    "mongeampere-spins": figure_mongeampere_spins,
}
