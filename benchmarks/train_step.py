"""Time one OT-Flow training iteration (RK4 forward, backward, Adam step) on two configs.

Usage: ``python benchmarks/train_step.py [--iters N] [--threads T] [--only NAME]``. Each
configuration runs in a fresh subprocess (fresh initialisation) so its peak RSS
(``resource.getrusage``) is its own; prints the median ms per iteration and the peak RSS
against the targets (2 threads by default; ``--threads 1`` gives CPU times that a busy
machine distorts less).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

CONFIGS: dict[str, dict] = {
    # (1) toy: 8 Gaussians in 2-D, width 32, 2 ResNet layers, batch 5000, nt 8, float64
    "toy": {"d": 2, "data": "8gaussians", "target_ms": 238.0, "target_gib": None,
            "reference": "476 ms, 1.7 GiB",
            "cfg": {"width": 32, "n_layers": 2, "rank": 10, "nt": 8, "nt_eval": 8,
                    "alpha": 5.0, "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.01,
                    "weight_decay": 0.0, "batch_size": 5000, "iters": 1000, "K": 1,
                    "dtype": "float64"}},
    # (2) MINIBOONE-shaped: d 43, width 256, 2 layers, batch 2000, nt 6, α = (1, 100, 15)
    "miniboone": {"d": 43, "data": "normal", "target_ms": 2700.0, "target_gib": 4.0,
                  "reference": "27.0 s, 8.0 GiB",
                  "cfg": {"width": 256, "n_layers": 2, "rank": 10, "nt": 6, "nt_eval": 6,
                          "alpha": 100.0, "alpha_L": 1.0, "alpha_R": 15.0, "lr": 0.001,
                          "weight_decay": 0.0, "batch_size": 2000, "iters": 1000, "K": 1,
                          "dtype": "float32"}},
}


def eight_gaussians(n: int, seed: int):
    """FFJORD's 8 Gaussians: centres on the circle of radius √2·(±1, 0)…, noise 0.5, ×1/1.414."""
    import numpy as np

    rng = np.random.default_rng(seed)
    angles = np.arange(8) * (math.pi / 4)
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1)  # scale 4, FFJORD toy_data
    x = centres[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, 2))
    return x / 1.414


def run_one(name: str, n_iters: int, threads: int = 2) -> dict:
    """Train ``n_iters`` steps of config ``name`` in this process; return timings and RSS."""
    import resource

    import numpy as np
    import torch

    from otflows.methods.otflow import make_trainer

    torch.set_num_threads(threads)
    spec = CONFIGS[name]
    n_data = 20000
    if spec["data"] == "8gaussians":
        data = eight_gaussians(n_data, 0)
    else:
        data = np.random.default_rng(0).standard_normal((n_data, spec["d"]))
    trainer = make_trainer(spec["cfg"], data, seed=0, device=torch.device("cpu"))
    times, cpu = [], []
    for _ in range(n_iters):
        t0, c0 = time.perf_counter(), time.process_time()
        logs = trainer.train_step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if not math.isfinite(logs["loss"]):
            raise FloatingPointError(f"{name}: non-finite loss {logs}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"name": name, "median_ms": 1e3 * float(np.median(times)),
            "min_ms": 1e3 * min(times), "cpu_ms": 1e3 * float(np.median(cpu)),
            "peak_gib": peak_kib / 2**20, "loss": logs["loss"], "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=None,
                        help="iterations per config (default: 20 toy, 4 miniboone)")
    parser.add_argument("--only", choices=sorted(CONFIGS), default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--omp-passive", action="store_true",
                        help="run the children with OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads "
                             "sleep instead of spinning; far less sensitive to other jobs)")
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n = args.iters or (20 if args.child == "toy" else 4)
        print(json.dumps(run_one(args.child, n, args.threads)))
        return
    rows = []
    for name in [args.only] if args.only else list(CONFIGS):
        cmd = [sys.executable, __file__, "--child", name, "--threads", str(args.threads)]
        if args.iters:
            cmd += ["--iters", str(args.iters)]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"} if args.omp_passive else None
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'config':<10} {'median ms/iter':>15} {'min ms':>9} {'target ms':>10} "
          f"{'peak RSS GiB':>13} {'target GiB':>11} {'CPU ms/iter':>12} {'load':>5}  "
          f"reference (same machine)")
    for r in rows:
        spec = CONFIGS[r["name"]]
        gib = spec["target_gib"]
        print(f"{r['name']:<10} {r['median_ms']:>15.1f} {r['min_ms']:>9.1f} "
              f"{spec['target_ms']:>10.0f} {r['peak_gib']:>13.2f} "
              f"{('-' if gib is None else f'{gib:.1f}'):>11} {r['cpu_ms']:>12.1f} "
              f"{r['load']:>5.1f}  {spec['reference']}")
    print("toy: 8 Gaussians d=2, width 32, n_layers 2, batch 5000, nt 8, float64; "
          "miniboone: N(0, I) d=43, width 256, n_layers 2, batch 2000, nt 6, "
          f"(alpha_L, alpha, alpha_R) = (1, 100, 15), float32; {args.threads} thread(s), Adam step "
          f"included; OMP_WAIT_POLICY={'PASSIVE' if args.omp_passive else 'default'};\n"
          "CPU ms = process CPU time of both threads; load = 1-min load average of the machine "
          "(other jobs on the 2 cores inflate the wall times)")


if __name__ == "__main__":
    main()
