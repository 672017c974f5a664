"""JKO-Flow on MINIBOONE (Table 3, Figs. 4-5): the runs exist exactly when the raw file does,
absent data is listed as not run, and the table/figure steps work on real run outputs.

The "MINIBOONE" used here is a fixture-sized stand-in (random numbers in the MAF layout):
it proves the plumbing, and no number computed on it is a MINIBOONE result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from otflows.cli.main import main
from otflows.methods.otflow import OTFlowConfig
from otflows.pipeline.config import load_params
from otflows.pipeline.experiments import all_experiments, experiments_not_run

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMA = ROOT / "schemas" / "params.schema.yaml"
REASON = "not run: data/raw/miniboone absent (run `snakemake download_miniboone`)"


def smoke_config() -> dict:
    return load_params([ROOT / "params.yaml", ROOT / "config/smoke.yaml"], SCHEMA)


def place_stand_in(root: Path, rows: int = 400) -> Path:
    path = root / "data/raw/miniboone/data.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.random.default_rng(0).normal(size=(rows, 43)))
    return path


def test_runs_exist_only_with_the_raw_file(tmp_path):
    cfg = load_params([ROOT / "params.yaml"], SCHEMA)
    assert not [e for e in all_experiments(cfg, tmp_path) if e.dataset == "miniboone"]
    missing = [m for m in experiments_not_run(cfg, tmp_path) if m["dataset"] == "miniboone"]
    assert len(missing) == 10 + 1 and {m["reason"] for m in missing} == {REASON}  # + CP-Flow
    assert {(m["method"], m["experiment"]) for m in missing} >= {("otflow", "miniboone-a0.5"),
                                                                  ("jko", "miniboone-a50")}
    place_stand_in(tmp_path)
    runs = [e for e in all_experiments(cfg, tmp_path) if e.dataset == "miniboone"]
    # (CP-Flow's MAF tabular runs are listed on their own: tests/data/test_tabular.py)
    assert [m for m in experiments_not_run(cfg, tmp_path) if m["dataset"] == "miniboone"] == []
    assert [e.key for e in runs if e.method == "cpflow"] == ["cpflow/miniboone"]
    runs = [e for e in runs if e.method != "cpflow"]
    assert len(runs) == 10 and {e.sweep for e in runs} == {"jko_miniboone"}
    for e in runs:
        assert e.data == "data/processed/miniboone.npz"
        OTFlowConfig.from_dict(e.cfg)  # the trainers accept the run config as is
        assert e.cfg["K"] == (1 if e.method == "otflow" else 10)
    toy = all_experiments(cfg, tmp_path)[0]
    assert toy.data == toy.data_path == f"data/processed/toy/{toy.dataset}.npz"
    cfg["data"]["miniboone"]["source"] = "uci"  # the uci source needs its own file
    assert len([m for m in experiments_not_run(cfg, tmp_path)
                if m["dataset"] == "miniboone"]) == 10 + 1


def test_not_run_list(tmp_path):
    out = tmp_path / "not_run.md"
    entries = experiments_not_run(smoke_config(), tmp_path)
    assert main(["not-run", "--entries", json.dumps(entries), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| jko | miniboone-a5 | miniboone | " + REASON + " |" in text
    assert main(["not-run", "--entries", "[]", "--out", str(out)]) == 0
    assert "Every experiment that params asks for was run" in out.read_text()


@pytest.fixture(scope="module")
def stand_in_runs(tmp_path_factory) -> Path:
    """Prepare a stand-in, train and evaluate the smoke profile's MINIBOONE runs via the CLI
    (as the rules do), with results under a temp folder."""
    work = tmp_path_factory.mktemp("mb")
    raw = place_stand_in(work)
    data = work / "data/processed/miniboone.npz"
    assert main(["prepare", "miniboone", "--source", "maf", "--raw", str(raw),
                 "--out", str(data)]) == 0
    for e in [e for e in all_experiments(smoke_config(), work)
              if e.dataset == "miniboone" and e.method in ("otflow", "jko")]:
        ckpt = work / f"results/checkpoints/{e.method}/{e.name}/model.pt"
        common = ["--method", e.method, "--experiment", e.name, "--dataset", e.dataset,
                  "--data", str(data)]
        assert main(["train", *common, "--config", e.cfg_json(), "--out", str(ckpt),
                     "--history", str(work / "h.csv"), "--record", str(work / "r.json"),
                     "--no-progress"]) == 0
        assert main(["evaluate", *common, "--checkpoint", str(ckpt), "--eval-samples", "60",
                     "--out-metrics", str(work / f"results/metrics/{e.method}/{e.name}.json"),
                     "--out-samples",
                     str(work / f"results/samples/{e.method}/{e.name}.npz")]) == 0
    return work / "results"


def test_table_3_with_the_paper_values(stand_in_runs, tmp_path):
    inputs = sorted(map(str, stand_in_runs.glob("samples/*/*.npz")))
    inputs += sorted(map(str, stand_in_runs.glob("metrics/*/*.json")))
    md, csv = tmp_path / "t.md", tmp_path / "t.csv"
    assert main(["table", "jko-miniboone", "--inputs", *inputs, "--out-md", str(md),
                 "--out-csv", str(csv)]) == 0
    text = md.read_text()
    assert "(data: miniboone)" in text and "| 2-D: 16 vs. 17 | JKO-Flow (2 iters) |" in text
    assert "(1.27e-04)" in text and "(5.02e-02)" in text and "(4.71e-04)" in text
    assert "| all, V-statistic | JKO-Flow (2 iters) |" in text
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("dims,method,experiment,dataset,alpha,K,mmd2,mmd2_half")
    assert len(rows) == 1 + 3 * 2


def test_figures_4_and_5(stand_in_runs, tmp_path):
    samples = sorted(stand_in_runs.glob("samples/*/*.npz"))
    assert main(["figure", "miniboone-slices", "--inputs", *map(str, samples), "--out",
                 str(tmp_path / "f4.png")]) == 0
    jko = stand_in_runs / "samples/jko/miniboone-a5.npz"
    with np.load(jko) as d:
        arrays = dict(d)
    # the evaluation saves f(x) of the test split: Figs. 4 and 17-19's middle panels
    assert arrays["forward"].shape == arrays["test"].shape
    rng = np.random.default_rng(0)
    arrays["iterate_samples"] = np.stack([arrays["samples"] + rng.normal(size=arrays[
        "samples"].shape) / k for k in (1, 2)])
    arrays["forward"] = rng.normal(size=arrays["test"].shape)
    full = tmp_path / "jko/miniboone-a5.npz"
    full.parent.mkdir()
    np.savez(full, **arrays)
    for inputs in ([jko, stand_in_runs / "metrics/jko/miniboone-a5.json"], [full]):
        assert main(["figure", "miniboone-iterations", "--inputs", *map(str, inputs),
                     "--out", str(tmp_path / "f5.png")]) == 0
    assert main(["figure", "miniboone-slices", "--inputs", str(full), "--out",
                 str(tmp_path / "f4b.png")]) == 0
    for name in ("f4", "f4b", "f5"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


# ------------------------------------------------------------------------------ the DAG
COPY = ["Snakefile", "rules", "schemas", "config", "params.yaml", "report", "profiles"]


def _planned(work: Path) -> tuple[dict[str, int], str]:
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--configfile", "config/smoke.yaml",
                           "--cores", "1"], cwd=work, capture_output=True, text=True,
                          env={"PATH": f"{BIN}:/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = proc.stdout.split("Job stats:")[1]
    return ({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)},
            proc.stdout)


def test_stand_in_puts_the_miniboone_runs_in_the_dag(tmp_path):
    for name in COPY:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name,
                                                                      tmp_path / name)
    jobs, _ = _planned(tmp_path)
    assert "prepare_miniboone" not in jobs and "table_jko_miniboone" not in jobs
    place_stand_in(tmp_path)
    with_data, out = _planned(tmp_path)
    assert with_data["prepare_miniboone"] == 1 and with_data["table_jko_miniboone"] == 1
    # + 2 JKO-Flow/OT-Flow runs (smoke: one alpha) + 1 CP-Flow Table 1 run; the VAE trains
    # through `train` too but is evaluated by prepare_mnist_latents
    assert with_data["train"] == jobs["train"] + 2 + 1 == with_data["evaluate"] + 1
    assert with_data["figure_jko_miniboone_slices"] == 1
    assert with_data["figure_jko_miniboone_iterations"] == 1
    assert "results/checkpoints/jko/miniboone-a5/model.pt" in out
    assert "results/checkpoints/otflow/miniboone-a5/model.pt" in out
    assert with_data["table_cpflow_miniboone"] == 1 and "table_cpflow_miniboone" not in jobs
    assert "download_miniboone" not in with_data  # a present file is used as is
