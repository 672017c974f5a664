"""CP-Flow side by side with the original code (CW-Huang/CP-Flow), given a checkout of it.

Usage::

    python benchmarks/cpflow_vs_original.py --original PATH [--threads 2] [--rounds 20]

The original is not part of this project (nor installed by it): ``PATH`` is a checkout
whose ``cpflows`` package imports under this project's torch. Both sides run interleaved,
round by round in random order, in one process, on the same random data (d = 43, float32),
so that the ratio holds even where the machine's speed drifts (issue 23):

* **training step** (batch 1024): ours is ``train_step`` of the tabular configuration of
  ``cpflow_step.py`` (ICNN width 64, 10 hidden layers, one block, CG tolerance
  ``--cg-tol``), eager and with ``compile: true`` (the paper profile's setting for
  MINIBOONE and the tabular sets; compiled before the warm-up, its time printed); theirs
  is the loop body of their ``train_tabular.py``: ActNorm,
  ``DeepConvexFlow(ICNN3(43, 64, 10))``, ActNorm, Adam (lr 1e-3, betas (0.9, 0.99), weight
  decay 1e-6), ``-logp(x).mean()``, backward, the gradient norm, the step, at
  ``atol = --cg-tol``. Their loop also calls ``gc.collect()`` after every step (~0.1 s in a
  process of this size): left out unless ``--with-gc-collect``;
* **exact log-density** of 1024 points: ours is ``CPFlow.log_prob(x, "exact")`` (closed-form
  Hessian, Cholesky); theirs is the evaluation pass of ``train_tabular.py``
  (``forward_transform_bruteforce``: one autograd call per row of the Hessian, then slogdet).

Prints the minimum and median of each over the rounds (ms) and the ratios ours / theirs.
Goal (issue 23): <= 0.5 for both.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from cpflow_step import TABULAR, compiled_trainer

from otflows.methods.cpflow import make_trainer

D, BATCH, WIDTH, HIDDEN = 43, 1024, 64, 10


def _import_original(path: Path):
    """The original's modules (icnn, flows) from a checkout at ``path``."""
    if not (path / "cpflows").is_dir():
        raise SystemExit(f"cpflow_vs_original: --original {path}: no cpflows/ package there; "
                         "pass a checkout of https://github.com/CW-Huang/CP-Flow")
    sys.path.insert(0, str(path))
    try:
        from cpflows import flows, icnn
    except Exception as err:  # noqa: BLE001 - any import failure gets one line
        raise SystemExit(f"cpflow_vs_original: --original {path}: importing cpflows failed "
                         f"({type(err).__name__}: {err})") from None
    return icnn, flows


def _original_step(icnn, flows, data: torch.Tensor, tol: float, collect: bool,
                   gen: torch.Generator) -> tuple[Callable[[], None], object]:
    """(one step of train_tabular.py's loop, the flow) on batches drawn from ``data``."""
    net = icnn.ICNN3(D, WIDTH, HIDDEN, softplus_type="softplus", zero_softplus=False,
                     symm_act_first=False)
    flow = flows.SequentialFlow([
        flows.ActNorm(D),
        flows.DeepConvexFlow(net, D, unbiased=False, atol=tol, rtol=0.0, trainable_w0=True),
        flows.ActNorm(D)]).to(dtype=torch.float32)
    optim = torch.optim.Adam(flow.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-6)
    tracer = getattr(flows, "CG_ITERS_TRACER", [])

    def step() -> None:
        x = data[torch.randint(0, data.shape[0], (BATCH,), generator=gen)]
        optim.zero_grad()
        loss = -flow.logp(x).mean()
        loss.backward()
        params = [p for p in flow.parameters() if p.grad is not None]
        float(torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in params]), 2.0))
        optim.step()
        tracer.clear()
        if collect:
            gc.collect()

    return step, flow


def _original_exact(flow, x: torch.Tensor) -> Callable[[], None]:
    """train_tabular.py's test pass on ``x``: eval mode, brute-force log det."""
    def exact() -> None:
        flow.eval()
        for block in flow.flows[1::2]:
            block.no_bruteforce = False
        with torch.no_grad():
            flow.logp(x)
        for block in flow.flows[1::2]:
            block.no_bruteforce = True
        flow.train()

    return exact


def _interleaved(fns: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each function per round, the order shuffled every round (seeded)."""
    order, times = list(fns), {k: [] for k in fns}
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def main() -> None:
    """Parse the command line, build both sides, time them and print the ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--original", type=Path, required=True, help="checkout of CW-Huang/CP-Flow")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--cg-tol", type=float, default=TABULAR["cg_tol"])
    p.add_argument("--with-gc-collect", action="store_true",
                   help="keep the original loop's gc.collect() after every step")
    a = p.parse_args()
    icnn, flows = _import_original(a.original.resolve())
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    data = np.random.default_rng(0).standard_normal((8192, D))
    x = torch.as_tensor(data, dtype=torch.float32)
    ours = make_trainer({**TABULAR, "cg_tol": a.cg_tol}, data, 0, torch.device("cpu"))
    their_step, their_flow = _original_step(icnn, flows, x, a.cg_tol, a.with_gc_collect,
                                            torch.Generator().manual_seed(0))
    test = x[:BATCH]
    compiled, compile_s = compiled_trainer({**TABULAR, "cg_tol": a.cg_tol}, data)
    fns = {"step: ours": ours.train_step, "step: ours compiled": compiled.train_step,
           "step: original": their_step,
           "exact log p: ours": lambda: ours.flow.log_prob(test, "exact"),
           "exact log p: original": _original_exact(their_flow, test)}
    for fn in fns.values():  # warm-up (and the ActNorms' data-dependent initialisation)
        fn()
        fn()
    times = _interleaved(fns, a.rounds)
    print(f"threads {a.threads}, {a.rounds} interleaved rounds, d = {D}, float32, CG tolerance "
          f"{a.cg_tol:g}{', original with gc.collect()' if a.with_gc_collect else ''}; "
          f"first compiled step (compiling) {compile_s:.1f} s")
    print(f"{'':24s} {'min ms':>8s} {'median ms':>10s}")
    for k, v in times.items():
        print(f"{k:24s} {1000 * min(v):8.1f} {1000 * statistics.median(v):10.1f}")
    for what, ours_key in (("step", "step: ours"), ("step", "step: ours compiled"),
                           ("exact log p", "exact log p: ours")):
        o, t = times[ours_key], times[f"{what}: original"]
        print(f"{ours_key} / original = {min(o) / min(t):.2f} (min), "
              f"{statistics.median(o) / statistics.median(t):.2f} (median); goal <= 0.5")


if __name__ == "__main__":
    main()
