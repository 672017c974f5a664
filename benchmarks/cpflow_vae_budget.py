"""C3's budget curve: validation −ELBO of the CP-Flow and the Gaussian posterior against steps.

Both arms train on the prepared MNIST file's ``train_pixels`` with the ``cpflow.vae`` settings
of params.yaml (overridable), the same seed, hence the same batches and ε; at each checkpoint
the ``validation_pixels`` are scored with ``--draws`` reparameterised draws per image (exact
log det). Prints per checkpoint both means, their difference and its paired standard error
over images (which omits the seed-to-seed spread of training: rerun with ``--seed``).

Run: ``python benchmarks/cpflow_vae_budget.py --data data/processed/mnist5k.npz
[--steps 1000,1500,2000] [--seed 0] [--set icnn_width=64 icnn_depth=5]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from otflows.methods.cpflow.config import VAEFlowConfig
from otflows.methods.cpflow.vae import VAEFlowTrainer

ROOT = Path(__file__).resolve().parents[1]


def curve(cfg: dict, posterior: str, data: dict, steps: list[int], seed: int,
          draws: int) -> tuple[dict[int, np.ndarray], float]:
    """Per-image validation −ELBO at each of ``steps`` and the CPU seconds it took."""
    run = {**cfg, "task": "vae", "posterior": posterior, "iters": max(steps)}
    t = VAEFlowTrainer(VAEFlowConfig.from_dict(run), data["train_pixels"], seed, "cpu", None,
                       1e-6)
    x = torch.as_tensor(data["validation_pixels"], dtype=torch.float32) / 255.0
    out, c0 = {}, time.process_time()
    for s in range(1, max(steps) + 1):
        t.train_step()
        if s in steps:
            with torch.no_grad():
                out[s] = t.elbo_terms(x, 100, draws).total.numpy()
    return out, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--steps", default="1000,1500,2000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--set", nargs="*", default=[], help="key=value overrides of cpflow.vae")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())["cpflow"]["vae"]
    cfg = {k: v for k, v in cfg.items() if k != "eval_samples"}
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = yaml.safe_load(v)
    steps = sorted(int(s) for s in args.steps.split(","))
    with np.load(args.data) as f:
        data = {k: f[k] for k in ("train_pixels", "validation_pixels")}
    cp, cpu_cp = curve(cfg, "cpflow", data, steps, args.seed, args.draws)
    ga, cpu_ga = curve(cfg, "gaussian", data, steps, args.seed, args.draws)
    print(f"seed {args.seed}; CPU s: CP-Flow {cpu_cp:.1f}, Gaussian {cpu_ga:.1f}")
    print(f"{'step':>6s} {'CP-Flow':>9s} {'Gaussian':>9s} {'diff':>8s} {'paired se':>10s}")
    for s in steps:
        d = cp[s] - ga[s]
        print(f"{s:6d} {cp[s].mean():9.3f} {ga[s].mean():9.3f} {d.mean():+8.3f} "
              f"{d.std(ddof=1) / math.sqrt(d.size):10.3f}")


if __name__ == "__main__":
    main()
