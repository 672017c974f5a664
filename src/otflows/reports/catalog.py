"""Every figure and table of the pipeline with the runs it is built from.

``rules/reports.smk`` makes one Snakemake rule per entry (one template, no hand-written copies)
and asks ``rule all`` for every entry's output, so a figure exists exactly when the runs it
shows do. Torch- and matplotlib-free: it is imported when the Snakefile is parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from otflows.pipeline.experiments import Experiment, select_runs

__all__ = ["BENCHMARK_CATEGORY", "CATALOGS", "Report", "catalog"]


@dataclass(frozen=True)
class Report:
    """One figure (``results/figures/<stem>.png`` + ``.svg``) or table
    (``results/tables/<stem>.md`` + ``.csv``), drawn by ``otflows figure|table <builder>``."""

    kind: str  # "figure" | "table"
    stem: str  # output name, also the rule name after "figure_" / "table_"
    builder: str  # the kind name in otflows.reports.FIGURES / TABLES
    inputs: tuple[str, ...]  # run outputs (samples, metrics, histories, prepared data)
    category: str  # section of the Snakemake HTML report
    subcategory: str = ""

    @property
    def rule(self) -> str:
        """The Snakemake rule name."""
        return f"{self.kind}_{self.stem}"

    @property
    def outputs(self) -> dict[str, str]:
        """Output paths by role: ``png``/``svg`` for a figure, ``md``/``csv`` for a table."""
        if self.kind == "figure":
            return {"png": f"results/figures/{self.stem}.png",
                    "svg": f"results/figures/{self.stem}.svg"}
        return {"md": f"results/tables/{self.stem}.md", "csv": f"results/tables/{self.stem}.csv"}

    @property
    def target(self) -> str:
        """The output ``rule all`` asks for (the PNG, or the markdown table)."""
        return self.outputs["png" if self.kind == "figure" else "md"]

    @property
    def log(self) -> str:
        """Where the rule's stderr goes."""
        return f"results/logs/{self.kind}s/{self.stem}.log"


def _fig(stem: str, builder: str, inputs: Sequence[str], category: str,
         subcategory: str = "") -> Report:
    return Report("figure", stem, builder, tuple(inputs), category, subcategory)


def _tab(stem: str, builder: str, inputs: Sequence[str], category: str,
         subcategory: str = "") -> Report:
    return Report("table", stem, builder, tuple(inputs), category, subcategory)


def _samples(runs: list[Experiment]) -> list[str]:
    return [e.samples_path for e in runs]


def _metrics(runs: list[Experiment]) -> list[str]:
    return [e.metrics_path for e in runs]


def _data(config: dict, runs: list[Experiment]) -> list[Report]:
    """The toy datasets and the MNIST VAE."""
    toys = [f"data/processed/toy/{d}.npz" for d in config["data"]["toy"]["datasets"]]
    out = [_fig("toy_datasets", "toys", toys, "Data")]
    for e in select_runs(runs, ["vae"]):
        out.append(_fig(f"vae_{e.name}", "vae", [e.samples_path], "Data",
                        "MNIST VAE: reconstructions and samples"))
    return out


def _jko(config: dict, runs: list[Experiment]) -> list[Report]:
    """JKO-Flow Tables 1-3, Figs. 1-5 (single shot = otflow, JKO-Flow = jko)."""
    both, cat, out = ["otflow", "jko"], "JKO-Flow", []
    datasets = config["jko"]["datasets"]
    for d in datasets:
        out.append(_fig(f"jko_alpha_{d}", "jko-alpha",
                        _samples(select_runs(runs, both, "jko_alpha", d)), cat,
                        "Fig. 1: samples by alpha"))
    if config["jko"]["widths"]:
        for d in datasets:
            out.append(_fig(f"jko_width_{d}", "jko-width",
                            _samples(select_runs(runs, both, "jko_width", d)), cat,
                            "Fig. 3: samples by width"))
    bench = select_runs(runs, ["jko"], "jko_alpha", benchmark=True)
    if bench:
        out.append(_fig("jko_density", "density", _samples(bench), cat,
                        "Fig. 2: data, density, samples"))
        if config["jko"]["K"] > 1:
            out.append(_fig("jko_iterations", "jko-iterations", _samples(bench), cat,
                            "Fig. 5 on the toys: MMD² per JKO iteration"))
    for sweep in ("alpha", "width") if config["jko"]["widths"] else ("alpha",):
        out.append(_tab(f"jko_{sweep}", f"jko-{sweep}",
                        _metrics(select_runs(runs, both, f"jko_{sweep}")), cat, "Tables 1-2"))
    mb = select_runs(runs, both, "jko_miniboone")
    if mb:
        fig_alpha = float(config["jko_miniboone"]["figure_alpha"])
        jko_mb = [e for e in mb if e.method == "jko"]
        out.append(_tab("jko_miniboone", "jko-miniboone", _samples(mb) + _metrics(mb), cat,
                        "Table 3: MINIBOONE"))
        out.append(_fig("jko_miniboone_iterations", "miniboone-iterations",
                        _samples(jko_mb) + _metrics(jko_mb), cat, "Fig. 5: MMD² per JKO iteration"))
        for alpha in sorted({float(e.cfg["alpha"]) for e in mb}):
            # Fig. 4 at figure_alpha; Figs. 17-19 (alpha = 1, 10, 50) and any other alpha
            tag = "" if alpha == fig_alpha else f"_a{alpha:g}".replace(".", "p")
            fig_runs = [e for e in mb if e.cfg["alpha"] == alpha]
            out.append(_fig(f"jko_miniboone_slices{tag}", "miniboone-slices",
                            _samples(fig_runs), cat, "Figs. 4, 17-19: MINIBOONE 2-D slices"))
    return out


