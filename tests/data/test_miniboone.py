"""MINIBOONE: both raw formats parsed and preprocessed as MAF did, on generated fixtures.

The UCI fixture has the real file's layout (header "n_signal n_background", 50 numbers per
line in E-notation, signal events first), placeholder rows of -999 in both parts, seven
features whose smallest value occurs more than 5 times, and two decoys that MAF keeps (the
smallest value exactly 5 times; a non-smallest value repeated many times).
"""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest

from otflows.cli.main import main
from otflows.data import miniboone as mb

DROPPED = [3, 9, 17, 22, 30, 41, 48]  # features whose smallest value repeats > 5 times
KEPT_AT_FIVE = 5  # its smallest value occurs exactly 5 times: kept
KEPT_REPEATS = 6  # a non-smallest value occurs 40 times: kept


def uci_events(n_signal: int, n_background: int, seed: int = 0) -> tuple[np.ndarray, list]:
    """Events [n, 50] in the UCI file's structure and the indices of the -999 rows."""
    rng = np.random.default_rng(seed)
    n = n_signal + n_background
    x = rng.normal(size=(n, 50)) * rng.uniform(0.5, 3.0, size=50) + rng.normal(size=50)
    outliers = [1, 7, n_signal - 1, n_signal + 2, n - 1]
    good = np.setdiff1d(np.arange(n), outliers)
    sig, bkg = good[good < n_signal], good[good >= n_signal]
    for j in DROPPED:  # the smallest value 6 times in the signal part, 6 more after it
        x[np.r_[sig[j : j + 6], bkg[j : j + 6]], j] = x[:, j].min() - 1.0
    x[sig[10:15], KEPT_AT_FIVE] = x[:, KEPT_AT_FIVE].min() - 1.0
    x[good[:40], KEPT_REPEATS] = 0.0
    x[outliers] = -999.0
    return x, outliers


def uci_text(x: np.ndarray, n_signal: int) -> str:
    lines = [f"    {n_signal}  {x.shape[0] - n_signal}"]
    lines += [" ".join(f"{v: .6E}" for v in row) for row in x]
    return "\n".join(lines) + "\n"


def expected_preprocessed(x: np.ndarray, outliers: list, rows: slice) -> np.ndarray:
    keep_cols = [j for j in range(50) if j not in DROPPED]
    keep = np.setdiff1d(np.arange(x.shape[0])[rows], outliers)
    return np.asarray([[float(f"{v:.6E}") for v in x[i, keep_cols]] for i in keep])


@pytest.fixture(scope="module")
def fixture():
    x, outliers = uci_events(300, 500)
    return x, outliers, uci_text(x, 300)


def test_parse_uci_reads_every_event(fixture):
    x, _, text = fixture
    events, n_signal = mb.parse_uci(io.StringIO(text))
    assert n_signal == 300 and events.shape == (800, 50) and events.dtype == np.float64
    np.testing.assert_allclose(events, x, rtol=1e-6)


@pytest.mark.parametrize("which", ["signal", "all"])
def test_preprocess_matches_maf_recipe(fixture, which):
    x, outliers, text = fixture
    events, n_signal = mb.parse_uci(io.StringIO(text))
    out = mb.preprocess_uci(events, n_signal, which)
    rows = slice(0, 300) if which == "signal" else slice(None)
    want = expected_preprocessed(x, outliers, rows)
    assert out.shape == want.shape and out.shape[1] == mb.MINIBOONE_DIM == 43
    np.testing.assert_array_equal(out, want)
    assert (out[:, 0] >= -100).all()


def test_features_are_judged_after_outlier_rows_are_gone(fixture):
    # The five -999 rows would make -999 the smallest value of all 50 features (repeated
    # 5 times: kept) - with one more placeholder row every feature would go. MAF removes
    # rows first: still 43 features.
    x, outliers, _ = fixture
    x = x.copy()
    x[[2, 3]] = -999.0
    events, n_signal = mb.parse_uci(io.StringIO(uci_text(x, 300)))
    assert mb.preprocess_uci(events, n_signal, "all").shape[1] == 43


def test_maf_split_sizes_are_the_published_ones():
    assert mb.maf_split_sizes(36488) == (29556, 3284, 3648)  # MAF's MINIBOONE


