"""The MNIST VAE (`vae` method): its latents are Q-flow's §4.5 data and CP-Flow's VI model."""

from __future__ import annotations

from otflows.pipeline.experiments.base import Experiment, mnist_name

__all__ = ['experiments']


def experiments(config: dict) -> list[Experiment]:
    """The MNIST VAE whose latents Q-flow translates (§4.5) and CP-Flow's VI task uses."""
    mnist = mnist_name(config)
    cfg = {k: v for k, v in config["vae"].items() if k != "eval_samples"}
    return [Experiment("vae", mnist, mnist, "vae", cfg, config["vae"]["eval_samples"],
                       data_path=f"data/processed/{mnist}.npz", evaluate=False)]
