"""Hostile target names never reach a shell: every wildcard is constrained and every path,
params value and wildcard in a rule's `shell:` is quoted (issue 22, item 1).

Before the fix `snakemake 'data/processed/toy/$(touch X).npz'` ran `touch X` (the `{name}`
wildcard was unconstrained and `{wildcards.name}` reached the shell unquoted).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLACEHOLDER = re.compile(r"\{(input|output|log|params|wildcards)(\.\w+)?(:\w+)?\}")


def test_every_shell_placeholder_is_quoted():
    """A static check of rules/*.smk: {input}, {output}, {log}, {params.x}, {wildcards.x}
    appear in `shell:` strings only as `{...:q}`."""
    unquoted = [f"{path.name}:{n}: {m.group(0)}"
                for path in sorted((PROJECT / "rules").glob("*.smk"))
                for n, line in enumerate(path.read_text().splitlines(), 1)
                for m in PLACEHOLDER.finditer(line) if m.group(3) != ":q"]
    assert not unquoted, "unquoted shell placeholders:\n" + "\n".join(unquoted)


def test_every_wildcard_is_constrained_globally():
    """rules/common.smk constrains every wildcard name the rules use."""
    text = "\n".join(p.read_text() for p in (PROJECT / "rules").glob("*.smk"))
    # wildcards: {name} inside plain (not f-) string literals, minus Snakemake's own fields
    wildcards = set(re.findall(r'(?<![f\w])"[^"\n]*?\{(\w+)\}', text)) - {
        "input", "output", "log", "threads", "rule", "params", "wildcards"}
    common = (PROJECT / "rules" / "common.smk").read_text()
    block = common.split("\nwildcard_constraints:", 1)[1].split("\n\n", 1)[0]
    constrained = set(re.findall(r"^\s+(\w+)=", block, flags=re.M))
    assert wildcards, "no wildcard found: the scan is broken"
    assert wildcards <= constrained




HOSTILE = [
    "data/processed/toy/$(touch {marker}).npz",
    "results/figures/jko_alpha_$(touch {marker}).png",
    "results/checkpoints/jko/`touch {marker}`/model.pt",
    "results/metrics/otflow/a;touch {marker};.json",
    "data/processed/toy/a b $(touch {marker}).npz",
    "results/metrics/otflow/../../$(touch {marker}).json",
    "data/processed/gaussian_d2;touch {marker}.npz",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_target_runs_nothing(project_copy, tmp_path, target):
    """A real (not dry) run on a hostile target: no rule matches, nothing is executed, and
    Snakemake says which target it cannot build."""
    marker = tmp_path / "pwned"
    target = target.format(marker=marker)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(PROJECT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", target, "--configfile", "config/smoke.yaml"],
        cwd=project_copy, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert not marker.exists(), f"the hostile target executed a command:\n{out[-2000:]}"
    assert "No rule to produce" in out, out[-2000:]
    assert not list((project_copy / "results").rglob("*pwned*")) if (
        project_copy / "results").exists() else True


def test_unknown_experiment_is_named(project_copy):
    """A well-formed but unknown experiment name fails with a message naming it."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(PROJECT / "src")}
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", "results/metrics/otflow/nosuch.json",
         "--configfile", "config/smoke.yaml"],
        cwd=project_copy, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "no experiment otflow/nosuch" in proc.stdout + proc.stderr
