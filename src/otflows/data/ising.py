"""The 2-D Ising model on an L×L periodic square lattice, in the continuous form of
Monge-Ampère flow's variational free-energy experiment.

Zhang, E, Wang, "Monge-Ampère Flow for Generative Modeling", arXiv:1809.10188, §4.2 and
App. B; exact partition function of the finite torus from Kaufman, "Crystal Statistics. II",
Phys. Rev. 76, 1232 (1949), eq. (39) (the four-product formula).

Implemented here:

* the coupling matrix K (Kᵢⱼ = K_c for nearest neighbours, periodic), so that
  Z_Ising = Σ_s exp(½ sᵀKs) (eq. 10), and the offset a with λ_min(K + aI) = 0.1 (App. B);
* the Hubbard–Stratonovich energy E(x) = ½ xᵀ(K + aI)⁻¹x − Σᵢ ln cosh xᵢ (eq. 8);
* −ln Z of that continuous model, −ln Z_Ising − ½ ln det(K + aI) + N/2 [ln(2/π) − a] (App. B),
  with ln Z_Ising from Kaufman's formula, and a brute-force enumeration to check it;
* the lattice symmetry group used by the symmetrised potential (§4.2): translations × D4 as
  site permutations (the spin flip x ↦ −x is the sign, applied by the caller);
* spins from a continuous configuration, p(s|x) = Πᵢ σ(2 sᵢ xᵢ) (App. B).

Free energies are totals in nats (−ln Z); divide by N = L² for per-site values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CRITICAL_COUPLING",
    "IsingProblem",
    "brute_force_log_partition",
    "continuous_free_energy",
    "coupling_matrix",
    "ising_energy",
    "ising_problem",
    "kaufman_log_partition",
    "lattice_permutations",
    "log_cosh",
    "sample_spins",
]

# K_c = ½ ln(1 + √2) ≈ 0.4407 (Onsager 1944); the paper's "(1+√2)/2" lost its "ln".
CRITICAL_COUPLING = 0.5 * math.log1p(math.sqrt(2.0))


def coupling_matrix(L: int, coupling: float) -> np.ndarray:
    """K ``[L², L²]``: ``coupling`` between periodic nearest neighbours, site i = row·L + col.

    Each site has a bond to its right and its lower neighbour (2N bonds in all), so that
    ½ sᵀKs = coupling · Σ_bonds sᵢsⱼ; at L = 2 the two bonds of a pair add up.
    """
    if isinstance(L, bool) or not isinstance(L, int | np.integer) or L < 2:
        raise ValueError(f"coupling_matrix: L={L!r}; expected an int >= 2")
    n = L * L
    K = np.zeros((n, n))
    idx = np.arange(n).reshape(L, L)
    for nb in (np.roll(idx, -1, axis=1), np.roll(idx, -1, axis=0)):  # right, down
        np.add.at(K, (idx.ravel(), nb.ravel()), coupling)
        np.add.at(K, (nb.ravel(), idx.ravel()), coupling)
    return K


def _log_abs_2cosh(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2.0 * ax))


def _log_abs_2sinh(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        return ax + np.log(-np.expm1(-2.0 * ax)), np.sign(x)


def kaufman_log_partition(L: int, coupling: float) -> float:
    """ln Z_Ising of the L×L periodic lattice at coupling K = J/kT (Kaufman 1949, eq. 39).

    Z = ½ (2 sinh 2K)^{N/2} Σᵢ Zᵢ with Z₁ = Πᵣ 2cosh(Lγ₂ᵣ₊₁/2), Z₂ = Πᵣ 2sinh(Lγ₂ᵣ₊₁/2),
    Z₃ = Πᵣ 2cosh(Lγ₂ᵣ/2), Z₄ = Πᵣ 2sinh(Lγ₂ᵣ/2), r = 0..L−1, where
    cosh γₗ = cosh 2K coth 2K − cos(πl/L) (γₗ > 0) and γ₀ = 2K + ln tanh K. Summed in log
    space with signs (Z₄ vanishes at K_c, where γ₀ = 0, and is negative above it).
    """
    if isinstance(L, bool) or not isinstance(L, int | np.integer) or L < 2:
        raise ValueError(f"kaufman_log_partition: L={L!r}; expected an int >= 2")
    if not coupling > 0:
        raise ValueError(f"kaufman_log_partition: coupling={coupling!r}; expected > 0")
    K = float(coupling)
    ell = np.arange(2 * L)
    c = math.cosh(2 * K) / math.tanh(2 * K) - np.cos(np.pi * ell / L)
    gamma = np.arccosh(c)
    gamma[0] = 2 * K + math.log(math.tanh(K))
    odd, even = gamma[1::2], gamma[0::2]
    logs, signs = [], []
    for g in (odd, even):
        logs.append(_log_abs_2cosh(0.5 * L * g).sum())
        signs.append(1.0)
        lg, sg = _log_abs_2sinh(0.5 * L * g)
        logs.append(lg.sum())
        signs.append(float(np.prod(sg)))
    logs_a, signs_a = np.array(logs), np.array(signs)
    keep = signs_a != 0
    top = logs_a[keep].max()
    total = float(np.sum(signs_a[keep] * np.exp(logs_a[keep] - top)))
    if not total > 0:
        raise FloatingPointError(f"kaufman_log_partition: non-positive sum {total} at L={L}, "
                                 f"K={K}")
    n = L * L
    return math.log(0.5) + 0.5 * n * math.log(2 * math.sinh(2 * K)) + top + math.log(total)


def brute_force_log_partition(K: np.ndarray) -> float:
    """ln Σ_s exp(½ sᵀKs) over all 2^N spin configurations (N ≤ 24); K: ``[N, N]``."""
    n = K.shape[0]
    if K.shape != (n, n) or n > 24:
        raise ValueError(f"brute_force_log_partition: K has shape {K.shape}; expected square "
                         f"with N <= 24 (2^N configurations are enumerated)")
    total = -math.inf
    chunk = 1 << min(n, 16)
    rest = n - min(n, 16)
    low = np.array(list(itertools.product((-1.0, 1.0), repeat=min(n, 16))))
    for high in itertools.product((-1.0, 1.0), repeat=rest):
        s = np.concatenate([low, np.broadcast_to(np.array(high), (chunk, rest))], axis=1)
        e = 0.5 * np.einsum("bi,ij,bj->b", s, K, s)
        top = e.max()
        total = np.logaddexp(total, top + math.log(np.exp(e - top).sum()))
    return float(total)


def continuous_free_energy(log_z_ising: float, shifted: np.ndarray, offset: float) -> float:
    """−ln Z of E(x) = ½xᵀ(K+aI)⁻¹x − Σ ln cosh xᵢ, in nats (App. B).

    −ln Z = −ln Z_Ising − ½ ln det(K + aI) + N/2 [ln(2/π) − a]; shifted: K + aI ``[N, N]``
    (positive definite).
    """
    sign, logdet = np.linalg.slogdet(shifted)
    if sign <= 0:
        raise ValueError("continuous_free_energy: K + aI is not positive definite; raise the "
                         "offset")
    n = shifted.shape[0]
    return -log_z_ising - 0.5 * logdet + 0.5 * n * (math.log(2.0 / math.pi) - offset)


@dataclass(frozen=True)
class IsingProblem:
    """One continuous Ising problem: the target of the reverse-KL training (eqs. 7-8).

    shifted: K + aI ``[N, N]``; precision: (K + aI)⁻¹ ``[N, N]``; log_z_ising: ln Z_Ising
    (Kaufman); exact_free_energy: −ln Z of the continuous model (nats, total).
    """

    L: int
    coupling: float
    offset: float
    shifted: np.ndarray
    precision: np.ndarray
    log_z_ising: float
    exact_free_energy: float

    @property
    def n_sites(self) -> int:
        """N = L²."""
        return self.L * self.L

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``data/processed/ising_L<L>.npz`` (``train`` is K + aI)."""
        return {"train": self.shifted, "precision": self.precision,
                "L": np.array(self.L), "coupling": np.array(self.coupling),
                "offset": np.array(self.offset), "log_z_ising": np.array(self.log_z_ising),
                "exact_free_energy": np.array(self.exact_free_energy)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> IsingProblem:
        """Inverse of :meth:`arrays`; raise KeyError/ValueError naming what is wrong."""
        missing = [k for k in ("train", "precision", "L", "coupling", "offset", "log_z_ising",
                               "exact_free_energy") if k not in arrays]
        if missing:
            raise KeyError(f"Ising data lacks arrays {missing}: rebuild it with "
                           f"`otflows prepare ising`")
        L = int(arrays["L"])
        shifted = np.asarray(arrays["train"], dtype=np.float64)
        if shifted.shape != (L * L, L * L):
            raise ValueError(f"Ising data: K + aI has shape {shifted.shape}; expected "
                             f"({L * L}, {L * L}) for L = {L}")
        return cls(L=L, coupling=float(arrays["coupling"]), offset=float(arrays["offset"]),
                   shifted=shifted, precision=np.asarray(arrays["precision"], np.float64),
                   log_z_ising=float(arrays["log_z_ising"]),
                   exact_free_energy=float(arrays["exact_free_energy"]))


def ising_problem(L: int, coupling: float = CRITICAL_COUPLING,
                  min_eigenvalue: float = 0.1) -> IsingProblem:
    """Build K, the offset a with λ_min(K + aI) = ``min_eigenvalue``, and the exact −ln Z."""
    if not min_eigenvalue > 0:
        raise ValueError(f"ising_problem: min_eigenvalue={min_eigenvalue!r}; expected > 0")
    K = coupling_matrix(L, coupling)
    offset = float(min_eigenvalue - np.linalg.eigvalsh(K).min())
    shifted = K + offset * np.eye(L * L)
    precision = np.linalg.inv(shifted)
    precision = 0.5 * (precision + precision.T)
    log_z = kaufman_log_partition(L, coupling)
    return IsingProblem(L=L, coupling=float(coupling), offset=offset, shifted=shifted,
                        precision=precision, log_z_ising=log_z,
                        exact_free_energy=continuous_free_energy(log_z, shifted, offset))


def log_cosh(x: Tensor) -> Tensor:
    """ln cosh x = softplus(2x) − x − ln 2, stable for large |x|; same shape as ``x``."""
    return torch.nn.functional.softplus(2.0 * x) - x - math.log(2.0)


def ising_energy(x: Tensor, precision: Tensor) -> Tensor:
    """E(x) = ½ xᵀ(K + aI)⁻¹x − Σᵢ ln cosh xᵢ (eq. 8); x: ``[n, N]``, returns ``[n]`` nats."""
    return 0.5 * ((x @ precision) * x).sum(1) - log_cosh(x).sum(1)


def sample_spins(x: Tensor, generator: torch.Generator) -> Tensor:
    """Spins s ∈ {−1, +1} from p(s|x) = Πᵢ σ(2sᵢxᵢ) (App. B); x: ``[n, N]``, same shape."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return torch.where(u < torch.sigmoid(2.0 * x), 1.0, -1.0).to(x.dtype)


def lattice_permutations(L: int) -> np.ndarray:
    """Every translation × D4 map of the L×L torus as a site permutation, ``[8L², L²]``.

    Row g is π_g with (g x)ᵢ = x[π_g(i)]; the list is closed under composition, so an
    average over it is invariant under each of its elements (§4.2).
    """
    if isinstance(L, bool) or not isinstance(L, int | np.integer) or L < 2:
        raise ValueError(f"lattice_permutations: L={L!r}; expected an int >= 2")
    idx = np.arange(L * L).reshape(L, L)
    d4 = []
    for k in range(4):
        r = np.rot90(idx, k)
        d4 += [r, r.T]
    perms = [np.roll(m, (dr, dc), axis=(0, 1)).ravel()
             for m in d4 for dr in range(L) for dc in range(L)]
    return np.stack(perms).astype(np.int64)
