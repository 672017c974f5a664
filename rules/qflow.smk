# Q-flow (Xu, Cheng, Xie, arXiv:2305.11857): the two-sample problems (prepared here), then
# the generic train/evaluate rules of train.smk; figures and tables of §4.2-4.5 and the
# toy benchmark (summary). Each prepare rule receives only its own subsection.
from otflows.pipeline.experiments import qflow_data

_QF = config.get("qflow", {})
_QF_CAT = "Q-flow"
_QF_TOY = runs(["qflow"], sweep="qflow_toy")
_QF_GMM = runs(["qflow"], sweep="qflow_gmm")
_QF_TOYS = runs(["qflow"], sweep="qflow_toys")
_QF_MI = runs(["qflow"], sweep="qflow_mi")
_QF_TR = runs(["qflow"], sweep="qflow_translation")


rule prepare_qflow_gmm:
    output:
        qflow_data("gmm"),
    params:
        n_train=_QF["gmm"]["n_train"],
        n_test=_QF["gmm"]["n_test"],
        seed=config["seed"],
    log:
        "results/logs/prepare_qflow/gmm.log",
    shell:
        "otflows prepare qflow-gmm --n-train {params.n_train} --n-test {params.n_test}"
        " --seed {params.seed} --out {output} 2> {log}"


rule prepare_qflow_toys:
    output:
        qflow_data(f"{_QF['toys']['p']}-{_QF['toys']['q']}"),
    params:
        p=_QF["toys"]["p"],
        q=_QF["toys"]["q"],
        n_train=_QF["toys"]["n_train"],
        n_test=_QF["toys"]["n_test"],
        seed=config["seed"],
    log:
        "results/logs/prepare_qflow/toys.log",
    shell:
        "otflows prepare qflow-toys --p {params.p} --q {params.q} --n-train {params.n_train}"
        " --n-test {params.n_test} --seed {params.seed} --out {output} 2> {log}"


rule prepare_qflow_mi:
    output:
        "data/processed/qflow/mi_d{d}.npz",
    params:
        n_train=_QF["mi"]["n_train"],
        n_test=_QF["mi"]["n_test"],
        seed=config["seed"],
    wildcard_constraints:
        d=r"\d+",
    log:
        "results/logs/prepare_qflow/mi_d{d}.log",
    shell:
        "otflows prepare qflow-mi --d {wildcards.d} --n-train {params.n_train}"
        " --n-test {params.n_test} --seed {params.seed} --out {output} 2> {log}"


_QF_TR_CFG = _QF["translation"]
_QF_TR_STEM = f"{MNIST_NAME}_latents_{_QF_TR_CFG['source']}to{_QF_TR_CFG['target']}"


rule prepare_qflow_translation:
    input:
        latents=f"data/processed/{MNIST_NAME}_latents.npz",
        mnist=MNIST_DATA,
        vae=_VAE["ckpt"],
    output:
        qflow_data(_QF_TR_STEM),
    params:
        source=_QF_TR_CFG["source"],
        target=_QF_TR_CFG["target"],
        iters=_QF_TR_CFG["classifier_iters"],
        seed=config["seed"],
    threads: 1
    log:
        "results/logs/prepare_qflow/translation.log",
    shell:
        "otflows prepare qflow-translation --latents {input.latents} --mnist {input.mnist}"
        " --vae {input.vae} --source {params.source} --target {params.target}"
        " --classifier-iters {params.iters} --seed {params.seed} --threads {threads}"
        " --out {output} 2> {log}"


rule figure_qflow_gmm:
    input:
        [samples_path(e) for e in _QF_GMM],
    output:
        png=report("results/figures/qflow_gmm.png", category=_QF_CAT,
                   subcategory="Fig. A.1: GMM log-ratio, true vs estimated"),
        svg="results/figures/qflow_gmm.svg",
    log:
        "results/logs/figures/qflow_gmm.log",
    shell:
        "otflows figure qflow-gmm --inputs {input} --out {output.png} 2> {log}"


rule table_qflow_gmm:
    input:
        [metrics_path(e) for e in _QF_GMM],
    output:
        md="results/tables/qflow_gmm.md",
        csv=report("results/tables/qflow_gmm.csv", category=_QF_CAT,
                   subcategory="GMM DRE: MAE and max error"),
    log:
        "results/logs/tables/qflow_gmm.log",
    shell:
        "otflows table qflow-gmm --inputs {input} --out-md {output.md} --out-csv {output.csv}"
        " 2> {log}"


