# Cross-method outputs: the metrics summary, the toy benchmark, MLflow import.

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
        "otflows summary --inputs {input} --out-json {output.json} --out-csv {output.csv}"
        " --out-benchmark {output.bench} 2> {log}"


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
    log:
        "results/logs/track_mlflow.log",
    shell:
        "otflows track --records {input.records} --results results --uri {params.uri:q}"
        " --experiment {params.experiment} --out {output} 2> {log}"


TARGETS += rules.summary.output
TARGETS += rules.track_mlflow.output
