"""Claims across methods: X1, no model's checkerboard test NLL beats the data's entropy.

The checkerboard density is uniform on 8 of the 16 unit cells of [−4, 4]² (total area 32),
so its differential entropy is ln 32 = 3.466 nats: the expected test NLL of any model is at
least that, up to the test split's sampling error (the 0.02 nats of the issue).
"""

from __future__ import annotations

import math

from otflows.reports.claims.base import Claim, Evidence, MissingInput, Verdict, fmt, verdict
from otflows.reports.claims.jko import BENCHMARK_ALPHA

__all__ = ["CHECKERBOARD_NLL_MIN", "CLAIMS", "EXPECTED_RUNS", "METHODS", "checkerboard_nll"]

PAPER = "all methods"
# issue 16 X1: ln 32 − 0.02 nats
CHECKERBOARD_NLL_MIN = math.log(32.0) - 0.02
# Methods whose runs may report a checkerboard test NLL (``nll_nats``).
METHODS = ("otflow", "jko", "ekp", "cpflow", "mongeampere", "qflow")
# Single shot and JKO-Flow count only at the benchmark alpha (their run in the cross-method
# toy benchmark), not every point of their alpha and width sweeps.
_SWEPT = {"otflow", "jko"}
_BENCH = f"alpha-checkerboard-a{BENCHMARK_ALPHA:g}"
# The benchmark run of each method on checkerboard: absent ones make X1 `not run` unless
# a present run already breaks it.
EXPECTED_RUNS = [("otflow", _BENCH), ("jko", _BENCH), ("ekp", "toy-checkerboard"),
                 ("cpflow", "toy-checkerboard"), ("mongeampere", "toy-checkerboard"),
                 ("qflow", "toy-checkerboard")]


def checkerboard_nll(evidence: Evidence) -> dict[str, float]:
    """``{"<method>/<exp>": nll_nats}`` of every run on checkerboard that reports it (single
    shot and JKO-Flow: the benchmark-alpha run only)."""
    out = {}
    for method in METHODS:
        for exp in evidence.experiments(method):
            if method in _SWEPT and exp != _BENCH:
                continue
            m = evidence.metrics(method, exp)
            if m.get("dataset") == "checkerboard" and m.get("nll_nats") is not None:
                out[f"{method}/{exp}"] = float(m["nll_nats"])
    return out


def check_x1(evidence: Evidence) -> Verdict:
    nll = checkerboard_nll(evidence)
    offenders = sorted((v, k) for k, v in nll.items() if v < CHECKERBOARD_NLL_MIN)
    missing = [f"{m}/{e}" for m, e in EXPECTED_RUNS if f"{m}/{e}" not in nll]
    if not nll or (missing and not offenders):
        raise MissingInput("no checkerboard test NLL (nll_nats) from "
                           + ", ".join(missing or [m for m, _ in EXPECTED_RUNS]))
    low = min(nll, key=nll.get)
    measured = f"{fmt(nll[low], 'nats')} ({low}, lowest of {len(nll)} runs)"
    threshold = f"≥ {fmt(CHECKERBOARD_NLL_MIN, 'nats')} (ln 32 − 0.02)"
    notes = []
    if offenders:
        notes.append("below the data's entropy: "
                     + ", ".join(f"{k} {fmt(v, 'nats')}" for v, k in offenders))
    if missing:
        notes.append("not run: " + ", ".join(missing))
    return verdict(not offenders, measured, threshold, "; ".join(notes))


CLAIMS: list[Claim] = [
    Claim(PAPER, "X1", "every method's checkerboard test NLL ≥ ln 32 − 0.02 nats (no model "
          "beats the data's entropy)", "checkerboard density (FFJORD's toy), all papers",
          "default", check_x1),
]
