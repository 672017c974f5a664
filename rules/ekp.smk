# Entropy-Kantorovich potentials (Finlay et al., arXiv:2006.06033) on the 2-D toys: Figs. 1-2,
# App. C Fig. 1 and the training curves. Training and evaluation are the generic rules.
_EKP_RUNS = runs(["ekp"], sweep="ekp_toy")
_EKP_FIELD = [e for e in _EKP_RUNS if e.dataset == "checkerboard"] or _EKP_RUNS[:1]


rule figure_ekp_densities:
    input:
        [samples_path(e) for e in _EKP_RUNS],
    output:
        png=report("results/figures/ekp_densities.png", category="EKP",
                   subcategory="Fig. 2: true and estimated log-density, samples"),
        svg="results/figures/ekp_densities.svg",
    log:
        "results/logs/figures/ekp_densities.log",
    shell:
        "otflows figure ekp-densities --inputs {input} --out {output.png} 2> {log}"


rule figure_ekp_field:
    input:
        [samples_path(e) for e in _EKP_FIELD],
    output:
        png=report("results/figures/ekp_field.png", category="EKP",
                   subcategory="Fig. 1: vector field over the log-density"),
        svg="results/figures/ekp_field.svg",
    log:
        "results/logs/figures/ekp_field.log",
    shell:
        "otflows figure ekp-field --inputs {input} --out {output.png} 2> {log}"


rule figure_ekp_training:
    input:
        [f"results/plots/ekp/{e.name}.csv" for e in _EKP_RUNS],
    output:
        png=report("results/figures/ekp_training.png", category="EKP",
                   subcategory="Dual objective and constraint residual"),
        svg="results/figures/ekp_training.svg",
    log:
        "results/logs/figures/ekp_training.log",
    shell:
        "otflows figure ekp-training --inputs {input} --out {output.png} 2> {log}"


# Closed forms only (App. C, Example 1): no run inputs.
rule figure_ekp_interpolation:
    output:
        png=report("results/figures/ekp_interpolation.png", category="EKP",
                   subcategory="App. C Fig. 1: W2 geodesic vs entropic interpolation"),
        svg="results/figures/ekp_interpolation.svg",
    log:
        "results/logs/figures/ekp_interpolation.log",
    shell:
        "otflows figure ekp-interpolation --out {output.png} 2> {log}"


if _EKP_RUNS:
    TARGETS += ["results/figures/ekp_densities.png", "results/figures/ekp_field.png",
                "results/figures/ekp_training.png"]
TARGETS += ["results/figures/ekp_interpolation.png"]
