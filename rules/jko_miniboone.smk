# JKO-Flow on MINIBOONE: Table 3, Fig. 4 (2-D slices), Fig. 5 (MMD² per JKO iteration).
# These runs exist only when data/raw/miniboone holds the raw file (otflows.pipeline.experiments);
# otherwise results/tables/not_run.md lists them.
_MB_RUNS = runs(["otflow", "jko"], sweep="jko_miniboone")
_MB_FIG_ALPHA = float(config["jko_miniboone"]["figure_alpha"])
_MB_FIG_RUNS = [e for e in _MB_RUNS if e.cfg["alpha"] == _MB_FIG_ALPHA]


rule table_jko_miniboone:
    input:
        [samples_path(e) for e in _MB_RUNS] + [metrics_path(e) for e in _MB_RUNS],
    output:
        md="results/tables/jko_miniboone.md",
        csv=report("results/tables/jko_miniboone.csv", category="JKO-Flow",
                   subcategory="Table 3: MINIBOONE"),
    log:
        "results/logs/tables/jko_miniboone.log",
    shell:
        "otflows table jko-miniboone --inputs {input} --out-md {output.md}"
        " --out-csv {output.csv} 2> {log}"


rule figure_jko_miniboone_slices:
    input:
        [samples_path(e) for e in _MB_FIG_RUNS],
    output:
        png=report("results/figures/jko_miniboone_slices.png", category="JKO-Flow",
                   subcategory="Fig. 4: MINIBOONE 2-D slices"),
        svg="results/figures/jko_miniboone_slices.svg",
    log:
        "results/logs/figures/jko_miniboone_slices.log",
    shell:
        "otflows figure miniboone-slices --inputs {input} --out {output.png} 2> {log}"


rule figure_jko_miniboone_iterations:
    input:
        [f(e) for f in (samples_path, metrics_path) for e in _MB_RUNS if e.method == "jko"],
    output:
        png=report("results/figures/jko_miniboone_iterations.png", category="JKO-Flow",
                   subcategory="Fig. 5: MMD² per JKO iteration"),
        svg="results/figures/jko_miniboone_iterations.svg",
    log:
        "results/logs/figures/jko_miniboone_iterations.log",
    shell:
        "otflows figure miniboone-iterations --inputs {input} --out {output.png} 2> {log}"


if _MB_RUNS:
    TARGETS += ["results/tables/jko_miniboone.md", "results/figures/jko_miniboone_iterations.png"]
if _MB_FIG_RUNS:
    TARGETS += ["results/figures/jko_miniboone_slices.png"]
