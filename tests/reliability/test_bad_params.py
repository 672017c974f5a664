"""The bad-params catalogue (issue 22, item 5): every case gives one line that names the key,
the value and what is allowed, before any job starts.

Before the fix NaN and inf passed `positive_number`, there were no upper bounds, a missing
`seed` was silently filled with 0, duplicate YAML keys kept the last, `1e-3` was rejected
as a string without a word on YAML 1.1, and `device: cuda` without CUDA failed in a job.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otflows.pipeline.config import (
    ParamsError,
    check_device,
    load_params,
    read_yaml,
    validate_params,
)

PROJECT = Path(__file__).resolve().parents[2]
SCHEMA = PROJECT / "schemas" / "params.schema.yaml"
BIN = Path(sys.executable).parent
NAN, INF = math.nan, math.inf


def _set(path: str, value):
    """An edit that sets the dotted key ``path`` (created if absent) to ``value``."""
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            cfg = cfg.setdefault(p, {})
        cfg[last] = value
    return edit


def _del(path: str):
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            cfg = cfg[p]
        del cfg[last]
    return edit


# (edit, text the one error line must hold: the key, the value, what is allowed)
CATALOGUE = [
    (_set("seed", "zero"), ["seed:", "'zero'", "integer"]),
    (_set("seed", -1), ["seed:", "-1", "minimum"]),
    (_set("seed", 2**40), ["seed:", str(2**40), "at most 4294967295"]),
    (_set("seed", 1.5), ["seed:", "1.5", "integer"]),
    (_set("device", "tpu"), ["device:", "'tpu'", "auto", "cpu", "cuda"]),
    (_set("otflow.lr", NAN), ["otflow.lr:", "nan", "finite"]),
    (_set("otflow.lr", INF), ["otflow.lr:", "inf", "finite"]),
    (_set("otflow.lr", 0), ["otflow.lr:", "0", "minimum"]),
    (_set("otflow.lr", -1.0), ["otflow.lr:", "-1.0", "minimum"]),
    (_set("otflow.lr", "1e-3"), ["otflow.lr:", "'1e-3'", "YAML 1.1", "1.0e-3"]),
    (_set("otflow.iters", "1.0e6"), ["otflow.iters:", "'1.0e6'", "YAML 1.1", "1.0e+6"]),
    (_set("otflow.batch_size", 10**10), ["otflow.batch_size:", "10000000000", "at most"]),
    (_set("otflow.batch_size", 0), ["otflow.batch_size:", "0", "minimum"]),
    (_set("otflow.nt", 10**8), ["otflow.nt:", "100000000", "at most 10000000: a count"]),
    (_set("otflow.width", 2.5), ["otflow.width:", "2.5", "integer"]),
    (_set("otflow.alpha_R", -0.5), ["otflow.alpha_R:", "-0.5", "minimum"]),
    (_set("otflow.alpha_L", INF), ["otflow.alpha_L:", "inf", "finite"]),
    (_set("otflow.weight_decay", NAN), ["otflow.weight_decay:", "nan", "finite"]),
    (_set("otflow.widht", 3), ["otflow.widht:", "unknown key", "width"]),
    (_set("realnvp", {}), ["realnvp:", "unknown key", "otflow"]),
    (_set("jko.K", 0), ["jko.K:", "0", "minimum"]),
    (_set("jko.alphas", [5, NAN]), ["jko.alphas[1]:", "nan", "finite"]),
    (_set("jko.datasets", ["moons", "mnist"]), ["jko.datasets[1]:", "'mnist'", "checkerboard"]),
    (_set("data.toy.n_test", 1), ["data.toy.n_test:", "1", "minimum of 2"]),
    (_set("data.toy.n_train", True), ["data.toy.n_train:", "True", "integer"]),
    (_set("data.mnist.logit_lambda", 0.5), ["data.mnist.logit_lambda:", "0.5", "below 0.5"]),
    (_set("tracking.experiment", "x; rm -rf /"), ["tracking.experiment:", "'x; rm -rf /'",
                                                  "letters, digits"]),
    (_set("tracking.uri", "sqlite:///a.db`id`"), ["tracking.uri:", "`id`", "must match"]),
    (_del("seed"), ["seed: missing", "add it to params.yaml"]),
    (_del("otflow"), ["otflow: missing", "add it to params.yaml"]),
    (_set("run.checkpoint_every", 0), ["run.checkpoint_every:", "0", "minimum"]),
    (_set("run.forkserver", "yes"), ["run.forkserver:", "'yes'", "boolean"]),
    (_set("mongeampere.ising.L", 1000), ["mongeampere.ising.L:", "1000", "at most 64"]),
    (_set("jko.benchmark_alpha", 7), ["jko.benchmark_alpha:", "7", "jko.alphas"]),
    (_set("qflow.translation.target", 3), ["qflow.translation.target:", "3", "source"]),
    (_set("data.mnist.n_validation", 4600), ["data.mnist.n_validation + n_test", "5100",
                                             "below 5000"]),
    (_set("run.max_nll_per_dim", -1), ["run.max_nll_per_dim:", "-1", "minimum"]),
]


@pytest.fixture(scope="module")
def base() -> dict:
    return read_yaml(PROJECT / "params.yaml")


@pytest.mark.parametrize(("edit", "expected"), CATALOGUE,
                         ids=[f"{i:02d}-{e[1][0]}" for i, e in enumerate(CATALOGUE)])
def test_bad_params_give_one_clear_line(base, edit, expected):
    cfg = copy.deepcopy(base)
    edit(cfg)
    with pytest.raises(ParamsError) as err:
        validate_params(cfg, SCHEMA)
    text = str(err.value)
    assert "(1 problem(s))" in text, text
    line = text.splitlines()[1]
    for part in expected:
        assert part in line, f"{part!r} not in {line!r}"


def test_the_catalogue_is_large():
    assert len(CATALOGUE) + 3 >= 30  # + duplicate key, YAML file spelling, CUDA below


def test_duplicate_yaml_key_is_named(tmp_path):
    path = tmp_path / "override.yaml"
    path.write_text("otflow:\n  lr: 0.1\n  iters: 5\n  lr: 0.2\n")
    with pytest.raises(ParamsError, match=r"override\.yaml:4: key 'lr' appears twice.*line 2"):
        load_params([PROJECT / "params.yaml", path], SCHEMA)


def test_yaml11_float_spelling_is_explained(tmp_path):
    path = tmp_path / "override.yaml"
    path.write_text("otflow:\n  lr: 1e-2\n")
    with pytest.raises(ParamsError, match=r"otflow\.lr: '1e-2' is a string.*write 1\.0e-2"):
        load_params([PROJECT / "params.yaml", path], SCHEMA)
    path.write_text("otflow:\n  lr: 1.0e-2\n")  # the spelling it recommends is a float
    assert load_params([PROJECT / "params.yaml", path], SCHEMA)["otflow"]["lr"] == 0.01


def test_cuda_without_cuda_is_refused_before_any_job():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParamsError, match=r"device: 'cuda' is not available.*use auto"):
        check_device({"device": "cuda"})
    check_device({"device": "auto"})


def test_every_profile_still_validates():
    for extra in ([], ["config/smoke.yaml"], ["config/paper.yaml"],
                  ["config/smoke.yaml", "config/gpu-slice.yaml"]):
        load_params([PROJECT / "params.yaml", *(PROJECT / e for e in extra)], SCHEMA)


@pytest.mark.parametrize(("override", "expected"), [
    ("otflow:\n  lr: .nan\n", "otflow.lr: nan is not allowed (numbers must be finite)"),
    ("otflow:\n  lr: 0.1\n  lr: 0.2\n", "key 'lr' appears twice"),
    ("otflow:\n  iters: 2000000\n  batch_size: 100000\n",
     "> run.max_job_hours 168"),
])
def test_snakemake_stops_before_any_job(project_copy, override, expected):
    """Through Snakemake itself (a dry run): the one line, exit status 1, no job listed."""
    (project_copy / "bad.yaml").write_text(override)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(PROJECT / "src")}
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "1", "--configfile",
                           "bad.yaml"], cwd=project_copy, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert expected in out, out[-2000:]
    assert "Job stats" not in out and "Traceback" not in out, out[-2000:]
