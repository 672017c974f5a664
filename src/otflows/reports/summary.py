"""The metrics summary over every run: nested JSON (for `dvc metrics diff`), a tidy CSV and
the toy benchmark table (every method on the same 2-D toys), written by ``otflows summary``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from otflows.pipeline.checkpoint import write_json, write_text
from otflows.reports.common import load_metrics

__all__ = ["write_summary", "SUMMARY_KEYS", "BENCHMARK_METRICS"]

# Identity and configuration columns of a metrics file: not metrics, left out of the summary.
SUMMARY_KEYS = ("method", "experiment", "dataset", "sweep", "device", "seed", "alpha", "K",
                "width", "benchmark", "config_hash", "resumed_from")
# Columns of the toy benchmark table, in order.
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
