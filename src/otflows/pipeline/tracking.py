"""MLflow: every training run becomes one MLflow run, imported by one local job.

Training jobs never open the tracking store. Each writes a small run record (params, tags,
history, final metrics land beside it); the ``track`` rule, which runs alone after the
fan-out, creates the store and experiment if needed and imports every record not yet there.
So parallel jobs never race to create or lock the SQLite file, and jobs on cluster nodes
need no access to it. A record is imported once: runs carry the record's hash as a tag.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "tracking_uri", "import_records", "read_history"]


def git_commit(cwd: str | Path = ".") -> str:
    """The current git commit (with ``-dirty`` when tracked files changed), or ``unknown``."""
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


def import_records(records: list[Path], results: Path, uri: str, experiment: str) -> dict:
    """Import run records (``results/records/<method>/<exp>.json``) into MLflow.

    Returns a manifest ``{run key: mlflow run id}``.
    """
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    manifest: dict[str, str] = {}
    for path in sorted(records):
        record = json.loads(Path(path).read_text())
        key, record_hash = record["key"], record["record_hash"]
        found = client.search_runs(
            [exp_id], filter_string=f"tags.`otflows.record_hash` = '{record_hash}'",
            max_results=1)
        if found:
            manifest[key] = found[0].info.run_id
            continue
        method, name = record["method"], record["experiment"]
        tags = {"otflows.key": key, "otflows.record_hash": record_hash,
                "mlflow.runName": key, **{f"otflows.{k}": str(v) for k, v in
                                          record["tags"].items()}}
        run = client.create_run(exp_id, start_time=int(record["started_ms"]), tags=tags,
                                run_name=key)
        run_id = run.info.run_id
        params: dict[str, str] = {}
        _flatten("", record["config"], params)
        params["seed"] = str(record["seed"])
        ts = int(record["finished_ms"])
        metrics = [Metric(k, v, ts, int(row["step"]))
                   for row in read_history(results / "plots" / method / f"{name}.csv")
                   for k, v in row.items() if k != "step"]
        final_path = results / "metrics" / method / f"{name}.json"
        if final_path.exists():
            final = json.loads(final_path.read_text())
            metrics += [Metric(k, float(v), ts, 0) for k, v in final.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)]
        client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
        for i in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[i : i + 900])
        client.set_terminated(run_id, status="FINISHED", end_time=ts)
        manifest[key] = run_id
    return manifest
