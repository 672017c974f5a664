"""EKP (E1–E3) and Q-flow (Q1–Q5) claims on fabricated metrics and tiny samples files."""

from __future__ import annotations

import math

import numpy as np
import pytest

import otflows.methods.ekp as ekp_methods
from otflows.data.toy import TOY_DATASETS, sample_toy
from otflows.reports.claims import ekp, qflow
from otflows.reports.claims.base import NOT_REPRODUCED, NOT_RUN, REPRODUCED, SCOPES, Evidence


def _by_id(module):
    return {c.id: c for c in module.CLAIMS}


def _judge(module, cid, evidence):
    return _by_id(module)[cid].judge(evidence)


def test_ids_scopes_unique():
    e, q = _by_id(ekp), _by_id(qflow)
    assert [c.id for c in ekp.CLAIMS] == ["E1", "E2", "E3", "E4"]
    assert [c.id for c in qflow.CLAIMS] == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert {c.paper for c in ekp.CLAIMS} == {"EKP"}
    assert {c.paper for c in qflow.CLAIMS} == {"Q-flow"}
    assert all(c.scope in SCOPES for c in [*ekp.CLAIMS, *qflow.CLAIMS])
    assert [e[i].scope for i in ("E1", "E2", "E3", "E4")] == ["default"] * 4
    assert [q[i].scope for i in ("Q1", "Q2", "Q3", "Q4", "Q5")] == ["default"] * 4 + ["paper"]
    ids = [c.id for c in [*ekp.CLAIMS, *qflow.CLAIMS]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------------------ EKP
def test_e1_closed_form_against_sinkhorn():
    v = _judge(ekp, "E1", Evidence({}))
    assert v.status == REPRODUCED, v
    assert "relative error" in v.measured and "geodesic" in v.note


def test_e1_wrong_closed_form_is_not_reproduced(monkeypatch):
    # The W₂ geodesic (ε → 0) in place of the entropic closed form must be caught.
    monkeypatch.setattr(ekp_methods, "entropic_interpolation_covariance",
                        lambda s0, s1, t, eps: ekp_methods.w2_geodesic_covariance(s0, s1, t))
    assert _judge(ekp, "E1", Evidence({})).status == NOT_REPRODUCED


def test_e1_without_closed_form_is_not_run(monkeypatch):
    monkeypatch.delattr(ekp_methods, "entropic_interpolation_covariance")
    v = _judge(ekp, "E1", Evidence({}))
    assert v.status == NOT_RUN and "closed-form" in v.note and "issue 19" in v.note


def test_checkerboard_cells_are_the_eight_of_the_sampler():
    cells = ekp.checkerboard_cells()
    assert len(cells) == 8
    assert all((i + j) % 2 == 0 for i, j in cells)
    x = sample_toy("checkerboard", 500, np.random.default_rng(5))
    assert ekp.checkerboard_cell_share(x, cells) == 1.0
    assert ekp.checkerboard_cell_share(np.array([[5.0, 0.0], [np.nan, 0.0]]), cells) == 0.0


def _ekp_evidence(tmp_path, mmd=1e-3, share_ok=True, nll=(3.47, 3.48), drop=(),
                  with_samples=True):
    metrics, samples = {}, {}
    for d in TOY_DATASETS:
        if d in drop:
            continue
        metrics[("ekp", f"toy-{d}")] = {"mmd2": mmd, "nll_nats": nll[0],
                                        "nll_closed_form_nats": nll[1]}
    if "checkerboard" not in drop and with_samples:
        rng = np.random.default_rng(0)
        good = sample_toy("checkerboard", 200, rng)
        # share_ok False: every sample in the empty square (0, 1) ((i + j) odd)
        pts = good if share_ok else np.column_stack([rng.uniform(-4, -2, 200),
                                                    rng.uniform(-2, 0, 200)])
        path = tmp_path / "toy-checkerboard.npz"
        np.savez(path, samples=pts, test=good)
        samples[("ekp", "toy-checkerboard")] = path
    return Evidence(metrics, samples)


def test_e2(tmp_path):
    assert _judge(ekp, "E2", _ekp_evidence(tmp_path)).status == REPRODUCED
    v = _judge(ekp, "E2", _ekp_evidence(tmp_path, share_ok=False))
    assert v.status == NOT_REPRODUCED and "0 %" in v.measured
    v = _judge(ekp, "E2", _ekp_evidence(tmp_path, mmd=3e-3))
    assert v.status == NOT_REPRODUCED and "0/8 toys" in v.measured and "worst" in v.note
    v = _judge(ekp, "E2", _ekp_evidence(tmp_path, drop=("pinwheel",)))
    assert v.status == NOT_RUN and "toy-pinwheel" in v.note and "snakemake" in v.note
    # A failing toy decides even when another is missing.
    v = _judge(ekp, "E2", _ekp_evidence(tmp_path, mmd=3e-3, drop=("pinwheel",)))
    assert v.status == NOT_REPRODUCED and "pinwheel" in v.note
    # The checkerboard's samples file is an input too.
    v = _judge(ekp, "E2", _ekp_evidence(tmp_path, with_samples=False))
    assert v.status == NOT_RUN and "samples file" in v.note


def test_e3(tmp_path):
    v = _judge(ekp, "E3", _ekp_evidence(tmp_path))
    assert v.status == REPRODUCED and "8/8" in v.measured
    v = _judge(ekp, "E3", _ekp_evidence(tmp_path, nll=(3.47, 3.7)))
    assert v.status == NOT_REPRODUCED and "disagree" in v.note
    # The case: a checkerboard NLL below the data's entropy ln 32.
    v = _judge(ekp, "E3", _ekp_evidence(tmp_path, nll=(2.879, 2.9)))
    assert v.status == NOT_REPRODUCED and "2.879 nats" in v.measured and "entropy" in v.note
    assert math.log(32) - 0.02 == pytest.approx(ekp.E3_ENTROPY)
    ev = Evidence({("ekp", f"toy-{d}"): {"nll_nats": 3.5, "mmd2": 0.0} for d in TOY_DATASETS})
    v = _judge(ekp, "E3", ev)
    assert v.status == NOT_RUN and "nll_closed_form_nats" in v.note
    v = _judge(ekp, "E3", _ekp_evidence(tmp_path, drop=("rings",)))
    assert v.status == NOT_RUN and "toy-rings" in v.note


def test_e4():
    def ev(inside=0.99, outside=0.008, quad=0.002, drop=()):
        return Evidence({("ekp", f"toy-{d}"): {"density_mass": inside,
                                               "samples_outside_mass_box": outside,
                                               "density_mass_error": quad}
                         for d in TOY_DATASETS if d not in drop})

    v = _judge(ekp, "E4", ev())
    assert v.status == REPRODUCED and "8/8" in v.measured
    # The ReLU model of issue 19: its CNF density integrated to 6.56.
    v = _judge(ekp, "E4", ev(inside=6.56, outside=0.0))
    assert v.status == NOT_REPRODUCED and "0/8" in v.measured and "6.5600" in v.note
    v = _judge(ekp, "E4", ev(inside=0.97, outside=0.0))
    assert v.status == NOT_REPRODUCED
    # A mass of 1 on a grid that does not resolve the density to 1 % decides nothing.
    v = _judge(ekp, "E4", ev(quad=0.02))
    assert v.status == NOT_REPRODUCED and "too coarse" in v.note and "±0.0200" in v.note
    v = _judge(ekp, "E4", ev(drop=("moons",)))
    assert v.status == NOT_RUN and "toy-moons" in v.note
    v = _judge(ekp, "E4", Evidence({("ekp", f"toy-{d}"): {"density_mass": 1.0}
                                    for d in TOY_DATASETS}))
    assert v.status == NOT_RUN and "samples_outside_mass_box" in v.note
    v = _judge(ekp, "E4", Evidence({("ekp", f"toy-{d}"): {"density_mass": 1.0,
                                                          "samples_outside_mass_box": 0.0}
                                    for d in TOY_DATASETS}))
    assert v.status == NOT_RUN and "density_mass_error" in v.note


# --------------------------------------------------------------------------------- Q-flow
def _gmm(ours=(0.1, 1.0), one=(0.5, 4.0), tre=(0.4, 2.0), inf=None):
    m = {"qflow_ratio_mae": ours[0], "qflow_ratio_max_error": ours[1],
         "one_ratio_mae": one[0], "one_ratio_max_error": one[1],
         "tre_linear_mae": tre[0], "tre_linear_max_error": tre[1],
         "tre_qflow_mae": 0.01, "tre_qflow_max_error": 0.01}
    if inf is not None:
        m.update(dre_inf_mae=inf[0], dre_inf_max_error=inf[1])
    return Evidence({("qflow", "gmm"): m})


def test_q1():
    assert _judge(qflow, "Q1", _gmm(inf=(0.3, 3.0))).status == REPRODUCED
    v = _judge(qflow, "Q1", _gmm(ours=(0.8, 5.5)))  # the default run's numbers, roughly
    assert v.status == NOT_REPRODUCED and "TRE" in v.note and "issue 20" in v.note
    assert _judge(qflow, "Q1", _gmm(inf=(0.05, 3.0))).status == NOT_REPRODUCED
    v = _judge(qflow, "Q1", _gmm())  # beats what exists; DRE-∞ missing
    assert v.status == NOT_RUN and "DRE-∞" in v.note and "issue 20" in v.note
    v = _judge(qflow, "Q1", Evidence({}))
    assert v.status == NOT_RUN and "qflow/gmm" in v.note


def _mi(rows):
    """rows: {d: (ours, one, tre)} with mi_true = d / 4."""
    return Evidence({("qflow", f"mi-d{d}"): {"mi_true": d / 4, "qflow_ratio_mi": o,
                                             "one_ratio_mi": a, "tre_linear_mi": b}
                     for d, (o, a, b) in rows.items()})


def test_q2():
    good = {40: (10.5, 8.0, 9.0), 80: (19.0, 10.0, 17.0), 320: (86.0, 9.7, 31.0)}
    assert _judge(qflow, "Q2", _mi(good)).status == REPRODUCED
    v = _judge(qflow, "Q2", _mi({**good, 80: (32.5, 10.0, 17.0)}))  # 62 % off at d = 80
    assert v.status == NOT_REPRODUCED and "d = 80" in v.note
    v = _judge(qflow, "Q2", _mi({**good, 320: (86.0, 9.7, 81.0)}))  # TRE closer at d = 320
    assert v.status == NOT_REPRODUCED and "TRE" in v.note and "d = 320" in v.note
    v = _judge(qflow, "Q2", Evidence({}))
    assert v.status == NOT_RUN and "mi-d" in v.note


def _pairs(cost=(1.0, 2.0), mmd=None, drop=()):
    names = ["gmm", "moons-checkerboard", "mi-d40", "translation-3to8", "toy-moons"]
    out = {}
    for n in names:
        if n in drop:
            continue
        m = {"transport_cost": cost[0], "transport_cost_initial": cost[1], "mmd2": 1e-3,
             qflow.FINAL_MMD_KEY: 1e-3}
        if mmd is not None:
            m[qflow.INITIAL_MMD_KEY] = mmd
        out[("qflow", n)] = m
    return Evidence(out)


def test_q3():
    assert _judge(qflow, "Q3", _pairs(mmd=1e-3)).status == REPRODUCED
    v = _judge(qflow, "Q3", _pairs(mmd=5e-4))
    assert v.status == NOT_REPRODUCED and "MMD² rose" in v.note
    v = _judge(qflow, "Q3", _pairs(cost=(13.49, 13.29)))
    assert v.status == NOT_REPRODUCED and "cost rose" in v.note and "0/5 pairs" in v.measured
    v = _judge(qflow, "Q3", _pairs())  # costs fine, the initial flow's MMD² not recorded
    assert v.status == NOT_RUN and qflow.INITIAL_MMD_KEY in v.note and "issue 20" in v.note
    v = _judge(qflow, "Q3", _pairs(mmd=1e-3, drop=("translation-3to8",)))
    assert v.status == NOT_RUN and "translation-*" in v.note


def test_q4():
    ev = lambda s: Evidence({("qflow", "translation-3to8"): {"target_class_share": s}})  # noqa: E731
    v = _judge(qflow, "Q4", ev(0.86))
    assert v.status == REPRODUCED and "86 %" in v.measured
    v = _judge(qflow, "Q4", ev(0.5))
    assert v.status == NOT_REPRODUCED and "translation-3to8" in v.note
    v = _judge(qflow, "Q4", Evidence({("qflow", "gmm"): {}}))
    assert v.status == NOT_RUN and "translation" in v.note


def _ebm(models=qflow.EBM_MODELS, ours=1.0, inf=1.1):
    out = {}
    for q in models:
        m = {"qflow_ratio_bpd": ours, "one_ratio_bpd": 1.09, "tre_linear_bpd": 1.09}
        if inf is not None:
            m["dre_inf_bpd"] = inf
        out[("qflow", f"ebm-{q}")] = m
    return Evidence(out)


def test_q5():
    assert _judge(qflow, "Q5", _ebm()).status == REPRODUCED
    v = _judge(qflow, "Q5", _ebm(ours=1.2, models=("nsf",)))
    assert v.status == NOT_REPRODUCED and "nsf" in v.note
    v = _judge(qflow, "Q5", _ebm(inf=0.9))
    assert v.status == NOT_REPRODUCED and "DRE-∞" in v.note
    v = _judge(qflow, "Q5", _ebm(models=("nsf",)))
    assert v.status == NOT_RUN and "ebm-copula" in v.note and "paper" in v.note
    v = _judge(qflow, "Q5", _ebm(inf=None))
    assert v.status == NOT_RUN and "DRE-∞" in v.note
    v = _judge(qflow, "Q5", Evidence({}))
    assert v.status == NOT_RUN and "ebm-nsf" in v.note
