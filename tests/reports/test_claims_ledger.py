"""The claims ledger as a whole: every fixed id present once, statuses counted per scope, the
files written, and a claim without its inputs reported as not run (never dropped)."""

from __future__ import annotations

import json

import pandas as pd

from otflows.reports.claims import COLUMNS, all_claims, judge_all, ledger_counts, write_ledger
from otflows.reports.claims.base import (
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    SCOPES,
    Claim,
    Evidence,
    verdict,
)

# The ids the ledger's issue fixes (claims may be added, never removed).
FIXED_IDS = {"J1", "J2", "J3", "J4", "J5", "J6", "C1", "C2", "C3", "C4", "C5", "C6",
             "E1", "E2", "E3", "Q1", "Q2", "Q3", "Q4", "Q5", "M1", "M2", "M3", "M4", "M5", "X1"}


def test_every_fixed_claim_is_in_the_ledger_once_with_a_known_scope():
    claims = all_claims()
    ids = [c.id for c in claims]
    assert FIXED_IDS <= set(ids) and len(ids) == len(set(ids))
    assert {c.scope for c in claims} <= set(SCOPES)
    assert all(c.claim and c.source and c.paper for c in claims)


def test_an_empty_run_leaves_every_claim_not_run_with_a_reason():
    table = judge_all(Evidence({}))
    assert list(table.columns) == COLUMNS and len(table) == len(all_claims())
    # E1 (App. C's closed form against an independent Sinkhorn construction) is computed when
    # the ledger is written; every other claim needs the run's outputs.
    table = table[table["id"] != "E1"]
    assert (table["status"] == NOT_RUN).all()
    assert table["note"].str.startswith("not run: ").all()
    paper = table[table["scope"] == "paper"]
    assert paper["note"].str.contains("config/paper.yaml").all()
    data = table[table["scope"] == "data"]
    # data claims name the raw file they lack (MINIBOONE; C7-C10: MAF's POWER, GAS, ...)
    assert data["note"].str.contains("data/raw/").all()
    assert data["note"].str.contains("data/raw/miniboone").any()


def _toy_claims() -> list[Claim]:
    def above(ev: Evidence):
        x = ev.value("m", "run", "score")
        return verdict(x >= 1.0, f"{x:g} nats", "≥ 1 nats")

    return [Claim("P", "T1", "score is high", "Table 1", "default", above),
            Claim("P", "T2", "score is high on GPUs", "Table 2", "paper",
                  lambda ev: above(Evidence({("m", "run"): ev.metrics("m", "gpu")})))]


def test_statuses_and_counts_on_fabricated_metrics():
    claims = _toy_claims()
    good = judge_all(Evidence({("m", "run"): {"score": 2.0}}), claims)
    assert list(good["status"]) == [REPRODUCED, NOT_RUN]
    assert good["measured"][0] == "2 nats" and "config/paper.yaml" in good["note"][1]
    bad = judge_all(Evidence({("m", "run"): {"score": 0.5}}), claims)
    assert bad["status"][0] == NOT_REPRODUCED
    missing_key = judge_all(Evidence({("m", "run"): {}}), claims)
    assert missing_key["status"][0] == NOT_RUN and "no metric 'score'" in missing_key["note"][0]
    counts = ledger_counts(pd.concat([good, bad]))
    assert counts["default"] == {"reproduced": 1, "not_reproduced": 1, "not_run": 0, "total": 2}
    assert counts["paper"]["not_run"] == 2 and counts["all"]["total"] == 4


def test_write_ledger_reads_metrics_files_and_writes_three_files(tmp_path):
    metrics = tmp_path / "results/metrics/ekp/toy-moons.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"method": "ekp", "experiment": "toy-moons", "mmd2": 1e-4}))
    out = tmp_path / "results/tables"
    write_ledger([metrics], out / "claims.md", out / "claims.csv",
                 tmp_path / "results/metrics/claims.json")
    table = pd.read_csv(out / "claims.csv")
    assert list(table.columns) == COLUMNS and len(table) == len(all_claims())
    counts = json.loads((tmp_path / "results/metrics/claims.json").read_text())
    assert counts["all"]["total"] == len(table)
    assert sum(counts["all"][k] for k in ("reproduced", "not_reproduced", "not_run")) == len(table)
    assert (out / "claims.md").read_text().startswith("# Claims ledger")
