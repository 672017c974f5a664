"""Logistic DRE (eq. (5) of Q-flow, arXiv:2305.11857): optimum, waymarks, the time net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otflows.metrics.ratio import (
    Classifier,
    MultiHeadClassifier,
    QuadraticHeads,
    TimeClassifier,
    linear_waymarks,
    logistic_loss,
    ratio_errors,
    time_score_loss,
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


def test_quadratic_heads_are_quadratic_forms_and_the_time_net_agrees_at_midpoints():
    torch.manual_seed(0)
    q = QuadraticHeads(3, 2)
    with torch.no_grad():
        for p in q.parameters():
            p.normal_()
    x = torch.randn(7, 3)
    want = torch.stack([(x @ q.a[j] * x).sum(1) + x @ q.w[j] + q.b[j] for j in range(2)], 1)
    assert torch.allclose(q(x), want, atol=1e-5)
    net = TimeClassifier(3, 8, head="quadratic")
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    grid = torch.linspace(0, 1, 5)
    mids = 0.5 * (grid[1:] + grid[:-1])
    logits = net.interval_logits(x, grid)
    assert torch.allclose(logits[1], net(x, mids[1].item()), atol=1e-4)
    with pytest.raises(ValueError, match="ratio head"):
        Classifier(3, 8, head="cubic")


def test_time_score_matching_recovers_a_gaussian_log_ratio():
    # DRE-∞ (Choi et al. 2022): P = N(0, 1), Q = N(1, 1) on the interpolant
    # x_t = √(1 − t²) x_p + t x_q; log p − log q = −∫₀¹ s(x, t) dt = 0.5 − x.
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = TimeClassifier(1, 32, head="quadratic")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(1500):
        xp = torch.randn(512, 1, generator=gen)
        xq = torch.randn(512, 1, generator=gen) + 1.0
        loss = time_score_loss(net, xp, xq, torch.rand(512, generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.linspace(-1.5, 2.5, 41)[:, None]
    fine = torch.linspace(0, 1, 33)
    est = -net.interval_logits(x, fine).mean(0).detach()
    assert (est - (0.5 - x[:, 0])).abs().mean() < 0.15
