"""Time the pipeline's own overhead: a no-op ``snakemake -n`` and the smoke profile from scratch.

Usage::

    python benchmarks/snakemake_speed.py noop [--tree DIR] [--repeats 5]
    python benchmarks/snakemake_speed.py smoke [--repeats 1] [--keep DIR]
    python benchmarks/snakemake_speed.py floor [--repeats 5]

``noop``: ``snakemake -n`` in ``DIR`` (default: the repository, whose results should be
complete so that nothing is to be done), median wall and CPU (user + sys of Snakemake and
its children) over the repeats, each run followed by one of the floor's (below), and the
median ratio of the pairs: on this VM wall times move +-20 % from minute to minute, the
ratio much less. Goal (issue 23): <= 1.5 s on the default profile, where the floor was
1.06 s (a ratio of 1.4).
``floor``: the same on a one-rule Snakefile, without and with params: Snakemake's own
start-up on this machine.
``smoke``: the smoke profile (``--configfile config/smoke.yaml --cores 2``) from scratch in a
temporary copy of the project; wall seconds, CPU seconds (Snakemake, its shells, the
``otflows`` launchers and the fork server's preload, plus every forked job's own CPU from the
server's ``.snakemake/forkserver.times.jsonl``), when the server started, finished its preload
and forked the first job, how long Snakemake ran after the last job, then per rule: jobs,
summed wall and CPU of the jobs themselves. Goal (issue 23): <= 30 s wall on 2 idle cores.
Run it on an idle machine: wall times of a loaded one mean little (CPU seconds still do).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY = ["Snakefile", "rules", "src", "schemas", "config", "params.yaml", "report", "profiles",
        "data/raw/.gitkeep"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds (user + sys of the command and its waited-for children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, proc


def _report(name: str, runs: list[tuple[float, float]]) -> None:
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"{name}: wall median {statistics.median(walls):.2f} s (min {min(walls):.2f}, "
          f"max {max(walls):.2f}), CPU median {statistics.median(cpus):.2f} s, "
          f"{len(runs)} run(s)")


FLOOR_RULE = 'rule a:\n    output: "a.txt"\n{params}    shell: "touch {{output}}"\n'


@contextlib.contextmanager
def _floor_tree(params: str) -> Iterator[Path]:
    """A temporary one-rule workflow whose output is up to date."""
    with tempfile.TemporaryDirectory(prefix="otflows-floor-") as tmp:
        Path(tmp, "Snakefile").write_text(FLOOR_RULE.format(params=params))
        Path(tmp, "a.txt").touch()
        yield Path(tmp)


def noop(tree: Path, repeats: int, args: list[str]) -> None:
    """Median wall and CPU of ``snakemake -n`` in ``tree`` (which should be up to date),
    each run paired with one of the floor's (one rule with params), and their ratio."""
    runs, floor_runs = [], []
    with _floor_tree("    params: n=1\n") as floor_dir:
        for _ in range(repeats):
            wall, cpu, proc = _timed([str(BIN / "snakemake"), "-n", "--quiet", *args], tree)
            runs.append((wall, cpu))
            floor_runs.append(_timed([str(BIN / "snakemake"), "-n", "--quiet", "--cores", "1"],
                                     floor_dir)[:2])
    state = "nothing to do" if "Nothing to be done" in proc.stdout + proc.stderr else \
        "SOME JOBS TO DO (not a no-op)"
    _report(f"snakemake -n {' '.join(args)} in {tree} [{state}]", runs)
    _report("snakemake -n, one rule with params (floor), interleaved", floor_runs)
    ratios = [w / f for (w, _), (f, _) in zip(runs, floor_runs, strict=True)]
    print(f"ratio to the floor, run by run: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")


