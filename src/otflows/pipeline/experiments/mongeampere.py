"""Monge-Ampère flow (Zhang, E, Wang, arXiv:1809.10188): toys, MNIST (§4.1) and Ising (§4.2)."""

from __future__ import annotations

from otflows.pipeline.experiments.base import DENSITY_GRID, Experiment, mnist_name, toy_data

__all__ = ['experiments', 'mongeampere_ising_data']


# Keys of the `mongeampere` subsections that are not part of one run's trainer config:
# evaluation size, and the Ising problem itself (it lives in the prepared data file).
_MA_EVAL_KEYS = ("eval_samples",)
_MA_ISING_PROBLEM_KEYS = ("L", "coupling", "min_eigenvalue")


def mongeampere_ising_data(config: dict) -> str:
    """The prepared Ising problem of the `mongeampere.ising` section (``otflows prepare ising``)."""
    return f"data/processed/ising_L{config['mongeampere']['ising']['L']}.npz"


def experiments(config: dict) -> list[Experiment]:
    """Monge-Ampère flow (arXiv:1809.10188): every toy (the toy benchmark), MNIST (§4.1,
    Table 1, Fig. 3) with its matched MAF baseline, and the critical Ising model (§4.2,
    Fig. 4)."""
    ma = config.get("mongeampere")
    if not ma:
        return []

    def run_cfg(section: dict, task: str, drop: tuple[str, ...] = ()) -> dict:
        return {"task": task, **{k: v for k, v in section.items()
                                 if k not in _MA_EVAL_KEYS + drop}}

    toy = {**run_cfg(ma["toy"], "density"), "monitor": 0}
    runs = [Experiment("mongeampere", f"toy-{ds}", ds, "mongeampere_toy", toy,
                       ma["toy"]["eval_samples"], DENSITY_GRID, True,
                       toy_data(ds))
            for ds in config["data"]["toy"]["datasets"]]
    mnist = mnist_name(config)
    runs.append(Experiment("mongeampere", mnist, mnist, "mongeampere_mnist",
                           run_cfg(ma["mnist"], "density"), ma["mnist"]["eval_samples"],
                           data_path=f"data/processed/{mnist}.npz"))
    # Table 1's MAF at this scale: parameter count and wall time matched to the run above
    runs.append(Experiment("mongeampere", f"maf-{mnist}", mnist, "mongeampere_maf",
                           run_cfg(ma["maf"], "maf"), ma["maf"]["eval_samples"],
                           data_path=f"data/processed/{mnist}.npz"))
    ising = ma["ising"]
    runs.append(Experiment("mongeampere", f"ising-L{ising['L']}", f"ising_L{ising['L']}",
                           "mongeampere_ising", run_cfg(ising, "ising", _MA_ISING_PROBLEM_KEYS),
                           ising["eval_samples"], data_path=mongeampere_ising_data(config)))
    return runs
