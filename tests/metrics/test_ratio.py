"""Logistic DRE (eq. (5) of Q-flow, arXiv:2305.11857): optimum, waymarks, the time net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otflows.metrics.ratio import (
    Classifier,
    MultiHeadClassifier,
    TimeClassifier,
    linear_waymarks,
    logistic_loss,
    ratio_errors,
)


def test_logistic_loss_optimum_is_the_log_ratio_pointwise():
    # population loss at one point: a·softplus(r) + b·softplus(−r), minimised at r = log(b/a)
    a, b = 0.3, 1.7
    r = torch.linspace(-5, 5, 20001)
    loss = a * torch.nn.functional.softplus(r) + b * torch.nn.functional.softplus(-r)
    assert r[loss.argmin()].item() == pytest.approx(np.log(b / a), abs=1e-3)


def test_a_trained_classifier_recovers_a_gaussian_log_ratio():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    clf = Classifier(1, 32)
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    for _ in range(600):
        a = torch.randn(256, 1, generator=gen)  # A = N(0, 1)
        b = torch.randn(256, 1, generator=gen) + 1.0  # B = N(1, 1)
        loss = logistic_loss(clf(a), clf(b))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.linspace(-1.5, 2.5, 41)[:, None]
    truth = x[:, 0] - 0.5  # log N(x; 1, 1) − log N(x; 0, 1)
    assert (clf(x).detach() - truth).abs().mean() < 0.15


def test_waymarks_end_at_p_and_q_and_time_net_sums_interval_logits():
    xp, xq = torch.randn(5, 3), torch.randn(5, 3)
    w = linear_waymarks(xp, xq, torch.linspace(0, 1, 4))
    assert torch.allclose(w[0], xp) and torch.allclose(w[-1], xq)
    net = TimeClassifier(3, 8)
    grid = torch.linspace(0, 1, 5)
    logits = net.interval_logits(xp, grid)
    assert logits.shape == (4, 5)
    mids = 0.5 * (grid[1:] + grid[:-1])
    assert torch.allclose(logits[2], net(xp, mids[2].item()))
    assert torch.allclose(net.log_ratio(xp, grid), -logits.sum(0))
    heads = MultiHeadClassifier(3, 8, 4)
    assert torch.allclose(heads.log_ratio(xp), -heads(xp).sum(1))


def test_ratio_errors():
    e = ratio_errors(np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 1.0]))
    assert e == {"mae": pytest.approx(4 / 3), "max_error": 3.0}
    with pytest.raises(ValueError, match="shapes"):
        ratio_errors(np.zeros(2), np.zeros(3))
