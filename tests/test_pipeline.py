"""The smoke profile end to end, in a temporary copy of the project (a git repo of its own).

Checks: every output exists and its metrics are finite; a second run has nothing to do; a
comment edit reruns nothing; a change to the `jko` section reruns only JKO jobs; every run
is in MLflow; the HTML report builds; after `dvc checkout` the way back to "nothing to do"
is `snakemake --touch`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY = ["Snakefile", "rules", "src", "schemas", "config", "params.yaml", "report", "profiles",
        "dvc.yaml", ".dvc", ".dvcignore", ".gitignore", "data/raw/.gitkeep"]
SMOKE = ["--configfile", "config/smoke.yaml"]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "snakemake"), *SMOKE, "--cores", "2", *args], cwd, check)


def planned_jobs(cwd: Path, *args: str) -> dict[str, int]:
    """Job counts by rule of a dry run ({} when there is nothing to do)."""
    out = snakemake(cwd, "-n", *args).stdout
    if "Nothing to be done" in out:
        return {}
    stats = out.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m.group(1) != "total"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pipeline")
    for name in COPY:
        src = ROOT / name
        if not src.exists():
            continue
        dst = work / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    run(["git", "init", "-q"], work)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], work)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], work)
    snakemake(work)
    return work


def test_outputs_exist_and_metrics_are_finite(project: Path):
    summary = json.loads((project / "results/metrics/summary.json").read_text())
    assert set(summary) == {"otflow", "jko", "vae", "ekp", "mongeampere", "qflow", "cpflow"}
    assert math.isfinite(summary["vae"]["mnist5k"]["neg_elbo_nats"])
    assert len(summary["otflow"]) == len(summary["jko"]) == 6
    for method in ("otflow", "jko"):
        for exp, metrics in summary[method].items():
            for key in ("mmd2", "mmd2_half", "nll_nats", "transport_cost", "train_seconds"):
                assert math.isfinite(metrics[key]), (method, exp, key)
    assert set(summary["ekp"]) == {"toy-8gaussians", "toy-moons"}
    for exp, metrics in summary["ekp"].items():
        for key in ("mmd2", "mmd2_half", "nll_nats", "nll_closed_form_nats", "transport_cost",
                    "dual_objective", "constraint_residual"):
            assert math.isfinite(metrics[key]), ("ekp", exp, key)
    ma = summary["mongeampere"]
    assert {"toy-8gaussians", "toy-moons", "mnist5k", "ising-L4"} <= set(ma)  # + baselines
    for exp in ("toy-8gaussians", "toy-moons"):
        for key in ("mmd2", "mmd2_half", "nll_nats", "transport_cost", "inversion_error"):
            assert math.isfinite(ma[exp][key]), ("mongeampere", exp, key)
    assert math.isfinite(ma["mnist5k"]["nll_nats"]) and math.isfinite(ma["mnist5k"]["bpd"])
    for key in ("L", "coupling", "offset", "exact_free_energy", "variational_free_energy",
                "relative_error"):
        assert math.isfinite(ma["ising-L4"][key]), ("mongeampere", "ising-L4", key)
    assert "| MAF | paper: full MNIST (60k) | 1300.5" in (
        project / "results/tables/mongeampere_mnist.md"
    ).read_text()
    assert "ising-L4" in (project / "results/tables/mongeampere_ising.md").read_text()
    one = json.loads((project / "results/metrics/jko/alpha-moons-a5.json").read_text())
    for key in ("method", "experiment", "dataset", "seed", "device", "train_seconds",
                "n_parameters", "mmd2", "mmd2_half", "nll_nats"):
        assert key in one
    with np.load(project / "results/samples/jko/alpha-moons-a5.npz") as s:
        assert s["samples"].dtype == np.float64 and s["samples"].shape == (200, 2)
        assert s["test"].shape == (200, 2) and "grid_logp" in s
    for name in ("jko_alpha", "jko_width", "toy_benchmark"):
        text = (project / f"results/tables/{name}.md").read_text()
        assert "moons" in text and "8gaussians" in text
    assert "(4.65e-05)" in (project / "results/tables/jko_alpha.md").read_text()  # paper value
    for fig in ("toy_datasets", "jko_alpha_moons", "jko_width_8gaussians", "jko_density",
                "vae_mnist5k", "ekp_densities", "ekp_field", "ekp_interpolation",
                "ekp_training", "mongeampere_nll", "mongeampere_flow", "mongeampere_ising",
                "mongeampere_spins", "mongeampere_toys"):
        assert (project / f"results/figures/{fig}.png").stat().st_size > 1000
        assert (project / f"results/figures/{fig}.svg").exists()
    cp = summary["cpflow"]
    assert set(cp) == {"toy-8gaussians", "toy-moons", "fig3-maf-moons", "fig3-naf-moons",
                       "coupling-d2-cpflow", "coupling-d2-linear_iaf", "mnist5k",
                       "vae-cpflow-mnist5k", "vae-gaussian-mnist5k"}
    for key in ("mmd2", "nll_nats", "transport_cost", "inversion_error", "roundtrip_error"):
        assert math.isfinite(cp["toy-moons"][key]), ("cpflow", key)
    assert math.isfinite(cp["coupling-d2-cpflow"]["transport_gap"])
    assert math.isfinite(cp["mnist5k"]["bpd"]) and math.isfinite(
        cp["vae-cpflow-mnist5k"]["neg_elbo_nats"])
    cp_mnist = (project / "results/tables/cpflow_mnist.md").read_text()
    assert "| CP-Flow (paper) | MNIST | 1.020" in cp_mnist
    for fig in ("cpflow_toys", "cpflow_fig3", "cpflow_coupling"):
        assert (project / f"results/figures/{fig}.png").stat().st_size > 1000
    assert "cpflow" in (project / "results/tables/toy_benchmark.md").read_text()
    not_run = (project / "results/tables/not_run.md").read_text()
    assert "| cpflow | miniboone | miniboone | not run: data/raw/miniboone absent" in not_run
    assert "| jko | miniboone-a5 | miniboone | not run: data/raw/miniboone absent" in not_run
    with np.load(project / "data/processed/mnist5k_latents.npz") as z:
        assert z["train"].shape == (4000, 16) and z["test_labels"].shape == (500,)
    history = (project / "results/plots/jko/alpha-moons-a5.csv").read_text().splitlines()
    assert history[0].startswith("step,") and len(history) > 3
    assert not list(project.glob("results/checkpoints/*/*/resume.pt"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux-only")
def test_every_job_was_forked_by_the_run_s_fork_server(project: Path):
    jobs = [json.loads(x)["argv"][1:3]
            for x in (project / ".snakemake/forkserver.jsonl").read_text().splitlines()]
    log = sorted((project / ".snakemake/log").glob("*.snakemake.log"))[0].read_text()
    stats = log.split("Job stats:")[1].split("Select jobs")[0]
    trained = sum(int(n) for n in re.findall(r"^train\w*\s+(\d+)$", stats, re.M))
    assert sum(j[0] == "train" for j in jobs) == trained > 20


def test_second_run_has_nothing_to_do(project: Path):
    assert planned_jobs(project) == {}


def test_comment_edit_reruns_nothing(project: Path):
    params = project / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("seed: 0", "seed: 0   # an edited comment"))
    try:
        assert planned_jobs(project) == {}
    finally:
        params.write_text(original)


def test_jko_edit_reruns_only_jko_jobs(project: Path):
    extra = project / "config" / "edit.yaml"
    extra.write_text("jko:\n  K: 3\n")
    jobs = planned_jobs(project, "--configfile", "config/smoke.yaml", "config/edit.yaml")
    out = snakemake(project, "-n", "--configfile", "config/smoke.yaml", "config/edit.yaml").stdout
    trained = re.findall(r"output: results/checkpoints/(\w+)/", out)
    assert jobs["train"] == 6 and set(trained) == {"jko"}
    assert "prepare_toy" not in jobs and "figure_toy_datasets" not in jobs


def test_every_run_is_in_mlflow(project: Path):
    from mlflow.tracking import MlflowClient

    manifest = json.loads((project / "results/tracking/mlflow_runs.json").read_text())
    # one run per training record (12 OT-Flow/JKO runs, the MNIST VAE, 2 EKP, the
    # Monge-Ampère, CP-Flow and Q-flow runs), each FINISHED, none twice
    records = list((project / "results/records").rglob("*.json"))
    assert len(manifest) == len(records) >= 19 + 9 + 4
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("otflows")
    found = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(found) == len(manifest) and {r.info.status for r in found} == {"FINISHED"}
    run = client.get_run(manifest["jko/alpha-moons-a5"])
    for tag in ("git_commit", "method", "experiment", "dataset", "rule", "config_hash",
                "device"):
        assert run.data.tags[f"otflows.{tag}"]
    assert "mmd2" in run.data.metrics and run.data.params["K"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "loss")) > 3


def test_html_report_builds(project: Path):
    snakemake(project, "--report", "results/report.html")
    html = (project / "results/report.html").read_text(errors="replace")
    assert "jko_alpha_moons.png" in html


def test_dvc_checkout_then_touch_means_nothing_to_do(project: Path):
    dvc = str(BIN / "dvc")
    run([dvc, "commit", "-f", "reproduce"], project)
    shutil.rmtree(project / "data" / "processed")
    run([dvc, "checkout", "--force"], project)
    assert (project / "data/processed/toy/moons.npz").exists()
    snakemake(project, "--touch")
    assert planned_jobs(project) == {}


def test_qflow_outputs(project: Path):
    qf = json.loads((project / "results/metrics/summary.json").read_text())["qflow"]
    assert set(qf) == {"toy-moons", "gmm", "moons-checkerboard", "mi-d8"}  # no translation
    for exp, metrics in qf.items():
        for key in ("transport_cost", "transport_cost_reverse", "inversion_error"):
            assert math.isfinite(metrics[key]), ("qflow", exp, key)
    assert math.isfinite(qf["toy-moons"]["nll_nats"]) and math.isfinite(qf["toy-moons"]["mmd2"])
    for key in ("qflow_ratio_mae", "one_ratio_mae", "tre_linear_mae", "tre_qflow_mae"):
        assert math.isfinite(qf["gmm"][key])
    assert qf["mi-d8"]["mi_true"] == 2.0 and math.isfinite(qf["mi-d8"]["qflow_ratio_mi"])
    assert "| qflow | toy-moons |" in (project / "results/tables/toy_benchmark.md").read_text()
    for fig in ("qflow_gmm", "qflow_toys", "qflow_mi"):
        assert (project / f"results/figures/{fig}.png").stat().st_size > 1000
    for table in ("qflow_gmm", "qflow_mi", "qflow_transport"):
        assert (project / f"results/tables/{table}.md").exists()
