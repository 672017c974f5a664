# otflows: one pipeline for five optimal-transport normalizing-flow papers.
# Rules are thin calls into the `otflows` CLI; params.yaml is the one source of settings.
import os
import sys
from pathlib import Path

from otflows.pipeline.config import ParamsError, check_device, check_yaml_files, validate_params

configfile: "params.yaml"

# Before any job: the params files strictly (duplicate keys), every key against the schema,
# then what only this machine can answer (CUDA asked for locally but absent).
try:
    check_yaml_files(workflow.configfiles)
    validate_params(config, Path(workflow.basedir) / "schemas" / "params.schema.yaml")
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
    from otflows.cli import forkserver
    from otflows.cli.launcher import PARENT_VAR

    if workflow.local_exec:  # jobs stop themselves if this Snakemake is killed (launcher.py)
        os.environ[PARENT_VAR] = str(os.getpid())
    if config["run"]["forkserver"] and workflow.local_exec and forkserver.supported():
        FORKSERVER.append(forkserver.start(log=".snakemake/forkserver.jsonl"))


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


rule all:
    default_target: True
    input:
        TARGETS,
