"""Baseline flows of the CP-Flow experiments (Huang et al., ICLR 2021, arXiv:2012.05942,
Fig. 3 and Fig. 4), all taken from zuko (not hand-written).

* ``maf``: masked autoregressive flow (Papamakarios et al. 2017), ``zuko.flows.MAF``;
* ``naf``: neural autoregressive flow (Huang et al. 2018), ``zuko.flows.NAF``;
* ``linear_iaf``: the linear inverse autoregressive flow of CP-Flow Fig. 4 (Kingma et al.
  2016): z = D(I + S)x + c with S strictly lower triangular (a zuko masked autoregressive
  transform with no hidden layer and an additive univariate map) and D diagonal positive
  (a zuko unconditional monotonic affine map) — an arbitrary lower-triangular linear map.

Fig. 3 matches parameter counts: :func:`matched_hidden` picks the hidden width of MAF/NAF
whose count is closest to CP-Flow's.
"""

from __future__ import annotations

import torch
from torch import nn
from zuko import distributions, flows, transforms

__all__ = ["BASELINES", "build_baseline", "matched_hidden", "n_parameters"]

BASELINES = ("maf", "naf", "linear_iaf")


def n_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_baseline(kind: str, d: int, transforms_: int, hidden: int) -> flows.Flow:
    """The zuko flow ``kind`` on R^d (float32 parameters; cast with ``.to``)."""
    if kind == "maf":
        return flows.MAF(d, transforms=transforms_, hidden_features=[hidden, hidden])
    if kind == "naf":
        return flows.NAF(d, transforms=transforms_, hidden_features=[hidden, hidden],
                         network={"hidden_features": [hidden, hidden]})
    if kind == "linear_iaf":
        shear = flows.MaskedAutoregressiveTransform(d, univariate=transforms.AdditiveTransform,
                                                    shapes=((),), hidden_features=())
        scale = flows.UnconditionalTransform(transforms.MonotonicAffineTransform,
                                             torch.zeros(d), torch.zeros(d))
        base = flows.UnconditionalDistribution(distributions.DiagNormal, torch.zeros(d),
                                               torch.ones(d), buffer=True)
        return flows.Flow([shear, scale], base)
    raise ValueError(f"baseline {kind!r} unknown; expected one of {BASELINES}")


def matched_hidden(kind: str, d: int, transforms_: int, target: int) -> int:
    """Hidden width in 2..512 whose ``kind`` flow has the parameter count closest to
    ``target`` (CP-Flow Fig. 3: 'we try to match the network size')."""
    if kind == "linear_iaf":
        return 0
    best, best_gap = 2, None
    for h in range(2, 513):
        gap = abs(n_parameters(build_baseline(kind, d, transforms_, h)) - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = h, gap
        elif gap > best_gap:  # counts grow monotonically in h
            break
    return best