def _ekp(config: dict, runs: list[Experiment]) -> list[Report]:
    """EKP Figs. 1-2, App. C Fig. 1 and the training curves."""
    toy, cat, out = select_runs(runs, ["ekp"], "ekp_toy"), "EKP", []
    if toy:
        field = [e for e in toy if e.dataset == "checkerboard"] or toy[:1]
        out += [_fig("ekp_densities", "ekp-densities", _samples(toy), cat,
                     "Fig. 2: true and estimated log-density, samples"),
                _fig("ekp_field", "ekp-field", _samples(field), cat,
                     "Fig. 1: vector field over the log-density"),
                _fig("ekp_training", "ekp-training", [e.history_path for e in toy], cat,
                     "Dual objective and constraint residual")]
    # closed forms only (App. C, Example 1): no run inputs
    out.append(_fig("ekp_interpolation", "ekp-interpolation", [], cat,
                    "App. C Fig. 1: W2 geodesic vs entropic interpolation"))
    return out


def _mongeampere(config: dict, runs: list[Experiment]) -> list[Report]:
    """Monge-Ampère flow Table 1, Figs. 3a-b (MNIST), Fig. 4 (Ising), the toys."""
    cat, out = "Monge-Ampère flow", []
    mnist = select_runs(runs, ["mongeampere"], "mongeampere_mnist")
    ising = select_runs(runs, ["mongeampere"], "mongeampere_ising")
    toys = select_runs(runs, ["mongeampere"], "mongeampere_toy")
    maf = select_runs(runs, ["mongeampere"], "mongeampere_maf")  # Table 1's matched MAF
    if mnist:
        out += [_tab("mongeampere_mnist", "mongeampere-mnist", _metrics(mnist + maf), cat,
                     "Table 1: MNIST test NLL"),
                _fig("mongeampere_nll", "mongeampere-nll", _samples(mnist) + _metrics(maf),
                     cat, "Fig. 3a: NLL per epoch"),
                _fig("mongeampere_flow", "mongeampere-flow", _samples(mnist), cat,
                     "Fig. 3b: test images flowing to the Gaussian")]
    if ising:
        out += [_tab("mongeampere_ising", "mongeampere-ising", _metrics(ising), cat,
                     "Ising free energy vs exact"),
                _fig("mongeampere_ising", "mongeampere-ising", _samples(ising) + _metrics(ising),
                     cat, "Fig. 4: Ising variational free energy"),
                _fig("mongeampere_spins", "mongeampere-spins", _samples(ising), cat,
                     "Generated Ising configurations")]
    if toys:
        out.append(_fig("mongeampere_toys", "density", _samples(toys), cat,
                        "2-D toys: data, density, samples"))
    return out


