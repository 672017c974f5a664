"""The project's DVC setup, exercised by the real `dvc` and `snakemake` in temp git repos.

A copy of the project's dvc.yaml and .dvc/config is committed twice with different metrics,
plots and params; `dvc metrics|params|plots diff HEAD~1 HEAD --json` must show the change.
The slow test runs the project's own pipeline (smoke profile) through the README's round trip:
`dvc repro` -> `dvc push` -> fresh `git clone` -> `dvc pull` -> `snakemake --touch` -> nothing
to do; then a changed smoke-profile key shows in `dvc params diff` and `dvc metrics diff`.
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
from ruamel.yaml import YAML  # DVC's own YAML library

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARAMS = {
    "seed": 0,
    "device": "cpu",
    "data": {"toy": {"n_train": 100}},
    "tracking": {"uri": "sqlite:///mlflow.db"},
    "otflow": {"alpha": 1.0},
    "jko": {"K": 3},
}
# The project's tree as the smoke pipeline needs it (as tests/test_pipeline.py copies it).
COPY = ["Snakefile", "rules", "src", "schemas", "config", "params.yaml", "report", "profiles",
        "dvc.yaml", ".dvcignore", ".gitignore", "data/raw/.gitkeep"]
SMOKE = ["--configfile", "config/smoke.yaml"]
DEFAULT_PROFILE = "  - profile: params.yaml\n"  # the line of dvc.yaml that README says to change


def _env() -> dict[str, str]:
    # `dvc repro` runs `snakemake --cores all`: the venv's bin must be on PATH.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
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


def _smoke(section: str, key: str):
    """A value of the project's smoke profile."""
    smoke = yaml.safe_load((PROJECT / "config" / "smoke.yaml").read_text(encoding="utf-8"))
    return smoke[section][key]


def _set_key(path: Path, section: str, key: str, value: object) -> None:
    """Change `key` of a top-level `section` of a YAML profile in place (comments kept)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index(f"{section}:\n")
    for i in range(start + 1, len(lines)):
        if not lines[i].startswith(" "):
            break
        if lines[i].startswith(f"  {key}: "):
            lines[i] = f"  {key}: {value}\n"
            path.write_text("".join(lines), encoding="utf-8")
            return
    raise AssertionError(f"no {section}.{key} in {path}")


def _new_repo(root: Path) -> Path:
    """git init + dvc init, with the project's dvc.yaml, .dvc/config, .dvcignore, .gitignore."""
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "config", "user.name", "test")
    _dvc(root, "init", "-q")
    for name in ["dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore"]:
        shutil.copyfile(PROJECT / name, root / name)
    shutil.copytree(PROJECT / "config", root / "config")  # the profiles dvc.yaml tracks
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
    # a profile key: the committed stage runs the default profile, yet the diff shows it
    _set_key(repo / "config" / "smoke.yaml", "otflow", "iters", _smoke("otflow", "iters") + 10)
    _commit(repo, "second")
    return repo


def test_dvc_yaml_declares_stage_outs_metrics_plots(two_commits: Path) -> None:
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    stage = spec["stages"]["reproduce"]
    assert spec["vars"] == [{"profile": "params.yaml"}]  # the default profile
    assert DEFAULT_PROFILE in (PROJECT / "dvc.yaml").read_text(encoding="utf-8")
    assert stage["cmd"] == "snakemake --cores all --configfile ${profile}"
    assert set(stage["deps"]) == {"Snakefile", "rules", "src", "schemas", "data/raw"}
    # all of params.yaml and all of the profile run over it
    assert stage["params"] == [{"params.yaml": None}, {"${profile}": None}]
    profiles = {f"config/{p.name}" for p in (PROJECT / "config").glob("*.yaml")}
    assert set(spec["params"]) == {"params.yaml", *profiles}  # every profile, for params diff
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
    assert diff == {"params.yaml": {"otflow.alpha": {"old": 1.0, "new": 2.0, "diff": 1.0}},
                    "config/smoke.yaml": {"otflow.iters": {"old": _smoke("otflow", "iters"),
                                                           "new": _smoke("otflow", "iters") + 10,
                                                           "diff": 10}}}


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


def _copy_project(dst: Path) -> Path:
    """A git repo holding the project's tree (no results, no caches), DVC-initialised."""
    for name in COPY:
        src = PROJECT / name
        if not src.exists():
            continue
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst / name)
    _git(dst, "init", "-q")
    _git(dst, "config", "user.email", "test@example.com")
    _git(dst, "config", "user.name", "test")
    _dvc(dst, "init", "-q")
    shutil.copyfile(PROJECT / ".dvc" / "config", dst / ".dvc" / "config")
    return dst


