# Convex Potential Flows (Huang et al., ICLR 2021, arXiv:2012.05942): Fig. 3 (toy densities vs
# zuko MAF/NAF), Fig. 4 (optimal coupling on Gaussians), Table 1 (MINIBOONE, only when
# data/raw/miniboone is present), Table 2 (MNIST bits/dim), Table 3's setting (amortised VI),
# and every toy for the cross-method benchmark. Training/evaluation: the rules of train.smk.
_CP_CAT = "CP-Flow"
_CP_TOYS = runs(["cpflow"], sweep="cpflow_toy")
_CP_FIG3 = runs(["cpflow"], sweep="cpflow_fig3")
_CP_FIG3_DS = {e.dataset for e in _CP_FIG3}
_CP_COUPLING = runs(["cpflow"], sweep="cpflow_coupling")
_CP_MNIST = runs(["cpflow"], sweep="cpflow_mnist")
_CP_VAE = runs(["cpflow"], sweep="cpflow_vae")
_CP_MB = runs(["cpflow"], sweep="cpflow_miniboone")
_CP_GAUSS = config["cpflow"]["coupling_data"]


rule prepare_gaussian:
    output:
        "data/processed/gaussian_d{d}.npz",
    params:
        n_train=_CP_GAUSS["n_train"],
        n_test=_CP_GAUSS["n_test"],
        seed=config["seed"],
    wildcard_constraints:
        d=r"\d+",
    log:
        "results/logs/prepare/gaussian_d{d}.log",
    shell:
        "otflows prepare gaussian --d {wildcards.d} --n-train {params.n_train}"
        " --n-test {params.n_test} --seed {params.seed} --out {output} 2> {log}"


rule figure_cpflow_toys:
    input:
        [samples_path(e) for e in _CP_TOYS],
    output:
        png=report("results/figures/cpflow_toys.png", category=_CP_CAT,
                   subcategory="2-D toys: data, density, samples"),
        svg="results/figures/cpflow_toys.svg",
    log:
        "results/logs/figures/cpflow_toys.log",
    shell:
        "otflows figure density --inputs {input} --out {output.png} 2> {log}"


rule figure_cpflow_fig3:
    input:
        [samples_path(e) for e in _CP_TOYS if e.dataset in _CP_FIG3_DS]
        + [samples_path(e) for e in _CP_FIG3],
    output:
        png=report("results/figures/cpflow_fig3.png", category=_CP_CAT,
                   subcategory="Fig. 3: CP-Flow vs MAF vs NAF"),
        svg="results/figures/cpflow_fig3.svg",
    log:
        "results/logs/figures/cpflow_fig3.log",
    shell:
        "otflows figure cpflow-fig3 --inputs {input} --out {output.png} 2> {log}"


rule table_cpflow_fig3:
    input:
        [metrics_path(e) for e in _CP_TOYS if e.dataset in _CP_FIG3_DS]
        + [metrics_path(e) for e in _CP_FIG3],
    output:
        md="results/tables/cpflow_fig3.md",
        csv=report("results/tables/cpflow_fig3.csv", category=_CP_CAT,
                   subcategory="Fig. 3: test NLL"),
    log:
        "results/logs/tables/cpflow_fig3.log",
    shell:
        "otflows table cpflow-fig3 --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule figure_cpflow_coupling:
    input:
        [samples_path(e) for e in _CP_COUPLING],
    output:
        png=report("results/figures/cpflow_coupling.png", category=_CP_CAT,
                   subcategory="Fig. 4: transport cost vs KL"),
        svg="results/figures/cpflow_coupling.svg",
    log:
        "results/logs/figures/cpflow_coupling.log",
    shell:
        "otflows figure cpflow-coupling --inputs {input} --out {output.png} 2> {log}"


rule table_cpflow_coupling:
    input:
        [metrics_path(e) for e in _CP_COUPLING],
    output:
        md="results/tables/cpflow_coupling.md",
        csv=report("results/tables/cpflow_coupling.csv", category=_CP_CAT,
                   subcategory="Fig. 4: gap to the closed-form W2"),
    log:
        "results/logs/tables/cpflow_coupling.log",
    shell:
        "otflows table cpflow-coupling --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule table_cpflow_mnist:
    input:
        [metrics_path(e) for e in _CP_MNIST],
    output:
        md="results/tables/cpflow_mnist.md",
        csv=report("results/tables/cpflow_mnist.csv", category=_CP_CAT,
                   subcategory="Table 2: MNIST bits/dim"),
    log:
        "results/logs/tables/cpflow_mnist.log",
    shell:
        "otflows table cpflow-mnist --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule table_cpflow_vae:
    input:
        [metrics_path(e) for e in _CP_VAE],
    output:
        md="results/tables/cpflow_vae.md",
        csv=report("results/tables/cpflow_vae.csv", category=_CP_CAT,
                   subcategory="Table 3 setting: amortised VI"),
    log:
        "results/logs/tables/cpflow_vae.log",
    shell:
        "otflows table cpflow-vae --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule table_cpflow_miniboone:
    input:
        [metrics_path(e) for e in _CP_MB],
    output:
        md="results/tables/cpflow_miniboone.md",
        csv=report("results/tables/cpflow_miniboone.csv", category=_CP_CAT,
                   subcategory="Table 1: MINIBOONE"),
    log:
        "results/logs/tables/cpflow_miniboone.log",
    shell:
        "otflows table cpflow-miniboone --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


if _CP_TOYS:
    TARGETS += ["results/figures/cpflow_toys.png"]
if _CP_FIG3:
    TARGETS += ["results/figures/cpflow_fig3.png", "results/tables/cpflow_fig3.md"]
if _CP_COUPLING:
    TARGETS += ["results/figures/cpflow_coupling.png", "results/tables/cpflow_coupling.md"]
if _CP_MNIST:
    TARGETS += ["results/tables/cpflow_mnist.md"]
if _CP_VAE:
    TARGETS += ["results/tables/cpflow_vae.md"]
if _CP_MB:
    TARGETS += ["results/tables/cpflow_miniboone.md"]
