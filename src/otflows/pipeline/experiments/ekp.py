"""Entropy-Kantorovich potentials (Finlay et al., arXiv:2006.06033): one run per toy."""

from __future__ import annotations

from otflows.pipeline.experiments.base import DENSITY_GRID, Experiment, toy_data

__all__ = ['experiments']


# Keys of the `ekp` section that select runs or configure evaluation, not one training run.
_EKP_RUN_KEYS_EXCLUDED = ("datasets", "eval_samples", "iters_by_dataset")


def experiments(config: dict) -> list[Experiment]:
    """EKP (arXiv:2006.06033) Figs. 1-2: one run per toy; App. D's iterations per dataset."""
    ekp = config.get("ekp")
    if not ekp:
        return []
    base = {k: v for k, v in ekp.items() if k not in _EKP_RUN_KEYS_EXCLUDED}
    runs = []
    for ds in ekp["datasets"]:
        cfg = {**base, "iters": int(ekp["iters_by_dataset"].get(ds, ekp["iters"]))}
        runs.append(Experiment("ekp", f"toy-{ds}", ds, "ekp_toy", cfg, ekp["eval_samples"],
                               DENSITY_GRID, True, toy_data(ds)))
    return runs
