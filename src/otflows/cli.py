"""`otflows` command line: the only entry point the Snakemake rules call.

Subcommands: prepare, train, evaluate, figure, table, summary, track, compare.
Every command takes its inputs and outputs as explicit paths and writes them atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from otflows.checkpoint import atomic_write, write_json, write_text

EXIT_DIVERGED = 3


def _load_npz(path: str | Path, *keys: str) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build it with `snakemake {path}`")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in keys if k not in data]
        if missing:
            raise KeyError(f"{path} has no array(s) {missing}; present: {list(data.keys())}")
        return {k: data[k] for k in data.keys()}


def _save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def _check_finite(x: np.ndarray, what: str) -> None:
    bad = int(np.size(x) - np.isfinite(x).sum())
    if bad:
        raise ValueError(f"{what} holds {bad} non-finite value(s); rebuild it with snakemake "
                         f"(delete the file first) or check the raw data")


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _make_trainer(method: str, cfg: dict, data: dict[str, np.ndarray], seed: int, device):
    """``make_trainer`` of ``method`` on the data file's ``train``. A method whose
    ``make_trainer`` takes ``arrays`` also gets the file's other arrays (a test split to
    monitor, or a problem description such as the Ising couplings)."""
    import inspect

    from otflows.methods import get_method

    make = get_method(method).make_trainer
    if "arrays" in inspect.signature(make).parameters:
        rest = {k: v for k, v in data.items() if k != "train"}
        return make(cfg, data["train"], seed, device, arrays=rest)
    return make(cfg, data["train"], seed, device)


# --------------------------------------------------------------------------- prepare
def cmd_prepare_toy(args: argparse.Namespace) -> int:
    from otflows.data.toy import sample_toy

    # Independent streams for train and test, derived from (seed, dataset name).
    root = np.random.SeedSequence([args.seed, *args.name.encode()])
    train_ss, test_ss = root.spawn(2)
    train = sample_toy(args.name, args.n_train, np.random.default_rng(train_ss))
    test = sample_toy(args.name, args.n_test, np.random.default_rng(test_ss))
    _save_npz(args.out, train=train, test=test)
    return 0


def cmd_prepare_ising(args: argparse.Namespace) -> int:
    from otflows.data.ising import ising_problem

    problem = ising_problem(args.L, args.coupling, args.min_eigenvalue)
    _save_npz(args.out, **problem.arrays())
    return 0


# --------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from otflows.checkpoint import save_checkpoint
    from otflows.config import config_hash
    from otflows.methods.base import resolve_device
    from otflows.tracking import git_commit
    from otflows.training import DivergenceError, run_training

    _set_threads(args.threads)
    cfg = json.loads(args.config)
    data = _load_npz(args.data, "train")
    _check_finite(data["train"], f"{args.data}: train")
    device = resolve_device(args.device)
    key = f"{args.method}/{args.experiment}"
    chash = config_hash({"method": args.method, "cfg": cfg, "seed": args.seed,
                         "data": Path(args.data).name})
    torch.manual_seed(args.seed)
    if args.method == "vae":  # the MNIST VAE prepares data; it is not a registered method
        from otflows.data.vae import make_trainer

        trainer = make_trainer(cfg, data["train_pixels"], args.seed, device)
    else:
        trainer = _make_trainer(args.method, cfg, data, args.seed, device)
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
    return 0


def _continue_from(trainer, cfg: dict, checkpoint: str, history_csv: str | None
                   ) -> tuple[list[dict[str, float]], float]:
    """Put a JKO trainer at subproblem 2 from a finished single-shot run of the same config;
    return that run's history (tagged subproblem 1) and training seconds."""
    from otflows.checkpoint import load_checkpoint
    from otflows.tracking import read_history

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

    from otflows.checkpoint import load_checkpoint
    from otflows.methods.base import resolve_device
    from otflows.metrics.mmd import mmd2_pair

    _set_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    data = _load_npz(args.data, "train")
    cfg = ckpt["config"]
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    trainer = _make_trainer(args.method, cfg, data, args.seed, device)
    trainer.load_state_dict(ckpt["state"])
    # A data file without `test` (the Ising energy) is scored by the method alone: no MMD.
    test = data["test"] if "test" in data else np.zeros((0, data["train"].shape[1]))
    ev = trainer.evaluate(test, args.eval_samples, args.seed)
    bad = {k: v for k, v in ev.metrics.items() if not np.isfinite(v)}
    if bad:
        print(f"error: {args.method}/{args.experiment}: non-finite metrics {bad}; "
              f"no metrics file written", file=sys.stderr)
        return EXIT_DIVERGED
    # Counts (n_parameters, n_maps, ...) stay integers; everything else is a float.
    scores = {k: int(v) if k.startswith("n_") else float(v) for k, v in ev.metrics.items()}
    metrics = {**ckpt["meta"], **scores,
               **(mmd2_pair(ev.samples, test) if len(test) >= 2 else {}),
               "alpha": cfg.get("alpha"), "K": cfg.get("K"), "width": cfg.get("width"),
               "benchmark": 1 if args.benchmark else None}
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
    _save_npz(args.out_samples, **arrays)
    write_json(metrics, args.out_metrics)
    return 0


