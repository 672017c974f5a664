"""`otflows prepare …` for the synthetic problems: 2-D toys, the Ising energy, CP-Flow's
Gaussians and Q-flow's two-sample problems, each written as one ``.npz``.

``qflow-gmm`` (§4.2 Gaussian mixtures), ``qflow-toys`` (§4.2 moons → checkerboard),
``qflow-mi`` (§4.3 correlated Gaussians), ``qflow-translation`` (§4.5 adapted: MNIST digit
→ digit in the VAE latent space, with a small MNIST classifier trained here), ``qflow-ebm``
(§4.4: MNIST against a fitted Gaussian or zuko NSF model); the layouts are documented in
``otflows.data.pairs``.
"""

from __future__ import annotations

import argparse

import numpy as np

from otflows.cli.io import load_npz, save_npz, set_threads

__all__ = ["add_commands"]


def cmd_prepare_toy(args: argparse.Namespace) -> int:
    from otflows.data.toy import sample_toy

    # Independent streams for train and test, derived from (seed, dataset name).
    root = np.random.SeedSequence([args.seed, *args.name.encode()])
    train_ss, test_ss = root.spawn(2)
    train = sample_toy(args.name, args.n_train, np.random.default_rng(train_ss))
    test = sample_toy(args.name, args.n_test, np.random.default_rng(test_ss))
    save_npz(args.out, train=train, test=test)
    return 0


def cmd_prepare_ising(args: argparse.Namespace) -> int:
    from otflows.data.ising import ising_problem

    problem = ising_problem(args.L, args.coupling, args.min_eigenvalue)
    save_npz(args.out, **problem.arrays())
    return 0


def cmd_prepare_gaussian(args: argparse.Namespace) -> int:
    from otflows.data.coupling import gaussian_entropy, gaussian_w2_squared, random_covariance

    rng = np.random.default_rng(np.random.SeedSequence([args.seed, args.d, 4]))
    cov = random_covariance(args.d, rng)
    chol = np.linalg.cholesky(cov)
    train = rng.standard_normal((args.n_train, args.d)) @ chol.T
    test = rng.standard_normal((args.n_test, args.d)) @ chol.T
    save_npz(args.out, train=train, test=test, cov=cov,
              w2_squared=np.array(gaussian_w2_squared(cov)),
              entropy=np.array(gaussian_entropy(cov)))
    return 0


def cmd_prepare_gmm(args: argparse.Namespace) -> int:
    from otflows.data.pairs import gmm_problem

    save_npz(args.out, **gmm_problem(args.n_train, args.n_test, args.seed))
    return 0


def cmd_prepare_toys(args: argparse.Namespace) -> int:
    from otflows.data.pairs import toy_pair_problem

    save_npz(args.out, **toy_pair_problem(args.p, args.q, args.n_train, args.n_test,
                                           args.seed))
    return 0


def cmd_prepare_mi(args: argparse.Namespace) -> int:
    from otflows.data.pairs import mi_problem

    save_npz(args.out, **mi_problem(args.d, args.n_train, args.n_test, args.seed))
    return 0


def cmd_prepare_translation(args: argparse.Namespace) -> int:
    import torch

    from otflows.data.pairs import train_mnist_classifier, translation_problem
    from otflows.methods.vae import make_trainer
    from otflows.pipeline.checkpoint import load_checkpoint

    set_threads(args.threads)
    if args.source == args.target:
        raise ValueError(f"qflow-translation: source and target digit are both {args.source}; "
                         f"choose two different digits in params.yaml (qflow.translation)")
    mnist = load_npz(args.mnist, "train_pixels", "train_labels", "test_pixels", "test_labels")
    latents = load_npz(args.latents, "train", "train_labels", "test", "test_labels")
    ckpt = load_checkpoint(args.vae)
    vae = make_trainer(ckpt["config"], mnist["train_pixels"][:2], args.seed,
                       torch.device("cpu"))
    vae.load_state_dict(ckpt["state"])
    clf = train_mnist_classifier(mnist["train_pixels"], mnist["train_labels"],
                                 args.classifier_iters, args.seed)
    with torch.no_grad():
        x = torch.as_tensor(mnist["test_pixels"], dtype=torch.float32) / 255.0
        acc = float((clf(x).argmax(1).numpy() == mnist["test_labels"]).mean())
    save_npz(args.out, **translation_problem(latents, vae.model, clf, args.source,
                                              args.target, acc))
    return 0


