"""The MLflow import is idempotent and crash-safe (issue 22, item 3).

Before the fix a killed import left its run RUNNING forever and the rerun skipped it (it
matched the record hash whatever the status), and two concurrent imports on a fresh store
duplicated runs or failed creating the experiment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from otflows.pipeline.tracking import import_records  # noqa: E402

N = 4


def _records(root: Path) -> list[Path]:
    paths = []
    for i in range(N):
        rec = {"key": f"otflow/e{i}", "method": "otflow", "experiment": f"e{i}",
               "dataset": "moons", "config": {"lr": 0.01, "width": i + 1}, "seed": 0,
               "started_ms": 1000, "finished_ms": 2000, "tags": {"rule": "train"},
               "train_seconds": 1.0, "n_parameters": 10, "record_hash": f"h{i}"}
        path = root / "records" / "otflow" / f"e{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
        (root / "plots" / "otflow").mkdir(parents=True, exist_ok=True)
        (root / "plots" / "otflow" / f"e{i}.csv").write_text("step,loss\n1,2.0\n2,1.5\n")
        (root / "metrics" / "otflow").mkdir(parents=True, exist_ok=True)
        (root / "metrics" / "otflow" / f"e{i}.json").write_text(json.dumps({"nll": 1.0 + i}))
        paths.append(path)
    return paths


def _runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("otflows")
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def test_import_twice_is_one_run_per_record(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    records = _records(tmp_path / "results")
    first = import_records(records, tmp_path / "results", uri, "otflows")
    second = import_records(records, tmp_path / "results", uri, "otflows")
    assert first == second and len(first) == N
    runs = _runs(uri)
    assert len(runs) == N and {r.info.status for r in runs} == {"FINISHED"}
    # a changed metrics file is new content: a new run for that key, the rest reused
    (tmp_path / "results" / "metrics" / "otflow" / "e0.json").write_text('{"nll": 9.0}')
    third = import_records(records, tmp_path / "results", uri, "otflows")
    assert third["otflow/e0"] != first["otflow/e0"]
    assert {k: v for k, v in third.items() if k != "otflow/e0"} == {
        k: v for k, v in first.items() if k != "otflow/e0"}


def test_a_killed_import_leaves_no_running_run_after_the_rerun(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    records = _records(tmp_path / "results")
    real = MlflowClient.set_terminated
    calls = []

    def dies_on_the_third(self, run_id, *a, **kw):
        calls.append(run_id)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed mid-import")
        return real(self, run_id, *a, **kw)

    monkeypatch.setattr(MlflowClient, "set_terminated", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        import_records(records, tmp_path / "results", uri, "otflows")
    monkeypatch.setattr(MlflowClient, "set_terminated", real)
    assert sorted(r.info.status for r in _runs(uri)) == ["FINISHED", "FINISHED", "RUNNING"]
    manifest = import_records(records, tmp_path / "results", uri, "otflows")
    runs = _runs(uri)
    assert len(runs) == N and {r.info.status for r in runs} == {"FINISHED"}
    assert set(manifest.values()) == {r.info.run_id for r in runs}


def test_concurrent_imports_on_a_fresh_store_do_not_duplicate(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    records = _records(tmp_path / "results")
    code = ("import sys, json\nfrom pathlib import Path\n"
            "from otflows.pipeline.tracking import import_records\n"
            "m = import_records([Path(p) for p in sys.argv[3:]], Path(sys.argv[1]), "
            "sys.argv[2], 'otflows')\nprint(json.dumps(m, sort_keys=True))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "results"), uri,
                               *map(str, records)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    assert len({o[0] for o in outs}) == 1  # every import returns the same manifest
    runs = _runs(uri)
    assert len(runs) == N and {r.info.status for r in runs} == {"FINISHED"}