rule figure_qflow_toys:
    input:
        [samples_path(e) for e in _QF_TOYS],
    output:
        png=report("results/figures/qflow_toys.png", category=_QF_CAT,
                   subcategory="Fig. 2: trajectory, linear bridge, interval log-ratios"),
        svg="results/figures/qflow_toys.svg",
    log:
        "results/logs/figures/qflow_toys.log",
    shell:
        "otflows figure qflow-toys --inputs {input} --out {output.png} 2> {log}"


rule table_qflow_transport:
    input:
        [metrics_path(e) for e in _QF_TOYS + _QF_GMM + _QF_TOY],
    output:
        md="results/tables/qflow_transport.md",
        csv=report("results/tables/qflow_transport.csv", category=_QF_CAT,
                   subcategory="W2 cost of Q-flow vs the linear-interpolant bridge"),
    log:
        "results/logs/tables/qflow_transport.log",
    shell:
        "otflows table qflow-transport --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule figure_qflow_mi:
    input:
        [metrics_path(e) for e in _QF_MI],
    output:
        png=report("results/figures/qflow_mi.png", category=_QF_CAT,
                   subcategory="Fig. 3: estimated vs true MI"),
        svg="results/figures/qflow_mi.svg",
    log:
        "results/logs/figures/qflow_mi.log",
    shell:
        "otflows figure qflow-mi --inputs {input} --out {output.png} 2> {log}"


rule table_qflow_mi:
    input:
        [metrics_path(e) for e in _QF_MI],
    output:
        md="results/tables/qflow_mi.md",
        csv=report("results/tables/qflow_mi.csv", category=_QF_CAT,
                   subcategory="MI estimates by dimension"),
    log:
        "results/logs/tables/qflow_mi.log",
    shell:
        "otflows table qflow-mi --inputs {input} --out-md {output.md} --out-csv {output.csv}"
        " 2> {log}"


rule figure_qflow_translation:
    input:
        [samples_path(e) for e in _QF_TR],
    output:
        png=report("results/figures/qflow_translation.png", category=_QF_CAT,
                   subcategory="Fig. 4b adapted: decoded latent trajectories"),
        svg="results/figures/qflow_translation.svg",
    log:
        "results/logs/figures/qflow_translation.log",
    shell:
        "otflows figure qflow-translation --inputs {input} --out {output.png} 2> {log}"


rule table_qflow_translation:
    input:
        [metrics_path(e) for e in _QF_TR],
    output:
        md="results/tables/qflow_translation.md",
        csv=report("results/tables/qflow_translation.csv", category=_QF_CAT,
                   subcategory="Translation: target-class share, transport cost"),
    log:
        "results/logs/tables/qflow_translation.log",
    shell:
        "otflows table qflow-translation --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


if _QF_GMM:
    TARGETS += ["results/figures/qflow_gmm.png", "results/tables/qflow_gmm.md"]
if _QF_TOYS:
    TARGETS += ["results/figures/qflow_toys.png", "results/tables/qflow_transport.md"]
if _QF_MI:
    TARGETS += ["results/figures/qflow_mi.png", "results/tables/qflow_mi.md"]
if _QF_TR:
    TARGETS += ["results/figures/qflow_translation.png",
                "results/tables/qflow_translation.md"]


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
        log:
            "results/logs/prepare_qflow/ebm.log",
        shell:
            "otflows prepare qflow-ebm --mnist {input} --model {params.model}"
            " --shrinkage {params.shrinkage} --nsf-iters {params.nsf_iters}"
            " --nsf-transforms {params.nsf_transforms} --nsf-hidden {params.nsf_hidden}"
            " --seed {params.seed} --threads {threads} --out {output} 2> {log}"

    rule table_qflow_ebm:
        input:
            [metrics_path(e) for e in _QF_EBM],
        output:
            md="results/tables/qflow_ebm.md",
            csv=report("results/tables/qflow_ebm.csv", category=_QF_CAT,
                       subcategory="Table 1: energy-based MNIST, bits/dim"),
        log:
            "results/logs/tables/qflow_ebm.log",
        shell:
            "otflows table qflow-ebm --inputs {input} --out-md {output.md}"
            " --out-csv {output.csv} 2> {log}"

    TARGETS += ["results/tables/qflow_ebm.md"]
