"""Budget curve of the Monge-Ampère flow against its matched MAF baseline (claim M3).

Zhang, E, Wang, arXiv:1809.10188, Table 1 compares converged models (full MNIST, width 1024,
~10² epochs, Fig. 3a). Claim M3 compares at default scale with matched parameters and wall
time. This script shows what a training budget buys each model: one run per model (the
default profile's ``mongeampere.mnist`` and ``mongeampere.maf`` settings from params.yaml,
with ``epochs`` raised to ``--epochs``), validation NLL (nats, logit space; 500 validation
images, not the test split) after every epoch against the training process CPU seconds.

    OMP_NUM_THREADS=1 python benchmarks/mongeampere_budget.py run --model ma --epochs 16 \
        --budget 600 --csv results/tables/mongeampere_budget_ma.csv
    OMP_NUM_THREADS=1 python benchmarks/mongeampere_budget.py run --model maf --epochs 200 \
        --budget 300 --csv results/tables/mongeampere_budget_maf.csv
    python benchmarks/mongeampere_budget.py plot --csv results/tables/mongeampere_budget_*.csv \
        --png results/figures/mongeampere_budget.png --ma-seconds 243

A run stops after ``--epochs`` epochs or once its CPU time passes ``--budget`` seconds.
``--set KEY=VALUE ...`` overrides keys of the model's section (e.g. ``steps=160
epsilon=0.03125``) and ``--label`` names the row; each row also has the claim M5 statistics
(base → data → base max |Δ| of 100 N(0, I) samples, ε·λmax on 8 validation paths).

Claim M4 (Fig. 3b's last frame is N(0, I)) per epoch, for the Monge-Ampère flow:
``m4_std`` is the ledger's statistic itself (the final frame of ``DensityTrainer.flow_path``
for the one-test-image-per-class choice of ``figure_images``, per-pixel std over those
images, pooled as the root of the mean variance); ``latent_std`` and ``train_latent_std``
are the same statistic on 500 validation and 500 training images. Each has a ``*_floor``:
the flow moves a point only along the row space of W₁ (x(t) = x₀ + W₁ᵀu, ``potential.py``),
so with h < d the component of the data orthogonal to it is the latent's unchanged, and
√(tr(P⊥ Cov(x) P⊥)/d) is a lower bound on the pooled std that no training can go below
for that W₁ (the paper's h = 1024 > d = 784 has no such floor; Zhang et al., App. C,
Table 2). ``--fresh-noise`` draws new dequantisation noise for the training images every
epoch (``train_pixels``), as the authors' data loader does (github.com/wangleiphy/
MongeAmpereFlow, ``utils/transform.py``: ``AddUniformNoise`` is a torchvision transform, so
every load draws new noise), instead of the prepared file's one fixed draw (as MAF's loader,
Papamakarios et al. 2017); ``train_latent_std`` stays on the file's draw. ``--save`` writes
the final trainer state (``torch.save``).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from otflows.data.mnist import dequantize, logit_transform
from otflows.methods.mongeampere import make_trainer, negative_log_likelihood
from otflows.methods.mongeampere.diagnostics import path_eigenvalue_range, roundtrip_errors

FIELDS = ["model", "n_parameters", "epoch", "cpu_seconds", "eval_cpu_seconds", "train_nll",
          "validation_nll", "latent_std", "roundtrip_max_abs", "h_lambda_max", "m4_std",
          "m4_floor", "latent_std_floor", "train_latent_std", "train_latent_std_floor"]
STD_FIELDS = FIELDS[-6:]  # the claim M4 statistics (NaN for MAF)
M4_FRAMES, M4_IMAGES = 9, 10  # DensityTrainer._image_extras's defaults (Fig. 3b)
MAF_PAPER_NLL = 1300.5  # Papamakarios et al. 2017, Table 2 (full MNIST; Table 1 of the paper)


def _cfg(model: str, epochs: int, overrides: list[str] = ()) -> dict:
    section = yaml.safe_load(Path("params.yaml").read_text())["mongeampere"]
    task, key = ("density", "mnist") if model == "ma" else ("maf", "maf")
    cfg = {k: v for k, v in section[key].items() if k != "eval_samples"}
    for item in overrides:  # KEY=VALUE, parsed as YAML (e.g. steps=160 epsilon=0.03125)
        k, v = item.split("=", 1)
        cfg[k] = yaml.safe_load(v)
    return {**cfg, "task": task, "epochs": epochs, "monitor": 0}


def _pooled_std(z: np.ndarray) -> float:
    """Per-pixel std over the rows of z ``[n, d]``, pooled as √(mean variance) (claim M4)."""
    return float(np.sqrt(z.var(axis=0, ddof=1).mean()))


def _floor(tr, x: np.ndarray) -> float:
    """√(tr(P⊥ Cov(x) P⊥)/d), P⊥ the projector off the row space of W₁: the pooled std of
    the part of x that the flow leaves unchanged, a lower bound on :func:`_pooled_std` of
    the latents of x (module docstring)."""
    w = tr.potential.weight.detach().double().numpy()
    if w.shape[0] >= w.shape[1]:
        return 0.0
    q = np.linalg.qr(w.T)[0]  # [d, h], orthonormal basis of the row space
    xc = x - x.mean(axis=0)
    off = xc - (xc @ q) @ q.T
    return _pooled_std(off)


@torch.no_grad()
def _scores(tr, val: np.ndarray, test: np.ndarray, train: np.ndarray) -> dict[str, float]:
    """Validation NLL (nats) and, for the Monge-Ampère flow, claim M4's statistics (module
    docstring), the base → data → base max |Δ| of 100 seeded N(0, I) samples and ε·λmax on
    the paths of 8 validation images (claim M5's); NaN for MAF."""
    if not hasattr(tr, "potential"):
        return {"validation_nll": float(-tr.log_density(val).mean()),
                **dict.fromkeys(["roundtrip_max_abs", "h_lambda_max", *STD_FIELDS],
                                float("nan"))}
    x = torch.as_tensor(val, dtype=tr.dtype)
    eps, n = tr.cfg.epsilon, tr.cfg.steps
    nll, out = negative_log_likelihood(tr.potential, x, eps, n)
    base = torch.randn(100, tr.d, generator=torch.Generator().manual_seed(0)).to(tr.dtype)
    err = roundtrip_errors(tr.potential, base, eps, n, "base")["max_abs"]
    _, hi = path_eigenvalue_range(tr.potential, x[:8], eps, n)
    figure = test[tr.figure_images(test.shape[0], M4_IMAGES)]
    final = tr.flow_path(figure, M4_FRAMES)[-1]  # Fig. 3b's last frame, as claim M4 reads it
    return {"validation_nll": nll.double().mean().item(), "roundtrip_max_abs": err,
            "h_lambda_max": eps * hi, "m4_std": _pooled_std(final),
            "m4_floor": _floor(tr, figure),
            "latent_std": _pooled_std(out.x.double().numpy()),
            "latent_std_floor": _floor(tr, val),
            "train_latent_std": _pooled_std(tr.forward_map(train)),
            "train_latent_std_floor": _floor(tr, train)}


def run(a: argparse.Namespace) -> None:
    """Train one model, appending one CSV row per epoch."""
    torch.set_num_threads(1)
    data = dict(np.load(a.data))
    arrays = {k: v for k, v in data.items() if k != "train"}
    tr = make_trainer(_cfg(a.model, a.epochs, a.set), data["train"], a.seed, torch.device("cpu"),
                      arrays=arrays)
    val, train500 = data["validation"][:500], data["train"][:500]
    noise = np.random.default_rng([a.seed, 1]) if a.fresh_noise else None
    path = Path(a.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        if new:
            w.writeheader()
        spent = 0.0
        while tr.step_index < tr.n_steps and spent < a.budget:
            t0 = time.process_time()
            if noise is not None and tr.step_index % tr.steps_per_epoch == 0:
                # A new dequantisation of the training digits each epoch (the authors' loader).
                fresh = logit_transform(dequantize(data["train_pixels"], noise),
                                        float(data["logit_lambda"]))
                tr.train = torch.as_tensor(fresh, dtype=tr.dtype, device=tr.device)
            logs = tr.train_step()
            spent += time.process_time() - t0
            if "epoch" in logs:
                t1 = time.process_time()
                scores = _scores(tr, val, data["test"], train500)
                w.writerow({"model": a.label or a.model, "n_parameters": tr.n_parameters(),
                            "epoch": int(logs["epoch"]), "cpu_seconds": round(spent, 2),
                            "eval_cpu_seconds": round(time.process_time() - t1, 2),
                            "train_nll": logs["train_nll_epoch"], **scores})
                fh.flush()
    if a.save:
        torch.save(tr.state_dict(), a.save)


def _curve(ax, sel: list[dict], key: str, **kw) -> None:
    """One column of ``sel`` against the training CPU seconds, if it has finite values."""
    y = np.array([float(r.get(key) or "nan") for r in sel])
    if np.isfinite(y).any():
        ax.plot([float(r["cpu_seconds"]) for r in sel], y, **kw)


def plot(a: argparse.Namespace) -> None:
    """Validation NLL against training CPU seconds, one line per model; beside it claim
    M4's statistic (10 test images) and the pooled latent std of 500 validation and 500
    training images, each with its row-space floor (dotted), against the same seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    rows = [r for p in a.csv for r in csv.DictReader(Path(p).open())]
    fig, (ax, ax_m4, ax_std) = plt.subplots(1, 3, figsize=(15.0, 4.6), constrained_layout=True,
                                            gridspec_kw={"width_ratios": [3, 2, 2]})
    names = {"ma": "Monge-Ampère flow (default settings)", "maf": "MAF, matched parameters"}
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):  # CSV order
        sel = [r for r in rows if r["model"] == model]
        name = names.get(model, f"Monge-Ampère flow ({model})")
        t = [float(r["cpu_seconds"]) for r in sel]
        v = [float(r["validation_nll"]) for r in sel]
        ax.plot(t, v, marker=".", color=f"C{i}",
                label=f"{name}, {int(sel[0]['n_parameters']):,} params")
        _curve(ax_m4, sel, "m4_std", marker=".", color=f"C{i}", label=name)
        _curve(ax_m4, sel, "m4_floor", ls=":", color=f"C{i}", label=f"{model}: row-space floor")
        _curve(ax_std, sel, "latent_std", color=f"C{i}", label=f"{model}: validation")
        _curve(ax_std, sel, "train_latent_std", ls="--", color=f"C{i}",
               label=f"{model}: training")
        _curve(ax_std, sel, "latent_std_floor", ls=":", color=f"C{i}",
               label=f"{model}: floors (validation, training)")
        _curve(ax_std, sel, "train_latent_std_floor", ls=":", color=f"C{i}")
    if a.ma_seconds:
        ax.axvline(a.ma_seconds, color="k", ls=":", lw=1,
                   label=f"default Monge-Ampère run ({a.ma_seconds:.0f} s)")
    ax.axhline(MAF_PAPER_NLL, color="C3", ls="--", lw=1,
               label=f"MAF, paper (full MNIST): {MAF_PAPER_NLL}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training CPU seconds (one thread)")
    ax.set_ylabel("validation NLL (nats, logit space)")
    ax.set_ylim(top=min(4000.0, max(float(r["validation_nll"]) for r in rows)))
    ax.legend(fontsize=7)
    ax.set_title("NLL per training budget", fontsize=9)
    for panel, what in ((ax_m4, "claim M4: final frame, one test image per class"),
                        (ax_std, "pooled latent std, 500 images")):
        panel.axhspan(0.8, 1.2, color="C2", alpha=0.2, label="N(0, I) ± 20 % (claim M4)")
        if a.ma_seconds:
            panel.axvline(a.ma_seconds, color="k", ls=":", lw=1, label="default run")
        panel.set_xlim(left=0)
        panel.set_xlabel("training CPU seconds (one thread)")
        panel.set_ylabel("per-pixel std of the latents")
        panel.set_ylim(0.7, 2.0)  # the first epochs (std up to ~3) lie above
        panel.legend(fontsize=7)
        panel.set_title(what, fontsize=9)
    fig.suptitle("mongeampere_budget: mnist5k", fontsize=10)
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=110)


def main() -> None:
    """Command line: ``run`` or ``plot``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", choices=("ma", "maf"), required=True)
    r.add_argument("--epochs", type=int, required=True)
    r.add_argument("--budget", type=float, default=600.0, help="CPU seconds")
    r.add_argument("--data", default="data/processed/mnist5k.npz")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--csv", required=True)
    r.add_argument("--label", default="", help="the CSV's model column (default --model)")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override params.yaml keys of the model's section")
    r.add_argument("--fresh-noise", action="store_true",
                   help="new dequantisation noise for the training images every epoch")
    r.add_argument("--save", default="", help="write the final trainer state here")
    r.set_defaults(func=run)
    q = sub.add_parser("plot")
    q.add_argument("--csv", nargs="+", required=True)
    q.add_argument("--png", required=True)
    q.add_argument("--ma-seconds", type=float, default=0.0,
                   help="train_seconds of the default Monge-Ampère run (a vertical line)")
    q.set_defaults(func=plot)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
