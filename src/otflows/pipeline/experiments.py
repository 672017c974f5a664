"""Experiment grids: which runs (method, experiment, dataset, run config) params asks for.

The Snakefile enumerates targets from here and hands each training job exactly its own
resolved run config, so an edit reruns precisely the runs whose config changed.
Torch-free on purpose: it is imported when the Snakefile is parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from otflows.data.miniboone import FETCH_HINT, RAW_DIR, raw_path

__all__ = ["Experiment", "all_experiments", "experiment_index", "experiments_not_run",
           "mongeampere_ising_data"]

# Keys of the `otflow` section that configure evaluation, not training.
_EVAL_KEYS = ("eval_samples",)
DENSITY_GRID = 120  # grid points per axis for 2-D density figures


@dataclass(frozen=True)
class Experiment:
    """One training run and its evaluation."""

    method: str
    name: str
    dataset: str
    sweep: str
    cfg: dict = field(compare=False, hash=False)
    eval_samples: int = 5000
    density_grid: int = 0  # >0: evaluate log-density on a grid (2-D figures)
    benchmark: bool = False  # shown in the cross-method toy benchmark and Fig. 2
    data_path: str = ""  # prepared .npz with `train` and `test`; empty: the toy file
    # "<method>/<name>" of a finished run this one continues from (JKO-Flow from its
    # single-shot run, whose training is exactly JKO's subproblem 1); empty: from scratch
    init_from: str = ""
    # further sweeps this run belongs to (the alpha run at the width sweep's alpha and the
    # default width is also that sweep's point: trained once, shown in both)
    also_in: tuple[str, ...] = ()
    # False: the generic `evaluate` rule skips it (the VAE is scored by `prepare mnist-latents`)
    evaluate: bool = True

    def in_sweep(self, sweep: str) -> bool:
        """Whether the run is a point of ``sweep``."""
        return sweep == self.sweep or sweep in self.also_in

    @property
    def data(self) -> str:
        """Prepared data file the run trains and is evaluated on."""
        return self.data_path or f"data/processed/toy/{self.dataset}.npz"

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    def cfg_json(self) -> str:
        """The run config as canonical JSON (what the train rule passes and compares)."""
        return json.dumps(self.cfg, sort_keys=True, separators=(",", ":"))


def _fmt(value: float) -> str:
    return f"{value:g}"


def _otflow_runs(config: dict) -> list[Experiment]:
    solver = {k: v for k, v in config["otflow"].items() if k not in _EVAL_KEYS}
    jko = config["jko"]
    eval_samples = config["otflow"]["eval_samples"]
    runs: list[Experiment] = []

    def add(sweep: str, dataset: str, name: str, alpha: float, width: int, grid: bool,
            also_in: tuple[str, ...] = ()) -> None:
        for method, k in (("otflow", 1), ("jko", jko["K"])):
            cfg = {**solver, "alpha": float(alpha), "width": int(width), "K": int(k)}
            init = f"otflow/{name}" if method == "jko" and int(k) > 1 else ""
            runs.append(Experiment(method, name, dataset, sweep, cfg, eval_samples,
                                   DENSITY_GRID if grid else 0, grid,
                                   f"data/processed/toy/{dataset}.npz", init, also_in))

    alphas = [float(a) for a in jko["alphas"]]
    for ds in jko["datasets"]:
        width_alpha = float(jko["width_alpha"].get(ds, jko["default_width_alpha"]))
        # Table 2's point at the default width and its alpha is Table 1's run: train it once
        shared = width_alpha in alphas and solver["width"] in jko["widths"]
        for alpha in jko["alphas"]:
            grid = float(alpha) == float(jko["benchmark_alpha"])
            also = ("jko_width",) if shared and float(alpha) == width_alpha else ()
            add("jko_alpha", ds, f"alpha-{ds}-a{_fmt(alpha)}", alpha, solver["width"], grid,
                also)
        for width in jko["widths"]:
            if not (shared and width == solver["width"]):
                add("jko_width", ds, f"width-{ds}-m{width}", width_alpha, width, False)
    return runs


# Keys of the `ekp` section that select runs or configure evaluation, not one training run.
_EKP_RUN_KEYS_EXCLUDED = ("datasets", "eval_samples", "iters_by_dataset")


def _ekp_runs(config: dict) -> list[Experiment]:
    """EKP (arXiv:2006.06033) Figs. 1-2: one run per toy; App. D's iterations per dataset."""
    ekp = config.get("ekp")
    if not ekp:
        return []
    base = {k: v for k, v in ekp.items() if k not in _EKP_RUN_KEYS_EXCLUDED}
    runs = []
    for ds in ekp["datasets"]:
        cfg = {**base, "iters": int(ekp["iters_by_dataset"].get(ds, ekp["iters"]))}
        runs.append(Experiment("ekp", f"toy-{ds}", ds, "ekp_toy", cfg, ekp["eval_samples"],
                               DENSITY_GRID, True, f"data/processed/toy/{ds}.npz"))
    return runs