def _cpflow(config: dict, runs: list[Experiment]) -> list[Report]:
    """CP-Flow Fig. 3 (vs MAF/NAF), Fig. 4 (coupling), Tables 1-3."""
    cat, out = "CP-Flow", []

    def sweep(name: str) -> list[Experiment]:
        return select_runs(runs, ["cpflow"], name)

    toys, fig3 = sweep("cpflow_toy"), sweep("cpflow_fig3")
    fig3_runs = [e for e in toys if e.dataset in {f.dataset for f in fig3}] + fig3
    coupling = sweep("cpflow_coupling")
    if toys:
        out.append(_fig("cpflow_toys", "density", _samples(toys), cat,
                        "2-D toys: data, density, samples"))
    if fig3:
        out += [_fig("cpflow_fig3", "cpflow-fig3", _samples(fig3_runs), cat,
                     "Fig. 3: CP-Flow vs MAF vs NAF"),
                _tab("cpflow_fig3", "cpflow-fig3", _metrics(fig3_runs), cat, "Fig. 3: test NLL")]
    if coupling:
        out += [_fig("cpflow_coupling", "cpflow-coupling", _samples(coupling), cat,
                     "Fig. 4: transport cost vs KL"),
                _tab("cpflow_coupling", "cpflow-coupling", _metrics(coupling), cat,
                     "Fig. 4: gap to the closed-form W2")]
    # Table 2 gathers MNIST and CIFAR-10, Table 1 its five tabular columns (absent: not run).
    for name, sub, extra in (("mnist", "Table 2: MNIST and CIFAR-10 bits/dim", "cifar10"),
                             ("vae", "Table 3 setting: amortised VI", ""),
                             ("miniboone", "Table 1: tabular test NLL", "tabular")):
        chosen = sweep(f"cpflow_{name}") + (sweep(f"cpflow_{extra}") if extra else [])
        if chosen:
            out.append(_tab(f"cpflow_{name}", f"cpflow-{name}", _metrics(chosen), cat, sub))
    return out


def _qflow(config: dict, runs: list[Experiment]) -> list[Report]:
    """Q-flow §4.2 (GMM, toys), §4.3 (MI), §4.4 (EBM), §4.5 (translation)."""
    cat, out = "Q-flow", []

    def sweep(name: str) -> list[Experiment]:
        return select_runs(runs, ["qflow"], name)

    gmm, toys, mi, tr, ebm = (sweep(f"qflow_{n}") for n in
                              ("gmm", "toys", "mi", "translation", "ebm"))
    if gmm:
        out += [_fig("qflow_gmm", "qflow-gmm", _samples(gmm), cat,
                     "Fig. A.1: GMM log-ratio, true vs estimated"),
                _tab("qflow_gmm", "qflow-gmm", _metrics(gmm), cat, "GMM DRE: MAE and max error")]
    if toys:
        out += [_fig("qflow_toys", "qflow-toys", _samples(toys), cat,
                     "Fig. 2: trajectory, linear bridge, interval log-ratios"),
                _tab("qflow_transport", "qflow-transport",
                     _metrics(toys + gmm + sweep("qflow_toy")), cat,
                     "W2 cost of Q-flow vs the linear-interpolant bridge")]
    if mi:
        out += [_fig("qflow_mi", "qflow-mi", _metrics(mi), cat, "Fig. 3: estimated vs true MI"),
                _tab("qflow_mi", "qflow-mi", _metrics(mi), cat, "MI estimates by dimension")]
    if tr:
        out += [_fig("qflow_translation", "qflow-translation", _samples(tr), cat,
                     "Fig. 4b adapted: decoded latent trajectories"),
                _tab("qflow_translation", "qflow-translation", _metrics(tr), cat,
                     "Translation: target-class share, transport cost")]
    if ebm:
        out.append(_tab("qflow_ebm", "qflow-ebm", _metrics(ebm), cat,
                        "Table 1: energy-based MNIST, bits/dim"))
    return out


BENCHMARK_CATEGORY = "Cross-method benchmark"


def _benchmark(config: dict, runs: list[Experiment]) -> list[Report]:
    """The cross-method benchmark (issue 24): table and figure over every benchmark run;
    present only in the benchmark profile (its runs exist only there)."""
    bench = [e for e in runs if e.bench_eval]
    if not bench:
        return []
    return [_tab("benchmark", "benchmark", _metrics(bench), BENCHMARK_CATEGORY,
                 "Every method on every toy: mean ± 95 % interval over seeds"),
            _fig("benchmark", "benchmark", _samples(bench) + _metrics(bench),
                 BENCHMARK_CATEGORY, "Samples (seed 0) and MMD² with 95 % intervals")]


# One function per paper: (params, every run in order) -> its reports. Adding a method adds
# its function here.
CATALOGS: list[Callable[[dict, list[Experiment]], list[Report]]] = [
    _data, _jko, _ekp, _mongeampere, _cpflow, _qflow, _benchmark]


def catalog(config: dict, runs: list[Experiment]) -> list[Report]:
    """Every figure and table that params and the present runs ask for, in a stable order."""
    return [r for make in CATALOGS for r in make(config, runs)]
