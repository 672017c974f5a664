"""MINIBOONE (Roe, UCI 2010) as the MAF paper prepared it (Papamakarios et al., NeurIPS 2017,
arXiv:1705.07057), the 43-dimensional benchmark of JKO-Flow Table 3 and CP-Flow Table 1.

Two sources, one result:

* ``maf``: ``miniboone/data.npy`` of the MAF data release (Zenodo record 1161203), the array
  every published number was computed on; it is already outlier-free with 43 features.
* ``uci``: the UCI file ``MiniBooNE_PID.txt``, preprocessed as the MAF code records it
  (``datasets/miniboone.py`` of the MAF repository, in a comment): drop every row whose
  first column is < -100 (the -999 placeholder rows), then drop every feature whose
  *smallest* value occurs more than 5 times. That leaves 43 of the 50 features.

Both then go through the MAF split and standardisation (``load_data`` and
``load_data_normalised`` of the same file): no shuffling; test = the last int(0.1·N) rows;
validation = the last int(0.1·N') rows of the remaining N' rows; train = the rest; every
split is standardised with the mean and the standard deviation (ddof 0) of train and
validation together.

The UCI file starts with a line "n_signal n_background"; the signal events come first. The
MAF release has 36,488 rows (29,556 / 3,284 / 3,648), which is the 36,499 signal events
less the placeholder rows: ``events="signal"`` (the default) keeps only them, ``"all"``
keeps the background events too. The MAF code does not say this; it is inferred from the
sizes.

Functions here parse streams and arrays; opening files is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import numpy as np

__all__ = [
    "FETCH_HINT",
    "MINIBOONE_DIM",
    "RAW_DIR",
    "RAW_FILES",
    "MinibooneFormatError",
    "MinibooneSplits",
    "maf_split_sizes",
    "load_maf_npy",
    "parse_maf_npy",
    "parse_uci",
    "preprocess_uci",
    "raw_path",
    "split_and_standardise",
]

MINIBOONE_DIM = 43  # features left by the MAF preprocessing
UCI_COLUMNS = 50  # particle-ID variables per event in MiniBooNE_PID.txt
OUTLIER_BELOW = -100.0  # MAF: rows whose first column is < -100 are removed
MAX_REPEATS = 5  # MAF: features whose smallest value occurs > 5 times are removed
RAW_DIR = "data/raw/miniboone"
RAW_FILES = {"maf": "data.npy", "uci": "MiniBooNE_PID.txt"}
FETCH_HINT = "run `snakemake download_miniboone`"
_CHUNK = 2048  # lines parsed per call to np.loadtxt
MAX_EVENTS = 10_000_000  # UCI's file holds 130,065 (Roe 2010); more is not that file


class MinibooneFormatError(ValueError):
    """A raw MINIBOONE file is not in the format its source promises."""


@dataclass
class MinibooneSplits:
    """The MAF splits, standardised: ``train`` ``[n_train, 43]``, ``validation``, ``test``;
    ``mean`` and ``std`` ``[43]`` are those of train + validation (ddof 0), in raw units."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def raw_path(source: str) -> str:
    """Where the raw file of ``source`` (``maf`` or ``uci``) is expected."""
    if source not in RAW_FILES:
        raise ValueError(f"unknown MINIBOONE source {source!r}; expected one of "
                         f"{sorted(RAW_FILES)}")
    return f"{RAW_DIR}/{RAW_FILES[source]}"


def _bad_line(line: str, lineno: int, name: str) -> MinibooneFormatError | None:
    """The error for one data line, or None when it holds 50 finite numbers."""
    fields = line.split()
    if len(fields) != UCI_COLUMNS:
        return MinibooneFormatError(
            f"{name}, line {lineno}: expected {UCI_COLUMNS} whitespace-separated numbers "
            f"(one event of MiniBooNE_PID.txt); got {len(fields)} field(s): {line[:80]!r}")
    for col, text in enumerate(fields, start=1):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not np.isfinite(value):
            return MinibooneFormatError(
                f"{name}, line {lineno}, column {col}: expected a finite number; got "
                f"{text!r}")
    return None


