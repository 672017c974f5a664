"""The one place for ODE integration: fixed-step classical RK4 and adaptive dopri5.

OT-Flow (Onken et al., arXiv:2006.00104) and JKO-Flow (Vidal et al., arXiv:2211.16757, the
constraint (5) of problems (6) and (11)) integrate their characteristics with fixed-step RK4;
other methods integrate with torchdiffeq's adaptive Dormand–Prince solver (Chen et al.,
"Neural Ordinary Differential Equations", arXiv:1806.07366).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["dopri5", "rk4"]


def rk4(
    func: Callable[[float, Tensor], Tensor], state: Tensor, t0: float, t1: float, n_steps: int
) -> Tensor:
    """Integrate dy/dt = func(t, y) from t0 to t1 (either direction) with n_steps RK4 steps.

    state: any shape, e.g. a concatenated ``[n, k]``; func(t: float, y) returns dy/dt of the
    same shape. Returns y(t1), same shape. Differentiable (autograd through every stage).
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"rk4: n_steps={n_steps!r}; expected an int >= 1")
    h = (float(t1) - float(t0)) / n_steps
    half = 0.5 * h
    y = state
    for i in range(n_steps):
        t = float(t0) + i * h
        k1 = func(t, y)
        k2 = func(t + half, torch.add(y, k1, alpha=half))
        k3 = func(t + half, torch.add(y, k2, alpha=half))
        k4 = func(t + h, torch.add(y, k3, alpha=h))
        # y + h/6 (k1 + 2 k2 + 2 k3 + k4)
        incr = torch.add(k1, k4).add_(torch.add(k2, k3), alpha=2.0)
        y = torch.add(y, incr, alpha=h / 6.0)
    return y


def dopri5(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Tensor:
    """Adaptive Dormand–Prince 5(4) via ``torchdiffeq.odeint(method="dopri5")``.

    func(t: Tensor scalar, y) returns dy/dt; y0: initial state (any shape); t: strictly
    monotone 1-D times ``[T]``. Returns the solution at every time, ``[T, *y0.shape]``.
    """
    t = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"dopri5: t must be a 1-D tensor of at least 2 times; got shape "
                         f"{tuple(t.shape)}")
    if rtol <= 0 or atol <= 0:
        raise ValueError(f"dopri5: rtol={rtol}, atol={atol}; both must be > 0")
    # Imported here: torchdiffeq pulls in scipy (~0.4 s), which the RK4 users never need.
    from torchdiffeq import odeint

    return odeint(func, y0, t, rtol=rtol, atol=atol, method="dopri5")
