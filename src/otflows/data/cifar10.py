"""CIFAR-10 (Krizhevsky 2009) for CP-Flow Table 2: the "python version" archive parsed without
trusting its pickles, then dequantised and logit-transformed as for MNIST.

* Source: ``cifar-10-python.tar.gz`` of the CIFAR-10 page (``URL``; MD5 and size below, as the
  page and torchvision record them). Members ``cifar-10-batches-py/data_batch_1`` … ``_5``
  (50,000 training images) and ``test_batch`` (10,000 test images): pickled dicts with
  ``b"data"`` (uint8 ``[10000, 3072]``, channel-major: 1024 red, 1024 green, 1024 blue values,
  row by row, so a row reshapes to (3, 32, 32)) and ``b"labels"``.
* The pickles are read by a restricted unpickler that builds only dicts, lists, strings,
  bytes, numbers and NumPy arrays, so a tampered file cannot run code.
* Preparation: train = the 50,000 training images, test = the 10,000 test images (the split
  every published CIFAR-10 bits/dim uses); one fixed uniform dequantisation; the logit map
  with λ = 0.05 (the published image model's ``LogitTransform(0.05)`` for CIFAR-10,
  CW-Huang/CP-Flow ``train_img.py``, a fact of the reference code).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from typing import IO

import numpy as np

__all__ = ["ARCHIVE_BYTES", "ARCHIVE_MD5", "BATCHES", "CIFAR_DIM", "FETCH_HINT",
           "LOGIT_LAMBDA", "RAW_PATH", "URL", "Cifar10FormatError", "parse_batch",
           "read_archive"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_BYTES = 170498071
RAW_PATH = "data/raw/cifar10/cifar-10-python.tar.gz"
FETCH_HINT = "run `snakemake download_cifar10` (paper profile; about 170 MB)"
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR_DIM = 3 * 32 * 32
LOGIT_LAMBDA = 0.05  # train_img.py: LogitTransform(0.05) for CIFAR-10


class Cifar10FormatError(ValueError):
    """A CIFAR-10 file is not in the format of the python-version archive."""


class _SafeUnpickler(pickle.Unpickler):
    """Builds only the NumPy array machinery and builtins; anything else is refused."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                             "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("builtins", "list"),
                ("builtins", "dict"), ("_codecs", "encode")}  # protocol-2 bytes

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to build {module}.{name}")


def parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch → (pixels uint8 ``[n, 3072]``, labels int64 ``[n]``)."""
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise Cifar10FormatError(f"{name}: not a CIFAR-10 batch pickle ({err})") from err
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise Cifar10FormatError(f"{name}: expected a dict with b'data' and b'labels'")
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_DIM:
        raise Cifar10FormatError(f"{name}: b'data' is {data.dtype} {data.shape}; expected "
                                 f"uint8 [n, {CIFAR_DIM}]")
    if labels.shape != (data.shape[0],) or labels.min() < 0 or labels.max() > 9:
        raise Cifar10FormatError(f"{name}: expected {data.shape[0]} labels in 0..9")
    return data, labels


def read_archive(stream: IO[bytes], name: str = "cifar-10-python.tar.gz"
                 ) -> dict[str, np.ndarray]:
    """``train``/``test`` pixels (uint8 ``[n, 3072]``) and ``*_labels`` from the archive."""
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    wanted = {b for names in BATCHES.values() for b in names}
    try:
        with tarfile.open(fileobj=stream, mode="r:gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile():
                    found[base] = parse_batch(tar.extractfile(member).read(), member.name)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise Cifar10FormatError(f"{name}: not a readable .tar.gz ({err})") from err
    absent = sorted(wanted - set(found))
    if absent:
        raise Cifar10FormatError(f"{name}: members {absent} absent; expected the python-version "
                                 f"archive (cifar-10-batches-py/data_batch_1..5, test_batch)")
    out = {}
    for split, names in BATCHES.items():
        out[split] = np.concatenate([found[b][0] for b in names])
        out[f"{split}_labels"] = np.concatenate([found[b][1] for b in names])
    return out
