"""The fork server: a command run through it behaves as the same command in its own process.

Same outputs and bitwise-equal training, the exit status and stderr of a failing command, the
caller's working directory, fallback when no server answers, signals forwarded to the job, a
job that dies with its killed client, and a server that exits with its parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from otflows.cli import forkserver

BIN = Path(sys.executable).parent
OTFLOWS = str(BIN / "otflows")
pytestmark = pytest.mark.skipif(not forkserver.supported(), reason="the fork server is Linux-only")
CFG = {"width": 8, "n_layers": 2, "rank": 10, "nt": 4, "nt_eval": 4, "alpha": 5.0,
       "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.01, "weight_decay": 0.0, "batch_size": 128,
       "iters": 12, "K": 1, "dtype": "float64"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("fs") / "jobs.jsonl"
    srv = forkserver.start(log=str(log), export=False)
    srv.log = log
    yield srv
    srv.stop()
    assert srv.process.poll() is not None
    assert not Path(srv.path).exists()


def _env(path: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != forkserver.ENV_VAR}
    if path is not None:
        env[forkserver.ENV_VAR] = path
    return env


def _run(args: list[str], cwd: Path, path: str | None) -> subprocess.CompletedProcess:
    return subprocess.run([OTFLOWS, *args], cwd=cwd, env=_env(path), capture_output=True,
                          text=True, timeout=300)


def _forked(srv, marker: str) -> list[dict]:
    """The server's log lines whose argv contains ``marker``."""
    if not srv.log.exists():
        return []
    lines = [json.loads(x) for x in srv.log.read_text().splitlines()]
    return [x for x in lines if marker in x["argv"]]


def _prepare(out: str, seed: str = "0") -> list[str]:
    return ["prepare", "toy", "--name", "moons", "--n-train", "300", "--n-test", "100",
            "--seed", seed, "--out", out]


def _train(tag: str) -> list[str]:
    return ["train", "--method", "otflow", "--experiment", tag, "--dataset", "moons",
            "--data", "moons.npz", "--config", json.dumps(CFG), "--seed", "0", "--device",
            "cpu", "--threads", "1", "--checkpoint-every", "5", "--log-every", "1",
            "--no-progress", "--out", f"{tag}/model.pt", "--history", f"{tag}/h.csv",
            "--record", f"{tag}/r.json"]


def test_a_job_through_the_server_equals_the_job_in_its_own_process(server, tmp_path):
    # relative paths: the job must run in the caller's working directory
    assert _run(_prepare("moons.npz"), tmp_path, server.path).returncode == 0
    assert _forked(server, "moons.npz")
    direct = tmp_path / "direct"
    direct.mkdir()
    assert _run(_prepare("moons.npz"), direct, None).returncode == 0
    with np.load(tmp_path / "moons.npz") as a, np.load(direct / "moons.npz") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for k in a.keys():
            np.testing.assert_array_equal(a[k], b[k])

    for tag, path in (("via", server.path), ("own", None)):
        proc = _run(_train(tag), tmp_path, path)
        assert proc.returncode == 0, proc.stderr
    assert _forked(server, "via") and not _forked(server, "own")
    via = (tmp_path / "via" / "h.csv").read_text().splitlines()
    own = (tmp_path / "own" / "h.csv").read_text().splitlines()
    loss = via[0].split(",").index("loss")
    assert len(via) == len(own) == CFG["iters"] + 1
    assert [r.split(",")[loss] for r in via] == [r.split(",")[loss] for r in own]


def test_a_failing_job_returns_its_status_and_message(server, tmp_path):
    args = ["evaluate", "--method", "otflow", "--experiment", "x", "--dataset", "moons",
            "--data", "missing.npz", "--checkpoint", "missing.pt", "--eval-samples", "10",
            "--seed", "0", "--device", "cpu", "--out-metrics", "m.json", "--out-samples",
            "s.npz"]
    via, own = _run(args, tmp_path, server.path), _run(args, tmp_path, None)
    assert via.returncode == own.returncode == 2
    assert "missing.pt not found" in via.stderr
    assert via.stderr == own.stderr
    assert _forked(server, "missing.pt")
    bad = _run(["prepare", "toy", "--name", "moons"], tmp_path, server.path)  # argparse
    assert bad.returncode == 2 and "required" in bad.stderr