def test_split_and_standardise_in_place_without_shuffling():
    data = np.random.default_rng(1).normal(3.0, 2.0, size=(1000, 43))
    raw = data.copy()
    s = mb.split_and_standardise(data)
    assert (len(s.train), len(s.validation), len(s.test)) == (810, 90, 100)
    assert np.shares_memory(s.train, data) and np.shares_memory(s.test, data)
    mu, sd = raw[:900].mean(0), raw[:900].std(0)  # train + validation, ddof 0
    np.testing.assert_allclose(s.test, (raw[900:] - mu) / sd)
    np.testing.assert_allclose(s.validation, (raw[810:900] - mu) / sd)
    np.testing.assert_allclose(np.vstack([s.train, s.validation]).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(np.vstack([s.train, s.validation]).std(0), 1)
    np.testing.assert_allclose(s.mean, mu) and np.testing.assert_allclose(s.std, sd)


def test_constant_feature_cannot_be_standardised():
    data = np.random.default_rng(0).normal(size=(100, 43))
    data[:, 5] = 1.0
    with pytest.raises(mb.MinibooneFormatError, match=r"feature\(s\) \[5\] are constant"):
        mb.split_and_standardise(data)


def _npy(a) -> io.BytesIO:
    buf = io.BytesIO()
    np.save(buf, a)
    buf.seek(0)
    return buf


def test_parse_maf_npy_roundtrip_and_errors():
    a = np.random.default_rng(0).normal(size=(50, 43)).astype(np.float32)
    np.testing.assert_array_equal(mb.parse_maf_npy(_npy(a)), a.astype(np.float64))
    with pytest.raises(mb.MinibooneFormatError, match=r"43 columns.*got shape \(50, 42\)"):
        mb.parse_maf_npy(_npy(a[:, :42]))
    with pytest.raises(mb.MinibooneFormatError, match=r"got shape \(43,\)"):
        mb.parse_maf_npy(_npy(a[0]))
    bad = a.copy()
    bad[7, 3] = np.nan
    with pytest.raises(mb.MinibooneFormatError, match="row 7 holds a non-finite"):
        mb.parse_maf_npy(_npy(bad))
    with pytest.raises(mb.MinibooneFormatError, match="not a NumPy .npy array"):
        mb.parse_maf_npy(io.BytesIO(b"<html>404 Not Found</html>"))
    with pytest.raises(mb.MinibooneFormatError, match="floating-point"):
        mb.parse_maf_npy(_npy(np.zeros((3, 43), dtype=np.int64)))


def _edit_line(text: str, lineno: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: "", r"is empty: expected the header line"),
        (lambda t: _edit_line(t, 1, "signal background"),
         r"line 1: expected the header 'n_signal n_background'"),
        (lambda t: _edit_line(t, 5000 % 700 + 2, " 1.0E+00" * 49),
         r"line 102: expected 50 whitespace-separated numbers .* got 49 field"),
        (lambda t: _edit_line(t, 9, " 1.0E+00" * 20 + " abc" + " 1.0E+00" * 29),
         r"line 9, column 21: expected a finite number; got 'abc'"),
        (lambda t: _edit_line(t, 15, " nan" + " 1.0E+00" * 49),
         r"line 15, column 1: expected a finite number; got 'nan'"),
        (lambda t: "\n".join(t.splitlines()[:-3]) + "\n",
         r"ends after line 798 with 797 events; the header announces 300 \+ 500 = 800"),
        (lambda t: t + " 1.0E+00" * 50 + "\n", r"line 802: more events than the header"),
    ],
)
def test_malformed_uci_names_the_line(fixture, edit, message):
    with pytest.raises(mb.MinibooneFormatError, match=message):
        mb.parse_uci(io.StringIO(edit(fixture[2])), name="MiniBooNE_PID.txt")


def test_file_without_repeated_features_is_not_miniboone():
    x = np.random.default_rng(0).normal(size=(60, 50))
    events, n_signal = mb.parse_uci(io.StringIO(uci_text(x, 30)))
    with pytest.raises(mb.MinibooneFormatError, match="50 features remain.*leaves 43"):
        mb.preprocess_uci(events, n_signal, "all")


def test_every_row_an_outlier_is_an_error():
    x = np.full((10, 50), -999.0)
    with pytest.raises(mb.MinibooneFormatError, match="every event"):
        mb.preprocess_uci(x, 10, "all")


def test_preprocessing_holds_at_most_two_copies(tmp_path):
    # parse (1 copy) + the preprocessed result (< 1 copy) + split/standardise in place
    x, _ = uci_events(4000, 16000, seed=2)
    path = tmp_path / "MiniBooNE_PID.txt"
    path.write_text(uci_text(x, 4000))
    one_copy = x.nbytes
    del x
    tracemalloc.start()
    with path.open() as fh:
        events, n_signal = mb.parse_uci(fh)
    data = mb.preprocess_uci(events, n_signal, "all")
    del events
    mb.split_and_standardise(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2.2 * one_copy, peak / one_copy


# ------------------------------------------------------------------------------ the CLI
def test_cli_missing_raw_file_names_path_and_command(tmp_path, capsys):
    raw = tmp_path / "data/raw/miniboone/data.npy"
    assert main(["prepare", "miniboone", "--source", "maf", "--raw", str(raw),
                 "--out", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert str(raw) in err and "snakemake download_miniboone" in err


def test_cli_both_sources_give_the_same_arrays(tmp_path, fixture):
    x, _, text = fixture
    uci = tmp_path / "MiniBooNE_PID.txt"
    uci.write_text(text)
    events, n_signal = mb.parse_uci(io.StringIO(text))
    np.save(tmp_path / "data.npy", mb.preprocess_uci(events, n_signal, "signal"))
    outs = {}
    for source, raw in (("uci", uci), ("maf", tmp_path / "data.npy")):
        out = tmp_path / f"{source}.npz"
        assert main(["prepare", "miniboone", "--source", source, "--raw", str(raw),
                     "--out", str(out)]) == 0
        with np.load(out) as d:
            outs[source] = {k: d[k] for k in d.keys()}
    a, b = outs["uci"], outs["maf"]
    assert a["train"].shape == (242, 43) and a["validation"].shape == (26, 43)
    assert a["test"].shape == (29, 43) and str(a["source"]) == "uci"
    for key in ("train", "validation", "test", "mean", "std"):
        np.testing.assert_array_equal(a[key], b[key])


def test_cli_malformed_file_exits_with_the_line(tmp_path, fixture, capsys):
    raw = tmp_path / "MiniBooNE_PID.txt"
    raw.write_text(_edit_line(fixture[2], 40, "1 2 3"))
    assert main(["prepare", "miniboone", "--source", "uci", "--raw", str(raw),
                 "--out", str(tmp_path / "o.npz")]) == 2
    assert "line 40: expected 50" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()
