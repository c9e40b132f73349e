"""Clustering of overlapping showers in a granular calorimeter: events, topo baseline, metrics.

Events (:func:`make_overlap_events`): 2-5 showers (e-, gamma, pi+; 5-100 GeV, log-flat)
enter the ``endcap`` geometry (20 Si/W layers of 36 x 36 cells of 8 mm) at random points
within ``spread`` [mm] of a random event centre, so that they overlap (R_M = 10 mm). Their
energy spots come from :func:`heplab.detector.showers.generate_spots` and are deposited
together by :func:`heplab.detector.showers.deposit` with ``contributions=True``: the truth
is the visible energy of every shower in every cell. Cells get Gaussian noise of
``noise`` [GeV] (default 0.03 MeV, ~0.15 MIP of the 0.5 mm Si layers) and cells below
``zs_sigma`` x noise are zero-suppressed. Events keep only their non-zero cells.

Topological clustering (:func:`topo_cluster`), after ATLAS (arXiv:1603.02934), on the
(layer, y, x) grid with 26-neighbour connectivity:

1. seeds: cells with ``E > 4 sigma``; growth through cells with ``E > 2 sigma`` (the
   connected components of the ``> 2 sigma`` cells that hold a seed); then one ring of
   boundary cells ``E > 0 sigma`` (here: every read-out cell) around each;
2. splitting: the cluster is projected on (y, x) (summed over layers), smoothed with a 3 x 3
   sum, and every local maximum of the smoothed map above ``split_min`` [GeV] starts a
   sub-cluster; a cell goes to the maximum m with the largest ``E_m exp(-d_m / R_M)``
   (d_m its transverse distance to the maximum: ATLAS's energy-and-distance sharing weight,
   taken hard). A cluster with one maximum stays whole.

:func:`nearest_seed` is the trivial alternative: the same maxima, every cell to the nearest.

Figures of merit (:func:`match_showers`): a clustering is a soft assignment ``P`` (cell x
cluster); cluster energies ``E_c = sum_i P_ic E_i``; every cluster belongs to the truth
shower with which it shares most truth energy ``sum_i P_ic T_ij`` (clusters of pure noise to
none), so a fragmented hadronic shower collects its pieces while two merged showers give
all to one and nothing to the other; the per-shower response is ``E_reco(j) / E_vis(j)``
with ``E_reco(j)`` the sum of its clusters and ``E_vis`` the shower's visible energy in all
cells before noise; the resolution is ``(q84 - q16) / (2 median)`` of that response.

Energies in GeV, lengths in mm.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heplab.detector.calogeometry import CaloGeometry, load_geometry
from heplab.errors import ConfigError

__all__ = [
    "ClusterEvent",
    "TopoConfig",
    "cluster_summary",
    "compare_clusterings",
    "make_overlap_events",
    "match_showers",
    "nearest_seed",
    "plot_cluster_response",
    "topo_cluster",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CLUSTER_PARTICLES = ("e-", "gamma", "pi+")


@dataclass
class ClusterEvent:
    """One event: its read-out cells and the truth of its showers.

    ``voxels`` (n,) flat cell indices; ``energy`` (n,) measured visible energy [GeV] (with
    noise); ``truth`` (n, m) visible energy of shower j in cell i before noise [GeV];
    ``particles`` (m,), ``e_inc`` (m,) incident energies [GeV], ``e_vis`` (m,) visible energy
    of each shower in all cells [GeV], ``xy`` (m, 2) impact points [mm].
    """

    voxels: I64
    energy: F64
    truth: F64
    particles: list[str]
    e_inc: F64
    e_vis: F64
    xy: F64

    @property
    def n_showers(self) -> int:
        return len(self.e_inc)


def make_overlap_events(
    n_events: int,
    *,
    geometry: str | CaloGeometry = "endcap",
    n_showers: tuple[int, int] = (2, 5),
    particles: tuple[str, ...] = CLUSTER_PARTICLES,
    energy: tuple[float, float] = (5.0, 100.0),
    spread: float = 30.0,
    noise: float = 3e-5,
    zs_sigma: float = 2.0,
    seed: int = 0,
    spot_scale: float = 0.3,
    chunk: int = 100,
) -> list[ClusterEvent]:
    """Events of overlapping showers (see the module doc), seeded."""
    from heplab.detector.showers import ShowerConfig, Spots, deposit, generate_spots

    geo = geometry if isinstance(geometry, CaloGeometry) else load_geometry(geometry)
    lo_n, hi_n = n_showers
    if n_events < 1 or not 1 <= lo_n <= hi_n:
        raise ConfigError("need n_events >= 1 and 1 <= min showers <= max showers")
    if not 0 < energy[0] <= energy[1] or spread < 0 or noise < 0 or zs_sigma < 0:
        raise ConfigError("energies must be 0 < EMIN <= EMAX; spread, noise, zs_sigma >= 0")
    unknown = set(particles) - set(CLUSTER_PARTICLES) - {"pi0"}
    if unknown or not particles:
        raise ConfigError(f"particles must be among e-, gamma, pi0, pi+, not {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    cfg = ShowerConfig(noise=noise, threshold=zs_sigma * noise, spot_scale=spot_scale)
    # keep the showers' cores inside the 288 mm face
    half = 0.5 * min(
        geo.layers[0].shape[0] * geo.layers[0].cell_size[0],
        geo.layers[0].shape[1] * geo.layers[0].cell_size[1],
    )
    margin = max(half - spread - 40.0, 0.0)
    events: list[ClusterEvent] = []
    for start in range(0, n_events, chunk):
        n_ev = min(chunk, n_events - start)
        counts = rng.integers(lo_n, hi_n + 1, n_ev)
        event_of = np.repeat(np.arange(n_ev), counts)
        n_sh = len(event_of)
        kind = rng.integers(0, len(particles), n_sh)
        e_inc = np.exp(rng.uniform(math.log(energy[0]), math.log(energy[1]), n_sh))
        centre = rng.uniform(-margin, margin, (n_ev, 2))
        r = spread * np.sqrt(rng.uniform(0, 1, n_sh))
        phi = rng.uniform(0, 2 * np.pi, n_sh)
        xy = centre[event_of] + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        parts: list[Spots] = []
        for k, particle in enumerate(particles):
            idx = np.flatnonzero(kind == k)
            if len(idx) == 0:
                continue
            spots, _ = generate_spots(particle, e_inc[idx], geo, rng, positions=xy[idx], config=cfg)
            spots.shower = idx[spots.shower]
            parts.append(spots)
        dep = deposit(
            Spots.concatenate(parts),
            geo,
            n_sh,
            rng,
            config=cfg,
            event_of_shower=event_of,
            n_events=n_ev,
            contributions=True,
        )
        assert dep.contributions is not None
        c_sh, c_vox, c_e = dep.contributions
        first = np.concatenate([[0], np.cumsum(counts)])
        c_ev = event_of[c_sh]
        order = np.argsort(c_ev, kind="stable")
        c_sh, c_vox, c_e, c_ev = c_sh[order], c_vox[order], c_e[order], c_ev[order]
        bounds = np.searchsorted(c_ev, np.arange(n_ev + 1))
        for ev in range(n_ev):
            cells = dep.cells[ev]
            vox = np.flatnonzero(cells)
            a, b = bounds[ev], bounds[ev + 1]
            pos = np.searchsorted(vox, c_vox[a:b])
            ok = (pos < len(vox)) & (vox[np.minimum(pos, len(vox) - 1)] == c_vox[a:b])
            m = int(counts[ev])
            truth = np.zeros((len(vox), m))
            np.add.at(truth, (pos[ok], c_sh[a:b][ok] - first[ev]), c_e[a:b][ok])
            sl = slice(first[ev], first[ev + 1])
            events.append(
                ClusterEvent(
                    voxels=vox.astype(np.int64),
                    energy=cells[vox].astype(np.float64),
                    truth=truth,
                    particles=[particles[k] for k in kind[sl]],
                    e_inc=e_inc[sl].copy(),
                    e_vis=dep.e_visible_true[sl].copy(),
                    xy=xy[sl].copy(),
                )
            )
    return events


@dataclass(frozen=True)
class TopoConfig:
    """Thresholds of :func:`topo_cluster` (in units of the noise sigma, energies in GeV)."""

    noise: float = 3e-5
    seed_sigma: float = 4.0
    grow_sigma: float = 2.0
    boundary_sigma: float = 0.0
    split_min: float = 3e-3
    share_length: float = 10.2  # mm, the endcap's Moliere radius
    smooth: bool = False

    def __post_init__(self) -> None:
        if not self.noise > 0 or self.split_min < 0 or self.share_length <= 0:
            raise ConfigError("topo clustering needs noise > 0, split_min >= 0, share_length > 0")
        if not self.seed_sigma >= self.grow_sigma >= self.boundary_sigma >= 0:
            raise ConfigError("topo thresholds must satisfy seed >= grow >= boundary >= 0")


def _grid(geometry: CaloGeometry) -> tuple[int, int, int]:
    shapes = {la.shape for la in geometry.layers}
    if len(shapes) != 1 or geometry.layers[0].kind != "cartesian":
        raise ConfigError(f"clustering needs equal cartesian layers; {geometry.name!r} has not")
    ny, nx = geometry.layers[0].shape
    return geometry.n_layers, ny, nx


def _seeds_and_assignment(
    event: ClusterEvent, geometry: CaloGeometry, config: TopoConfig, nearest: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Topo clusters, split; returns (labels per cell (-1: none), cluster ids)."""
    from scipy import ndimage

    shape = _grid(geometry)
    sigma = config.noise
    grid = np.zeros(int(np.prod(shape)))
    grid[event.voxels] = event.energy
    grid = grid.reshape(shape)
    structure = np.ones((3, 3, 3), dtype=bool)
    grow = grid > config.grow_sigma * sigma
    comp, n_comp = ndimage.label(grow, structure=structure)
    seeded = np.zeros(n_comp + 1, dtype=bool)
    seeded[np.unique(comp[grid > config.seed_sigma * sigma])] = True
    seeded[0] = False
    comp = np.where(seeded[comp], comp, 0)
    # boundary ring: present cells next to a cluster take the label of a neighbour
    boundary = (grid > config.boundary_sigma * sigma) & (grid != 0) & (comp == 0)
    grown = ndimage.grey_dilation(comp, footprint=structure)
    comp = np.where(boundary & (grown > 0), grown, comp)
    labels = np.full(shape, -1, dtype=np.int64)
    ny, nx = shape[1], shape[2]
    dy, dx = geometry.layers[0].cell_size
    yy, xx = np.meshgrid(np.arange(ny) * dy, np.arange(nx) * dx, indexing="ij")
    next_id = 0
    for cid in np.unique(comp[comp > 0]):
        mask = comp == cid
        proj = np.where(mask, grid, 0.0).sum(axis=0)
        smooth = (
            ndimage.uniform_filter(proj, size=3, mode="constant") * 9.0 if config.smooth else proj
        )
        peak = (smooth == ndimage.maximum_filter(smooth, size=3, mode="constant")) & (
            smooth > config.split_min
        )
        py, px = np.nonzero(peak)
        cells = np.nonzero(mask)
        if len(py) <= 1:
            labels[cells] = next_id
            next_id += 1
            continue
        d = np.hypot(
            yy[cells[1], cells[2]][:, None] - yy[py, px][None, :],
            xx[cells[1], cells[2]][:, None] - xx[py, px][None, :],
        )
        if nearest:
            choice = d.argmin(axis=1)
        else:
            choice = (np.log(smooth[py, px])[None, :] - d / config.share_length).argmax(axis=1)
        labels[cells] = next_id + choice
        next_id += len(py)
    flat = labels.reshape(-1)[event.voxels]
    return flat, np.arange(next_id)


