"""Causes of JKO-Flow's MMD² at α = 5 (issue 17, claim J4): metric floor, seed spread, batch
size and Adam reuse, each measured on its own at (about) equal CPU.

``floor``: MMD² (kernel exp(−‖x−y‖²), unbiased) between two independent draws of each toy at
the evaluation's sample sizes: the spread of the metric itself for a perfect model.
``run``: train JKO-Flow (K subproblems, ``methods/jko.py``) at one setting and seed; report
MMD² after subproblem 1 (= single shot) and K against (a) the pipeline's test split (2000
points, ``eval_samples`` generated) and (b) a fresh 6000-point draw with 6000 generated (the
published toy driver's evaluation size, TrainToy_JKOflow.py: 6000 vs 6000), and the training
CPU seconds. ``--reuse-adam`` keeps one Adam across subproblems (the published JKO-Flow
driver creates its optimiser once, before the JKO loop) instead of a fresh one per subproblem.

    OMP_NUM_THREADS=1 python benchmarks/jko_causes.py floor
    OMP_NUM_THREADS=1 python benchmarks/jko_causes.py run --dataset 2spirals --batch 250 \
        --iters 200 --seeds 0 1 --csv results/tables/jko_causes.csv
    python benchmarks/jko_causes.py plot --csv results/tables/jko_causes.csv \
        --png results/figures/jko_causes.png
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch
from jko_budget import append_row  # same folder: the budget curves' CSV writer

from otflows.data.toy import sample_toy
from otflows.methods.jko import JKOTrainer
from otflows.methods.otflow import OTFlowConfig, pull_back
from otflows.metrics.mmd import mmd2_unbiased

TOYS = ["checkerboard", "2spirals", "swissroll", "8gaussians", "circles", "pinwheel", "moons"]
FIELDS = ["dataset", "batch", "iters", "lr", "halve_every", "reuse_adam", "seed", "single_2000",
          "jko_2000", "single_6000", "jko_6000", "per_iteration_2000", "train_cpu_s"]


class _ReusedAdamJKO(JKOTrainer):
    """JKO-Flow whose Adam (moments and step count) carries over across subproblems."""

    def _new_optimizer(self) -> torch.optim.Adam:
        if getattr(self, "optimizer", None) is not None:
            return self.optimizer
        return super()._new_optimizer()


def floor(a: argparse.Namespace) -> None:
    """Mean and spread of MMD² between independent draws of each toy (a perfect model)."""
    for n in a.sizes:
        for ds in a.datasets:
            v = np.array([mmd2_unbiased(sample_toy(ds, n, np.random.default_rng(10_000 + 2 * r)),
                                        sample_toy(ds, n, np.random.default_rng(10_001 + 2 * r)),
                                        1.0) for r in range(a.reps)])
            print(f"n = m = {n:5d}  {ds:13s} mean {v.mean():+.2e}  sd {v.std(ddof=1):.2e}  "
                  f"max {v.max():.2e}  ({a.reps} pairs)", flush=True)


def _config(a: argparse.Namespace) -> dict:
    # the default profile's otflow section (params.yaml) but for the settings under test
    return {"width": 16, "n_layers": 2, "rank": 10, "nt": 4, "nt_eval": 8, "alpha": 5.0,
            "alpha_L": 1.0, "alpha_R": 0.5, "lr": a.lr, "weight_decay": 0.0,
            "batch_size": a.batch, "iters": a.iters, "K": a.K, "dtype": "float64"}


def point(a: argparse.Namespace, seed: int) -> dict:
    """One run: train, then MMD² after subproblem 1 and K at both evaluation sizes."""
    data = np.load(Path(a.data_dir) / f"{a.dataset}.npz")
    cfg = OTFlowConfig.from_dict(_config(a), "jko")
    cls = _ReusedAdamJKO if a.reuse_adam else JKOTrainer
    trainer = cls(cfg, data["train"], seed, torch.device("cpu"))
    start = time.process_time()
    while trainer.step_index < trainer.n_steps:
        local = trainer.step_index % a.iters  # the schedule restarts with each subproblem
        for group in trainer.optimizer.param_groups:
            group["lr"] = a.lr * (0.5 ** (local // a.halve_every) if a.halve_every else 1.0)
        trainer.train_step()
    cpu = time.process_time() - start
    ev = trainer.evaluate(data["test"], 2000, seed)
    m2000 = [mmd2_unbiased(s, data["test"], 1.0) for s in ev.extras["iterate_samples"]]
    big = sample_toy(a.dataset, 6000, np.random.default_rng(99_000 + seed))
    y = torch.randn(6000, 2, generator=torch.Generator().manual_seed(50_000 + seed),
                    dtype=torch.float64)
    maps = trainer.final_potentials()
    with torch.no_grad():
        m6000 = [mmd2_unbiased(pull_back(maps[:k], y, cfg.nt_eval).z.numpy(), big, 1.0)
                 for k in (1, len(maps))]
    return {"dataset": a.dataset, "batch": a.batch, "iters": a.iters, "lr": a.lr,
            "halve_every": a.halve_every, "reuse_adam": int(a.reuse_adam), "seed": seed,
            "single_2000": m2000[0], "jko_2000": m2000[-1], "single_6000": m6000[0],
            "jko_6000": m6000[-1],
            "per_iteration_2000": " ".join(f"{v:.2e}" for v in m2000),
            "train_cpu_s": round(cpu, 1)}


def run(a: argparse.Namespace) -> None:
    """Train each seed at one setting; append a row per seed to the CSV."""
    path = Path(a.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        row = point(a, seed)
        append_row(path, FIELDS, row)
        print(" ".join(f"{k}={v:.2e}" if isinstance(v, float) and k != "lr" else f"{k}={v}"
                       for k, v in row.items()), flush=True)


def _setting(r: dict) -> str:
    if int(r["reuse_adam"]):
        return "one Adam\nreused"
    if int(r["batch"]) != 250:
        return f"batch {r['batch']}\n× {r['iters']} steps"
    if int(r["halve_every"]):
        return f"lr halved\nevery {r['halve_every']}"
    return "default\n(b 250 × 200)" if int(r["iters"]) == 200 else f"{r['iters']} steps\n(2× CPU)"


def plot(a: argparse.Namespace) -> None:
    """JKO-Flow MMD² per setting and seed, both evaluations, the floor and J4's threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(a.csv) as f:
        rows = list(csv.DictReader(f))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    settings = list(dict.fromkeys(_setting(r) for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.6 * len(datasets), 4.6),
                             squeeze=False, constrained_layout=True)
    for ax, ds in zip(axes[0], datasets, strict=True):
        null = [mmd2_unbiased(sample_toy(ds, 2000, np.random.default_rng(10_000 + 2 * r)),
                              sample_toy(ds, 2000, np.random.default_rng(10_001 + 2 * r)), 1.0)
                for r in range(a.floor_reps)]
        ax.axhspan(1e-5, 2 * np.std(null, ddof=1), color="0.85",
                   label="metric floor: 2 sd of MMD² between two draws of the data (2000/2000)")
        ax.axhline(1e-3, color="k", lw=0.9, ls=":", label="J4 threshold 1e-3")
        for r in (r for r in rows if r["dataset"] == ds):
            x = settings.index(_setting(r)) + (0.12 if r["seed"] == "1" else -0.12)
            cpu = float(r["train_cpu_s"])
            ax.plot(x, float(r["jko_2000"]), "o", color=f"C{r['seed']}")
            ax.plot(x, float(r["jko_6000"]), "s", color=f"C{r['seed']}", mfc="none")
            ax.annotate(f"{cpu:.0f}s", (x, float(r["jko_2000"])), fontsize=7,
                        xytext=(4, 0), textcoords="offset points", va="center")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1e-2)
        ax.set_xticks(range(len(settings)), settings, fontsize=8)
        ax.set_ylabel("JKO-Flow MMD² at α = 5, K = 5")
        ax.set_title(f"{ds} (labels: training CPU s)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    marks = [plt.Line2D([], [], ls="", marker="o", color="C0", label="seed 0"),
             plt.Line2D([], [], ls="", marker="o", color="C1", label="seed 1"),
             plt.Line2D([], [], ls="", marker="o", color="0.3",
                        label="pipeline's evaluation: 2000 generated vs the 2000-point test split"),
             plt.Line2D([], [], ls="", marker="s", mfc="none", color="0.3",
                        label="6000 generated vs 6000 fresh data (published driver's size)")]
    handles, _ = axes[0][0].get_legend_handles_labels()
    fig.legend(handles=handles + marks, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("What JKO-Flow's MMD² at α = 5 depends on (benchmarks/jko_causes.py)")
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=110)
    print(f"wrote {a.png}")


def main() -> None:
    """Command line: ``floor``, ``run`` or ``plot``."""
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("floor")
    f.add_argument("--datasets", nargs="+", default=TOYS)
    f.add_argument("--sizes", nargs="+", type=int, default=[2000, 6000])
    f.add_argument("--reps", type=int, default=10)
    r = sub.add_parser("run")
    r.add_argument("--dataset", required=True)
    r.add_argument("--batch", type=int, default=250)
    r.add_argument("--iters", type=int, default=200)
    r.add_argument("--lr", type=float, default=0.05)
    r.add_argument("--halve-every", type=int, default=0,
                   help="halve lr every H steps of each subproblem (0: constant)")
    r.add_argument("--K", type=int, default=5)
    r.add_argument("--reuse-adam", action="store_true")
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--data-dir", default=os.path.join("data", "processed", "toy"))
    r.add_argument("--csv", required=True)
    q = sub.add_parser("plot")
    q.add_argument("--csv", required=True)
    q.add_argument("--png", required=True)
    q.add_argument("--floor-reps", type=int, default=30)
    a = p.parse_args()
    {"floor": floor, "run": run, "plot": plot}[a.cmd](a)


if __name__ == "__main__":
    main()
