"""A convolutional VAE (Kingma & Welling, ICLR 2014, arXiv:1312.6114) for 28×28 images.

Encoder: two stride-2 4×4 convolutions (1 → w → 2w channels, 28 → 14 → 7) and a linear map
to the mean and log-variance of q(z|x) = N(μ, diag σ²); decoder: the mirror image with
transposed convolutions, giving Bernoulli logits per pixel. The loss is the negative ELBO in
nats per image, reparameterised with one sample (Kingma & Welling eq. 10). Trained by
``otflows.methods.vae``; its latents are Q-flow's translation data and CP-Flow's VI task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ELBO", "PIXELS", "ConvVAE", "grey_levels", "negative_elbo"]

PIXELS = 784


class ConvVAE(nn.Module):
    """Convolutional VAE for 28×28 images: ``encode`` → (μ, log σ²), ``decode`` → logits."""

    def __init__(self, latent_dim: int, width: int) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(), nn.Flatten())
        self.to_stats = nn.Linear(2 * w * 49, 2 * latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, 2 * w * 49), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, 2, 1))
        self.width = w

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x ``[n, 784]`` grey levels in [0, 1] → (μ, log σ²), each ``[n, latent]``."""
        h = self.to_stats(self.encoder(x.view(-1, 1, 28, 28)))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """z ``[n, latent]`` → Bernoulli logits ``[n, 784]``."""
        h = self.from_latent(z).view(-1, 2 * self.width, 7, 7)
        return self.decoder(h).view(-1, PIXELS)


@dataclass
class ELBO:
    """Per-image terms in nats, each ``[n]``: ``recon`` = −E_q log p(x|z) (one sample),
    ``kl`` = KL(q(z|x) ‖ N(0, I)) (closed form), ``total`` = recon + kl = −ELBO."""

    total: Tensor
    recon: Tensor
    kl: Tensor


def negative_elbo(model: ConvVAE, x: Tensor, noise: Tensor) -> ELBO:
    """−ELBO of grey levels ``x`` ``[n, 784]`` with reparameterisation noise ``[n, latent]``."""
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * noise
    recon = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none").sum(1)
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)
    return ELBO(recon + kl, recon, kl)


def grey_levels(pixels: np.ndarray, device: torch.device) -> Tensor:
    """MNIST pixels ``[n, 784]`` in 0..255 → float32 grey levels in [0, 1] on ``device``."""
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.shape[1] != PIXELS or arr.shape[0] == 0:
        raise ValueError(f"expected pixels [n, {PIXELS}] with n >= 1; got {arr.shape}")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError("pixels must lie in 0..255")
    return torch.as_tensor(arr, dtype=torch.float32, device=device) / 255.0
