"""The project's DVC setup, exercised by the real `dvc` and `snakemake` in temp git repos.

A copy of the project's dvc.yaml and .dvc/config is committed twice with different metrics,
plots and params; `dvc metrics|params|plots diff HEAD~1 HEAD --json` must show the change.
A second repo runs the `reproduce` stage, pushes to the local remote, pulls it back and
checks the documented way back to "nothing to do": `snakemake --touch`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The spine's sections; every method adds one more (test_stage_params_cover_project_params_yaml
# checks the full list against params.yaml).
SECTIONS = ["seed", "device", "data", "tracking", "otflow", "jko"]
_STAGE_PARAMS = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))[
    "stages"]["reproduce"]["params"]
PARAMS = {
    "seed": 0,
    "device": "cpu",
    "data": {"toy": {"n_train": 100}},
    "tracking": {"uri": "sqlite:///mlflow.db"},
    "otflow": {"alpha": 1.0},
    "jko": {"K": 3},
    # `dvc repro` requires every section the stage names to exist in params.yaml.
    **{name: {"x": 1} for name in _STAGE_PARAMS
       if name not in ("seed", "device", "data", "tracking", "otflow", "jko")},
}
SNAKEFILE = """\
configfile: "params.yaml"
include: "rules/toy.smk"

rule all:
    input: "results/checkpoints/otflow/x/model.pt", "results/samples/otflow/x.npz"
"""
RULES = """\
rule prepare_toy:
    input: "data/raw/toy.txt"
    output: "data/processed/toy/x.npz"
    shell: "cp {input} {output}"

rule train_otflow:
    input: "data/processed/toy/x.npz"
    output:
        model="results/checkpoints/otflow/x/model.pt",
        record="results/records/otflow/x.json",
    params: section=config["otflow"]
    shell: "cp {input} {output.model} && echo {{}} > {output.record}"

rule evaluate_otflow:
    input: "results/checkpoints/otflow/x/model.pt"
    output: "results/samples/otflow/x.npz"
    shell: "cp {input} {output}"
"""


def _env() -> dict[str, str]:
    # `dvc repro` runs `snakemake --cores all`: the venv's bin must be on PATH.
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1"}  # fmt: skip


def _run(repo: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=repo, env=_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _dvc(repo: Path, *args: str) -> str:
    return _run(repo, sys.executable, "-m", "dvc", *args)


def _snakemake(repo: Path, *args: str) -> str:
    exe = BIN / "snakemake"
    assert exe.exists(), f"snakemake not found next to {sys.executable}"
    return _run(repo, str(exe), *args)


def _git(repo: Path, *args: str) -> str:
    return _run(repo, "git", *args)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _new_repo(root: Path) -> Path:
    """git init + dvc init, with the project's dvc.yaml, .dvc/config, .dvcignore, .gitignore."""
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "config", "user.name", "test")
    _dvc(root, "init", "-q")
    for name in ["dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore"]:
        shutil.copyfile(PROJECT / name, root / name)
    _write(root / "params.yaml", yaml.safe_dump(PARAMS))
    # the project's remote is per user (~/.cache/otflows/dvc-remote); a test keeps its own,
    # set as README says for another location (`--local`: this clone only, not committed)
    _dvc(root, "remote", "modify", "--local", "local", "url", str(root / ".dvc-remote"))
    return root


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = _new_repo(tmp_path_factory.mktemp("dvc_diff"))
    summary = repo / "results" / "metrics" / "summary.json"
    history = repo / "results" / "plots" / "otflow" / "x.csv"

    claims = repo / "results" / "metrics" / "claims.json"

    def ledger(reproduced: int) -> str:  # the claims ledger's counts (otflows.reports.claims)
        return json.dumps({"default": {"reproduced": reproduced, "not_reproduced": 20 - reproduced,
                                       "not_run": 0, "total": 20}})

    _write(summary, json.dumps({"otflow": {"x": {"mmd2": 0.1, "nll_nats": 2.0}}}))
    _write(claims, ledger(5))
    _write(history, "step,loss,L,C,R\n0,1.0,1,1,1\n1,0.5,1,1,1\n")
    _commit(repo, "first")

    _write(summary, json.dumps({"otflow": {"x": {"mmd2": 0.05, "nll_nats": 2.0}}}))
    _write(claims, ledger(6))
    _write(history, "step,loss,L,C,R\n0,1.0,1,1,1\n1,0.25,1,1,1\n")
    _write(repo / "params.yaml", yaml.safe_dump({**PARAMS, "otflow": {"alpha": 2.0}}))
    _commit(repo, "second")
    return repo


