"""`otflows prepare gaussian`: the Gaussian data of CP-Flow's optimal-coupling experiment."""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["add_prepare_commands"]


def cmd_prepare_gaussian(args: argparse.Namespace) -> int:
    from otflows.cli import _save_npz
    from otflows.data.coupling import gaussian_entropy, gaussian_w2_squared, random_covariance

    rng = np.random.default_rng(np.random.SeedSequence([args.seed, args.d, 4]))
    cov = random_covariance(args.d, rng)
    chol = np.linalg.cholesky(cov)
    train = rng.standard_normal((args.n_train, args.d)) @ chol.T
    test = rng.standard_normal((args.n_test, args.d)) @ chol.T
    _save_npz(args.out, train=train, test=test, cov=cov,
              w2_squared=np.array(gaussian_w2_squared(cov)),
              entropy=np.array(gaussian_entropy(cov)))
    return 0


def add_prepare_commands(prep_sub: argparse._SubParsersAction) -> None:
    """Register ``prepare gaussian`` under ``otflows prepare``."""
    g = prep_sub.add_parser("gaussian", help="N(0, Σ) with a random covariance and the "
                            "closed-form W2² to N(0, I) (CP-Flow Fig. 4)")
    g.add_argument("--d", type=int, required=True)
    g.add_argument("--n-train", type=int, required=True)
    g.add_argument("--n-test", type=int, required=True)
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--out", required=True)
    g.set_defaults(func=cmd_prepare_gaussian)
