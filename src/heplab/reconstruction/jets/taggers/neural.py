"""The neural jet taggers: one :class:`NeuralTagger` adapter over the networks of
:mod:`.nets`, trained by the one engine :func:`heplab.ml.engine.fit`.

Registered names: ``dnn`` (MLP on the high-level features), ``pfn`` / ``efn`` (Particle /
Energy Flow Networks, arXiv:1810.05165), ``particlenet`` (arXiv:1902.08570), ``part``
(Particle Transformer with pair-interaction bias, arXiv:2202.03772) and ``transformer``
(the same without the pair bias).

Inputs: :func:`heplab.ml.data.jet_arrays` (weaver-like particle features, padded to
``max_particles``, batches trimmed to their longest jet), standardised with statistics fitted
on the training split. Training: AdamW + cosine/one-cycle schedule, early stopping on the
validation loss (the training split's last 20 % when no ``val`` is given), the best weights
kept. ``work_dir`` (default: a temporary directory, removed after the fit) holds the
engine's checkpoints; a fit re-run with the same ``work_dir`` resumes from its
``last.ckpt``. ``score`` is the sigmoid of the logit (float64), in batches of
``batch_size`` under ``torch.inference_mode``; working point 0.5. ``n_params``: trainable
parameters. ``save``: ``tagger.json`` (config, standardisation statistics, input shape) +
``weights.pt`` (the network's ``state_dict``, read back with ``weights_only=True``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets.taggers import register_tagger
from heplab.reconstruction.jets.taggers.base import Tagger, labels
from heplab.reconstruction.jets.taggers.features import FEATURES

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DNNTagger",
    "EFNTagger",
    "NeuralTagger",
    "PFNTagger",
    "ParTTagger",
    "ParticleNetTagger",
    "TransformerTagger",
]

_WEIGHTS: Final = "weights.pt"

#: Training settings shared by every neural tagger (YAML keys).
TRAIN_DEFAULTS: Final[dict[str, Any]] = {
    "epochs": 20,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "schedule": "cosine",
    "patience": 5,
    "max_particles": 128,
    "dropout": 0.1,
    "progress_bar": True,
    "work_dir": None,
}


class NeuralTagger(Tagger):
    """A network of :mod:`.nets` trained by :func:`heplab.ml.engine.fit` (module doc)."""

    defaults: ClassVar[dict[str, Any]] = dict(TRAIN_DEFAULTS)
    #: Whether the network needs the high-level features (``hl``).
    uses_hl: ClassVar[bool] = False
    #: List settings that hold names, not layer sizes (checked by the subclass).
    name_lists: ClassVar[frozenset[str]] = frozenset({"features"})

    def validate(self) -> None:
        c = self.config
        for key in ("epochs", "batch_size", "patience", "max_particles"):
            if c[key] < 1:
                raise ConfigError(f"{self.name}: {key} must be >= 1, not {c[key]}")
        if c["lr"] <= 0 or c["weight_decay"] < 0:
            raise ConfigError(f"{self.name}: lr must be > 0 and weight_decay >= 0")
        if c["schedule"] not in ("cosine", "onecycle", "none"):
            raise ConfigError(f"{self.name}: schedule must be cosine, onecycle or none")
        if not 0 <= c["dropout"] < 1:
            raise ConfigError(f"{self.name}: dropout must be in [0, 1), not {c['dropout']}")
        if c["work_dir"] is not None and not isinstance(c["work_dir"], str):
            raise ConfigError(f"{self.name}: work_dir must be a path or null")
        for key, default in self.defaults.items():
            if (
                key not in self.name_lists
                and isinstance(default, list)
                and not all(isinstance(v, (int, list)) and not isinstance(v, bool) for v in c[key])
            ):
                raise ConfigError(f"{self.name}: {key} must be a list of sizes, not {c[key]!r}")

    # -- the network ------------------------------------------------------------------
    def build(self, n_x: int, n_hl: int) -> nn.Module:
        """The untrained network for ``n_x`` particle and ``n_hl`` high-level features."""
        raise NotImplementedError

    def _arrays(self, jets: ak.Array) -> dict[str, np.ndarray]:
        from heplab.ml.data import jet_arrays

        hl = list(self.config["features"]) if self.uses_hl else None
        return jet_arrays(jets, max_particles=int(self.config["max_particles"]), hl_features=hl)

    def fit(self, train: ak.Array, val: ak.Array | None = None) -> NeuralTagger:
        """Train on ``train``; early stopping on ``val`` (or 20 % of ``train``)."""
        import torch

        from heplab.ml.data import JetDataset, Standardiser
        from heplab.ml.engine import TrainConfig
        from heplab.ml.engine import fit as engine_fit

        labels(train)
        if val is None:
            n_val = max(len(train) // 5, 1)
            perm = np.random.default_rng(self.seed).permutation(len(train))
            train, val = train[perm[n_val:]], train[perm[:n_val]]
        labels(val)
        raw_train = self._arrays(train)
        std = Standardiser.fit(raw_train)
        data_train = JetDataset(std.apply(raw_train))
        data_val = JetDataset(std.apply(self._arrays(val)))
        n_x = raw_train["x"].shape[-1]
        n_hl = raw_train["hl"].shape[-1] if "hl" in raw_train else 0
        c = self.config
        torch.manual_seed(self.seed)
        net = self.build(n_x, n_hl)
        cfg = TrainConfig(
            epochs=int(c["epochs"]),
            batch_size=int(c["batch_size"]),
            lr=float(c["lr"]),
            weight_decay=float(c["weight_decay"]),
            schedule=str(c["schedule"]),
            patience=int(c["patience"]),
            seed=self.seed,
            progress_bar=bool(c["progress_bar"]),
        )
        if c["work_dir"] is not None:
            result = engine_fit(net, data_train, data_val, config=cfg, out_dir=c["work_dir"])
        else:
            with tempfile.TemporaryDirectory(prefix="heplab-train-") as tmp:
                result = engine_fit(net, data_train, data_val, config=cfg, out_dir=tmp)
        net.eval()
        self.net_ = net
        self.standardiser_ = std
        self.inputs_ = {"n_x": n_x, "n_hl": n_hl}
        self.history_ = {
            "val_losses": result.val_losses,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
        }
        self.threshold = 0.5
        return self

    def score(self, jets: ak.Array) -> np.ndarray:
        """Sigmoid of the network's logit for every jet (float64)."""
        import torch

        from heplab.ml.data import JetDataset
        from heplab.ml.engine import make_loader

        self._check_fitted()
        net = self.net_
        names = getattr(net, "input_names", ("x", "mask"))
        data = JetDataset(self.standardiser_.apply(self._arrays(jets)))
        out = []
        net.eval()
        with torch.inference_mode():
            for batch in make_loader(data, int(self.config["batch_size"]), shuffle=False):
                out.append(torch.sigmoid(net(*[batch[n] for n in names])).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    @property
    def n_params(self) -> int:
        """Trainable parameters of the network."""
        self._check_fitted()
        return int(sum(p.numel() for p in self.net_.parameters() if p.requires_grad))

    # -- persistence ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "standardisation": self.standardiser_.to_json(),
            "inputs": self.inputs_,
            "weights_file": _WEIGHTS,
            "history": self.history_,
        }

    def save_files(self, directory: Path) -> None:
        import torch

        torch.save(self.net_.state_dict(), directory / _WEIGHTS)

    def set_state(self, state: dict[str, Any], directory: Path) -> None:
        import torch

        from heplab.ml.data import Standardiser

        path = directory / str(state.get("weights_file", _WEIGHTS))
        if not path.is_file():
            raise DataError(f"{directory}: the network weights {path.name} are missing")
        try:
            inputs = {k: int(v) for k, v in state["inputs"].items()}
            std = Standardiser.from_json(state["standardisation"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{directory}: incomplete {self.name} state ({exc})") from exc
        net = self.build(inputs["n_x"], inputs["n_hl"])
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, OSError) as exc:
            raise DataError(f"{path}: cannot read the network weights ({exc})") from exc
        net.eval()
        self.net_ = net
        self.standardiser_ = std
        self.inputs_ = inputs
        self.history_ = dict(state.get("history", {}))


@register_tagger("dnn")
class DNNTagger(NeuralTagger):
    """MLP on the high-level features (``features``; ``hidden`` layer sizes)."""

    defaults: ClassVar[dict[str, Any]] = {
        **TRAIN_DEFAULTS,
        "features": list(FEATURES),
        "hidden": [64, 64],
    }
    uses_hl: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        bad = [f for f in self.config["features"] if f not in FEATURES]
        if bad or not self.config["features"]:
            raise ConfigError(f"dnn: features must be a non-empty list of {', '.join(FEATURES)}")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        from heplab.reconstruction.jets.taggers.nets import DNN

        return DNN(n_hl, self.config["hidden"], dropout=float(self.config["dropout"]))


@register_tagger("pfn")
class PFNTagger(NeuralTagger):
    """Particle Flow Network: ``phi`` (per particle) and ``f`` (after the sum) sizes."""

    defaults: ClassVar[dict[str, Any]] = {**TRAIN_DEFAULTS, "phi": [64, 64, 64], "f": [64, 64]}
    energy_flow: ClassVar[bool] = False

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        from heplab.reconstruction.jets.taggers.nets import DeepSets

        c = self.config
        return DeepSets(
            n_x, c["phi"], c["f"], energy_flow=self.energy_flow, dropout=float(c["dropout"])
        )


@register_tagger("efn")
class EFNTagger(PFNTagger):
    """Energy Flow Network (IRC safe): Phi of (deta, dphi), pT-fraction-weighted sum."""

    energy_flow: ClassVar[bool] = True


@register_tagger("particlenet")
class ParticleNetTagger(NeuralTagger):
    """ParticleNet: ``k`` neighbours, ``channels`` per EdgeConv block, ``fc`` head sizes."""

    defaults: ClassVar[dict[str, Any]] = {
        **TRAIN_DEFAULTS,
        "k": 8,
        "channels": [[32, 32], [32, 32]],
        "fc": [64],
    }

    def validate(self) -> None:
        super().validate()
        ch = self.config["channels"]
        if not ch or not all(isinstance(b, list) and b for b in ch):
            raise ConfigError("particlenet: channels must be a list of non-empty size lists")
        if self.config["k"] < 1:
            raise ConfigError("particlenet: k must be >= 1")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        from heplab.reconstruction.jets.taggers.nets import ParticleNet

        c = self.config
        return ParticleNet(n_x, c["channels"], int(c["k"]), c["fc"], dropout=float(c["dropout"]))


@register_tagger("part")
class ParTTagger(NeuralTagger):
    """Particle Transformer: ``dim``, ``heads``, ``layers``, ``cls_layers``, ``pair_dims``."""

    defaults: ClassVar[dict[str, Any]] = {
        **TRAIN_DEFAULTS,
        "dropout": 0.0,
        "dim": 32,
        "heads": 4,
        "layers": 2,
        "cls_layers": 1,
        "pair_dims": [16, 16],
    }
    pair_bias: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        c = self.config
        if c["dim"] < 1 or c["heads"] < 1 or c["dim"] % c["heads"]:
            raise ConfigError(f"{self.name}: dim must be a positive multiple of heads")
        if c["layers"] < 0 or c["cls_layers"] < 1:
            raise ConfigError(f"{self.name}: layers must be >= 0 and cls_layers >= 1")

    def build(self, n_x: int, n_hl: int) -> nn.Module:
        from heplab.reconstruction.jets.taggers.nets import ParticleTransformer

        c = self.config
        return ParticleTransformer(
            n_x,
            int(c["dim"]),
            int(c["heads"]),
            int(c["layers"]),
            int(c["cls_layers"]),
            c["pair_dims"],
            pair_bias=self.pair_bias,
            dropout=float(c["dropout"]),
        )


@register_tagger("transformer")
class TransformerTagger(ParTTagger):
    """A plain transformer (ParT without the pair-interaction bias)."""

    pair_bias: ClassVar[bool] = False
