"""`otflows train` and `otflows evaluate`: one run of one registered method, resumable."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from otflows.cli.io import (
    EXIT_DIVERGED,
    check_finite,
    check_points,
    load_npz,
    save_npz,
    set_threads,
)
from otflows.methods import build_trainer
from otflows.pipeline.checkpoint import write_json, write_text

__all__ = ["add_commands"]


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from otflows.methods.base import resolve_device
    from otflows.pipeline.checkpoint import save_checkpoint
    from otflows.pipeline.config import config_hash
    from otflows.pipeline.tracking import git_commit
    from otflows.pipeline.training import DivergenceError, previous_path, run_training

    set_threads(args.threads)
    cfg = json.loads(args.config)
    data = load_npz(args.data, "train")
    check_finite(data["train"], f"{args.data}: train")
    check_points(data["train"], f"{args.data}: train")
    device = resolve_device(args.device)
    key = f"{args.method}/{args.experiment}"
    chash = config_hash({"method": args.method, "cfg": cfg, "seed": args.seed,
                         "data": Path(args.data).name})
    torch.manual_seed(args.seed)
    trainer = build_trainer(args.method, cfg, data, args.seed, device)
    out = Path(args.out)
    resume = out.with_name("resume.pt")
    started_ms = int(time.time() * 1000)
    history, seconds = [], 0.0
    if args.init_from:
        history, seconds = _continue_from(trainer, cfg, args.init_from, args.init_history)
    try:
        result = run_training(trainer, run_key=key, config_hash=chash, resume_path=resume,
                              checkpoint_every=args.checkpoint_every,
                              log_every=args.log_every, progress=not args.no_progress,
                              history=history, seconds=seconds)
    except DivergenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    meta = {"method": args.method, "experiment": args.experiment, "dataset": args.dataset,
            "seed": args.seed, "device": str(device), "config_hash": chash,
            "train_seconds": result.train_seconds, "n_parameters": trainer.n_parameters(),
            "resumed_from": result.resumed_from}
    # History and record first, the model last: the model's presence marks completion.
    columns = sorted({k for row in result.history for k in row} - {"step"})
    lines = [",".join(["step", *columns])]
    lines += [",".join([str(int(r["step"])), *(repr(r[c]) if c in r else "" for c in columns)])
              for r in result.history]
    write_text("\n".join(lines) + "\n", args.history)
    record = {"key": key, "method": args.method, "experiment": args.experiment,
              "dataset": args.dataset, "config": cfg, "seed": args.seed,
              "started_ms": started_ms, "finished_ms": int(time.time() * 1000),
              "tags": {"git_commit": git_commit(), "method": args.method,
                       "experiment": args.experiment, "dataset": args.dataset,
                       "rule": args.rule, "config_hash": chash, "device": str(device)},
              "train_seconds": result.train_seconds, "n_parameters": trainer.n_parameters()}
    record["record_hash"] = config_hash({k: v for k, v in record.items()
                                         if k not in ("started_ms", "finished_ms")})
    write_json(record, args.record)
    save_checkpoint({"meta": meta, "config": cfg, "state": result.state}, out)
    resume.unlink(missing_ok=True)
    previous_path(resume).unlink(missing_ok=True)
    return 0


def _continue_from(trainer, cfg: dict, checkpoint: str, history_csv: str | None
                   ) -> tuple[list[dict[str, float]], float]:
    """Put a JKO trainer at subproblem 2 from a finished single-shot run of the same config;
    return that run's history (tagged subproblem 1) and training seconds."""
    from otflows.pipeline.checkpoint import load_checkpoint
    from otflows.pipeline.tracking import read_history

    if not hasattr(trainer, "continue_from_single_shot"):
        raise SystemExit(f"error: --init-from is for JKO-Flow runs; {type(trainer).__name__} "
                         f"cannot continue from another run")
    ckpt = load_checkpoint(checkpoint)
    expected = {**cfg, "K": 1}
    if ckpt.get("config") != expected:
        raise SystemExit(f"error: {checkpoint} was trained with {ckpt.get('config')}; JKO "
                         f"subproblem 1 needs exactly {expected}")
    trainer.continue_from_single_shot(ckpt["state"])
    rows = read_history(Path(history_csv)) if history_csv else []
    return [{**row, "subproblem": 1.0} for row in rows], float(ckpt["meta"]["train_seconds"])


