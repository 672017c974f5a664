"""The continuous Ising model: Kaufman's exact Z, the Hubbard–Stratonovich constant, symmetry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otflows.data.ising import (
    CRITICAL_COUPLING,
    IsingProblem,
    brute_force_log_partition,
    continuous_free_energy,
    coupling_matrix,
    ising_energy,
    ising_problem,
    kaufman_log_partition,
    lattice_permutations,
    log_cosh,
    sample_spins,
)


def test_critical_coupling_is_the_log_form():
    assert CRITICAL_COUPLING == pytest.approx(0.4406867935097715, abs=1e-15)
    assert math.sinh(2 * CRITICAL_COUPLING) == pytest.approx(1.0)  # Kramers–Wannier point


@pytest.mark.parametrize("L", [2, 4])
@pytest.mark.parametrize("coupling", [CRITICAL_COUPLING, 0.2, 0.6])
def test_kaufman_matches_brute_force_enumeration(L, coupling):
    # 0.2 (T > Tc, γ₀ > 0) and 0.6 (T < Tc, γ₀ < 0: Z₄ negative) check both signs of Z₄
    exact = brute_force_log_partition(coupling_matrix(L, coupling))
    assert kaufman_log_partition(L, coupling) == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_coupling_matrix_counts_each_bond_once():
    L, k = 5, 0.3
    K = coupling_matrix(L, k)
    np.testing.assert_array_equal(K, K.T)
    np.testing.assert_allclose(K.sum(1), 4 * k)  # four neighbours
    s = np.random.default_rng(0).choice([-1.0, 1.0], size=L * L)
    grid = s.reshape(L, L)
    bonds = (grid * np.roll(grid, -1, 0)).sum() + (grid * np.roll(grid, -1, 1)).sum()
    assert 0.5 * s @ K @ s == pytest.approx(k * bonds)


def test_offset_gives_the_requested_smallest_eigenvalue():
    p = ising_problem(6)
    assert np.linalg.eigvalsh(p.shifted).min() == pytest.approx(0.1, abs=1e-12)
    assert p.offset == pytest.approx(0.1 + 4 * CRITICAL_COUPLING, abs=1e-12)
    np.testing.assert_allclose(p.precision @ p.shifted, np.eye(36), atol=1e-10)


def test_hubbard_stratonovich_constant_by_quadrature():
    # two sites: −ln ∫ exp(−E(x)) dx on a grid equals −ln Z_Ising − ½ ln det(K+aI) + N/2(ln 2/π − a)
    k = 0.5
    K = np.array([[0.0, k], [k, 0.0]])
    a = 0.1 + k
    shifted = K + a * np.eye(2)
    precision = np.linalg.inv(shifted)
    g = np.linspace(-14, 14, 1401)
    x = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    energy = ising_energy(torch.as_tensor(x), torch.as_tensor(precision)).numpy()
    h = g[1] - g[0]
    numeric = -math.log(np.exp(-energy).sum() * h * h)
    formula = continuous_free_energy(brute_force_log_partition(K), shifted, a)
    assert numeric == pytest.approx(formula, abs=1e-8)


def test_l16_free_energy_per_site_matches_the_published_value():
    # the published code's exact value (paper/plot_fe.py of the authors): −2.3159198563 per
    # site; the small difference is their float32 offset and log det
    p = ising_problem(16)
    assert p.exact_free_energy / 256 == pytest.approx(-2.3159198563359373, abs=5e-6)


def test_energy_is_stable_and_matches_the_formula():
    x = torch.tensor([[0.3, -2.0, 50.0, -80.0]], dtype=torch.float64)
    P = torch.eye(4, dtype=torch.float64) * 0.5
    direct = 0.5 * 0.5 * (x**2).sum() - torch.log(torch.cosh(x[:, :2])).sum() \
        - (50.0 - math.log(2)) - (80.0 - math.log(2))
    torch.testing.assert_close(ising_energy(x, P), direct.reshape(1))
    assert torch.isfinite(log_cosh(torch.tensor([1e4, -1e4]))).all()


@pytest.mark.parametrize("L", [2, 3, 4])
def test_lattice_permutations_form_a_group_preserving_the_couplings(L):
    perms = lattice_permutations(L)
    n = L * L
    assert perms.shape == (8 * n, n)
    assert (np.sort(perms, 1) == np.arange(n)).all()  # each row is a permutation
    K = coupling_matrix(L, 1.0)
    rows = {tuple(p) for p in perms}
    assert tuple(range(n)) in rows  # identity
    for p in perms[:: max(1, len(perms) // 16)]:
        np.testing.assert_array_equal(K[np.ix_(p, p)], K)  # E(gx) = E(x)
        for q in perms[:: max(1, len(perms) // 8)]:
            assert tuple(p[q]) in rows  # closed under composition


def test_spins_follow_sigmoid_of_2x():
    x = torch.tensor([[-0.5, 0.0, 0.8]], dtype=torch.float64).repeat(20000, 1)
    s = sample_spins(x, torch.Generator().manual_seed(0))
    assert set(s.unique().tolist()) == {-1.0, 1.0}
    p_up = (s > 0).double().mean(0)
    np.testing.assert_allclose(p_up, torch.sigmoid(2 * x[0]), atol=0.015)


def test_problem_arrays_round_trip_and_errors():
    p = ising_problem(3)
    q = IsingProblem.from_arrays(p.arrays())
    assert q.L == 3 and q.exact_free_energy == p.exact_free_energy
    np.testing.assert_array_equal(q.precision, p.precision)
    with pytest.raises(KeyError, match="prepare ising"):
        IsingProblem.from_arrays({"train": p.shifted})
    with pytest.raises(ValueError, match="L"):
        coupling_matrix(1, 0.4)
