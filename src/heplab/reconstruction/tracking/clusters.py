"""NN pixel-cluster classification and splitting of merged clusters in dense environments.

In the core of a high-pT jet, charged particles are so close that their pixel clusters
touch and merge into one hit: the merged hit sits between the particles, its position
error is about half their separation, and the track finder loses hits (ATLAS,
"A neural network clustering algorithm for the ATLAS silicon pixel detector",
arXiv:1406.7690, JINST 9 (2014) P09009; ATL-PHYS-PUB-2015-044). A classifier tells from the
cluster's charge map how many particles made it; a cluster classified as k > 1 is split
into k hits.

Data set (:func:`jet_core_particles`, :func:`simulate_jet_cores`, :func:`cluster_sample`)
------------------------------------------------------------------------------------------
A "jet-core gun": bundles of 1-4 charged pions (m = 0.13957 GeV) from the origin, pT flat
in [``pt_min``, ``pt_max``] GeV, the bundle axis flat in |eta| < ``eta_max`` and phi, the
members at an angular distance dR = sqrt(deta^2 + dphi^2) from the axis drawn
log-uniform in [``dr_min``, ``dr_max``] (default 0.0002-0.005: at R = 32 mm this is
6-160 um, 0.1-3 pixels of 50 um, so merging is frequent but not certain). Bundles are
independent; the events go through :func:`heplab.detector.silicon.simulate_event` (noise
off), whose pixel cells share charge and merge touching clusters into one hit with
``n_particles`` = k. Each event is simulated a second time with the same random numbers
and the cluster simulation off: every pixel crossing is then its own hit, which gives the
true crossing point of every particle of a merged cluster (the k crossings on the same
module nearest to the merged hit).

Inputs of the network, per pixel hit (volumes 7, 8, 9):

- ``image`` (1, S, S), S = ``size`` (7): the cell charges [MIP units] on the cell grid
  (ch0 along r*phi, ch1 along z on barrels / r on disks) centred on the charge-weighted
  centroid (rounded to a cell); cells outside are dropped (their charge still counts in
  the features below);
- ``aux`` (:data:`AUX_FEATURES`): barrel flag, r / 200 mm, |z| / 1500 mm, the incidence
  angle alpha along the long direction of a straight track from the origin (barrel:
  tan alpha = |z| / r; disk: tan alpha = r / |z|) as cos alpha and sin alpha, the total
  charge times cos alpha (about the number of particles: a MIP leaves 1 unit per sensor
  thickness at normal incidence and 1 / cos alpha at incidence alpha), the number of cells
  / 10 and the cluster length along both directions [cells] / 10;
- label ``y``: 0, 1, 2 for 1, 2, 3 or more particles (from ``n_particles``).

Model and training: :class:`ClusterNet` (two 3x3 convolutions on the charge map, the
flattened maps concatenated with ``aux``, an MLP, three logits), trained by the shared
engine :func:`heplab.ml.engine.fit` (cross-entropy, ``num_classes=3``).

Splitting (:func:`split_clusters`): the cell centres of a cluster predicted to hold k
particles (k = 3 for "3+") are split by a k-means with the cell charges as weights
(Lloyd's algorithm, vectorised over all clusters at once in numpy: scikit-learn's
``KMeans`` costs ~0.1 s per call, far too much per cluster; the k start centres lie on the
principal axis of the charge distribution); each centre, offset from the charge centroid
by (d0, d1) cells, gives a hit at ``x_hit + d0 pitch_u u + d1 pitch_v v`` (u = unit vector
along phi, v = along z (barrel) or r (disk)). :func:`splitting_residuals` matches the split
hits to the true crossings (:func:`scipy.optimize.linear_sum_assignment`, least total
distance) and compares their distances with those of the merged hit to the same
crossings. The merged hit's position (the simulation's charge-weighted mean of the
smeared crossings) is the anchor of the split hits, so its smearing enters both.

Units: mm, GeV, charge in MIP units (1 = normal-incidence MIP through the sensor).
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

__all__ = [
    "AUX_FEATURES",
    "CLASS_NAMES",
    "PIXEL_VOLUMES",
    "ClusterNet",
    "ClusterNetConfig",
    "ClusterSample",
    "JetCoreGun",
    "cluster_sample",
    "evaluate_clusters",
    "jet_core_particles",
    "load_cluster_classifier",
    "plot_cluster_performance",
    "predict_clusters",
    "simulate_jet_cores",
    "split_clusters",
    "splitting_residuals",
    "train_cluster_classifier",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: TrackML volume ids of the pixel detector (endcap -z, barrel, endcap +z)
PIXEL_VOLUMES: Final = (7, 8, 9)
#: the three classes of the classifier
CLASS_NAMES: Final = ("1", "2", "3+")
#: columns of ``ClusterSample.aux``
AUX_FEATURES: Final = (
    "is_barrel",
    "r_over_200",
    "absz_over_1500",
    "cos_alpha",
    "sin_alpha",
    "charge_cos_alpha",
    "n_cells_over_10",
    "length_u_over_10",
    "length_v_over_10",
)
_PION_MASS: Final = 0.13957  # GeV
_MODEL_JSON: Final = "cluster_model.json"
_MAX_TRUE: Final = 4  # true crossings kept per cluster


# ---------------------------------------------------------------------------- the gun
@dataclass(frozen=True)
class JetCoreGun:
    """Settings of the jet-core particle gun (module doc). GeV, rad.

    ``multiplicity`` gives the probabilities of bundles of 1, 2, 3, 4, ... particles.
    """

    n_bundles: int = 150
    multiplicity: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
    dr_min: float = 2e-4
    dr_max: float = 5e-3
    pt_min: float = 2.0
    pt_max: float = 20.0
    eta_max: float = 2.5

    def __post_init__(self) -> None:
        if self.n_bundles < 1:
            raise ConfigError(f"n_bundles must be >= 1, not {self.n_bundles}")
        m = np.asarray(self.multiplicity, np.float64)
        if len(m) == 0 or np.any(m < 0) or not m.sum() > 0:
            raise ConfigError(f"multiplicity must be non-negative weights, not {m.tolist()}")
        if not 0 < self.dr_min <= self.dr_max:
            raise ConfigError(f"need 0 < dr_min <= dr_max ({self.dr_min}, {self.dr_max})")
        if not 0 < self.pt_min <= self.pt_max:
            raise ConfigError(f"need 0 < pt_min <= pt_max ({self.pt_min}, {self.pt_max})")
        if not self.eta_max > 0:
            raise ConfigError(f"eta_max must be > 0, not {self.eta_max}")


def jet_core_particles(gun: JetCoreGun, rng: np.random.Generator) -> dict[str, F64]:
    """One event of the jet-core gun: the particle columns of ``simulate_event``."""
    prob = np.asarray(gun.multiplicity, np.float64)
    k = rng.choice(np.arange(1, len(prob) + 1), size=gun.n_bundles, p=prob / prob.sum())
    n = int(k.sum())
    bundle = np.repeat(np.arange(gun.n_bundles), k)
    eta0 = rng.uniform(-gun.eta_max, gun.eta_max, gun.n_bundles)[bundle]
    phi0 = rng.uniform(-np.pi, np.pi, gun.n_bundles)[bundle]
    dr = np.exp(rng.uniform(math.log(gun.dr_min), math.log(gun.dr_max), n))
    ang = rng.uniform(0.0, 2 * np.pi, n)
    eta = eta0 + dr * np.cos(ang)
    phi = phi0 + dr * np.sin(ang)
    pt = rng.uniform(gun.pt_min, gun.pt_max, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    zero = np.zeros(n)
    return {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + _PION_MASS**2),
        "charge": rng.choice([-1.0, 1.0], n),
        "vx": zero,
        "vy": zero.copy(),
        "vz": zero.copy(),
    }


def simulate_jet_cores(
    n_events: int,
    gun: JetCoreGun | None = None,
    *,
    seed: int = 0,
    geometry: Any = None,
    config: Any = None,
) -> list[tuple[TrackMLEvent, TrackMLEvent]]:
    """``n_events`` jet-core events: (event, the same event with one hit per crossing).

    Both simulations of an event use the generator ``default_rng([seed, i])``; the second
    has ``clusters=False`` (the cluster simulation is the only random step that differs,
    and it comes after the propagation, the efficiency and the smearing), so its hits are
    the individual crossings of the first one's merged clusters. Noise is switched off.
    """
    from dataclasses import replace

    from heplab.detector.silicon import SimulationConfig, simulate_event

    gun = gun or JetCoreGun()
    base = config or SimulationConfig()
    on = replace(base, noise_fraction=0.0, clusters=True)
    off = replace(base, noise_fraction=0.0, clusters=False)
    out = []
    for i in range(n_events):
        parts = jet_core_particles(gun, np.random.default_rng([seed, i, 1]))
        ev = simulate_event(parts, geometry, np.random.default_rng([seed, i]), on, event_id=i)
        cr = simulate_event(parts, geometry, np.random.default_rng([seed, i]), off, event_id=i)
        out.append((ev, cr))
    return out


# ------------------------------------------------------------------------- data set
@dataclass
class ClusterSample:
    """Pixel clusters as network inputs, with what splitting and evaluation need.

    Per cluster (n of them): ``image`` (n, 1, S, S), ``aux`` (n, len(AUX_FEATURES)),
    ``y`` (n,) class 0 / 1 / 2, ``n_particles`` (n,), ``position`` (n, 3) of the hit [mm],
    ``u_dir`` / ``v_dir`` (n, 3) unit vectors of the cell axes ch0 / ch1, ``pitch`` (n, 2)
    [mm], ``centroid`` (n, 2) charge centroid [cells], ``true_points`` (n, 4, 3) the true
    crossings of its particles (NaN where unknown), ``event`` / ``row`` the event index and
    hit row. Cells of cluster i: ``cell_uv[cell_ptr[i]:cell_ptr[i + 1]]`` (ch0, ch1) and
    ``cell_q`` (charge).
    """

    image: F32
    aux: F32
    y: I64
    n_particles: I64
    position: F64
    u_dir: F64
    v_dir: F64
    pitch: F64
    centroid: F64
    true_points: F64
    event: I64
    row: I64
    cell_ptr: I64
    cell_uv: I64
    cell_q: F64

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: npt.ArrayLike) -> ClusterSample:
        """The clusters ``index`` (an index array or a boolean mask), cells included."""
        idx = np.arange(len(self))[np.asarray(index)]
        counts = np.diff(self.cell_ptr)[idx]
        starts = self.cell_ptr[idx]
        cells = np.repeat(starts, counts) + (
            np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        )
        per = {
            k: getattr(self, k)[idx]
            for k in (
                "image",
                "aux",
                "y",
                "n_particles",
                "position",
                "u_dir",
                "v_dir",
                "pitch",
                "centroid",
                "true_points",
                "event",
                "row",
            )
        }
        return ClusterSample(
            **per,
            cell_ptr=np.r_[0, np.cumsum(counts)].astype(np.int64),
            cell_uv=self.cell_uv[cells],
            cell_q=self.cell_q[cells],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The network inputs and target (``image``, ``aux``, ``y``) for a JetDataset."""
        return {"image": self.image, "aux": self.aux, "y": self.y}


