"""Kill matrix (issue 22): kill -9 a real Snakemake run of this project at a given point,
rerun it, and check that the run completes with the metrics of an uninterrupted run
(timing fields aside), that no process is left over, and that no `.tmp` file remains.

    python tests/reliability/kill_matrix.py [POINT ...]    # default: every point

Runs in a temp copy of the workflow (never in the repo), smoke profile plus a few more
training steps so that a kill lands inside training. Prints one line per point and exits
non-zero if any point fails. About 20-40 s of CPU per point.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TARGETS = ["results/metrics/jko/alpha-moons-a5.json", "results/figures/toy_datasets.png"]
OVERRIDE = "otflow:\n  iters: 150\nrun:\n  checkpoint_every: 10\n"
RUN = "results/checkpoints/otflow/alpha-moons-a5"
TIMING = {"train_seconds", "resumed_from"}


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(PROJECT / "src"), "OMP_NUM_THREADS": "1"}


def _copy(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "params.yaml"):
        shutil.copy(PROJECT / name, root / name)
    for name in ("rules", "schemas", "config", "report"):
        shutil.copytree(PROJECT / name, root / name)
    (root / "kill.yaml").write_text(OVERRIDE)
    return root


def _snakemake(root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "1", *TARGETS, *extra, "--configfile",
         "config/smoke.yaml", "kill.yaml"], cwd=root, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _metrics(root: Path) -> dict:
    out = {}
    for path in sorted((root / "results" / "metrics").rglob("*.json")):
        data = json.loads(path.read_text())
        out[str(path.relative_to(root))] = {k: v for k, v in data.items() if k not in TIMING}
    return out


# point -> (condition on the run folder, what to kill: "jobs", "snakemake" or "forkserver")
POINTS: dict[str, tuple[Callable[[Path], bool], str]] = {
    "data-prep": (lambda r: (r / "results/logs/prepare_toy").exists(), "jobs"),
    "train-early": (lambda r: (r / "results/logs/train/otflow/alpha-moons-a5.log").exists(),
                    "jobs"),
    "train-mid": (lambda r: (r / RUN / "resume.pt").exists(), "jobs"),
    "train-late": (lambda r: (r / RUN / "resume.prev.pt").exists(), "jobs"),
    "checkpoint-write": (lambda r: any((r / RUN).glob(".resume.pt.*.tmp"))
                         if (r / RUN).exists() else False, "jobs"),
    "evaluate": (lambda r: any((r / "results/logs/evaluate").rglob("*.log"))
                 if (r / "results/logs/evaluate").exists() else False, "jobs"),
    "figure": (lambda r: any((r / "results/logs").rglob("*toy_datasets*")), "jobs"),
    "snakemake": (lambda r: (r / RUN / "resume.pt").exists(), "snakemake"),
    "forkserver": (lambda r: (r / RUN / "resume.pt").exists(), "forkserver"),
}


def _kill(proc: subprocess.Popen, what: str) -> str:
    below = _descendants(proc.pid)
    if what == "snakemake":
        victims = [proc.pid]
    elif what == "forkserver":
        victims = [p for p in below if "forkserver" in _cmdline(p)] or below
    else:
        victims = below
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return f"killed {len(victims)} process(es)"


def run_point(name: str, reference: dict, work: Path) -> tuple[bool, str]:
    cond, what = POINTS[name]
    root = _copy(Path(tempfile.mkdtemp(prefix=f"kill-{name}-", dir=work)))
    proc = _snakemake(root)
    deadline, hit = time.time() + 300, False
    while proc.poll() is None and time.time() < deadline:
        if cond(root):
            note = _kill(proc, what)
            hit = True
            break
        time.sleep(0.002)
    if not hit:
        proc.wait()
        note = "run ended before the point was reached (not killed)"
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(1.0)
    orphans = [p for p in _all_in_session(proc.pid)]
    for pid in orphans:  # let the rerun start clean, but report them
        os.kill(pid, signal.SIGKILL)
    subprocess.run([str(BIN / "snakemake"), "--unlock", *TARGETS, "--configfile",
                    "config/smoke.yaml", "kill.yaml"], cwd=root, env=_env(),
                   capture_output=True)
    rerun = _snakemake(root, "--rerun-incomplete")
    log, _ = rerun.communicate(timeout=600)
    problems = []
    if rerun.returncode != 0:
        problems.append(f"rerun failed: {log[-800:]}")
    if orphans:
        problems.append(f"{len(orphans)} orphan process(es) after the kill")
    temps = [str(p.relative_to(root)) for p in root.rglob("*.tmp")]
    if temps:
        problems.append(f".tmp left: {temps}")
    got = _metrics(root)
    if rerun.returncode == 0 and got != reference:
        problems.append("metrics differ from the uninterrupted run")
    resumed = "resumed at step" in "".join(
        p.read_text() for p in (root / "results/logs/train").rglob("*.log"))
    note += "; rerun resumed training" if resumed else ""
    shutil.rmtree(root, ignore_errors=True)
    return not problems, note + ("; " + "; ".join(problems) if problems else "")


def _all_in_session(sid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def main(points: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="otflows-kill-matrix-"))
    ref_root = _copy(work / "reference")
    out, _ = _snakemake(ref_root).communicate(timeout=900)
    reference = _metrics(ref_root)
    if not reference:
        print(out[-2000:])
        return 2
    failed = 0
    for name in points or list(POINTS):
        ok, note = run_point(name, reference, work)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name:17s} {note}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
