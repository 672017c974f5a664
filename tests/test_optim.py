"""otflows.optim.Adam against torch.optim.Adam, and its state round trip."""

import pytest
import torch

from otflows.optim import Adam


def _model(seed: int, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 7), torch.nn.Tanh(),
                               torch.nn.Linear(7, 2)).to(dtype)


def _train(model: torch.nn.Module, opt, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(16, 3, generator=gen, dtype=torch.float64).to(dtype)
        opt.zero_grad(set_to_none=True)
        model(x).square().sum().backward()
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_adam_equals_torch_adam_bit_for_bit(dtype, weight_decay):
    ours, ref = _model(0, dtype), _model(0, dtype)
    _train(ours, Adam(ours.parameters(), lr=1e-2, weight_decay=weight_decay), 25, 1)
    _train(ref, torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=weight_decay), 25, 1)
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_adam_state_round_trip_continues_identically(tmp_path):
    a, b = _model(0, torch.float64), _model(0, torch.float64)
    opt_a = Adam(a.parameters(), lr=1e-2)
    _train(a, opt_a, 10, 1)
    path = tmp_path / "state.pt"
    torch.save({"model": a.state_dict(), "opt": opt_a.state_dict()}, path)
    state = torch.load(path, weights_only=True)
    b.load_state_dict(state["model"])
    opt_b = Adam(b.parameters(), lr=1e-2)
    opt_b.load_state_dict(state["opt"])
    _train(a, opt_a, 5, 2)
    _train(b, opt_b, 5, 2)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y)


def test_adam_continues_from_a_torch_adam_state():
    """Checkpoints written with torch.optim.Adam resume exactly."""
    a, b = _model(0, torch.float64), _model(0, torch.float64)
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2, weight_decay=1e-3)
    _train(a, opt_a, 10, 1)
    b.load_state_dict(a.state_dict())
    opt_b = Adam(b.parameters(), lr=1e-2)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.weight_decay == 1e-3
    _train(a, opt_a, 5, 2)
    _train(b, opt_b, 5, 2)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y)


def test_adam_rejects_bad_settings_and_foreign_states():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="lr"):
        Adam(p, lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="format"):
        Adam(p).load_state_dict({"format": "something else"})
    with pytest.raises(ValueError, match="2 parameters"):
        Adam(p).load_state_dict(Adam(p + [torch.zeros(1, requires_grad=True)]).state_dict())


def test_training_a_toy_flow_never_imports_dynamo():
    """The reason this module exists: an OT-Flow job must not pay for torch._dynamo."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, torch\n"
            "from otflows.methods.otflow import make_trainer\n"
            "cfg = dict(K=1, alpha=5.0, alpha_L=1.0, alpha_R=0.5, batch_size=64,"
            " dtype='float64', iters=2, lr=0.01, n_layers=2, nt=2, nt_eval=2, rank=10,"
            " weight_decay=0.0, width=8)\n"
            "t = make_trainer(cfg, np.random.default_rng(0).normal(size=(256, 2)), 0,"
            " torch.device('cpu'))\n"
            "t.train_step(); t.train_step(); t.evaluate(np.zeros((8, 2)), 8, 0)\n"
            "print('torch._dynamo' in sys.modules, 'torchdiffeq' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
