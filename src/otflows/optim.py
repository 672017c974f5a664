"""Adam (Kingma & Ba, arXiv:1412.6980) without ``torch.optim``: the same updates, bit for bit.

Why not ``torch.optim.Adam``: every ``torch.optim.Optimizer.step`` imports ``torch._dynamo``
(``_use_grad_for_differentiable``), which costs about 1.5 s per process on this 2-core
machine. The default profile starts several hundred short training and evaluation processes,
so that import alone was minutes of the pipeline's wall time
(``benchmarks/process_start.py`` prints it). The update below is torch's single-tensor Adam
(what ``torch.optim.Adam`` runs for CPU tensors): L2 weight decay added to the gradient, no
AMSGrad; ``tests/test_optim.py`` checks equality with ``torch.optim.Adam``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["Adam"]

_FORMAT = "otflows.optim.Adam/1"


class Adam:
    """Adam over a fixed list of parameters; ``step``, ``zero_grad``, ``state_dict``."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam: got an empty parameter list")
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            if not value >= 0.0:
                raise ValueError(f"Adam: {name}={value!r}; expected >= 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adam: betas={betas!r}; expected each in [0, 1)")
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.weight_decay = float(weight_decay)
        self.steps = [0] * len(self.params)
        self.exp_avg: list[Tensor | None] = [None] * len(self.params)
        self.exp_avg_sq: list[Tensor | None] = [None] * len(self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if self.exp_avg[i] is None:
                self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
            m, v = self.exp_avg[i], self.exp_avg_sq[i]
            self.steps[i] += 1
            if self.weight_decay != 0:
                grad = grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = float(self.steps[i])
            step_size = self.lr / (1 - beta1**step)
            denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)

    def state_dict(self) -> dict:
        """Moments and step counts (tensors and numbers: loads with ``weights_only=True``)."""
        return {"format": _FORMAT, "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "steps": list(self.steps),
                "exp_avg": [None if t is None else t.clone() for t in self.exp_avg],
                "exp_avg_sq": [None if t is None else t.clone() for t in self.exp_avg_sq]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (or a ``torch.optim.Adam`` one) of the same shapes."""
        if isinstance(state, dict) and "param_groups" in state and "format" not in state:
            state = _from_torch(state)  # checkpoints written before this module existed
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not an otflows Adam state (format {got!r}, expected {_FORMAT!r})")
        if len(state["steps"]) != len(self.params):
            raise ValueError(f"Adam state has {len(state['steps'])} parameters; this "
                             f"optimizer has {len(self.params)}")
        for i, (p, m) in enumerate(zip(self.params, state["exp_avg"], strict=True)):
            if m is not None and m.shape != p.shape:
                raise ValueError(f"Adam state: parameter {i} has shape {tuple(m.shape)}; "
                                 f"expected {tuple(p.shape)}")
        self.lr, self.eps = float(state["lr"]), float(state["eps"])
        self.betas = (float(state["betas"][0]), float(state["betas"][1]))
        self.weight_decay = float(state["weight_decay"])
        self.steps = [int(s) for s in state["steps"]]
        self.exp_avg = [None if t is None else t.to(p.device, p.dtype).clone()
                        for t, p in zip(state["exp_avg"], self.params, strict=True)]
        self.exp_avg_sq = [None if t is None else t.to(p.device, p.dtype).clone()
                           for t, p in zip(state["exp_avg_sq"], self.params, strict=True)]


def _from_torch(state: dict) -> dict:
    """A one-group ``torch.optim.Adam.state_dict()`` in this module's format."""
    if len(state["param_groups"]) != 1 or state["param_groups"][0].get("amsgrad"):
        raise ValueError("torch Adam state with several groups or AMSGrad: not supported")
    group = state["param_groups"][0]
    slots = [state["state"].get(i, {}) for i in group["params"]]
    return {"format": _FORMAT, "lr": group["lr"], "betas": list(group["betas"]),
            "eps": group["eps"], "weight_decay": group["weight_decay"],
            "steps": [int(s["step"]) if "step" in s else 0 for s in slots],
            "exp_avg": [s.get("exp_avg") for s in slots],
            "exp_avg_sq": [s.get("exp_avg_sq") for s in slots]}
