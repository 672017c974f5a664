"""The house rules of ``src/otflows``, read from the code with ``ast`` so they cannot rot.

Layers import downward only: the ground floor (``nn``, ``data``, ``ode``, ``linalg``,
``metrics``, ``distributions``) knows nothing above it; ``methods`` nothing of ``pipeline``,
``reports``, ``cli``; ``pipeline`` nothing of ``reports``, ``cli``; ``reports`` nothing of
``cli``. No import cycles (lazy imports inside functions count). No module imports a
``_private`` name defined in another module. Small modules, a small package root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "otflows"
FLOORS = {"nn": 0, "data": 0, "ode": 0, "linalg": 0, "metrics": 0, "distributions": 0,
          "methods": 1, "pipeline": 2, "reports": 3, "cli": 4}
ROOT_FILES = {"__init__.py", "ode.py", "linalg.py", "distributions.py", "py.typed"}
MAX_LINES = 420  # "about 400"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest known module that ``name`` (a dotted path) starts with."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(target module, imported name or None, line) for every otflows import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(t, None, node.lineno) for a in node.names
                    if (t := _resolve(a.name)) and a.name.startswith("otflows")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("otflows"):
                continue
            for alias in node.names:
                sub = _resolve(f"{base}.{alias.name}")
                if sub == f"{base}.{alias.name}":
                    out.append((sub, None, node.lineno))  # a submodule
                elif (target := _resolve(base)) is not None:
                    out.append((target, alias.name, node.lineno))
    return out


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else 0


def test_layers_import_downward_only():
    upward = []
    for module in MODULES:
        here = _floor(module)
        for target, _name, line in _imports(module):
            there = _floor(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{MODULES[module].relative_to(SRC)}:{line} imports {target}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_every_module_belongs_to_a_floor():
    unknown = sorted(m for m in MODULES if _floor(m) is None)
    assert not unknown, f"modules outside the known floors {sorted(FLOORS)}: {unknown}"


def test_no_import_cycles():
    graph = {m: {t for t, _n, _l in _imports(m) if t != m} for m in MODULES}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_imports_another_modules_private_name():
    bad = []
    for module in MODULES:
        for target, name, line in _imports(module):
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                bad.append(f"{MODULES[module].relative_to(SRC)}:{line} imports {target}.{name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_package_root_holds_a_handful_of_files():
    files = {p.name for p in PKG.iterdir() if p.is_file()}
    assert files <= ROOT_FILES, f"unexpected files in src/otflows/: {sorted(files - ROOT_FILES)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    where = MODULES[module].relative_to(SRC)
    assert lines <= MAX_LINES, f"{where} has {lines} lines (> {MAX_LINES}): split it by concern"


def test_the_checker_reads_imports():
    """The reader behind the rules resolves names to modules and modules to floors."""
    assert _resolve("otflows.methods.base.Evaluation") == "otflows.methods.base"
    assert _floor("otflows.nn.icnn") == 0 and _floor("otflows.cli.main") == 4
    names = {(t, n) for t, n, _l in _imports("otflows.cli.run")}
    assert ("otflows.cli.io", "load_npz") in names
