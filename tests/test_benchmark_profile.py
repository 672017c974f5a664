"""The cross-method benchmark (issue 24): its grid, its equal terms, its table arithmetic, and
its profile end to end at smoke size (``--configfile config/benchmark.yaml config/smoke.yaml``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from otflows.data.toy import sample_toy
from otflows.methods import build_trainer
from otflows.pipeline.config import load_params
from otflows.pipeline.experiments import all_experiments
from otflows.pipeline.experiments.benchmark import model_parameters, run_config
from otflows.reports.benchmark import mean_interval, summarise, table_benchmark

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS = ["otflow", "jko", "cpflow", "ekp", "qflow", "mongeampere", "nsf", "otcfm"]


def _config(*extra: str) -> dict:
    return load_params([ROOT / "params.yaml", *(ROOT / e for e in extra)],
                       ROOT / "schemas/params.schema.yaml")


def test_the_default_profile_has_no_benchmark_runs():
    assert not [e for e in all_experiments(_config(), ROOT) if e.sweep == "benchmark"]


def test_the_grid_is_every_toy_x_method_x_seed():
    config = _config("config/benchmark.yaml")
    runs = [e for e in all_experiments(config, ROOT) if e.sweep == "benchmark"]
    toys, seeds = config["data"]["toy"]["datasets"], config["benchmark"]["seeds"]
    assert list(config["benchmark"]["methods"]) == METHODS
    assert len(seeds) == 3
    assert {(e.method, e.dataset, e.seed) for e in runs} == {
        (m, d, s) for m in METHODS for d in toys for s in seeds}
    assert len(runs) == len(METHODS) * len(toys) * len(seeds)
    for e in runs:
        assert e.name == f"bench-{e.dataset}-s{e.seed}" and e.bench_eval and not e.benchmark
        assert not e.init_from  # JKO-Flow's whole K-step training counts against the budget
        assert e.eval_samples == config["benchmark"]["eval_samples"]
    jko = next(e for e in runs if e.method == "jko")
    assert jko.cfg["K"] == config["jko"]["K"]
    assert jko.cfg["alpha"] == config["jko"]["benchmark_alpha"]


@pytest.mark.parametrize("method", METHODS)
def test_parameter_counts_are_within_20_percent_of_the_target(method):
    config = _config("config/benchmark.yaml")
    target = config["benchmark"]["param_target"]
    cfg = run_config(config, method, "checkerboard")
    train = sample_toy("checkerboard", 600, np.random.default_rng(0))
    trainer = build_trainer(method, cfg, {"train": train}, 0, torch.device("cpu"))
    count = model_parameters(method, cfg, trainer.n_parameters())
    assert abs(count / target - 1) <= 0.2, (
        f"benchmark: {method} has {count} parameters, outside ±20 % of the target {target} "
        f"(benchmark.methods.{method} in params.yaml)")


def test_mean_interval_matches_a_hand_computation():
    # values 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.290994, t_{0.975, 3} = 3.182446
    mean, half = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2, rel=1e-6)
    # three seeds: t_{0.975, 2} = 4.302653; values 0.1, 0.3, 0.2: s = 0.1
    mean, half = mean_interval([0.1, 0.3, 0.2])
    assert (mean, half) == (pytest.approx(0.2), pytest.approx(4.302653 * 0.1 / math.sqrt(3)))
    mean, half = mean_interval([5.0])
    assert mean == 5.0 and math.isnan(half)


def _fake_metrics(root: Path) -> list[Path]:
    paths = []
    for method, mmd in (("otflow", [0.01, 0.02, 0.03]), ("nsf", [0.001, 0.002, 0.003])):
        for seed, value in enumerate(mmd):
            p = root / method / f"bench-checkerboard-s{seed}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            metrics = {"mmd2": value, "mmd2_half": value, "w2sq": 10 * value,
                       "w2sq_floor": 0.05, "w2sq_points": 2000, "train_seconds": 20.0 + seed,
                       "budget_seconds": 20.0, "param_target": 2000, "n_parameters": 2000,
                       "sample_seconds_per_10k": 0.5, "sample_points": 10000,
                       "machine": "test machine"}
            if method == "otflow":
                metrics.update(nll_nats=3.6 + seed / 10, transport_cost=1.0)
            p.write_text(json.dumps(metrics))
            paths.append(p)
    return paths


def test_the_table_shows_intervals_the_best_the_floor_and_the_entropy(tmp_path):
    paths = _fake_metrics(tmp_path)
    md, csv = tmp_path / "benchmark.md", tmp_path / "benchmark.csv"
    table_benchmark(paths, md, csv)
    text = md.read_text()
    half = 4.302653 * 0.01 / math.sqrt(3)  # mmd2 of otflow: 0.01, 0.02, 0.03
    assert f"0.02 ± {half:.2g}" in text
    assert "| checkerboard | nsf | 3 | **0.002 ± " in text  # lowest MMD² in bold
    assert "ln 32 = 3.466" in text and "≥ 3.466 (entropy)" in text
    nsf_row = next(line for line in text.splitlines() if "| nsf |" in line)
    assert nsf_row.split(" | ")[6] == "–"  # no density: no NLL
    assert "train subset vs test" in text and "test machine" in text
    df = pd.read_csv(csv)
    row = df[df["method"] == "otflow"].iloc[0]
    assert row["train_seconds_mean"] == pytest.approx(21.0)
    assert row["budget_ratio_mean"] == pytest.approx(1.05)
    assert row["mmd2_ci95"] == pytest.approx(half, rel=1e-5)
    assert summarise([]).empty


@pytest.mark.slow
def test_the_profile_at_smoke_size_end_to_end(project_copy: Path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile",
                           "config/benchmark.yaml", "config/smoke.yaml"],
                          cwd=project_copy, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-6000:]
    res = project_copy / "results"
    text = (res / "tables/benchmark.md").read_text()
    assert text.count(" ± ") > 50
    assert (res / "figures/benchmark.png").stat().st_size > 10_000
    assert (res / "figures/benchmark.svg").is_file()
    df = pd.read_csv(res / "tables/benchmark.csv")
    assert set(df["method"]) == set(METHODS) and (df["n_seeds"] == 2).all()
    for p in (res / "metrics").glob("*/bench-*.json"):
        m = json.loads(p.read_text())
        for key in ("mmd2", "mmd2_half", "w2sq", "w2sq_floor", "sample_seconds_per_10k",
                    "train_seconds", "n_parameters"):
            assert np.isfinite(m[key]), (p, key)
        assert m["seed"] == int(p.stem.rsplit("-s", 1)[1])  # the run's own seed
    # only the benchmark ran: nothing of the papers' grids
    assert not (res / "tables/claims.md").exists()
    assert {p.name for p in (res / "metrics").glob("*/*.json")} == {
        f"bench-{d}-s{s}.json" for d in ("8gaussians", "moons") for s in (0, 1)}