def floor(repeats: int) -> None:
    """``snakemake -n`` on one-rule workflows: Snakemake's own start-up, without and with a
    ``params:`` entry. With params, Snakemake hashes them for its params rerun trigger, and
    where pandas is installed (our pipeline needs it) that imports pandas (~0.35 s here)
    unless something already did (the Slurm executor plugin does, at start-up)."""
    for name, params in (("one rule", ""), ("one rule with params", "    params: n=1\n")):
        with _floor_tree(params) as tmp:
            runs = [_timed([str(BIN / "snakemake"), "-n", "--quiet", "--cores", "1"], tmp)[:2]
                    for _ in range(repeats)]
        _report(f"snakemake -n, {name} (floor)", runs)


def _copy_project(dest: Path) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _job_times(project: Path) -> tuple[float, dict[str, list[float]]]:
    """The fork server's preload CPU and, per command, [jobs, wall, cpu] of the forked jobs."""
    path = project / ".snakemake" / "forkserver.times.jsonl"
    preload, per = 0.0, defaultdict(lambda: [0, 0.0, 0.0])
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "preload" in rec:
                preload = rec["preload"]
                continue
            key = " ".join(rec["argv"][:1] if rec["argv"][:1] != ["prepare"] else rec["argv"])
            per[key][0] += 1
            per[key][1] += rec["wall"]
            per[key][2] += rec["cpu"]
    return preload, dict(per)


def _phases(project: Path, launched: float, wall: float) -> str:
    """Seconds after launching Snakemake at which the fork server started, finished its
    preload and forked the first job; and from the last job's end to Snakemake's exit."""
    path = project / ".snakemake" / "forkserver.times.jsonl"
    if not path.exists():
        return "no fork-server log"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    head = [r for r in recs if "preload" in r]
    jobs = [r for r in recs if "wall" in r]
    if not head or not jobs:
        return "incomplete fork-server log"
    start = head[0].get("start", head[0]["end"] - head[0]["preload"])
    first = min(r["end"] - r["wall"] for r in jobs)
    last = max(r["end"] for r in jobs)
    return (f"server started {start - launched:.1f} s, preloaded {head[0]['end'] - launched:.1f}"
            f" s, first job {first - launched:.1f} s; last job ended {launched + wall - last:.1f}"
            f" s before Snakemake's exit")


def smoke(repeats: int, keep: Path | None) -> None:
    """The smoke profile from scratch: wall, total CPU and the per-command breakdown."""
    runs = []
    for i in range(repeats):
        tmp = Path(tempfile.mkdtemp(prefix="otflows-smoke-"))
        try:
            _copy_project(tmp)
            launched = time.time()
            wall, cpu, _ = _timed([str(BIN / "snakemake"), "--configfile", "config/smoke.yaml",
                                   "--cores", "2"], tmp)
            preload, per = _job_times(tmp)
            jobs_cpu = sum(v[2] for v in per.values())
            runs.append((wall, cpu + jobs_cpu))
            print(f"smoke run {i + 1}: wall {wall:.1f} s; CPU {cpu + jobs_cpu:.1f} s = "
                  f"Snakemake + shells + launchers + server preload ({preload:.1f}) {cpu:.1f}"
                  f" + forked jobs {jobs_cpu:.1f} ({sum(v[0] for v in per.values())} jobs)")
            print(f"  {_phases(tmp, launched, wall)}")
            for key, (n, w, c) in sorted(per.items(), key=lambda kv: -kv[1][2]):
                print(f"  {key:<28} {n:4d} jobs  wall {w:7.2f} s  CPU {c:7.2f} s")
            if keep is not None and i == repeats - 1:
                shutil.copytree(tmp, keep, dirs_exist_ok=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _report("smoke profile from scratch (--cores 2)", runs)


def main() -> None:
    """Parse the command line and run the chosen timing."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["noop", "floor", "smoke"])
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--tree", type=Path, default=ROOT)
    p.add_argument("--keep", type=Path, default=None, help="smoke: copy the last run here")
    p.add_argument("snakemake_args", nargs="*", help="noop: extra Snakemake arguments")
    a = p.parse_args()
    if a.what == "noop":
        noop(a.tree, a.repeats or 5, a.snakemake_args)
    elif a.what == "floor":
        floor(a.repeats or 5)
    else:
        smoke(a.repeats or 1, a.keep)


if __name__ == "__main__":
    main()
