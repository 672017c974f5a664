"""JKO-Flow (Vidal et al., arXiv:2211.16757) against single-shot OT-Flow: claims J1-J6.

Single shot is the method ``otflow``, JKO-Flow the method ``jko``. Table 1 runs are
``alpha-<dataset>-a<alpha>``, Table 2 runs ``width-<dataset>-m<width>`` (its point at the
default width is the Table-1 run at the width sweep's alpha: trained once, shown in both, see
``Experiment.also_in``), Table 3 runs ``miniboone-a<alpha>``. The cells counted are the
paper's grid (``otflows.reports.jko``'s published tables); a cell whose run is absent is
``not run`` unless the claim is decided by the cells present.
"""

from __future__ import annotations

from collections.abc import Callable

from otflows.metrics.mmd import mmd2_biased, mmd2_unbiased
from otflows.reports.claims.base import (
    Claim,
    Evidence,
    MissingInput,
    Verdict,
    verdict,
)
from otflows.reports.jko import (
    MINIBOONE_SLICES,
    PAPER_ALPHAS,
    PAPER_JKO_ALPHA,
    PAPER_JKO_WIDTH,
    PAPER_MINIBOONE_ALPHAS,
    PAPER_WIDTHS,
)

__all__ = ["BENCHMARK_ALPHA", "CLAIMS", "PAPER", "PAPER_N_TEST", "decide", "miniboone_stats",
           "table1_cells",
           "table2_cells"]

PAPER = "JKO-Flow"
SINGLE, JKO = "otflow", "jko"
# Fig. 2 shows alpha = 5 (params.yaml jko.benchmark_alpha; the cross-method toy benchmark).
BENCHMARK_ALPHA = 5.0
# Table 2 caption: width sweep at alpha = 5, 50 for 2 Spirals (used only when no width run
# of the dataset says which alpha it was trained at).
PAPER_WIDTH_ALPHA = {"2spirals": 50.0}
# Published toy driver and config/paper.yaml: 6000 test points. A Table-1 run is at the
# paper's settings (J5) when its test split has this size (the default profile: 2000).
PAPER_N_TEST = 6000
J4_MAX = 1e-3  # issue 16 J4; the paper's worst JKO-Flow cell at alpha = 5 is 5.67e-4 (Table 1)
J5_FACTOR, J5_FLOOR = 3.0, 1e-4  # issue 16 J5
MINIBOONE_DIMS = (*MINIBOONE_SLICES, "full")

Cell = tuple[str, float]  # (dataset, alpha or width)


def _g(x: float) -> str:
    return f"{x:g}"


def _pair(evidence: Evidence, exp: str) -> tuple[float, float] | None:
    """(single shot, JKO-Flow) ``mmd2`` of run ``exp``; None unless both are present."""
    try:
        return evidence.value(SINGLE, exp, "mmd2"), evidence.value(JKO, exp, "mmd2")
    except MissingInput:
        return None


def table1_cells(evidence: Evidence) -> tuple[dict[Cell, tuple[float, float]], list[Cell]]:
    """Table 1's (dataset, alpha) cells: ``{cell: (single, jko) mmd2}`` and the absent cells."""
    found, missing = {}, []
    for ds in PAPER_JKO_ALPHA:
        for alpha in PAPER_ALPHAS:
            pair = _pair(evidence, f"alpha-{ds}-a{_g(alpha)}")
            if pair is None:
                missing.append((ds, alpha))
            else:
                found[(ds, alpha)] = pair
    return found, missing


def _width_alpha(evidence: Evidence, ds: str) -> float:
    """The alpha of the width sweep of ``ds``: that of its width runs, else the paper's."""
    for method in (SINGLE, JKO):
        for exp in evidence.experiments(method, f"width-{ds}-m"):
            alpha = evidence.metrics(method, exp).get("alpha")
            if alpha is not None:
                return float(alpha)
    return PAPER_WIDTH_ALPHA.get(ds, BENCHMARK_ALPHA)


def table2_cells(evidence: Evidence) -> tuple[dict[Cell, tuple[float, float]], list[Cell]]:
    """Table 2's (dataset, width) cells as the table shows them: ``width-<ds>-m<w>``, or at the
    default width the Table-1 run at the sweep's alpha whose ``width`` is ``w`` (the run the
    pipeline shares between both tables). Note: the paper's Table 2 prints its moons row as
    a copy of 2 Spirals (issue 17); these cells are our own runs, so that does not matter.

    Metrics alone cannot tell whether the default width is in the profile's width grid: in a
    profile whose grid lacks it (the smoke profile) the Table-1 run fills that cell although
    Table 2 does not show it; such a profile lacks other cells of the paper's grid anyway."""
    found, missing = {}, []
    for ds in PAPER_JKO_WIDTH:
        shared = f"alpha-{ds}-a{_g(_width_alpha(evidence, ds))}"
        for width in PAPER_WIDTHS:
            pair = _pair(evidence, f"width-{ds}-m{width}")
            if pair is None and all(evidence.has(m, shared) and
                                    evidence.metrics(m, shared).get("width") == width
                                    for m in (SINGLE, JKO)):
                pair = _pair(evidence, shared)
            if pair is None:
                missing.append((ds, width))
            else:
                found[(ds, width)] = pair
    return found, missing


