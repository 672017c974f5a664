# Q-flow (Xu, Cheng, Xie, arXiv:2305.11857): the two-sample problems (prepared here), then
# the generic train/evaluate rules of train.smk; figures and tables of §4.2-4.5 and the
# toy benchmark (summary). Each prepare rule receives only its own subsection.
from otflows.pipeline.experiments import qflow_data

_QF = config.get("qflow", {})


rule prepare_qflow_gmm:
    output:
        qflow_data("gmm"),
    params:
        n_train=_QF["gmm"]["n_train"],
        n_test=_QF["gmm"]["n_test"],
        seed=config["seed"],
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_qflow/gmm.log",
    shell:
        "otflows prepare qflow-gmm --n-train {params.n_train:q} --n-test {params.n_test:q}"
        " --seed {params.seed:q} --out {output:q} 2> {log:q}"


rule prepare_qflow_toys:
    output:
        qflow_data(f"{_QF['toys']['p']}-{_QF['toys']['q']}"),
    params:
        p=_QF["toys"]["p"],
        q=_QF["toys"]["q"],
        n_train=_QF["toys"]["n_train"],
        n_test=_QF["toys"]["n_test"],
        seed=config["seed"],
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_qflow/toys.log",
    shell:
        "otflows prepare qflow-toys --p {params.p:q} --q {params.q:q} --n-train {params.n_train:q}"
        " --n-test {params.n_test:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


rule prepare_qflow_mi:
    output:
        "data/processed/qflow/mi_d{d}.npz",
    params:
        n_train=_QF["mi"]["n_train"],
        n_test=_QF["mi"]["n_test"],
        seed=config["seed"],
    wildcard_constraints:
        d=r"\d+",
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_qflow/mi_d{d}.log",
    shell:
        "otflows prepare qflow-mi --d {wildcards.d:q} --n-train {params.n_train:q}"
        " --n-test {params.n_test:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


_QF_TR_CFG = _QF["translation"]
_QF_TR_STEM = f"{MNIST_NAME}_latents_{_QF_TR_CFG['source']}to{_QF_TR_CFG['target']}"


rule prepare_qflow_translation:
    input:
        latents=f"data/processed/{MNIST_NAME}_latents.npz",
        mnist=MNIST_DATA,
        vae=VAE["ckpt"],
    output:
        qflow_data(_QF_TR_STEM),
    params:
        source=_QF_TR_CFG["source"],
        target=_QF_TR_CFG["target"],
        iters=_QF_TR_CFG["classifier_iters"],
        seed=config["seed"],
    threads: 1
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare_qflow/translation.log",
    shell:
        "otflows prepare qflow-translation --latents {input.latents:q} --mnist {input.mnist:q}"
        " --vae {input.vae:q} --source {params.source:q} --target {params.target:q}"
        " --classifier-iters {params.iters:q} --seed {params.seed:q} --threads {threads}"
        " --out {output:q} 2> {log:q}"


# §4.4 energy-based MNIST (the paper profile; qflow.ebm.enabled): Q a fitted Gaussian or NSF.
_QF_EBM = runs(["qflow"], sweep="qflow_ebm")
if _QF_EBM:
    from otflows.pipeline.experiments import qflow_ebm_stem

    _QF_EBM_CFG = _QF["ebm"]

    rule prepare_qflow_ebm:
        input:
            MNIST_DATA,
        output:
            qflow_data(qflow_ebm_stem(config)),
        params:
            model=_QF_EBM_CFG["model"],
            shrinkage=_QF_EBM_CFG["shrinkage"],
            nsf_iters=_QF_EBM_CFG["nsf_iters"],
            nsf_transforms=_QF_EBM_CFG["nsf_transforms"],
            nsf_hidden=_QF_EBM_CFG["nsf_hidden"],
            seed=config["seed"],
        threads: 1
        resources:
            gpu=gpu_count(config["device"]),
        priority: PRIORITY["prepare"]
        log:
            "results/logs/prepare_qflow/ebm.log",
        shell:
            "otflows prepare qflow-ebm --mnist {input:q} --model {params.model:q}"
            " --shrinkage {params.shrinkage:q} --nsf-iters {params.nsf_iters:q}"
            " --nsf-transforms {params.nsf_transforms:q} --nsf-hidden {params.nsf_hidden:q}"
            " --seed {params.seed:q} --threads {threads} --out {output:q} 2> {log:q}"
