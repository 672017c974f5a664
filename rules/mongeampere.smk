# Monge-Ampère flow (Zhang, E, Wang, arXiv:1809.10188): Table 1 and Figs. 3a-b (MNIST),
# Fig. 4 and the free-energy table (critical Ising), the toy densities. Training and
# evaluation are the generic rules of train.smk; the Ising problem is prepared in data.smk.
_MA_CAT = "Monge-Ampère flow"
_MA_MNIST = runs(["mongeampere"], sweep="mongeampere_mnist")
_MA_ISING = runs(["mongeampere"], sweep="mongeampere_ising")
_MA_TOYS = runs(["mongeampere"], sweep="mongeampere_toy")


rule table_mongeampere_mnist:
    input:
        [metrics_path(e) for e in _MA_MNIST],
    output:
        md="results/tables/mongeampere_mnist.md",
        csv=report("results/tables/mongeampere_mnist.csv", category=_MA_CAT,
                   subcategory="Table 1: MNIST test NLL"),
    log:
        "results/logs/tables/mongeampere_mnist.log",
    shell:
        "otflows table mongeampere-mnist --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule figure_mongeampere_nll:
    input:
        [samples_path(e) for e in _MA_MNIST],
    output:
        png=report("results/figures/mongeampere_nll.png", category=_MA_CAT,
                   subcategory="Fig. 3a: NLL per epoch"),
        svg="results/figures/mongeampere_nll.svg",
    log:
        "results/logs/figures/mongeampere_nll.log",
    shell:
        "otflows figure mongeampere-nll --inputs {input} --out {output.png} 2> {log}"


rule figure_mongeampere_flow:
    input:
        [samples_path(e) for e in _MA_MNIST],
    output:
        png=report("results/figures/mongeampere_flow.png", category=_MA_CAT,
                   subcategory="Fig. 3b: test images flowing to the Gaussian"),
        svg="results/figures/mongeampere_flow.svg",
    log:
        "results/logs/figures/mongeampere_flow.log",
    shell:
        "otflows figure mongeampere-flow --inputs {input} --out {output.png} 2> {log}"


rule figure_mongeampere_ising:
    input:
        [samples_path(e) for e in _MA_ISING] + [metrics_path(e) for e in _MA_ISING],
    output:
        png=report("results/figures/mongeampere_ising.png", category=_MA_CAT,
                   subcategory="Fig. 4: Ising variational free energy"),
        svg="results/figures/mongeampere_ising.svg",
    log:
        "results/logs/figures/mongeampere_ising.log",
    shell:
        "otflows figure mongeampere-ising --inputs {input} --out {output.png} 2> {log}"


rule figure_mongeampere_spins:
    input:
        [samples_path(e) for e in _MA_ISING],
    output:
        png=report("results/figures/mongeampere_spins.png", category=_MA_CAT,
                   subcategory="Generated Ising configurations"),
        svg="results/figures/mongeampere_spins.svg",
    log:
        "results/logs/figures/mongeampere_spins.log",
    shell:
        "otflows figure mongeampere-spins --inputs {input} --out {output.png} 2> {log}"


rule table_mongeampere_ising:
    input:
        [metrics_path(e) for e in _MA_ISING],
    output:
        md="results/tables/mongeampere_ising.md",
        csv=report("results/tables/mongeampere_ising.csv", category=_MA_CAT,
                   subcategory="Ising free energy vs exact"),
    log:
        "results/logs/tables/mongeampere_ising.log",
    shell:
        "otflows table mongeampere-ising --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule figure_mongeampere_toys:
    input:
        [samples_path(e) for e in _MA_TOYS],
    output:
        png=report("results/figures/mongeampere_toys.png", category=_MA_CAT,
                   subcategory="2-D toys: data, density, samples"),
        svg="results/figures/mongeampere_toys.svg",
    log:
        "results/logs/figures/mongeampere_toys.log",
    shell:
        "otflows figure density --inputs {input} --out {output.png} 2> {log}"


if _MA_MNIST:
    TARGETS += ["results/tables/mongeampere_mnist.md", "results/figures/mongeampere_nll.png",
                "results/figures/mongeampere_flow.png"]
if _MA_ISING:
    TARGETS += ["results/tables/mongeampere_ising.md", "results/figures/mongeampere_ising.png",
                "results/figures/mongeampere_spins.png"]
if _MA_TOYS:
    TARGETS += ["results/figures/mongeampere_toys.png"]
