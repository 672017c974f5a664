"""`otflows` command line: the only entry point the Snakemake rules call.

Subcommands: prepare, download, not-run, train, evaluate, figure, table, summary, track,
compare. Every command takes its inputs and outputs as explicit paths and writes them
atomically.
"""

from __future__ import annotations

import argparse
import sys

from otflows.cli import prepare, real_data, report, run

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `otflows` command."""
    p = argparse.ArgumentParser(prog="otflows", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="prepare a dataset")
    prep_sub = prep.add_subparsers(dest="dataset_kind", required=True)
    prepare.add_commands(prep_sub)
    real_data.add_commands(prep_sub, sub)
    run.add_commands(sub)
    report.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `otflows` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder: say which file and why
        print(f"error: {err.strerror or err} ({err.filename or 'no file named'}); nothing "
              f"complete was written (outputs are written to a temp name, then renamed)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
