"""Two-stage normalizing flow (``flow``), CaloFlow-like, with an IAF student.

CaloFlow (Krause & Shih, arXiv:2106.05285) factorises the shower density as

    p(shower | E_inc) = p_1(E_1..E_L | E_inc) * p_2(f | E_1..E_L, E_inc),

flow 1 learning the layer energies ``E_l`` [GeV] (as standardised ``ln(E_l / E_inc +
eps)``) and flow 2 the voxel energies normalised to their layer (``f_i = e_i / E_l(i)``, as
standardised ``ln(f_i + eps)``; :mod:`heplab.simulation.preprocessing`). Both are masked
autoregressive flows (MAF, Papamakarios et al. arXiv:1705.07057) from ``zuko``
(``zuko.flows.MAF``, affine autoregressive transforms, feature order reversed between
transforms); flow 1 is conditioned on ``c`` (scaled ``ln E_inc`` [+ particle one-hot]),
flow 2 on ``c`` and flow 1's variables. Both are trained together by maximum likelihood
(the loss is ``-ln p_1 - ln p_2`` per shower), so :meth:`FlowGenerator.log_prob` is exact:
the log density [nats] of the preprocessed variables (layer variables + normalised voxel
variables; it is not a density in GeV per voxel, where empty cells are point masses).

A MAF evaluates densities in one pass but samples sequentially, one network pass per
voxel and transform. CaloFlow II (arXiv:2110.11377) distils the teacher into an inverse
autoregressive flow (IAF) student that samples in one pass: here the student is a second
MAF used in the other direction (its parallel direction maps noise to showers) and learns
the teacher's latent mapping: for training showers ``x``, ``z = T(x)`` (teacher, one pass)
and the loss is ``||S(z) - x||^2`` (the full CaloFlow II loss also matches each
intermediate transform and teacher samples; this keeps the final-output term only). The
student samples flow 2; flow 1 (a few layer energies) stays the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zuko
from torch import nn

from heplab.errors import ConfigError
from heplab.simulation.generators import GeneratorConfig, ShowerGenerator, _history
from heplab.simulation.preprocessing import Preprocessor

__all__ = ["FlowConfig", "FlowGenerator", "TwoStageFlow"]


@dataclass
class FlowConfig(GeneratorConfig):
    """Two-stage flow hyper-parameters (plus the shared training settings).

    ``voxel_passes``: ``None`` for a fully autoregressive flow 2 (MAF), or a small number of
    passes (zuko's ``passes``: coupling-like blocks, faster teacher sampling).
    ``student``: distil an IAF student for ``student_epochs`` after the teacher.
    """

    epochs: int = 20
    lr: float = 5e-4
    layer_transforms: int = 4
    layer_hidden: tuple[int, ...] = (64, 64)
    voxel_transforms: int = 3
    voxel_hidden: tuple[int, ...] = (256, 256)
    voxel_passes: int | None = None
    student: bool = True
    student_epochs: int = 20
    student_transforms: int = 3
    student_hidden: tuple[int, ...] = (256, 256)

    def validate(self) -> None:
        super().validate()
        if min(self.layer_transforms, self.voxel_transforms, self.student_transforms) < 1:
            raise ConfigError("every flow needs >= 1 transform")
        if self.student_epochs < 1:
            raise ConfigError("student_epochs must be >= 1")
        if self.voxel_passes is not None and self.voxel_passes < 2:
            raise ConfigError("voxel_passes must be None (autoregressive) or >= 2")
        for h in (self.layer_hidden, self.voxel_hidden, self.student_hidden):
            if not h or min(h) < 1:
                raise ConfigError("hidden sizes need >= 1 layer of >= 1 unit")


class TwoStageFlow(nn.Module):
    """Flow 1 (layer energies), flow 2 (normalised voxels) and the optional student."""

    student_ready: torch.Tensor

    def __init__(self, n_layers: int, n_voxels: int, n_cond: int, cfg: FlowConfig) -> None:
        super().__init__()
        self.layer_flow = zuko.flows.MAF(
            n_layers,
            context=n_cond,
            transforms=cfg.layer_transforms,
            hidden_features=cfg.layer_hidden,
        )
        self.voxel_flow = zuko.flows.MAF(
            n_voxels,
            context=n_cond + n_layers,
            transforms=cfg.voxel_transforms,
            hidden_features=cfg.voxel_hidden,
            passes=cfg.voxel_passes,
        )
        self.student = (
            zuko.flows.MAF(
                n_voxels,
                context=n_cond + n_layers,
                transforms=cfg.student_transforms,
                hidden_features=cfg.student_hidden,
            )
            if cfg.student
            else None
        )
        # 1 once the student is distilled (saved with the weights)
        self.register_buffer("student_ready", torch.zeros((), dtype=torch.bool))

    def log_prob(self, y: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``ln p_1(y | c) + ln p_2(x | y, c)`` per shower [nats]."""
        lp1: torch.Tensor = self.layer_flow(c).log_prob(y)
        lp2: torch.Tensor = self.voxel_flow(torch.cat([c, y], dim=1)).log_prob(x)
        return lp1 + lp2

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Negative log-likelihood per shower (both stages)."""
        return -self.log_prob(batch["y"], batch["x"], batch["c"]).mean()

    def generate(self, c: torch.Tensor, use_student: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer variables ``y`` and normalised voxel variables ``x`` for conditions ``c``."""
        y: torch.Tensor = self.layer_flow(c).sample()
        ctx = torch.cat([c, y], dim=1)
        if use_student and self.student is not None and bool(self.student_ready):
            dist = self.student(ctx)
            z = dist.base.sample()
            x: torch.Tensor = dist.transform(z)
        else:
            x = self.voxel_flow(ctx).sample()
        return y, x


class _Distiller(nn.Module):
    """The teacher (frozen) and the student, with the distillation loss."""

    def __init__(self, flow: TwoStageFlow) -> None:
        super().__init__()
        self.flow = flow
        for p in (*flow.layer_flow.parameters(), *flow.voxel_flow.parameters()):
            p.requires_grad_(False)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        assert self.flow.student is not None
        ctx = torch.cat([batch["c"], batch["y"]], dim=1)
        with torch.no_grad():
            z = self.flow.voxel_flow(ctx).transform(batch["x"])
        x_student = self.flow.student(ctx).transform(z)
        return ((x_student - batch["x"]) ** 2).mean()


class FlowGenerator(ShowerGenerator):
    """Two-stage CaloFlow-like generator with an IAF student (see the module doc).

    ``sampler`` chooses the voxel sampler: ``"student"`` (one pass; the default when the
    student is trained) or ``"teacher"`` (the MAF, sequential).
    """

    name = "flow"
    config_class = FlowConfig
    config: FlowConfig

    def __init__(self, geometry: Any | None = None, config: Any = None) -> None:
        super().__init__(geometry, config)
        self.sampler = "student"

    def _build(self, prep: Preprocessor) -> nn.Module:
        return TwoStageFlow(prep.n_layers, prep.n_voxels, prep.condition_dim, self.config)

    def _arrays(self, data: Any, prep: Preprocessor) -> dict[str, np.ndarray]:
        mixed = data.particle == "mixed"
        return {
            "y": prep.encode_layers(data.showers, data.energies),
            "x": prep.encode_normalised(data.showers),
            "c": prep.condition(data.energies, data.pids if mixed else None),
        }

    def _train(
        self, train: dict[str, np.ndarray], val: dict[str, np.ndarray], out_dir: Path
    ) -> None:
        flow = self.net_
        assert isinstance(flow, TwoStageFlow)
        res = self._engine_fit(flow, train, val, out_dir / "train" / "teacher")
        self.history_["teacher"] = _history(res)
        if flow.student is None:
            return
        cfg = self.config.train_config()
        cfg.epochs = self.config.student_epochs
        distiller = _Distiller(flow)
        res = self._engine_fit(distiller, train, val, out_dir / "train" / "student", cfg)
        self.history_["student"] = _history(res)
        for p in flow.parameters():
            p.requires_grad_(True)
        flow.student_ready.fill_(True)

    def _sample_batch(self, cond: torch.Tensor, energies: np.ndarray) -> np.ndarray:
        prep, net = self._fitted()
        assert isinstance(net, TwoStageFlow)
        if self.sampler not in ("student", "teacher"):
            raise ConfigError(f"sampler must be student or teacher, not {self.sampler!r}")
        y, x = net.generate(cond, use_student=self.sampler == "student")
        layers = prep.decode_layers(y.numpy(), energies)
        return prep.decode_normalised(x.numpy(), layers)

    def log_prob(
        self, showers: np.ndarray, energies: np.ndarray, pids: np.ndarray | None = None
    ) -> np.ndarray:
        """Exact teacher log density [nats] of the preprocessed variables, per shower."""
        prep, net = self._fitted()
        assert isinstance(net, TwoStageFlow)
        showers = np.asarray(showers)
        energies = np.asarray(energies, dtype=np.float64).reshape(-1)
        y = torch.from_numpy(prep.encode_layers(showers, energies))
        x = torch.from_numpy(prep.encode_normalised(showers))
        c = torch.from_numpy(prep.condition(energies, pids))
        net.eval()
        out = []
        with torch.no_grad():
            for lo in range(0, len(energies), 4096):
                sl = slice(lo, lo + 4096)
                out.append(net.log_prob(y[sl], x[sl], c[sl]).numpy())
        return np.concatenate(out) if out else np.zeros(0)
