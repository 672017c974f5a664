"""POWER, GAS, HEPMASS and BSDS300 as the MAF paper prepared them (Papamakarios et al.,
NeurIPS 2017, arXiv:1705.07057, §4.2 and App. D), the other four datasets of CP-Flow Table 1.

Source: the MAF data release (Zenodo record 1161203, ``data.tar.gz``), one archive holding
every dataset; ``ARCHIVE_MEMBERS`` names the members each dataset needs. The recipes below
are the ones the MAF code records (``datasets/{power,gas,hepmass,bsds300}.py`` of the MAF
repository; the CP-Flow code ships the same files), restated here:

* POWER (``power/data.npy``, 8 columns): shuffle the rows with ``RandomState(42)``, drop
  columns 3 and 1 (global reactive power and global intensity), add uniform noise
  (drawn from the same generator, in this order: 0.01·U to the voltage, 0.001·U to the
  global active power, U to the three sub-meterings, none to the time column) → 6 columns;
  then the MAF split and standardisation of MINIBOONE (train + validation statistics).
* GAS (``gas/ethylene_CO.pickle``, a pandas DataFrame): drop the columns ``Meth``, ``Eth``,
  ``Time``; while some column has a correlation > 0.98 with another column, drop the first
  such column → 8 columns; standardise with the mean and standard deviation (ddof 1) of
  the whole set; then split as MAF (no shuffling) without further standardisation.
* HEPMASS (``hepmass/1000_{train,test}.csv``): keep the rows whose label (first column) is 1,
  drop the label; drop the test file's last column (MAF: "the data set is messed up"; the
  discrete mass column goes from the training set by the rule below); standardise both
  with the training mean and standard deviation (ddof 1); drop every feature whose smallest
  training value occurs more than 5 times → 21 columns; validation = the last int(0.1·N)
  training rows. The test set is the test file's (not a slice of the training file).
* BSDS300 (``BSDS300/BSDS300.hdf5``): the datasets ``train``, ``validation``, ``test`` of
  the HDF5 file, 63 columns, used as they are.

Published sizes (MAF Table 5): POWER 1,659,917 / 184,435 / 204,928; GAS 852,174 / 94,685 /
105,206; HEPMASS 315,123 / 35,013 / 174,987; BSDS300 1,000,000 / 50,000 / 250,000.
Functions here parse streams and arrays; opening files and downloading is the CLI's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np

from otflows.data.miniboone import (
    MinibooneFormatError,
    load_maf_npy,
    maf_split_sizes,
    split_and_standardise,
)

__all__ = ["ARCHIVE_MEMBERS", "DATASETS", "DIMS", "FETCH_HINT", "TabularFormatError",
           "TabularSplits", "clean_gas", "maf_split", "parse_power", "prepare_hepmass",
           "prepare_power", "raw_paths", "read_bsds300", "read_gas", "read_hepmass_csv"]

DATASETS = ("power", "gas", "hepmass", "bsds300")
DIMS = {"power": 6, "gas": 8, "hepmass": 21, "bsds300": 63}  # MAF Table 5
RAW_DIR = "data/raw"
# dataset -> (member path inside the MAF archive, local path under data/raw)
ARCHIVE_MEMBERS: dict[str, tuple[tuple[str, str], ...]] = {
    "power": (("power/data.npy", "power/data.npy"),),
    "gas": (("gas/ethylene_CO.pickle", "gas/ethylene_CO.pickle"),),
    "hepmass": (("hepmass/1000_train.csv", "hepmass/1000_train.csv"),
                ("hepmass/1000_test.csv", "hepmass/1000_test.csv")),
    "bsds300": (("BSDS300/BSDS300.hdf5", "bsds300/BSDS300.hdf5"),),
}
FETCH_HINT = "run `snakemake download_tabular`; the MAF archive, about 1 GB, holds all four"
POWER_SEED = 42  # MAF: np.random.RandomState(42) shuffles POWER and draws its noise
POWER_COLUMNS = 8  # active, reactive power, voltage, intensity, 3 sub-meterings, time
GAS_DROP = ("Meth", "Eth", "Time")
GAS_MAX_CORR = 0.98
HEPMASS_MAX_REPEATS = 5  # as MINIBOONE: features whose smallest value repeats > 5 times go


class TabularFormatError(ValueError):
    """A raw file of the MAF release is not in the format the release promises."""


@dataclass
class TabularSplits:
    """Train ``[n_train, d]``, validation and test, as MAF prepared them (float64)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def raw_paths(name: str) -> list[str]:
    """The local raw file(s) of dataset ``name`` (relative to the project root)."""
    if name not in ARCHIVE_MEMBERS:
        raise ValueError(f"unknown tabular dataset {name!r}; expected one of {list(DATASETS)}")
    return [f"{RAW_DIR}/{local}" for _member, local in ARCHIVE_MEMBERS[name]]