def cmd_prepare_ebm(args: argparse.Namespace) -> int:
    from otflows.data.pairs import ebm_problem

    set_threads(args.threads)
    mnist = load_npz(args.mnist, "train", "test")
    save_npz(args.out, **ebm_problem(mnist, args.model, args.seed, shrinkage=args.shrinkage,
                                      nsf_iters=args.nsf_iters,
                                      nsf_transforms=args.nsf_transforms,
                                      nsf_hidden=args.nsf_hidden))
    return 0


def add_commands(prep_sub: argparse._SubParsersAction) -> None:
    """Register the synthetic-problem builders on the `prepare` subparsers."""
    toy = prep_sub.add_parser("toy", help="sample a 2-D toy dataset into train/test arrays")
    toy.add_argument("--name", required=True)
    toy.add_argument("--n-train", type=int, required=True)
    toy.add_argument("--n-test", type=int, required=True)
    toy.add_argument("--seed", type=int, required=True)
    toy.add_argument("--out", required=True)
    toy.set_defaults(func=cmd_prepare_toy)
    ising = prep_sub.add_parser("ising", help="the continuous critical Ising model: K + aI, "
                                "its inverse and the exact free energy (Monge-Ampère §4.2)")
    ising.add_argument("--L", type=int, required=True, help="linear size of the torus")
    ising.add_argument("--coupling", type=float, required=True, help="K = J/kT")
    ising.add_argument("--min-eigenvalue", type=float, default=0.1,
                       help="smallest eigenvalue of K + aI (App. B: 0.1)")
    ising.add_argument("--out", required=True)
    ising.set_defaults(func=cmd_prepare_ising)
    g = prep_sub.add_parser("gaussian", help="N(0, Σ) with a random covariance and the "
                            "closed-form W2² to N(0, I) (CP-Flow Fig. 4)")
    g.add_argument("--d", type=int, required=True)
    g.add_argument("--n-train", type=int, required=True)
    g.add_argument("--n-test", type=int, required=True)
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--out", required=True)
    g.set_defaults(func=cmd_prepare_gaussian)
    def sizes(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n-train", type=int, required=True)
        p.add_argument("--n-test", type=int, required=True)
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--out", required=True)

    g = prep_sub.add_parser("qflow-gmm", help="Q-flow §4.2: 2-D GMMs with the analytic ratio")
    sizes(g)
    g.set_defaults(func=cmd_prepare_gmm)
    t = prep_sub.add_parser("qflow-toys", help="Q-flow §4.2: P and Q two 2-D toys")
    t.add_argument("--p", required=True)
    t.add_argument("--q", required=True)
    sizes(t)
    t.set_defaults(func=cmd_prepare_toys)
    m = prep_sub.add_parser("qflow-mi", help="Q-flow §4.3: correlated Gaussian vs marginals")
    m.add_argument("--d", type=int, required=True)
    sizes(m)
    m.set_defaults(func=cmd_prepare_mi)
    tr = prep_sub.add_parser("qflow-translation", help="Q-flow §4.5: digit → digit latents")
    tr.add_argument("--latents", required=True, help="VAE latents .npz (prepare_mnist_latents)")
    tr.add_argument("--mnist", required=True, help="prepared MNIST .npz (pixels, labels)")
    tr.add_argument("--vae", required=True, help="VAE checkpoint (the decoder)")
    tr.add_argument("--source", type=int, required=True)
    tr.add_argument("--target", type=int, required=True)
    tr.add_argument("--classifier-iters", type=int, required=True)
    tr.add_argument("--seed", type=int, required=True)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--out", required=True)
    tr.set_defaults(func=cmd_prepare_translation)
    eb = prep_sub.add_parser("qflow-ebm", help="Q-flow §4.4: MNIST vs a fitted model F#N(0, I)")
    eb.add_argument("--mnist", required=True, help="prepared MNIST .npz (logit space)")
    eb.add_argument("--model", choices=["gaussian", "nsf"], required=True)
    eb.add_argument("--shrinkage", type=float, default=1e-2, help="gaussian: Σ + sI")
    eb.add_argument("--nsf-iters", type=int, default=1000)
    eb.add_argument("--nsf-transforms", type=int, default=3)
    eb.add_argument("--nsf-hidden", type=int, default=256)
    eb.add_argument("--seed", type=int, required=True)
    eb.add_argument("--threads", type=int, default=1)
    eb.add_argument("--out", required=True)
    eb.set_defaults(func=cmd_prepare_ebm)
