"""Calorimeter particle identification: e vs pi+-, gamma vs pi0 (CNN, DNN, BDT).

Three classifiers of single showers (label 1 = signal, e.g. the electron or the photon):

- ``cnn`` (:class:`CaloCNN`): convolutions on the cell images. Layers of equal shape are
  stacked as channels of one branch, layers of different shape get their own branch (the
  CaloGAN geometry: three branches for the 3 x 96 strips, the 12 x 12 middle and the 12 x 6
  back layer, as the CaloGAN classifier studies, arXiv:1705.02355 / arXiv:1712.10321).
  Cells enter as ``10 E_i / E_sum`` (the shower's shape, default) or ``log(1 + E / MeV) /
  10``; each branch ends in average and max pooling; the log of the visible energy and
  the layer fractions join before the dense head. (Measured: the shape scaling learns the
  two-photon structure of pi0 -> gamma gamma in the strips much faster than the log one.)
- ``dnn`` (:class:`ShapeDNN`): a multilayer perceptron on the standardised shower shapes
  of :mod:`heplab.reconstruction.calorimetry.shapes` (layer fractions, widths, core
  fractions, the strip E_ratio, depth).
- ``bdt``: gradient-boosted trees (``xgboost.XGBClassifier``, scikit-learn API) on the same
  shapes.

Networks train through :func:`heplab.ml.engine.fit` (binary cross-entropy with logits);
the data are split into train / validation / test at random (seeded) and every metric is
measured on the held-out test split with :mod:`heplab.ml.metrics`: the ROC curve, its area,
and the background rejection ``1 / eff_b`` at 90 % and 95 % signal efficiency (the ATLAS
electron-ID working points; the issue's target is pi rejection >= 97 %, i.e. eff_b <= 3 %,
at 90 % electron efficiency). A trained classifier is saved as ``model.json`` (kind,
geometry, architecture, standardisation) plus ``best.pt`` (the network's ``state_dict``)
or ``bdt.json`` (xgboost's own JSON model); :meth:`PIDClassifier.load` reads them back
without unpickling anything.

Energies in GeV; the incident energy is never an input (only the visible energy is).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from heplab.detector.calogeometry import CaloGeometry, load_geometry
from heplab.errors import ConfigError, DataError
from heplab.events.calo import ShowerSet
from heplab.reconstruction.calorimetry.shapes import shower_shapes

__all__ = [
    "PID_MODELS",
    "CaloCNN",
    "PIDClassifier",
    "PIDResult",
    "Scaler",
    "ShapeDNN",
    "cell_inputs",
    "global_inputs",
    "plot_roc",
    "split_indices",
    "train_pid",
]

PID_MODELS: tuple[str, ...] = ("cnn", "dnn", "bdt")
LOG_SCALE = 10.0  # cells enter the CNN as log(1 + E/MeV) / LOG_SCALE

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


# ----------------------------------------------------------------------------- inputs
@dataclass
class Scaler:
    """Per-column ``(x - mean) / std`` with the statistics of the training split."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x: npt.ArrayLike) -> Scaler:
        arr = np.asarray(x, dtype=np.float64)
        std = arr.std(axis=0)
        return cls(
            [float(v) for v in arr.mean(axis=0)], [float(s) if s > 1e-9 else 1.0 for s in std]
        )

    def apply(self, x: npt.ArrayLike) -> F32:
        arr = np.asarray(x, dtype=np.float64)
        return ((arr - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


def cell_inputs(showers: ShowerSet, scaling: str = "total") -> F32:
    """The CNN's cell inputs, ``(N, n_voxels)`` float32.

    ``scaling="total"`` (default): ``10 E / E_sum``, the shower's shape at any energy (the
    energy itself enters through the global inputs); ``"log"``: ``log(1 + E/MeV) / 10``.
    """
    cells = np.clip(np.asarray(showers.showers, dtype=np.float64), 0.0, None)
    if scaling == "log":
        return (np.log1p(cells * 1000.0) / LOG_SCALE).astype(np.float32)
    if scaling == "total":
        total = cells.sum(axis=1, keepdims=True)
        return (10.0 * cells / np.where(total > 0, total, 1.0)).astype(np.float32)
    raise ConfigError(f"cell scaling must be 'log' or 'total', not {scaling!r}")


def global_inputs(showers: ShowerSet) -> F64:
    """``ln(E_sum / GeV)`` and the layer fractions, ``(N, 1 + n_layers)``."""
    e_layer = np.clip(showers.layer_energies().astype(np.float64), 0.0, None)
    e_sum = e_layer.sum(axis=1)
    safe = np.where(e_sum > 0, e_sum, 1.0)
    return np.concatenate(
        [np.log(np.clip(e_sum, 1e-6, None))[:, None], e_layer / safe[:, None]], axis=1
    )


def split_indices(
    n: int, rng: np.random.Generator, *, val_fraction: float = 0.15, test_fraction: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random train / validation / test split of ``range(n)``."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError("val_fraction and test_fraction must be in (0, 1) and sum below 1")
    order = rng.permutation(n)
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    if min(n_test, n_val, n - n_test - n_val) < 2:
        raise DataError(f"{n} showers are too few for a train / validation / test split")
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


# ----------------------------------------------------------------------------- networks
def _layer_groups(geometry: CaloGeometry) -> list[tuple[tuple[int, int], list[int]]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for i, layer in enumerate(geometry.layers):
        groups.setdefault(tuple(layer.shape), []).append(i)  # type: ignore[arg-type]
    return list(groups.items())


class CaloCNN(nn.Module):
    """Convolutional branches per layer shape + a dense head; returns ``(batch,)`` logits.

    Inputs: ``x`` ``(batch, n_voxels)`` from :func:`cell_inputs` and ``hl`` ``(batch,
    1 + n_layers)``, the standardised :func:`global_inputs`.
    """

    input_names = ("x", "hl")

    def __init__(
        self, geometry: CaloGeometry, *, channels: int = 16, hidden: int = 64, outputs: int = 1
    ) -> None:
        super().__init__()
        self.outputs = outputs
        slices = geometry.layer_slices()
        self._groups: list[tuple[tuple[int, int], list[slice]]] = [
            (shape, [slices[i] for i in idx]) for shape, idx in _layer_groups(geometry)
        ]
        self.branches = nn.ModuleList()
        for shape, parts in self._groups:
            k = (min(3, shape[0]) | 1, min(3, shape[1]) | 1)
            pad = (k[0] // 2, k[1] // 2)
            self.branches.append(
                nn.Sequential(
                    nn.Conv2d(len(parts), channels, k, padding=pad),
                    nn.ReLU(),
                    nn.Conv2d(channels, channels, k, padding=pad),
                    nn.ReLU(),
                )
            )
        n_in = 2 * channels * len(self._groups) + 1 + geometry.n_layers
        self.head = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor, hl: torch.Tensor) -> torch.Tensor:
        feats = [hl]
        for (shape, parts), branch in zip(self._groups, self.branches, strict=True):
            img = torch.stack([x[:, s].reshape(-1, *shape) for s in parts], dim=1)
            h = branch(img)
            feats += [h.mean(dim=(2, 3)), h.amax(dim=(2, 3))]
        out = self.out(self.head(torch.cat(feats, dim=1)))
        return out.squeeze(-1) if self.outputs == 1 else out


class ShapeDNN(nn.Module):
    """A multilayer perceptron on standardised features; returns ``(batch,)`` logits."""

    input_names = ("x",)

    def __init__(self, n_features: int, *, hidden: int = 64, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


# ----------------------------------------------------------------------------- classifier
@dataclass
class PIDClassifier:
    """A trained particle-ID model: ``predict(showers)`` gives the signal probability."""

    kind: str
    geometry: CaloGeometry
    scaler: Scaler
    hyper: dict[str, Any] = field(default_factory=dict)
    net: nn.Module | None = None
    bdt: Any = None

    def __post_init__(self) -> None:
        if self.kind not in PID_MODELS:
            raise ConfigError(f"model must be one of {', '.join(PID_MODELS)}, not {self.kind!r}")

    @classmethod
    def build(
        cls, kind: str, geometry: CaloGeometry, scaler: Scaler, **hyper: Any
    ) -> PIDClassifier:
        """A fresh (untrained) classifier."""
        net: nn.Module | None = None
        bdt: Any = None
        if kind == "cnn":
            net = CaloCNN(
                geometry,
                channels=int(hyper.get("channels", 16)),
                hidden=int(hyper.get("hidden", 64)),
            )
        elif kind == "dnn":
            net = ShapeDNN(len(scaler.mean), hidden=int(hyper.get("hidden", 64)))
        elif kind == "bdt":
            from xgboost import XGBClassifier

            bdt = XGBClassifier(
                n_estimators=int(hyper.get("n_estimators", 300)),
                max_depth=int(hyper.get("max_depth", 4)),
                learning_rate=float(hyper.get("learning_rate", 0.1)),
                subsample=0.8,
                n_jobs=1,
                random_state=int(hyper.get("seed", 0)),
                eval_metric="logloss",
                early_stopping_rounds=20,
            )
        return cls(kind, geometry, scaler, dict(hyper), net, bdt)

    def inputs(self, showers: ShowerSet) -> dict[str, np.ndarray]:
        """The model's input arrays for ``showers`` (standardised)."""
        if showers.geometry.n_voxels != self.geometry.n_voxels:
            raise DataError(
                f"showers of geometry {showers.geometry.name!r} do not fit a model trained on "
                f"{self.geometry.name!r}"
            )
        if self.kind == "cnn":
            scaling = str(self.hyper.get("scaling", "total"))
            return {
                "x": cell_inputs(showers, scaling),
                "hl": self.scaler.apply(global_inputs(showers)),
            }
        return {"x": self.scaler.apply(shower_shapes(showers))}

    def predict(self, showers: ShowerSet, *, batch_size: int = 1024) -> F64:
        """Signal probability of every shower, ``(N,)``."""
        arrays = self.inputs(showers)
        if self.kind == "bdt":
            return np.asarray(self.bdt.predict_proba(arrays["x"])[:, 1], dtype=np.float64)
        assert self.net is not None
        self.net.eval()
        names: tuple[str, ...] = getattr(self.net, "input_names", ("x",))
        out = []
        with torch.no_grad():
            for lo in range(0, len(showers), batch_size):
                args = [torch.from_numpy(arrays[n][lo : lo + batch_size]) for n in names]
                out.append(torch.sigmoid(self.net(*args)).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.json`` (+ ``best.pt`` / ``bdt.json``) into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if self.kind == "bdt":
            tmp = out / ".bdt.tmp.json"
            self.bdt.save_model(tmp)
            os.replace(tmp, out / "bdt.json")
        else:
            assert self.net is not None
            tmp = out / ".best.pt.tmp"
            torch.save(self.net.state_dict(), tmp)
            os.replace(tmp, out / "best.pt")
        meta = {
            "kind": self.kind,
            "geometry": self.geometry.name,
            "hyper": self.hyper,
            "scaler": {"mean": self.scaler.mean, "std": self.scaler.std},
        }
        path = out / "model.json"
        tmp = out / ".model.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PIDClassifier:
        """Read a classifier written by :meth:`save` (``weights_only`` for the network)."""
        d = Path(directory)
        try:
            meta = json.loads((d / "model.json").read_text())
            scaler = Scaler(list(meta["scaler"]["mean"]), list(meta["scaler"]["std"]))
            kind = str(meta["kind"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{d / 'model.json'}: not a heplab PID model ({exc})") from None
        model = cls.build(kind, load_geometry(meta["geometry"]), scaler, **meta.get("hyper", {}))
        if kind == "bdt":
            model.bdt.load_model(d / "bdt.json")
        else:
            assert model.net is not None
            state = torch.load(d / "best.pt", map_location="cpu", weights_only=True)
            model.net.load_state_dict(state)
        return model


@dataclass
class PIDResult:
    """A trained classifier and its held-out test scores and metrics."""

    model: PIDClassifier
    labels: np.ndarray  # (n_test,) 1 = signal
    scores: np.ndarray  # (n_test,) signal probability
    energies: np.ndarray  # (n_test,) incident energies [GeV]
    metrics: dict[str, Any]


def _energy_bins_auc(
    labels: np.ndarray, scores: np.ndarray, energies: np.ndarray, n_bins: int = 4
) -> list[dict[str, float]]:
    from heplab.ml.metrics import auc

    edges = np.quantile(energies, np.linspace(0, 1, n_bins + 1))
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (energies >= lo) & (energies <= hi)
        if labels[sel].min(initial=1) == labels[sel].max(initial=0):
            continue
        rows.append({"e_lo": float(lo), "e_hi": float(hi), "auc": auc(labels[sel], scores[sel])})
    return rows


def train_pid(
    signal: ShowerSet,
    background: ShowerSet,
    *,
    model: str = "dnn",
    out_dir: str | os.PathLike[str],
    config: Any = None,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.3,
    **hyper: Any,
) -> PIDResult:
    """Train a ``model`` (``cnn``, ``dnn``, ``bdt``) to tell ``signal`` from ``background``.

    ``config`` is a :class:`heplab.ml.engine.TrainConfig` (networks only). The model is saved
    in ``out_dir`` (:meth:`PIDClassifier.save`). Metrics (test split): ``auc``, ``rej90``,
    ``rej95`` (background rejection at 90 / 95 % signal efficiency), ``eff_b90``,
    ``auc_vs_energy``, ``train_seconds``, the split sizes.
    """
    from heplab.ml.data import JetDataset
    from heplab.ml.engine import TrainConfig, fit
    from heplab.ml.metrics import auc, rejection_at

    if model not in PID_MODELS:
        raise ConfigError(f"model must be one of {', '.join(PID_MODELS)}, not {model!r}")
    if signal.geometry.n_voxels != background.geometry.n_voxels:
        raise DataError(
            f"signal ({signal.geometry.name}) and background ({background.geometry.name}) "
            "showers have different geometries"
        )
    n_sig, n_bkg = len(signal), len(background)
    geometry = signal.geometry
    showers = ShowerSet(
        energies=np.concatenate([signal.energies, background.energies]),
        showers=np.concatenate([signal.showers, background.showers]),
        geometry=geometry,
        particle="unknown",
    )
    labels = np.concatenate([np.ones(n_sig), np.zeros(n_bkg)]).astype(np.float32)
    rng = np.random.default_rng(seed)
    train, val, test = split_indices(
        len(labels), rng, val_fraction=val_fraction, test_fraction=test_fraction
    )
    raw = global_inputs(showers) if model == "cnn" else shower_shapes(showers)
    clf = PIDClassifier.build(model, geometry, Scaler.fit(raw[train]), seed=seed, **hyper)
    arrays = clf.inputs(showers)
    start = time.perf_counter()
    out = Path(out_dir)
    if model == "bdt":
        clf.bdt.fit(
            arrays["x"][train],
            labels[train],
            eval_set=[(arrays["x"][val], labels[val])],
            verbose=False,
        )
    else:
        assert clf.net is not None
        cfg = config or TrainConfig(epochs=20, batch_size=128, lr=2e-3, patience=4, seed=seed)
        torch.manual_seed(seed)

        def dataset(idx: np.ndarray) -> JetDataset:
            return JetDataset({**{k: v[idx] for k, v in arrays.items()}, "y": labels[idx]})

        fit(clf.net, dataset(train), dataset(val), config=cfg, out_dir=out)
    seconds = time.perf_counter() - start
    clf.save(out)
    sub = showers[test]
    scores = clf.predict(sub)
    y = labels[test].astype(np.int64)
    metrics: dict[str, Any] = {
        "model": model,
        "geometry": geometry.name,
        "signal": signal.particle,
        "background": background.particle,
        "auc": auc(y, scores),
        "rej90": rejection_at(y, scores, 0.90),
        "rej95": rejection_at(y, scores, 0.95),
        "auc_vs_energy": _energy_bins_auc(y, scores, sub.energies),
        "train_seconds": seconds,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
    }
    rej = metrics["rej90"]
    metrics["eff_b90"] = 0.0 if not np.isfinite(rej) else 1.0 / rej
    return PIDResult(clf, y, scores, sub.energies, metrics)


def plot_roc(results: list[PIDResult], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Background rejection vs signal efficiency of each result (log scale), as a figure."""
    import matplotlib.pyplot as plt

    from heplab.ml.metrics import roc
    from heplab.report import hep_style

    hep_style()
    fig, ax = plt.subplots(figsize=(7, 6))
    for res in results:
        eff_s, eff_b, _ = roc(res.labels, res.scores)
        keep = eff_b > 0
        ax.plot(
            eff_s[keep],
            1.0 / eff_b[keep],
            label=f"{res.metrics['model']} (AUC {res.metrics['auc']:.3f})",
        )
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("signal efficiency")
    ax.set_ylabel("background rejection 1/eff_b")
    ax.axvline(0.9, color="grey", ls=":")
    ax.legend(title=title or None)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out
