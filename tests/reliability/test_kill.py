"""Kill -9 of Snakemake itself leaves no job running (issue 22, item 6).

Before the fix a job whose Snakemake was killed ran on as an orphan (beside the rerun,
writing the same outputs). Now every `otflows` command of a local run watches Snakemake's
pid (exported by the Snakefile) and stops itself when it is gone. The remaining points of
the kill matrix run in tests/reliability/kill_matrix.py (minutes; not part of CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from otflows.cli.launcher import PARENT_VAR


def test_a_job_stops_when_its_snakemake_is_killed(tmp_path):
    fake_snakemake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    # `otflows` with a command that would run for a minute: the launcher's watchdog ends it
    code = ("import sys, time\nfrom otflows.cli import launcher\n"
            "sys.argv = ['otflows']\n"
            "import otflows.cli.forkserver as fs\nfs.run_via_server = lambda argv: None\n"
            "import otflows.cli.main as m\nm.main = lambda argv=None: time.sleep(60) or 0\n"
            "launcher.main()\n")
    env = {**os.environ, PARENT_VAR: str(fake_snakemake.pid)}
    env.pop("OTFLOWS_FORKSERVER", None)
    job = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                           text=True)
    time.sleep(3.0)
    assert job.poll() is None, job.stderr.read()
    os.kill(fake_snakemake.pid, signal.SIGKILL)
    fake_snakemake.wait()
    start = time.time()
    try:
        job.wait(timeout=20)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == -signal.SIGTERM
    assert time.time() - start < 10
    assert "is gone: stopping this job" in job.stderr.read()
