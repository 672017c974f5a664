# CP-Flow Table 1's POWER, GAS, HEPMASS and BSDS300, prepared as MAF did, and Table 2's CIFAR-10
# (otflows.data.tabular). Their runs exist only when the raw files are under data/raw
# (otflows.pipeline.experiments.cpflow.gated_experiments); otherwise they are listed in
# results/tables/not_run.md. Training and evaluation: the generic rules.
from otflows.data.tabular import DATASETS as _TAB_DATASETS
from otflows.data.tabular import raw_paths as _tabular_raw

_TAB = config["cpflow"]["tabular_data"]
TABULAR_RAW = [p for name in _TAB["datasets"] for p in _tabular_raw(name)]


# `snakemake download_tabular`: one pass through the MAF archive keeps the members of every
# dataset in cpflow.tabular_data.datasets, then `dvc add`s their folders.
rule download_tabular:
    output:
        TABULAR_RAW,
    params:
        url=_TAB["url"],
        names=list(_TAB["datasets"]),
    localrule: True
    log:
        "results/logs/download_tabular.log",
    shell:
        "otflows download tabular --url {params.url:q} --raw-dir data/raw"
        " --names {params.names:q} --dvc-add 2> {log:q}"


rule prepare_tabular:
    input:
        per_job(lambda w: _tabular_raw(w.tabular)),
    output:
        "data/processed/{tabular}.npz",
    wildcard_constraints:
        tabular="|".join(_TAB_DATASETS),
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_{tabular}.log",
    shell:
        "otflows prepare tabular --name {wildcards.tabular:q} --raw-dir data/raw"
        " --out {output:q} 2> {log:q}"


# CP-Flow Table 2's CIFAR-10 (paper profile: cpflow.cifar10_data.run). `snakemake
# download_cifar10` fetches the python-version archive (size and MD5 checked).
from otflows.data.cifar10 import RAW_PATH as CIFAR10_RAW

_CIF = config["cpflow"]["cifar10_data"]


rule download_cifar10:
    output:
        CIFAR10_RAW,
    params:
        url=_CIF["url"],
    localrule: True
    log:
        "results/logs/download_cifar10.log",
    shell:
        "otflows download cifar10 --url {params.url:q} --out {output:q} --dvc-add 2> {log:q}"


rule prepare_cifar10:
    input:
        CIFAR10_RAW,
    output:
        "data/processed/cifar10.npz",
    params:
        lam=_CIF["logit_lambda"],
        seed=config["seed"],
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_cifar10.log",
    shell:
        "otflows prepare cifar10 --raw {input:q} --logit-lambda {params.lam:q}"
        " --seed {params.seed:q} --out {output:q} 2> {log:q}"
