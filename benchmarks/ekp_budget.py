"""Budget curve of EKP (Finlay et al., arXiv:2006.06033): concentration and likelihood
agreement against training CPU time, over ε, the MC sample size N of the (c, ε)-transform,
the iterations and the L2 penalty α (one knob moved at a time from params.yaml's ``ekp``).

Per point: train Algorithm 1, then measure on the test split MMD² (kernel exp(−‖x−y‖²)) of
1000 flow samples, the share of checkerboard samples in its 8 cells (claim E2), the test NLL
by eq. (17) (grid-normalised) and by the CNF (eq. 8) on 300 points, and their gap (claim E3).
The paper trains with ε = 1, N = 100, α = 1e-5, 20,000 iterations of batch 1000 (App. D).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/ekp_budget.py run --datasets checkerboard \
        --points base iters=1600 n_mc=100 alpha=1e-5 eps=0.5 --csv results/tables/ekp_budget.csv
    python benchmarks/ekp_budget.py plot --csv results/tables/ekp_budget.csv \
        --png results/figures/ekp_budget.png

Rows are appended to the CSV, so several processes can each write their own and ``plot``
reads them all.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from otflows.methods.ekp import make_trainer
from otflows.metrics.mmd import mmd2_unbiased
from otflows.pipeline.config import load_params
from otflows.reports.claims.ekp import checkerboard_cell_share

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["dataset", "point", "seed", "iters", "eps", "n_mc", "alpha", "batch_size",
          "train_cpu_s", "mmd2", "cell_share", "nll_eq17", "nll_cnf", "nll_gap"]
_RUN_KEYS_EXCLUDED = ("datasets", "eval_samples", "iters_by_dataset")


def _config(point: str) -> dict:
    """params.yaml's ``ekp`` run config with one ``key=value`` override (``base``: none)."""
    ekp = load_params([ROOT / "params.yaml"], ROOT / "schemas" / "params.schema.yaml")["ekp"]
    cfg = {k: v for k, v in ekp.items() if k not in _RUN_KEYS_EXCLUDED}
    if point != "base":
        key, value = point.split("=")
        cfg[key] = type(cfg[key])(float(value)) if key in cfg else float(value)
    return cfg


def point(a: argparse.Namespace, dataset: str, name: str) -> dict:
    """Train one run at the overrides ``name`` and measure E2's and E3's quantities."""
    data = np.load(Path(a.data_dir) / f"{dataset}.npz")
    cfg = _config(name)
    tr = make_trainer(cfg, data["train"], a.seed, torch.device("cpu"))
    start = time.process_time()
    for _ in range(cfg["iters"]):
        tr.train_step()
    train_s = time.process_time() - start
    gen = torch.Generator().manual_seed(a.seed + 1000)
    x = tr.sample(1000, gen).x.double().numpy()
    test = data["test"]
    scored = torch.as_tensor(test[:300], dtype=torch.float32)
    nll_cnf = -float(tr.cnf_log_density(scored).double().mean())
    nll_eq17 = -float(tr.log_density(test[:300]).mean())
    return {"dataset": dataset, "point": name, "seed": a.seed, "iters": cfg["iters"],
            "eps": cfg["eps"], "n_mc": cfg["n_mc"], "alpha": cfg["alpha"],
            "batch_size": cfg["batch_size"], "train_cpu_s": round(train_s, 1),
            "mmd2": mmd2_unbiased(x, test[:1000], 1.0),
            "cell_share": checkerboard_cell_share(x) if dataset == "checkerboard" else "",
            "nll_eq17": nll_eq17, "nll_cnf": nll_cnf, "nll_gap": abs(nll_eq17 - nll_cnf)}


def run(a: argparse.Namespace) -> None:
    """Train every (dataset, point) and append one CSV row each."""
    torch.set_num_threads(a.threads)
    path = Path(a.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for dataset in a.datasets:
            for name in a.points:
                row = point(a, dataset, name)
                writer.writerow(row)
                fh.flush()
                print(row, flush=True)


def plot(a: argparse.Namespace) -> None:
    """MMD², cell share and |NLL gap| against training CPU seconds, one marker per point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.concat([pd.read_csv(p) for p in a.csv.split(",")], ignore_index=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    panels = (("mmd2", "MMD² (E2: ≤ 2e-3)", 2e-3), ("cell_share", "checkerboard cell share "
              "(E2: ≥ 0.9)", 0.9), ("nll_gap", "|NLL eq. 17 − NLL CNF|, nats (E3: ≤ 0.1)", 0.1))
    for ax, (col, title, bar) in zip(axes, panels, strict=True):
        for i, ((ds, name), g) in enumerate(df.groupby(["dataset", "point"])):
            vals = pd.to_numeric(g[col], errors="coerce")
            if vals.notna().any():
                ax.scatter(g["train_cpu_s"], vals, color=f"C{i % 10}", label=f"{ds} {name}")
        ax.axhline(bar, color="grey", ls="--", lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training CPU seconds (1 thread)")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("EKP budget: one knob moved from params.yaml's ekp (ε, N, iterations, α)")
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=130)


def main() -> None:
    """Command line: ``run`` appends rows to a CSV, ``plot`` draws the budget figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--datasets", nargs="+", default=["checkerboard"])
    r.add_argument("--points", nargs="+", default=["base"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    r.add_argument("--data-dir", default=str(ROOT / "data" / "processed" / "toy"))
    r.add_argument("--csv", default="results/tables/ekp_budget.csv")
    p = sub.add_parser("plot")
    p.add_argument("--csv", default="results/tables/ekp_budget.csv")
    p.add_argument("--png", default="results/figures/ekp_budget.png")
    a = parser.parse_args()
    run(a) if a.cmd == "run" else plot(a)


if __name__ == "__main__":
    main()
