"""Experiment grids: which runs (method, experiment, dataset, run config) params asks for.

One module per paper (``jko``, ``ekp``, ``mongeampere``, ``cpflow``, ``qflow``, ``vae``; and
``benchmark``, the cross-method benchmark over their toy runs), each
with ``experiments(config)`` and, where a run needs raw data that is not offline,
``miniboone_experiments(config)``. The Snakefile enumerates targets from here and hands each
training job exactly its own resolved run config, so an edit reruns precisely the runs whose
config changed. Torch-free on purpose: it is imported when the Snakefile is parsed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from otflows.data.miniboone import FETCH_HINT, RAW_DIR
from otflows.pipeline.experiments.base import Experiment, miniboone_present, select_runs
from otflows.pipeline.experiments.mongeampere import mongeampere_ising_data
from otflows.pipeline.experiments.qflow import qflow_data, qflow_ebm_stem

__all__ = ["PAPERS", "Experiment", "all_experiments", "experiment_index", "experiments_not_run",
           "mongeampere_ising_data", "qflow_data", "qflow_ebm_stem", "register_paper",
           "select_runs"]

# The per-paper grids, in the order their runs are listed (the summary keeps this order).
PAPERS: list[str] = [f"otflows.pipeline.experiments.{name}"
                     for name in ("jko", "ekp", "mongeampere", "cpflow", "qflow", "vae",
                                  "benchmark")]


def register_paper(module: str) -> None:
    """Add a grid module (with ``experiments(config)``) after the built-in ones."""
    if module not in PAPERS:
        PAPERS.append(module)


def _papers() -> list[ModuleType]:
    return [importlib.import_module(name) for name in PAPERS]


def _miniboone_runs(config: dict) -> list[Experiment]:
    return [e for paper in _papers() if hasattr(paper, "miniboone_experiments")
            for e in paper.miniboone_experiments(config)]


def _gated_runs(config: dict, root: str | Path) -> list[tuple[Experiment, bool, str]]:
    """(run, whether its raw files are under ``root``, why not) of every paper's
    ``gated_experiments(config)`` (runs on data that is not offline, e.g. MAF's POWER)."""
    out = []
    for paper in _papers():
        for e, raws, hint in getattr(paper, "gated_experiments", lambda c: [])(config):
            absent = [r for r in raws if not (Path(root) / r).is_file()]
            out.append((e, not absent, f"not run: {', '.join(absent)} absent ({hint})"))
    return out


def all_experiments(config: dict, root: str | Path = ".") -> list[Experiment]:
    """Every run params asks for whose raw data is present under ``root``, in a stable
    order. MINIBOONE runs need data/raw/miniboone; nothing ever stands in for it."""
    runs = [e for paper in _papers() for e in paper.experiments(config)]
    if miniboone_present(config, root):
        runs += _miniboone_runs(config)
    runs += [e for e, present, _ in _gated_runs(config, root) if present]
    return runs


def experiments_not_run(config: dict, root: str | Path = ".") -> list[dict[str, str]]:
    """Runs params asks for but whose raw data is absent: method, experiment, dataset and
    the reason, for the not-run list of the summary and the report."""
    gated = [{"method": e.method, "experiment": e.name, "dataset": e.dataset, "reason": why}
             for e, present, why in _gated_runs(config, root) if not present]
    if miniboone_present(config, root):
        return gated
    reason = f"not run: {RAW_DIR} absent ({FETCH_HINT})"
    return [{"method": e.method, "experiment": e.name, "dataset": e.dataset, "reason": reason}
            for e in _miniboone_runs(config)] + gated


def experiment_index(config: dict, root: str | Path = ".") -> dict[tuple[str, str], Experiment]:
    """``{(method, experiment name): Experiment}``."""
    return {(e.method, e.name): e for e in all_experiments(config, root)}