MINIBOONE_DATA = "data/processed/miniboone.npz"


def _miniboone_runs(config: dict) -> list[Experiment]:
    """JKO-Flow Table 3: every alpha x {single shot (otflow, K=1), JKO-Flow (jko, K)}."""
    section = config.get("jko_miniboone")
    if not section:
        return []
    solver = {k: v for k, v in section.items()
              if k not in ("alphas", "eval_samples", "figure_alpha")}
    runs = []
    for alpha in section["alphas"]:
        for method, k in (("otflow", 1), ("jko", section["K"])):
            cfg = {**solver, "alpha": float(alpha), "K": int(k)}
            runs.append(Experiment(method, f"miniboone-a{_fmt(alpha)}", "miniboone",
                                   "jko_miniboone", cfg, section["eval_samples"],
                                   data_path=MINIBOONE_DATA))
    return runs


def _miniboone_present(config: dict, root: str | Path) -> bool:
    source = config.get("data", {}).get("miniboone", {}).get("source", "maf")
    return (Path(root) / raw_path(source)).is_file()


# Keys of the `mongeampere` subsections that are not part of one run's trainer config:
# evaluation size, and the Ising problem itself (it lives in the prepared data file).
_MA_EVAL_KEYS = ("eval_samples",)
_MA_ISING_PROBLEM_KEYS = ("L", "coupling", "min_eigenvalue")


def mongeampere_ising_data(config: dict) -> str:
    """The prepared Ising problem of the `mongeampere.ising` section (``otflows prepare ising``)."""
    return f"data/processed/ising_L{config['mongeampere']['ising']['L']}.npz"


def _mnist_name(config: dict) -> str:
    """The prepared MNIST file's stem in rules/data.smk: ``mnist5k`` or ``mnist`` (full)."""
    return "mnist5k" if config["data"]["mnist"]["source"] == "mnist5k" else "mnist"


def _mongeampere_runs(config: dict) -> list[Experiment]:
    """Monge-Ampère flow (arXiv:1809.10188): every toy (the toy benchmark), MNIST (§4.1,
    Table 1, Fig. 3) and the critical Ising model (§4.2, Fig. 4)."""
    ma = config.get("mongeampere")
    if not ma:
        return []

    def run_cfg(section: dict, task: str, drop: tuple[str, ...] = ()) -> dict:
        return {"task": task, **{k: v for k, v in section.items()
                                 if k not in _MA_EVAL_KEYS + drop}}

    toy = {**run_cfg(ma["toy"], "density"), "monitor": 0}
    runs = [Experiment("mongeampere", f"toy-{ds}", ds, "mongeampere_toy", toy,
                       ma["toy"]["eval_samples"], DENSITY_GRID, True,
                       f"data/processed/toy/{ds}.npz")
            for ds in config["data"]["toy"]["datasets"]]
    mnist = _mnist_name(config)
    runs.append(Experiment("mongeampere", mnist, mnist, "mongeampere_mnist",
                           run_cfg(ma["mnist"], "density"), ma["mnist"]["eval_samples"],
                           data_path=f"data/processed/{mnist}.npz"))
    ising = ma["ising"]
    runs.append(Experiment("mongeampere", f"ising-L{ising['L']}", f"ising_L{ising['L']}",
                           "mongeampere_ising", run_cfg(ising, "ising", _MA_ISING_PROBLEM_KEYS),
                           ising["eval_samples"], data_path=mongeampere_ising_data(config)))
    return runs


# Keys of a `cpflow` run subsection that configure evaluation, not the trainer.
_CP_EVAL_KEYS = ("eval_samples",)


def _cpflow_run(section: dict, task: str, model: str = "cpflow", **over: object) -> dict:
    return {"task": task, "model": model,
            **{k: v for k, v in section.items() if k not in _CP_EVAL_KEYS}, **over}


