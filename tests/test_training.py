"""The shared training loop: divergence stop, atomic checkpoints, resume equality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from otflows.pipeline.checkpoint import load_checkpoint
from otflows.pipeline.training import DivergenceError, run_training


class LinearTrainer:
    """A least-squares fit by SGD on random batches: small, but stateful like a method."""

    def __init__(self, n_steps: int, lr: float = 0.05, nan_at: int | None = None,
                 crash_at: int | None = None):
        self.n_steps, self.step_index = n_steps, 0
        self.gen = torch.Generator().manual_seed(0)
        self.w = torch.zeros(3, requires_grad=True)
        self.opt = torch.optim.Adam([self.w], lr=lr)
        self.x = torch.randn(256, 3, generator=torch.Generator().manual_seed(1))
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])
        self.nan_at, self.crash_at = nan_at, crash_at

    def train_step(self) -> dict[str, float]:
        if self.crash_at is not None and self.step_index == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        idx = torch.randint(0, 256, (32,), generator=self.gen)
        loss = ((self.x[idx] @ self.w - self.y[idx]) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step_index += 1
        value = float("nan") if self.step_index == self.nan_at else loss.item()
        return {"loss": value}

    def state_dict(self) -> dict:
        return {"w": self.w.detach().clone(), "opt": self.opt.state_dict(),
                "gen": self.gen.get_state(), "step": self.step_index}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.step_index = state["step"]


def _train(trainer, path: Path, **kw):
    return run_training(trainer, run_key="t", config_hash=kw.pop("config_hash", "h"),
                        resume_path=path, checkpoint_every=5, log_every=1, progress=False)


def test_nan_stops_with_the_iteration(tmp_path: Path):
    with pytest.raises(DivergenceError, match=r"loss is nan at iteration 7"):
        _train(LinearTrainer(20, nan_at=7), tmp_path / "resume.pt")


def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path):
    full = _train(LinearTrainer(23), tmp_path / "a.pt")
    resume = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        _train(LinearTrainer(23, crash_at=13), resume)
    assert load_checkpoint(resume)["state"]["step"] == 10  # last checkpoint before the kill
    again = _train(LinearTrainer(23), resume)
    assert again.resumed_from == 10
    torch.testing.assert_close(again.state["w"], full.state["w"], rtol=0, atol=0)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in full.history]


def test_resume_ignores_a_checkpoint_of_another_config(tmp_path: Path):
    resume = tmp_path / "c.pt"
    with pytest.raises(KeyboardInterrupt):
        _train(LinearTrainer(20, crash_at=12), resume, config_hash="old")
    again = _train(LinearTrainer(20), resume, config_hash="new")
    assert again.resumed_from == 0


# ---------------------------------------------------------------- the real CLI, killed
CFG = {"width": 8, "n_layers": 2, "rank": 10, "nt": 4, "nt_eval": 4, "alpha": 5.0,
       "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.01, "weight_decay": 0.0, "batch_size": 256,
       "iters": 60, "K": 2, "dtype": "float64"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "otflows.cli", *args]


def _train_cmd(tmp: Path, data: Path, tag: str) -> list[str]:
    out = tmp / tag
    return _cli("train", "--method", "jko", "--experiment", tag, "--dataset", "moons",
                "--data", str(data), "--config", json.dumps(CFG), "--seed", "0",
                "--device", "cpu", "--checkpoint-every", "3", "--no-progress",
                "--out", str(out / "model.pt"), "--history", str(out / "h.csv"),
                "--record", str(out / "r.json"))


def _evaluate(tmp: Path, data: Path, tag: str) -> dict:
    out = tmp / tag
    subprocess.run(_cli("evaluate", "--method", "jko", "--experiment", tag, "--dataset",
                        "moons", "--data", str(data), "--checkpoint", str(out / "model.pt"),
                        "--device", "cpu", "--eval-samples", "100",
                        "--out-metrics", str(out / "m.json"),
                        "--out-samples", str(out / "s.npz")), check=True)
    metrics = json.loads((out / "m.json").read_text())
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "experiment",
                                                          "resumed_from")}


def test_killed_training_job_resumes_with_identical_metrics(tmp_path: Path):
    data = tmp_path / "moons.npz"
    subprocess.run(_cli("prepare", "toy", "--name", "moons", "--n-train", "500",
                        "--n-test", "200", "--seed", "0", "--out", str(data)), check=True)
    subprocess.run(_train_cmd(tmp_path, data, "full"), check=True)
    reference = _evaluate(tmp_path, data, "full")

    proc = subprocess.Popen(_train_cmd(tmp_path, data, "killed"))
    resume = tmp_path / "killed" / "resume.pt"
    deadline = time.time() + 120
    while not resume.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.fail("training finished before it could be killed; raise CFG['iters']")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model.pt").exists()
    rerun = subprocess.run(_train_cmd(tmp_path, data, "killed"), capture_output=True,
                           text=True, check=True)
    assert "resumed at step" in rerun.stderr
    assert not resume.exists() and not (tmp_path / "killed" / "resume.prev.pt").exists()
    assert not list((tmp_path / "killed").glob(".*.tmp"))
    assert _evaluate(tmp_path, data, "killed") == reference


def test_cli_rejects_non_finite_data_before_training(tmp_path: Path):
    data = tmp_path / "moons.npz"
    subprocess.run(_cli("prepare", "toy", "--name", "moons", "--n-train", "300",
                        "--n-test", "50", "--seed", "0", "--out", str(data)), check=True)
    with np.load(data) as d:
        train, test = d["train"].copy(), d["test"]
    train[5, 1] = np.nan
    np.savez(data, train=train, test=test)
    proc = subprocess.run(_train_cmd(tmp_path, data, "nan"), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "train holds 1 non-finite value" in proc.stderr
    assert not (tmp_path / "nan").exists()
