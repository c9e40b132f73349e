"""Triplet seeding on the pixel barrel and an NN seed classifier that prunes bad seeds.

Classical track finding starts from *seeds*: triplets of hits on three consecutive layers
compatible with a helix from the beam line; most seeds in a busy event are combinatorial
fakes, and every seed costs a track-following pass. A classifier on the seed's geometry
keeps the good seeds and drops most bad ones before the following (idea of
arXiv:1910.06779; TrackML seeding, arXiv:1904.06778).

Seeds (:func:`find_seeds`), on the pixel barrel layers (volume 8) 802-804-806 and
804-806-808 (``volume * 100 + layer``), hits in (r, phi, z) [mm, rad]:

- doublets on consecutive layers: ``|dphi| <= phi_slope_max dr + dphi_tol`` (a track of
  transverse momentum pT bends by dphi/dr ~ 0.3 B / (2 pT) [rad/m]; the default keeps
  pT > ~0.4 GeV in 2 T) and ``|z0| <= z0_max`` with z0 = z1 - r1 (z2 - z1) / (r2 - r1);
- triplets = doublet pairs sharing the middle hit, then the helix: the circle through the
  three (x, y) points gives the radius R [mm] and pT = 0.3 B R / 1000 [GeV] (B [T]),
  kept if pT >= ``pt_min``; its transverse impact parameter d0 = | |c| - R | (c: circle
  centre) must be <= ``d0_max``; the r-z slopes (cot theta) of the two doublets must agree,
  ``|cot_12 - cot_23| <= dcot_tol (1 + cot^2)`` (multiple scattering grows as 1 + cot^2
  = 1 / sin^2 theta in cot theta).

Truth classes (:func:`seed_truth`; arXiv:1910.06779 quotes 98.5 / 95.7 / 96.7 % for good /
medium / bad seeds; the definitions used here are heplab's own, stated so they can be
checked): **good** (0) = the three hits come from one particle with pT > ``pt_good``
(1 GeV); **medium** (1) = three hits of one particle with pT <= ``pt_good``, or two of the
three hits from one particle (a seed that still lies on a real track); **bad** (2) = no
two hits share a particle (or only noise does).

Classifier: :class:`SeedNet`, an MLP on :data:`SEED_FEATURES` (standardised with the
training means and widths, kept as buffers in its state_dict; z0 is cut on but is no
feature: it measures where the event's vertex is, not the seed's quality), trained by
:func:`heplab.ml.engine.fit` (cross-entropy, three classes). Pruning
(:func:`pruning_threshold`): a seed is dropped when P(bad) exceeds the threshold that keeps
a fraction ``keep_good`` (default 0.985) of the good seeds of a calibration set.

Units: mm, GeV, T, rad.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.graph import check_event, hit_coordinates, truth_edges

__all__ = [
    "SEED_CLASSES",
    "SEED_FEATURES",
    "SEED_LAYERS",
    "SeedConfig",
    "SeedNet",
    "classify_seeds",
    "evaluate_seeds",
    "find_seeds",
    "load_seed_classifier",
    "pruning_threshold",
    "seed_features",
    "seed_truth",
    "train_seed_classifier",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: the layer triplets seeds are made on (volume * 100 + layer: pixel barrel)
SEED_LAYERS: Final = ((802, 804, 806), (804, 806, 808))
SEED_CLASSES: Final = ("good", "medium", "bad")
SEED_FEATURES: Final = (
    "inv_pt_signed",
    "abs_d0",
    "cot_theta",
    "dcot",
    "dphi_12",
    "dphi_23",
    "dz_12",
    "dz_23",
    "r_inner",
)
_MODEL_JSON: Final = "seed_model.json"
_CHUNK: Final = 1_000_000  # candidate triplets tested at once


@dataclass(frozen=True)
class SeedConfig:
    """Cuts of :func:`find_seeds` (module doc): rad/mm, mm, GeV, T."""

    phi_slope_max: float = 0.8e-3
    dphi_tol: float = 0.005
    z0_max: float = 200.0
    pt_min: float = 0.5
    d0_max: float = 3.0
    dcot_tol: float = 0.01
    field_tesla: float = 2.0
    pt_good: float = 1.0

    def __post_init__(self) -> None:
        vals = asdict(self)
        bad = [k for k, v in vals.items() if not v > 0 and k != "dphi_tol"]
        if bad or self.dphi_tol < 0:
            raise ConfigError(f"seed cuts must be positive: {', '.join(bad) or 'dphi_tol'}")


def _wrap(a: F64) -> F64:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _doublets(ia: I64, ib: I64, c: dict[str, np.ndarray], cfg: SeedConfig) -> tuple[I64, I64]:
    """(inner, outer) hit pairs between the hits ``ia`` and ``ib`` passing the cuts."""
    if not len(ia) or not len(ib):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, phi, z = c["r"], c["phi"], c["z"]
    ob = ib[np.argsort(phi[ib], kind="stable")]
    pb = phi[ob]
    ext_phi = np.concatenate([pb - 2 * np.pi, pb, pb + 2 * np.pi])
    ext = np.concatenate([ob, ob, ob])
    dr_max = float(np.abs(r[ib].max() - r[ia].min()))
    half = min(cfg.phi_slope_max * dr_max + cfg.dphi_tol, np.pi)
    lo = np.searchsorted(ext_phi, phi[ia] - half, side="left")
    hi = np.minimum(np.searchsorted(ext_phi, phi[ia] + half, side="right"), lo + len(ob))
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src = np.repeat(ia, counts)
    dst = ext[
        np.repeat(lo, counts) + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    ]
    dr = r[dst] - r[src]
    dz = z[dst] - z[src]
    ok = np.abs(_wrap(phi[dst] - phi[src])) <= cfg.phi_slope_max * np.abs(dr) + cfg.dphi_tol
    ok &= np.abs(z[src] * dr - r[src] * dz) <= cfg.z0_max * np.abs(dr)
    return src[ok].astype(np.int64), dst[ok].astype(np.int64)


def _circle(x: F64, y: F64) -> tuple[F64, F64, F64, F64]:
    """Circle through three points per row of ``x``, ``y`` (S, 3): centre, radius, and
    the turning sign (+1 anticlockwise inner -> outer)."""
    ax, ay, bx, by, cx, cy = x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2]
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    a2, b2, c2 = ax**2 + ay**2, bx**2 + by**2, cx**2 + cy**2
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    radius = np.hypot(ax - ux, ay - uy)
    return ux, uy, radius, np.sign(d)


def _helix(event_c: dict[str, np.ndarray], seeds: I64, b: float) -> dict[str, F64]:
    x, y, z, r = (event_c[k][seeds] for k in ("x", "y", "z", "r"))
    ux, uy, radius, turn = _circle(x, y)
    pt = 0.3 * b * radius / 1000.0
    d0 = np.abs(np.hypot(ux, uy) - radius)
    cot12 = (z[:, 1] - z[:, 0]) / (r[:, 1] - r[:, 0])
    cot23 = (z[:, 2] - z[:, 1]) / (r[:, 2] - r[:, 1])
    z0 = z[:, 0] - r[:, 0] * cot12
    return {"pt": pt, "turn": turn, "d0": d0, "cot12": cot12, "cot23": cot23, "z0": z0}


def find_seeds(event: TrackMLEvent, config: SeedConfig | None = None) -> I64:
    """Triplet seeds of ``event`` (module doc): (S, 3) hit rows, inner to outer.

    Raises
    ------
    DataError
        An event without hits or with mismatched truth.
    """
    check_event(event)
    cfg = config or SeedConfig()
    c = hit_coordinates(event)
    layer = c["layer"]
    found = []
    for la, lb, lc in SEED_LAYERS:
        h = [np.flatnonzero(layer == k) for k in (la, lb, lc)]
        i1, m1 = _doublets(h[0], h[1], c, cfg)
        m2, o2 = _doublets(h[1], h[2], c, cfg)
        if not len(i1) or not len(m2):
            continue
        order = np.argsort(m2, kind="stable")
        sm, so = m2[order], o2[order]
        lo = np.searchsorted(sm, m1, side="left")
        hi = np.searchsorted(sm, m1, side="right")
        counts = hi - lo
        # candidate triplets in chunks of about _CHUNK (memory stays bounded at high pile-up)
        cum = np.cumsum(counts)
        cuts = np.searchsorted(cum, np.arange(_CHUNK, int(cum[-1]) if len(cum) else 0, _CHUNK))
        for part in np.split(np.arange(len(counts)), np.unique(cuts + 1)):
            cnt = counts[part]
            total = int(cnt.sum())
            if total == 0:
                continue
            pos = np.repeat(lo[part], cnt) + np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            trip = np.stack([np.repeat(i1[part], cnt), np.repeat(m1[part], cnt), so[pos]], 1)
            hx = _helix(c, trip, cfg.field_tesla)
            cot = 0.5 * (hx["cot12"] + hx["cot23"])
            ok = (hx["pt"] >= cfg.pt_min) & (hx["d0"] <= cfg.d0_max)
            ok &= np.abs(hx["cot12"] - hx["cot23"]) <= cfg.dcot_tol * (1 + cot**2)
            ok &= np.abs(hx["z0"]) <= cfg.z0_max
            found.append(trip[ok])
    if not found:
        return np.zeros((0, 3), np.int64)
    return np.concatenate(found).astype(np.int64)


def seed_features(event: TrackMLEvent, seeds: I64, config: SeedConfig | None = None) -> F64:
    """(S, len(SEED_FEATURES)) features of the seeds: signed 1/pT [1/GeV] (sign of the
    turn), |d0| [mm], cot theta, 10 x (cot_12 - cot_23), 100 x dphi of both
    doublets, dz of both doublets / 100 mm, inner radius / 100 mm."""
    cfg = config or SeedConfig()
    c = hit_coordinates(event)
    s = np.asarray(seeds, np.int64).reshape(-1, 3)
    hx = _helix(c, s, cfg.field_tesla)
    phi, z = c["phi"][s], c["z"][s]
    return np.stack(
        [
            hx["turn"] / np.maximum(hx["pt"], 1e-3),
            hx["d0"],
            0.5 * (hx["cot12"] + hx["cot23"]),
            10.0 * (hx["cot12"] - hx["cot23"]),
            100.0 * _wrap(phi[:, 1] - phi[:, 0]),
            100.0 * _wrap(phi[:, 2] - phi[:, 1]),
            (z[:, 1] - z[:, 0]) / 100.0,
            (z[:, 2] - z[:, 1]) / 100.0,
            c["r"][s[:, 0]] / 100.0,
        ],
        axis=1,
    )


def seed_truth(event: TrackMLEvent, seeds: I64, pt_good: float = 1.0) -> I64:
    """Truth class of each seed: 0 good, 1 medium, 2 bad (module doc).

    Raises
    ------
    DataError
        An event without truth.
    """
    te = truth_edges(event)
    s = np.asarray(seeds, np.int64).reshape(-1, 3)
    p = te.pid[s]
    pt = te.hit_pt[s[:, 0]]
    same3 = (p[:, 0] == p[:, 1]) & (p[:, 1] == p[:, 2]) & (p[:, 0] != 0)
    pairs = (
        ((p[:, 0] == p[:, 1]) & (p[:, 0] != 0))
        | ((p[:, 1] == p[:, 2]) & (p[:, 1] != 0))
        | ((p[:, 0] == p[:, 2]) & (p[:, 0] != 0))
    )
    out = np.full(len(s), 2, np.int64)
    out[pairs] = 1
    out[same3 & (pt > pt_good)] = 0
    return out


# ---------------------------------------------------------------------------- model
class SeedNet(nn.Module):
    """MLP: standardised seed features -> logits of good / medium / bad.

    ``mean`` and ``std`` (buffers, saved with the weights) standardise the inputs.
    """

    input_names: tuple[str, ...] = ("x",)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int = len(SEED_FEATURES), hidden: int = 64) -> None:
        super().__init__()
        self.n_features = n_features
        self.hidden = hidden
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net((x - self.mean) / self.std)
        return out


def _stack(events: Sequence[TrackMLEvent], config: SeedConfig) -> tuple[F64, I64]:
    xs, ys = [], []
    for ev in events:
        s = find_seeds(ev, config)
        xs.append(seed_features(ev, s, config))
        ys.append(seed_truth(ev, s, config.pt_good))
    if not xs or not sum(len(y) for y in ys):
        raise DataError("no seeds in the events: nothing to train or evaluate on")
    return np.concatenate(xs), np.concatenate(ys)


def train_seed_classifier(
    train_events: Sequence[TrackMLEvent],
    val_events: Sequence[TrackMLEvent],
    out_dir: str | os.PathLike[str],
    *,
    config: SeedConfig | None = None,
    train_config: Any = None,
    hidden: int = 64,
    force: bool = False,
) -> SeedNet:
    """Seeds of the events -> a trained :class:`SeedNet` (engine :func:`~heplab.ml.engine.fit`,
    ``num_classes=3``). Writes ``out_dir/best.pt`` and ``out_dir/seed_model.json`` (network
    size and seed cuts).

    Raises
    ------
    OutputExistsError
        ``out_dir`` holds a seed model (unless ``force``).
    DataError
        No seeds in the training or validation events.
    """
    from dataclasses import replace

    from heplab.ml.data import JetDataset
    from heplab.ml.engine import TrainConfig, fit

    out = Path(out_dir)
    if (out / _MODEL_JSON).exists() and not force:
        raise OutputExistsError(f"{out}: a seed model exists already (force=True replaces it)")
    cfg = config or SeedConfig()
    xt, yt = _stack(train_events, cfg)
    xv, yv = _stack(val_events, cfg)
    net = SeedNet(xt.shape[1], hidden)
    net.mean.copy_(torch.as_tensor(xt.mean(0), dtype=torch.float32))
    net.std.copy_(torch.as_tensor(np.maximum(xt.std(0), 1e-6), dtype=torch.float32))
    tcfg = replace(train_config or TrainConfig(epochs=10, batch_size=256, lr=3e-3), num_classes=3)
    out.mkdir(parents=True, exist_ok=True)
    if force:
        for name in ("best.pt", _MODEL_JSON):
            (out / name).unlink(missing_ok=True)
        for ck in (out / "checkpoints").glob("*.ckpt"):
            ck.unlink()

    def arrays(x: F64, y: I64) -> dict[str, np.ndarray]:
        return {"x": x.astype(np.float32), "y": y}

    fit(net, JetDataset(arrays(xt, yt)), JetDataset(arrays(xv, yv)), config=tcfg, out_dir=out)
    meta = {"n_features": net.n_features, "hidden": hidden, "cuts": asdict(cfg)}
    tmp = out / f".{_MODEL_JSON}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), "utf-8")
    os.replace(tmp, out / _MODEL_JSON)
    net.eval()
    return net


def load_seed_classifier(run_dir: str | os.PathLike[str]) -> tuple[SeedNet, SeedConfig]:
    """A trained :class:`SeedNet` and its seed cuts from ``run_dir``.

    Raises
    ------
    DataError
        Missing or unreadable files.
    """
    run = Path(run_dir)
    meta_path, w_path = run / _MODEL_JSON, run / "best.pt"
    for p in (meta_path, w_path):
        if not p.is_file():
            raise DataError(f"{p}: missing (not a seed-classifier run directory?)")
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        net = SeedNet(int(meta["n_features"]), int(meta["hidden"]))
        net.load_state_dict(torch.load(w_path, map_location="cpu", weights_only=True))
        cuts = SeedConfig(**meta["cuts"])
    except (KeyError, ValueError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise DataError(f"{run}: cannot load the seed classifier ({exc})") from exc
    net.eval()
    return net, cuts


@torch.no_grad()
def classify_seeds(
    model: SeedNet, event: TrackMLEvent, seeds: I64, config: SeedConfig | None = None
) -> F64:
    """Probabilities (S, 3) of good / medium / bad for the seeds of ``event``."""
    x = seed_features(event, seeds, config)
    if not len(x):
        return np.zeros((0, 3))
    model.eval()
    logits = model(torch.as_tensor(x, dtype=torch.float32))
    return torch.softmax(logits.float(), dim=1).numpy().astype(np.float64)


def pruning_threshold(prob: F64, y: I64, keep_good: float = 0.985) -> float:
    """The P(bad) cut that keeps a fraction ``keep_good`` of the good seeds (y == 0)."""
    if not 0 < keep_good <= 1:
        raise ConfigError(f"keep_good must be in (0, 1], not {keep_good}")
    good = np.asarray(prob)[np.asarray(y) == 0, 2]
    if not len(good):
        raise DataError("no good seeds to calibrate the pruning on")
    return float(np.quantile(good, keep_good, method="higher"))


def evaluate_seeds(prob: F64, y: I64, threshold: float) -> dict[str, Any]:
    """Confusion matrix (rows true good / medium / bad), per-class efficiency, and what the
    pruning ``P(bad) <= threshold`` keeps of each class."""
    from sklearn.metrics import confusion_matrix, recall_score

    pred = prob.argmax(1)
    keep = prob[:, 2] <= threshold
    eff = recall_score(y, pred, labels=[0, 1, 2], average=None, zero_division=np.nan)

    def frac(cls: int) -> float:
        sel = y == cls
        return float(keep[sel].mean()) if sel.any() else math.nan

    return {
        "seeds": len(y),
        "counts": np.bincount(y, minlength=3).tolist(),
        "confusion": confusion_matrix(y, pred, labels=[0, 1, 2]).tolist(),
        "efficiency": {n: float(e) for n, e in zip(SEED_CLASSES, eff, strict=True)},
        "threshold": float(threshold),
        "kept_good": frac(0),
        "kept_medium": frac(1),
        "kept_bad": frac(2),
        "kept": float(keep.mean()) if len(keep) else math.nan,
    }
