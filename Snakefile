# otflows: one pipeline for five optimal-transport normalizing-flow papers.
# Rules are thin calls into the `otflows` CLI; params.yaml is the one source of settings.
import sys
from pathlib import Path

from otflows.config import ParamsError, validate_params

configfile: "params.yaml"

try:
    validate_params(config, Path(workflow.basedir) / "schemas" / "params.schema.yaml")
except ParamsError as err:
    sys.exit(f"otflows: {err}")

report: "report/workflow.rst"

include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/jko.smk"
include: "rules/ekp.smk"
include: "rules/jko_miniboone.smk"
include: "rules/mongeampere.smk"
include: "rules/cpflow.smk"
include: "rules/qflow.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        TARGETS,
