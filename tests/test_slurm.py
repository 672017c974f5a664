"""The smoke pipeline on a real Slurm: `--profile profiles/slurm` on a single-node cluster.

scripts/slurm-local.sh brings up slurmctld, slurmd and slurmdbd (with a private MariaDB, so
`sacct` answers as on a real cluster), installing Debian's packages first where they are
absent; the daemons are stopped afterwards even when a test fails. In temporary copies of
the project, the smoke profile runs once locally and once through profiles/slurm plus test
overrides (the local cluster's partition and account, a 1 s first status check, kept Slurm
logs). Checks: every job but the local ones ran as a Slurm job and completed; the metrics
equal the local run's exactly (but for `train_seconds`); MLflow holds every run although
training jobs ran concurrently; a rerun submits nothing; a failing rule fails the run and
the failure is reported.

Every Slurm job starts Snakemake twice (the batch script, then `srun`), ~10-20 s on 2 busy
cores, so the runs use the smoke profile trimmed to one toy dataset, one alpha, one width
(every rule still runs). OTFLOWS_SLURM_TEST_FULL=1 runs the whole smoke profile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
COPY = ["Snakefile", "rules", "schemas", "config", "params.yaml", "report", "profiles",
        ".gitignore", "data/raw/.gitkeep"]
PACKAGES = ["slurm-wlm", "munge", "mariadb-server", "slurmdbd"]
NEEDED = ["munged", "slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "mariadbd"]
PARTITION, ACCOUNT = "debug", "otflows"  # what slurm-local.sh creates
TRIM = {"data": {"toy": {"datasets": ["moons"]}},
        "jko": {"datasets": ["moons"], "alphas": [5], "widths": [4]},
        "ekp": {"datasets": ["moons"]}}
FULL = os.environ.get("OTFLOWS_SLURM_TEST_FULL") == "1"
CONFIG = ["--configfile", "config/smoke.yaml"] + ([] if FULL else ["config/slurm-test.yaml"])
PROFILES = ["--profile", "profiles/slurm", "--profile", "profiles/slurm-test"]
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
JOB_HEADER = re.compile(r"^(local)?rule (\w+):$", re.M)  # "localrule x:" runs on this host

pytestmark = pytest.mark.slow


@dataclass
class Run:
    path: Path
    out: str  # stdout + stderr of the snakemake call
    seconds: float
    returncode: int


def _env(slurm_conf: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> Run:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return Run(cwd, proc.stdout + proc.stderr, time.monotonic() - start, proc.returncode)


def _ok(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise AssertionError(f"{what} failed ({run.returncode}):\n{run.out[-8000:]}")
    return run


def _copy_project(work: Path) -> Path:
    for name in COPY:
        src = ROOT / name
        if not src.exists():
            continue
        dst = work / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    (work / "config" / "slurm-test.yaml").write_text(yaml.safe_dump(TRIM))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=work, check=True, capture_output=True)
    return work


def _write_test_profile(work: Path) -> None:
    """profiles/slurm-test: the local cluster's partition/account, quick status checks."""
    main = yaml.safe_load((work / "profiles" / "slurm" / "profile.yaml").read_text())
    resources = {**main["default-resources"], "slurm_partition": PARTITION,
                 "slurm_account": ACCOUNT}
    test = {"default-resources": resources,
            "slurm-init-seconds-before-status-checks": 1,
            "slurm-keep-successful-logs": True}
    (work / "profiles" / "slurm-test").mkdir()
    (work / "profiles" / "slurm-test" / "profile.yaml").write_text(yaml.safe_dump(test))


def _sacct(job_ids: list[str], fields: str, conf: str) -> list[list[str]]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "--units=M", "-j", ",".join(job_ids),
                          "-o", fields],
                         env=_env(conf), capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _job_stats(out: str) -> dict[str, int]:
    stats = out.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m.group(1) != "total"}


def _metrics(project: Path) -> dict[str, object]:
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k != "train_seconds"}
        return obj

    root = project / "results" / "metrics"
    return {str(p.relative_to(root)): strip(json.loads(p.read_text()))
            for p in sorted(root.rglob("*.json"))}