# --------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from otflows.methods.base import resolve_device
    from otflows.metrics.mmd import mmd2_pair
    from otflows.pipeline.checkpoint import CorruptFileError, load_checkpoint, set_aside

    set_threads(args.threads)
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except CorruptFileError as err:
        aside = set_aside(args.checkpoint)  # so the next `snakemake` retrains it
        print(f"error: {err}. It was set aside as {aside}; rerun snakemake to retrain it",
              file=sys.stderr)
        return 2
    data = load_npz(args.data, "train")
    cfg = ckpt["config"]
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    trainer = build_trainer(args.method, cfg, data, args.seed, device)
    trainer.load_state_dict(ckpt["state"])
    # A data file without `test` (the Ising energy) is scored by the method alone: no MMD.
    test = data["test"] if "test" in data else np.zeros((0, data["train"].shape[1]))
    if args.bench_eval:  # the same test points for every method of the benchmark
        test = test[: args.eval_samples]
    ev = trainer.evaluate(test, args.eval_samples, args.seed)
    bad = {k: v for k, v in ev.metrics.items() if not np.isfinite(v)}
    if bad:
        print(f"error: {args.method}/{args.experiment}: non-finite metrics {bad}; "
              f"no metrics file written", file=sys.stderr)
        return EXIT_DIVERGED
    absurd = {k: v for k, v in ev.metrics.items() if k.startswith("nll") and "stderr" not in k
              and abs(v) > args.max_nll_per_dim * max(1, test.shape[1])}
    if absurd:
        print(f"error: {args.method}/{args.experiment}: {absurd} is beyond the sanity bound "
              f"run.max_nll_per_dim = {args.max_nll_per_dim} nats per dimension (d = "
              f"{test.shape[1]}): the run diverged; no metrics file written. Lower the "
              f"learning rate, or delete {args.checkpoint} to retrain", file=sys.stderr)
        return EXIT_DIVERGED
    # Counts (n_parameters, n_maps, ...) stay integers; everything else is a float.
    scores = {k: int(v) if k.startswith("n_") else float(v) for k, v in ev.metrics.items()}
    metrics = {**ckpt["meta"], **scores,
               **(mmd2_pair(ev.samples, test) if len(test) >= 2 else {}),
               "alpha": cfg.get("alpha"), "K": cfg.get("K"), "width": cfg.get("width"),
               "benchmark": 1 if args.benchmark else None,
               **(_bench_metrics(trainer, ev.samples, test, data["train"], args)
                  if args.bench_eval else {})}
    metrics = {k: v for k, v in metrics.items() if v is not None}
    # the sweep values travel with the samples: a figure need not parse them from names
    sweep_values = {k: np.asarray(float(metrics[k])) for k in ("alpha", "width") if k in metrics}
    arrays = {"samples": np.asarray(ev.samples, dtype=np.float64), **sweep_values,
              **({"test": test} if "test" in data else {}),
              **{k: np.asarray(v) for k, v in ev.extras.items()}}
    if args.density_grid > 0 and test.shape[1] == 2:
        lo, hi = np.quantile(test, 0.005, axis=0), np.quantile(test, 0.995, axis=0)
        pad = 0.15 * (hi - lo)
        gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], args.density_grid)
        gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], args.density_grid)
        xx, yy = np.meshgrid(gx, gy)
        arrays.update(grid_x=gx, grid_y=gy, grid_logp=trainer.log_density(
            np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape))
    save_npz(args.out_samples, **arrays)
    write_json(metrics, args.out_metrics)
    return 0


