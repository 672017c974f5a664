"""The figure/table registry: every report module imports on its own (the registry and the
catalog without matplotlib or torch), every kind the rules name is registered once, and an
unknown kind is a clear error."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otflows import reports

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["reports", *(f"reports.{m}" for m in
                       ("common", "summary", "catalog", *reports.MODULES))]


@pytest.mark.parametrize("module", MODULES)
def test_each_report_module_imports_on_its_own(module: str):
    proc = subprocess.run([sys.executable, "-c", f"import otflows.{module}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_registry_and_catalog_import_without_matplotlib_or_torch():
    code = ("import sys, otflows.reports, otflows.reports.catalog; "
            "print(sorted({'matplotlib', 'torch'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_no_report_module_imports_a_private_name_of_another():
    src = ROOT / "src" / "otflows" / "reports"
    offenders = [(p.name, node.module, alias.name) for p in src.glob("*.py")
                 for node in ast.walk(ast.parse(p.read_text()))
                 if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("otflows")
                 for alias in node.names if alias.name.startswith("_")]
    assert not offenders


def test_every_module_registers_kinds_only_once():
    from importlib import import_module

    seen: dict[tuple[str, str], str] = {}
    for name in reports.MODULES:
        module = import_module(f"otflows.reports.{name}")
        for what, kinds in (("figure", module.FIGURES), ("table", module.TABLES)):
            for kind in kinds:
                assert (what, kind) not in seen, (what, kind, name, seen.get((what, kind)))
                seen[(what, kind)] = name
    assert len(seen) == len(reports.FIGURES) + len(reports.TABLES)


def test_every_kind_the_rules_and_the_catalog_name_is_registered():
    """Kinds in ``otflows figure|table <kind>`` shell lines of the rules and the builder names
    of ``otflows.reports.catalog`` (its f-string builders spelled out below)."""
    rules = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    named = {(m.group(1), m.group(2))
             for m in re.finditer(r"otflows (figure|table) ([a-z0-9-]+)(?![{\w-])", rules)}
    catalog = (ROOT / "src/otflows/reports/catalog.py").read_text()
    what = {"fig": "figure", "tab": "table"}
    named |= {(what[m.group(1)], m.group(2)) for m in
              re.finditer(r"_(fig|tab)\(f?\"[^\"]*\", \"([a-z0-9-]+)\"", catalog)}
    named |= {("table", f"jko-{s}") for s in ("alpha", "width")}
    named |= {("table", f"cpflow-{s}") for s in ("miniboone", "mnist", "vae")}
    assert len(named) > 20
    missing = [(what, kind) for what, kind in named
               if kind not in (reports.FIGURES if what == "figure" else reports.TABLES)]
    assert not missing
    unused = sorted(({("figure", k) for k in reports.FIGURES}
                     | {("table", k) for k in reports.TABLES}) - named)
    assert not unused


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown figure 'nope'; known: .*jko-alpha"):
        reports.figure("nope")
    with pytest.raises(ValueError, match=r"unknown table 'nope'; known: .*cpflow-mnist"):
        reports.table("nope")
