"""Q-flow's claims (Xu, Cheng, Xie, arXiv:2305.11857; paper 003), read from the ``qflow``
runs: ``gmm`` (Q1, §4.2), ``mi-d<d>`` (Q2, §4.3), every pair run (Q3, Alg. 1),
``translation-<s>to<t>`` (Q4, §4.5) and ``ebm-<Q>`` (Q5, Table 1, paper profile).

The paper's DRE baselines are 1 ratio, TRE (Rhodes et al., linear waymarks) and DRE-∞ (Choi
et al.). The runs record them as ``one_ratio_*``, ``tre_linear_*`` and ``dre_inf_*`` (time
score matching on TRE's interpolant, Q-flow issue 20); ``tre_qflow_*``, TRE on the Q-flow
path, is this project's ablation, not a paper baseline. A claim that Q-flow-ratio beats every
baseline is ``not reproduced`` as soon as it loses to one that exists, and ``not run`` while
only a missing DRE-∞ is left to compare.
"""

from __future__ import annotations

import re

from otflows.reports.claims.base import Claim, Evidence, MissingInput, Verdict, fmt, verdict

__all__ = ["CLAIMS", "EBM_MODELS", "FINAL_MMD_KEY", "INITIAL_MMD_KEY", "PAIR_PREFIXES"]

METHOD = "qflow"
OURS = "qflow_ratio"
BASELINES = {"one_ratio": "1 ratio", "tre_linear": "TRE"}  # the paper's, that exist today
DRE_INF = "dre_inf"  # DRE-∞'s metric prefix (otflows.methods.qflow.ratio)
MI_TOL = 0.10  # issue 16: within 10 % of the closed-form MI
COST_MMD_FACTOR = 1.1  # issue 16: MMD² after refinement ≤ 1.1 × the initial flow's
INITIAL_MMD_KEY = "mmd2_initial"  # MMD² of the initial flow's pushforward (the trainer's)
FINAL_MMD_KEY = "mmd2_pushforward"  # the refined flow's: same kernel exp(−‖x−y‖²/d), points
PAIR_PREFIXES = ("gmm", "moons-checkerboard", "mi-d", "translation-", "toy-")
TRANSLATION_SHARE = 0.80  # issue 16: ≥ 80 % of translated source points labelled target
EBM_MODELS = ("nsf", "copula", "gaussian")  # Table 1's three Q: RQ-NSF, Copula, Gaussian


def _dre_inf_missing(what: str) -> MissingInput:
    return MissingInput(f"{what}; DRE-∞ (Choi et al. 2022), the paper's third baseline, is not "
                        f"implemented (no {DRE_INF}_* metric): Q-flow issue 20")


# --------------------------------------------------------------------------------------- Q1
def _q1(evidence: Evidence) -> Verdict:
    lose = []
    for stat, label in (("mae", "MAE"), ("max_error", "max error")):
        ours = evidence.value(METHOD, "gmm", f"{OURS}_{stat}")
        for base, name in BASELINES.items():
            theirs = evidence.value(METHOD, "gmm", f"{base}_{stat}")
            if not ours < theirs:
                lose.append(f"{label} {fmt(ours)} ≥ {name}'s {fmt(theirs)}")
    mae = evidence.value(METHOD, "gmm", f"{OURS}_mae")
    worst = evidence.value(METHOD, "gmm", f"{OURS}_max_error")
    measured = (f"MAE {fmt(mae, 'nats')}, max error {fmt(worst, 'nats')}; smallest in "
                f"{4 - len(lose)}/4 comparisons")
    threshold = "smallest MAE and max error vs 1 ratio, TRE, DRE-∞"
    m = evidence.metrics(METHOD, "gmm")
    if lose:
        inf = (f" (DRE-∞: MAE {fmt(m[DRE_INF + '_mae'])}, max error "
               f"{fmt(m[DRE_INF + '_max_error'])})" if f"{DRE_INF}_mae" in m
               else " (DRE-∞ not run: no dre_inf_* metric; Q-flow issue 20)")
        return verdict(False, measured, threshold, "loses: " + "; ".join(lose) + inf)
    if f"{DRE_INF}_mae" not in m or f"{DRE_INF}_max_error" not in m:
        raise _dre_inf_missing(f"Q-flow-ratio beats 1 ratio and TRE ({measured})")
    inf_mae = evidence.value(METHOD, "gmm", f"{DRE_INF}_mae")
    inf_max = evidence.value(METHOD, "gmm", f"{DRE_INF}_max_error")
    ok = mae < inf_mae and worst < inf_max
    return verdict(ok, measured.replace("/4", "/4 (+ DRE-∞)"), threshold,
                   "" if ok else f"DRE-∞: MAE {fmt(inf_mae)}, max error {fmt(inf_max)}")


