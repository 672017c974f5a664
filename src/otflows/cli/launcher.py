"""The ``otflows`` console command: through the fork server when a run has one, else here.

See :mod:`otflows.cli.forkserver`. Only the standard library is imported before that choice,
so a command sent to the server starts in a few tens of milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["PARENT_VAR", "main"]

# Set by the Snakefile (local runs) to Snakemake's pid. A job whose Snakemake was killed
# (kill -9 leaves its children running) terminates itself instead of running on as an
# orphan beside the rerun: the rerun resumes from the job's last checkpoint.
PARENT_VAR = "OTFLOWS_SNAKEMAKE_PID"


def _watch_snakemake(pid: int, every: float = 1.0) -> None:
    while True:
        time.sleep(every)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"[otflows] Snakemake (pid {pid}) is gone: stopping this job",
                  file=sys.stderr)
            os.kill(os.getpid(), signal.SIGTERM)  # forwarded to a forked job, then we exit
            return
        except PermissionError:  # alive, another user's pid: not ours to judge
            continue


def main() -> None:
    """Run ``otflows`` with this process's argv; exit with the command's status."""
    from otflows.cli.forkserver import run_via_server

    parent = os.environ.get(PARENT_VAR, "")
    if parent.isdigit():
        threading.Thread(target=_watch_snakemake, args=(int(parent),), daemon=True).start()

    code = run_via_server(sys.argv)
    if code is None:
        from otflows.cli.main import main as cli_main

        code = cli_main()
    sys.exit(code)
