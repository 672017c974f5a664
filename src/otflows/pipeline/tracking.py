"""MLflow: every training run becomes one MLflow run, imported by one local job.

Training jobs never open the tracking store. Each writes a small run record (params, tags,
history, final metrics land beside it); the ``track`` rule, which runs alone after the
fan-out, creates the store and experiment if needed and imports every record not yet there.
So parallel jobs never race to create or lock the SQLite file, and jobs on cluster nodes
need no access to it. A record is imported once: each run carries a content hash (the
record, its history and final metrics) as a tag and is found by it (an upsert). The whole
import holds a file lock, so two imports on a fresh store neither race nor duplicate; a run
left RUNNING by a killed import is deleted and imported again by the next one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["GIT_COMMIT_VAR", "git_commit", "tracking_uri", "import_records", "read_history",
           "import_lock"]

# Set by the Snakefile once per local run to git_commit() at its start, so that training jobs
# do not each run `git rev-parse` and `git status` (two processes forked from a 0.5 GB job).
GIT_COMMIT_VAR = "OTFLOWS_GIT_COMMIT"


def git_commit(cwd: str | Path = ".") -> str:
    """The current git commit (with ``-dirty`` when tracked files changed), or ``unknown``;
    ``$OTFLOWS_GIT_COMMIT`` instead when it is set (the commit at the start of the run)."""
    if os.environ.get(GIT_COMMIT_VAR):
        return os.environ[GIT_COMMIT_VAR]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, check=True).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tracking_uri(default: str) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the params' URI."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default


def _flatten(prefix: str, obj: Any, out: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), value, out)
    else:
        out[prefix] = json.dumps(obj) if isinstance(obj, list) else str(obj)


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a training history CSV (``otflows train --history``); [] if it is absent."""
    if not path.exists():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def _lock_path(uri: str, results: Path) -> Path:
    """The lock file: beside a SQLite store, else under ``results/tracking``."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return db.with_name(db.name + ".lock")
    return results / "tracking" / ".mlflow-import.lock"


@contextlib.contextmanager
def import_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: one import at a time is then the user's care
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _content_hash(record_text: str, *files: Path) -> str:
    """Hash of a record and the history/metrics files imported with it."""
    h = hashlib.sha256(record_text.encode())
    for f in files:
        h.update(b"\0" + (f.read_bytes() if f.exists() else b"<absent>"))
    return h.hexdigest()[:16]


def import_records(records: list[Path], results: Path, uri: str, experiment: str) -> dict:
    """Import run records (``results/records/<method>/<exp>.json``) into MLflow.

    Idempotent: a run whose content hash is already there (FINISHED) is reused; runs a killed
    import left unfinished are deleted first. Returns a manifest ``{run key: mlflow run id}``.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    with import_lock(_lock_path(uri, results)):
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        # under the lock no other import is running: an unfinished run is a killed import's
        for run in client.search_runs([exp_id], filter_string="attributes.status != "
                                      "'FINISHED'", max_results=50000):
            print(f"[otflows] track: deleting {run.info.run_id} "
                  f"({run.data.tags.get('otflows.key')}), left {run.info.status} by an "
                  f"interrupted import", file=sys.stderr)
            client.delete_run(run.info.run_id)
        return {key: run_id for key, run_id in
                (_import_one(client, exp_id, Path(p), results) for p in sorted(records))}


def _import_one(client, exp_id: str, path: Path, results: Path) -> tuple[str, str]:
    """Find or create the FINISHED run of one record; return (key, run id)."""
    from mlflow.entities import Metric, Param

    text = path.read_text()
    record = json.loads(text)
    key, method, name = record["key"], record["method"], record["experiment"]
    history_path = results / "plots" / method / f"{name}.csv"
    final_path = results / "metrics" / method / f"{name}.json"
    content = _content_hash(text, history_path, final_path)
    found = client.search_runs(
        [exp_id], filter_string=f"tags.`otflows.content_hash` = '{content}' and "
        f"attributes.status = 'FINISHED'", max_results=1)
    if found:
        return key, found[0].info.run_id
    tags = {"otflows.key": key, "otflows.record_hash": record["record_hash"],
            "otflows.content_hash": content, "mlflow.runName": key,
            **{f"otflows.{k}": str(v) for k, v in record["tags"].items()}}
    run = client.create_run(exp_id, start_time=int(record["started_ms"]), tags=tags,
                            run_name=key)
    run_id = run.info.run_id
    params: dict[str, str] = {}
    _flatten("", record["config"], params)
    params["seed"] = str(record["seed"])
    ts = int(record["finished_ms"])
    metrics = [Metric(k, v, ts, int(row["step"]))
               for row in read_history(history_path) for k, v in row.items() if k != "step"]
    if final_path.exists():
        final = json.loads(final_path.read_text())
        metrics += [Metric(k, float(v), ts, 0) for k, v in final.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)]
    client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i : i + 900])
    client.set_terminated(run_id, status="FINISHED", end_time=ts)
    return key, run_id
