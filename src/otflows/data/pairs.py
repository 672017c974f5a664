"""Two-sample problems for Q-flow (arXiv:2305.11857): arrays of one prepared ``.npz`` each.

Layout read by ``otflows.methods.qflow`` (task ``pair``): ``train`` = P samples, ``train_q``
= Q samples, ``test`` = held-out Q (what the pushforward of P is scored against), ``test_p``
= held-out P; optional ``ratio_points``/``ratio_truth`` (analytic log p − log q at test
points), ``mi_true`` (nats), ``w2_squared_true`` (closed-form W₂²); for the latent
translation the frozen VAE decoder (``decoder.*``) and MNIST classifier (``classifier.*``)
weights with their shapes, so that evaluation can decode and classify without reading
files.

Problems: the 2-D Gaussian mixtures (§4.2), moons → checkerboard (§4.2, Fig. 2), the
correlated-Gaussian MI problem (§4.3), and MNIST digit → digit in the VAE latent space
(§4.5 adapted to the data we have).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from otflows.data.gaussians import (
    MI_RHO_SQUARED,
    correlated_gaussian_log_ratio,
    gmm_pair,
    mutual_information,
    sample_correlated_gaussian,
)
from otflows.data.toy import sample_toy

__all__ = ["MnistClassifier", "gmm_problem", "mi_problem", "toy_pair_problem",
           "train_mnist_classifier", "translation_problem", "translation_scores"]


def _streams(seed: int, tag: str, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from (seed, tag)."""
    return [np.random.default_rng(s)
            for s in np.random.SeedSequence([seed, *tag.encode()]).spawn(n)]


