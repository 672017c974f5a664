"""Q-flow (Xu, Cheng, Xie, arXiv:2305.11857): toys, §4.2 DRE, §4.3 MI, §4.4 EBM and §4.5
translation."""

from __future__ import annotations

from otflows.pipeline.experiments.base import Experiment, mnist_name, toy_data

__all__ = ['experiments', 'qflow_data', 'qflow_ebm_stem']


# Keys of a `qflow` subsection that describe the problem or its evaluation, not the run.
_QF_PROBLEM_KEYS = ("eval_samples", "n_train", "n_test", "p", "q", "dims", "source",
                    "target", "classifier_iters", "enabled", "datasets", "model",
                    "shrinkage", "nsf_iters", "nsf_transforms", "nsf_hidden")
# A run config without a ratio net still names every QFlowConfig key.
_QF_NO_RATIO = {"dre": False, "baselines": False, "ratio_width": 1, "ratio_head": "mlp",
                "ratio_intervals": 1,
                "ratio_iters": 0, "ratio_lr": 1.0, "field_grid": 0}


def qflow_data(name: str) -> str:
    """Prepared problem file of a Q-flow experiment (``otflows prepare qflow-*``)."""
    return f"data/processed/qflow/{name}.npz"


def experiments(config: dict) -> list[Experiment]:
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
                       toy["eval_samples"], 0, True, toy_data(ds))
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
        stem = f"{mnist_name(config)}_latents_{tr['source']}to{tr['target']}"
        runs.append(Experiment("qflow", f"translation-{tr['source']}to{tr['target']}", stem,
                               "qflow_translation", run(tr, "pair"), tr["eval_samples"],
                               data_path=qflow_data(stem)))
    ebm = qf.get("ebm", {})
    if ebm.get("enabled", False):
        stem = f"{mnist_name(config)}_ebm_{ebm['model']}"
        runs.append(Experiment("qflow", f"ebm-{ebm['model']}", stem, "qflow_ebm",
                               run(ebm, "pair", dre=True, field_grid=0), ebm["eval_samples"],
                               data_path=qflow_data(stem)))
    return runs


def qflow_ebm_stem(config: dict) -> str:
    """Stem of the prepared §4.4 problem (``otflows prepare qflow-ebm``)."""
    return f"{mnist_name(config)}_ebm_{config['qflow']['ebm']['model']}"
