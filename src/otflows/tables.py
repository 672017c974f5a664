"""Tables (markdown + CSV) with the papers' values beside ours, and the metrics summary."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from otflows.checkpoint import write_json, write_text

__all__ = ["TABLES", "write_summary", "load_metrics"]

# JKO-Flow (Vidal et al., arXiv:2211.16757), Table 1: MMD² on the 2-D toys, by alpha.
# Rows: single shot, then JKO-Flow (5 iterations).
PAPER_JKO_ALPHA: dict[str, dict[str, list[float]]] = {
    "checkerboard": {"otflow": [3.58e-2, 3.56e-3, 1.42e-3, 1.26e-3],
                     "jko": [4.9e-4, 5.67e-4, 6.40e-4, 9.00e-4]},
    "2spirals": {"otflow": [7.21e-2, 2.30e-2, 1.84e-2, 7.73e-4],
                 "jko": [2.10e-2, 4.62e-4, 1.02e-4, 5.37e-5]},
    "swissroll": {"otflow": [4.74e-3, 7.33e-4, 2.86e-4, 7.03e-4],
                  "jko": [5.16e-4, 8.3e-5, 3.27e-5, 6.07e-4]},
    "8gaussians": {"otflow": [9.18e-3, 2.69e-4, 3.94e-4, 7.10e-4],
                   "jko": [1.07e-4, 4.13e-5, 2.67e-4, 7.27e-6]},
    "circles": {"otflow": [9.84e-3, 2.24e-4, 6.51e-4, 1.04e-4],
                "jko": [9.49e-4, 9.97e-6, 2.38e-5, 9.28e-5]},
    "pinwheel": {"otflow": [1.18e-2, 1.8e-3, 1.37e-3, 2.2e-5],
                 "jko": [4.7e-4, 2.63e-4, 3.84e-4, 4.30e-4]},
    "moons": {"otflow": [1.45e-3, 2.05e-3, 2.49e-4, 2.42e-4],
              "jko": [1.92e-4, 4.65e-5, 4.3e-5, 1.08e-4]},
}
PAPER_ALPHAS = [1.0, 5.0, 10.0, 50.0]

# JKO-Flow Table 2: MMD² by network width m (alpha = 5; 50 for 2 Spirals).
PAPER_JKO_WIDTH: dict[str, dict[str, list[float]]] = {
    "checkerboard": {"otflow": [1.10e-2, 5.60e-3, 2.46e-3, 3.03e-3, 2.70e-3],
                     "jko": [5.60e-3, 1.07e-3, 2.7e-4, 2.32e-4, 4.16e-4]},
    "2spirals": {"otflow": [5.98e-3, 4.54e-3, 5.47e-3, 1.19e-3, 3.96e-3],
                 "jko": [1.42e-3, 1.49e-5, 6.11e-4, 3.93e-5, 2.19e-3]},
    "swissroll": {"otflow": [8.89e-3, 7.71e-3, 1.41e-3, 1.37e-3, 1.52e-3],
                  "jko": [1.49e-3, 2.90e-4, 6.13e-4, 2.29e-4, 8.40e-5]},
    "8gaussians": {"otflow": [2.20e-3, 1.05e-3, 1.04e-3, 2.3e-4, 5.05e-4],
                   "jko": [1.33e-4, 9.85e-4, 2.40e-5, 3.96e-4, 1.07e-4]},
    "circles": {"otflow": [2.06e-3, 1.72e-3, 1.37e-3, 1.69e-3, 1.34e-3],
                "jko": [1.94e-3, 3.24e-4, 7.71e-4, 5.9e-5, 1.01e-4]},
    "pinwheel": {"otflow": [1.10e-2, 4.03e-3, 2.27e-3, 3.80e-3, 5.43e-4],
                 "jko": [1.20e-3, 8.23e-4, 1.60e-3, 7.00e-5, 2.69e-4]},
    "moons": {"otflow": [4.98e-3, 4.54e-3, 5.47e-3, 1.2e-3, 3.96e-3],
              "jko": [1.42e-3, 1.5e-5, 6.11e-4, 3.90e-5, 2.19e-3]},
}
PAPER_WIDTHS = [3, 4, 5, 8, 16]

APPROACH = {"otflow": "single shot", "jko": "JKO-Flow"}
SUMMARY_KEYS = ("method", "experiment", "dataset", "sweep", "device", "seed", "alpha", "K",
                "width", "benchmark", "config_hash", "resumed_from")


def load_metrics(paths: list[Path]) -> pd.DataFrame:
    """One row per metrics JSON file."""
    rows = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"metrics file {path} not found: run `snakemake {path}`")
        rows.append(json.loads(Path(path).read_text()))
    return pd.DataFrame(rows)


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"


def _spread(values: list[float]) -> str:
    """log10(max/min): orders of magnitude spanned by a row of positive MMD² values."""
    return f"{math.log10(max(values) / min(values)):.2f}" if len(values) > 1 else "–"


def _paper_value(paper: dict, dataset: str, method: str, grid: list, value: float) -> float:
    try:
        return paper[dataset][method][grid.index(value)]
    except (KeyError, ValueError):
        return math.nan


def _sweep_table(df: pd.DataFrame, column: str, paper: dict, grid: list, label: str,
                 title: str, out_md: Path, out_csv: Path) -> None:
    df = df.copy()
    df[column] = df[column].astype(float)
    df["paper_mmd2"] = [_paper_value(paper, d, m, grid, v) for d, m, v in
                        zip(df["dataset"], df["method"], df[column], strict=True)]
    tidy = df[["dataset", "method", column, "K", "mmd2", "mmd2_half", "paper_mmd2",
               "nll_nats", "train_seconds"]].sort_values(["dataset", "method", column])
    write_text(tidy.to_csv(index=False), out_csv)

    values = sorted(df[column].unique())
    head = "| dataset | approach | " + " | ".join(f"{label}={v:g}" for v in values)
    head += " | spread ours | spread paper |"
    lines = [f"# {title}", "",
             "Cells: MMD² ours (paper). `mmd2` uses exp(-‖x−y‖²), the kernel of the published "
             "code behind the paper's tables; `mmd2_half` (exp(-‖x−y‖²/2)) is in the CSV. "
             "Spread: log10(max/min) across the row — smaller means less sensitive.", "",
             head, "|" + "---|" * (len(values) + 4)]
    for (dataset, method), g in df.groupby(["dataset", "method"], sort=True):
        by = dict(zip(g[column], zip(g["mmd2"], g["paper_mmd2"], strict=True), strict=True))
        k = int(g["K"].iloc[0])
        name = APPROACH.get(method, method) + (f" ({k} iters)" if k > 1 else "")
        cells = [f"{_fmt(by[v][0])} ({_fmt(by[v][1])})" if v in by else "–" for v in values]
        ours = [by[v][0] for v in values if v in by and by[v][0] > 0]
        theirs = [by[v][1] for v in values if v in by and by[v][1] > 0]
        lines.append(f"| {dataset} | {name} | " + " | ".join(cells)
                     + f" | {_spread(ours)} | {_spread(theirs)} |")
    write_text("\n".join(lines) + "\n", out_md)


def table_jko_alpha(inputs: list[Path], out_md: Path, out_csv: Path) -> None:
    """JKO-Flow Table 1: MMD² by alpha, single shot vs JKO-Flow."""
    _sweep_table(load_metrics(inputs), "alpha", PAPER_JKO_ALPHA, PAPER_ALPHAS, "α",
                 "JKO-Flow Table 1 — 2-D toys, MMD² by α", out_md, out_csv)


def table_jko_width(inputs: list[Path], out_md: Path, out_csv: Path) -> None:
    """JKO-Flow Table 2: MMD² by network width, single shot vs JKO-Flow."""
    _sweep_table(load_metrics(inputs), "width", PAPER_JKO_WIDTH, PAPER_WIDTHS, "m",
                 "JKO-Flow Table 2 — 2-D toys, MMD² by width m", out_md, out_csv)


TABLES: dict[str, Callable[[list[Path], Path, Path], None]] = {
    "jko-alpha": table_jko_alpha,
    "jko-width": table_jko_width,
}

BENCHMARK_METRICS = ("mmd2", "mmd2_half", "nll_nats", "transport_cost", "train_seconds",
                     "n_parameters")


def write_summary(inputs: list[Path], out_json: Path, out_csv: Path,
                  out_benchmark: Path) -> None:
    """Aggregate metrics: nested JSON (for `dvc metrics diff`), tidy CSV, toy benchmark."""
    df = load_metrics(inputs)
    nested: dict[str, dict[str, dict[str, float]]] = {}
    tidy = []
    for row in df.to_dict("records"):
        for key, value in row.items():
            if key in SUMMARY_KEYS or not isinstance(value, int | float):
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            nested.setdefault(row["method"], {}).setdefault(row["experiment"], {})[key] = value
            tidy.append({"method": row["method"], "experiment": row["experiment"],
                         "dataset": row["dataset"], "metric": key, "value": value})
    write_json(nested, out_json)
    write_text(pd.DataFrame(tidy).to_csv(index=False), out_csv)

    bench = df[df.get("benchmark", pd.Series(False, index=df.index)).fillna(False).astype(bool)]
    lines = ["# Toy benchmark — every method on the same 2-D toys", "",
             "Samples vs the held-out test split; MMD² is the unbiased U-statistic "
             "(`mmd2`: exp(-‖x−y‖²), `mmd2_half`: exp(-‖x−y‖²/2)); NLL in nats per example.",
             "", "| dataset | method | experiment | " + " | ".join(BENCHMARK_METRICS) + " |",
             "|" + "---|" * (len(BENCHMARK_METRICS) + 3)]
    for row in bench.sort_values(["dataset", "method"]).to_dict("records"):
        cells = [("–" if row.get(m) is None or (isinstance(row.get(m), float)
                                               and math.isnan(row[m]))
                  else f"{row[m]:.4g}") for m in BENCHMARK_METRICS]
        lines.append(f"| {row['dataset']} | {row['method']} | {row['experiment']} | "
                     + " | ".join(cells) + " |")
    write_text("\n".join(lines) + "\n", out_benchmark)
