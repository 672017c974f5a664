# Training and evaluation of every registered method's experiments (otflows.pipeline.experiments).
# One generic pair of rules: a method adds experiments, not rules.

rule train:
    input:
        data=per_job(lambda w: experiment(w).data),
        init=per_job(lambda w: init_inputs(experiment(w))),
    output:
        model="results/checkpoints/{method}/{exp}/model.pt",
        history="results/plots/{method}/{exp}.csv",
        record="results/records/{method}/{exp}.json",
    params:
        cfg=per_job(lambda w: experiment(w).cfg_json()),
        dataset=per_job(lambda w: experiment(w).dataset),
        init=per_job(lambda w: init_flags(experiment(w))),
        seed=per_job(lambda w: experiment(w).seed_or(config["seed"])),
        device=config["device"],
        checkpoint_every=config["run"]["checkpoint_every"],
        log_every=config["run"]["log_every"],
    wildcard_constraints:
        method=METHOD_PATTERN,
    threads: 1
    resources:
        gpu=gpu_count(config["device"]),
        mem_mb=per_job(lambda w: train_mem_mb(experiment(w), config["device"])),
        runtime=per_job(lambda w: train_runtime_min(experiment(w))),
    priority: PRIORITY["train"]
    log:
        "results/logs/train/{method}/{exp}.log",
    shell:
        "otflows train --method {wildcards.method:q} --experiment {wildcards.exp:q}"
        " --dataset {params.dataset:q} --data {input.data:q} --config {params.cfg:q}"
        " {params.init:q} --seed {params.seed:q} --device {params.device:q} --threads {threads}"
        " --checkpoint-every {params.checkpoint_every:q} --log-every {params.log_every:q}"
        " --out {output.model:q} --history {output.history:q} --record {output.record:q}"
        " --rule {rule} 2> {log:q}"


rule evaluate:
    input:
        model="results/checkpoints/{method}/{exp}/model.pt",
        data=per_job(lambda w: experiment(w).data),
    output:
        metrics="results/metrics/{method}/{exp}.json",
        samples="results/samples/{method}/{exp}.npz",
    params:
        dataset=per_job(lambda w: experiment(w).dataset),
        n=per_job(lambda w: experiment(w).eval_samples),
        grid=per_job(lambda w: experiment(w).density_grid),
        bench=per_job(lambda w: eval_flags(experiment(w))),
        max_nll=config["run"]["max_nll_per_dim"],
        seed=per_job(lambda w: experiment(w).seed_or(config["seed"])),
        device=config["device"],
    wildcard_constraints:
        method=EVALUATED_PATTERN,
    threads: 1
    resources:
        gpu=gpu_count(config["device"]),
        mem_mb=per_job(lambda w: evaluate_mem_mb(experiment(w), config["device"])),
        runtime=per_job(lambda w: evaluate_runtime_min(experiment(w))),
    priority: PRIORITY["evaluate"]
    log:
        "results/logs/evaluate/{method}/{exp}.log",
    shell:
        "otflows evaluate --method {wildcards.method:q} --experiment {wildcards.exp:q}"
        " --dataset {params.dataset:q} --data {input.data:q} --checkpoint {input.model:q}"
        " --eval-samples {params.n:q} --density-grid {params.grid:q} {params.bench:q}"
        " --max-nll-per-dim {params.max_nll:q}"
        " --seed {params.seed:q} --device {params.device:q} --threads {threads}"
        " --out-metrics {output.metrics:q} --out-samples {output.samples:q} 2> {log:q}"


METRICS += [e.metrics_path for e in EXPERIMENTS.values() if e.evaluate]
RECORDS += [e.record_path for e in EXPERIMENTS.values()]
