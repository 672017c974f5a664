"""Time MINIBOONE preprocessing of a full-size UCI file and measure its memory.

Usage: ``python benchmarks/miniboone_preprocess.py [--rows-signal 36499 --rows-background
93565]``. Writes a synthetic file in the exact layout of UCI's ``MiniBooNE_PID.txt``
(130,064 events of 50 E-notation numbers, -999 placeholder rows, seven repeated-value
features) to a temp folder, then times parse + MAF preprocessing + split/standardise (what
``otflows prepare miniboone --source uci`` does) for both ``--events`` choices and prints
seconds and the peak of NumPy's traced allocations in copies of the parsed array.
Targets (issue: real datasets): at most 30 s and at most 2 copies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from otflows.data import miniboone as mb

DROPPED = [3, 9, 17, 22, 30, 41, 48]


def write_fixture(path: Path, n_signal: int, n_background: int, seed: int = 0) -> int:
    """A UCI-format file; returns the bytes of the parsed [n, 50] float64 array."""
    rng = np.random.default_rng(seed)
    n = n_signal + n_background
    x = rng.normal(size=(n, 50)) * rng.uniform(0.5, 3.0, size=50)
    for j in DROPPED:
        x[rng.choice(n, 200, replace=False), j] = x[:, j].min() - 1.0
    x[rng.choice(n, 468, replace=False)] = -999.0
    with path.open("w") as fh:
        fh.write(f"    {n_signal}  {n_background}\n")
        np.savetxt(fh, x, fmt="% .6E")
    return x.nbytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows-signal", type=int, default=36499)
    p.add_argument("--rows-background", type=int, default=93565)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "MiniBooNE_PID.txt"
        nbytes = write_fixture(path, args.rows_signal, args.rows_background)
        print(f"file: {path.stat().st_size / 2**20:.1f} MiB, "
              f"{args.rows_signal + args.rows_background} events")
        for events_kind in ("signal", "all"):
            tracemalloc.start()
            t0 = time.perf_counter()
            with path.open() as fh:
                events, n_signal = mb.parse_uci(fh, str(path))
            t1 = time.perf_counter()
            data = mb.preprocess_uci(events, n_signal, events_kind)
            del events
            s = mb.split_and_standardise(data)
            t2 = time.perf_counter()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"events={events_kind}: parse {t1 - t0:.1f} s, preprocess+split "
                  f"{t2 - t1:.2f} s, total {t2 - t0:.1f} s (target <= 30 s); peak "
                  f"{peak / nbytes:.2f} copies of the parsed array (target <= 2); "
                  f"train/val/test {len(s.train)}/{len(s.validation)}/{len(s.test)}")
            del data, s


if __name__ == "__main__":
    main()
