"""Budget curve of CP-Flow on the Fig. 3 toys: validation and test NLL against Adam steps and
ICNN depth, with the zuko MAF/NAF baselines of Fig. 3 trained by the same rule.

Huang et al., ICLR 2021 (arXiv:2012.05942) train the toys at depth 20, width 32, 10⁴ steps
(config/paper.yaml); the default profile trains far less. This script shows what steps and
depth buy. One run per (toy, model, depth, iters) with the default profile's ``cpflow.toy``
settings from params.yaml, ``iters`` set to each ``--iters``; the exact NLL (nats) on the
test split and on a validation split after each checkpoint step, and the run's CPU seconds
(training only; 1 thread). Claim C1 gives the baselines the same ``cpflow.toy`` section as
CP-Flow (same steps, learning rate and schedule; parameter count matched to the CP-Flow of
the same depth), so ``--models maf naf`` train them by that rule.

The learning-rate schedule: by default the params' ``lr_halve_every`` (fixed, so one long
run's checkpoints equal shorter runs' ends); ``--lr-halve-fraction f`` halves every
round(f · iters) steps instead, so each budget is its own run with a schedule stretched to it
(the default's 800 of 2000 steps is f = 0.4).

The validation split is ``--n-val`` fresh draws of the toy from a third stream of the seed
sequence that ``otflows prepare toy`` splits into train and test (checked against the train
split), so it is independent of both.

Issue 18's curve (checkerboard, seed 0): CP-Flow − min(MAF, NAF) stays 0.07–0.16 nats at
1000–8000 steps, depth 6 or 10, either schedule; the baselines gain as much from steps.

    R="OMP_NUM_THREADS=1 python benchmarks/cpflow_budget.py run --data-dir data/processed/toy"
    $R --toys checkerboard --models cpflow maf naf --depths 6 --iters 8000 \
        --checkpoints 1000 2000 3000 4000 6000 8000 --csv results/tables/cpflow_budget.csv
    $R --toys checkerboard 8gaussians --models cpflow maf --depths 6 \
        --iters 1000 2000 4000 8000 --checkpoints 1000 --lr-halve-fraction 0.4 \
        --csv results/tables/cpflow_budget.csv
    python benchmarks/cpflow_budget.py summary --csv results/tables/cpflow_budget.csv
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

from otflows.data.toy import sample_toy
from otflows.methods.cpflow import make_trainer

FIELDS = ["toy", "model", "seed", "depth", "iters", "schedule", "lr_halve_every", "checkpoint",
          "cpu_seconds", "val_nll", "test_nll", "alpha_learned", "n_parameters", "hidden"]


def _cfg(params: str, model: str, depth: int, iters: int, halve: int | None) -> dict:
    section = yaml.safe_load(Path(params).read_text())["cpflow"]["toy"]
    cfg = {k: v for k, v in section.items() if k != "eval_samples"}
    cfg = {**cfg, "task": "density", "model": model, "depth": depth, "iters": iters}
    return cfg if halve is None else {**cfg, "lr_halve_every": halve}


def validation_split(toy: str, train: np.ndarray, n: int, data_seed: int) -> np.ndarray:
    """``n`` fresh draws of ``toy`` from the third child of the seed sequence whose first two
    children are ``otflows prepare toy``'s train and test streams (train is checked)."""
    train_ss, _test_ss, val_ss = np.random.SeedSequence([data_seed, *toy.encode()]).spawn(3)
    again = sample_toy(toy, len(train), np.random.default_rng(train_ss))
    if not np.array_equal(again, train):
        raise ValueError(f"{toy}: the train split was not drawn with seed {data_seed}; "
                         "pass the seed it was prepared with (--data-seed)")
    return sample_toy(toy, n, np.random.default_rng(val_ss))


def _halve_every(a: argparse.Namespace, iters: int) -> int | None:
    if a.lr_halve_fraction is not None:
        return max(1, round(a.lr_halve_fraction * iters))
    return a.lr_halve_every


