"""One interface for every generative calorimeter-shower model, and their registry.

A :class:`ShowerGenerator` learns ``p(shower | E_inc[, particle])`` from a
:class:`heplab.events.calo.ShowerSet` and samples new showers, scikit-learn style::

    gen = make_generator("flow", geometry, {"epochs": 20})
    gen.fit(train, val, out_dir="runs/flow")       # -> self
    showers = gen.sample(np.full(1000, 50.0), seed=1)   # (1000, n_voxels) float32 [GeV]
    gen.save("runs/flow"); gen = load_generator("runs/flow")

- ``fit`` fits the shared preprocessing (:class:`heplab.simulation.preprocessing.Preprocessor`:
  log energy fractions, standardised, conditions ``ln E_inc`` scaled to [0, 1] plus the
  particle one-hot of mixed sets) on the training set and trains the network with the one
  training engine (:func:`heplab.ml.engine.fit`: checkpoints in ``out_dir/train``, early
  stopping on the validation loss, best weights kept). Without ``val`` a seeded 10 % of
  ``train`` is held out.
- ``sample(energies [GeV], *, seed, batch_size, pids)`` returns non-negative showers [GeV],
  zero-suppressed at the training set's smallest deposit; the same seed gives the same
  showers (``torch`` RNG forked, so the caller's RNG state is untouched).
- ``log_prob`` (the flows only) is exact: the log density [nats] of the preprocessed
  variables (see the model's doc).
- ``save(run_dir)`` / :meth:`ShowerGenerator.load`: ``config.json`` (model, geometry, layer
  sizes, hyper-parameters, training summary), ``weights.pt`` (``state_dict``, loaded with
  ``weights_only=True``), ``preprocessing.json``, ``history.json``
  (:mod:`heplab.simulation.runs`).

Models (:data:`GENERATORS`): ``gan`` (conditional WGAN-GP, arXiv:1704.00028, CaloGAN
arXiv:1705.02355), ``vae`` (conditional VAE, BIB-AE arXiv:2005.05334 simplified), ``flow``
(two-stage CaloFlow arXiv:2106.05285 with an IAF student, CaloFlow II arXiv:2110.11377),
``flowmatch`` (conditional flow matching arXiv:2210.02747). Hyper-parameters come from a
dict or YAML (:func:`load_config`); unknown keys raise :class:`heplab.errors.ConfigError`.
Defaults are sized for two CPU cores (small nets, few epochs).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from heplab.errors import ConfigError, DataError
from heplab.ml.data import JetDataset
from heplab.ml.engine import FitResult, TrainConfig
from heplab.ml.engine import fit as engine_fit
from heplab.simulation.preprocessing import Preprocessor

__all__ = [
    "GENERATORS",
    "GeneratorConfig",
    "ShowerGenerator",
    "load_config",
    "load_generator",
    "make_generator",
    "mlp",
    "validation_noise",
]

_C = TypeVar("_C", bound="GeneratorConfig")
_G = TypeVar("_G", bound="ShowerGenerator")


class _ShowerData(Protocol):
    energies: np.ndarray
    showers: np.ndarray
    geometry: Any
    particle: str
    pids: np.ndarray | None

    def __len__(self) -> int: ...


# ---------------------------------------------------------------------------- configs
@dataclass
class GeneratorConfig:
    """Training settings shared by every model (each model adds its own fields).

    ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``schedule``, ``patience``
    and ``seed`` go to :class:`heplab.ml.engine.TrainConfig`; ``progress_bar`` shows
    Lightning's bar.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    patience: int = 5
    seed: int = 0
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for impossible values."""
        self.train_config()  # TrainConfig checks its own fields

    def train_config(self) -> TrainConfig:
        """The engine's settings."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            patience=self.patience,
            seed=self.seed,
            progress_bar=self.progress_bar,
        )

    @classmethod
    def from_dict(cls: type[_C], values: Mapping[str, Any] | None = None) -> _C:
        """Build from a mapping (YAML / JSON); unknown keys and bad types -> ConfigError."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad {cls.__name__} values: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping of hyper-parameters (validated later by the model's config)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {p} must be a mapping of settings, not {type(data).__name__}")
    return data


def mlp(
    n_in: int, hidden: tuple[int, ...], n_out: int, act: type[nn.Module] = nn.SiLU
) -> nn.Sequential:
    """A plain multilayer perceptron ``n_in -> hidden... -> n_out`` (linear output)."""
    layers: list[nn.Module] = []
    last = n_in
    for h in hidden:
        layers += [nn.Linear(last, h), act()]
        last = h
    layers.append(nn.Linear(last, n_out))
    return nn.Sequential(*layers)


def validation_noise(module: nn.Module, like: torch.Tensor) -> torch.Generator | None:
    """``None`` while training; in eval mode a generator with a fixed seed.

    Stochastic objectives (flow matching's ``t`` and ``x_0``, the VAE's reparametrisation,
    the GAN's noise) then score every validation pass on the same noise, so that epochs
    are compared on the model and not on the draw (early stopping, best weights).
    """
    if module.training:
        return None
    gen = torch.Generator(device=like.device)
    gen.manual_seed(20_250_705)
    return gen


# ---------------------------------------------------------------------------- interface
class ShowerGenerator(ABC):
    """Base of the generative shower models (see the module doc).

    Fitted attributes: ``prep_`` (the preprocessing), ``net_`` (the ``nn.Module``),
    ``history_`` (validation losses per epoch, stage by stage), ``train_time_s_``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(
        self,
        geometry: Any | None = None,
        config: GeneratorConfig | Mapping[str, Any] | None = None,
    ) -> None:
        self.geometry = geometry
        self.config = (
            config if isinstance(config, self.config_class) else self.config_class.from_dict(config)  # type: ignore[arg-type]
        )
        self.geometry_name: str = getattr(geometry, "name", "") if geometry is not None else ""
        self.layer_sizes: list[int] = _layer_sizes(geometry) if geometry is not None else []
        self.particle: str = ""
        self.prep_: Preprocessor | None = None
        self.net_: nn.Module | None = None
        self.history_: dict[str, Any] = {}
        self.train_time_s_: float = float("nan")

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _build(self, prep: Preprocessor) -> nn.Module:
        """The untrained network for this preprocessing (sizes, condition length)."""

    def _arrays(self, data: _ShowerData, prep: Preprocessor) -> dict[str, np.ndarray]:
        """Training tensors of a set (``"c"``: conditions, plus the model's inputs).

        Default: ``"x"``, the whole preprocessed shower (one-stage models).
        """
        mixed = data.particle == "mixed"
        return {
            "x": prep.encode(data.showers, data.energies),
            "c": prep.condition(data.energies, data.pids if mixed else None),
        }

    def _sample_batch(self, cond: torch.Tensor, energies: np.ndarray) -> np.ndarray:
        """Showers [GeV] for one batch of conditions (under ``torch.no_grad``).

        Default: the network's ``generate(cond)``, decoded (one-stage models).
        """
        prep, net = self._fitted()
        generate = getattr(net, "generate", None)
        if not callable(generate):
            raise NotImplementedError(f"{type(net).__name__} has no generate(cond)")
        return prep.decode(generate(cond).numpy(), energies)

    def _train(
        self, train: dict[str, np.ndarray], val: dict[str, np.ndarray], out_dir: Path
    ) -> None:
        """Train ``net_`` with the engine (override for several stages)."""
        res = self._engine_fit(self.net_, train, val, out_dir / "train")
        self.history_["model"] = _history(res)

    def _engine_fit(
        self,
        net: nn.Module | None,
        train: dict[str, np.ndarray],
        val: dict[str, np.ndarray],
        out_dir: Path,
        config: TrainConfig | None = None,
    ) -> FitResult:
        assert net is not None
        return engine_fit(
            net,
            JetDataset(train),
            JetDataset(val),
            config=config or self.config.train_config(),
            out_dir=out_dir,
        )

    # ------------------------------------------------------------------ public API
    def fit(
        self: _G,
        train: _ShowerData,
        val: _ShowerData | None = None,
        *,
        out_dir: str | os.PathLike[str],
        config: GeneratorConfig | Mapping[str, Any] | None = None,
    ) -> _G:
        """Fit preprocessing and network on ``train`` (``val`` for early stopping)."""
        if config is not None:
            self.config = (
                config
                if isinstance(config, self.config_class)
                else self.config_class.from_dict(config)  # type: ignore[arg-type]
            )
        if self.geometry is None:
            self.geometry = train.geometry
            self.geometry_name = getattr(train.geometry, "name", "")
        sizes = _layer_sizes(self.geometry)
        if train.showers.shape[1:] != (sum(sizes),):
            raise DataError(
                f"showers have {train.showers.shape[1:]} voxels; geometry "
                f"{self.geometry_name!r} has {sum(sizes)}"
            )
        self.layer_sizes = sizes
        self.particle = train.particle
        if val is None:
            train, val = _split(train, 0.1, self.config.seed)
        if len(train) < 2 or len(val) < 1:
            raise DataError(f"too few showers to train ({len(train)} train, {len(val)} val)")
        mixed = train.pids is not None and train.particle == "mixed"
        prep = Preprocessor.fit(train.energies, train.showers, sizes, train.pids if mixed else None)
        self.prep_ = prep
        torch.manual_seed(self.config.seed)
        self.net_ = self._build(prep)
        start = time.perf_counter()
        self._train(self._arrays(train, prep), self._arrays(val, prep), Path(out_dir))
        self.train_time_s_ = time.perf_counter() - start
        self.history_["n_train"] = len(train)
        self.history_["n_val"] = len(val)
        self.net_.eval()
        return self

    def _fitted(self) -> tuple[Preprocessor, nn.Module]:
        if self.prep_ is None or self.net_ is None:
            raise ConfigError(f"the {self.name} generator is not fitted (call fit or load)")
        return self.prep_, self.net_

    def sample(
        self,
        energies: np.ndarray,
        *,
        seed: int | None = None,
        batch_size: int = 10_000,
        pids: np.ndarray | None = None,
        progress_bar: bool = False,
    ) -> np.ndarray:
        """``(N, n_voxels)`` float32 showers [GeV] for incident energies [GeV] (+ PDG ids)."""
        prep, net = self._fitted()
        energies = np.asarray(energies, dtype=np.float64).reshape(-1)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        cond = prep.condition(energies, pids)
        out = np.empty((len(energies), prep.n_voxels), dtype=np.float32)
        net.eval()
        with torch.random.fork_rng(), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            for lo in _progress(range(0, len(energies), batch_size), progress_bar):
                hi = lo + batch_size
                out[lo:hi] = self._sample_batch(torch.from_numpy(cond[lo:hi]), energies[lo:hi])
        return out

    def log_prob(
        self, showers: np.ndarray, energies: np.ndarray, pids: np.ndarray | None = None
    ) -> np.ndarray:
        """Log density [nats] of showers given energies; only the flows define it."""
        raise NotImplementedError(f"the {self.name} model has no tractable log_prob")

    def n_parameters(self) -> int:
        """Trainable parameters of the network (all stages, students included)."""
        _, net = self._fitted()
        return sum(p.numel() for p in net.parameters())

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write config, weights, preprocessing and history into ``run_dir``."""
        from heplab.simulation.runs import save_run

        return save_run(self, run_dir)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], geometry: Any | None = None) -> ShowerGenerator:
        """Rebuild a saved generator (of the model named in ``config.json``)."""
        from heplab.simulation.runs import load_run

        gen = load_run(run_dir, geometry)
        if not isinstance(gen, cls):
            raise DataError(f"{run_dir} holds a {gen.name!r} model, not {cls.name!r}")
        return gen

    def _restore(self, prep: Preprocessor, state: dict[str, torch.Tensor]) -> None:
        """Rebuild the network for ``prep`` and load ``state`` (used by :meth:`load`)."""
        self.prep_ = prep
        self.layer_sizes = list(prep.layer_sizes)
        net = self._build(prep)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(f"weights do not match the {self.name} config: {exc}") from exc
        net.eval()
        self.net_ = net


# ---------------------------------------------------------------------------- helpers
def _layer_sizes(geometry: Any) -> list[int]:
    try:
        return [s.stop - s.start for s in geometry.layer_slices()]
    except AttributeError as exc:
        raise ConfigError(f"not a calorimeter geometry: {geometry!r}") from exc


def _history(res: FitResult) -> dict[str, Any]:
    return {
        "val_losses": res.val_losses,
        "best_val_loss": res.best_val_loss,
        "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run,
    }


def _split(data: _ShowerData, fraction: float, seed: int) -> tuple[Any, Any]:
    n = len(data)
    n_val = max(1, round(fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    return data[np.sort(perm[n_val:])], data[np.sort(perm[:n_val])]  # type: ignore[index]


def _progress(it: range, enabled: bool) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="sampling", unit="batch")


# ---------------------------------------------------------------------------- registry
_MODULES: dict[str, tuple[str, str]] = {
    "gan": ("heplab.simulation.gan", "GANGenerator"),
    "vae": ("heplab.simulation.vae", "VAEGenerator"),
    "flow": ("heplab.simulation.flow", "FlowGenerator"),
    "flowmatch": ("heplab.simulation.flowmatch", "FlowMatchGenerator"),
}


class _Registry(Mapping[str, type[ShowerGenerator]]):
    """Model name -> generator class, imported on first use (no import cycles)."""

    def __getitem__(self, name: str) -> type[ShowerGenerator]:
        module, cls = _MODULES[name]
        out: type[ShowerGenerator] = getattr(importlib.import_module(module), cls)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


#: The generative models by name: ``gan``, ``vae``, ``flow``, ``flowmatch``.
GENERATORS: Mapping[str, type[ShowerGenerator]] = _Registry()


def make_generator(
    name: str, geometry: Any | None = None, config: Mapping[str, Any] | None = None
) -> ShowerGenerator:
    """An unfitted generator of model ``name`` for ``geometry`` with hyper-parameters."""
    if name not in GENERATORS:
        raise ConfigError(f"unknown generative model {name!r}; choose from {sorted(GENERATORS)}")
    return GENERATORS[name](geometry, config)


def load_generator(run_dir: str | os.PathLike[str], geometry: Any | None = None) -> ShowerGenerator:
    """The generator saved in ``run_dir`` (any model)."""
    return ShowerGenerator.load(run_dir, geometry)