def _names(items: list, at_most: int = 4) -> str:
    text = ", ".join(str(i) for i in items[:at_most])
    return text + (f", … ({len(items)} in all)" if len(items) > at_most else "")


def _cells(cells: list[Cell], key: str) -> list[str]:
    return [f"{ds} {key}={_g(v)}" for ds, v in cells]


def decide(hits: int, judged: int, total: int, need: int, what: str, missing: list[str],
           note: str = "") -> Verdict:
    """A count claim over ``total`` items of which ``judged`` are present: reproduced once
    ``hits`` reach ``need``, not reproduced once the failures exceed ``total - need``; in
    between, not run (MissingInput naming the absent items)."""
    failures = judged - hits
    if hits < need and failures <= total - need:
        if not missing:
            raise MissingInput(f"no {what} to count")
        raise MissingInput(f"{len(missing)} of {total} {what} not run: {_names(missing)}")
    measured = f"{hits}/{judged} {what}"
    if judged < total:
        measured += f" ({total - judged} not run)"
        note = "; ".join(filter(None, [note, f"not run: {_names(missing)}"]))
    return verdict(hits >= need, measured, f"≥ {need}/{total} {what}", note)


def _worse(cells: dict[Cell, tuple[float, float]], key: str) -> str:
    bad = sorted(((j - s, c) for c, (s, j) in cells.items() if j > s), reverse=True)
    return ("JKO-Flow worse at " + _names([f"{ds} {key}={_g(v)}" for _, (ds, v) in bad])
            if bad else "")


# ---------------------------------------------------------------------------- the checks
def check_j1(evidence: Evidence) -> Verdict:
    cells, missing = table1_cells(evidence)
    hits = sum(j <= s for s, j in cells.values())
    # issue 16 J1: ≥ 26 of 28 (the paper's Table 1: 27/28)
    return decide(hits, len(cells), 28, 26, "cells", _cells(missing, "α"), _worse(cells, "α"))


def check_j2(evidence: Evidence) -> Verdict:
    cells, _ = table1_cells(evidence)
    hits, judged, missing, bad = 0, 0, [], []
    for ds in PAPER_JKO_ALPHA:
        row = [cells.get((ds, a)) for a in PAPER_ALPHAS]
        if any(c is None for c in row):
            missing.append(ds)
            continue
        judged += 1
        single = [s for s, _ in row]
        jko = [j for _, j in row]
        r_single, r_jko = max(single) - min(single), max(jko) - min(jko)
        if r_jko < r_single:
            hits += 1
        else:
            bad.append(f"{ds} {r_jko:.2e} vs {r_single:.2e}")
    note = f"range not smaller: {_names(bad)}" if bad else ""
    # issue 16 J2: 7 of 7 (the paper's own Table 1 meets it on 7 of 7)
    return decide(hits, judged, 7, 7, "datasets", missing, note)


def check_j3(evidence: Evidence) -> Verdict:
    # Counts our own runs' cells: the paper's moons row of Table 2 (a copy of 2 Spirals,
    # issue 17) plays no part.
    cells, missing = table2_cells(evidence)
    hits = sum(j <= s for s, j in cells.values())
    # issue 16 J3: ≥ 32 of 35 (the paper's Table 2: 34/35)
    return decide(hits, len(cells), 35, 32, "cells", _cells(missing, "m"), _worse(cells, "m"))


def check_j4(evidence: Evidence) -> Verdict:
    values, missing = {}, []
    for ds in PAPER_JKO_ALPHA:
        try:
            values[ds] = evidence.value(JKO, f"alpha-{ds}-a{_g(BENCHMARK_ALPHA)}", "mmd2")
        except MissingInput:
            missing.append(ds)
    hits = sum(v <= J4_MAX for v in values.values())
    note = ""
    if values:
        worst = max(values, key=values.get)
        note = f"worst: {worst} {values[worst]:.2e}"
    return decide(hits, len(values), 7, 7, f"datasets ≤ {J4_MAX:g}", missing, note)


def _at_paper_settings(evidence: Evidence, exp: str) -> bool:
    test = evidence.samples(JKO, exp).get("test")
    return test is not None and test.shape[0] == PAPER_N_TEST


