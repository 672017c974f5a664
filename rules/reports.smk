# Figures and tables: one rule per entry of the reports catalog (otflows.reports.catalog), all
# made from the one template below; then the cross-method outputs (summary, toy benchmark,
# MLflow import). Every path reaches the shell quoted.
from otflows.reports.catalog import BENCHMARK_CATEGORY, catalog

REPORTS = catalog(config, list(EXPERIMENTS.values()))


def _report_output(entry, role, path):
    """The output the Snakemake HTML report shows (PNG or CSV), annotated; others plain."""
    if role not in ("png", "csv"):
        return path
    extra = {"subcategory": entry.subcategory} if entry.subcategory else {}
    return report(path, category=entry.category, **extra)


for _entry in REPORTS:
    if _entry.kind == "figure":

        rule:
            name:
                _entry.rule
            input:
                _entry.inputs,
            output:
                **{k: _report_output(_entry, k, v) for k, v in _entry.outputs.items()},
            params:
                builder=_entry.builder,
            log:
                _entry.log,
            shell:
                "otflows figure {params.builder:q} --inputs {input:q} --out {output.png:q}"
                " 2> {log:q}"

    else:

        rule:
            name:
                _entry.rule
            input:
                _entry.inputs,
            output:
                **{k: _report_output(_entry, k, v) for k, v in _entry.outputs.items()},
            params:
                builder=_entry.builder,
            log:
                _entry.log,
            shell:
                "otflows table {params.builder:q} --inputs {input:q} --out-md {output.md:q}"
                " --out-csv {output.csv:q} 2> {log:q}"


TARGETS += [entry.target for entry in REPORTS if entry.category != BENCHMARK_CATEGORY]
# the cross-method benchmark's table and figure: the default target of its profile only
BENCHMARK_TARGETS = [entry.target for entry in REPORTS if entry.category == BENCHMARK_CATEGORY]


# The claims ledger: every claim of the five papers judged on this run's metrics and samples
# (otflows.reports.claims); its counts per scope are a DVC metric.
rule table_claims:
    input:
        METRICS + [e.samples_path for e in EXPERIMENTS.values()],
    output:
        md="results/tables/claims.md",
        csv=report("results/tables/claims.csv", category="0 · Claims ledger"),
        json="results/metrics/claims.json",
    log:
        "results/logs/tables/claims.log",
    shell:
        "otflows table claims --inputs {input:q} --out-md {output.md:q} --out-csv {output.csv:q}"
        " --out-json {output.json:q} 2> {log:q}"


TARGETS += ["results/tables/claims.md"]


rule summary:
    input:
        METRICS,
    output:
        json="results/metrics/summary.json",
        csv=report("results/metrics/summary.csv", category="Summary"),
        bench="results/tables/toy_benchmark.md",
    log:
        "results/logs/summary.log",
    shell:
        "otflows summary --inputs {input:q} --out-json {output.json:q} --out-csv {output.csv:q}"
        " --out-benchmark {output.bench:q} 2> {log:q}"
# One local job imports every run record into MLflow after the fan-out, so parallel jobs
# never race on the SQLite store (see otflows/pipeline/tracking.py).
rule track_mlflow:
    input:
        records=RECORDS,
        metrics=METRICS,
    output:
        "results/tracking/mlflow_runs.json",
    params:
        uri=config["tracking"]["uri"],
        experiment=config["tracking"]["experiment"],
    localrule: True
    priority: PRIORITY["track"]
    log:
        "results/logs/track_mlflow.log",
    shell:
        "otflows track --records {input.records:q} --results results --uri {params.uri:q}"
        " --experiment {params.experiment:q} --out {output:q} 2> {log:q}"


TARGETS += rules.summary.output
TARGETS += rules.track_mlflow.output