def _ensure_slurm_packages() -> None:
    if os.geteuid() != 0:
        pytest.skip("Slurm test needs root: it installs Debian packages and starts daemons")
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing) and there is "
                    "no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                        f"{(proc.stdout + proc.stderr)[-4000:]}")


@pytest.fixture(scope="module")
def slurm_conf():
    """A running single-node Slurm; stopped afterwards if this fixture started it."""
    _ensure_slurm_packages()
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True)
    started_here = status.returncode != 0
    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"slurm-local.sh start failed ({proc.returncode}):\n"
                        f"{(proc.stdout + proc.stderr)[-4000:]}")
        yield re.search(r"SLURM_CONF=(\S+)", proc.stdout).group(1)
    finally:
        if started_here:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, slurm_conf) -> tuple[Run, Run]:
    """The local and the Slurm smoke run, side by side: the local one fills the cores while
    the Slurm one waits on status checks and job start-up."""
    local_dir = _copy_project(tmp_path_factory.mktemp("local"))
    slurm_dir = _copy_project(tmp_path_factory.mktemp("slurm"))
    _write_test_profile(slurm_dir)
    local: list[Run] = []
    thread = threading.Thread(target=lambda: local.append(
        _run([str(BIN / "snakemake"), *CONFIG, "--cores", "2"], local_dir, _env())))
    thread.start()
    try:
        slurm = _run([str(BIN / "snakemake"), *CONFIG, *PROFILES], slurm_dir,
                     _env(slurm_conf))
    finally:
        thread.join()
    (local_run,) = local
    print(f"\nsmoke runs side by side: local {local_run.seconds:.0f} s, "
          f"Slurm {slurm.seconds:.0f} s")
    return _ok(local_run, "local smoke run"), _ok(slurm, "Slurm smoke run")


@pytest.fixture(scope="module")
def local_run(runs) -> Run:
    return runs[0]


@pytest.fixture(scope="module")
def slurm_run(runs) -> Run:
    return runs[1]


