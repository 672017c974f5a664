"""The two sample sets of a Q-flow run (Xu, Cheng, Xie, arXiv:2305.11857) and their
minibatches: P (N(0, I) for the toy task) and Q, drawn from one seeded generator."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["PairSampler", "as_points"]


def as_points(x: np.ndarray, what: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``x`` ``[n >= 2, d]`` as a tensor; a ValueError names ``what`` otherwise."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"QFlow: {what} has shape {x.shape}; expected [n >= 2, d]")
    return torch.as_tensor(x, dtype=dtype, device=device)


class PairSampler:
    """Minibatches of P (``x_p`` ``[N, d]``, or N(0, I) when None) and Q (``x_q`` ``[M, d]``)
    of ``batch_size`` rows by default, every draw from ``generator`` (the run's RNG stream)."""

    def __init__(self, x_p: Tensor | None, x_q: Tensor, batch_size: int,
                 generator: torch.Generator) -> None:
        self.x_p, self.x_q = x_p, x_q
        self.d = x_q.shape[1]
        self.batch_size = batch_size
        self.generator = generator

    def batch(self, which: str, n: int | None = None) -> Tensor:
        """A minibatch ``[n, d]`` of P (``which="p"``; N(0, I) for the toy task) or Q."""
        n = n or self.batch_size
        if which == "p" and self.x_p is None:
            z = torch.randn(n, self.d, generator=self.generator, dtype=torch.float64)
            return z.to(self.x_q.device, self.x_q.dtype)
        data = self.x_p if which == "p" else self.x_q
        idx = torch.randint(0, data.shape[0], (n,), generator=self.generator)
        return data[idx.to(data.device)]
