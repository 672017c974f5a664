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
        --png results/figures/mongeampere_budget.png

A run stops after ``--epochs`` epochs or once its CPU time passes ``--budget`` seconds.
``--set KEY=VALUE ...`` overrides keys of the model's section (e.g. ``steps=160
epsilon=0.03125``) and ``--label`` names the row; each row also has the claim M5 statistics
(base → data → base max |Δ| of 100 N(0, I) samples, ε·λmax on 8 validation paths).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from otflows.methods.mongeampere import make_trainer, negative_log_likelihood
from otflows.methods.mongeampere.diagnostics import path_eigenvalue_range, roundtrip_errors

FIELDS = ["model", "n_parameters", "epoch", "cpu_seconds", "train_nll", "validation_nll",
          "latent_std", "roundtrip_max_abs", "h_lambda_max"]
MAF_PAPER_NLL = 1300.5  # Papamakarios et al. 2017, Table 2 (full MNIST; Table 1 of the paper)


def _cfg(model: str, epochs: int, overrides: list[str] = ()) -> dict:
    section = yaml.safe_load(Path("params.yaml").read_text())["mongeampere"]
    task, key = ("density", "mnist") if model == "ma" else ("maf", "maf")
    cfg = {k: v for k, v in section[key].items() if k != "eval_samples"}
    for item in overrides:  # KEY=VALUE, parsed as YAML (e.g. steps=160 epsilon=0.03125)
        k, v = item.split("=", 1)
        cfg[k] = yaml.safe_load(v)
    return {**cfg, "task": task, "epochs": epochs, "monitor": 0}


@torch.no_grad()
def _scores(tr, val: np.ndarray) -> tuple[float, float, float, float]:
    """Validation NLL (nats) and, for the Monge-Ampère flow, the pooled per-pixel std of the
    validation latents (claim M4's statistic), the base → data → base max |Δ| of 100 seeded
    N(0, I) samples and ε·λmax on the paths of 8 validation images (claim M5's; NaN for
    MAF)."""
    if not hasattr(tr, "potential"):
        return float(-tr.log_density(val).mean()), *(float("nan"),) * 3
    x = torch.as_tensor(val, dtype=tr.dtype)
    eps, n = tr.cfg.epsilon, tr.cfg.steps
    nll, out = negative_log_likelihood(tr.potential, x, eps, n)
    z = out.x.double().numpy()
    base = torch.randn(100, tr.d, generator=torch.Generator().manual_seed(0)).to(tr.dtype)
    err = roundtrip_errors(tr.potential, base, eps, n, "base")["max_abs"]
    _, hi = path_eigenvalue_range(tr.potential, x[:8], eps, n)
    return (nll.double().mean().item(), float(np.sqrt(z.var(axis=0, ddof=1).mean())), err,
            eps * hi)


def run(a: argparse.Namespace) -> None:
    """Train one model, appending one CSV row per epoch."""
    torch.set_num_threads(1)
    data = dict(np.load(a.data))
    arrays = {k: v for k, v in data.items() if k != "train"}
    tr = make_trainer(_cfg(a.model, a.epochs, a.set), data["train"], a.seed, torch.device("cpu"),
                      arrays=arrays)
    val = data["validation"][:500]
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
            logs = tr.train_step()
            spent += time.process_time() - t0
            if "epoch" in logs:
                nll, std, err, hl = _scores(tr, val)
                w.writerow({"model": a.label or a.model, "n_parameters": tr.n_parameters(),
                            "epoch": int(logs["epoch"]), "cpu_seconds": round(spent, 2),
                            "train_nll": logs["train_nll_epoch"], "validation_nll": nll,
                            "latent_std": std, "roundtrip_max_abs": err,
                            "h_lambda_max": hl})
                fh.flush()


def plot(a: argparse.Namespace) -> None:
    """Validation NLL against training CPU seconds, one line per model; beside it the
    Monge-Ampère validation latents' pooled per-pixel std (claim M4: within 0.8–1.2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for p in a.csv for r in csv.DictReader(Path(p).open())]
    fig, (ax, ax_std) = plt.subplots(1, 2, figsize=(11.0, 4.2), constrained_layout=True,
                                     gridspec_kw={"width_ratios": [3, 2]})
    names = {"ma": "Monge-Ampère flow (default settings)", "maf": "MAF, matched parameters"}
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):  # CSV order
        sel = [r for r in rows if r["model"] == model]
        name = names.get(model, f"Monge-Ampère flow ({model})")
        t = [float(r["cpu_seconds"]) for r in sel]
        v = [float(r["validation_nll"]) for r in sel]
        ax.plot(t, v, marker=".", color=f"C{i}",
                label=f"{name}, {int(sel[0]['n_parameters']):,} params")
        std = [float(r.get("latent_std") or "nan") for r in sel]
        if np.isfinite(std).any():
            ax_std.plot(t, std, marker=".", color=f"C{i}", label=name)
    if a.ma_seconds:
        ax.axvline(a.ma_seconds, color="k", ls=":", lw=1,
                   label=f"default Monge-Ampère run ({a.ma_seconds:.0f} s)")
    ax.axhline(MAF_PAPER_NLL, color="C3", ls="--", lw=1,
               label=f"MAF, paper (full MNIST): {MAF_PAPER_NLL}")
    ax.set_xscale("log")
    ax.set_xlabel("training CPU seconds (one thread)")
    ax.set_ylabel("validation NLL (nats, logit space)")
    ax.set_ylim(top=min(4000.0, max(float(r["validation_nll"]) for r in rows)))
    ax.legend(fontsize=7)
    ax.set_title("NLL per training budget", fontsize=9)
    ax_std.axhspan(0.8, 1.2, color="C2", alpha=0.2, label="N(0, I) ± 20 % (claim M4)")
    if a.ma_seconds:
        ax_std.axvline(a.ma_seconds, color="k", ls=":", lw=1)
    ax_std.set_xlim(left=0)
    ax_std.set_xlabel("training CPU seconds (one thread)")
    ax_std.set_ylabel("std of validation latents (pooled per pixel)")
    ax_std.legend(fontsize=7)
    ax_std.set_title("Monge-Ampère latents (Fig. 3b's last frame)", fontsize=9)
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
