# OT-Flow (single shot) and JKO-Flow on the 2-D toys: JKO-Flow Tables 1-2, Figs. 1-3.
_JKO = ["otflow", "jko"]


def _sweep_samples(sweep, dataset=None):
    return [samples_path(e) for e in runs(_JKO, sweep=sweep, dataset=dataset)]


def _sweep_metrics(sweep):
    return [metrics_path(e) for e in runs(_JKO, sweep=sweep)]


rule figure_jko_alpha:
    input:
        lambda w: _sweep_samples("jko_alpha", w.dataset),
    output:
        png=report("results/figures/jko_alpha_{dataset}.png", category="JKO-Flow",
                   subcategory="Fig. 1: samples by alpha"),
        svg="results/figures/jko_alpha_{dataset}.svg",
    log:
        "results/logs/figures/jko_alpha_{dataset}.log",
    shell:
        "otflows figure jko-alpha --inputs {input} --out {output.png} 2> {log}"


rule figure_jko_width:
    input:
        lambda w: _sweep_samples("jko_width", w.dataset),
    output:
        png=report("results/figures/jko_width_{dataset}.png", category="JKO-Flow",
                   subcategory="Fig. 3: samples by width"),
        svg="results/figures/jko_width_{dataset}.svg",
    log:
        "results/logs/figures/jko_width_{dataset}.log",
    shell:
        "otflows figure jko-width --inputs {input} --out {output.png} 2> {log}"


rule figure_jko_density:
    input:
        [samples_path(e) for e in runs(["jko"], sweep="jko_alpha", benchmark=True)],
    output:
        png=report("results/figures/jko_density.png", category="JKO-Flow",
                   subcategory="Fig. 2: data, density, samples"),
        svg="results/figures/jko_density.svg",
    log:
        "results/logs/figures/jko_density.log",
    shell:
        "otflows figure density --inputs {input} --out {output.png} 2> {log}"


rule table_jko:
    input:
        lambda w: _sweep_metrics(f"jko_{w.sweep}"),
    output:
        md="results/tables/jko_{sweep}.md",
        csv=report("results/tables/jko_{sweep}.csv", category="JKO-Flow",
                   subcategory="Tables 1-2"),
    wildcard_constraints:
        sweep="alpha|width",
    log:
        "results/logs/tables/jko_{sweep}.log",
    shell:
        "otflows table jko-{wildcards.sweep} --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


_JKO_DATASETS = config["jko"]["datasets"]
TARGETS += expand("results/figures/jko_alpha_{d}.png", d=_JKO_DATASETS)
if config["jko"]["widths"]:
    TARGETS += expand("results/figures/jko_width_{d}.png", d=_JKO_DATASETS)
    TARGETS += ["results/tables/jko_width.md"]
TARGETS += ["results/tables/jko_alpha.md"]
if runs(["jko"], sweep="jko_alpha", benchmark=True):
    TARGETS += ["results/figures/jko_density.png"]
