"""Downloads of raw data: streamed to a temp file with a progress bar, checked, then renamed.

A file that fails its size or checksum check never appears under its final name, so a
half-finished or corrupt download is never taken for data. ``tar_member`` extracts one
member of a ``.tar.gz`` while it streams (the MAF archive holds every dataset; only one is
kept). ``dvc_add`` puts the raw folder under DVC after a download.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

from otflows.pipeline.checkpoint import atomic_write

__all__ = ["DownloadError", "fetch", "fetch_tar_members", "dvc_add"]

_BLOCK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed or its result did not pass the size/checksum check."""


class _Progress:
    """A readable stream that advances a tqdm bar and hashes what passes through."""

    def __init__(self, raw: IO[bytes], bar: tqdm) -> None:
        self.raw, self.bar, self.md5, self.n = raw, bar, hashlib.md5(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.md5.update(data)
        self.n += len(data)
        self.bar.update(len(data))
        return data


def fetch(url: str, dest: str | Path, *, expected_bytes: int | None = None,
          md5: str | None = None, tar_member: str | None = None, timeout: float = 60.0
          ) -> Path:
    """Download ``url`` to ``dest`` (atomically), checking size and MD5 of what was fetched.

    With ``tar_member``, ``url`` is a ``.tar.gz`` and only the member whose path ends in
    ``tar_member`` is written to ``dest`` (streamed: the archive is never stored).
    ``file://`` URLs work (tests).
    """
    dest = Path(dest)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (OSError, ValueError) as err:
        raise DownloadError(f"cannot download {url}: {err}. Check the URL in params.yaml "
                            f"and the network, or place the file at {dest} by hand") from err
    total = getattr(response, "length", None) or expected_bytes
    with response, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                        file=sys.stderr, mininterval=2.0) as bar:
        stream = _Progress(response, bar)

        def write(tmp: Path) -> None:
            if tar_member is None:
                with tmp.open("wb") as out:
                    shutil.copyfileobj(stream, out, _BLOCK)
                _check(url, stream.n, stream.md5.hexdigest(), expected_bytes, md5)
                return
            with tarfile.open(fileobj=stream, mode="r|gz") as tar:
                for member in tar:
                    if ("/" + member.name).endswith("/" + tar_member) and member.isfile():
                        with tmp.open("wb") as out:
                            shutil.copyfileobj(tar.extractfile(member), out, _BLOCK)
                        return
            raise DownloadError(f"{url} holds no member {tar_member!r}")

        try:
            atomic_write(dest, write)
        except (OSError, tarfile.TarError) as err:
            raise DownloadError(f"download of {url} failed after {stream.n} bytes: {err}"
                                ) from err
    return dest


def fetch_tar_members(url: str, members: dict[str, str | Path], timeout: float = 60.0
                      ) -> list[Path]:
    """Stream the ``.tar.gz`` at ``url`` once and write each member whose path ends in a key
    of ``members`` to its value (atomically). The archive is never stored; every member must
    be found. (The MAF archive holds POWER, GAS, HEPMASS and BSDS300: one pass for all.)"""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (OSError, ValueError) as err:
        raise DownloadError(f"cannot download {url}: {err}. Check the URL in params.yaml "
                            f"and the network, or place the files by hand") from err
    found: list[Path] = []
    total = getattr(response, "length", None)
    with response, tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name,
                        file=sys.stderr, mininterval=2.0) as bar:
        stream = _Progress(response, bar)
        try:
            with tarfile.open(fileobj=stream, mode="r|gz") as tar:
                for member in tar:
                    key = next((k for k in members if ("/" + member.name).endswith("/" + k)),
                               None)
                    if key is None or not member.isfile():
                        continue
                    src = tar.extractfile(member)

                    def write(tmp: Path, src=src) -> None:
                        with tmp.open("wb") as out:
                            shutil.copyfileobj(src, out, _BLOCK)

                    found.append(atomic_write(Path(members[key]), write))
        except (OSError, tarfile.TarError) as err:
            raise DownloadError(f"download of {url} failed after {stream.n} bytes: {err}"
                                ) from err
    if len(found) != len(members):
        names = {p.resolve() for p in found}
        absent = [k for k, v in members.items() if Path(v).resolve() not in names]
        raise DownloadError(f"{url} holds no member(s) {absent}")
    return found


def _check(url: str, n: int, digest: str, expected_bytes: int | None, md5: str | None
           ) -> None:
    problem = None
    if expected_bytes is not None and n != expected_bytes:
        problem = f"{n} bytes, expected {expected_bytes}"
    elif md5 is not None and digest != md5:
        problem = f"MD5 {digest}, expected {md5}"
    if problem:
        raise DownloadError(f"{url}: {problem}; nothing was kept. Retry, or use another "
                            f"mirror (the URL is in params.yaml)")


def dvc_add(path: str | Path, repo: str | Path = ".") -> bool:
    """``dvc add path`` when ``repo`` is a DVC repository; False when it is not one."""
    if not (Path(repo) / ".dvc").is_dir():
        return False
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    proc = subprocess.run([dvc, "add", str(path)], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DownloadError(f"`dvc add {path}` failed ({proc.returncode}): "
                            f"{proc.stderr.strip()[-2000:]}")
    return True
