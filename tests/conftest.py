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


@pytest.fixture
def assert_resumes_bit_exactly():
    """A check shared by method tests: a trainer stopped after ``stop`` of ``steps`` steps,
    saved, and loaded into a trainer built with another seed continues with exactly the same
    losses and ends with the same parameters; returns (resumed, straight) for further checks."""
    import io

    import torch

    def check(make, cfg: dict, data, steps: int = 12, stop: int = 5):
        cpu = torch.device("cpu")
        straight = make(cfg, data, 7, cpu)
        first = [straight.train_step()["loss"] for _ in range(steps)]
        half = make(cfg, data, 7, cpu)
        for _ in range(stop):
            half.train_step()
        buffer = io.BytesIO()
        torch.save(half.state_dict(), buffer)
        buffer.seek(0)
        resumed = make(cfg, data, 99, cpu)  # another seed: everything comes from the state
        resumed.load_state_dict(torch.load(buffer, weights_only=True))
        assert [resumed.train_step()["loss"] for _ in range(steps - stop)] == first[stop:]
        for p, q in zip(resumed.parameters(), straight.parameters(), strict=True):
            assert torch.equal(p, q)
        return resumed, straight

    return check
