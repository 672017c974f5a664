"""Budget curves of JKO-Flow (Vidal et al., arXiv:2211.16757) and single-shot OT-Flow.

MMD² (kernel exp(−‖x−y‖²), the published evaluation's) against Adam steps per subproblem, at
α = 5 on a few toys. One JKO-Flow run (K subproblems) per point gives both curves: the model
after subproblem 1 is the single-shot run of the same config and seed (``methods/jko.py``),
so its ``iterate_samples[0]`` is single shot and ``iterate_samples[-1]`` JKO-Flow.

A learning-rate schedule can be applied per subproblem: ``--halve-every H`` halves the rate
every H steps of each subproblem (the published OT-Flow toy driver, ``trainToyOTflow.py`` in
EmoryMLIP/OT-Flow, starts at lr 0.1 and halves every 100 steps: ``--drop_freq 100
--lr_drop 2``; width 32, batch 4096, nt 8 there). 0 keeps the rate constant, as the published
JKO-Flow toy driver (``TrainToy_JKOflow.py``: lr 1e-2, ``--lr_drop 1.0``; width 16, batch 2000,
nt 8, 1000 epochs of 3 batches = 3000 steps per subproblem) does. The defaults below are the
default profile's (params.yaml ``otflow``): width 16, batch 250, nt 4.

    OMP_NUM_THREADS=1 python benchmarks/jko_budget.py run --datasets checkerboard \
        --iters 50 100 200 400 --lr 0.1 --halve-every 100 --csv results/tables/jko_budget.csv
    python benchmarks/jko_budget.py plot --csv results/tables/jko_budget.csv \
        --png results/figures/jko_budget.png

Rows are appended to the CSV (one per dataset × schedule × iters), so several processes can
each write their own CSV and ``plot`` can read them all.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from otflows.methods.jko import JKOTrainer
from otflows.methods.otflow import OTFlowConfig
from otflows.metrics.mmd import mmd2_unbiased

FIELDS = ["dataset", "schedule", "batch", "width", "nt", "iters", "K", "seed", "single_mmd2",
          "jko_mmd2", "per_iteration", "train_cpu_s"]


def _config(a: argparse.Namespace, iters: int) -> dict:
    return {"width": a.width, "n_layers": 2, "rank": 10, "nt": a.nt, "nt_eval": 8,
            "alpha": a.alpha, "alpha_L": 1.0, "alpha_R": a.alpha_R, "lr": a.lr,
            "weight_decay": 0.0, "batch_size": a.batch, "iters": iters, "K": a.K,
            "dtype": "float64"}


def _lr_at(a: argparse.Namespace, local_step: int) -> float:
    """The schedule's rate at step ``local_step`` of a subproblem (restarts per subproblem)."""
    return a.lr * (0.5 ** (local_step // a.halve_every) if a.halve_every > 0 else 1.0)


def point(a: argparse.Namespace, dataset: str, iters: int) -> dict:
    """Train one JKO-Flow run of ``iters`` steps per subproblem; MMD² after each subproblem."""
    data = np.load(Path(a.data_dir) / f"{dataset}.npz")
    cfg = OTFlowConfig.from_dict(_config(a, iters), "jko")
    trainer = JKOTrainer(cfg, data["train"], a.seed, torch.device("cpu"))
    start = time.process_time()
    while trainer.step_index < trainer.n_steps:
        lr = _lr_at(a, trainer.step_index % iters)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        trainer.train_step()
    cpu = time.process_time() - start
    ev = trainer.evaluate(data["test"], a.eval_samples, a.seed)
    mmd = [mmd2_unbiased(s, data["test"], 1.0) for s in ev.extras["iterate_samples"]]
    schedule = f"lr {a.lr:g}" + (f", halved every {a.halve_every}" if a.halve_every else "")
    return {"dataset": dataset, "schedule": schedule, "batch": a.batch, "width": a.width,
            "nt": a.nt, "iters": iters, "K": a.K, "seed": a.seed, "single_mmd2": mmd[0],
            "jko_mmd2": mmd[-1], "per_iteration": " ".join(f"{v:.3e}" for v in mmd),
            "train_cpu_s": round(cpu, 1)}


def append_row(path: Path, fields: list[str], row: dict) -> None:
    """Append one row to a CSV file, writing the header first if the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def run(a: argparse.Namespace) -> None:
    """Train every (dataset, iters) point and append its row to the CSV."""
    torch.set_num_threads(1)
    path = Path(a.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    for ds in a.datasets:
        for iters in a.iters:
            row = point(a, ds, iters)
            append_row(path, FIELDS, row)
            print(f"{ds:13s} {row['schedule']:26s} iters {iters:5d}  single "
                  f"{row['single_mmd2']:.2e}  JKO {row['jko_mmd2']:.2e}  "
                  f"({row['train_cpu_s']} CPU s)", flush=True)


def plot(a: argparse.Namespace) -> None:
    """One panel per dataset: MMD² against steps per subproblem, single shot and JKO-Flow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name in a.csv.split(","):
        with open(name) as f:
            rows += list(csv.DictReader(f))
    if a.out_csv:
        with open(a.out_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    schedules = list(dict.fromkeys(r["schedule"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.4 * len(datasets), 4.4),
                             squeeze=False, constrained_layout=True)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for si, sched in enumerate(schedules):
            pts = sorted((int(r["iters"]), float(r["single_mmd2"]), float(r["jko_mmd2"]))
                         for r in rows if r["dataset"] == ds and r["schedule"] == sched)
            if not pts:
                continue
            it, s, j = zip(*pts, strict=True)
            color = f"C{si}"
            ax.plot(it, np.maximum(s, 1e-5), "--o", color=color, mfc="none",
                    label=f"single shot ({sched})")
            ax.plot(it, np.maximum(j, 1e-5), "-o", color=color, label=f"JKO-Flow K=5 ({sched})")
        ax.axhline(1e-3, color="k", lw=0.8, ls=":", label="J4 threshold 1e-3")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({int(r["iters"]) for r in rows})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("Adam steps per subproblem")
        ax.set_ylabel("MMD² (kernel exp(−‖x−y‖²))")
        ax.set_title(f"{ds}, α = 5")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle("JKO-Flow vs single shot: MMD² against the training budget")
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=110)
    print(f"wrote {a.png}")


def main() -> None:
    """Command line: ``run`` trains points, ``plot`` draws the figure from CSVs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--datasets", nargs="+", default=["checkerboard", "2spirals", "8gaussians"])
    r.add_argument("--iters", nargs="+", type=int, default=[50, 100, 200, 400, 800])
    r.add_argument("--alpha", type=float, default=5.0)
    r.add_argument("--alpha-R", type=float, default=0.5)
    r.add_argument("--K", type=int, default=5)
    r.add_argument("--width", type=int, default=16)
    r.add_argument("--nt", type=int, default=4)
    r.add_argument("--batch", type=int, default=250)
    r.add_argument("--lr", type=float, default=0.1)
    r.add_argument("--halve-every", type=int, default=100)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--eval-samples", type=int, default=2000)
    r.add_argument("--data-dir", default=os.path.join("data", "processed", "toy"))
    r.add_argument("--csv", required=True)
    q = sub.add_parser("plot")
    q.add_argument("--csv", required=True, help="comma-separated CSVs written by run")
    q.add_argument("--png", required=True)
    q.add_argument("--out-csv", default="", help="also write all rows to this CSV")
    a = p.parse_args()
    run(a) if a.cmd == "run" else plot(a)


if __name__ == "__main__":
    main()