def _parse_chunk(lines: list[str], first_lineno: int, name: str) -> np.ndarray:
    """Parse data lines into ``[len(lines), 50]``; on failure name the first bad line."""
    try:
        block = np.loadtxt(lines, dtype=np.float64, ndmin=2)
        if block.shape == (len(lines), UCI_COLUMNS) and np.isfinite(block).all():
            return block
    except ValueError:
        pass
    for i, line in enumerate(lines):
        err = _bad_line(line, first_lineno + i, name)
        if err is not None:
            raise err
    raise MinibooneFormatError(f"{name}, lines {first_lineno}-{first_lineno + len(lines) - 1}:"
                               f" could not be parsed as {UCI_COLUMNS} numbers per line")


def _parse_header(line: str, name: str) -> tuple[int, int]:
    fields = line.split()
    try:
        counts = [int(f) for f in fields]
    except ValueError:
        counts = []
    if len(counts) != 2 or min(counts) < 0:
        raise MinibooneFormatError(
            f"{name}, line 1: expected the header 'n_signal n_background' (two non-negative "
            f"integers, as in UCI's MiniBooNE_PID.txt); got {line.strip()[:80]!r}")
    return counts[0], counts[1]


def parse_uci(stream: IO[str] | Iterable[str], name: str = "MiniBooNE_PID.txt"
              ) -> tuple[np.ndarray, int]:
    """Parse UCI's ``MiniBooNE_PID.txt``: returns (events ``[n, 50]`` float64, n_signal).

    The first line holds the event counts "n_signal n_background"; each following line one
    event of 50 numbers; signal events come first. The array is allocated once from the
    header's counts and filled chunk by chunk. Errors name the line and what was expected.
    """
    lines = iter(stream)
    header = next(lines, None)
    if header is None:
        raise MinibooneFormatError(f"{name} is empty: expected the header line "
                                   f"'n_signal n_background' and then one event per line")
    n_signal, n_background = _parse_header(header, name)
    n = n_signal + n_background
    if n > MAX_EVENTS:  # checked before the [n, 50] array is allocated
        raise MinibooneFormatError(
            f"{name}, line 1: the header announces {n} events; UCI's MiniBooNE_PID.txt holds "
            f"130,065 and at most {MAX_EVENTS} are accepted: the file is not that one")
    out = np.empty((n, UCI_COLUMNS), dtype=np.float64)
    row = 0
    lineno = 1
    chunk: list[str] = []
    chunk_start = 2

    def flush() -> None:
        nonlocal row, chunk
        if chunk:
            if row + len(chunk) > n:
                raise MinibooneFormatError(
                    f"{name}, line {chunk_start + n - row}: more events than the header "
                    f"announces ({n_signal} + {n_background} = {n})")
            out[row : row + len(chunk)] = _parse_chunk(chunk, chunk_start, name)
            row += len(chunk)
            chunk = []

    for line in lines:
        lineno += 1
        if not line.strip():
            continue  # blank lines (a trailing newline) carry no event
        if not chunk:
            chunk_start = lineno
        chunk.append(line)
        if len(chunk) == _CHUNK:
            flush()
    flush()
    if row != n:
        raise MinibooneFormatError(
            f"{name} ends after line {lineno} with {row} events; the header announces "
            f"{n_signal} + {n_background} = {n}. The file is truncated: download it again")
    return out, n_signal