def _cpflow_runs(config: dict) -> list[Experiment]:
    """CP-Flow (arXiv:2012.05942): every toy (the toy benchmark, and Fig. 3's CP-Flow
    column), Fig. 3's zuko MAF/NAF baselines, Fig. 4's Gaussian coupling (CP-Flow and a
    zuko linear IAF per dimension), MNIST bits/dim (Table 2), amortised VI (Table 3)."""
    cp = config.get("cpflow")
    if not cp:
        return []
    toy = cp["toy"]
    toys = list(config["data"]["toy"]["datasets"])
    runs = [Experiment("cpflow", f"toy-{ds}", ds, "cpflow_toy", _cpflow_run(toy, "density"),
                       toy["eval_samples"], DENSITY_GRID, True, f"data/processed/toy/{ds}.npz")
            for ds in toys]
    fig3 = cp["fig3"]
    for ds in [d for d in fig3["datasets"] if d in toys]:
        for model in ("maf", "naf"):
            runs.append(Experiment("cpflow", f"fig3-{model}-{ds}", ds, "cpflow_fig3",
                                   _cpflow_run(toy, "density", model,
                                               transforms=fig3["transforms"]),
                                   toy["eval_samples"], DENSITY_GRID, False,
                                   f"data/processed/toy/{ds}.npz"))
    coupling = cp["coupling"]
    for d in cp["coupling_data"]["dims"]:
        for model in ("cpflow", "linear_iaf"):
            runs.append(Experiment("cpflow", f"coupling-d{d}-{model}", f"gaussian_d{d}",
                                   "cpflow_coupling", _cpflow_run(coupling, "coupling", model),
                                   coupling["eval_samples"],
                                   data_path=f"data/processed/gaussian_d{d}.npz"))
    mnist = _mnist_name(config)
    runs.append(Experiment("cpflow", mnist, mnist, "cpflow_mnist",
                           _cpflow_run(cp["mnist"], "density"), cp["mnist"]["eval_samples"],
                           data_path=f"data/processed/{mnist}.npz"))
    if cp.get("vae"):
        vae = {k: v for k, v in cp["vae"].items() if k not in _CP_EVAL_KEYS}
        for posterior in ("cpflow", "gaussian"):
            runs.append(Experiment("cpflow", f"vae-{posterior}-{mnist}", mnist, "cpflow_vae",
                                   {"task": "vae", **vae, "posterior": posterior},
                                   cp["vae"]["eval_samples"],
                                   data_path=f"data/processed/{mnist}.npz"))
    return runs


def _cpflow_miniboone_runs(config: dict) -> list[Experiment]:
    """CP-Flow Table 1: MINIBOONE test NLL (runs only when data/raw/miniboone is present)."""
    cp = config.get("cpflow")
    if not cp:
        return []
    mb = cp["miniboone"]
    return [Experiment("cpflow", "miniboone", "miniboone", "cpflow_miniboone",
                       _cpflow_run(mb, "density"), mb["eval_samples"],
                       data_path=MINIBOONE_DATA)]


# Keys of a `qflow` subsection that describe the problem or its evaluation, not the run.
_QF_PROBLEM_KEYS = ("eval_samples", "n_train", "n_test", "p", "q", "dims", "source",
                    "target", "classifier_iters", "enabled", "datasets", "model",
                    "shrinkage", "nsf_iters", "nsf_transforms", "nsf_hidden")
# A run config without a ratio net still names every QFlowConfig key.
_QF_NO_RATIO = {"dre": False, "baselines": False, "ratio_width": 1, "ratio_intervals": 1,
                "ratio_iters": 0, "ratio_lr": 1.0, "field_grid": 0}


def qflow_data(name: str) -> str:
    """Prepared problem file of a Q-flow experiment (``otflows prepare qflow-*``)."""
    return f"data/processed/qflow/{name}.npz"


