"""Closed-form log-densities shared by the methods and metrics (ground floor: torch only)."""

from __future__ import annotations

import math

from torch import Tensor

__all__ = ["LOG_2PI", "standard_normal_log_prob"]

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """ln N(z; 0, I) in nats: z ``[n, d]`` → ``[n]``.

    Written as −½(‖z‖² + d ln 2π); the other common spelling −½‖z‖² − ½d ln 2π gives the
    same bits (halving is exact in binary floating point).
    """
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * LOG_2PI)
