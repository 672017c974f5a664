"""What every `otflows` command shares: prepared arrays in and out, threads, exit codes."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from otflows.pipeline.checkpoint import CorruptFileError, atomic_write

__all__ = ["EXIT_DIVERGED", "check_finite", "check_points", "load_npz", "save_npz",
           "set_threads"]

EXIT_DIVERGED = 3  # exit status of a run that diverged (nothing that looks complete is left)


def load_npz(path: str | Path, *keys: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``; a clear error if it or one of ``keys`` is absent."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build it with `snakemake {path}`")
    remedy = f"delete it and rebuild it with `snakemake {path}`"
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes): {remedy}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data]
            if missing:
                raise KeyError(f"{path} has no array(s) {missing}; present: "
                               f"{list(data.keys())}")
            return {k: data[k] for k in data.keys()}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        raise CorruptFileError(f"{path} is not a readable .npz (truncated or corrupt: "
                               f"{type(err).__name__}: {err}): {remedy}") from err


def check_points(x: np.ndarray, what: str) -> None:
    """Raise ValueError unless ``x`` is a non-empty ``[n, d]`` array of numbers."""
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or not np.issubdtype(
            x.dtype, np.number):
        raise ValueError(f"{what}: expected a non-empty [n, d] array of numbers, got shape "
                         f"{x.shape} of {x.dtype}; rebuild it with snakemake (delete it first)")


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically (no partial file is ever visible)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise ValueError naming ``what`` if ``x`` holds NaN or inf."""
    bad = int(np.size(x) - np.isfinite(x).sum())
    if bad:
        raise ValueError(f"{what} holds {bad} non-finite value(s); rebuild it with snakemake "
                         f"(delete the file first) or check the raw data")


def set_threads(threads: int) -> None:
    """Set PyTorch's intra-op threads (at least one)."""
    import torch

    torch.set_num_threads(max(1, threads))