def _schedule(a: argparse.Namespace, cfg: dict) -> str:
    """How the learning rate falls: ``every N`` steps (fixed) or ``f·iters`` (stretched)."""
    if a.lr_halve_fraction is not None:
        return f"{a.lr_halve_fraction:g}·iters"
    return f"every {cfg['lr_halve_every']}" if cfg["lr_halve_every"] else "constant"


def _train(w: csv.DictWriter, fh, a: argparse.Namespace, toy: str, data: dict, model: str,
           depth: int, iters: int) -> None:
    """One run; a CSV row per checkpoint ≤ iters (and at iters)."""
    cfg = _cfg(a.params, model, depth, iters, _halve_every(a, iters))
    tr = make_trainer(cfg, data["train"], a.seed, torch.device("cpu"),
                      arrays={"test": data["test"]})
    spent = 0.0
    for stop in sorted({c for c in a.checkpoints if c <= iters} | {iters}):
        t0 = time.process_time()
        while tr.step_index < stop:
            tr.train_step()
        spent += time.process_time() - t0
        val = float(-tr.log_density(data["val"]).mean())
        test = float(-tr.log_density(data["test"]).mean())
        alpha = float(tr.flow.blocks[0].alpha.detach()) if model == "cpflow" else ""
        w.writerow({"toy": toy, "model": model, "seed": a.seed, "depth": depth, "iters": iters,
                    "schedule": _schedule(a, cfg), "lr_halve_every": cfg["lr_halve_every"],
                    "checkpoint": stop, "cpu_seconds": round(spent, 2), "val_nll": val,
                    "test_nll": test, "alpha_learned": alpha,
                    "n_parameters": tr.n_parameters(), "hidden": tr.hidden})
        fh.flush()
        print(toy, model, depth, iters, stop, f"val {val:.4f}", f"test {test:.4f}",
              f"{spent:.1f}s", flush=True)


