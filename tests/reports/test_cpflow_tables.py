"""CP-Flow Tables 1 and 2: the paper's rows, ours per column, `not run` with its reason."""

from __future__ import annotations

import json
from pathlib import Path

from otflows.reports import TABLES


def _metrics(tmp: Path, experiment: str, dataset: str, **values: float) -> Path:
    path = tmp / "cpflow" / f"{experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": "cpflow", "experiment": experiment,
                                "dataset": dataset, **values}))
    return path


def test_table1_has_five_columns_ours_and_not_run_with_the_fetch_command(tmp_path):
    runs = [_metrics(tmp_path, "miniboone", "miniboone", nll_nats=11.5, nll_nats_stderr=0.1,
                     n_parameters=1000.0, train_steps=1000.0, n_test_points=500.0),
            _metrics(tmp_path, "power", "power", nll_nats=-0.1, nll_nats_stderr=0.02,
                     n_parameters=900.0, train_steps=1000.0, n_test_points=500.0)]
    md, csv = tmp_path / "t1.md", tmp_path / "t1.csv"
    TABLES["cpflow-miniboone"](runs, md, csv)
    text = md.read_text()
    assert "| model | POWER | GAS | HEPMASS | MINIBOONE | BSDS300 |" in text
    assert "| CP-Flow (paper) | -0.52 | -10.36 | 16.93 | 10.58 | -154.99 |" in text
    assert "| MAF | -0.24 | -10.08 | 17.70 | 11.75 | -155.69 |" in text
    assert ("| CP-Flow (ours) | -0.10 ± 0.04 | not run | not run | 11.50 ± 0.20 | not run |"
            in text)
    assert "| MINIBOONE | 1,000 steps, 500 test points, 1,000 parameters | cpflow/miniboone |" \
        in text
    assert "| GAS | not run: data/raw/gas" in text and "snakemake download_tabular" in text
    assert "ours" in csv.read_text().lower()


def test_table2_has_mnist_and_cifar10_with_cifar10_not_run_by_default(tmp_path):
    runs = [_metrics(tmp_path, "mnist5k", "mnist5k", bpd=1.9, n_parameters=5000.0,
                     train_steps=120.0, n_test_points=8.0)]
    md = tmp_path / "t2.md"
    TABLES["cpflow-mnist"](runs, md, tmp_path / "t2.csv")
    text = md.read_text()
    assert "| CP-Flow (paper) | MNIST | 1.020 | 2.9M | paper Table 2 |" in text
    assert "| CP-Flow (paper) | CIFAR-10 | 3.400 | 1.9M | paper Table 2 |" in text
    assert "| RQ-NSF | MNIST" not in text and "| RQ-NSF | CIFAR-10 | 3.380 | 11.8M |" in text
    assert ("| CP-Flow (ours) | mnist5k | 1.900 | 5,000 | cpflow/mnist5k (120 steps, 8 test "
            "points, 5,000 parameters) |") in text
    assert "| CP-Flow (ours) | CIFAR-10 | not run | – | not run: paper profile only" in text
    with_cifar = runs + [_metrics(tmp_path, "cifar10", "cifar10", bpd=4.1,
                                  n_parameters=7000.0)]
    TABLES["cpflow-mnist"](with_cifar, md, tmp_path / "t2.csv")
    assert "| CP-Flow (ours) | cifar10 | 4.100 | 7,000 | cpflow/cifar10 (" in md.read_text()
