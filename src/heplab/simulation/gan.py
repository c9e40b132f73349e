"""Conditional Wasserstein GAN with gradient penalty (``gan``), CaloGAN-style MLPs.

The generator ``G(z, c)`` maps Gaussian noise ``z`` (``latent_dim``) and the condition
``c`` (scaled ``ln E_inc`` [+ particle one-hot]) to the flattened preprocessed shower
``x`` (standardised ``ln(e / E_inc + eps)``, :mod:`heplab.simulation.preprocessing`);
the critic ``D(x, c)`` scores showers (an MLP with a projection term for the condition,
:class:`ProjectionCritic`). WGAN-GP (Gulrajani et al., arXiv:1704.00028):

    L_D = E[D(G(z, c), c)] - E[D(x, c)] + lambda E[(||grad_x' D(x', c)||_2 - 1)^2],
    x' = a x + (1 - a) G(z, c),  a ~ U(0, 1);     L_G = -E[D(G(z, c), c)],

with ``lambda = gp_lambda`` (10), ``n_critic`` (5) critic updates per generator update and
Adam(beta1 = 0.5, beta2 = 0.9) for both. As in CaloGAN (Paganini et al.,
arXiv:1705.02355) the networks act on all cells at once; here both are plain MLPs with
LeakyReLU and no normalisation in the critic (the penalty is per sample).

Training runs through the one engine (:func:`heplab.ml.engine.fit`) in its manual
optimisation mode: :meth:`WGANGP.make_optimizers` and :meth:`WGANGP.manual_training_step`
(one critic step per batch, a generator step every ``n_critic``-th batch, so the generator
gets ``batches / n_critic`` updates: on a small set or with few epochs, lower ``n_critic``
or raise ``epochs``, else the generator learns the showers averaged over energies before it
learns their energy dependence, as seen on a toy with n_critic = 5). The validation
loss does not use the critic (whose Wasserstein estimate grows while the critic itself
learns, so that the untrained generator would look best): it is the squared maximum mean
discrepancy (Gretton et al., JMLR 13 (2012) 723; biased estimate) between the validation
batch and as many generated showers with the same conditions, with a sum of Gaussian
kernels ``exp(-||x - y||^2 / (2 s^2 d))``, ``s`` in (0.5, 1, 2), ``d`` voxels (the
preprocessed variables are standardised), on fixed noise; early stopping and the best
weights follow it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from heplab.errors import ConfigError
from heplab.ml.engine import TrainConfig
from heplab.simulation.generators import (
    GeneratorConfig,
    ShowerGenerator,
    mlp,
    validation_noise,
)
from heplab.simulation.preprocessing import Preprocessor

__all__ = ["WGANGP", "GANConfig", "GANGenerator"]


@dataclass
class GANConfig(GeneratorConfig):
    """WGAN-GP hyper-parameters (plus the shared training settings)."""

    epochs: int = 30
    lr: float = 2e-4
    schedule: str = "none"
    patience: int = 10
    latent_dim: int = 64
    hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    n_critic: int = 5
    gp_lambda: float = 10.0

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1 or self.n_critic < 1 or self.gp_lambda < 0:
            raise ConfigError("latent_dim and n_critic must be >= 1, gp_lambda >= 0")
        if not self.hidden or not self.critic_hidden or min(*self.hidden, *self.critic_hidden) < 1:
            raise ConfigError("hidden and critic_hidden need >= 1 layer of >= 1 unit")


class ProjectionCritic(nn.Module):
    """``D(x, c) = w . phi(x, c) + embed(c) . phi(x, c)`` (projection discriminator).

    Besides seeing ``c`` as one more input, the score has a projection term (Miyato &
    Koyama, arXiv:1802.05637): the inner product of the features with an embedding of the
    condition, which makes the score depend directly on how the shower matches it.
    """

    def __init__(self, n_voxels: int, n_cond: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        width = hidden[-1]
        self.body = nn.Sequential(
            mlp(n_voxels + n_cond, hidden[:-1], width, nn.LeakyReLU), nn.LeakyReLU()
        )
        self.head = nn.Linear(width, 1)
        self.embed = mlp(n_cond, (width,), width, nn.LeakyReLU)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Critic value per shower."""
        phi = self.body(torch.cat([x, c], dim=1))
        out: torch.Tensor = self.head(phi).squeeze(-1) + (self.embed(c) * phi).sum(-1)
        return out


