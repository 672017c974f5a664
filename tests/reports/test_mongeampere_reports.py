"""Monge-Ampère reports: Table 1 with our run, the matched MAF and the paper's rows labelled
by scale; Fig. 3b titled by digit class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from otflows.reports.mongeampere import figure_mongeampere_flow, table_mongeampere_mnist


def _metrics(tmp_path: Path, name: str, extra: dict) -> Path:
    path = tmp_path / "metrics" / "mongeampere" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": "mongeampere", "experiment": name,
                                "dataset": "mnist5k", "nll_nats": 1700.0,
                                "nll_nats_stderr": 10.0, "bpd": 2.5, "n_parameters": 100608,
                                "train_seconds": 190.0, **extra}))
    return path


def test_table1_rows_are_labelled_by_scale(tmp_path):
    ma = _metrics(tmp_path, "mnist5k", {"width": 128, "nll_nats_half_step": 1701.0})
    maf = _metrics(tmp_path, "maf-mnist5k", {"n_parameters": 101960, "nll_nats": 1690.0})
    md, csv = tmp_path / "t.md", tmp_path / "t.csv"
    table_mongeampere_mnist([ma, maf], md, csv)
    text = md.read_text()
    assert "| MAF | paper: full MNIST (60k) | 1300.5 ± 1.7 |" in text
    assert "| Monge-Ampère flow (ours, h=128) | ours: mnist5k | 1700.0 ± 20.0 | 1701.0 |" in text
    assert "| MAF (ours, zuko, matched parameters) | ours: mnist5k | 1690.0 ± 20.0 | – |" in text
    assert "| 101,960 | 190 |" in text


def test_fig3b_draws_one_titled_column_per_digit(tmp_path):
    frames = np.random.default_rng(0).uniform(size=(3, 10, 16))
    path = tmp_path / "samples" / "mongeampere" / "mnist5k.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, flow_pixels=frames, flow_labels=np.arange(10))
    out = tmp_path / "fig.png"
    figure_mongeampere_flow([path], out)
    assert out.exists() and out.stat().st_size > 0


def test_fig3a_shows_the_curves_the_paper_baselines_and_the_matched_maf(tmp_path, monkeypatch):
    from otflows.reports import mongeampere as reports

    curve = np.array([[1, 7400.0, 4100.0], [2, 3300.0, 2600.0], [3, 1900.0, 1850.0]])
    path = tmp_path / "samples" / "mongeampere" / "mnist5k.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, epoch_curve=curve)
    maf = _metrics(tmp_path, "maf-mnist5k", {"nll_nats": 1690.0})
    figures = []
    monkeypatch.setattr(reports, "save_figure", lambda fig, out: figures.append(fig))
    reports.figure_mongeampere_nll([path, maf], tmp_path / "mongeampere_nll.png")
    ax = figures[0].axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "MAF, ours, matched (1690.0, test)" in labels
    assert sum("paper" in label for label in labels) == 4  # MADE, Real NVP, MAF, ours
    lo, hi = ax.get_ylim()
    assert lo < 1255.5 and 3300.0 <= hi < 4100.0  # baselines and epochs ≥ 2 in view
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