def _pitches(geometry: Any) -> dict[int, tuple[float, float]]:
    return {
        s.volume_id * 100 + s.layer_id: (s.pitch_u, s.pitch_v)
        for s in geometry.surfaces
        if s.technology == "pixel"
    }


def _true_points(ev: TrackMLEvent, crossings: TrackMLEvent | None, rows: I64, k: I64) -> F64:
    """(n, 4, 3) true crossings of the clusters ``rows`` (module doc); NaN if unknown."""
    from scipy.spatial import cKDTree

    out = np.full((len(rows), _MAX_TRUE, 3), np.nan)
    t = ev.truth
    assert t is not None
    out[:, 0] = np.stack([np.asarray(t[c], np.float64)[rows] for c in ("tx", "ty", "tz")], 1)
    if crossings is None or crossings.truth is None or not len(rows):
        return out
    h, ch = ev.hits, crossings.hits

    def keyed(hits: dict[str, np.ndarray], xyz: F64, sel: I64) -> F64:
        key = (
            np.asarray(hits["volume_id"], np.int64)[sel] * 100
            + np.asarray(hits["layer_id"], np.int64)[sel]
        ) * 100_000 + np.asarray(hits["module_id"], np.int64)[sel]
        # modules are 1e5 mm apart along a 4th axis: nearest neighbours share a module
        return np.c_[xyz, key.astype(np.float64) * 1e5]

    cpix = np.flatnonzero(np.isin(ch["volume_id"], PIXEL_VOLUMES))
    ctruth = crossings.truth
    cxyz = np.stack([np.asarray(ctruth[c], np.float64)[cpix] for c in ("tx", "ty", "tz")], 1)
    if not len(cpix):
        return out
    tree = cKDTree(keyed(ch, cxyz, cpix))
    hxyz = np.stack([np.asarray(h[c], np.float64)[rows] for c in ("x", "y", "z")], 1)
    nq = min(_MAX_TRUE, len(cpix))
    _, nb = tree.query(keyed(h, hxyz, rows), k=nq)
    nb = np.asarray(nb).reshape(len(rows), nq)
    pts = cxyz[nb]  # (n, nq, 3)
    multi = k > 1
    take = np.arange(nq)[None, :] < np.minimum(k, _MAX_TRUE)[:, None]
    near = np.full((len(rows), _MAX_TRUE, 3), np.nan)
    near[:, :nq][take] = pts[take]
    out[multi] = near[multi]
    return out


