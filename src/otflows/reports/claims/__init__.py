"""The claims ledger: every claim of the five papers, what this run measured, and whether it
reproduced (``results/tables/claims.md``/``.csv``, ``results/metrics/claims.json``).

One module per paper lists its claims (``CLAIMS``); :func:`write_ledger` judges them all on
the run's own metrics and samples files (never typed-in numbers).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from otflows.pipeline.checkpoint import write_json, write_text
from otflows.reports.claims.base import (
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    SCOPES,
    Claim,
    Evidence,
    Verdict,
)

__all__ = ["COLUMNS", "FIGURES", "TABLES", "all_claims", "judge_all", "ledger_counts",
           "write_ledger"]

COLUMNS = ["paper", "id", "claim", "source", "scope", "measured", "threshold", "status", "note"]
# The per-paper claim modules, in ledger order.
MODULES = [f"otflows.reports.claims.{name}"
           for name in ("jko", "cpflow", "ekp", "qflow", "mongeampere", "across")]


def all_claims() -> list[Claim]:
    """Every claim of every paper, in ledger order; ids are unique."""
    claims = [c for name in MODULES for c in importlib.import_module(name).CLAIMS]
    ids = [c.id for c in claims]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"claim ids used twice: {duplicated}")
    return claims


def judge_all(evidence: Evidence, claims: list[Claim] | None = None) -> pd.DataFrame:
    """One row per claim with its verdict (columns :data:`COLUMNS`)."""
    rows = []
    for claim in claims if claims is not None else all_claims():
        v: Verdict = claim.judge(evidence)
        rows.append({"paper": claim.paper, "id": claim.id, "claim": claim.claim,
                     "source": claim.source, "scope": claim.scope, "measured": v.measured,
                     "threshold": v.threshold, "status": v.status, "note": v.note})
    return pd.DataFrame(rows, columns=COLUMNS)


def ledger_counts(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{scope: {reproduced, not_reproduced, not_run, total}}`` plus ``all``."""
    out = {}
    for scope in (*SCOPES, "all"):
        rows = table if scope == "all" else table[table["scope"] == scope]
        out[scope] = {"reproduced": int((rows["status"] == REPRODUCED).sum()),
                      "not_reproduced": int((rows["status"] == NOT_REPRODUCED).sum()),
                      "not_run": int((rows["status"] == NOT_RUN).sum()),
                      "total": len(rows)}
    return out


def _markdown(table: pd.DataFrame, counts: dict[str, dict[str, int]]) -> str:
    lines = ["# Claims ledger", "",
             "Every claim of the five papers, judged on this run's own metrics "
             "(`otflows.reports.claims`).", "",
             "| scope | reproduced | not reproduced | not run | total |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {s} | {c['reproduced']} | {c['not_reproduced']} | {c['not_run']} | "
              f"{c['total']} |" for s, c in counts.items()]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table.itertuples(index=False):
        cells = [str(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_ledger(inputs: list[Path], out_md: Path, out_csv: Path,
                 out_json: Path | None = None) -> None:
    """Judge every claim on the metrics/samples files ``inputs``; write the ledger as
    markdown and CSV, and the counts per scope as JSON (for `dvc metrics diff`)."""
    table = judge_all(Evidence.from_files(inputs))
    counts = ledger_counts(table)
    write_text(_markdown(table, counts), out_md)
    write_text(table.to_csv(index=False, lineterminator="\n"), out_csv)
    if out_json is not None:
        write_json(counts, out_json)


FIGURES: dict = {}
TABLES = {"claims": write_ledger}