def maf_split(data: np.ndarray) -> TabularSplits:
    """MAF's split without standardisation (GAS): test = last int(0.1·n) rows, validation =
    last int(0.1·n') of the other n' rows, train = the rest; views of ``data``."""
    n_train, n_val, n_test = maf_split_sizes(data.shape[0])
    if min(n_train, n_val, n_test) < 2:
        raise TabularFormatError(f"{data.shape[0]} rows are too few for the MAF split")
    return TabularSplits(data[:n_train], data[n_train:n_train + n_val], data[n_train + n_val:])


def _standardised_split(data: np.ndarray) -> TabularSplits:
    try:
        s = split_and_standardise(data)
    except MinibooneFormatError as err:
        raise TabularFormatError(str(err)) from err
    return TabularSplits(s.train, s.validation, s.test)


# ----------------------------------------------------------------------------- POWER
def parse_power(stream: IO[bytes], name: str = "power/data.npy") -> np.ndarray:
    """Load and check the MAF release's ``power/data.npy``: ``[n, 8]`` finite floats."""
    try:
        return load_maf_npy(stream, name, POWER_COLUMNS, "power/data.npy")
    except MinibooneFormatError as err:
        raise TabularFormatError(str(err)) from err


def prepare_power(data: np.ndarray) -> TabularSplits:
    """MAF's POWER: shuffle (RandomState 42), drop columns 3 and 1, add the noise, split and
    standardise with train + validation statistics. ``data`` ``[n, 8]`` is shuffled in place."""
    rng = np.random.RandomState(POWER_SEED)
    rng.shuffle(data)
    n = data.shape[0]
    x = np.delete(data, [1, 3], axis=1)  # MAF deletes column 3, then column 1
    # MAF draws the noise in this order from the same generator (after the shuffle)
    voltage = 0.01 * rng.rand(n, 1)
    gap = 0.001 * rng.rand(n, 1)
    sub_metering = rng.rand(n, 3)
    x[:, 0:1] += gap  # global active power
    x[:, 1:2] += voltage
    x[:, 2:5] += sub_metering  # column 5 (time) gets no noise
    return _standardised_split(x)


# ----------------------------------------------------------------------------- GAS
def read_gas(path: str, name: str = "gas/ethylene_CO.pickle"):
    """The MAF release's GAS DataFrame (a pandas pickle; trusted: it is the release's file)."""
    import pandas as pd

    try:
        frame = pd.read_pickle(path)
    except Exception as err:  # noqa: BLE001 - unpickling raises anything
        raise TabularFormatError(f"{name}: not a pandas pickle ({type(err).__name__}: {err}); "
                                 f"expected the MAF release's gas/ethylene_CO.pickle") from err
    if not isinstance(frame, pd.DataFrame):
        raise TabularFormatError(f"{name}: expected a pandas DataFrame; got {type(frame)}")
    return frame


def clean_gas(frame) -> TabularSplits:
    """MAF's GAS from its DataFrame: drop Meth, Eth, Time; drop correlated columns one at a
    time; standardise (whole set, ddof 1); split without shuffling."""
    missing = [c for c in GAS_DROP if c not in frame.columns]
    if missing:
        raise TabularFormatError(f"GAS: columns {missing} absent; expected the MAF release's "
                                 f"ethylene_CO.pickle (columns {list(frame.columns)[:12]})")
    data = frame.drop(columns=list(GAS_DROP)).to_numpy(dtype=np.float64)
    cols = list(range(data.shape[1]))
    while True:
        corr = np.corrcoef(data[:, cols], rowvar=False)
        # a column's count includes its correlation with itself (1 > 0.98): > 1 means a twin
        counts = (corr > GAS_MAX_CORR).sum(axis=1)
        twins = np.flatnonzero(counts > 1)
        if twins.size == 0:
            break
        del cols[int(twins[0])]
    x = data[:, cols]
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)  # pandas' std: ddof 1
    return maf_split(x)


