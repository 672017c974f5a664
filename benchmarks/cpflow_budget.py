"""Budget curve of CP-Flow on the Fig. 3 toys: test NLL against Adam steps and ICNN depth.

Huang et al., ICLR 2021 (arXiv:2012.05942) train the toys at depth 20, width 32, 10⁴ steps
(config/paper.yaml); the default profile trains far less. This script shows what steps and
depth buy: one run per (toy, depth) with the default profile's ``cpflow.toy`` settings from
params.yaml (``iters`` raised to ``--iters``, so its learning-rate schedule is the one of a
longer run), the exact test NLL (nats) after each checkpoint step, and the run's CPU seconds.
The zuko MAF/NAF of Fig. 3 at the default budget are drawn as reference lines when their
metrics are given.

    OMP_NUM_THREADS=1 python benchmarks/cpflow_budget.py run --toys 8gaussians checkerboard \
        --depths 3 6 10 --iters 2000 --checkpoints 250 500 1000 1500 2000 \
        --csv results/tables/cpflow_budget.csv
    python benchmarks/cpflow_budget.py plot --csv results/tables/cpflow_budget.csv \
        --baselines results/metrics/cpflow --png results/figures/cpflow_budget.png
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from otflows.methods.cpflow import make_trainer

FIELDS = ["toy", "depth", "iters", "checkpoint", "cpu_seconds", "test_nll", "alpha_learned",
          "n_parameters"]


def _cfg(depth: int, iters: int) -> dict:
    section = yaml.safe_load(Path("params.yaml").read_text())["cpflow"]["toy"]
    cfg = {k: v for k, v in section.items() if k != "eval_samples"}
    return {**cfg, "task": "density", "model": "cpflow", "depth": depth, "iters": iters}


def run(a: argparse.Namespace) -> None:
    """Train one CP-Flow per (toy, depth), appending a CSV row per checkpoint."""
    torch.set_num_threads(1)
    path = Path(a.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        if new:
            w.writeheader()
        for toy in a.toys:
            data = np.load(Path(a.data_dir) / f"{toy}.npz")
            for depth in a.depths:
                tr = make_trainer(_cfg(depth, a.iters), data["train"], a.seed,
                                  torch.device("cpu"), arrays={"test": data["test"]})
                spent = 0.0
                for stop in sorted(c for c in a.checkpoints if c <= a.iters):
                    t0 = time.process_time()
                    while tr.step_index < stop:
                        tr.train_step()
                    spent += time.process_time() - t0
                    nll = float(-tr.log_density(data["test"]).mean())
                    w.writerow({"toy": toy, "depth": depth, "iters": a.iters,
                                "checkpoint": stop, "cpu_seconds": round(spent, 2),
                                "test_nll": nll,
                                "alpha_learned": float(tr.flow.blocks[0].alpha.detach()),
                                "n_parameters": tr.n_parameters()})
                    fh.flush()
                    print(toy, depth, stop, f"{nll:.4f}", f"{spent:.1f}s", flush=True)


def _baselines(folder: str | None) -> dict[tuple[str, str], float]:
    """{(toy, model): test NLL} of the Fig. 3 zuko runs in ``folder`` (fig3-<model>-<toy>)."""
    out: dict[tuple[str, str], float] = {}
    for p in sorted(Path(folder).glob("fig3-*.json")) if folder else []:
        _, model, toy = p.stem.split("-", 2)
        out[(toy, model)] = float(json.loads(p.read_text())["nll_nats"])
    return out


def plot(a: argparse.Namespace) -> None:
    """One panel per toy: test NLL against steps, one line per depth, baselines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for p in a.csv for r in csv.DictReader(Path(p).open())]
    toys = list(dict.fromkeys(r["toy"] for r in rows))
    base = _baselines(a.baselines)
    fig, axes = plt.subplots(1, len(toys), figsize=(4.4 * len(toys), 3.8), squeeze=False,
                             constrained_layout=True)
    for ax, toy in zip(axes[0], toys, strict=True):
        sub = [r for r in rows if r["toy"] == toy]
        for depth in sorted({int(r["depth"]) for r in sub}):
            pts = sorted((int(r["checkpoint"]), float(r["test_nll"]), float(r["cpu_seconds"]))
                         for r in sub if int(r["depth"]) == depth)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=f"CP-Flow depth {depth} ({pts[-1][2]:.0f} CPU s)")
        for (btoy, model), nll in base.items():
            if btoy == toy:
                ax.axhline(nll, ls="--", lw=1, color={"maf": "C7", "naf": "k"}.get(model, "C8"),
                           label=f"{model.upper()} (zuko, default budget)")
        ax.set_xscale("log")
        steps = sorted({int(r["checkpoint"]) for r in sub})
        ax.set_xticks(steps, [str(v) for v in steps])
        ax.minorticks_off()
        ax.set_xlabel("Adam steps (log scale)")
        ax.set_ylabel("test NLL (nats)")
        ax.set_title(toy)
        ax.legend(fontsize=7)
    fig.suptitle("CP-Flow budget curve: test NLL vs steps and ICNN depth (width 32, 1 seed)")
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    """``run`` or ``plot``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--toys", nargs="+", default=["8gaussians", "checkerboard"])
    r.add_argument("--depths", nargs="+", type=int, default=[3, 6, 10])
    r.add_argument("--iters", type=int, default=2000)
    r.add_argument("--checkpoints", nargs="+", type=int, default=[250, 500, 1000, 1500, 2000])
    r.add_argument("--data-dir", default="data/processed/toy")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--csv", default="results/tables/cpflow_budget.csv")
    q = sub.add_parser("plot")
    q.add_argument("--csv", nargs="+", default=["results/tables/cpflow_budget.csv"])
    q.add_argument("--baselines", default="results/metrics/cpflow")
    q.add_argument("--png", default="results/figures/cpflow_budget.png")
    a = p.parse_args()
    run(a) if a.cmd == "run" else plot(a)


if __name__ == "__main__":
    main()
