"""CIFAR-10: the python-version archive parsed by the restricted unpickler, on a generated
fixture with the real layout; the CLI's prepared file (train/test, dequantised, logit)."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest

from otflows.cli.main import main
from otflows.data import cifar10
from otflows.data.mnist import inverse_logit_transform


def batch(n: int, seed: int) -> tuple[dict, np.ndarray, list]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    return {b"batch_label": b"x", b"labels": labels, b"data": pixels,
            b"filenames": [b"a.png"] * n}, pixels, labels


def make_archive(path, drop: str | None = None) -> dict:
    parts = {}
    with tarfile.open(path, "w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            if name == drop:
                continue
            obj, px, lb = batch(3 if name == "test_batch" else 4, i)
            parts[name] = (px, lb)
            raw = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return parts


def test_read_archive(tmp_path):
    parts = make_archive(tmp_path / "c.tar.gz")
    with (tmp_path / "c.tar.gz").open("rb") as fh:
        out = cifar10.read_archive(fh)
    want = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(out["train"], want)
    np.testing.assert_array_equal(out["test"], parts["test_batch"][0])
    assert out["train"].shape == (20, 3072) and out["test_labels"].tolist() == \
        parts["test_batch"][1]


def test_missing_batch_and_malicious_pickle(tmp_path):
    make_archive(tmp_path / "c.tar.gz", drop="data_batch_3")
    with (tmp_path / "c.tar.gz").open("rb") as fh, \
            pytest.raises(cifar10.Cifar10FormatError, match=r"\['data_batch_3'\] absent"):
        cifar10.read_archive(fh)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(cifar10.Cifar10FormatError, match="refusing to build builtins.print"):
        cifar10.parse_batch(pickle.dumps(Evil()), "evil")
    bad = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(cifar10.Cifar10FormatError, match=r"expected uint8 \[n, 3072\]"):
        cifar10.parse_batch(bad, "bad")


def test_cli_prepare(tmp_path, capsys):
    parts = make_archive(tmp_path / "c.tar.gz")
    out = tmp_path / "cifar10.npz"
    assert main(["prepare", "cifar10", "--raw", str(tmp_path / "c.tar.gz"),
                 "--logit-lambda", "0.05", "--seed", "0", "--out", str(out)]) == 0
    with np.load(out) as d:
        assert d["train"].shape == (20, 3072) and d["test"].shape == (3, 3072)
        x = inverse_logit_transform(d["test"].astype(np.float64), 0.05)
        # dequantised: floor(256 x) recovers the pixels
        np.testing.assert_array_equal(np.floor(x * 256 + 1e-4).astype(int),
                                      parts["test_batch"][0])
        assert float(d["logit_lambda"]) == 0.05
    assert main(["prepare", "cifar10", "--raw", str(tmp_path / "nope.tar.gz"),
                 "--logit-lambda", "0.05", "--seed", "0", "--out", str(out)]) == 2
    assert "download_cifar10" in capsys.readouterr().err


def test_cifar10_run_is_paper_scope_and_needs_the_archive(tmp_path):
    from pathlib import Path

    from otflows.methods.cpflow import CPFlowConfig
    from otflows.pipeline.config import load_params
    from otflows.pipeline.experiments import all_experiments, experiments_not_run

    root = Path(__file__).resolve().parents[2]
    schema = root / "schemas/params.schema.yaml"
    default = load_params([root / "params.yaml"], schema)
    paper = load_params([root / "params.yaml", root / "config/paper.yaml"], schema)
    for cfg in (default, paper):
        assert "cifar10" not in {e.dataset for e in all_experiments(cfg, tmp_path)}
    assert "cifar10" not in {m["dataset"] for m in experiments_not_run(default, tmp_path)}
    why = {m["dataset"]: m["reason"] for m in experiments_not_run(paper, tmp_path)}
    assert cifar10.RAW_PATH in why["cifar10"] and "download_cifar10" in why["cifar10"]
    raw = tmp_path / cifar10.RAW_PATH
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"x")
    (run,) = [e for e in all_experiments(paper, tmp_path) if e.dataset == "cifar10"]
    assert run.data == "data/processed/cifar10.npz"
    cfg = CPFlowConfig.from_dict(run.cfg)
    assert cfg.architecture == "multiscale" and (cfg.blocks, cfg.width) == (3, 64)