def test_every_job_ran_as_a_slurm_job(slurm_run: Run, slurm_conf: str):
    stats = _job_stats(slurm_run.out)
    headers = JOB_HEADER.findall(slurm_run.out)
    assert len(headers) == sum(stats.values())  # every planned job started, here or there
    local_rules = {rule for local, rule in headers if local}
    # Only rules marked `localrule` ran here: the MLflow import among them, no computation.
    assert "track_mlflow" in local_rules, local_rules
    assert not local_rules & {"prepare_toy", "train", "evaluate", "summary"}, local_rules
    remote = {rule: n for rule, n in stats.items() if rule not in local_rules}
    submitted = dict(SUBMITTED.findall(slurm_run.out))  # snakemake job id -> Slurm job id
    assert len(submitted) == sum(remote.values()) and len(set(submitted.values())) == len(
        submitted), (remote, submitted)
    log = max((slurm_run.path / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    assert dict(SUBMITTED.findall(log)) == submitted
    rows = _sacct(list(submitted.values()), "JobIdRaw,JobName,State,Partition,Account",
                  slurm_conf)
    assert len(rows) == len(submitted)
    assert {r[2] for r in rows} == {"COMPLETED"}, rows
    assert len({r[1] for r in rows}) == 1  # all named by the one workflow run
    assert {(r[3], r[4]) for r in rows} == {(PARTITION, ACCOUNT)}
    # One kept Slurm log per job, under the rule's name; the local rules have none.
    logs = slurm_run.path / ".snakemake" / "slurm_logs"
    by_rule = {p.parts[0].removeprefix("rule_"): p for p in
               (q.relative_to(logs) for q in logs.rglob("*.log"))}
    assert set(by_rule) == set(remote)
    assert {p.stem for p in logs.rglob("*.log")} == set(submitted.values())


def test_jobs_get_the_resources_their_rules_compute(slurm_run: Run, slurm_conf: str):
    """train/evaluate size mem_mb and runtime from params; Slurm got exactly those."""
    logs = slurm_run.path / ".snakemake" / "slurm_logs"
    asked = {}
    for rule in ("train", "evaluate"):
        for path in (logs / f"rule_{rule}").rglob("*.log"):
            resources = re.search(r"resources: (.*)", path.read_text()).group(1)
            mem = int(re.search(r"\bmem_mb=(\d+)", resources).group(1))
            runtime = int(re.search(r"\bruntime=(\d+)", resources).group(1))
            assert mem > 1000 and runtime > 0
            asked[path.stem] = (f"{mem}M", f"{runtime // 60:02d}:{runtime % 60:02d}:00")
    rows = _sacct(list(asked), "JobIdRaw,ReqMem,Timelimit", slurm_conf)
    assert {r[0]: (r[1], r[2]) for r in rows} == asked


def test_metrics_equal_the_local_run(slurm_run: Run, local_run: Run):
    slurm, local = _metrics(slurm_run.path), _metrics(local_run.path)
    assert len(local) >= 5 and set(slurm) == set(local)
    for name in local:
        assert slurm[name] == local[name], name


def test_mlflow_holds_every_run_of_concurrent_jobs(slurm_run: Run, slurm_conf: str):
    from mlflow.tracking import MlflowClient

    logs = slurm_run.path / ".snakemake" / "slurm_logs" / "rule_train"
    ids = [p.stem for p in logs.rglob("*.log")]
    spans = sorted((datetime.fromisoformat(s), datetime.fromisoformat(e)) for _, s, e in
                   _sacct(ids, "JobIdRaw,Start,End", slurm_conf))
    overlapping = sum(b[0] < a[1] for a, b in pairwise(spans))
    assert overlapping >= 1, f"no two training jobs ran at once: {spans}"

    records = sorted((slurm_run.path / "results" / "records").rglob("*.json"))
    keys = {f"{p.parent.name}/{p.stem}" for p in records}
    assert len(keys) >= len(ids) >= 2
    manifest = json.loads((slurm_run.path / "results/tracking/mlflow_runs.json").read_text())
    assert set(manifest) == keys
    client = MlflowClient(tracking_uri=f"sqlite:///{slurm_run.path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("otflows")
    found = client.search_runs([exp.experiment_id], max_results=1000)
    assert {r.data.tags["otflows.key"] for r in found} == keys and len(found) == len(keys)
    for run in found:
        assert run.info.status == "FINISHED" and run.data.metrics, run.data.tags


def test_rerun_submits_nothing(slurm_run: Run, slurm_conf: str):
    again = _ok(_run([str(BIN / "snakemake"), *CONFIG, *PROFILES], slurm_run.path,
                     _env(slurm_conf)), "Slurm rerun")
    assert "Nothing to be done" in again.out
    assert not SUBMITTED.search(again.out)


def test_failing_rule_fails_the_run_and_is_reported(slurm_run: Run, slurm_conf: str):
    (slurm_run.path / "Snakefile.fail").write_text(
        'include: "Snakefile"\n\n'
        "rule deliberate_failure:\n"
        '    output: "results/deliberate_failure.txt"\n'
        '    log: "results/logs/deliberate_failure.log"\n'
        "    shell: \"echo 'deliberate failure' > {log}; exit 3\"\n")
    failed = _run([str(BIN / "snakemake"), "-s", "Snakefile.fail", *CONFIG, *PROFILES,
                   "results/deliberate_failure.txt"], slurm_run.path, _env(slurm_conf))
    assert failed.returncode != 0
    assert "Error in rule deliberate_failure" in failed.out
    assert "deliberate failure" in failed.out.replace("Error in rule deliberate_failure", "")
    (job_id,) = {slurm for _, slurm in SUBMITTED.findall(failed.out)}
    assert f"SLURM-job '{job_id}' failed" in failed.out
    ((state, exit_code),) = [r[1:] for r in _sacct([job_id], "JobIdRaw,State,ExitCode",
                                                      slurm_conf)]
    assert state == "FAILED" and exit_code != "0:0"
    assert not (slurm_run.path / "results/deliberate_failure.txt").exists()