def test_dvc_yaml_declares_stage_outs_metrics_plots(two_commits: Path) -> None:
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    stage = spec["stages"]["reproduce"]
    assert stage["cmd"] == "snakemake --cores all"
    assert set(stage["deps"]) == {"Snakefile", "rules", "src", "schemas", "data/raw"}
    assert stage["params"][:len(SECTIONS)] == SECTIONS
    assert stage["outs"] == [
        {"data/processed": {"persist": True}},
        {"results/checkpoints": {"persist": True}},
        {"results/records": {"persist": True}},
        {"results/samples": {"persist": True}},
    ]
    assert spec["metrics"] == ["results/metrics/summary.json", "results/metrics/claims.json"]
    assert spec["plots"] == [
        {"results/plots": {"x": "step", "y": "loss", "template": "linear",
                           "x_label": "step", "y_label": "loss"}}
    ]  # fmt: skip
    # DVC itself parses it.
    listed = _dvc(two_commits, "stage", "list")
    assert "reproduce" in listed
    assert "data/processed, results/checkpoints, results/records, results/samples" in listed


def test_stage_params_cover_project_params_yaml() -> None:
    params_yaml = PROJECT / "params.yaml"
    if not params_yaml.exists():
        pytest.skip("project params.yaml not written yet")
    # `run` holds execution details (log/checkpoint cadence) that never change a result.
    sections = set(yaml.safe_load(params_yaml.read_text(encoding="utf-8"))) - {"run"}
    stage = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    assert sections == set(stage["stages"]["reproduce"]["params"])


def test_default_remote_is_shared_by_every_clone(two_commits: Path) -> None:
    """The committed remote is outside the clone (every clone of this user reaches it);
    `dvc remote modify --local` points one clone elsewhere without a commit."""
    committed = (PROJECT / ".dvc" / "config").read_text()
    assert "url = ~/.cache/otflows/dvc-remote" in committed
    assert ".dvc-remote" not in committed  # never a folder inside the clone
    out = _dvc(two_commits, "remote", "list")
    name, url = out.split()[:2]
    assert name == "local" and Path(url) == two_commits / ".dvc-remote"
    assert _dvc(two_commits, "config", "core.analytics").strip() == "false"
    assert _dvc(two_commits, "config", "core.autostage").strip() == "false"


def test_metrics_diff(two_commits: Path) -> None:
    diff = json.loads(_dvc(two_commits, "metrics", "diff", "HEAD~1", "HEAD", "--json"))
    changes = diff["results/metrics/summary.json"]
    assert changes["otflow.x.mmd2"]["old"] == 0.1
    assert changes["otflow.x.mmd2"]["new"] == 0.05
    assert changes["otflow.x.mmd2"]["diff"] == pytest.approx(-0.05)
    assert "otflow.x.nll_nats" not in changes  # unchanged metrics are left out
    # a claim that changed status between the commits shows in the ledger's counts
    ledger = diff["results/metrics/claims.json"]
    assert ledger["default.reproduced"]["old"] == 5 and ledger["default.reproduced"]["new"] == 6
    assert "default.total" not in ledger


