"""JKO-Flow figures and tables (issue 17): Fig. 2's density panels cover only what the density
grid covers (no white strip) and show log ρ̂ with a colour bar; Table 2 marks the paper's moons
row as the copy of its 2 Spirals row; every MINIBOONE α gets its slices figure (Figs. 4,
17-19); OT-Flow's evaluation saves the forward flow f(x) those figures show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from otflows.methods.otflow import OTFlowConfig, OTFlowTrainer
from otflows.pipeline.config import load_params
from otflows.pipeline.experiments import Experiment
from otflows.reports.catalog import catalog
from otflows.reports.jko import table_jko_width
from otflows.reports.jko_density import DENSITY_LOG_RANGE, figure_density

ROOT = Path(__file__).resolve().parents[2]


def _density_run(path: Path, seed: int) -> Path:
    """A samples file whose test data reach beyond the density grid on the left (x < -2)."""
    rng = np.random.default_rng(seed)
    test = rng.normal(size=(500, 2)) * [2.0, 1.0]
    gx, gy = np.meshgrid(np.linspace(-2, 4, 30), np.linspace(-3, 3, 30))
    logp = -0.5 * (gx**2 + gy**2) - 50.0 * (gx > 3)  # a very low corner, to be clipped
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, test=test, samples=rng.normal(size=(400, 2)), grid_x=gx, grid_y=gy,
             grid_logp=logp)
    return path


def test_density_panels_stay_inside_the_grid_and_clip_log_density(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    inputs = [_density_run(tmp_path / f"jko/alpha-{n}-a5.npz", i)
              for i, n in enumerate(("moons", "pinwheel"))]
    drawn = {}
    close = plt.close

    def keep(fig):
        drawn["fig"] = fig
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    figure_density(inputs, tmp_path / "density.png")
    assert (tmp_path / "density.png").stat().st_size > 1000
    fig = drawn["fig"]
    axes = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    for ax in axes:
        if ax.collections or ax.images:
            x0, x1 = ax.get_xlim()
            assert x0 >= -2.0 - 1e-9  # the grid starts at x = -2: no strip without density
    meshes = [c for a in axes for c in a.collections if c.get_array() is not None
              and c.norm.vmax - c.norm.vmin == DENSITY_LOG_RANGE]
    assert len(meshes) == 2  # one clipped log-density panel per dataset
    assert sum(a.get_label() == "<colorbar>" for a in fig.axes) == 2
    assert [a.get_title() for a in axes if a.get_title()] == ["moons", "pinwheel"]


def _metrics(path: Path, method: str, ds: str, width: int, mmd2: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": method, "experiment": f"width-{ds}-m{width}",
                                "dataset": ds, "width": width, "alpha": 5.0,
                                "K": 1 if method == "otflow" else 5, "mmd2": mmd2,
                                "mmd2_half": mmd2, "nll_nats": 1.0, "train_seconds": 1.0}))
    return str(path)


def test_table_2_marks_the_papers_copied_moons_row(tmp_path):
    inputs = [_metrics(tmp_path / f"{m}/width-{ds}-m{w}.json", m, ds, w, 1e-3)
              for m in ("otflow", "jko") for ds in ("moons", "2spirals") for w in (3, 16)]
    md, csv = tmp_path / "t2.md", tmp_path / "t2.csv"
    table_jko_width([Path(p) for p in inputs], md, csv)
    text = md.read_text()
    assert "† The paper prints its moons row as a copy of its 2spirals row" in text
    moons = [line for line in text.splitlines() if line.startswith("| moons |")]
    spirals = [line for line in text.splitlines() if line.startswith("| 2spirals |")]
    assert len(moons) == 2 and all("(4.98e-03†)" in line or "(1.42e-03†)" in line
                                   for line in moons)
    assert not any("†" in line for line in spirals)
    rows = csv.read_text().splitlines()
    assert "paper_note" in rows[0]
    assert sum("copy of its 2spirals row" in r for r in rows) == 4


def test_every_miniboone_alpha_gets_a_slices_figure():
    cfg = load_params([ROOT / "params.yaml"], ROOT / "schemas/params.schema.yaml")
    section = cfg["jko_miniboone"]
    runs = [Experiment(m, f"miniboone-a{a:g}", "miniboone", "jko_miniboone",
                       {"alpha": float(a), "K": k}, 10, data_path="data/processed/miniboone.npz")
            for a in section["alphas"] for m, k in (("otflow", 1), ("jko", section["K"]))]
    stems = {r.stem: r for r in catalog(cfg, runs) if r.builder == "miniboone-slices"}
    # Fig. 4 at figure_alpha = 5; Figs. 17-19 at alpha = 1, 10, 50 (and 0.5, Table 3's)
    assert set(stems) == {"jko_miniboone_slices", "jko_miniboone_slices_a0p5",
                          "jko_miniboone_slices_a1", "jko_miniboone_slices_a10",
                          "jko_miniboone_slices_a50"}
    assert stems["jko_miniboone_slices_a10"].inputs == (
        "results/samples/otflow/miniboone-a10.npz", "results/samples/jko/miniboone-a10.npz")


def test_evaluation_saves_the_forward_flow(tmp_path):
    cfg = {"width": 4, "n_layers": 2, "rank": 3, "nt": 2, "nt_eval": 2, "alpha": 5.0,
           "alpha_L": 1.0, "alpha_R": 0.5, "lr": 0.01, "weight_decay": 0.0, "batch_size": 16,
           "iters": 1, "K": 1, "dtype": "float64"}
    rng = np.random.default_rng(0)
    trainer = OTFlowTrainer(OTFlowConfig.from_dict(cfg), rng.normal(size=(40, 3)), 0,
                            torch.device("cpu"))
    test = rng.normal(size=(30, 3))
    ev = trainer.evaluate(test, 20, 0)
    assert ev.extras["forward"].shape == (30, 3) and ev.extras["forward"].dtype == np.float64
    np.testing.assert_allclose(ev.extras["forward"], trainer.forward_map(test))