# --------------------------------------------------------------------------- reports
def cmd_figure(args: argparse.Namespace) -> int:
    from otflows import reports

    reports.figure(args.kind)(list(map(Path, args.inputs)), Path(args.out))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from otflows import reports

    reports.table(args.kind)(list(map(Path, args.inputs)), Path(args.out_md), Path(args.out_csv))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from otflows import tables

    tables.write_summary(list(map(Path, args.inputs)), Path(args.out_json), Path(args.out_csv),
                         Path(args.out_benchmark))
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from otflows.tracking import import_records, tracking_uri

    manifest = import_records(list(map(Path, args.records)), Path(args.results),
                              tracking_uri(args.uri), args.experiment)
    write_json(manifest, args.out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from otflows.compare import run_compare

    return run_compare(args.rev_a, args.rev_b, Path(args.repo),
                       Path(args.out) if args.out else None)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `otflows` command."""
    p = argparse.ArgumentParser(prog="otflows", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="prepare a dataset")
    prep_sub = prep.add_subparsers(dest="dataset_kind", required=True)
    toy = prep_sub.add_parser("toy", help="sample a 2-D toy dataset into train/test arrays")
    toy.add_argument("--name", required=True)
    toy.add_argument("--n-train", type=int, required=True)
    toy.add_argument("--n-test", type=int, required=True)
    toy.add_argument("--seed", type=int, required=True)
    toy.add_argument("--out", required=True)
    toy.set_defaults(func=cmd_prepare_toy)
    ising = prep_sub.add_parser("ising", help="the continuous critical Ising model: K + aI, "
                                "its inverse and the exact free energy (Monge-Ampère §4.2)")
    ising.add_argument("--L", type=int, required=True, help="linear size of the torus")
    ising.add_argument("--coupling", type=float, required=True, help="K = J/kT")
    ising.add_argument("--min-eigenvalue", type=float, default=0.1,
                       help="smallest eigenvalue of K + aI (App. B: 0.1)")
    ising.add_argument("--out", required=True)
    ising.set_defaults(func=cmd_prepare_ising)
    from otflows.cli_data import add_data_commands  # real data: download, prepare, not-run

    add_data_commands(prep_sub, sub)
    from otflows.cli_qflow import add_qflow_commands  # Q-flow's two-sample problems

    add_qflow_commands(prep_sub)
    from otflows.cli_cpflow import add_prepare_commands  # CP-Flow's Gaussian data

    add_prepare_commands(prep_sub)

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
    ev.add_argument("--out-metrics", required=True)
    ev.add_argument("--out-samples", required=True)
    ev.set_defaults(func=cmd_evaluate)

    fig = sub.add_parser("figure", help="draw a figure from evaluated runs")
    fig.add_argument("kind")
    fig.add_argument("--inputs", nargs="*", default=[],
                     help="run outputs; none for figures drawn from closed forms")
    fig.add_argument("--out", required=True, help="PNG path (an SVG is written beside it)")
    fig.set_defaults(func=cmd_figure)

    tab = sub.add_parser("table", help="write a table (markdown + CSV) from metrics")
    tab.add_argument("kind")
    tab.add_argument("--inputs", nargs="+", required=True)
    tab.add_argument("--out-md", required=True)
    tab.add_argument("--out-csv", required=True)
    tab.set_defaults(func=cmd_table)

    summ = sub.add_parser("summary", help="aggregate every metrics file")
    summ.add_argument("--inputs", nargs="+", required=True)
    summ.add_argument("--out-json", required=True)
    summ.add_argument("--out-csv", required=True)
    summ.add_argument("--out-benchmark", required=True)
    summ.set_defaults(func=cmd_summary)

    trk = sub.add_parser("track", help="import run records into MLflow")
    trk.add_argument("--records", nargs="+", required=True)
    trk.add_argument("--results", default="results")
    trk.add_argument("--uri", default="sqlite:///mlflow.db")
    trk.add_argument("--experiment", default="otflows")
    trk.add_argument("--out", required=True)
    trk.set_defaults(func=cmd_track)

    cmp_ = sub.add_parser("compare", help="compare committed metrics of two git revisions")
    cmp_.add_argument("rev_a")
    cmp_.add_argument("rev_b")
    cmp_.add_argument("--repo", default=".")
    cmp_.add_argument("--out", default=None)
    cmp_.set_defaults(func=cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `otflows` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
