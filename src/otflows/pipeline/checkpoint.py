"""Atomic checkpoints: write to a temp file in the same folder, then rename.

A reader never sees a half-written file, and a killed job leaves the previous checkpoint
intact. Loading uses ``weights_only=True`` so a checkpoint cannot execute code.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CorruptFileError", "atomic_write", "save_checkpoint", "load_checkpoint",
           "write_json", "write_text", "stale_temps", "file_mode", "set_aside"]


class CorruptFileError(ValueError):
    """A file exists but cannot be read (truncated, empty, not the expected format)."""


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0666 less the umask (0644 usually);
    mkstemp's temps are 0600, so every output is set to this before it is renamed."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def stale_temps(path: str | Path) -> list[Path]:
    """Temp files an earlier, killed write of ``path`` left beside it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


def set_aside(path: str | Path) -> Path:
    """Rename an unreadable ``path`` to ``<name>.corrupt-<n>`` beside it (kept for a look,
    never read again) so the rule that makes it runs afresh; return the new name."""
    path = Path(path)
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.replace(path, aside)
    return aside


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory fds (Windows): the rename still holds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp path beside ``path``, fsync it, give it the umask's mode
    and rename it onto ``path``. Temps of an earlier killed write of ``path`` are removed
    first (one writer per output: Snakemake runs one job per output)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in stale_temps(path):
        old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with tmp_path.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save ``state`` (tensors, dicts, lists, numbers, strings) atomically with torch.save."""
    import torch  # here, not at the top: commands that never touch a model stay torch-free

    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` (``weights_only=True``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found: run the training rule first "
                                f"(snakemake {path})")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, KeyError,
            pickle.UnpicklingError) as err:
        raise CorruptFileError(
            f"checkpoint {path} ({path.stat().st_size} bytes) is corrupt or truncated "
            f"({type(err).__name__}: {str(err)[:200]}); delete it and rerun its rule "
            f"(snakemake {path})") from err
    if not isinstance(state, dict):
        raise CorruptFileError(f"checkpoint {path} holds a {type(state).__name__}, not a "
                               f"checkpoint dict; delete it and rerun snakemake {path}")
    return state


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text(text, path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))
