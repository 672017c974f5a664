"""Q-flow two-sample problems: file layout, the §4.4 Gaussian model's log q, translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from otflows.data.pairs import (
    ebm_problem,
    toy_pair_problem,
    train_mnist_classifier,
    translation_problem,
    translation_scores,
)
from otflows.nn.vae import ConvVAE


def test_gaussian_ebm_log_q_is_the_fitted_gaussian_density():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    train = rng.standard_normal((3000, 6)) @ a + 1.0
    test = rng.standard_normal((20, 6)) @ a + 1.0
    prob = ebm_problem({"train": train, "test": test}, "gaussian", 0, shrinkage=1e-2)
    cov = np.cov(train, rowvar=False) + 1e-2 * np.eye(6)
    ref = multivariate_normal(train.mean(0), cov).logpdf(test)
    assert np.allclose(prob["test_log_q"], ref)
    # the whitened training data is ≈ N(0, I), the Q side exactly N(0, I) samples
    assert np.cov(prob["train"], rowvar=False) == pytest.approx(np.eye(6), abs=0.1)
    assert prob["train_q"].shape == prob["train"].shape
    with pytest.raises(ValueError, match="gaussian"):
        ebm_problem({"train": train, "test": test}, "copula", 0)


def test_toy_pair_layout():
    prob = toy_pair_problem("moons", "checkerboard", 50, 20, 0)
    assert prob["train"].shape == (50, 2) and prob["test_p"].shape == (20, 2)
    assert np.abs(prob["test"]).max() <= 4.0  # the checkerboard's square


def test_translation_scores_decode_and_classify():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    pixels = rng.integers(0, 256, (60, 784)).astype(np.uint8)
    clf = train_mnist_classifier(pixels, labels, 2, 0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = ConvVAE(4, 2)
    lat = {s: rng.standard_normal((60, 4)) for s in ("train", "validation", "test")}
    lat.update({f"{s}_labels": labels for s in ("train", "validation", "test")})
    prob = translation_problem(lat, vae, clf, 3, 8, 0.5)
    assert prob["train"].shape == (6, 4) and prob["test_p"].shape == (12, 4)
    z = torch.as_tensor(prob["test_p"], dtype=torch.float32)
    extras: dict = {}
    scores = translation_scores(prob, [z, z + 0.1, z + 0.2], extras)
    assert 0.0 <= scores["target_class_share"] <= 1.0
    assert extras["trajectory_pixels"].shape == (8, 3, 784)
    with torch.no_grad():  # the decoder rebuilt from the arrays is the original one
        ref = torch.sigmoid(vae.decode(z[:8] + 0.2)).double().numpy()
    assert np.allclose(extras["trajectory_pixels"][:, 2], ref, atol=1e-6)
