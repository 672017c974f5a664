"""The ``otflows`` console command: through the fork server when a run has one, else here.

See :mod:`otflows.cli.forkserver`. Only the standard library is imported before that choice,
so a command sent to the server starts in a few tens of milliseconds.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``otflows`` with this process's argv; exit with the command's status."""
    from otflows.cli.forkserver import run_via_server

    code = run_via_server(sys.argv)
    if code is None:
        from otflows.cli.main import main as cli_main

        code = cli_main()
    sys.exit(code)
