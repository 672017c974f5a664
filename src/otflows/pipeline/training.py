"""The training loop every method shares: progress, divergence stop, checkpoints, resume.

Methods supply a ``Trainer`` (see ``methods/base.py``); this loop calls ``train_step`` until
``n_steps``, writes a resumable checkpoint atomically every ``checkpoint_every`` steps, and
stops on the first non-finite loss without writing any final artifact.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from otflows.methods.base import Trainer
from otflows.pipeline.checkpoint import (
    CorruptFileError,
    load_checkpoint,
    save_checkpoint,
    set_aside,
    stale_temps,
)

__all__ = ["DivergenceError", "TrainResult", "run_training", "previous_path", "load_resume"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What the loop hands back: the final state, the logged history and the time spent."""

    state: dict
    history: list[dict[str, float]]
    train_seconds: float
    resumed_from: int


def previous_path(resume_path: Path) -> Path:
    """Where the checkpoint before the latest is kept (``resume.prev.pt``)."""
    return resume_path.with_name(f"{resume_path.stem}.prev{resume_path.suffix}")


def load_resume(resume_path: Path, config_hash: str, run_key: str) -> dict | None:
    """The newest readable resume state of this config: ``resume.pt``, else the one before
    it; an unreadable file is set aside (renamed ``*.corrupt-<n>``, said on stderr)."""
    for old in [*stale_temps(resume_path), *stale_temps(previous_path(resume_path))]:
        old.unlink(missing_ok=True)  # a write killed before its rename
    for candidate in (resume_path, previous_path(resume_path)):
        if not candidate.exists():
            continue
        try:
            saved = load_checkpoint(candidate)
        except CorruptFileError as err:
            aside = set_aside(candidate)
            cause = type(err.__cause__ or err).__name__
            print(f"[otflows] {run_key}: {candidate} is corrupt or truncated ({cause}); set "
                  f"aside as {aside}; trying the previous checkpoint, else starting afresh",
                  file=sys.stderr)
            continue
        if saved.get("config_hash") == config_hash and "state" in saved:
            print(f"[otflows] {run_key}: resuming from {candidate}", file=sys.stderr)
            return saved
        print(f"[otflows] {run_key}: ignoring {candidate} (written for another config)",
              file=sys.stderr)
    return None


def run_training(
    trainer: Trainer,
    *,
    run_key: str,
    config_hash: str,
    resume_path: Path,
    checkpoint_every: int,
    log_every: int,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
    history: list[dict[str, float]] | None = None,
    seconds: float = 0.0,
) -> TrainResult:
    """Train to completion, resuming from ``resume_path`` when it holds this config's state.

    ``history`` and ``seconds``: what an earlier run this one continues from logged and took
    (a resumed checkpoint replaces both).
    """
    history = list(history or [])
    seconds = float(seconds)
    resumed_from = 0
    saved = load_resume(resume_path, config_hash, run_key)
    if saved is not None:
        trainer.load_state_dict(saved["state"])
        history = list(saved["history"])
        seconds = float(saved["train_seconds"])
        resumed_from = trainer.step_index
        print(f"[otflows] {run_key}: resumed at step {resumed_from}", file=sys.stderr)

    def checkpoint() -> None:
        # the latest good state becomes the previous one, then the new one is written
        if resume_path.exists():
            os.replace(resume_path, previous_path(resume_path))
        save_checkpoint({"config_hash": config_hash, "state": trainer.state_dict(),
                         "history": history, "train_seconds": seconds}, resume_path)

    bar = tqdm(total=trainer.n_steps, initial=trainer.step_index, desc=run_key,
               disable=not progress, mininterval=2.0, dynamic_ncols=True, file=sys.stderr)
    start = time.perf_counter()
    while trainer.step_index < trainer.n_steps:
        logs = trainer.train_step()
        step = trainer.step_index
        loss = logs["loss"]
        if not math.isfinite(loss):
            bar.close()
            raise DivergenceError(
                f"{run_key}: training loss is {loss} at iteration {step} "
                f"(last finite values: {history[-1] if history else 'none'}); stopped, no "
                f"model or metrics were written. Lower the learning rate or alpha, or check "
                f"the data. {_last_good(resume_path)}"
            )
        if step % log_every == 0 or step == trainer.n_steps:
            row = {"step": step, **{k: float(v) for k, v in logs.items()}}
            history.append(row)
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if on_log is not None:
                on_log(step, row)
        bar.update(1)
        if step % checkpoint_every == 0 and step < trainer.n_steps:
            seconds += time.perf_counter() - start
            start = time.perf_counter()
            checkpoint()
    bar.close()
    seconds += time.perf_counter() - start
    return TrainResult(trainer.state_dict(), history, seconds, resumed_from)


def _last_good(resume_path: Path) -> str:
    """Name the last good checkpoint only where one exists."""
    found = [p for p in (resume_path, previous_path(resume_path)) if p.exists()]
    return (f"The last good state is in {found[0]}." if found
            else "No checkpoint was written before it diverged.")