def preprocess_uci(events: np.ndarray, n_signal: int, which: str = "signal") -> np.ndarray:
    """MAF's preprocessing of the UCI events ``[n, 50]`` → ``[n', 43]`` (a new array).

    ``which``: ``signal`` keeps the first ``n_signal`` events (the MAF release's rows),
    ``all`` keeps every event. Then drop the rows whose first column is < -100 and the
    features whose smallest value occurs more than 5 times (MAF, ``datasets/miniboone.py``).
    Holds at most one extra copy of the data (the result) beside ``events``.
    """
    if which not in ("signal", "all"):
        raise ValueError(f"events={which!r}; expected 'signal' or 'all'")
    data = events[:n_signal] if which == "signal" else events  # a view
    rows = data[:, 0] >= OUTLIER_BELOW
    if not rows.any():
        raise MinibooneFormatError(f"every event has a first column < {OUTLIER_BELOW:g}: "
                                   f"not MiniBooNE data")
    keep = []
    for j in range(data.shape[1]):
        col = data[rows, j]  # one column at a time: small
        keep.append(int((col == col.min()).sum()) <= MAX_REPEATS)
    cols = np.flatnonzero(keep)
    if cols.size != MINIBOONE_DIM:
        raise MinibooneFormatError(
            f"{cols.size} features remain after dropping those whose smallest value occurs "
            f"more than {MAX_REPEATS} times; MAF's preprocessing of MiniBooNE_PID.txt leaves "
            f"{MINIBOONE_DIM}: the file is not the UCI MiniBooNE_PID.txt")
    return data[np.ix_(rows, cols)]


def load_maf_npy(stream: IO[bytes], name: str, columns: int, member: str) -> np.ndarray:
    """Load and check one ``.npy`` array of the MAF release (``member``, e.g.
    ``miniboone/data.npy``): ``[n, columns]`` finite floats, as float64."""
    try:
        data = np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise MinibooneFormatError(f"{name}: not a NumPy .npy array ({err}); expected the "
                                   f"MAF release's {member}") from err
    except MemoryError as err:  # a header that declares a shape far beyond the real file
        raise MinibooneFormatError(f"{name}: its header declares an array too large for "
                                   f"memory; expected the MAF release's {member}") from err
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != columns:
        shape = getattr(data, "shape", None)
        raise MinibooneFormatError(f"{name}: expected a 2-D array with {columns} columns"
                                   f" (the MAF release's {member}); got shape {shape}")
    if not np.issubdtype(data.dtype, np.floating):
        raise MinibooneFormatError(f"{name}: expected floating-point values; got {data.dtype}")
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        raise MinibooneFormatError(f"{name}: row {int(np.argmin(finite))} holds a non-finite "
                                   f"value; expected finite numbers")
    return data.astype(np.float64, copy=False)


def parse_maf_npy(stream: IO[bytes], name: str = "data.npy") -> np.ndarray:
    """Load and check the MAF release's ``miniboone/data.npy``: ``[n, 43]`` finite floats."""
    return load_maf_npy(stream, name, MINIBOONE_DIM, "miniboone/data.npy")


def maf_split_sizes(n: int) -> tuple[int, int, int]:
    """(n_train, n_validation, n_test) of MAF's split of ``n`` rows."""
    n_test = int(0.1 * n)
    n_val = int(0.1 * (n - n_test))
    return n - n_test - n_val, n_val, n_test


def split_and_standardise(data: np.ndarray) -> MinibooneSplits:
    """MAF's split (no shuffling) and standardisation, **in place** on ``data`` ``[n, d]``.

    test = last int(0.1·n) rows; validation = last int(0.1·n') rows of the other n' rows;
    train = the rest. Every row is standardised with the mean and std (ddof 0) of
    train + validation. The splits are views of ``data``: no copy is made.
    """
    n_train, n_val, n_test = maf_split_sizes(data.shape[0])
    if min(n_train, n_val, n_test) < 2:
        raise MinibooneFormatError(f"{data.shape[0]} rows are too few for the MAF split "
                                   f"(train {n_train}, validation {n_val}, test {n_test})")
    fit = data[: n_train + n_val]  # train + validation are the leading rows
    mean = fit.mean(axis=0)
    std = fit.std(axis=0)
    if (std == 0).any():
        raise MinibooneFormatError(f"feature(s) {np.flatnonzero(std == 0).tolist()} are "
                                   f"constant on train + validation: cannot standardise")
    data -= mean
    data /= std
    return MinibooneSplits(train=data[:n_train], validation=data[n_train : n_train + n_val],
                           test=data[n_train + n_val :], mean=mean, std=std)
