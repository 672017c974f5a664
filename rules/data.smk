# Data preparation.

rule prepare_toy:
    output:
        "data/processed/toy/{name}.npz",
    params:
        n_train=config["data"]["toy"]["n_train"],
        n_test=config["data"]["toy"]["n_test"],
        seed=config["seed"],
    log:
        "results/logs/prepare_toy/{name}.log",
    shell:
        "otflows prepare toy --name {wildcards.name} --n-train {params.n_train}"
        " --n-test {params.n_test} --seed {params.seed} --out {output} 2> {log}"


rule figure_toys:
    input:
        expand("data/processed/toy/{name}.npz", name=config["data"]["toy"]["datasets"]),
    output:
        png=report("results/figures/toy_datasets.png", category="Data"),
        svg="results/figures/toy_datasets.svg",
    log:
        "results/logs/figure_toys.log",
    shell:
        "otflows figure toys --inputs {input} --out {output.png} 2> {log}"


TARGETS += rules.figure_toys.output
