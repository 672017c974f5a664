"""The `otflows prepare qflow-*` subcommands: Q-flow's two-sample problems as ``.npz`` files.

``qflow-gmm`` (§4.2 Gaussian mixtures), ``qflow-toys`` (§4.2 moons → checkerboard),
``qflow-mi`` (§4.3 correlated Gaussians), ``qflow-translation`` (§4.5 adapted: MNIST digit
→ digit in the VAE latent space, with a small MNIST classifier trained here), ``qflow-ebm``
(§4.4: MNIST against a fitted Gaussian or zuko NSF model). The layout is
documented in ``otflows.data.pairs``; registered on the main parser by
``add_qflow_commands``.
"""

from __future__ import annotations

import argparse

from otflows.cli import _load_npz, _save_npz, _set_threads

__all__ = ["add_qflow_commands"]


def cmd_prepare_gmm(args: argparse.Namespace) -> int:
    from otflows.data.pairs import gmm_problem

    _save_npz(args.out, **gmm_problem(args.n_train, args.n_test, args.seed))
    return 0


def cmd_prepare_toys(args: argparse.Namespace) -> int:
    from otflows.data.pairs import toy_pair_problem

    _save_npz(args.out, **toy_pair_problem(args.p, args.q, args.n_train, args.n_test,
                                           args.seed))
    return 0


def cmd_prepare_mi(args: argparse.Namespace) -> int:
    from otflows.data.pairs import mi_problem

    _save_npz(args.out, **mi_problem(args.d, args.n_train, args.n_test, args.seed))
    return 0


def cmd_prepare_translation(args: argparse.Namespace) -> int:
    import torch

    from otflows.checkpoint import load_checkpoint
    from otflows.data.pairs import train_mnist_classifier, translation_problem
    from otflows.data.vae import make_trainer

    _set_threads(args.threads)
    if args.source == args.target:
        raise ValueError(f"qflow-translation: source and target digit are both {args.source}; "
                         f"choose two different digits in params.yaml (qflow.translation)")
    mnist = _load_npz(args.mnist, "train_pixels", "train_labels", "test_pixels", "test_labels")
    latents = _load_npz(args.latents, "train", "train_labels", "test", "test_labels")
    ckpt = load_checkpoint(args.vae)
    vae = make_trainer(ckpt["config"], mnist["train_pixels"][:2], args.seed,
                       torch.device("cpu"))
    vae.load_state_dict(ckpt["state"])
    clf = train_mnist_classifier(mnist["train_pixels"], mnist["train_labels"],
                                 args.classifier_iters, args.seed)
    with torch.no_grad():
        x = torch.as_tensor(mnist["test_pixels"], dtype=torch.float32) / 255.0
        acc = float((clf(x).argmax(1).numpy() == mnist["test_labels"]).mean())
    _save_npz(args.out, **translation_problem(latents, vae.model, clf, args.source,
                                              args.target, acc))
    return 0


def cmd_prepare_ebm(args: argparse.Namespace) -> int:
    from otflows.data.pairs import ebm_problem

    _set_threads(args.threads)
    mnist = _load_npz(args.mnist, "train", "test")
    _save_npz(args.out, **ebm_problem(mnist, args.model, args.seed, shrinkage=args.shrinkage,
                                      nsf_iters=args.nsf_iters,
                                      nsf_transforms=args.nsf_transforms,
                                      nsf_hidden=args.nsf_hidden))
    return 0


def add_qflow_commands(prep_sub: argparse._SubParsersAction) -> None:
    """Register the Q-flow problem builders on the `prepare` subparsers."""
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


