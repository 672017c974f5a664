# Data preparation.

rule prepare_toy:
    output:
        "data/processed/toy/{name}.npz",
    params:
        n_train=config["data"]["toy"]["n_train"],
        n_test=config["data"]["toy"]["n_test"],
        seed=config["seed"],
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_toy/{name}.log",
    shell:
        "otflows prepare toy --name {wildcards.name:q} --n-train {params.n_train:q}"
        " --n-test {params.n_test:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


# ----------------------------------------------------------------------------- real data
# MINIBOONE (JKO-Flow Table 3, CP-Flow Table 1), MNIST and the MNIST VAE latents (Q-flow).
import json

from otflows.data.miniboone import raw_path as _miniboone_raw
from otflows.data.mnist import IDX_FILES as _IDX_FILES
from otflows.pipeline.experiments import experiments_not_run

_MB = config["data"]["miniboone"]
_MN = config["data"]["mnist"]
MINIBOONE_RAW = _miniboone_raw(_MB["source"])
MNIST_RAW = [f"data/raw/mnist/{name}" for name, _md5, _size in _IDX_FILES.values()]


# `snakemake download_miniboone`: fetch, check, then `dvc add data/raw/miniboone`.
rule download_miniboone:
    output:
        MINIBOONE_RAW,
    params:
        source=_MB["source"],
        url=_MB["url_" + _MB["source"]],
    localrule: True
    log:
        "results/logs/download_miniboone.log",
    shell:
        "otflows download miniboone --source {params.source:q} --url {params.url:q}"
        " --out {output:q} --dvc-add 2> {log:q}"


rule prepare_miniboone:
    input:
        MINIBOONE_RAW,
    output:
        "data/processed/miniboone.npz",
    params:
        source=_MB["source"],
        events=_MB["events"],
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_miniboone.log",
    shell:
        "otflows prepare miniboone --source {params.source:q} --events {params.events:q}"
        " --raw {input:q} --out {output:q} 2> {log:q}"


# `snakemake download_mnist`: the four IDX files (full MNIST), then `dvc add data/raw/mnist`.
rule download_mnist:
    output:
        MNIST_RAW,
    params:
        url=_MN["url"],
    localrule: True
    log:
        "results/logs/download_mnist.log",
    shell:
        "otflows download mnist --url {params.url:q} --out-dir data/raw/mnist --dvc-add"
        " 2> {log:q}"


rule prepare_mnist:
    input:
        MNIST_RAW if _MN["source"] == "idx" else [],
    output:
        MNIST_DATA,
    params:
        source=_MN["source"],
        n_validation=_MN["n_validation"],
        n_test=_MN["n_test"],
        lam=_MN["logit_lambda"],
        seed=config["seed"],
    priority: PRIORITY["prepare"]
    log:
        f"results/logs/prepare_{MNIST_NAME}.log",
    shell:
        "otflows prepare mnist --source {params.source:q} --raw-dir data/raw/mnist"
        " --n-validation {params.n_validation:q} --n-test {params.n_test:q}"
        " --logit-lambda {params.lam:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


# The VAE trains through the generic `train` rule (rules/train.smk): it is the registered
# method `vae`; `prepare_mnist_latents` evaluates it.


rule prepare_mnist_latents:
    input:
        model=VAE["ckpt"],
        data=MNIST_DATA,
    output:
        latents=f"data/processed/{MNIST_NAME}_latents.npz",
        metrics=VAE["metrics"],
        samples=VAE["samples"],
    params:
        n=config["vae"]["eval_samples"],
        seed=config["seed"],
        device=config["device"],
    threads: 1
    priority: PRIORITY["prepare"]
    log:
        f"results/logs/prepare_{MNIST_NAME}_latents.log",
    shell:
        "otflows prepare mnist-latents --checkpoint {input.model:q} --data {input.data:q}"
        " --eval-samples {params.n:q} --seed {params.seed:q} --device {params.device:q}"
        " --threads {threads} --out {output.latents:q} --out-metrics {output.metrics:q}"
        " --out-samples {output.samples:q} 2> {log:q}"


# Experiments params asks for whose raw data is absent: listed, never substituted.
rule not_run:
    output:
        report("results/tables/not_run.md", category="Summary"),
    params:
        entries=json.dumps(experiments_not_run(config), sort_keys=True),
    localrule: True
    log:
        "results/logs/not_run.log",
    shell:
        "otflows not-run --entries {params.entries:q} --out {output:q} 2> {log:q}"


METRICS += [VAE["metrics"]]
TARGETS += [f"data/processed/{MNIST_NAME}_latents.npz", "results/tables/not_run.md"]


# The continuous critical Ising model of Monge-Ampère flow §4.2: K + aI, its inverse and the
# exact free energy (Kaufman 1949 + App. B), read by the mongeampere Ising run.
rule prepare_ising:
    output:
        "data/processed/ising_L{L}.npz",
    params:
        coupling=config["mongeampere"]["ising"]["coupling"],
        min_eigenvalue=config["mongeampere"]["ising"]["min_eigenvalue"],
    wildcard_constraints:
        L=r"\d+",
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_ising_L{L}.log",
    shell:
        "otflows prepare ising --L {wildcards.L:q} --coupling {params.coupling:q}"
        " --min-eigenvalue {params.min_eigenvalue:q} --out {output:q} 2> {log:q}"
