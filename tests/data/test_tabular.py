"""POWER, GAS, HEPMASS, BSDS300: MAF's preparation (Papamakarios et al. 2017) on generated
fixtures in the release's formats, the published split sizes, the CLI and the one-pass
download of archive members (``file://``, offline)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pandas as pd
import pytest

from otflows.cli.main import main
from otflows.data import tabular as tb
from otflows.data.miniboone import maf_split_sizes
from otflows.pipeline.download import DownloadError, fetch_tar_members


def test_published_split_sizes():
    # MAF Table 5: POWER and GAS use the MINIBOONE split of all rows
    assert maf_split_sizes(2049280) == (1659917, 184435, 204928)
    assert maf_split_sizes(1052065) == (852174, 94685, 105206)


# ----------------------------------------------------------------------------- POWER
def power_raw(n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8)) * [1, 0.1, 5, 2, 3, 4, 1, 7] + [1, 0, 240, 4, 1, 1, 12, 0]


def test_power_recipe():
    raw = power_raw()
    s = tb.prepare_power(raw.copy())
    # the recipe spelt out step by step, as MAF's power.py does it
    rng = np.random.RandomState(42)
    x = raw.copy()
    rng.shuffle(x)
    x = np.delete(x, 3, axis=1)
    x = np.delete(x, 1, axis=1)
    n = x.shape[0]
    voltage, gap, sm = 0.01 * rng.rand(n, 1), 0.001 * rng.rand(n, 1), rng.rand(n, 3)
    x = x + np.hstack([gap, voltage, sm, np.zeros((n, 1))])
    test, rest = x[-100:], x[:-100]
    val, train = rest[-90:], rest[:-90]
    fit = np.vstack([train, val])
    mu, sd = fit.mean(0), fit.std(0)
    np.testing.assert_allclose(s.train, (train - mu) / sd, atol=1e-12)
    np.testing.assert_allclose(s.validation, (val - mu) / sd, atol=1e-12)
    np.testing.assert_allclose(s.test, (test - mu) / sd, atol=1e-12)
    assert s.train.shape[1] == tb.DIMS["power"] == 6


def _npy(a: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    np.save(buf, a)
    buf.seek(0)
    return buf


def test_parse_power_errors():
    assert tb.parse_power(_npy(power_raw(20))).shape == (20, 8)
    with pytest.raises(tb.TabularFormatError, match=r"8 columns.*\(20, 7\)"):
        tb.parse_power(_npy(power_raw(20)[:, :7]))
    with pytest.raises(tb.TabularFormatError, match="not a NumPy"):
        tb.parse_power(io.BytesIO(b"<html>"))


# ----------------------------------------------------------------------------- GAS
def gas_frame(n: int = 600, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8)) * rng.uniform(1, 5, 8)
    cols = {"Time": np.arange(n, dtype=float), "Meth": rng.normal(size=n),
            "Eth": rng.normal(size=n)}
    for j in range(8):
        cols[f"S{j}"] = base[:, j]
        if j in (2, 5):  # near-copies: corr > 0.98 with S2 / S5; MAF drops the first of a pair
            cols[f"T{j}"] = base[:, j] * 2 + 0.01 * rng.normal(size=n)
    return pd.DataFrame(cols)


def test_gas_recipe(tmp_path):
    frame = gas_frame()
    path = tmp_path / "ethylene_CO.pickle"
    frame.to_pickle(path)
    s = tb.clean_gas(tb.read_gas(str(path)))
    # MAF drops S2 (first of the S2/T2 pair), then S5; keeps T2, T5
    keep = ["S0", "S1", "S3", "S4", "T2", "S6", "S7", "T5"]
    kept = frame.drop(columns=["Time", "Meth", "Eth", "S2", "S5"])
    assert list(kept.columns) == ["S0", "S1", "T2", "S3", "S4", "T5", "S6", "S7"]
    assert sorted(keep) == sorted(kept.columns)
    x = ((kept - kept.mean()) / kept.std()).to_numpy()  # pandas: ddof 1, whole set
    assert s.train.shape == (486, 8) and s.validation.shape == (54, 8)
    np.testing.assert_allclose(np.vstack([s.train, s.validation, s.test]), x, atol=1e-12)


def test_gas_errors(tmp_path):
    with pytest.raises(tb.TabularFormatError, match=r"columns \['Meth'\] absent"):
        tb.clean_gas(gas_frame().drop(columns=["Meth"]))
    bad = tmp_path / "x.pickle"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(tb.TabularFormatError, match="not a pandas pickle"):
        tb.read_gas(str(bad))


# ----------------------------------------------------------------------------- HEPMASS
def hepmass_csv(n: int, extra_column: bool, seed: int) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 28))
    x[:, 27] = rng.choice([500.0, 750.0, 1000.0, 1250.0, 1500.0], size=n)  # the mass: discrete
    x[:, 4] = np.where(rng.random(n) < 0.2, -9.0, x[:, 4])  # many smallest values: dropped
    label = (rng.random(n) < 0.5).astype(float)
    cols = [label[:, None], x]
    names = ["# label"] + [f"f{j}" for j in range(27)] + ["mass"]
    if extra_column:
        cols.append(rng.normal(size=(n, 1)))
        names.append("extra")
    data = np.hstack(cols)
    lines = [",".join(names)] + [",".join(f"{v:.8g}" for v in row) for row in data]
    return "\n".join(lines) + "\n", data


def test_hepmass_recipe():
    tr_text, tr = hepmass_csv(400, False, 0)
    te_text, te = hepmass_csv(150, True, 1)
    a = tb.read_hepmass_csv(io.StringIO(tr_text), "1000_train.csv")
    b = tb.read_hepmass_csv(io.StringIO(te_text), "1000_test.csv")
    s = tb.prepare_hepmass(a, b)
    tr = np.array([[float(f"{v:.8g}") for v in r] for r in tr])
    te = np.array([[float(f"{v:.8g}") for v in r] for r in te])
    trp = tr[tr[:, 0] == 1][:, 1:]
    tep = te[te[:, 0] == 1][:, 1:-1]
    mu, sd = trp.mean(0), trp.std(0, ddof=1)
    keep = [j for j in range(28) if j not in (4, 27)]  # repeated smallest values
    trn, ten = ((trp - mu) / sd)[:, keep], ((tep - mu) / sd)[:, keep]
    n_val = int(0.1 * len(trn))
    np.testing.assert_allclose(s.train, trn[:-n_val], atol=1e-12)
    np.testing.assert_allclose(s.validation, trn[-n_val:], atol=1e-12)
    np.testing.assert_allclose(s.test, ten, atol=1e-12)


def test_hepmass_test_file_without_the_extra_column():
    # Dropping the last test column then removes the mass, which the training set loses by
    # the repeated-minimum rule anyway: the same 26 features either way.
    a = tb.read_hepmass_csv(io.StringIO(hepmass_csv(100, False, 0)[0]), "tr")
    te_extra = tb.read_hepmass_csv(io.StringIO(hepmass_csv(50, True, 1)[0]), "te")
    s = tb.prepare_hepmass(a, te_extra)
    t = tb.prepare_hepmass(a, np.delete(te_extra, 29, axis=1))  # no extra column
    np.testing.assert_array_equal(s.test, t.test)
    np.testing.assert_array_equal(s.train, t.train)


def test_hepmass_errors():
    a = tb.read_hepmass_csv(io.StringIO(hepmass_csv(100, False, 0)[0]), "tr")
    b = tb.read_hepmass_csv(io.StringIO(hepmass_csv(50, False, 1)[0]), "te")
    with pytest.raises(tb.TabularFormatError, match="kept feature 26 is absent"):
        tb.prepare_hepmass(a, b[:, :-2])
    with pytest.raises(tb.TabularFormatError, match="expected 1000_train.csv"):
        tb.prepare_hepmass(a, np.hstack([b, b]))
    with pytest.raises(tb.TabularFormatError, match="comma-separated header"):
        tb.read_hepmass_csv(io.StringIO("1 2 3\n"), "x.csv")


# ----------------------------------------------------------------------------- BSDS300
def write_bsds(path, sizes=(50, 10, 20)) -> dict:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(3)
    parts = {k: rng.normal(size=(n, 63)).astype(np.float32)
             for k, n in zip(("train", "validation", "test"), sizes, strict=True)}
    with h5py.File(path, "w") as f:
        for k, v in parts.items():
            f.create_dataset(k, data=v)
    return parts


def test_bsds300_read(tmp_path):
    parts = write_bsds(tmp_path / "BSDS300.hdf5")
    s = tb.read_bsds300(str(tmp_path / "BSDS300.hdf5"))
    for k in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(s, k), parts[k].astype(np.float64))
    (tmp_path / "bad.hdf5").write_bytes(b"nope")
    with pytest.raises(tb.TabularFormatError, match="HDF5 file with datasets"):
        tb.read_bsds300(str(tmp_path / "bad.hdf5"))


# ----------------------------------------------------------------------------- CLI + download
def make_archive(tmp_path) -> str:
    """A .tar.gz laid out as the MAF release (``data/<dataset>/...``)."""
    src = tmp_path / "src"
    (src / "data/power").mkdir(parents=True)
    np.save(src / "data/power/data.npy", power_raw(500))
    (src / "data/gas").mkdir()
    gas_frame().to_pickle(src / "data/gas/ethylene_CO.pickle")
    (src / "data/hepmass").mkdir()
    (src / "data/hepmass/1000_train.csv").write_text(hepmass_csv(300, False, 0)[0])
    (src / "data/hepmass/1000_test.csv").write_text(hepmass_csv(100, True, 1)[0])
    (src / "data/BSDS300").mkdir()
    write_bsds(src / "data/BSDS300/BSDS300.hdf5")
    (src / "data/miniboone").mkdir()
    np.save(src / "data/miniboone/data.npy", np.zeros((3, 43)))
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "data", arcname="data")
    return archive.as_uri()


def test_download_and_prepare_every_dataset(tmp_path):
    url = make_archive(tmp_path)
    raw = tmp_path / "raw"
    assert main(["download", "tabular", "--url", url, "--raw-dir", str(raw)]) == 0
    for name in tb.DATASETS:
        for p in tb.raw_paths(name):
            assert (raw / p.removeprefix("data/raw/")).is_file(), p
    assert not (raw / "miniboone").exists()  # only the members asked for
    for name in tb.DATASETS:
        out = tmp_path / f"{name}.npz"
        assert main(["prepare", "tabular", "--name", name, "--raw-dir", str(raw),
                     "--out", str(out)]) == 0
        with np.load(out) as d:
            assert d["train"].shape[1] == d["test"].shape[1] == d["validation"].shape[1]
            assert len(d["train"]) > len(d["validation"]) > 0
    with np.load(tmp_path / "bsds300.npz") as d:
        assert d["train"].shape == (50, 63)


def test_download_missing_member_keeps_nothing_half_written(tmp_path):
    url = make_archive(tmp_path)
    with pytest.raises(DownloadError, match="no member"):
        fetch_tar_members(url, {"power/data.npy": tmp_path / "a.npy",
                                "nothere/x.csv": tmp_path / "b.csv"})


def test_prepare_missing_raw_file_names_the_command(tmp_path, capsys):
    assert main(["prepare", "tabular", "--name", "gas", "--raw-dir", str(tmp_path),
                 "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "gas/ethylene_CO.pickle not found" in err and "download_tabular" in err
    assert not (tmp_path / "o.npz").exists()


# ----------------------------------------------------------------------------- the grid
def test_runs_exist_only_with_their_raw_files(tmp_path):
    from pathlib import Path

    from otflows.methods.cpflow import CPFlowConfig
    from otflows.pipeline.config import load_params
    from otflows.pipeline.experiments import all_experiments, experiments_not_run

    root = Path(__file__).resolve().parents[2]
    cfg = load_params([root / "params.yaml"], root / "schemas/params.schema.yaml")
    assert not [e for e in all_experiments(cfg, tmp_path) if e.dataset in tb.DATASETS]
    missing = {m["dataset"]: m["reason"] for m in experiments_not_run(cfg, tmp_path)
               if m["dataset"] in tb.DATASETS}
    assert set(missing) == set(tb.DATASETS)
    assert "data/raw/hepmass/1000_train.csv, data/raw/hepmass/1000_test.csv absent" in \
        missing["hepmass"] and "snakemake download_tabular" in missing["hepmass"]
    (tmp_path / "data/raw/hepmass").mkdir(parents=True)
    (tmp_path / "data/raw/hepmass/1000_train.csv").write_text("x")
    assert not [e for e in all_experiments(cfg, tmp_path) if e.dataset == "hepmass"]
    (tmp_path / "data/raw/hepmass/1000_test.csv").write_text("x")
    runs = [e for e in all_experiments(cfg, tmp_path) if e.dataset in tb.DATASETS]
    assert [e.key for e in runs] == ["cpflow/hepmass"]
    assert runs[0].data == "data/processed/hepmass.npz"
    CPFlowConfig.from_dict(runs[0].cfg)  # the trainer accepts the run config as is
    assert "hepmass" not in {m["dataset"] for m in experiments_not_run(cfg, tmp_path)}


def test_parse_power_refuses_an_absurd_header():
    """A header declaring 8e11 values is one clear error, not a raw MemoryError."""
    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 8)})
    buf.write(b"\0" * 64)
    buf.seek(0)
    with pytest.raises(tb.TabularFormatError, match="too large for memory"):
        tb.parse_power(buf)
