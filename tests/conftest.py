"""Fixtures shared by every test module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small tensors gain nothing from threads; one keeps the tests fast on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's workflow files in a temp folder (snakemake never runs in the repo)."""
    root = tmp_path_factory.mktemp("proj")
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(PROJECT / name, root / name)
    for name in ("rules", "schemas", "config", "report"):
        shutil.copytree(PROJECT / name, root / name)
    return root