# --------------------------------------------------------------------------------------- Q2
def _mi_runs(evidence: Evidence) -> list[tuple[int, str]]:
    runs = sorted((int(m.group(1)), e) for e in evidence.experiments(METHOD, "mi-d")
                  if (m := re.fullmatch(r"mi-d(\d+)", e)))
    if not runs:
        raise MissingInput("no qflow runs mi-d<d>")
    return runs


def _q2(evidence: Evidence) -> Verdict:
    runs = _mi_runs(evidence)
    rel = {}
    for d, exp in runs:
        truth = evidence.value(METHOD, exp, "mi_true")
        rel[d] = abs(evidence.value(METHOD, exp, f"{OURS}_mi") - truth) / abs(truth)
    within = [d for d in rel if rel[d] <= MI_TOL]
    d_max, exp_max = runs[-1]
    truth = evidence.value(METHOD, exp_max, "mi_true")
    ours = abs(evidence.value(METHOD, exp_max, f"{OURS}_mi") - truth)
    behind = []
    for base, name in BASELINES.items():
        theirs = abs(evidence.value(METHOD, exp_max, f"{base}_mi") - truth)
        if not ours < theirs:
            behind.append(f"{name} {fmt(theirs, 'nats')} off")
    worst = max(rel, key=rel.get)
    notes = []
    if len(within) < len(rel):
        notes.append(f"worst: d = {worst} {fmt(100 * rel[worst], '%')} off")
    if behind:
        notes.append(f"at d = {d_max} Q-flow-ratio is {fmt(ours, 'nats')} off, " + ", ".join(
            behind))
    return verdict(len(within) == len(rel) and not behind,
                   f"within 10 % at {len(within)}/{len(rel)} d (worst d = {worst}: "
                   f"{fmt(100 * rel[worst], '%')}); at d = {d_max}: {fmt(ours, 'nats')} off",
                   f"≤ 10 % at {len(rel)}/{len(rel)} d; closer than 1 ratio and TRE at the "
                   f"largest d", "; ".join(notes))


# --------------------------------------------------------------------------------------- Q3
def _q3(evidence: Evidence) -> Verdict:
    runs = {p: evidence.experiments(METHOD, p) for p in PAIR_PREFIXES}
    present = [e for p in PAIR_PREFIXES for e in runs[p]]
    absent = [p + ("*" if p.endswith(("-", "-d")) else "") for p in PAIR_PREFIXES if not runs[p]]
    higher = []
    for exp in present:
        cost = evidence.value(METHOD, exp, "transport_cost")
        initial = evidence.value(METHOD, exp, "transport_cost_initial")
        if not cost < initial:
            higher.append((exp, cost, initial))
    measured = f"cost below the initial flow's on {len(present) - len(higher)}/{len(present)} pairs"
    threshold = (f"cost < initial on every pair, and MMD² ≤ {COST_MMD_FACTOR:g} × the "
                 f"initial flow's")
    worse = [(e, evidence.value(METHOD, e, FINAL_MMD_KEY), evidence.value(METHOD, e,
                                                                          INITIAL_MMD_KEY))
             for e in present if {INITIAL_MMD_KEY, FINAL_MMD_KEY} <= set(
                 evidence.metrics(METHOD, e))]
    worse = [(e, m, i) for e, m, i in worse if not m <= COST_MMD_FACTOR * i]
    if higher:
        return verdict(False, measured, threshold, "cost rose: " + ", ".join(
            f"{e} {fmt(c)} vs initial {fmt(i)}" for e, c, i in higher[:3])
            + (f"; not run: {', '.join(absent)}" if absent else "")
            + ("; MMD² rose: " + ", ".join(f"{e} {fmt(m)} vs initial {fmt(i)}"
                                           for e, m, i in worse[:3]) if worse else ""))
    if absent:
        raise MissingInput("no qflow runs " + ", ".join(absent))
    no_initial = [e for e in present if not {INITIAL_MMD_KEY, FINAL_MMD_KEY}
                  <= set(evidence.metrics(METHOD, e))]
    if no_initial:
        raise MissingInput(
            f"{measured}, but the initial flow's MMD² (metric {INITIAL_MMD_KEY!r}) is not "
            f"recorded for {len(no_initial)}/{len(present)} pairs (e.g. {no_initial[0]}), so "
            f"'pushed-forward P still matches Q as well' is unmeasured: Q-flow issue 20")
    return verdict(not worse, f"{measured}; MMD² ≤ {COST_MMD_FACTOR:g} × initial on "
                   f"{len(present) - len(worse)}/{len(present)}", threshold,
                   "MMD² rose: " + ", ".join(f"{e} {fmt(m)} vs initial {fmt(i)}"
                                             for e, m, i in worse[:3]) if worse else "")