def cluster_sample(
    events: Sequence[TrackMLEvent | tuple[TrackMLEvent, TrackMLEvent | None]],
    *,
    size: int = 7,
    geometry: Any = None,
) -> ClusterSample:
    """The pixel clusters of ``events`` as a :class:`ClusterSample` (module doc).

    ``events`` holds events or (event, crossings event) pairs from
    :func:`simulate_jet_cores`; without the crossings only the dominant particle's
    crossing (the truth row) is known. Noise hits (``n_particles`` 0) are left out.

    Raises
    ------
    DataError
        An event without cells, without truth or without the ``n_particles`` column.
    ConfigError
        An even or non-positive ``size``.
    """
    from heplab.detector.silicon import load_geometry

    if size < 1 or size % 2 == 0:
        raise ConfigError(f"the charge map size must be odd and positive, not {size}")
    pitch_of = _pitches(geometry or load_geometry("trackml"))
    half = size // 2
    parts: list[dict[str, np.ndarray]] = []
    for i_ev, item in enumerate(events):
        ev, cr = item if isinstance(item, tuple) else (item, None)
        if ev.cells is None or ev.truth is None or "n_particles" not in ev.truth:
            raise DataError(
                f"event {ev.event_id}: cluster data need cells and truth with n_particles"
            )
        h = ev.hits
        n_part = np.asarray(ev.truth["n_particles"], np.int64)
        vol = np.asarray(h["volume_id"], np.int64)
        layer = vol * 100 + np.asarray(h["layer_id"], np.int64)
        rows = np.flatnonzero(np.isin(vol, PIXEL_VOLUMES) & (n_part > 0))
        if not len(rows):
            continue
        # cells -> cluster index
        hid = np.asarray(h["hit_id"], np.int64)
        order = np.argsort(hid)
        c_hid = np.asarray(ev.cells["hit_id"], np.int64)
        pos = np.clip(np.searchsorted(hid[order], c_hid), 0, len(hid) - 1)
        c_row = order[pos]
        ok = hid[c_row] == c_hid
        slot = np.full(len(hid), -1, np.int64)
        slot[rows] = np.arange(len(rows))
        cl = np.where(ok, slot[c_row], -1)
        keep = cl >= 0
        cl = cl[keep]
        c0 = np.asarray(ev.cells["ch0"], np.int64)[keep]
        c1 = np.asarray(ev.cells["ch1"], np.int64)[keep]
        q = np.asarray(ev.cells["value"], np.float64)[keep]
        srt = np.argsort(cl, kind="stable")
        cl, c0, c1, q = cl[srt], c0[srt], c1[srt], q[srt]
        n = len(rows)
        ncell = np.bincount(cl, minlength=n)
        if np.any(ncell == 0):
            raise DataError(f"event {ev.event_id}: a pixel hit without cells")
        qsum = np.bincount(cl, q, n)
        m0 = np.bincount(cl, q * c0, n) / qsum
        m1 = np.bincount(cl, q * c1, n) / qsum
        lo0 = np.full(n, np.iinfo(np.int64).max)
        hi0 = np.full(n, np.iinfo(np.int64).min)
        lo1, hi1 = lo0.copy(), hi0.copy()
        np.minimum.at(lo0, cl, c0)
        np.maximum.at(hi0, cl, c0)
        np.minimum.at(lo1, cl, c1)
        np.maximum.at(hi1, cl, c1)
        d0 = c0 - np.rint(m0).astype(np.int64)[cl] + half
        d1 = c1 - np.rint(m1).astype(np.int64)[cl] + half
        inside = (d0 >= 0) & (d0 < size) & (d1 >= 0) & (d1 < size)
        image = np.zeros((n, size, size), np.float64)
        np.add.at(image, (cl[inside], d0[inside], d1[inside]), q[inside])
        # geometry of the hits
        x = np.asarray(h["x"], np.float64)[rows]
        y = np.asarray(h["y"], np.float64)[rows]
        z = np.asarray(h["z"], np.float64)[rows]
        r = np.hypot(x, y)
        phi = np.arctan2(y, x)
        barrel = vol[rows] == 8
        tan_a = np.where(barrel, np.abs(z) / np.maximum(r, 1e-9), r / np.maximum(np.abs(z), 1e-9))
        cos_a = 1.0 / np.sqrt(1.0 + tan_a**2)
        sin_a = tan_a * cos_a
        try:
            pitch = np.array([pitch_of[int(lk)] for lk in layer[rows]], np.float64)
        except KeyError as exc:
            raise DataError(f"event {ev.event_id}: layer {exc} is not a pixel layer") from None
        u_dir = np.stack([-np.sin(phi), np.cos(phi), np.zeros(n)], 1)
        r_hat = np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], 1)
        z_hat = np.tile([0.0, 0.0, 1.0], (n, 1))
        v_dir = np.where(barrel[:, None], z_hat, r_hat)
        aux = np.stack(
            [
                barrel.astype(np.float64),
                r / 200.0,
                np.abs(z) / 1500.0,
                cos_a,
                sin_a,
                qsum * cos_a,
                ncell / 10.0,
                (hi0 - lo0 + 1) / 10.0,
                (hi1 - lo1 + 1) / 10.0,
            ],
            1,
        )
        k = n_part[rows]
        parts.append(
            {
                "image": image[:, None].astype(np.float32),
                "aux": aux.astype(np.float32),
                "y": np.minimum(k, 3) - 1,
                "n_particles": k,
                "position": np.stack([x, y, z], 1),
                "u_dir": u_dir,
                "v_dir": v_dir,
                "pitch": pitch,
                "centroid": np.stack([m0, m1], 1),
                "true_points": _true_points(ev, cr, rows, k),
                "event": np.full(n, i_ev, np.int64),
                "row": rows,
                "ncell": ncell,
                "cell_uv": np.stack([c0, c1], 1),
                "cell_q": q,
            }
        )
    if not parts:
        raise DataError("no pixel clusters in the events")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    ncell_all = cat.pop("ncell")
    return ClusterSample(**cat, cell_ptr=np.r_[0, np.cumsum(ncell_all)].astype(np.int64))