def _bench_metrics(trainer, samples: np.ndarray, test: np.ndarray, train: np.ndarray,
                   args: argparse.Namespace) -> dict[str, float]:
    """The cross-method benchmark's extra metrics: the exact empirical W₂² between the
    generated and the test samples, its noise floor (a train subset of the same size against
    the same test points: what W₂² ≈ 0 means at this n), and the CPU seconds per 10k samples
    of ``trainer.generate`` (timed once on this one thread, after a 100-sample warm-up)."""
    from otflows.metrics.transport import empirical_w2sq

    n = min(len(samples), len(test), len(train))
    out = {"w2sq": empirical_w2sq(samples[:n], test[:n]),
           "w2sq_floor": empirical_w2sq(train[:n], test[:n]), "w2sq_points": n}
    trainer.generate(min(100, args.sample_timing), args.seed)
    start = time.process_time()
    drawn = trainer.generate(args.sample_timing, args.seed)
    seconds = time.process_time() - start
    if drawn.shape != (args.sample_timing, test.shape[1]) or not np.isfinite(drawn).all():
        raise SystemExit(f"error: {args.method}/{args.experiment}: generate({args.sample_timing})"
                         f" returned shape {drawn.shape} or non-finite values")
    return {**out, "sample_seconds_per_10k": seconds * 1e4 / args.sample_timing,
            "sample_points": args.sample_timing,
            "budget_seconds": args.bench_budget, "param_target": args.bench_param_target,
            "machine": machine()}


def machine() -> str:
    """This machine in words: CPU model, core count, OS (the benchmark's footer)."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``evaluate`` on the main subparsers."""
    tr = sub.add_parser("train", help="train one run (resumes from its last checkpoint)")
    ev = sub.add_parser("evaluate", help="evaluate one trained run")
    for q in (tr, ev):
        q.add_argument("--method", required=True)
        q.add_argument("--experiment", required=True)
        q.add_argument("--dataset", required=True)
        q.add_argument("--data", required=True, help="prepared .npz with train/test")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default="auto")
        q.add_argument("--threads", type=int, default=1)
    tr.add_argument("--config", required=True, help="the run config as JSON")
    tr.add_argument("--out", required=True, help="final checkpoint (model.pt)")
    tr.add_argument("--history", required=True, help="training history CSV")
    tr.add_argument("--record", required=True, help="run record JSON for MLflow")
    tr.add_argument("--rule", default="train")
    tr.add_argument("--checkpoint-every", type=int, default=100)
    tr.add_argument("--log-every", type=int, default=10)
    tr.add_argument("--no-progress", action="store_true")
    tr.add_argument("--init-from", help="JKO-Flow: the finished single-shot model.pt to "
                    "continue from (its training is subproblem 1)")
    tr.add_argument("--init-history", help="that run's history CSV, prepended to this one's")
    tr.set_defaults(func=cmd_train)
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--eval-samples", type=int, default=5000)
    ev.add_argument("--density-grid", type=int, default=0)
    ev.add_argument("--benchmark", action="store_true", help="list in the toy benchmark")
    ev.add_argument("--bench-eval", action="store_true", help="a cross-method benchmark "
                    "run: the first --eval-samples test points; W2^2, its floor, sampling time")
    ev.add_argument("--sample-timing", type=int, default=10000,
                    help="with --bench-eval: samples drawn once to time generate()")
    ev.add_argument("--bench-budget", type=float, help="with --bench-eval: the training "
                    "budget (s) the run was calibrated to, recorded with its metrics")
    ev.add_argument("--bench-param-target", type=int, help="with --bench-eval: the "
                    "parameter target, recorded with its metrics")
    ev.add_argument("--max-nll-per-dim", type=float, default=float("inf"),
                    help="fail on an |NLL| above this many nats per dimension (diverged)")
    ev.add_argument("--out-metrics", required=True)
    ev.add_argument("--out-samples", required=True)
    ev.set_defaults(func=cmd_evaluate)