# --------------------------------------------------------------------------------------- Q4
def _q4(evidence: Evidence) -> Verdict:
    runs = evidence.experiments(METHOD, "translation-")
    if not runs:
        raise MissingInput("no qflow runs translation-<s>to<t>")
    share = {e: evidence.value(METHOD, e, "target_class_share") for e in runs}
    bad = [e for e in runs if not share[e] >= TRANSLATION_SHARE]
    worst = min(runs, key=share.get)
    return verdict(not bad, f"{fmt(100 * share[worst], '%')} labelled target ({worst})",
                   f"≥ {fmt(100 * TRANSLATION_SHARE, '%')} on {len(runs)}/{len(runs)} runs",
                   "the label is an MNIST digit classifier's on the decoded latents" + (
                       "; below: " + ", ".join(f"{e} {fmt(100 * share[e], '%')}" for e in bad)
                       if bad else ""))


# --------------------------------------------------------------------------------------- Q5
def _q5(evidence: Evidence) -> Verdict:
    present = [q for q in EBM_MODELS if evidence.has(METHOD, f"ebm-{q}")]
    missing = [q for q in EBM_MODELS if q not in present]
    if not present:
        raise MissingInput("no qflow runs " + ", ".join(f"ebm-{q}" for q in EBM_MODELS))
    lose, ours = [], {}
    for q in present:
        ours[q] = evidence.value(METHOD, f"ebm-{q}", f"{OURS}_bpd")
        for base, name in BASELINES.items():
            theirs = evidence.value(METHOD, f"ebm-{q}", f"{base}_bpd")
            if not ours[q] < theirs:
                lose.append(f"{q}: {fmt(ours[q])} ≥ {name}'s {fmt(theirs)}")
    measured = "; ".join(f"{q} {fmt(ours[q], 'bits/dim')}" for q in present)
    threshold = "below 1 ratio, TRE and DRE-∞ for Q = RQ-NSF, Copula, Gaussian"
    if lose:
        return verdict(False, measured, threshold, "loses: " + "; ".join(lose)
                       + (f"; not run: {', '.join(missing)}" if missing else ""))
    if missing:
        raise MissingInput(f"no qflow runs {', '.join(f'ebm-{q}' for q in missing)} (the paper "
                           f"profile runs one ebm model; 'copula' is not implemented) "
                           f"[{measured} beats 1 ratio and TRE]")
    no_inf = [q for q in present if f"{DRE_INF}_bpd" not in evidence.metrics(METHOD, f"ebm-{q}")]
    if no_inf:
        raise _dre_inf_missing(f"Q-flow-ratio beats 1 ratio and TRE ({measured})")
    worse = [q for q in present if not ours[q] < evidence.value(METHOD, f"ebm-{q}",
                                                                f"{DRE_INF}_bpd")]
    return verdict(not worse, measured, threshold,
                   "loses to DRE-∞ on " + ", ".join(worse) if worse else "")


CLAIMS = [
    Claim("Q-flow", "Q1", "On the GMM pair, Q-flow-ratio's MAE of log r and its max error are "
          "the smallest among 1-ratio, TRE and DRE-∞.", "§4.2, Fig. A.1", "default", _q1),
    Claim("Q-flow", "Q2", "Estimated MI within 10 % of the closed-form MI at every dimension of "
          "the default grid, and closer than 1-ratio and TRE at the largest dimension.",
          "§4.3, Fig. 3", "default", _q2),
    Claim("Q-flow", "Q3", "On every pair, refinement lowers the transport cost below the initial "
          "flow's while the pushed-forward P still matches Q as well (MMD² between pushed-forward "
          "P and Q test samples ≤ 1.1 × the initial flow's).", "Alg. 1", "default", _q3),
    Claim("Q-flow", "Q4", "Latent translation: a classifier trained to tell source latents from "
          "target latents labels ≥ 80 % of the translated source test points as target.", "§4.5",
          "default", _q4),
    Claim("Q-flow", "Q5", "EBM BPD below every baseline for all three Q.", "Table 1", "paper",
          _q5),
]
