"""Every figure and table the ``otflows figure|table`` commands draw, by name.

The one registry over the report modules: ``plots`` and ``tables`` (OT-Flow/JKO-Flow, EKP,
Monge-Ampère, the summary), ``figures_cpflow``/``tables_cpflow`` (CP-Flow) and
``qflow_report`` (Q-flow). Those modules import only what they build on, never this one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from otflows.reports import figures_cpflow, plots, qflow_report, tables, tables_cpflow

__all__ = ["FIGURES", "TABLES", "figure", "table"]

FIGURES: dict[str, Callable[[list[Path], Path], None]] = {
    **plots.FIGURES, **figures_cpflow.FIGURES, **qflow_report.FIGURES}
TABLES: dict[str, Callable[[list[Path], Path, Path], None]] = {
    **tables.TABLES, **tables_cpflow.TABLES, **qflow_report.TABLES}


def figure(kind: str) -> Callable[[list[Path], Path], None]:
    """The figure builder named ``kind``; ValueError listing the known names otherwise."""
    if kind not in FIGURES:
        raise ValueError(f"unknown figure {kind!r}; known: {', '.join(sorted(FIGURES))}")
    return FIGURES[kind]


def table(kind: str) -> Callable[[list[Path], Path, Path], None]:
    """The table builder named ``kind``; ValueError listing the known names otherwise."""
    if kind not in TABLES:
        raise ValueError(f"unknown table {kind!r}; known: {', '.join(sorted(TABLES))}")
    return TABLES[kind]
