"""Downloads (file:// URLs stand in for the network): checks, tar member extraction, the
download commands' format checks, and `dvc add` of the raw folder."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from otflows.cli.main import main
from otflows.pipeline.download import DownloadError, dvc_add, fetch


def test_fetch_checks_size_and_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    md5 = hashlib.md5(b"x" * 1000).hexdigest()
    out = fetch(src.as_uri(), tmp_path / "a/out.bin", expected_bytes=1000, md5=md5)
    assert out.read_bytes() == b"x" * 1000
    with pytest.raises(DownloadError, match="1000 bytes, expected 999; nothing was kept"):
        fetch(src.as_uri(), tmp_path / "b.bin", expected_bytes=999)
    with pytest.raises(DownloadError, match=f"MD5 {md5}, expected 0+"):
        fetch(src.as_uri(), tmp_path / "c.bin", md5="0" * 32)
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "c.bin").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(DownloadError, match="cannot download .*place the file"):
        fetch((tmp_path / "missing").as_uri(), tmp_path / "d.bin")


def _maf_archive(path: Path, member_data: bytes) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("data/power/data.npy", b"power"),
                           ("data/miniboone/data.npy", member_data)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_download_miniboone_from_the_maf_archive(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).normal(size=(30, 43)))
    archive = tmp_path / "data.tar.gz"
    _maf_archive(archive, buf.getvalue())
    out = tmp_path / "raw/miniboone/data.npy"
    assert main(["download", "miniboone", "--source", "maf", "--url", archive.as_uri(),
                 "--out", str(out)]) == 0
    assert np.load(out).shape == (30, 43)


def test_download_keeps_no_malformed_file(tmp_path, capsys):
    archive = tmp_path / "data.tar.gz"
    _maf_archive(archive, b"<html>not an array</html>")
    out = tmp_path / "raw/miniboone/data.npy"
    assert main(["download", "miniboone", "--source", "maf", "--url", archive.as_uri(),
                 "--out", str(out)]) == 2
    assert "not a NumPy .npy array" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "MiniBooNE_PID.txt"
    bad.write_text("36499 93565\n1 2 3\n")
    uci = tmp_path / "raw/uci.txt"
    assert main(["download", "miniboone", "--source", "uci", "--url", bad.as_uri(),
                 "--out", str(uci)]) == 2
    assert "line 2: expected 50" in capsys.readouterr().err and not uci.exists()
    assert main(["download", "miniboone", "--source", "maf", "--url",
                 (tmp_path / "nothing.tar.gz").as_uri(), "--out", str(out)]) == 1


def test_download_mnist_checks_the_published_sizes(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01"))
    assert main(["download", "mnist", "--url", site.as_uri(), "--out-dir",
                 str(tmp_path / "raw")]) == 1
    assert "expected 9912422; nothing was kept" in capsys.readouterr().err
    assert not (tmp_path / "raw/train-images-idx3-ubyte.gz").exists()


def test_dvc_add_tracks_the_raw_folder(tmp_path):
    assert dvc_add(tmp_path / "x", repo=tmp_path) is False  # not a DVC repository
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    raw = tmp_path / "data/raw/miniboone"
    raw.mkdir(parents=True)
    (raw / "data.npy").write_bytes(b"123")
    assert dvc_add("data/raw/miniboone", repo=tmp_path) is True
    assert (tmp_path / "data/raw/miniboone.dvc").exists()