def check_j5(evidence: Evidence) -> Verdict:
    hits, judged, missing, bad, other = 0, 0, [], [], []
    for ds, rows in PAPER_JKO_ALPHA.items():
        for alpha, paper in zip(PAPER_ALPHAS, rows[JKO], strict=True):
            exp = f"alpha-{ds}-a{_g(alpha)}"
            try:
                ours = evidence.value(JKO, exp, "mmd2")
                at_paper = _at_paper_settings(evidence, exp)
            except MissingInput:
                missing.append(f"{ds} α={_g(alpha)}")
                continue
            if not at_paper:
                other.append(f"{ds} α={_g(alpha)}")
                continue
            judged += 1
            if ours < J5_FLOOR or paper / J5_FACTOR <= ours <= paper * J5_FACTOR:
                hits += 1
            else:
                bad.append(f"{ds} α={_g(alpha)} {ours:.2e} vs {paper:.2e}")
    if other and not bad:
        absent = f"; {len(missing)} absent" if missing else ""
        raise MissingInput(f"{len(other)} of 28 Table-1 JKO-Flow runs are not at the paper's "
                           f"settings (test split ≠ {PAPER_N_TEST} points), e.g. "
                           f"{_names(other, 2)}{absent}")
    note = f"outside 3×: {_names(bad)}" if bad else ""
    # issue 16 J5: within 3× of the paper's Table 1 value, or below 1e-4, in every cell
    return decide(hits, judged, 28, 28, "cells", missing + other, note)


def miniboone_stats(evidence: Evidence, method: str, exp: str) -> dict[str, float]:
    """MMD² (kernel exp(−‖x−y‖²)) of the run's samples vs its test split as Table 3 reports
    them (``otflows.reports.jko.miniboone_mmd``): the unbiased ``mmd2`` on the 2-D slices,
    and on all 43 dimensions the V-statistic ``mmd2_vstat`` (the published code's estimator
    there; the U-statistic is ≈ 0 for any model in 43-D). Only these three are computed
    (miniboone_mmd computes nine: ~12 s a run at MINIBOONE's size)."""
    arrays = evidence.samples(method, exp)
    if "samples" not in arrays or "test" not in arrays:
        raise MissingInput(f"{method}/{exp}'s samples file holds no samples/test arrays")
    x, y = arrays["samples"], arrays["test"]
    out = {"full": mmd2_biased(x, y, 1.0)}
    for dims, cols in MINIBOONE_SLICES.items():
        if max(cols) < y.shape[1]:
            out[dims] = mmd2_unbiased(x[:, cols], y[:, cols], 1.0)
    return out


def check_j6(evidence: Evidence) -> Verdict:
    hits, judged, missing, bad = 0, 0, [], []
    for alpha in PAPER_MINIBOONE_ALPHAS:
        exp = f"miniboone-a{_g(alpha)}"
        try:
            single = miniboone_stats(evidence, SINGLE, exp)
            jko = miniboone_stats(evidence, JKO, exp)
        except MissingInput:
            missing += [f"α={_g(alpha)} {dims}" for dims in MINIBOONE_DIMS]
            continue
        for dims in MINIBOONE_DIMS:
            if dims not in single or dims not in jko:
                missing.append(f"α={_g(alpha)} {dims}")
                continue
            judged += 1
            if jko[dims] < single[dims]:
                hits += 1
            else:
                bad.append(f"α={_g(alpha)} {dims} {jko[dims]:.2e} vs {single[dims]:.2e}")
    note = f"JKO-Flow not lower: {_names(bad)}" if bad else ""
    total = len(PAPER_MINIBOONE_ALPHAS) * len(MINIBOONE_DIMS)
    return decide(hits, judged, total, total, "(α, dims) cells", missing, note)


def _claim(id_: str, text: str, source: str, scope: str,
           check: Callable[[Evidence], Verdict]) -> Claim:
    return Claim(PAPER, id_, text, source, scope, check)


CLAIMS: list[Claim] = [
    _claim("J1", "JKO-Flow's MMD² ≤ single shot's in ≥ 26 of the 28 (dataset, α) cells "
           "(paper: 27/28)", "Table 1", "default", check_j1),
    _claim("J2", "on each of the 7 toys JKO-Flow's range of MMD² over α (max − min) is "
           "smaller than single shot's", "Table 1", "default", check_j2),
    _claim("J3", "JKO-Flow's MMD² ≤ single shot's in ≥ 32 of the 35 (dataset, width) cells "
           "(paper: 34/35)", "Table 2", "default", check_j3),
    _claim("J4", "every toy is learned: JKO-Flow's MMD² (kernel exp(−‖x−y‖²)) at α = 5 ≤ 1e-3 "
           "on all 7 datasets (paper's worst: 5.67e-4)", "Fig. 2, Table 1", "default",
           check_j4),
    _claim("J5", "every JKO-Flow cell of Table 1 within 3× of the paper's value or below "
           "1e-4", "Table 1", "paper", check_j5),
    _claim("J6", "MINIBOONE: JKO-Flow's MMD² < single shot's at every α, on all dimensions "
           "and on both 2-D slices", "Table 3", "data", check_j6),
]
