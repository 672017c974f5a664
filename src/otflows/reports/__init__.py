"""Every figure and table the ``otflows figure|table`` commands draw, by name.

The one registry over the per-paper report modules: ``jko`` (OT-Flow/JKO-Flow, Tables 1-3,
Figs. 1-5), ``ekp``, ``cpflow``, ``qflow``, ``mongeampere``, ``data`` (the prepared
data sets) and ``claims`` (the claims ledger); ``summary`` writes the metrics summary and
the toy benchmark; ``common`` holds the helpers they share. Those modules import only
``common`` (and lower layers), never this one or each other.

The registry is built on first use (``FIGURES``, ``TABLES``, :func:`figure`, :func:`table`),
so importing ``otflows.reports.catalog`` (when the Snakefile is parsed) loads neither
matplotlib nor torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "TABLES", "figure", "table"]

# The per-paper modules, each defining FIGURES and TABLES dicts of kind name → builder.
MODULES = ("data", "jko", "ekp", "cpflow", "qflow", "mongeampere", "claims", "benchmark")

FigureBuilder = Callable[[list[Path], Path], None]  # (inputs, out.png) → None
TableBuilder = Callable[[list[Path], Path, Path], None]  # (inputs, out.md, out.csv) → None


@cache
def _registry() -> tuple[dict[str, FigureBuilder], dict[str, TableBuilder]]:
    figures: dict[str, FigureBuilder] = {}
    tables: dict[str, TableBuilder] = {}
    for name in MODULES:
        module = importlib.import_module(f"otflows.reports.{name}")
        for merged, own in ((figures, module.FIGURES), (tables, module.TABLES)):
            clash = merged.keys() & own.keys()
            if clash:
                raise RuntimeError(f"report kinds registered twice: {sorted(clash)}")
            merged.update(own)
    return figures, tables


def __getattr__(name: str) -> Any:
    if name == "FIGURES":
        return _registry()[0]
    if name == "TABLES":
        return _registry()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def figure(kind: str) -> FigureBuilder:
    """The figure builder named ``kind``; ValueError listing the known names otherwise."""
    figures = _registry()[0]
    if kind not in figures:
        raise ValueError(f"unknown figure {kind!r}; known: {', '.join(sorted(figures))}")
    return figures[kind]


def table(kind: str) -> TableBuilder:
    """The table builder named ``kind``; ValueError listing the known names otherwise."""
    tables = _registry()[1]
    if kind not in tables:
        raise ValueError(f"unknown table {kind!r}; known: {', '.join(sorted(tables))}")
    return tables[kind]