def run(a: argparse.Namespace) -> None:
    """Train one model per (toy, model, depth, iters), appending a CSV row per checkpoint."""
    torch.set_num_threads(1)
    path = Path(a.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    if not new and path.read_text().split("\n", 1)[0] != ",".join(FIELDS):
        raise SystemExit(f"{path}: written with other columns; append to a new file")
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        if new:
            w.writeheader()
        for toy in a.toys:
            npz = np.load(Path(a.data_dir) / f"{toy}.npz")
            data = {"train": npz["train"], "test": npz["test"]}
            data["val"] = validation_split(toy, data["train"], a.n_val, a.data_seed)
            for model in a.models:
                for depth in a.depths:
                    for iters in a.iters:
                        _train(w, fh, a, toy, data, model, depth, iters)


def _baselines(folder: str | None) -> dict[tuple[str, str], float]:
    """{(toy, model): test NLL} of the Fig. 3 zuko runs in ``folder`` (fig3-<model>-<toy>)."""
    out: dict[tuple[str, str], float] = {}
    for p in sorted(Path(folder).glob("fig3-*.json")) if folder else []:
        _, model, toy = p.stem.split("-", 2)
        out[(toy, model)] = float(json.loads(p.read_text())["nll_nats"])
    return out


def curves(rows: list[dict]) -> dict[tuple, list[dict]]:
    """{(toy, model, depth, schedule, seed): rows by step}: at each checkpoint step the row of the
    shortest run that reaches it (with a fixed schedule every run agrees there; with a
    stretched one, only the run whose budget it is: its intermediate rows are skipped)."""
    out: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if "iters" in r["schedule"] and r["checkpoint"] != r["iters"]:
            continue
        key = (r["toy"], r["model"], int(r["depth"]), r["schedule"], int(r.get("seed", 0)))
        step = int(r["checkpoint"])
        best = out.setdefault(key, {}).get(step)
        if best is None or int(r["iters"]) < int(best["iters"]):
            out[key][step] = r
    return {k: [v[s] for s in sorted(v)] for k, v in out.items()}


C1_MARGIN = 0.05
"""Claim C1's margin (reports/claims/cpflow.py): CP-Flow ≤ min(MAF, NAF) + 0.05 nats."""
ENTROPY = {"checkerboard": float(np.log(32.0))}
"""Differential entropy (nats) of a toy where it is closed-form: checkerboard is uniform on
8 squares of side 2 (``otflows.data.toy``), area 32."""


def c1_rows(rows: list[dict]) -> list[dict]:
    """Per (toy, depth, schedule, step) with CP-Flow and a baseline: both NLLs, the gap
    CP − min(MAF, NAF) on test and validation, and the CPU seconds of each model's run."""
    lines = curves(rows)
    out = []
    for (toy, model, depth, sched, seed), pts in sorted(lines.items()):
        if model != "cpflow":
            continue
        base = {m: {int(p["checkpoint"]): p for p in lines[(toy, m, depth, sched, seed)]}
                for m in ("maf", "naf") if (toy, m, depth, sched, seed) in lines}
        for p in pts:
            step = int(p["checkpoint"])
            at = {m: b[step] for m, b in base.items() if step in b}
            if not at:
                continue
            row = {"toy": toy, "depth": depth, "schedule": sched, "seed": seed, "step": step,
                   "cpflow_test": float(p["test_nll"]), "cpflow_cpu_s": float(p["cpu_seconds"])}
            for m, q in at.items():
                row.update({f"{m}_test": float(q["test_nll"]), f"{m}_cpu_s":
                            float(q["cpu_seconds"])})
            for split in ("test", "val"):
                best = min(float(q[f"{split}_nll"]) for q in at.values())
                row[f"gap_{split}"] = float(p[f"{split}_nll"]) - best
                row[f"bound_{split}"] = best + C1_MARGIN
            row["c1_test"] = row["gap_test"] <= C1_MARGIN
            out.append(row)
    return out


def summary(a: argparse.Namespace) -> None:
    """Print C1's comparison at each step as a Markdown table (gap = CP − min(MAF, NAF))."""
    rows = [r for p in a.csv for r in csv.DictReader(Path(p).open())]
    cols = ["toy", "depth", "schedule", "seed", "step", "cpflow_test", "maf_test", "naf_test",
            "gap_test", "gap_val", "c1_test", "cpflow_cpu_s", "maf_cpu_s", "naf_cpu_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in c1_rows(rows):
        cells = [f"{r[c]:.4f}" if isinstance(r.get(c), float) and "cpu" not in c
                 else f"{r[c]:.1f}" if isinstance(r.get(c), float) else str(r.get(c, "–"))
                 for c in cols]
        print("| " + " | ".join(cells) + " |")


def plot(a: argparse.Namespace) -> None:
    """One column per (toy, learning-rate schedule): test NLL (top) and validation NLL
    (bottom) against steps; colour per model, marker per (depth, seed); C1's bound
    min(MAF, NAF) + 0.05 dotted grey, the baselines of ``--baselines`` dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for p in a.csv for r in csv.DictReader(Path(p).open())]
    lines = curves(rows)
    bounds = c1_rows(rows)
    base = _baselines(a.baselines)
    panels = list(dict.fromkeys((k[0], k[3]) for k in lines))
    fig, axes = plt.subplots(2, len(panels), figsize=(5.4 * len(panels), 10.5), squeeze=False,
                             constrained_layout=True)
    colours = {"cpflow": "C0", "maf": "C3", "naf": "C2"}
    variants = sorted({(k[2], k[4]) for k in lines})
    marker = {v: "os^vDP"[i % 6] for i, v in enumerate(variants)}
    for col, (toy, sched) in enumerate(panels):
        keys = sorted((k for k in lines if (k[0], k[3]) == (toy, sched)),
                      key=lambda k: (k[1] != "cpflow", k))
        for row, split in enumerate(("test", "val")):
            ax = axes[row][col]
            for key in keys:
                _, model, depth, _, seed = key
                pts = lines[key]
                name = "CP-Flow" if model == "cpflow" else f"{model.upper()} (params of CP)"
                ax.plot([int(p["checkpoint"]) for p in pts],
                        [float(p[f"{split}_nll"]) for p in pts],
                        marker=marker[(depth, seed)], color=colours.get(model, "C4"),
                        ls="-" if model == "cpflow" else "-.",
                        lw=1.8 if model == "cpflow" else 1.0,
                        label=f"{name} depth {depth}, seed {seed} "
                              f"({float(pts[-1]['cpu_seconds']):.0f} CPU s)")
            for depth, seed in variants:
                pts = [b for b in bounds if (b["toy"], b["schedule"], b["depth"], b["seed"])
                       == (toy, sched, depth, seed)]
                if pts:
                    ax.plot([b["step"] for b in pts], [b[f"bound_{split}"] for b in pts],
                            color="0.35", ls=":", lw=1.2, marker=marker[(depth, seed)],
                            mfc="none", label=f"C1 bound: min of MAF, NAF run at the step "
                                              f"+ {C1_MARGIN}, depth {depth}, seed {seed}")
            for (btoy, model), nll in base.items():
                if btoy == toy and split == "test":
                    ax.axhline(nll, ls="--", lw=1, color={"maf": "C7", "naf": "k"}.get(
                        model, "C8"), label=f"{model.upper()}, pipeline run (--baselines)")
            if toy in ENTROPY:
                ax.axhline(ENTROPY[toy], color="k", lw=0.8, ls=(0, (1, 3)),
                           label=f"data entropy ln 32 = {ENTROPY[toy]:.3f}")
            ax.set_xscale("log")
            steps = sorted({int(p["checkpoint"]) for k in keys for p in lines[k]})
            ax.set_xticks(steps, [str(v) for v in steps])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            ax.set_xlabel("Adam steps (log scale)")
            ax.set_ylabel(f"{'validation' if split == 'val' else 'test'} NLL (nats)")
            ax.set_title(f"{toy}, lr halved {sched}: "
                         f"{'validation' if split == 'val' else 'test'} NLL", fontsize=10)
            if row == 1:  # one legend per column, below it (the rows share their lines)
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    fig.suptitle("CP-Flow budget curve: NLL vs Adam steps (width 32; MAF/NAF trained by the "
                 "same rule; each point of a stretched schedule is its own run)")
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    """``run``, ``plot`` or ``summary``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--toys", nargs="+", default=["8gaussians", "checkerboard"])
    r.add_argument("--models", nargs="+", default=["cpflow"], choices=["cpflow", "maf", "naf"])
    r.add_argument("--depths", nargs="+", type=int, default=[3, 6, 10])
    r.add_argument("--iters", nargs="+", type=int, default=[2000])
    r.add_argument("--checkpoints", nargs="+", type=int, default=[250, 500, 1000, 1500, 2000])
    halve = r.add_mutually_exclusive_group()
    halve.add_argument("--lr-halve-every", type=int, default=None,
                       help="override params' lr_halve_every (steps; 0: never)")
    halve.add_argument("--lr-halve-fraction", type=float, default=None,
                       help="halve every round(f * iters) steps (the default's 800/2000: 0.4)")
    r.add_argument("--params", default="params.yaml")
    r.add_argument("--data-dir", default="data/processed/toy")
    r.add_argument("--data-seed", type=int, default=0, help="the params' seed of the toy data")
    r.add_argument("--n-val", type=int, default=2000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--csv", default="results/tables/cpflow_budget.csv")
    q = sub.add_parser("plot")
    q.add_argument("--csv", nargs="+", default=["results/tables/cpflow_budget.csv"])
    q.add_argument("--baselines", default="results/metrics/cpflow")
    q.add_argument("--png", default="results/figures/cpflow_budget.png")
    m = sub.add_parser("summary")
    m.add_argument("--csv", nargs="+", default=["results/tables/cpflow_budget.csv"])
    a = p.parse_args()
    {"run": run, "plot": plot, "summary": summary}[a.cmd](a)


if __name__ == "__main__":
    main()
