"""Corrupt inputs and crashes mid-write (issue 22, items 2 and 6): a clear error naming the
file and the remedy; a corrupt resume checkpoint is set aside and training restarts; no
temp file survives; outputs get the umask's mode; a diverged result leaves no artifact.

Before the fix: a truncated checkpoint gave a raw `OSError`/`RuntimeError` and stayed in
place; a corrupt MNIST gzip raised `zlib.error`; a MINIBOONE header announcing 10^12
events raised `MemoryError`; outputs were 0600; the divergence message named a `resume.pt`
that did not exist; an absurd NLL was written as a result.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from otflows.cli.io import check_points, load_npz, save_npz
from otflows.data.miniboone import MinibooneFormatError, parse_uci
from otflows.data.mnist import IdxFormatError, parse_idx
from otflows.pipeline.checkpoint import (
    CorruptFileError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    write_text,
)
from otflows.pipeline.training import DivergenceError, run_training


def _truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_truncated_checkpoint_names_file_and_remedy(tmp_path, keep):
    path = save_checkpoint({"w": torch.arange(500.0)}, tmp_path / "model.pt")
    _truncate(path, keep)
    with pytest.raises(CorruptFileError, match=r"model\.pt .*corrupt or truncated.*delete it"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_truncated_npz_names_file_and_remedy(tmp_path, keep):
    path = tmp_path / "moons.npz"
    save_npz(path, train=np.ones((50, 2)), test=np.ones((10, 2)))
    _truncate(path, keep)
    with pytest.raises(CorruptFileError, match=r"moons\.npz .*snakemake"):
        load_npz(path, "train")


def test_wrong_shapes_are_named():
    with pytest.raises(ValueError, match=r"x\.npz: train: expected a non-empty \[n, d\]"):
        check_points(np.ones(5), "x.npz: train")
    with pytest.raises(ValueError, match=r"shape \(0, 2\)"):
        check_points(np.ones((0, 2)), "x.npz: train")


def test_corrupt_mnist_gzip_is_an_idx_error():
    good = gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    assert parse_idx(good).tolist() == [97, 98, 99]
    bad = good[:10] + bytes(b ^ 0x5A for b in good[10:])  # body garbled: zlib.error before
    with pytest.raises(IdxFormatError, match=r"train-images.*corrupt gzip.*download it again"):
        parse_idx(bad, "train-images-idx3-ubyte.gz")


def test_absurd_miniboone_header_is_refused_before_allocating():
    with pytest.raises(MinibooneFormatError, match=r"announces 1000000000001 events"):
        parse_uci(io.StringIO("1000000000000 1\n" + "0.5 " * 50 + "\n"), "MiniBooNE_PID.txt")


def test_outputs_follow_the_umask_and_no_temp_remains(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text("x\n", tmp_path / "a.json")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o027)
        assert stat.S_IMODE(write_text("y\n", tmp_path / "b.json").stat().st_mode) == 0o640
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_write_killed_before_its_rename_leaves_nothing_after_the_next(tmp_path):
    """A kill between mkstemp and rename leaves `.model.pt.XXXX.tmp` (simulated here by a
    child killed mid-write); the next write of the same output removes it."""
    code = ("import os, sys\nfrom otflows.pipeline.checkpoint import atomic_write\n"
            "def w(tmp):\n    tmp.write_bytes(b'x' * 100)\n    os.kill(os.getpid(), 9)\n"
            f"atomic_write({str(tmp_path / 'model.pt')!r}, w)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    assert len(list(tmp_path.glob(".model.pt.*.tmp"))) == 1
    assert not (tmp_path / "model.pt").exists()
    save_checkpoint({"w": torch.zeros(2)}, tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_failing_write_leaves_neither_output_nor_temp(tmp_path):
    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError):
        atomic_write(tmp_path / "m.json", boom)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- resume: corrupt checkpoint
class Counter:
    """A stateful trainer whose result depends on every step (a running sum)."""

    def __init__(self, n_steps: int, nan_at: int | None = None):
        self.n_steps, self.step_index, self.total, self.nan_at = n_steps, 0, 0.0, nan_at

    def train_step(self) -> dict[str, float]:
        self.step_index += 1
        self.total += self.step_index ** 0.5
        return {"loss": float("nan") if self.step_index == self.nan_at else self.total}

    def state_dict(self) -> dict:
        return {"step": self.step_index, "total": torch.tensor(self.total, dtype=torch.float64)}

    def load_state_dict(self, state: dict) -> None:
        self.step_index, self.total = state["step"], float(state["total"])


def _run(trainer, resume: Path):
    return run_training(trainer, run_key="t", config_hash="h", resume_path=resume,
                        checkpoint_every=5, log_every=1, progress=False)


def _interrupted(resume: Path, stop: int) -> None:
    class Stop(Counter):
        def train_step(self):
            if self.step_index == stop:
                raise KeyboardInterrupt
            return super().train_step()

    with pytest.raises(KeyboardInterrupt):
        _run(Stop(30), resume)


def test_corrupt_resume_falls_back_to_the_previous_checkpoint(tmp_path, capsys):
    reference = _run(Counter(30), tmp_path / "ref.pt")
    resume = tmp_path / "resume.pt"
    _interrupted(resume, 17)  # checkpoints at 5, 10, 15: resume.pt = 15, resume.prev.pt = 10
    _truncate(resume)
    again = _run(Counter(30), resume)
    err = capsys.readouterr().err
    assert "set aside as" in err and "resume.pt.corrupt-1" in err
    assert (tmp_path / "resume.pt.corrupt-1").exists()
    assert again.resumed_from == 10
    assert again.state["total"] == reference.state["total"]
    assert [r["loss"] for r in again.history] == [r["loss"] for r in reference.history]


def test_both_checkpoints_corrupt_restarts_from_scratch(tmp_path):
    reference = _run(Counter(30), tmp_path / "ref.pt")
    resume = tmp_path / "resume.pt"
    _interrupted(resume, 17)
    _truncate(resume)
    _truncate(tmp_path / "resume.prev.pt", 0.0)
    again = _run(Counter(30), resume)
    assert again.resumed_from == 0
    assert again.state["total"] == reference.state["total"]
    assert sorted(p.name for p in tmp_path.glob("*.corrupt-*")) == [
        "resume.prev.pt.corrupt-1", "resume.pt.corrupt-1"]


def test_divergence_names_only_files_that_exist(tmp_path):
    with pytest.raises(DivergenceError, match="No checkpoint was written") as err:
        _run(Counter(30, nan_at=3), tmp_path / "resume.pt")
    assert "resume.pt" not in str(err.value)
    with pytest.raises(DivergenceError, match=r"last good state is in .*resume\.pt"):
        _run(Counter(30, nan_at=12), tmp_path / "resume.pt")


# ------------------------------------------------------------- the CLI, end to end
CFG = {"width": 4, "n_layers": 2, "rank": 2, "nt": 2, "nt_eval": 2, "alpha": 5.0,
       "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.01, "weight_decay": 0.0, "batch_size": 32,
       "iters": 3, "K": 1, "dtype": "float64"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "otflows.cli", *args], capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    assert _cli("prepare", "toy", "--name", "moons", "--n-train", "200", "--n-test", "50",
                "--seed", "0", "--out", str(tmp / "moons.npz")).returncode == 0
    proc = _cli("train", "--method", "otflow", "--experiment", "x", "--dataset", "moons",
                "--data", str(tmp / "moons.npz"), "--config", json.dumps(CFG),
                "--device", "cpu", "--no-progress", "--out", str(tmp / "model.pt"),
                "--history", str(tmp / "h.csv"), "--record", str(tmp / "r.json"))
    assert proc.returncode == 0, proc.stderr
    return tmp


def _evaluate(tmp: Path, checkpoint: Path, *extra: str) -> subprocess.CompletedProcess:
    return _cli("evaluate", "--method", "otflow", "--experiment", "x", "--dataset", "moons",
                "--data", str(tmp / "moons.npz"), "--checkpoint", str(checkpoint),
                "--device", "cpu", "--eval-samples", "50", *extra,
                "--out-metrics", str(tmp / "m.json"), "--out-samples", str(tmp / "s.npz"))


def test_absurd_nll_fails_the_job_and_writes_nothing(trained):
    proc = _evaluate(trained, trained / "model.pt", "--max-nll-per-dim", "1e-9")
    assert proc.returncode == 3, proc.stderr
    assert "sanity bound run.max_nll_per_dim" in proc.stderr
    assert not (trained / "m.json").exists() and not (trained / "s.npz").exists()
    assert _evaluate(trained, trained / "model.pt", "--max-nll-per-dim", "1000"
                     ).returncode == 0


def test_truncated_model_is_set_aside_so_the_next_run_retrains(trained):
    bad = trained / "bad" / "model.pt"
    bad.parent.mkdir()
    bad.write_bytes((trained / "model.pt").read_bytes()[:300])
    proc = _evaluate(trained, bad)
    assert proc.returncode == 2
    assert "corrupt or truncated" in proc.stderr and "set aside as" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not bad.exists() and (bad.parent / "model.pt.corrupt-1").exists()


def test_empty_data_file_is_named(trained):
    empty = trained / "empty.npz"
    empty.write_bytes(b"")
    proc = _cli("train", "--method", "otflow", "--experiment", "y", "--dataset", "moons",
                "--data", str(empty), "--config", json.dumps(CFG), "--device", "cpu",
                "--no-progress", "--out", str(trained / "y.pt"), "--history",
                str(trained / "y.csv"), "--record", str(trained / "y.json"))
    assert proc.returncode == 2
    assert "empty.npz is empty (0 bytes)" in proc.stderr and "snakemake" in proc.stderr
