"""A full disk during a write: one clear line naming the reason, no partial output, no temp file."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from otflows.cli.main import main


def test_full_disk_gives_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys) -> None:
    """ENOSPC while the npz is written: exit 2, the reason and file in one line, no files left."""
    out = tmp_path / "toy" / "moons.npz"

    def no_space(fh, **arrays) -> None:
        fh.write(b"PK\x03\x04partial")  # some bytes reach the disk before it fills
        raise OSError(errno.ENOSPC, "No space left on device", str(fh.name))

    monkeypatch.setattr(np, "savez", no_space)
    rc = main(["prepare", "toy", "--name", "moons", "--n-train", "64", "--n-test", "32",
               "--seed", "0", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert "message: None" not in err[0]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_unwritable_folder_names_the_reason(tmp_path, monkeypatch, capsys, code) -> None:
    """A read-only or forbidden folder: the OS's reason, not a traceback."""
    out = tmp_path / "moons.npz"

    def refused(fh, **arrays) -> None:
        raise OSError(code, "refused by the test", str(out))

    monkeypatch.setattr(np, "savez", refused)
    rc = main(["prepare", "toy", "--name", "moons", "--n-train", "64", "--n-test", "32",
               "--seed", "0", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "refused by the test" in err and str(out) in err
    assert not out.exists()
