"""Conditional flow matching (``flowmatch``) with few-step ODE sampling.

A velocity field ``v(x_t, t, c)`` (an MLP on the preprocessed shower ``x``, a sinusoidal
embedding of ``t`` and the condition ``c``) is regressed onto the optimal-transport
conditional path of Lipman et al. (arXiv:2210.02747):

    x_t = (1 - (1 - sigma_min) t) x_0 + t x_1,   x_0 ~ N(0, 1),  x_1 = data,  t ~ U(0, 1),
    L = E || v(x_t, t, c) - (x_1 - (1 - sigma_min) x_0) ||^2 .

Sampling integrates ``dx/dt = v(x, t, c)`` from ``t = 0`` (noise) to 1 with ``steps``
explicit Euler or midpoint steps (10-20 suffice for these straight paths; CaloDiffusion
arXiv:2308.03876 and the CaloChallenge arXiv:2410.21611 show the few-step regime), then
inverts the preprocessing (:mod:`heplab.simulation.preprocessing`). Trained through the
engine's ``training_loss``.
"""

from __future__ import annotations

import math
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

__all__ = ["FlowMatchConfig", "FlowMatchGenerator", "VelocityField"]


@dataclass
class FlowMatchConfig(GeneratorConfig):
    """Flow-matching hyper-parameters (plus the shared training settings)."""

    epochs: int = 20
    hidden: tuple[int, ...] = (256, 256, 256)
    time_features: int = 8
    sigma_min: float = 1e-4
    steps: int = 16
    solver: str = "midpoint"

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.time_features < 1 or not 0 <= self.sigma_min < 1:
            raise ConfigError("steps, time_features must be >= 1 and 0 <= sigma_min < 1")
        if self.solver not in ("euler", "midpoint"):
            raise ConfigError(f"solver must be euler or midpoint, not {self.solver!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError("hidden needs >= 1 layer of >= 1 unit")


class VelocityField(nn.Module):
    """``v(x, t, c)``: an MLP on ``[x, sin/cos(2^k pi t), c]``."""

    freqs: torch.Tensor

    def __init__(self, n_voxels: int, n_cond: int, cfg: FlowMatchConfig) -> None:
        super().__init__()
        self.sigma_min = cfg.sigma_min
        self.steps = cfg.steps
        self.solver = cfg.solver
        self.register_buffer(
            "freqs", math.pi * 2.0 ** torch.arange(cfg.time_features, dtype=torch.float32)
        )
        self.n_voxels = n_voxels
        self.net = mlp(n_voxels + 2 * cfg.time_features + n_cond, cfg.hidden, n_voxels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Velocity at ``x`` and times ``t`` (shape ``(batch,)``)."""
        arg = t[:, None] * self.freqs[None, :]
        out: torch.Tensor = self.net(torch.cat([x, arg.sin(), arg.cos(), c], dim=1))
        return out

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Conditional flow-matching loss (mean over voxels and showers).

        In validation (eval mode) ``x_0`` and ``t`` come from a fixed seed
        (:func:`~heplab.simulation.generators.validation_noise`).
        """
        x1, c = batch["x"], batch["c"]
        gen = validation_noise(self, x1)
        x0 = torch.randn(x1.shape, generator=gen, dtype=x1.dtype, device=x1.device)
        t = torch.rand(len(x1), generator=gen, dtype=x1.dtype, device=x1.device)
        xt = (1 - (1 - self.sigma_min) * t[:, None]) * x0 + t[:, None] * x1
        target = x1 - (1 - self.sigma_min) * x0
        return ((self(xt, t, c) - target) ** 2).mean()

    def generate(self, c: torch.Tensor) -> torch.Tensor:
        """Integrate the ODE from noise to preprocessed showers."""
        x = torch.randn(len(c), self.n_voxels, dtype=c.dtype, device=c.device)
        dt = 1.0 / self.steps
        for k in range(self.steps):
            t = torch.full((len(c),), k * dt, dtype=c.dtype, device=c.device)
            v = self(x, t, c)
            if self.solver == "midpoint":
                v = self(x + 0.5 * dt * v, t + 0.5 * dt, c)
            x = x + dt * v
        return x


class FlowMatchGenerator(ShowerGenerator):
    """Conditional flow-matching shower generator (see the module doc)."""

    name = "flowmatch"
    config_class = FlowMatchConfig
    config: FlowMatchConfig

    def _build(self, prep: Preprocessor) -> nn.Module:
        return VelocityField(prep.n_voxels, prep.condition_dim, self.config)
