"""JKO-Flow (Vidal et al. 2023) on OT-Flow (Onken et al. 2021): the runs of Tables 1-3 and
Figs. 1-5. Single shot is the `otflow` method (K = 1); JKO-Flow the `jko` method."""

from __future__ import annotations

from otflows.pipeline.experiments.base import (
    DENSITY_GRID,
    MINIBOONE_DATA,
    Experiment,
    fmt,
    toy_data,
)

__all__ = ['experiments', 'miniboone_experiments']


# Keys of the `otflow` section that configure evaluation, not training.
_EVAL_KEYS = ("eval_samples",)


def experiments(config: dict) -> list[Experiment]:
    """Tables 1-2 and Figs. 1-3: every toy x alpha and x width, single shot and JKO-Flow."""
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
                                   toy_data(dataset), init, also_in))

    alphas = [float(a) for a in jko["alphas"]]
    for ds in jko["datasets"]:
        width_alpha = float(jko["width_alpha"].get(ds, jko["default_width_alpha"]))
        # Table 2's point at the default width and its alpha is Table 1's run: train it once
        shared = width_alpha in alphas and solver["width"] in jko["widths"]
        for alpha in jko["alphas"]:
            grid = float(alpha) == float(jko["benchmark_alpha"])
            also = ("jko_width",) if shared and float(alpha) == width_alpha else ()
            add("jko_alpha", ds, f"alpha-{ds}-a{fmt(alpha)}", alpha, solver["width"], grid,
                also)
        for width in jko["widths"]:
            if not (shared and width == solver["width"]):
                add("jko_width", ds, f"width-{ds}-m{width}", width_alpha, width, False)
    return runs



def miniboone_experiments(config: dict) -> list[Experiment]:
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
            runs.append(Experiment(method, f"miniboone-a{fmt(alpha)}", "miniboone",
                                   "jko_miniboone", cfg, section["eval_samples"],
                                   data_path=MINIBOONE_DATA))
    return runs
