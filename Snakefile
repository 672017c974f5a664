# otflows: one pipeline for five optimal-transport normalizing-flow papers.
# Rules are thin calls into the `otflows` CLI; params.yaml is the one source of settings.
import gc
import os
import sys
from pathlib import Path

# Snakemake has imported some 1,100 modules by now (pandas and SQLAlchemy among them). Their
# objects live as long as the process, so take them out of the cyclic collector's reach:
# otherwise every full collection, and the one at interpreter exit, walks them all, which
# was 0.3-0.4 s of a 1.7-1.9 s no-op `snakemake -n` (benchmarks/snakemake_speed.py noop).
# Building the DAG allocates many short-lived objects: collect them less often until the
# run starts (onstart restores the thresholds), another 0.05-0.1 s.
GC_THRESHOLDS = gc.get_threshold()
gc.freeze()
gc.set_threshold(20_000, 20, 20)

from otflows.pipeline.config import (ParamsError, check_device, check_yaml_files,
                                     validate_params_cached)

configfile: "params.yaml"

# Before any job: the params files strictly (duplicate keys), every key against the schema
# (a config that passed before is remembered in .snakemake/otflows/, so a dry run stays
# fast), then what only this machine can answer (CUDA asked for locally but absent).
try:
    check_yaml_files(workflow.configfiles)
    validate_params_cached(config, Path(workflow.basedir) / "schemas" / "params.schema.yaml",
                           ".snakemake/otflows/params-validated.json")
    if workflow.local_exec:
        check_device(config)
except ParamsError as err:
    sys.exit(f"otflows: {err}")

report: "report/workflow.rst"

# One preloaded Python forks every `otflows` job of a local run, so a job does not pay the
# 1-3 s of importing torch, matplotlib and pandas (src/otflows/cli/forkserver.py). Jobs that
# Snakemake submits elsewhere (Slurm), and every job on macOS or Windows, start their own
# interpreters as usual.
FORKSERVER = []


onstart:
    gc.set_threshold(*GC_THRESHOLDS)
    from otflows.cli import forkserver
    from otflows.cli.launcher import PARENT_VAR
    from otflows.pipeline.tracking import GIT_COMMIT_VAR, git_commit

    if config["run"]["forkserver"] and workflow.local_exec and forkserver.supported():
        # first: it imports torch & co. (~3 s) while the rest of this runs; POT only for
        # the benchmark profile, whose OT-CFM runs and exact W2 need it
        if config.get("benchmark", {}).get("run"):
            os.environ[forkserver.EXTRA_VAR] = "ot"
        FORKSERVER.append(forkserver.start(log=".snakemake/forkserver.jsonl"))
    if workflow.local_exec:  # jobs stop themselves if this Snakemake is killed (launcher.py)
        os.environ[PARENT_VAR] = str(os.getpid())
        os.environ[GIT_COMMIT_VAR] = git_commit(workflow.basedir)  # once, not once per job
        # Snakemake's default submission limit (100 jobs per 1 s) re-runs the scheduling pass
        # one second after every pass that leaves ready jobs waiting for a core, and each
        # re-run arms another timer, so the passes multiply with finished jobs
        # (snakemake/snakemake#3744): ~4400 passes, ~10 s of CPU on the 113 smoke jobs. A
        # local run is bounded by its cores, never by that limit: drop the default one here.
        limiter = getattr(getattr(workflow, "scheduler", None), "job_rate_limiter", None)
        if limiter is not None and (limiter.max_jobs, limiter.timespan) == (100, 1):
            workflow.scheduler.job_rate_limiter = None


onsuccess:
    for server in FORKSERVER:
        server.stop()


onerror:
    for server in FORKSERVER:
        server.stop()

include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/tabular.smk"
include: "rules/cpflow.smk"
include: "rules/qflow.smk"
include: "rules/train.smk"
include: "rules/reports.smk"


# The benchmark profile (config/benchmark.yaml) builds only the cross-method benchmark.
rule all:
    default_target: True
    input:
        BENCHMARK_TARGETS if config.get("benchmark", {}).get("run") else TARGETS,
