"""Conditional variational autoencoder (``vae``), a simplified BIB-AE.

Encoder ``q(w | x, c) = N(mu(x, c), diag sigma^2(x, c))`` and decoder
``p(x | w, c) = N(m(w, c), diag s^2)`` on the preprocessed shower ``x`` (standardised
``ln(e / E_inc + eps)``, :mod:`heplab.simulation.preprocessing`) with condition ``c``
(scaled ``ln E_inc`` [+ particle one-hot]); ``s`` is a learned per-voxel width. The loss is
the negative evidence lower bound per shower (Kingma & Welling, arXiv:1312.6114):

    L = sum_i [ (x_i - m_i)^2 / (2 s_i^2) + ln s_i ] + beta KL(q(w | x, c) || N(0, 1)).

BIB-AE (Buhmann et al., arXiv:2005.05334) adds adversarial critics and a post-processor to
this core; here the learned decoder width plays the post-processor's part of restoring the
per-voxel spread that a mean decoder loses (sampling draws ``w ~ N(0, 1)`` and then
``x ~ p(x | w, c)`` when ``sample_noise``). Trained through the engine's
``training_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from heplab.errors import ConfigError
from heplab.simulation.generators import (
    GeneratorConfig,
    ShowerGenerator,
    mlp,
    validation_noise,
)
from heplab.simulation.preprocessing import Preprocessor

__all__ = ["ConditionalVAE", "VAEConfig", "VAEGenerator"]


@dataclass
class VAEConfig(GeneratorConfig):
    """VAE hyper-parameters (plus the shared training settings)."""

    epochs: int = 20
    latent_dim: int = 16
    hidden: tuple[int, ...] = (256, 128)
    beta: float = 1.0
    sample_noise: bool = True

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1 or self.beta < 0:
            raise ConfigError("latent_dim must be >= 1 and beta >= 0")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError("hidden needs >= 1 layer of >= 1 unit")


class ConditionalVAE(nn.Module):
    """MLP encoder / decoder with a learned per-voxel decoder width."""

    def __init__(self, n_voxels: int, n_cond: int, cfg: VAEConfig) -> None:
        super().__init__()
        self.latent_dim = cfg.latent_dim
        self.beta = cfg.beta
        self.sample_noise = cfg.sample_noise
        self.encoder = mlp(n_voxels + n_cond, cfg.hidden, 2 * cfg.latent_dim)
        self.decoder = mlp(cfg.latent_dim + n_cond, tuple(reversed(cfg.hidden)), n_voxels)
        self.log_s = nn.Parameter(torch.zeros(n_voxels))

    def decode(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Decoder mean for latents ``w``."""
        out: torch.Tensor = self.decoder(torch.cat([w, c], dim=1))
        return out

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Negative ELBO per shower (see the module doc; fixed noise in validation)."""
        x, c = batch["x"], batch["c"]
        mu, log_var = self.encoder(torch.cat([x, c], dim=1)).chunk(2, dim=1)
        noise = torch.randn(
            mu.shape, generator=validation_noise(self, mu), dtype=mu.dtype, device=mu.device
        )
        w = mu + noise * (0.5 * log_var).exp()
        m = self.decode(w, c)
        nll = (0.5 * ((x - m) * torch.exp(-self.log_s)) ** 2 + self.log_s).sum(1)
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
        return (nll + self.beta * kl).mean()

    def generate(self, c: torch.Tensor) -> torch.Tensor:
        """Preprocessed showers for conditions ``c``."""
        w = torch.randn(len(c), self.latent_dim, dtype=c.dtype, device=c.device)
        m = self.decode(w, c)
        if self.sample_noise:
            m = m + torch.randn_like(m) * self.log_s.exp()
        return m


class VAEGenerator(ShowerGenerator):
    """Conditional VAE shower generator (see the module doc)."""

    name = "vae"
    config_class = VAEConfig
    config: VAEConfig

    def _build(self, prep: Preprocessor) -> nn.Module:
        return ConditionalVAE(prep.n_voxels, prep.condition_dim, self.config)