# ---------------------------------------------------------------------------- model
@dataclass
class ClusterNetConfig:
    """Hyper-parameters of :class:`ClusterNet` (saved as JSON beside the weights)."""

    size: int = 7
    channels: tuple[int, int] = (16, 32)
    hidden: int = 64
    n_aux: int = len(AUX_FEATURES)
    num_classes: int = 3

    def __post_init__(self) -> None:
        self.channels = (int(self.channels[0]), int(self.channels[1]))
        if self.size < 1 or min(self.channels) < 1 or self.hidden < 1 or self.num_classes < 2:
            raise ConfigError(f"invalid cluster network settings: {self}")


class ClusterNet(nn.Module):
    """CNN on the charge map + MLP with the aux features -> logits of 1 / 2 / 3+ particles.

    ``forward(image (B, 1, S, S), aux (B, A)) -> (B, 3)``; the charge map enters as
    ln(1 + q) (charges span a decade).
    """

    input_names: tuple[str, ...] = ("image", "aux")

    def __init__(self, config: ClusterNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClusterNetConfig()
        c = self.config
        self.conv = nn.Sequential(
            nn.Conv2d(1, c.channels[0], 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c.channels[0], c.channels[1], 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(c.channels[1] * c.size * c.size + c.n_aux, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.num_classes),
        )

    def forward(self, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        feats = self.conv(torch.log1p(image.clamp_min(0.0)))
        out: torch.Tensor = self.head(torch.cat([feats, aux], dim=1))
        return out


def train_cluster_classifier(
    train: ClusterSample,
    val: ClusterSample,
    out_dir: str | os.PathLike[str],
    *,
    config: Any = None,
    model_config: ClusterNetConfig | None = None,
    balance: bool = True,
    seed: int = 0,
    force: bool = False,
) -> ClusterNet:
    """Train a :class:`ClusterNet` with :func:`heplab.ml.engine.fit` (``num_classes=3``).

    ``balance`` drops single-particle training clusters at random down to the number of
    multi-particle ones (singles outnumber merged clusters several times even in jet
    cores). Writes ``out_dir/best.pt`` (state_dict, by the engine) and
    ``out_dir/cluster_model.json`` (the network settings).

    Raises
    ------
    OutputExistsError
        ``out_dir`` holds a trained model already (unless ``force``).
    DataError
        An empty training or validation set.
    """
    from dataclasses import replace

    from heplab.ml.data import JetDataset
    from heplab.ml.engine import TrainConfig, fit

    out = Path(out_dir)
    if (out / _MODEL_JSON).exists() and not force:
        raise OutputExistsError(f"{out}: a cluster model exists already (force=True replaces it)")
    if not len(train) or not len(val):
        raise DataError("the cluster classifier needs non-empty training and validation sets")
    cfg = replace(config or TrainConfig(epochs=10, batch_size=256), num_classes=3)
    mcfg = model_config or ClusterNetConfig(size=train.image.shape[-1])
    if mcfg.size != train.image.shape[-1]:
        raise ConfigError(f"model size {mcfg.size} != charge map size {train.image.shape[-1]}")
    idx = np.arange(len(train))
    if balance:
        rng = np.random.default_rng(seed)
        single = idx[train.y == 0]
        multi = idx[train.y > 0]
        if len(multi):
            single = rng.permutation(single)[: max(len(multi), 1)]
        idx = np.sort(np.r_[single, multi])
    tr = train.subset(idx).arrays()
    net = ClusterNet(mcfg)
    out.mkdir(parents=True, exist_ok=True)
    if force:
        for name in ("best.pt", _MODEL_JSON):
            (out / name).unlink(missing_ok=True)
        for ck in (out / "checkpoints").glob("*.ckpt"):
            ck.unlink()
    fit(net, JetDataset(tr), JetDataset(val.arrays()), config=cfg, out_dir=out)
    tmp = out / f".{_MODEL_JSON}.tmp"
    tmp.write_text(json.dumps(asdict(mcfg), indent=1), "utf-8")
    os.replace(tmp, out / _MODEL_JSON)
    net.eval()
    return net


def load_cluster_classifier(run_dir: str | os.PathLike[str]) -> ClusterNet:
    """A trained :class:`ClusterNet` from ``run_dir`` (``cluster_model.json`` + ``best.pt``).

    Raises
    ------
    DataError
        Missing or unreadable files.
    """
    run = Path(run_dir)
    cfg_path, w_path = run / _MODEL_JSON, run / "best.pt"
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise DataError(f"{p}: missing (not a cluster-classifier run directory?)")
    try:
        net = ClusterNet(ClusterNetConfig(**json.loads(cfg_path.read_text("utf-8"))))
        net.load_state_dict(torch.load(w_path, map_location="cpu", weights_only=True))
    except (ValueError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise DataError(f"{run}: cannot load the cluster classifier ({exc})") from exc
    net.eval()
    return net


@torch.no_grad()
def predict_clusters(model: ClusterNet, sample: ClusterSample, batch: int = 4096) -> F64:
    """Class probabilities (n, 3) of 1 / 2 / 3+ particles."""
    model.eval()
    out = []
    for s in range(0, len(sample), batch):
        logits = model(
            torch.from_numpy(sample.image[s : s + batch]),
            torch.from_numpy(sample.aux[s : s + batch]),
        )
        out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 3))


def evaluate_clusters(model: ClusterNet, sample: ClusterSample) -> dict[str, Any]:
    """Held-out performance: confusion matrix (rows true, columns predicted; sklearn),
    per-class efficiency (recall), accuracy, and the 1 vs >1 accuracy and efficiencies."""
    from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

    prob = predict_clusters(model, sample)
    pred = prob.argmax(1)
    y = sample.y
    cm = confusion_matrix(y, pred, labels=[0, 1, 2])
    eff = recall_score(y, pred, labels=[0, 1, 2], average=None, zero_division=np.nan)
    multi_t, multi_p = y > 0, pred > 0
    return {
        "clusters": len(y),
        "confusion": cm.tolist(),
        "efficiency": {n: float(e) for n, e in zip(CLASS_NAMES, eff, strict=True)},
        "accuracy": float(accuracy_score(y, pred)),
        "accuracy_1_vs_multi": float(accuracy_score(multi_t, multi_p)),
        "efficiency_single": float((~multi_p[~multi_t]).mean()) if (~multi_t).any() else math.nan,
        "efficiency_multi": float(multi_p[multi_t].mean()) if multi_t.any() else math.nan,
    }


# ------------------------------------------------------------------------ splitting
def _weighted_kmeans(
    cl: I64, uv: F64, q: F64, k: I64, n_iter: int = 20
) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Charge-weighted k-means of the cells of many clusters at once (Lloyd's algorithm).

    ``cl`` (cells,) cluster index 0..n-1, sorted; ``uv`` (cells, 2) positions; ``q``
    weights; ``k`` (n,) centres wanted. Start: the k centres on the principal axis of the
    cluster's charge distribution at m + Phi^-1((j + 1/2) / k) sigma e (m, e, sigma: the
    weighted mean, principal direction and spread along it). Returns the centres
    (n, max k, 2) and which of them exist (n, max k).
    """
    from scipy.stats import norm

    n = len(k)
    kmax = int(k.max())
    w = np.bincount(cl, q, n)
    mean = np.stack([np.bincount(cl, q * uv[:, i], n) / w for i in (0, 1)], 1)
    d = uv - mean[cl]
    cxx = np.bincount(cl, q * d[:, 0] ** 2, n) / w
    cyy = np.bincount(cl, q * d[:, 1] ** 2, n) / w
    cxy = np.bincount(cl, q * d[:, 0] * d[:, 1], n) / w
    theta = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    e = np.stack([np.cos(theta), np.sin(theta)], 1)
    sigma = np.sqrt(
        np.maximum(cxx * e[:, 0] ** 2 + cyy * e[:, 1] ** 2 + 2 * cxy * e[:, 0] * e[:, 1], 1e-6)
    )
    j = np.arange(kmax)[None, :]
    exists = j < k[:, None]
    z = norm.ppf((j + 0.5) / np.maximum(k[:, None], 1))
    centres = mean[:, None, :] + (z * sigma[:, None])[..., None] * e[:, None, :]
    for _ in range(n_iter):
        dist = np.linalg.norm(uv[:, None, :] - centres[cl], axis=2)
        dist[~exists[cl]] = np.inf
        lab = cl * kmax + dist.argmin(1)
        ww = np.bincount(lab, q, n * kmax)
        new = np.stack([np.bincount(lab, q * uv[:, i], n * kmax) for i in (0, 1)], 1)
        filled = ww > 0
        flat = centres.reshape(n * kmax, 2).copy()
        flat[filled] = new[filled] / ww[filled, None]
        if np.allclose(flat, centres.reshape(n * kmax, 2)):
            break
        centres = flat.reshape(n, kmax, 2)
    return centres, exists


def split_clusters(sample: ClusterSample, k: npt.ArrayLike) -> F64:
    """Split each cluster i into ``k[i]`` hits (module doc): (n, max k, 3) positions [mm],
    NaN beyond ``k[i]``; clusters with k = 1 keep their hit. The charge-weighted k-means
    (:func:`_weighted_kmeans`, vectorised over all clusters) runs on the cell centres; a
    cluster with fewer cells than k is split into as many hits as it has cells."""
    kk = np.asarray(k, np.int64)
    if kk.shape != (len(sample),) or np.any(kk < 1):
        raise ConfigError("k must hold one positive count per cluster")
    kmax = int(kk.max()) if len(kk) else 1
    out = np.full((len(sample), kmax, 3), np.nan)
    out[:, 0] = sample.position
    todo = np.flatnonzero(kk > 1)
    if not len(todo):
        return out
    sub = sample.subset(todo)
    ncell = np.diff(sub.cell_ptr)
    ki = np.minimum(kk[todo], ncell)
    cl = np.repeat(np.arange(len(sub)), ncell)
    uv = sub.cell_uv.astype(np.float64) + 0.5  # cell centres [cells]
    centres, exists = _weighted_kmeans(cl, uv, sub.cell_q, ki)
    d = centres - (sub.centroid + 0.5)[:, None, :]  # offsets [cells]
    du = (d[..., 0] * sub.pitch[:, 0:1])[..., None] * sub.u_dir[:, None, :]
    dv = (d[..., 1] * sub.pitch[:, 1:2])[..., None] * sub.v_dir[:, None, :]
    pos = sub.position[:, None, :] + du + dv
    pos[~exists] = np.nan
    keep = ki > 1
    out[todo[keep], : pos.shape[1]] = pos[keep]
    return out


def splitting_residuals(sample: ClusterSample, split: F64) -> dict[str, Any]:
    """Distances [mm] from the true crossings to the merged hit and to the split hits.

    Every true crossing of a cluster (``true_points``, NaN skipped) is matched to one split
    hit (least total distance; a crossing left without a split hit is matched to the
    nearest one). Returns per-crossing arrays ``merged`` and ``split`` and their medians
    and RMS.
    """
    from scipy.optimize import linear_sum_assignment

    merged_d, split_d = [], []
    for i in range(len(sample)):
        t = sample.true_points[i]
        t = t[~np.isnan(t[:, 0])]
        s = split[i]
        s = s[~np.isnan(s[:, 0])]
        if not len(t) or not len(s):
            continue
        dist = np.linalg.norm(t[:, None, :] - s[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(dist)
        best = dist.min(1)
        best[rows] = dist[rows, cols]
        split_d.append(best)
        merged_d.append(np.linalg.norm(t - sample.position[i], axis=1))
    m = np.concatenate(merged_d) if merged_d else np.zeros(0)
    s = np.concatenate(split_d) if split_d else np.zeros(0)

    def rms(a: F64) -> float:
        return float(np.sqrt(np.mean(a**2))) if len(a) else math.nan

    return {
        "crossings": len(m),
        "merged": m,
        "split": s,
        "merged_median_mm": float(np.median(m)) if len(m) else math.nan,
        "split_median_mm": float(np.median(s)) if len(s) else math.nan,
        "merged_rms_mm": rms(m),
        "split_rms_mm": rms(s),
    }


def plot_cluster_performance(
    metrics: dict[str, Any],
    residuals: dict[str, Any] | None,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
) -> Path:
    """Figure: the row-normalised confusion matrix and (if given) the distance of the true
    crossings to the merged and to the split hits. Written atomically.

    Raises
    ------
    OutputExistsError
        ``path`` exists (unless ``force``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: exists (force=True overwrites it)")
    cm = np.asarray(metrics["confusion"], np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2 if residuals else 1, figsize=(10 if residuals else 5, 4))
    ax0 = axes[0] if residuals else axes
    im = ax0.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    for (a, b), v in np.ndenumerate(norm):
        ax0.text(b, a, f"{v:.2f}", ha="center", va="center")
    ax0.set_xticks(range(3), CLASS_NAMES)
    ax0.set_yticks(range(3), CLASS_NAMES)
    ax0.set_xlabel("predicted particles")
    ax0.set_ylabel("true particles")
    fig.colorbar(im, ax=ax0)
    if residuals:
        ax1 = axes[1]
        m_um = 1000 * np.asarray(residuals["merged"])
        s_um = 1000 * np.asarray(residuals["split"])
        bins = np.linspace(0, 300, 61)
        ax1.hist(np.clip(m_um, 0, 300), bins, histtype="step", label="merged hit")
        ax1.hist(np.clip(s_um, 0, 300), bins, histtype="step", label="split hits")
        ax1.set_xlabel("distance to the true crossing [um]")
        ax1.set_ylabel("crossings")
        ax1.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out
