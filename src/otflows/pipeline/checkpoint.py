"""Atomic checkpoints: write to a temp file in the same folder, then rename.

A reader never sees a half-written file, and a killed job leaves the previous checkpoint
intact. Loading uses ``weights_only=True`` so a checkpoint cannot execute code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "write_json", "write_text"]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp path beside ``path`` and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
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

    return torch.load(path, map_location="cpu", weights_only=True)


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text(text, path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))