class WGANGP(nn.Module):
    """Generator and critic with the engine's manual-optimisation hooks."""

    def __init__(self, n_voxels: int, n_cond: int, cfg: GANConfig) -> None:
        super().__init__()
        self.latent_dim = cfg.latent_dim
        self.n_critic = cfg.n_critic
        self.gp_lambda = cfg.gp_lambda
        self.generator = mlp(cfg.latent_dim + n_cond, cfg.hidden, n_voxels, nn.LeakyReLU)
        self.critic = ProjectionCritic(n_voxels, n_cond, cfg.critic_hidden)
        self._steps = 0

    def generate(self, c: torch.Tensor) -> torch.Tensor:
        """Preprocessed showers for conditions ``c`` (fresh noise)."""
        z = torch.randn(len(c), self.latent_dim, device=c.device, dtype=c.dtype)
        out: torch.Tensor = self.generator(torch.cat([z, c], dim=1))
        return out

    def score(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Critic value per shower."""
        out: torch.Tensor = self.critic(x, c)
        return out

    def gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor
    ) -> torch.Tensor:
        """``E[(||grad D(x')|| - 1)^2]`` on random interpolates ``x'``."""
        a = torch.rand(len(real), 1, device=real.device, dtype=real.dtype)
        mix = (a * real + (1 - a) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.score(mix, c).sum(), mix, create_graph=True)
        return ((grad.norm(dim=1) - 1) ** 2).mean()

    def make_optimizers(self, config: TrainConfig) -> list[torch.optim.Optimizer]:
        """Adam(0.5, 0.9) for the generator and the critic (arXiv:1704.00028)."""
        kw: dict[str, Any] = {"lr": config.lr, "betas": (0.5, 0.9)}
        return [
            torch.optim.Adam(self.generator.parameters(), **kw),
            torch.optim.Adam(self.critic.parameters(), **kw),
        ]

    def manual_training_step(
        self,
        batch: dict[str, torch.Tensor],
        optimizers: list[Any],
        backward: Callable[[torch.Tensor], None],
    ) -> torch.Tensor:
        """One critic update; one generator update every ``n_critic`` calls."""
        opt_g, opt_d = optimizers
        x, c = batch["x"], batch["c"]
        fake = self.generate(c).detach()
        loss_d = (
            self.score(fake, c).mean()
            - self.score(x, c).mean()
            + self.gp_lambda * self.gradient_penalty(x, fake, c)
        )
        opt_d.zero_grad()
        backward(loss_d)
        opt_d.step()
        self._steps += 1
        if self._steps % self.n_critic == 0:
            for p in self.critic.parameters():
                p.requires_grad_(False)
            loss_g = -self.score(self.generate(c), c).mean()
            opt_g.zero_grad()
            backward(loss_g)
            opt_g.step()
            for p in self.critic.parameters():
                p.requires_grad_(True)
        return loss_d.detach()

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Validation: MMD^2 between the batch and generated showers (module doc)."""
        x, c = batch["x"], batch["c"]
        gen = validation_noise(self, x)
        z = torch.randn(len(c), self.latent_dim, generator=gen, dtype=c.dtype, device=c.device)
        fake: torch.Tensor = self.generator(torch.cat([z, c], dim=1))
        return mmd2(x, fake)


def mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased squared MMD of two samples with Gaussian kernels of widths (0.5, 1, 2) sqrt(d)."""
    both = torch.cat([x, y])
    d2 = torch.cdist(both, both).square() / x.shape[1]
    k = sum(torch.exp(-d2 / (2 * s * s)) for s in (0.5, 1.0, 2.0))
    assert isinstance(k, torch.Tensor)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


class GANGenerator(ShowerGenerator):
    """Conditional WGAN-GP shower generator (see the module doc)."""

    name = "gan"
    config_class = GANConfig
    config: GANConfig

    def _build(self, prep: Preprocessor) -> nn.Module:
        return WGANGP(prep.n_voxels, prep.condition_dim, self.config)
