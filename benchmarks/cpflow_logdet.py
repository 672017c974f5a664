"""CP-Flow: one training step with the CG surrogate (Alg. 2) against backpropagating through
the exact log det, at d = 2, 43 and 784 (convolutional ICNN): median time and peak memory;
and (``--eval``) the exact test log-density at evaluation against d.

The ``--eval`` rows score 1024 points (64 at d = 784, where one 784×784 Hessian per point
dominates) with the fully connected ICNN of the tabular benchmark (width 64, 10 hidden
layers, float32, one block) at d = 2, 8, 43, 128 and 784: the closed-form Hessian
(``ICNN.hessian``) in row chunks, then its Cholesky factor. The original code's exact log p of 1024
points at d = 43 took 186 ms and 0.40 GiB on the issue's machine (``cpflow_step.py``).

Peak memory is the growth of the process's maximum resident set during the measured steps,
each configuration in a fresh process (CPU: no allocator statistics). The surrogate's
memory should not grow with the number of CG iterations (CG runs without a graph): the
surrogate rows force 2, 8 and 32 iterations (tolerance 0).
Run: ``python benchmarks/cpflow_logdet.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np
import torch

from otflows.methods.cpflow import CPFlowConfig, build_flow

CASES = {  # d: (architecture, depth, width, batch, dtype)
    2: ("fc", 20, 32, 128, "float64"),
    43: ("fc", 10, 64, 1024, "float32"),
    784: ("conv", 3, 16, 8, "float32"),
}


def _cfg(arch: str, depth: int, width: int, batch: int, dtype: str, cg_iter: int) -> dict:
    return {"task": "density", "model": "cpflow", "architecture": arch, "blocks": 1,
            "depth": depth, "width": width, "alpha": 1.0, "activation": "softplus",
            "actnorm": False, "lr": 1e-3, "weight_decay": 0.0,
            "lr_halve_every": 0, "batch_size": batch, "iters": 1, "cg_tol": 1e-30,
            "cg_max_iter": cg_iter, "slq_steps": 2, "slq_probes": 1, "exact_max_dim": 64,
            "invert_tol": 1e-6, "invert_max_iter": 10, "transforms": 1, "monitor_every": 0,
            "dtype": dtype, "compile": False}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(d: int, mode: str, cg_iter: int, threads: int, repeats: int, queue) -> None:
    torch.set_num_threads(threads)
    arch, depth, width, batch, dtype = CASES[d]
    cfg = CPFlowConfig.from_dict(_cfg(arch, depth, width, batch, dtype, cg_iter))
    flow = build_flow(cfg, d, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x = torch.as_tensor(np.random.default_rng(0).standard_normal((batch, d)),
                        dtype=getattr(torch, dtype))
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        if mode == "surrogate":
            loss = flow.surrogate_nll(x, gen, cfg.cg_tol, cfg.cg_max_iter)[0].mean()
        else:
            loss = flow.exact_nll(x, create_graph=True).mean()
        loss.backward()
        opt.step()

    base = _maxrss_mb()
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        step()
        if i:
            times.append(time.perf_counter() - t0)
    queue.put((1000 * statistics.median(times), _maxrss_mb() - base))


EVAL_DIMS = (2, 8, 43, 128, 784)


def _measure_eval(d: int, threads: int, repeats: int, queue) -> None:
    torch.set_num_threads(threads)
    n = 64 if d > 128 else 1024
    cfg = CPFlowConfig.from_dict(_cfg("fc", 10, 64, n, "float32", 1))
    flow = build_flow(cfg, d, torch.Generator().manual_seed(0))
    x = torch.as_tensor(np.random.default_rng(0).standard_normal((n, d)), dtype=torch.float32)
    flow.log_prob(x[:8], "exact")  # warm-up (allocator, kernels)
    base = _maxrss_mb()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        flow.log_prob(x, "exact")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    queue.put((n, 1000 * statistics.median(times), 1000 * statistics.median(cpu),
               _maxrss_mb() - base))


def run_eval(d: int, threads: int, repeats: int) -> tuple[int, float, float, float]:
    """(points, median wall ms, median CPU ms, peak MB) of the exact log p at dimension d,
    in a fresh process."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure_eval, args=(d, threads, repeats, q))
    p.start()
    out = q.get()
    p.join()
    return out


def run(d: int, mode: str, cg_iter: int, threads: int, repeats: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(d, mode, cg_iter, threads, repeats, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    # d = 784 is opt-in: on a loaded 2-core CPU its surrogate rows take minutes. (Its exact
    # branch, a batch of 784x784 float32 Hessians, made MKL's slogdet (LU) print "Parameter 6
    # was incorrect on entry to SLASWP" and run for minutes; log det is now by Cholesky.)
    p.add_argument("--dims", type=int, nargs="+", default=[2, 43], choices=list(CASES))
    p.add_argument("--eval", action="store_true",
                   help="exact log p at evaluation against d (fc ICNN) instead of the steps")
    p.add_argument("--eval-dims", type=int, nargs="+", default=list(EVAL_DIMS))
    args = p.parse_args()
    if args.eval:
        print(f"exact log p, fc ICNN width 64 x 10 hidden, float32, threads {args.threads}")
        print(f"{'d':>4s} {'points':>6s} {'median ms':>10s} {'ms/1024 pts':>11s} "
              f"{'CPU ms':>8s} {'peak MB':>8s}")
        for d in args.eval_dims:
            n, ms, cpu, mb = run_eval(d, args.threads, args.repeats if d <= 128 else 1)
            print(f"{d:4d} {n:6d} {ms:10.1f} {ms * 1024 / n:11.1f} {cpu:8.1f} {mb:8.1f}")
        return
    print(f"{'d':>4s} {'step':28s} {'median ms':>10s} {'peak MB':>9s}")
    for d in args.dims:
        reps = args.repeats if d != 784 else 2
        rows = [(f"surrogate, {k} CG iterations", run(d, "surrogate", k, args.threads, reps))
                for k in (2, 8, 32)]
        rows.append(("exact log det (backprop)", run(d, "exact", 1, args.threads, reps)))
        for name, (ms, mb) in rows:
            print(f"{d:4d} {name:28s} {ms:10.1f} {mb:9.1f}")
        ratio = rows[-1][1][0] / rows[1][1][0]
        print(f"{d:4d} exact / surrogate (8 CG iterations) time: {ratio:.1f}x")


if __name__ == "__main__":
    main()