def test_params_diff(two_commits: Path) -> None:
    diff = json.loads(_dvc(two_commits, "params", "diff", "HEAD~1", "HEAD", "--json"))
    assert diff == {"params.yaml": {"otflow.alpha": {"old": 1.0, "new": 2.0, "diff": 1.0}}}


def test_plots_diff(two_commits: Path) -> None:
    diff = json.loads(_dvc(two_commits, "plots", "diff", "HEAD~1", "HEAD", "--json"))
    (plot,) = diff["data"]["results/plots/otflow/x.csv"]
    assert plot["type"] == "vega" and plot["revisions"] == ["HEAD~1", "HEAD"]
    content = plot["content"]
    assert content["encoding"]["x"]["field"] == "step"
    # Values are rows of both revisions, tagged by `rev`; DVC keeps CSV cells as strings.
    last = {row["rev"]: float(row["loss"]) for row in content["data"]["values"]
            if row["step"] == "1"}  # fmt: skip
    assert last == {"HEAD~1": 0.5, "HEAD": 0.25}


def test_repro_push_pull_then_touch(tmp_path: Path) -> None:
    repo = _new_repo(tmp_path)
    _write(repo / "Snakefile", SNAKEFILE)
    _write(repo / "rules" / "toy.smk", RULES)
    _write(repo / "src" / "otflows" / "__init__.py", "")
    _write(repo / "schemas" / "params.schema.yaml", "{}\n")
    _write(repo / "data" / "raw" / "toy.txt", "raw\n")
    # interpreter litter is .dvcignore'd, so it must not change the `src` dependency
    _write(repo / "src" / "otflows" / "__pycache__" / "x.pyc", "")

    _dvc(repo, "repro")
    assert (repo / "dvc.lock").exists()
    _write(repo / "src" / "otflows" / "__pycache__" / "y.pyc", "")
    assert "up to date" in _dvc(repo, "status")
    _dvc(repo, "push")
    assert any((repo / ".dvc-remote").rglob("*")), "dvc push left the local remote empty"
    _commit(repo, "reproduce")

    outs = [
        repo / "data" / "processed",
        repo / "results" / "checkpoints",
        repo / "results" / "records",
    ]
    model = repo / "results" / "checkpoints" / "otflow" / "x" / "model.pt"
    for out in outs:
        shutil.rmtree(out)
    _dvc(repo, "checkout")
    assert model.read_text() == "raw\n"

    # A fresh clone: no cache, no Snakemake metadata; the remote brings the outputs back.
    for path in [*outs, repo / ".dvc" / "cache", repo / ".snakemake"]:
        shutil.rmtree(path)
    _dvc(repo, "pull")
    assert model.read_text() == "raw\n"
    # Restored files get fresh timestamps in no useful order; make the input the newest.
    earlier = (repo / "data" / "raw" / "toy.txt").stat().st_mtime - 10
    record = repo / "results" / "records" / "otflow" / "x.json"
    for path in [model, record, repo / "data" / "processed" / "toy" / "x.npz"]:
        os.utime(path, (earlier, earlier))
    assert "Nothing to be done" not in _snakemake(repo, "-n")

    _snakemake(repo, "--touch", "--cores", "1")
    assert "Nothing to be done" in _snakemake(repo, "-n")
    assert "up to date" in _dvc(repo, "status")


def test_mlflow_manifest_is_git_tracked_so_track_mlflow_does_not_rerun() -> None:
    """results/tracking/mlflow_runs.json is versioned in git like the metrics: a fresh clone
    has it, so `snakemake --touch` then `-n` has nothing left to do for `track_mlflow`."""
    proc = subprocess.run(["git", "check-ignore", "-q", "results/tracking/mlflow_runs.json"],
                          cwd=PROJECT)
    assert proc.returncode == 1  # 1: not ignored
    assert subprocess.run(["git", "check-ignore", "-q", "results/tracking/other.tmp"],
                          cwd=PROJECT).returncode == 0
