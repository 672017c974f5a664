"""Time what every pipeline job pays before it computes: interpreter and import start-up.

Usage: ``python benchmarks/process_start.py [--repeats N]``. Each line runs in a fresh
interpreter and prints the median wall seconds over N runs: ``import torch``; the extra
``import torch._dynamo`` that any ``torch.optim`` step triggers (every method trains with
``torch.optim``; the fork server imports it once for a whole local run); the extra
``import torchdiffeq`` (scipy; only dopri5 users load it); and the
imports of an OT-Flow training job. The default profile starts several hundred such jobs,
so these seconds multiply. Then whole ``otflows`` commands (prepare a toy, train 5 OT-Flow
steps on it, evaluate), wall seconds each, in their own process and through the fork server
that local Snakemake runs use (``otflows.cli.forkserver``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNIPPETS: dict[str, tuple[str, str]] = {
    # name: (setup run first, statement timed after it)
    "import torch": ("", "import torch"),
    "+ import torch._dynamo (torch.optim)": ("import torch", "import torch._dynamo"),
    "+ import torchdiffeq (scipy)": ("import torch", "import torchdiffeq"),
    "OT-Flow job imports (otflows.cli + otflow)": (
        "", "import otflows.cli.main, otflows.methods.otflow, otflows.pipeline.training"),
}

_TIMER = ("import sys, time\n{setup}\nt = time.perf_counter()\n{stmt}\n"
          "print(time.perf_counter() - t)\n")


def _time(setup: str, stmt: str) -> float:
    code = _TIMER.format(setup=setup, stmt=stmt)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


_CFG = {"width": 16, "n_layers": 2, "rank": 10, "nt": 4, "nt_eval": 4, "alpha": 5.0,
        "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.05, "weight_decay": 0.0, "batch_size": 250,
        "iters": 5, "K": 1, "dtype": "float64"}
COMMANDS: dict[str, list[str]] = {
    "prepare toy": ["prepare", "toy", "--name", "moons", "--n-train", "2000", "--n-test",
                    "500", "--seed", "0", "--out", "moons.npz"],
    "train (5 OT-Flow steps)": [
        "train", "--method", "otflow", "--experiment", "b", "--dataset", "moons", "--data",
        "moons.npz", "--config", json.dumps(_CFG), "--seed", "0", "--device", "cpu",
        "--threads", "1", "--no-progress", "--out", "b/model.pt", "--history", "b/h.csv",
        "--record", "b/r.json"],
    "evaluate (500 samples)": [
        "evaluate", "--method", "otflow", "--experiment", "b", "--dataset", "moons", "--data",
        "moons.npz", "--checkpoint", "b/model.pt", "--eval-samples", "500", "--seed", "0",
        "--device", "cpu", "--threads", "1", "--out-metrics", "b/m.json", "--out-samples",
        "b/s.npz"],
}


def _time_commands(repeats: int) -> None:
    """Median wall seconds of each command, own process vs through a fork server."""
    from otflows.cli import forkserver

    exe = str(Path(sys.executable).parent / "otflows")
    base = {k: v for k, v in os.environ.items() if k != forkserver.ENV_VAR}
    server = forkserver.start(export=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([exe, *COMMANDS["prepare toy"]], cwd=tmp, env=base, check=True)
            env = {**base, forkserver.ENV_VAR: server.path}
            subprocess.run([exe, "--help"], cwd=tmp, env=env, check=True,
                           capture_output=True)  # wait until the server has imported
            for name, args in COMMANDS.items():
                row = []
                for e in (base, env):
                    times = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        subprocess.run([exe, *args], cwd=tmp, env=e, check=True,
                                       capture_output=True)
                        times.append(time.perf_counter() - t)
                    row.append(statistics.median(times))
                print(f"otflows {name:37s} {row[0]:7.3f} s own process, {row[1]:6.3f} s "
                      f"forked ({row[0] / row[1]:.1f}x)")
    finally:
        server.stop()


def main() -> None:
    """Print the median start-up cost of each snippet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, (setup, stmt) in SNIPPETS.items():
        times = [_time(setup, stmt) for _ in range(args.repeats)]
        print(f"{name:45s} {statistics.median(times):7.3f} s  "
              f"(min {min(times):.3f}, {args.repeats} runs)")
    _time_commands(args.repeats)


if __name__ == "__main__":
    main()
