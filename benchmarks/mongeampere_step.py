"""Time one Monge-Ampère flow training iteration on the paper's two configurations.

Usage: ``python benchmarks/mongeampere_step.py [--iters N] [--only mnist|ising]``, or
``--ab [--iters N]``: one training step (NLL of eq. 6, backward) of the default profile's
MNIST setting (d 784, width 128, RK4 steps and ε of params.yaml, batch 100, float32, one
thread), integrated in x and in hidden coordinates, alternating in one process; prints
the median CPU seconds of each. Each
configuration runs in a fresh subprocess (2 threads, float32, fresh initialisation) so its
peak RSS (``resource.getrusage``) is its own; prints the median seconds per iteration (RK4
forward, backward, Adam step) and the peak RSS against the original code on this machine.

* mnist: d 784, width 1024, 100 RK4 steps, ε 0.1, batch 100 (App. C, Table 2), on
  MNIST-shaped logit-space data (random pixels, dequantised, logit with λ = 1e-6);
* ising: L 16 (d 256), width 512, 50 RK4 steps, ε 0.1, batch 64, symmetrised (§4.2).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

# The original code (wangleiphy/MongeAmpereFlow) on this machine, 2 threads: median seconds
# per iteration and peak RSS; ours must take at most half of each.
CONFIGS: dict[str, dict] = {
    "mnist": {"reference_s": 8.46, "reference_gib": 6.2, "default_iters": 4,
              "cfg": {"task": "density", "width": 1024, "epsilon": 0.1, "steps": 100,
                      "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 100, "epochs": 1,
                      "monitor": 0, "dtype": "float32"}},
    "ising": {"reference_s": 1.11, "reference_gib": None, "default_iters": 10,
              "cfg": {"task": "ising", "width": 512, "epsilon": 0.1, "steps": 50, "lr": 1e-3,
                      "weight_decay": 1e-3, "batch_size": 64, "iters": 1000,
                      "symmetrize": True, "snapshots": 0, "dtype": "float32"}},
}


def _trainer(name: str):
    import numpy as np
    import torch

    from otflows.methods.mongeampere import make_trainer

    spec = CONFIGS[name]
    if name == "mnist":
        from otflows.data.mnist import dequantize, logit_transform

        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(2000, 784)) * (rng.random((2000, 784)) < 0.2)
        data = logit_transform(dequantize(pixels, rng)).astype(np.float32)
        return make_trainer(spec["cfg"], data, 0, torch.device("cpu"))
    from otflows.data.ising import ising_problem

    arrays = ising_problem(16).arrays()
    return make_trainer(spec["cfg"], arrays["train"], 0, torch.device("cpu"), arrays=arrays)


def run_one(name: str, n_iters: int) -> dict:
    """Train ``n_iters`` (+1 warm-up) steps of config ``name`` here; timings and peak RSS."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(2)
    trainer = _trainer(name)
    trainer.train_step()  # warm-up: allocator, thread pool
    times = []
    for _ in range(n_iters):
        t0 = time.perf_counter()
        logs = trainer.train_step()
        times.append(time.perf_counter() - t0)
        if not math.isfinite(logs["loss"]):
            raise FloatingPointError(f"{name}: non-finite loss {logs}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"name": name, "median_s": float(np.median(times)), "min_s": float(min(times)),
            "peak_gib": peak_kib / 2**20, "steps_per_s": 1.0 / float(np.median(times))}


def ab(n_iters: int) -> None:
    """Alternate x / hidden-coordinate steps of the default MNIST setting; median CPU s."""
    from pathlib import Path

    import numpy as np
    import torch
    import yaml

    from otflows.distributions import standard_normal_log_prob
    from otflows.methods.mongeampere import SoftplusPotential, integrate

    torch.set_num_threads(1)
    cfg = yaml.safe_load(Path("params.yaml").read_text())["mongeampere"]["mnist"]
    x = torch.randn(cfg["batch_size"], 784, generator=torch.Generator().manual_seed(0)) * 4
    pot = SoftplusPotential(784, cfg["width"], torch.float32,
                            torch.Generator().manual_seed(0))

    def step(coordinates: str) -> float:
        t0 = time.process_time()
        out = integrate(pot, x, cfg["epsilon"], cfg["steps"], reverse=True,
                        coordinates=coordinates)
        (out.delta_logp - standard_normal_log_prob(out.x)).mean().backward()
        pot.zero_grad(set_to_none=True)
        return time.process_time() - t0

    times: dict[str, list[float]] = {"x": [], "hidden": []}
    for i in range(n_iters + 1):
        for name in times:
            t = step(name)
            if i:  # the first round warms up
                times[name].append(t)
    for name, t in times.items():
        print(f"{name:<7} median CPU s/step {np.median(t):.3f} (width {cfg['width']}, "
              f"{cfg['steps']} RK4 steps, batch {cfg['batch_size']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per config")
    parser.add_argument("--only", choices=sorted(CONFIGS), default=None)
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--ab", action="store_true", help="x vs hidden coordinates, default")
    args = parser.parse_args()
    if args.ab:
        ab(args.iters or 5)
        return
    if args.child:
        n = args.iters or CONFIGS[args.child]["default_iters"]
        print(json.dumps(run_one(args.child, n)))
        return
    rows = []
    for name in [args.only] if args.only else list(CONFIGS):
        cmd = [sys.executable, __file__, "--child", name]
        if args.iters:
            cmd += ["--iters", str(args.iters)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'config':<7} {'median s/iter':>13} {'min s':>7} {'target s':>9} {'original s':>10} "
          f"{'peak RSS GiB':>12} {'target GiB':>10} {'original GiB':>12} {'iter/s':>7}")
    for r in rows:
        spec = CONFIGS[r["name"]]
        gib = spec["reference_gib"]
        print(f"{r['name']:<7} {r['median_s']:>13.3f} {r['min_s']:>7.3f} "
              f"{spec['reference_s'] / 2:>9.2f} {spec['reference_s']:>10.2f} "
              f"{r['peak_gib']:>12.2f} {('-' if gib is None else f'{gib / 2:.1f}'):>10} "
              f"{('-' if gib is None else f'{gib:.1f}'):>12} {r['steps_per_s']:>7.2f}")
    print("mnist: d 784, h 1024, 100 RK4 steps, eps 0.1, batch 100; ising: L 16, h 512, 50 "
          "steps, eps 0.1, batch 64, symmetrised; float32, 2 threads, Adam step included")


if __name__ == "__main__":
    main()
