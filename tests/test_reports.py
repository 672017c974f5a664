"""The figure/table registry: every report module imports on its own, every kind the rules
name is registered, and an unknown kind is a clear error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from otflows import reports

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["plots", "tables", "figures_cpflow", "tables_cpflow", "qflow_report", "reports"]


@pytest.mark.parametrize("module", MODULES)
def test_each_report_module_imports_on_its_own(module: str):
    proc = subprocess.run([sys.executable, "-c", f"import otflows.{module}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_kind_the_rules_name_is_registered():
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    named = {(m.group(1), m.group(2))
             for m in re.finditer(r"otflows (figure|table) ([a-z0-9-]+)(?![{\w-])", text)}
    assert len(named) > 20
    missing = [(what, kind) for what, kind in named
               if kind not in (reports.FIGURES if what == "figure" else reports.TABLES)]
    assert not missing


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown figure 'nope'; known: .*jko-alpha"):
        reports.figure("nope")
    with pytest.raises(ValueError, match=r"unknown table 'nope'; known: .*cpflow-mnist"):
        reports.table("nope")