def test_without_a_reachable_server_the_job_runs_in_its_own_process(tmp_path):
    proc = _run(_prepare("m.npz"), tmp_path, str(tmp_path / "no-such-socket"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.npz").exists()


def _start_long_job(server, tmp_path: Path, tag: str) -> tuple[subprocess.Popen, int]:
    assert _run(_prepare("moons.npz"), tmp_path, server.path).returncode == 0
    args = _train(tag)
    args[args.index("--config") + 1] = json.dumps({**CFG, "iters": 10**6})
    client = subprocess.Popen([OTFLOWS, *args], cwd=tmp_path, env=_env(server.path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _forked(server, tag):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.05)
    pid = _forked(server, tag)[0]["pid"]
    deadline = time.monotonic() + 60
    while not (tmp_path / tag / "resume.pt").exists():  # the job is training
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.05)
    return client, pid


def _gone(pid: int, timeout: float = 20.0) -> bool:
    """Whether ``pid`` exits (or is a zombie nobody reaps) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_sigterm_to_the_command_reaches_the_job(server, tmp_path):
    client, pid = _start_long_job(server, tmp_path, "term")
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == 128 + signal.SIGTERM
    assert _gone(pid)
    assert not (tmp_path / "term" / "model.pt").exists()  # no artifact that looks complete


def test_a_job_dies_with_its_killed_command(server, tmp_path):
    client, pid = _start_long_job(server, tmp_path, "kill9")
    client.kill()
    client.wait(timeout=30)
    assert _gone(pid)


def test_the_server_exits_when_its_parent_is_gone(tmp_path):
    code = ("import os; from otflows.cli import forkserver; "
            "s = forkserver.start(export=False); print(s.process.pid, s.path, flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=_env(None)).stdout.split()
    pid, path = int(out[0]), out[1]
    assert _gone(pid, timeout=60)
    assert not Path(path).exists()


def test_each_forked_job_reports_its_wall_and_cpu_seconds(server, tmp_path):
    assert _run(_prepare("timed.npz"), tmp_path, server.path).returncode == 0
    times = server.log.with_name("jobs.times.jsonl")
    lines = [json.loads(x) for x in times.read_text().splitlines()]
    assert "preload" in lines[0] and lines[0]["preload"] > 0
    (job,) = [x for x in lines if x.get("pid") == _forked(server, "timed.npz")[0]["pid"]]
    assert job["argv"] == ["prepare", "toy"] and job["exit"] == 0
    assert 0 < job["cpu"] and 0 < job["wall"] < 300 and job["end"] > lines[0]["end"]


def test_a_preloaded_server_stops_at_once(tmp_path):
    """Snakemake waits for the server at the end of every run: it exits without finalising
    torch & co. (1.2 s idle, 3.1 s loaded before; ~0.1 s now), and removes its socket."""
    log = tmp_path / "stop.jsonl"
    srv = forkserver.start(log=str(log), export=False)
    times = log.with_name("stop.times.jsonl")
    deadline = time.monotonic() + 120
    while not times.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "preload" in json.loads(times.read_text())
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 0.8
    assert srv.process.returncode == 0 and not Path(srv.path).exists()


def test_pot_is_preloaded_only_where_a_run_asks(tmp_path, monkeypatch):
    """POT is preloaded only when a run asks for it (the benchmark profile sets
    ``$OTFLOWS_FORKSERVER_EXTRA``): the default and smoke profiles never import it, and it
    would delay their first job by ~1 CPU-s. Names outside OPTIONAL_PRELOAD are ignored."""
    assert "ot" not in forkserver.PRELOAD and "ot" in forkserver.OPTIONAL_PRELOAD
    for asked, loaded in (("ot,nonexistent_module", True), ("", False)):
        monkeypatch.setenv(forkserver.EXTRA_VAR, asked)
        log = tmp_path / f"extra{int(loaded)}.jsonl"
        srv = forkserver.start(log=str(log), export=False)
        times = log.with_name(log.stem + ".times.jsonl")
        deadline = time.monotonic() + 120
        while not (times.exists() and times.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        maps = Path(f"/proc/{srv.process.pid}/maps").read_text()  # POT's compiled modules
        srv.stop()
        assert "preload" in json.loads(times.read_text())
        assert ("/ot/" in maps) is loaded