@pytest.mark.slow
def test_smoke_pipeline_round_trip_through_a_fresh_clone(tmp_path: Path) -> None:
    """README's round trip on the project's own pipeline, smoke profile (about 3 min)."""
    origin = _copy_project(tmp_path / "origin")
    remote = tmp_path / "remote"  # stands for the shared ~/.cache/otflows/dvc-remote
    _dvc(origin, "remote", "modify", "--local", "local", "url", str(remote))
    # Switch the stage to the smoke profile: the one line of dvc.yaml README names.
    dvc_yaml = origin / "dvc.yaml"
    text = dvc_yaml.read_text(encoding="utf-8")
    dvc_yaml.write_text(text.replace(DEFAULT_PROFILE, "  - profile: config/smoke.yaml\n"),
                        encoding="utf-8")
    _dvc(origin, "repro")  # snakemake --cores all --configfile config/smoke.yaml

    # dvc.lock records the profile that ran: its command and the smoke values over params.yaml.
    # (DVC writes YAML 1.2, where 1e-06 is a float; PyYAML would read it as a string.)
    lock = YAML(typ="safe").load((origin / "dvc.lock").read_text(encoding="utf-8"))
    locked = lock["stages"]["reproduce"]
    assert locked["cmd"] == "snakemake --cores all --configfile config/smoke.yaml"
    smoke = yaml.safe_load((origin / "config" / "smoke.yaml").read_text(encoding="utf-8"))
    default = yaml.safe_load((origin / "params.yaml").read_text(encoding="utf-8"))
    assert locked["params"]["config/smoke.yaml"] == smoke
    assert locked["params"]["params.yaml"] == default
    assert "up to date" in _dvc(origin, "status")
    _dvc(origin, "push")
    assert any(remote.rglob("*")), "dvc push left the remote empty"
    _commit(origin, "smoke run")

    # A fresh clone: git brings the code, metrics, figures and the MLflow manifest; the
    # remote brings data/processed and results/{checkpoints,records,samples}.
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert not (clone / "results" / "checkpoints").exists()
    assert (clone / "results" / "tracking" / "mlflow_runs.json").exists()
    _dvc(clone, "remote", "modify", "--local", "local", "url", str(remote))
    _dvc(clone, "pull")
    for out in ["data/processed", "results/checkpoints", "results/records", "results/samples"]:
        assert any((clone / out).rglob("*.*")), out
    _snakemake(clone, *SMOKE, "--touch", "--cores", "1")
    assert "Nothing to be done" in _snakemake(clone, *SMOKE, "-n")
    assert "up to date" in _dvc(clone, "status")

    # A changed smoke-profile key: DVC sees the stage changed, Snakemake reruns only what
    # reads it, and both diffs show the change.
    iters = smoke["ekp"]["iters"]
    _set_key(clone / "config" / "smoke.yaml", "ekp", "iters", iters + 2)
    assert "config/smoke.yaml" in _dvc(clone, "status")
    plan = _snakemake(clone, *SMOKE, "-n")
    assert "method=ekp" in plan and "method=otflow" not in plan, plan[-3000:]
    _dvc(clone, "repro")
    _commit(clone, "smoke: ekp.iters + 2")
    params = json.loads(_dvc(clone, "params", "diff", "HEAD~1", "HEAD", "--json"))
    assert params == {"config/smoke.yaml": {"ekp.iters": {"old": iters, "new": iters + 2,
                                                          "diff": 2}}}
    metrics = json.loads(_dvc(clone, "metrics", "diff", "HEAD~1", "HEAD", "--json"))
    changed = set(metrics["results/metrics/summary.json"])
    assert any(key.startswith("ekp.") for key in changed), changed
    assert not {key for key in changed if key.startswith(("otflow.", "jko.", "cpflow."))}


def test_mlflow_manifest_is_git_tracked_so_track_mlflow_does_not_rerun() -> None:
    """results/tracking/mlflow_runs.json is versioned in git like the metrics: a fresh clone
    has it, so `snakemake --touch` then `-n` has nothing left to do for `track_mlflow`."""
    proc = subprocess.run(["git", "check-ignore", "-q", "results/tracking/mlflow_runs.json"],
                          cwd=PROJECT)
    assert proc.returncode == 1  # 1: not ignored
    assert subprocess.run(["git", "check-ignore", "-q", "results/tracking/other.tmp"],
                          cwd=PROJECT).returncode == 0
