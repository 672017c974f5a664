# Convex Potential Flows (Huang et al., ICLR 2021, arXiv:2012.05942): the Gaussian data of
# Fig. 4 (optimal coupling). Training, evaluation, figures and tables: the generic rules.
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
    priority: PRIORITY["prepare"]
    log:
        "results/logs/prepare/gaussian_d{d}.log",
    shell:
        "otflows prepare gaussian --d {wildcards.d:q} --n-train {params.n_train:q}"
        " --n-test {params.n_test:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"
