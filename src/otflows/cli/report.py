"""`otflows figure|table|summary|track|compare`: reports built from finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from otflows.pipeline.checkpoint import write_json

__all__ = ["add_commands"]


# --------------------------------------------------------------------------- reports
def cmd_figure(args: argparse.Namespace) -> int:
    from otflows import reports

    reports.figure(args.kind)(list(map(Path, args.inputs)), Path(args.out))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from otflows import reports

    extra = {"out_json": Path(args.out_json)} if args.out_json else {}
    reports.table(args.kind)(list(map(Path, args.inputs)), Path(args.out_md), Path(args.out_csv),
                             **extra)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from otflows.reports.summary import write_summary

    write_summary(list(map(Path, args.inputs)), Path(args.out_json), Path(args.out_csv),
                  Path(args.out_benchmark))
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from otflows.pipeline.tracking import import_records, tracking_uri

    manifest = import_records(list(map(Path, args.records)), Path(args.results),
                              tracking_uri(args.uri), args.experiment)
    write_json(manifest, args.out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from otflows.pipeline.compare import run_compare

    return run_compare(args.rev_a, args.rev_b, Path(args.repo),
                       Path(args.out) if args.out else None)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the report commands on the main subparsers."""
    fig = sub.add_parser("figure", help="draw a figure from evaluated runs")
    fig.add_argument("kind")
    fig.add_argument("--inputs", nargs="*", default=[],
                     help="run outputs; none for figures drawn from closed forms")
    fig.add_argument("--out", required=True, help="PNG path (an SVG is written beside it)")
    fig.set_defaults(func=cmd_figure)

    tab = sub.add_parser("table", help="write a table (markdown + CSV) from metrics")
    tab.add_argument("kind")
    tab.add_argument("--inputs", nargs="+", required=True)
    tab.add_argument("--out-md", required=True)
    tab.add_argument("--out-csv", required=True)
    tab.add_argument("--out-json", default=None,
                     help="claims only: counts per scope (results/metrics/claims.json)")
    tab.set_defaults(func=cmd_table)

    summ = sub.add_parser("summary", help="aggregate every metrics file")
    summ.add_argument("--inputs", nargs="+", required=True)
    summ.add_argument("--out-json", required=True)
    summ.add_argument("--out-csv", required=True)
    summ.add_argument("--out-benchmark", required=True)
    summ.set_defaults(func=cmd_summary)

    trk = sub.add_parser("track", help="import run records into MLflow")
    trk.add_argument("--records", nargs="+", required=True)
    trk.add_argument("--results", default="results")
    trk.add_argument("--uri", default="sqlite:///mlflow.db")
    trk.add_argument("--experiment", default="otflows")
    trk.add_argument("--out", required=True)
    trk.set_defaults(func=cmd_track)

    cmp_ = sub.add_parser("compare", help="compare committed metrics of two git revisions")
    cmp_.add_argument("rev_a")
    cmp_.add_argument("rev_b")
    cmp_.add_argument("--repo", default=".")
    cmp_.add_argument("--out", default=None)
    cmp_.set_defaults(func=cmd_compare)
