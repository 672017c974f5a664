"""The cross-method benchmark (issue 24): every method on every toy, mean ± 95 % interval over
seeds (table), and generated samples with MMD² intervals (figure).

Inputs are the benchmark runs' ``results/metrics/<method>/bench-<dataset>-s<seed>.json`` (and,
for the figure, their samples ``.npz``), written by ``otflows evaluate --bench-eval``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from otflows.reports.common import limits, load_npz, metrics_by_run, plt, save_figure, write_table

__all__ = ["CHECKERBOARD_ENTROPY", "COLUMNS", "FIGURES", "TABLES", "figure_benchmark",
           "mean_interval", "summarise", "table_benchmark"]

# FFJORD's checkerboard is uniform on 8 squares of area 4 (total 32): its differential
# entropy is ln 32 nats, and a test NLL (a cross-entropy) cannot be below it in expectation.
CHECKERBOARD_ENTROPY = math.log(32.0)
# (metric key, column title, lower is better) in table order
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("mmd2", "MMD² (k=e^{-‖x−y‖²})", True),
    ("mmd2_half", "MMD² (k=e^{-‖x−y‖²/2})", True),
    ("w2sq", "W₂² (ot.emd2)", True),
    ("nll_nats", "test NLL (nats)", True),
    ("transport_cost", "transport cost", True),
    ("sample_seconds_per_10k", "sampling CPU s / 10k", True),
    ("train_seconds", "train s", True),
    ("budget_ratio", "train s / budget", True),
    ("n_parameters", "parameters", True),
)
BEST = ("mmd2", "w2sq")  # the per-dataset winner is marked in these columns
_NAME = re.compile(r"^bench-(?P<dataset>.+)-s(?P<seed>\d+)$")


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the two-sided 95 % Student-t interval: t_{0.975, n−1} s/√n with
    the sample standard deviation s); half-width NaN for fewer than two values."""
    from scipy.stats import t

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), float(t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def _records(inputs: list[Path]) -> list[dict]:
    out = []
    for (method, exp), m in metrics_by_run([Path(p) for p in inputs]).items():
        match = _NAME.match(exp)
        if not match:
            raise ValueError(f"{method}/{exp}: not a benchmark run (bench-<dataset>-s<seed>)")
        row = {**m, "method": method, "dataset": match["dataset"], "seed": int(match["seed"])}
        # JKO-Flow's model is its K maps: count all of them (n_parameters is one map's)
        row["n_parameters"] = m.get("n_parameters_total", m.get("n_parameters"))
        budget = m.get("budget_seconds")
        row["budget_ratio"] = m["train_seconds"] / budget if budget else math.nan
        out.append(row)
    return out


def summarise(records: list[dict]) -> pd.DataFrame:
    """One row per (dataset, method) in input order: ``n_seeds`` and, per metric of
    :data:`COLUMNS` and ``w2sq_floor``, ``<key>_mean`` and ``<key>_ci95`` (half-width)."""
    rows: dict[tuple[str, str], dict] = {}
    keys = [k for k, _, _ in COLUMNS] + ["w2sq_floor"]
    for r in records:
        rows.setdefault((r["dataset"], r["method"]), {"runs": []})["runs"].append(r)
    out = []
    for (dataset, method), group in rows.items():
        runs = group["runs"]
        row: dict = {"dataset": dataset, "method": method, "n_seeds": len(runs)}
        for key in keys:
            values = [r.get(key) for r in runs]
            values = [float(v) for v in values if isinstance(v, int | float)]
            row[f"{key}_mean"], row[f"{key}_ci95"] = mean_interval(values)
        out.append(row)
    return pd.DataFrame(out)


def _cell(mean: float, half: float, integer: bool = False) -> str:
    if not math.isfinite(mean):
        return "–"
    text = f"{mean:.0f}" if integer else f"{mean:.3g}"
    return text if not math.isfinite(half) or half == 0 else f"{text} ± {half:.2g}"


def table_benchmark(inputs: list[Path], out_md: Path, out_csv: Path) -> None:
    """Markdown + CSV: every dataset x method, each metric as mean ± 95 % t-interval over
    seeds; the best MMD² and W₂² per dataset in bold; per dataset the W₂² noise floor; the
    checkerboard entropy as the NLL sanity line; a footer with the terms of the benchmark."""
    records = _records(inputs)
    if not records:
        raise ValueError("benchmark table: no benchmark runs among the inputs")
    df = summarise(records)
    first = records[0]
    seeds = sorted({r["seed"] for r in records})
    lines = ["# Cross-method benchmark — every method on every toy, on equal terms", "",
             f"Mean ± half-width of the 95 % Student-t interval over {len(seeds)} seeds "
             f"(t with n−1 degrees of freedom). **Bold**: the lowest mean MMD² and W₂² of the "
             f"dataset. MMD² is the unbiased U-statistic (it can be slightly negative); W₂² "
             f"is the exact empirical squared 2-Wasserstein distance between "
             f"{int(first.get('w2sq_points', 0))} generated and as many test points "
             f"(`ot.emd2`, uniform weights, squared-Euclidean cost). W₂² is never 0 at finite "
             f"n: the *floor* row is the same statistic between a train subset of that size "
             f"and the test points (a perfect model scores about this). NLL: test negative "
             f"log-likelihood in nats, where the method defines a density (– otherwise). "
             f"Checkerboard: its entropy ln 32 = {CHECKERBOARD_ENTROPY:.3f} nats is the "
             f"sanity line — no model's expected NLL (a cross-entropy) can be below it. "
             f"Transport cost: each method's own (the learned map's E‖x − f(x)‖² or its "
             f"kinetic energy ∫‖v‖² dt; Q-flow: eq. (7)); for a map from N(0, I) it is at "
             f"least W₂²(N(0, I), model).", ""]
    header = ["dataset", "method", "seeds", *[title for _, title, _ in COLUMNS]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, block in df.groupby("dataset", sort=False):
        best = {k: block[f"{k}_mean"].idxmin() for k in BEST
                if block[f"{k}_mean"].notna().any()}
        for idx, row in block.iterrows():
            cells = []
            for key, _, _ in COLUMNS:
                text = _cell(row[f"{key}_mean"], row[f"{key}_ci95"], key == "n_parameters")
                cells.append(f"**{text}**" if best.get(key) == idx else text)
            lines.append(f"| {dataset} | {row['method']} | {row['n_seeds']} | "
                         + " | ".join(cells) + " |")
        floor = [("–" if key != "w2sq" else _cell(block["w2sq_floor_mean"].mean(), math.nan))
                 for key, _, _ in COLUMNS]
        if dataset == "checkerboard":
            floor[[k for k, _, _ in COLUMNS].index("nll_nats")] = \
                f"≥ {CHECKERBOARD_ENTROPY:.3f} (entropy)"
        lines.append(f"| {dataset} | *floor: train subset vs test* | – | " + " | ".join(floor)
                     + " |")
    budget, target = first.get("budget_seconds"), first.get("param_target")
    lines += ["", f"Terms: training budget {budget:g} s per run on one CPU thread (met by a "
              f"fixed, calibrated step count per method: benchmarks/benchmark_calibration.py; "
              f"the measured wall-clock train seconds and their ratio to the budget are in "
              f"the table), parameter target {target} ± 20 % (JKO-Flow: all K maps counted), "
              f"seeds {', '.join(map(str, seeds))}, machine: {first.get('machine', '?')}. "
              f"Sampling time: CPU seconds of one "
              f"`generate({int(first.get('sample_points', 10000))})` after a warm-up, per 10k "
              f"samples."]
    write_table(lines, out_md, df, out_csv)


def figure_benchmark(inputs: list[Path], out_png: Path) -> None:
    """Rows: methods; columns: datasets — seed 0's generated samples on the test split's axes;
    bottom: MMD² (log scale) per method and dataset with 95 % t-intervals over seeds."""
    paths = [Path(p) for p in inputs]
    records = _records([p for p in paths if p.suffix == ".json"])
    df = summarise(records)
    methods = list(dict.fromkeys(r["method"] for r in records))
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    seed0 = min(r["seed"] for r in records)
    samples = {}
    for p in paths:
        match = _NAME.match(p.stem)
        if p.suffix == ".npz" and match and int(match["seed"]) == seed0:
            samples[(p.parent.name, match["dataset"])] = load_npz(p)
    nr, nc = len(methods), len(datasets)
    fig = plt.figure(figsize=(max(1.55 * nc + 1.2, 8.0), 1.5 * nr + 3.6), layout="constrained")
    gs = fig.add_gridspec(nr + 1, nc, height_ratios=[1.0] * nr + [2.2])
    for j, dataset in enumerate(datasets):
        test = next((s["test"] for (m, d), s in samples.items() if d == dataset), None)
        lim = limits(test, 0.05) if test is not None else None
        for i, method in enumerate(methods):
            ax = fig.add_subplot(gs[i, j])
            run = samples.get((method, dataset))
            if run is not None:
                x = run["samples"][:1500]
                ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.5, color="C0", linewidths=0)
            if lim is not None:
                ax.set_xlim(lim[0][0], lim[1][0])
                ax.set_ylim(lim[0][1], lim[1][1])
            ax.set_box_aspect(1)
            ax.locator_params(nbins=3)
            ax.tick_params(labelsize=6, length=2, pad=1)
            if i == 0:
                ax.set_title(dataset, fontsize=9)
            if j == 0:
                ax.set_ylabel(method, fontsize=9)
    ax = fig.add_subplot(gs[nr, :])
    _mmd_panel(ax, df, methods, datasets)
    fig.suptitle(f"Cross-method benchmark: samples (seed {seed0}; axes of the test split per "
                 f"column) and MMD² with 95 % t-intervals over seeds", fontsize=11)
    save_figure(fig, out_png, dpi=100)


def _mmd_panel(ax: plt.Axes, df: pd.DataFrame, methods: list[str],
               datasets: list[str]) -> None:
    """MMD² mean and 95 % interval per dataset (x) and method (offset markers), log scale;
    values ≤ 1e-6 (the unbiased estimate can be ≤ 0) are drawn at 1e-6."""
    floor, width = 1e-6, 0.8
    for k, method in enumerate(methods):
        sub = df[df["method"] == method].set_index("dataset")
        xs, ys, lo, hi = [], [], [], []
        for j, dataset in enumerate(datasets):
            if dataset not in sub.index:
                continue
            mean, half = sub.loc[dataset, "mmd2_mean"], sub.loc[dataset, "mmd2_ci95"]
            half = 0.0 if not np.isfinite(half) else half
            y = max(mean, floor)
            xs.append(j - width / 2 + width * (k + 0.5) / len(methods))
            ys.append(y)
            lo.append(y - max(mean - half, floor))
            hi.append(max(mean + half, floor) - y)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=3.5, capsize=2, lw=1, color=f"C{k}",
                    label=method)
    ax.set_yscale("log")
    ax.set_xticks(range(len(datasets)), datasets, fontsize=9)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel("MMD² (k = e^{-‖x−y‖²}), log", fontsize=9)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(ncol=min(len(methods), 4), fontsize=8, loc="best", framealpha=0.8)


FIGURES: dict[str, Callable[[list[Path], Path], None]] = {"benchmark": figure_benchmark}
TABLES: dict[str, Callable[[list[Path], Path, Path], None]] = {"benchmark": table_benchmark}
