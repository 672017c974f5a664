"""The eight 2-D toy densities of FFJORD (Grathwohl et al., ICLR 2019, arXiv:1810.01367).

The distributions (shapes, scales, noise levels) are those FFJORD defined and that OT-Flow,
JKO-Flow, EKP and CP-Flow report on. Every sampler here draws only from the explicit
``numpy.random.Generator`` it is given, so a seed fixes the data exactly (FFJORD's own
samplers draw partly from the global NumPy RNG and cannot be reproduced from a seed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["TOY_DATASETS", "sample_toy"]


def _swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    # Swiss roll with noise 1.0, keeping the (x, z) plane and dividing by 5 (FFJORD).
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    x += rng.standard_normal((n, 2))
    return x / 5.0


def _circles(n: int, rng: np.random.Generator) -> np.ndarray:
    # Two concentric circles (radius ratio 0.5, noise 0.08), scaled by 3 (FFJORD).
    n_out = n // 2
    n_in = n - n_out
    a_out = np.linspace(0.0, 2.0 * np.pi, n_out, endpoint=False)
    a_in = np.linspace(0.0, 2.0 * np.pi, n_in, endpoint=False)
    x = np.concatenate([
        np.stack([np.cos(a_out), np.sin(a_out)], axis=1),
        0.5 * np.stack([np.cos(a_in), np.sin(a_in)], axis=1),
    ])
    x = x[rng.permutation(n)] + rng.normal(scale=0.08, size=(n, 2))
    return 3.0 * x


def _rings(n: int, rng: np.random.Generator) -> np.ndarray:
    # Four concentric rings of radii 1, .75, .5, .25, scaled by 3, noise 0.08 (FFJORD).
    n4 = -(-n // 4)
    a = np.linspace(0.0, 2.0 * np.pi, n4, endpoint=False)
    unit = np.stack([np.cos(a), np.sin(a)], axis=1)
    x = np.concatenate([r * unit for r in (1.0, 0.75, 0.5, 0.25)]) * 3.0
    x = x[rng.permutation(len(x))[:n]]
    return x + rng.normal(scale=0.08, size=x.shape)


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    # Two interleaved half circles, noise 0.1, then x * 2 + (-1, -0.2) (FFJORD).
    n_out = n // 2
    n_in = n - n_out
    a_out = np.linspace(0.0, np.pi, n_out)
    a_in = np.linspace(0.0, np.pi, n_in)
    x = np.concatenate([
        np.stack([np.cos(a_out), np.sin(a_out)], axis=1),
        np.stack([1.0 - np.cos(a_in), 0.5 - np.sin(a_in)], axis=1),
    ])
    x = x[rng.permutation(n)] + rng.normal(scale=0.1, size=(n, 2))
    return x * 2.0 + np.array([-1.0, -0.2])


def _eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    # Eight Gaussians (std 0.5) on a circle of radius 4, all divided by 1.414 (FFJORD).
    s = 1.0 / np.sqrt(2.0)
    centres = 4.0 * np.array(
        [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)], dtype=float
    )
    idx = rng.integers(0, 8, size=n)
    x = rng.standard_normal((n, 2)) * 0.5 + centres[idx]
    return x / 1.414


def _pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    # Five arms: radial std 0.3, tangential std 0.1, rate 0.25, scaled by 2 (FFJORD).
    n_classes, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    per_class = -(-n // n_classes)
    rads = np.linspace(0.0, 2.0 * np.pi, n_classes, endpoint=False)
    feats = rng.standard_normal((n_classes * per_class, 2)) * np.array(
        [radial_std, tangential_std]
    )
    feats[:, 0] += 1.0
    labels = np.repeat(np.arange(n_classes), per_class)
    angles = rads[labels] + rate * np.exp(feats[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    rot = np.stack([np.stack([c, -s], axis=1), np.stack([s, c], axis=1)], axis=1)  # [n, 2, 2]
    x = np.einsum("ti,tij->tj", feats, rot)
    return 2.0 * x[rng.permutation(len(x))[:n]]


def _two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    # Two interleaved spirals of 540 degrees, uniform jitter 0.5, /3, noise 0.1 (FFJORD).
    half = -(-n // 2)
    r = np.sqrt(rng.random((half, 1))) * 540.0 * (2.0 * np.pi) / 360.0
    d1x = -np.cos(r) * r + rng.random((half, 1)) * 0.5
    d1y = np.sin(r) * r + rng.random((half, 1)) * 0.5
    arm = np.hstack([d1x, d1y])
    x = np.vstack([arm, -arm]) / 3.0
    x = x[rng.permutation(len(x))[:n]]
    return x + rng.standard_normal(x.shape) * 0.1


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    # Uniform on the 8 dark squares of a 4x4 board on [-4, 4]^2 (FFJORD).
    x1 = rng.random(n) * 4.0 - 2.0
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2.0


_SAMPLERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "checkerboard": _checkerboard,
    "swissroll": _swissroll,
    "rings": _rings,
    "moons": _moons,
    "circles": _circles,
    "2spirals": _two_spirals,
    "pinwheel": _pinwheel,
    "8gaussians": _eight_gaussians,
}

TOY_DATASETS: tuple[str, ...] = tuple(_SAMPLERS)


def sample_toy(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` points of toy density ``name``; returns float64 ``[n, 2]``."""
    if name not in _SAMPLERS:
        raise ValueError(f"unknown toy dataset {name!r}; expected one of {list(TOY_DATASETS)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator (seeded), not the global RNG")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    x = _SAMPLERS[name](int(n), rng)
    return np.ascontiguousarray(x, dtype=np.float64)