def gmm_problem(n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """§4.2 GMMs: P (3 components) and Q (2); the analytic log-ratio on n_test/2 test points
    from each of P and Q (``ratio_points``, ``ratio_truth``)."""
    p, q = gmm_pair()
    r = _streams(seed, "qflow-gmm", 4)
    test_p, test_q = p.sample(n_test, r[2]), q.sample(n_test, r[3])
    pts = np.concatenate([test_p[: n_test // 2], test_q[: n_test - n_test // 2]])
    return {"train": p.sample(n_train, r[0]), "train_q": q.sample(n_train, r[1]),
            "test": test_q, "test_p": test_p, "ratio_points": pts,
            "ratio_truth": p.log_density(pts) - q.log_density(pts)}


def toy_pair_problem(p_name: str, q_name: str, n_train: int, n_test: int, seed: int
                     ) -> dict[str, np.ndarray]:
    """Two 2-D toys (§4.2: P = two moons, Q = checkerboard; App. B.1 unknown, FFJORD's
    samplers of ``otflows.data.toy``)."""
    r = _streams(seed, f"qflow-{p_name}-{q_name}", 4)
    return {"train": sample_toy(p_name, n_train, r[0]),
            "train_q": sample_toy(q_name, n_train, r[1]),
            "test": sample_toy(q_name, n_test, r[3]),
            "test_p": sample_toy(p_name, n_test, r[2])}


def mi_problem(d: int, n_train: int, n_test: int, seed: int,
               rho: float = math.sqrt(MI_RHO_SQUARED)) -> dict[str, np.ndarray]:
    """§4.3: P = N(0, Σ) correlated pairs, Q = N(0, I); MI and W₂² in closed form."""
    r = _streams(seed, f"qflow-mi-{d}", 4)
    test_p = sample_correlated_gaussian(n_test, d, rho, r[2])
    # W₂²(N(0, Σ), N(0, I)) = Σ_i (√λ_i − 1)², eigenvalues 1 ± ρ, d/2 times each.
    w2 = 0.5 * d * ((math.sqrt(1 + rho) - 1) ** 2 + (math.sqrt(1 - rho) - 1) ** 2)
    return {"train": sample_correlated_gaussian(n_train, d, rho, r[0]),
            "train_q": r[1].standard_normal((n_train, d)),
            "test": r[3].standard_normal((n_test, d)),
            "test_p": test_p, "ratio_points": test_p[: min(n_test, 1000)],
            "ratio_truth": correlated_gaussian_log_ratio(test_p[: min(n_test, 1000)], rho),
            "mi_true": np.array(mutual_information(d, rho)), "rho": np.array(rho),
            "w2_squared_true": np.array(w2)}


# ----------------------------------------------------------------------- latent translation
class MnistClassifier(nn.Module):
    """A small MLP digit classifier: pixels in [0, 1] ``[n, 784]`` → logits ``[n, 10]``."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width),
                                 nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def train_mnist_classifier(pixels: np.ndarray, labels: np.ndarray, iters: int, seed: int,
                           batch_size: int = 128, lr: float = 1e-3) -> MnistClassifier:
    """Adam on the cross-entropy of ``pixels`` ``[n, 784]`` (0..255) for ``iters`` steps."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = MnistClassifier()
    x = torch.as_tensor(pixels, dtype=torch.float32) / 255.0
    y = torch.as_tensor(labels, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(iters):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def _as_arrays(prefix: str, module: nn.Module) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _from_arrays(prefix: str, module: nn.Module, arrays: dict[str, np.ndarray]) -> nn.Module:
    state = {k[len(prefix) + 1:]: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()
             if k.startswith(prefix + ".")}
    module.load_state_dict(state)
    return module.eval()


def translation_problem(latents: dict[str, np.ndarray], vae, classifier: MnistClassifier,
                        source: int, target: int, accuracy: float) -> dict[str, np.ndarray]:
    """P = VAE latent means of digit ``source``, Q = of digit ``target`` (train and test
    splits); the frozen decoder and classifier ride along as arrays."""
    def pick(split: str, digit: int) -> np.ndarray:
        x = latents[split][latents[f"{split}_labels"] == digit]
        if len(x) < 2:
            raise ValueError(f"translation: fewer than 2 {split} latents of digit {digit}")
        return x

    decoder = nn.ModuleDict({"from_latent": vae.from_latent, "decoder": vae.decoder})
    return {"train": pick("train", source), "train_q": pick("train", target),
            "test_p": np.concatenate([pick("validation", source), pick("test", source)]),
            "test": np.concatenate([pick("validation", target), pick("test", target)]),
            "source_digit": np.array(source), "target_digit": np.array(target),
            "vae_width": np.array(vae.width), "classifier_accuracy": np.array(accuracy),
            **_as_arrays("decoder", decoder), **_as_arrays("classifier", classifier)}


def _decode(arrays: dict[str, np.ndarray], z: Tensor) -> Tensor:
    """Pixel probabilities ``[n, 784]`` of latents z ``[n, latent]`` by the frozen decoder."""
    from otflows.nn.vae import ConvVAE

    w = int(arrays["vae_width"])
    vae = ConvVAE(z.shape[1], w)
    dec = nn.ModuleDict({"from_latent": vae.from_latent, "decoder": vae.decoder})
    _from_arrays("decoder", dec, arrays)
    with torch.no_grad():
        return torch.sigmoid(vae.decode(z.float()))


def translation_scores(arrays: dict[str, np.ndarray], states: list[Tensor],
                       extras: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of translated test latents whose decoded image the classifier assigns to the
    target digit (and of the untranslated ones to the source digit); decoded trajectories
    of 8 test latents at every grid time go to ``extras["trajectory_pixels"]`` ``[8, K+1, 784]``."""
    clf = _from_arrays("classifier", MnistClassifier(), arrays)
    src, tgt = int(arrays["source_digit"]), int(arrays["target_digit"])
    with torch.no_grad():
        before = clf(_decode(arrays, states[0])).argmax(1)
        after = clf(_decode(arrays, states[-1])).argmax(1)
        rows = torch.stack([_decode(arrays, s[:8]) for s in states], dim=1)
    extras["trajectory_pixels"] = rows.double().numpy()
    return {"target_class_share": float((after == tgt).double().mean()),
            "source_class_share_before": float((before == src).double().mean()),
            "classifier_accuracy": float(arrays["classifier_accuracy"]),
            "source_digit": float(src), "target_digit": float(tgt)}


# ----------------------------------------------------------------------- energy-based MNIST
def _gaussian_model(train: np.ndarray, shrinkage: float):
    """Q = N(μ, Σ + shrinkage·I) fitted to logit-space MNIST: (to_latent, log q) callables."""
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False) + shrinkage * np.eye(train.shape[1])
    chol = np.linalg.cholesky(cov)
    half_log_det = float(np.log(np.diag(chol)).sum())

    def to_latent(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z = L⁻¹(x − μ) ``[n, D]`` and log|det ∂z/∂x| ``[n]``."""
        from scipy.linalg import solve_triangular

        z = solve_triangular(chol, (x - mu).T, lower=True).T
        return z, np.full(len(x), -half_log_det)

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        return mu + rng.standard_normal((n, len(mu))) @ chol.T

    return to_latent, sample


def _nsf_model(train: np.ndarray, iters: int, seed: int, transforms: int, hidden: int):
    """Q = a rational-quadratic neural spline flow (zuko ``NSF``, Durkan et al. 2019) fitted
    by maximum likelihood to logit-space MNIST (Adam, batch 128)."""
    import zuko

    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        flow = zuko.flows.NSF(train.shape[1], transforms=transforms,
                              hidden_features=[hidden, hidden])
    x = torch.as_tensor(train, dtype=torch.float32)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    for _ in range(iters):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        loss = -flow().log_prob(x[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    flow.eval()

    def to_latent(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            z, ladj = flow().transform.call_and_ladj(torch.as_tensor(xs, dtype=torch.float32))
        return z.double().numpy(), ladj.double().numpy()

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        with torch.no_grad():
            return flow().sample((n,)).double().numpy()

    return to_latent, sample


def ebm_problem(mnist: dict[str, np.ndarray], model: str, seed: int, *, shrinkage: float = 1e-2,
                nsf_iters: int = 1000, nsf_transforms: int = 3, nsf_hidden: int = 256
                ) -> dict[str, np.ndarray]:
    """§4.4: P = logit-space MNIST, Q = a fitted model F#N(0, I) (``gaussian`` or ``nsf``).
    Q-flow runs between F⁻¹#P (``train``/``test_p``) and N(0, I) (``train_q``/``test``);
    ``test_log_q`` = log q(x) of the test images (nats, logit space) and ``test_pixels01``
    their dequantised pixels, so that log p̂ = log q − ∫ r ds gives bits/dim."""
    from otflows.data.mnist import LOGIT_LAMBDA, inverse_logit_transform

    train = np.asarray(mnist["train"], dtype=np.float64)
    test = np.asarray(mnist["test"], dtype=np.float64)
    if model == "gaussian":
        to_latent, _ = _gaussian_model(train, shrinkage)
    elif model == "nsf":
        to_latent, _ = _nsf_model(train.astype(np.float32), nsf_iters, seed, nsf_transforms,
                                  nsf_hidden)
    else:
        raise ValueError(f"ebm_problem: model={model!r}; expected 'gaussian' or 'nsf'")
    r = _streams(seed, f"qflow-ebm-{model}", 2)
    z_train, _ = to_latent(train)
    z_test, ladj = to_latent(test)
    d = train.shape[1]
    log_q = -0.5 * (z_test ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi) + ladj
    lam = float(mnist.get("logit_lambda", LOGIT_LAMBDA))
    return {"train": z_train, "train_q": r[0].standard_normal(z_train.shape),
            "test_p": z_test, "test": r[1].standard_normal(z_test.shape),
            "test_log_q": log_q, "test_pixels01": inverse_logit_transform(test, lam),
            "logit_lambda": np.array(lam), "ebm_model": np.array(model)}