# ----------------------------------------------------------------------------- HEPMASS
def read_hepmass_csv(stream: IO[str], name: str) -> np.ndarray:
    """A HEPMASS CSV (a header line, then comma-separated numbers) → ``[n, columns]``."""
    header = stream.readline()
    if "," not in header:
        raise TabularFormatError(f"{name}, line 1: expected a comma-separated header "
                                 f"('# label,f0,...'); got {header.strip()[:80]!r}")
    try:
        data = np.loadtxt(stream, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise TabularFormatError(f"{name}: {err}") from err
    if not np.isfinite(data).all():
        raise TabularFormatError(f"{name}: holds non-finite values")
    return data


def prepare_hepmass(train: np.ndarray, test: np.ndarray) -> TabularSplits:
    """MAF's HEPMASS from the two CSV arrays (label first): positives only, the test file's
    extra last column dropped, training standardisation (ddof 1), repeated-minimum features
    dropped, the last 10 % of training rows as validation."""
    tr = train[train[:, 0] == 1][:, 1:]
    te = test[test[:, 0] == 1][:, 1:-1]  # MAF: "the data set is messed up": drop the last
    w = te.shape[1]
    if tr.shape[0] < 20 or te.shape[0] < 1 or w > tr.shape[1]:
        raise TabularFormatError(f"HEPMASS: {tr.shape[0]} training rows ({tr.shape[1]} "
                                 f"features) and {te.shape[0]} test rows ({w} features after "
                                 f"dropping the last column) with label 1; expected "
                                 f"1000_train.csv and 1000_test.csv of the MAF release")
    mu, sd = tr.mean(axis=0), tr.std(axis=0, ddof=1)
    # MAF's pandas arithmetic aligns test columns with training columns by name: the test
    # file's leading columns are the training file's
    tr, te = (tr - mu) / sd, (te - mu[:w]) / sd[:w]
    keep = [j for j in range(tr.shape[1])
            if int((tr[:, j] == tr[:, j].min()).sum()) <= HEPMASS_MAX_REPEATS]
    if keep and keep[-1] >= w:
        raise TabularFormatError(f"HEPMASS: kept feature {keep[-1]} is absent from the test "
                                 f"file ({w} features); expected the MAF release's files")
    tr, te = tr[:, keep], te[:, keep]
    n_val = int(0.1 * tr.shape[0])
    return TabularSplits(tr[:-n_val], tr[-n_val:], te)


# ----------------------------------------------------------------------------- BSDS300
def read_bsds300(path: str, name: str = "BSDS300/BSDS300.hdf5") -> TabularSplits:
    """The MAF release's BSDS300 patches: HDF5 datasets train, validation, test (63 columns).
    Needs h5py."""
    try:
        import h5py
    except ImportError as err:
        raise TabularFormatError("reading BSDS300.hdf5 needs h5py: `pip install h5py==3.12.1`"
                                 ) from err
    try:
        with h5py.File(path, "r") as f:
            parts = {k: np.asarray(f[k], dtype=np.float64) for k in
                     ("train", "validation", "test")}
    except (OSError, KeyError) as err:
        raise TabularFormatError(f"{name}: {err}; expected an HDF5 file with datasets train, "
                                 f"validation, test (the MAF release's BSDS300.hdf5)") from err
    for k, v in parts.items():
        if v.ndim != 2 or v.shape[1] != DIMS["bsds300"] or not np.isfinite(v).all():
            raise TabularFormatError(f"{name}: dataset {k!r} has shape {v.shape}; expected "
                                     f"finite [n, {DIMS['bsds300']}]")
    return TabularSplits(parts["train"], parts["validation"], parts["test"])