def _qflow_runs(config: dict) -> list[Experiment]:
    """Q-flow (arXiv:2305.11857): N(0, I) → every toy (the toy benchmark), the §4.2 GMM DRE
    and moons → checkerboard (Fig. 2), §4.3 MI for every d, §4.5 digit → digit in the VAE
    latent space; §4.4 energy-based MNIST when ``qflow.ebm.enabled`` (the paper profile)."""
    qf = config.get("qflow")
    if not qf:
        return []

    def run(section: dict, task: str, **over: object) -> dict:
        base = {**_QF_NO_RATIO} if not over.get("dre") else {}
        return {**base, "task": task,
                **{k: v for k, v in section.items() if k not in _QF_PROBLEM_KEYS}, **over}

    toy = qf["toy"]
    runs = [Experiment("qflow", f"toy-{ds}", ds, "qflow_toy", run(toy, "toy"),
                       toy["eval_samples"], 0, True, f"data/processed/toy/{ds}.npz")
            for ds in toy.get("datasets", config["data"]["toy"]["datasets"])]
    gmm = qf["gmm"]
    runs.append(Experiment("qflow", "gmm", "gmm", "qflow_gmm",
                           run(gmm, "pair", dre=True, baselines=True, field_grid=0),
                           gmm["eval_samples"], data_path=qflow_data("gmm")))
    toys = qf["toys"]
    name = f"{toys['p']}-{toys['q']}"
    runs.append(Experiment("qflow", name, name, "qflow_toys",
                           run(toys, "pair", dre=True, baselines=False),
                           toys["eval_samples"], data_path=qflow_data(name)))
    mi = qf["mi"]
    for d in mi["dims"]:
        runs.append(Experiment("qflow", f"mi-d{d}", f"mi_d{d}", "qflow_mi",
                               run(mi, "pair", dre=True, baselines=True, field_grid=0),
                               mi["eval_samples"], data_path=qflow_data(f"mi_d{d}")))
    tr = qf["translation"]
    if tr.get("enabled", True):
        stem = f"{_mnist_name(config)}_latents_{tr['source']}to{tr['target']}"
        runs.append(Experiment("qflow", f"translation-{tr['source']}to{tr['target']}", stem,
                               "qflow_translation", run(tr, "pair"), tr["eval_samples"],
                               data_path=qflow_data(stem)))
    ebm = qf.get("ebm", {})
    if ebm.get("enabled", False):
        stem = f"{_mnist_name(config)}_ebm_{ebm['model']}"
        runs.append(Experiment("qflow", f"ebm-{ebm['model']}", stem, "qflow_ebm",
                               run(ebm, "pair", dre=True, field_grid=0), ebm["eval_samples"],
                               data_path=qflow_data(stem)))
    return runs


def qflow_ebm_stem(config: dict) -> str:
    """Stem of the prepared §4.4 problem (``otflows prepare qflow-ebm``)."""
    return f"{_mnist_name(config)}_ebm_{config['qflow']['ebm']['model']}"


def _vae_runs(config: dict) -> list[Experiment]:
    """The MNIST VAE whose latents Q-flow translates (§4.5) and CP-Flow's VI task uses."""
    mnist = _mnist_name(config)
    cfg = {k: v for k, v in config["vae"].items() if k != "eval_samples"}
    return [Experiment("vae", mnist, mnist, "vae", cfg, config["vae"]["eval_samples"],
                       data_path=f"data/processed/{mnist}.npz", evaluate=False)]


def all_experiments(config: dict, root: str | Path = ".") -> list[Experiment]:
    """Every run params asks for whose raw data is present under ``root``, in a stable
    order. MINIBOONE runs need data/raw/miniboone; nothing ever stands in for it."""
    runs = _otflow_runs(config) + _ekp_runs(config) + _mongeampere_runs(config)
    runs += _cpflow_runs(config)
    runs += _qflow_runs(config)
    runs += _vae_runs(config)
    if _miniboone_present(config, root):
        runs += _miniboone_runs(config)
        runs += _cpflow_miniboone_runs(config)
    return runs


def experiments_not_run(config: dict, root: str | Path = ".") -> list[dict[str, str]]:
    """Runs params asks for but whose raw data is absent: method, experiment, dataset and
    the reason, for the not-run list of the summary and the report."""
    if _miniboone_present(config, root):
        return []
    reason = f"not run: {RAW_DIR} absent ({FETCH_HINT})"
    return [{"method": e.method, "experiment": e.name, "dataset": e.dataset, "reason": reason}
            for e in _miniboone_runs(config) + _cpflow_miniboone_runs(config)]


def experiment_index(config: dict, root: str | Path = ".") -> dict[tuple[str, str], Experiment]:
    """``{(method, experiment name): Experiment}``."""
    return {(e.method, e.name): e for e in all_experiments(config, root)}