def _as_matrix(labels: np.ndarray, n_clusters: int) -> F64:
    p = np.zeros((len(labels), n_clusters))
    ok = labels >= 0
    p[np.flatnonzero(ok), labels[ok]] = 1.0
    return p


def topo_cluster(
    event: ClusterEvent, geometry: CaloGeometry, config: TopoConfig | None = None
) -> F64:
    """Topological clusters of ``event`` split at local maxima: ``(n_cells, n_clusters)``
    0/1 assignment (cells outside every cluster have a zero row)."""
    labels, ids = _seeds_and_assignment(event, geometry, config or TopoConfig(), nearest=False)
    return _as_matrix(labels, len(ids))


def nearest_seed(
    event: ClusterEvent, geometry: CaloGeometry, config: TopoConfig | None = None
) -> F64:
    """As :func:`topo_cluster`, but every cell goes to the nearest local maximum."""
    labels, ids = _seeds_and_assignment(event, geometry, config or TopoConfig(), nearest=True)
    return _as_matrix(labels, len(ids))


def match_showers(event: ClusterEvent, assignment: npt.ArrayLike) -> F64:
    """Per-shower response ``E_reco / E_vis`` (module doc): every cluster goes to the truth
    shower it shares most truth energy with; ``E_reco(j)`` sums the clusters of shower j."""
    p = np.asarray(assignment, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(event.energy):
        raise ConfigError(f"assignment must be (n_cells, n_clusters), not {p.shape}")
    e_reco = np.zeros(event.n_showers)
    if p.shape[1] > 0:
        e_cluster = p.T @ event.energy  # (n_clusters,)
        shared = event.truth.T @ p  # (m, n_clusters)
        owner = shared.argmax(axis=0)
        real = shared.max(axis=0) > 0  # clusters of pure noise belong to no shower
        np.add.at(e_reco, owner[real], e_cluster[real])
    safe = np.where(event.e_vis > 0, event.e_vis, 1.0)
    return e_reco / safe


def cluster_summary(events: list[ClusterEvent], responses: list[F64]) -> dict[str, Any]:
    """Median response, resolution ``(q84 - q16) / (2 median)``, mean ``|r - 1|`` of the
    per-shower responses, overall and per particle type."""

    def stats(r: F64) -> dict[str, float]:
        if r.size == 0:
            return {
                "response": float("nan"),
                "resolution": float("nan"),
                "mean_abs_dev": float("nan"),
                "n": 0,
            }
        q16, q50, q84 = np.quantile(r, [0.16, 0.5, 0.84])
        return {
            "response": float(q50),
            "resolution": float((q84 - q16) / (2 * q50)) if q50 > 0 else float("inf"),
            "mean_abs_dev": float(np.mean(np.abs(r - 1.0))),
            "n": int(r.size),
        }

    r = np.concatenate(responses) if responses else np.zeros(0)
    kinds = np.array([p for ev in events for p in ev.particles])
    out: dict[str, Any] = stats(r)
    out["by_particle"] = {p: stats(r[kinds == p]) for p in sorted(set(kinds.tolist()))}
    return out


def compare_clusterings(
    events: list[ClusterEvent], assigners: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, F64]]:
    """Run every ``name -> assign(event) -> (n_cells, n_clusters)`` on ``events``; returns
    ``{name: cluster_summary}`` and ``{name: per-shower responses}``."""
    summary: dict[str, Any] = {}
    responses: dict[str, F64] = {}
    for name, assign in assigners.items():
        rs = [match_showers(ev, assign(ev)) for ev in events]
        summary[name] = cluster_summary(events, rs)
        responses[name] = np.concatenate(rs) if rs else np.zeros(0)
    return summary, responses


def plot_cluster_response(responses: dict[str, F64], path: str | os.PathLike[str]) -> Path:
    """Histograms of the per-shower response ``E_reco / E_vis`` of each clustering."""
    import matplotlib.pyplot as plt

    from heplab.report import hep_style

    hep_style()
    fig, ax = plt.subplots(figsize=(7, 6))
    bins = np.linspace(0.0, 2.0, 41).tolist()
    for name, r in responses.items():
        q16, q50, q84 = np.quantile(r, [0.16, 0.5, 0.84]) if r.size else (0.0, 1.0, 0.0)
        res = (q84 - q16) / (2 * q50) if q50 > 0 else float("inf")
        ax.hist(
            np.clip(r, 0.0, 2.0),
            bins=bins,
            histtype="step",
            lw=2,
            label=f"{name} (sigma/E {res:.2f})",
        )
    ax.set_xlabel("E_reco / E_vis per shower")
    ax.set_ylabel("showers")
    ax.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out
