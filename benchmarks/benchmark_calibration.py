"""Calibrate the cross-method benchmark (issue 24): parameters and CPU seconds per step.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/benchmark_calibration.py [--methods m ...]
[--dataset checkerboard] [--probe 100] [--full] [--set method.key=value ...]``. Builds every
method's benchmark trainer from params.yaml + config/benchmark.yaml (the run config the
profile trains), counts its parameters against ``benchmark.param_target`` and times training
steps with ``time.process_time()`` on one thread (robust to a loaded machine: another process
does not add to it). ``--probe N`` times N steps after 2 warm-up steps and scales the
method's step-count key to ``benchmark.train_seconds``; ``--full`` times the whole configured
training instead (Q-flow's two phases, the flow-matching start and Algorithm 1's refinement,
cost differently per step). Prints one line per method; the numbers go into the comments of
config/benchmark.yaml with the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from otflows.data.toy import sample_toy
from otflows.methods import build_trainer
from otflows.pipeline.config import load_params
from otflows.pipeline.experiments.benchmark import model_parameters, run_config

ROOT = Path(__file__).resolve().parents[1]
# the key whose value scales a method's training length (JKO-Flow: per subproblem, K fixed;
# Monge-Ampère: epochs of n_train / batch_size steps; Q-flow: the flow-matching start, while
# Algorithm 1's refinement steps stay as configured)
STEP_KEY = {"otflow": "iters", "jko": "iters", "cpflow": "iters", "ekp": "iters",
            "qflow": "init_iters", "mongeampere": "epochs", "nsf": "iters", "otcfm": "iters"}


def _config(sets: list[str]) -> dict:
    config = load_params([ROOT / "params.yaml", ROOT / "config/benchmark.yaml"],
                         ROOT / "schemas/params.schema.yaml")
    for item in sets:
        key, value = item.split("=", 1)
        method, name = key.split(".", 1)
        config["benchmark"]["methods"][method][name] = json.loads(value)
    return config


def calibrate(method: str, cfg: dict, train: np.ndarray, budget: float, probe: int,
              full: bool) -> dict:
    """Parameters, CPU seconds per step and the step-key value that fills ``budget``."""
    torch.manual_seed(0)
    trainer = build_trainer(method, cfg, {"train": train}, 0, torch.device("cpu"))
    n = trainer.n_steps if full else min(probe, trainer.n_steps - 2)
    if not full:
        for _ in range(2):
            trainer.train_step()
    start = time.process_time()
    for _ in range(n):
        trainer.train_step()
    per_step = (time.process_time() - start) / n
    key = STEP_KEY[method]
    scale = budget / (per_step * trainer.n_steps)
    params = model_parameters(method, cfg, trainer.n_parameters())
    return {"method": method, "params": params, "steps": trainer.n_steps,
            "cpu_s_per_step": per_step, "cpu_s_run": per_step * trainer.n_steps,
            "key": key, "value": cfg[key], "value_for_budget": cfg[key] * scale}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="*")
    p.add_argument("--dataset", default="checkerboard")
    p.add_argument("--probe", type=int, default=100)
    p.add_argument("--full", action="store_true")
    p.add_argument("--set", nargs="*", default=[], help="method.key=JSON value overrides")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = _config(args.set)
    bench = config["benchmark"]
    train = sample_toy(args.dataset, config["data"]["toy"]["n_train"], np.random.default_rng(0))
    target, budget = bench["param_target"], bench["train_seconds"]
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one "
          f"thread; dataset {args.dataset}; target {target} params, {budget:g} s")
    for method in args.methods or list(bench["methods"]):
        cfg = run_config(config, method, args.dataset)
        r = calibrate(method, cfg, train, budget, args.probe, args.full)
        off = r["params"] / target - 1
        print(f"{method:12s} params {r['params']:6d} ({off:+.0%})  {r['steps']:5d} steps  "
              f"{1e3 * r['cpu_s_per_step']:7.2f} ms/step  {r['cpu_s_run']:6.1f} s/run  "
              f"{r['key']} {r['value']} -> {r['value_for_budget']:.0f} for {budget:g} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
