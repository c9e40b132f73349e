"""Calorimeter energy regression: a DNN on layer energies and shower shapes.

The baseline is the plain **sum calibration** ``E_cal = E_sum / k`` with ``E_sum`` the
visible energy of the cells [GeV] and ``k = <E_sum / E_true>`` the mean sampling response
of the training showers (one number per particle type). It is exact on average for a
linear, compensating calorimeter without leakage; a charged pion is none of these: its
visible fraction depends on the electromagnetic fraction f_em (non-compensation, e/h > 1,
Groom NIM A572 (2007) 633) and on how much leaks out the back (the CaloGAN stack is only
1.3 lambda_I deep), so ``E_cal`` is non-linear in energy and broad.

The regression network learns the per-shower correction from the shower's shape (layer
fractions, widths, depth, hit counts, ``ln E_l``): it predicts ``y = ln(E_true / E_cal)``
with an L1 loss, so ``E_pred = E_cal exp(f(x))`` is the conditional *median* given the
shower shape (the overall response ``median(E_pred / E_true)`` is 1 by construction of
the loss; in bins of E_true the prior of the training spectrum pulls low energies up and
high energies down where the shape says little, e.g. for pions that punch through).
Trained with :func:`heplab.ml.engine.fit`.

Figures of merit of a calibration ``E_reco`` in bins of the true energy (:func:`response_table`):

- response ``R = median(E_reco / E_true)``;
- resolution ``sigma / E = (q84 - q16) / (2 R)`` of ``E_reco / E_true`` (the central 68 %
  interval: the Gaussian sigma for a Gaussian core, robust to the pion's tails).

Energies in GeV.
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
from heplab.reconstruction.calorimetry.pid import Scaler, ShapeDNN, split_indices
from heplab.reconstruction.calorimetry.shapes import shower_shapes

__all__ = [
    "EnergyRegression",
    "RegressionNet",
    "RegressionResult",
    "plot_regression",
    "regression_features",
    "response_resolution",
    "response_table",
    "train_regression",
]

F64 = npt.NDArray[np.float64]


def regression_features(showers: ShowerSet) -> F64:
    """The shower shapes plus ``ln(E_l / GeV + 1e-4)`` of every layer, ``(N, F)``."""
    e_layer = np.clip(showers.layer_energies().astype(np.float64), 0.0, None)
    return np.concatenate([shower_shapes(showers), np.log(e_layer + 1e-4)], axis=1)


def response_resolution(e_true: npt.ArrayLike, e_reco: npt.ArrayLike) -> tuple[float, float]:
    """``(median(E_reco/E_true), (q84 - q16) / (2 median))`` of one sample."""
    ratio = np.asarray(e_reco, dtype=np.float64) / np.asarray(e_true, dtype=np.float64)
    if ratio.size == 0:
        return float("nan"), float("nan")
    q16, q50, q84 = np.quantile(ratio, [0.16, 0.5, 0.84])
    return float(q50), float((q84 - q16) / (2 * q50)) if q50 > 0 else float("inf")


def response_table(
    e_true: npt.ArrayLike, e_reco: npt.ArrayLike, edges: npt.ArrayLike
) -> list[dict[str, float]]:
    """Response and resolution of ``E_reco`` in bins of ``E_true`` (``edges`` [GeV])."""
    t = np.asarray(e_true, dtype=np.float64)
    r = np.asarray(e_reco, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    rows = []
    for lo, hi in itertools.pairwise(e):
        sel = (t >= lo) & (t < hi) if hi < e[-1] else (t >= lo) & (t <= hi)
        if sel.sum() < 5:
            continue
        resp, res = response_resolution(t[sel], r[sel])
        rows.append(
            {
                "e_lo": float(lo),
                "e_hi": float(hi),
                "n": int(sel.sum()),
                "response": resp,
                "resolution": res,
            }
        )
    return rows


class RegressionNet(ShapeDNN):
    """An MLP predicting ``ln(E_true / E_cal)``, trained with an L1 loss (the median)."""

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.l1_loss(self(batch["x"]), batch["y"])


@dataclass
class EnergyRegression:
    """A trained regression: ``predict(showers)`` gives E_pred [GeV]; ``calibrate`` E_cal."""

    geometry: CaloGeometry
    k: float  # mean sampling response <E_sum / E_true> of the training showers
    scaler: Scaler
    hyper: dict[str, Any] = field(default_factory=dict)
    net: RegressionNet | None = None

    def __post_init__(self) -> None:
        if not self.k > 0:
            raise ConfigError(f"the sampling response must be > 0, not {self.k}")
        if self.net is None:
            self.net = RegressionNet(
                len(self.scaler.mean), hidden=int(self.hyper.get("hidden", 64))
            )

    def calibrate(self, showers: ShowerSet) -> F64:
        """The sum calibration ``E_sum / k`` [GeV]."""
        return showers.total_energy() / self.k

    def predict(self, showers: ShowerSet, *, batch_size: int = 4096) -> F64:
        """The regressed energy ``E_cal exp(f(x))`` [GeV]."""
        if showers.geometry.n_voxels != self.geometry.n_voxels:
            raise DataError(
                f"showers of geometry {showers.geometry.name!r} do not fit a regression "
                f"trained on {self.geometry.name!r}"
            )
        assert self.net is not None
        x = self.scaler.apply(regression_features(showers))
        self.net.eval()
        with torch.no_grad():
            out = [
                self.net(torch.from_numpy(x[lo : lo + batch_size])).numpy()
                for lo in range(0, len(x), batch_size)
            ]
        corr = np.concatenate(out).astype(np.float64) if out else np.zeros(0)
        return self.calibrate(showers) * np.exp(corr)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.json`` and ``best.pt`` (the network's ``state_dict``)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        assert self.net is not None
        tmp = out / ".best.pt.tmp"
        torch.save(self.net.state_dict(), tmp)
        os.replace(tmp, out / "best.pt")
        meta = {
            "kind": "energy-regression",
            "geometry": self.geometry.name,
            "k": self.k,
            "hyper": self.hyper,
            "scaler": {"mean": self.scaler.mean, "std": self.scaler.std},
        }
        tmp = out / ".model.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out / "model.json")
        return out / "model.json"

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> EnergyRegression:
        """Read a regression written by :meth:`save` (``weights_only=True``)."""
        d = Path(directory)
        try:
            meta = json.loads((d / "model.json").read_text())
            scaler = Scaler(list(meta["scaler"]["mean"]), list(meta["scaler"]["std"]))
            model = cls(
                load_geometry(meta["geometry"]),
                float(meta["k"]),
                scaler,
                dict(meta.get("hyper", {})),
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{d / 'model.json'}: not a heplab energy regression ({exc})") from None
        assert model.net is not None
        model.net.load_state_dict(torch.load(d / "best.pt", map_location="cpu", weights_only=True))
        return model


@dataclass
class RegressionResult:
    """A trained regression and its held-out test energies and metrics."""

    model: EnergyRegression
    e_true: F64
    e_pred: F64
    e_cal: F64
    metrics: dict[str, Any]


def train_regression(
    showers: ShowerSet,
    *,
    out_dir: str | os.PathLike[str],
    config: Any = None,
    seed: int = 0,
    n_bins: int = 5,
    val_fraction: float = 0.15,
    test_fraction: float = 0.3,
    hidden: int = 64,
) -> RegressionResult:
    """Train the regression on ``showers`` (one particle type) and evaluate it on a test split.

    ``config`` is a :class:`heplab.ml.engine.TrainConfig`. Metrics: ``k``, overall
    ``response`` / ``resolution`` of the regression (``dnn``) and of the sum calibration
    (``sum``), the same in ``n_bins`` log-spaced bins of E_true (``bins_dnn``, ``bins_sum``),
    ``train_seconds`` and the split sizes. The model is saved in ``out_dir``.
    """
    from heplab.ml.data import JetDataset
    from heplab.ml.engine import TrainConfig, fit

    e_true = np.asarray(showers.energies, dtype=np.float64)
    e_sum = showers.total_energy()
    if np.any(e_sum <= 0):
        raise DataError(f"{int((e_sum <= 0).sum())} showers have no visible energy")
    rng = np.random.default_rng(seed)
    train, val, test = split_indices(
        len(showers), rng, val_fraction=val_fraction, test_fraction=test_fraction
    )
    k = float(np.mean(e_sum[train] / e_true[train]))
    feats = regression_features(showers)
    model = EnergyRegression(showers.geometry, k, Scaler.fit(feats[train]), {"hidden": hidden})
    x = model.scaler.apply(feats)
    target = np.log(e_true * k / e_sum).astype(np.float32)
    cfg = config or TrainConfig(epochs=30, batch_size=128, lr=2e-3, patience=5, seed=seed)
    start = time.perf_counter()
    torch.manual_seed(seed)
    assert model.net is not None
    fit(
        model.net,
        JetDataset({"x": x[train], "y": target[train]}),
        JetDataset({"x": x[val], "y": target[val]}),
        config=cfg,
        out_dir=out_dir,
    )
    seconds = time.perf_counter() - start
    model.save(out_dir)
    sub = showers[test]
    e_pred = model.predict(sub)
    e_cal = model.calibrate(sub)
    t = sub.energies
    edges = np.geomspace(t.min(), t.max(), n_bins + 1)
    resp_dnn, res_dnn = response_resolution(t, e_pred)
    resp_sum, res_sum = response_resolution(t, e_cal)
    metrics: dict[str, Any] = {
        "geometry": showers.geometry.name,
        "particle": showers.particle,
        "k": k,
        "dnn": {"response": resp_dnn, "resolution": res_dnn},
        "sum": {"response": resp_sum, "resolution": res_sum},
        "bins_dnn": response_table(t, e_pred, edges),
        "bins_sum": response_table(t, e_cal, edges),
        "train_seconds": seconds,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
    }
    return RegressionResult(model, t, e_pred, e_cal, metrics)


def plot_regression(result: RegressionResult, path: str | os.PathLike[str]) -> Path:
    """Response and resolution vs E_true of the DNN and the sum calibration (two panels)."""
    import matplotlib.pyplot as plt

    from heplab.report import hep_style

    hep_style()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 8), sharex=True)
    for key, label in (("bins_sum", "sum calibration"), ("bins_dnn", "DNN regression")):
        rows = result.metrics[key]
        centre = [np.sqrt(r["e_lo"] * r["e_hi"]) for r in rows]
        top.plot(centre, [r["response"] for r in rows], "o-", label=label)
        bottom.plot(centre, [r["resolution"] for r in rows], "o-", label=label)
    top.axhline(1.0, color="grey", ls=":")
    top.set_ylabel("response median(E_reco/E_true)")
    bottom.set_ylabel("resolution sigma/E")
    bottom.set_xlabel("E_true [GeV]")
    bottom.set_xscale("log")
    top.legend(title=f"{result.metrics['particle']}, {result.metrics['geometry']}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out
