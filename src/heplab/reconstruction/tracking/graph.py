"""Geometric graph construction for GNN track finding: hits -> candidate edges.

Nodes are the hits of one event; a directed edge (i -> j) joins a hit on an inner layer to
a hit on the next layer outwards. Which layers follow which is a *layer-pair map*: learned
from the truth of training events (every pair (layer of hit k, layer of hit k+1) that a
particle's consecutive hits make, as the module maps of Exa.TrkX / GNN4ITk, here at the
granularity of layers), with the consecutive barrel layers as the fall-back. A layer is
``volume_id * 100 + layer_id`` (TrackML numbering: 8 / 13 / 17 pixel / short-strip /
long-strip barrels, 7|9, 12|14, 16|18 their endcaps).

Cuts (HEP.TrkX arXiv:1810.06111, Exa.TrkX arXiv:2103.06995), for hits 1 (inner), 2 in
cylindrical coordinates (r, phi, z) [mm, rad]:

- phi slope: ``|dphi| <= phi_slope_max |dr| + dphi_tol``. A track from the beam line has
  phi(r) = phi0 - asin(q r / 2R), so dphi/dr ~ 1 / (2R) = 0.3 B / (2 pT) [1/m]: 0.3e-3
  rad/mm at pT = 1 GeV in 2 T; the default 0.8e-3 keeps pT > ~0.4 GeV.
- z0 = z1 - r1 (z2 - z1) / (r2 - r1) (the line through both hits at r = 0):
  ``|z0| <= z0_max`` where ``|dr| >= dr_min`` (barrel-like pairs);
- eta difference ``|eta2 - eta1| <= deta_max`` (eta = asinh(z / r), seen from the origin;
  it is what limits disk-to-disk pairs where dr ~ 0).

The search is vectorised per layer pair: the outer layer's hits sorted by phi (with copies
at phi +- 2 pi for the wrap), each inner hit's phi window ``phi_slope_max * max|dr| +
dphi_tol`` found with :func:`numpy.searchsorted`, the candidate pairs expanded with
:func:`numpy.repeat`, then the exact cuts. Memory is O(candidates), never O(N^2).

Truth: the hits of a particle (particle_id != 0), ordered by their distance from the
particle's production vertex, make its true edges between consecutive hits. An edge of the
graph is true when it joins two consecutive hits of one particle (either direction).

References: Farrell et al. arXiv:1810.06111; Ju et al. (Exa.TrkX) arXiv:2103.06995;
Amrouche et al. (TrackML) arXiv:1904.06778.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from heplab.errors import ConfigError, DataError
from heplab.events.trackml import TrackMLEvent

__all__ = [
    "BARREL_LAYERS",
    "EventGraph",
    "GraphCuts",
    "LayerPairMap",
    "TruthEdges",
    "build_graph",
    "check_event",
    "hit_coordinates",
    "layer_keys",
    "perfect_graph",
    "truth_edges",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B8 = npt.NDArray[np.bool_]

#: the barrel layers, inside out, as volume * 100 + layer
BARREL_LAYERS: tuple[int, ...] = (802, 804, 806, 808, 1302, 1304, 1306, 1308, 1702, 1704)


def layer_keys(volume_id: npt.ArrayLike, layer_id: npt.ArrayLike) -> I64:
    """Global layer number ``volume_id * 100 + layer_id``."""
    return np.asarray(volume_id, np.int64) * 100 + np.asarray(layer_id, np.int64)


def check_event(event: TrackMLEvent, *, need_truth: bool = False) -> None:
    """Fail fast on an event that cannot be processed (empty, mismatched truth).

    Raises
    ------
    DataError
        No hits, truth rows that do not match the hits one to one, or missing truth
        where ``need_truth``.
    """
    n = len(event.hits.get("hit_id", ()))
    if n == 0:
        raise DataError(f"event {event.event_id}: no hits")
    if event.truth is None:
        if need_truth:
            raise DataError(f"event {event.event_id}: truth is needed but absent")
        return
    nt = len(event.truth["particle_id"])
    if nt != n:
        raise DataError(f"event {event.event_id}: {n} hits but {nt} truth rows")
    if not np.array_equal(np.asarray(event.truth["hit_id"]), np.asarray(event.hits["hit_id"])):
        raise DataError(f"event {event.event_id}: truth hit_id does not match the hits")


def hit_coordinates(event: TrackMLEvent) -> dict[str, np.ndarray]:
    """Cylindrical coordinates of the hits: r, phi, z, eta (float64; mm, rad), layer."""
    x = np.asarray(event.hits["x"], np.float64)
    y = np.asarray(event.hits["y"], np.float64)
    z = np.asarray(event.hits["z"], np.float64)
    r = np.hypot(x, y)
    return {
        "x": x,
        "y": y,
        "r": r,
        "phi": np.arctan2(y, x),
        "z": z,
        "eta": np.arcsinh(z / np.maximum(r, 1e-9)),
        "layer": layer_keys(event.hits["volume_id"], event.hits["layer_id"]),
    }


@dataclass
class TruthEdges:
    """The true consecutive-hit pairs of an event and what the graph metrics need.

    ``edges`` (2, T) hit rows (inner, outer by distance from the vertex); ``pt`` (T,) the
    particle pT [GeV] of each; per hit: ``pid`` (0 = noise), ``rank`` (position along its
    particle, -1 for noise) and ``hit_pt`` (its particle's pT).
    """

    edges: I64
    pt: F64
    pid: I64
    rank: I64
    hit_pt: F64

    def is_true(self, edge_index: I64) -> B8:
        """Whether each edge (2, E) joins consecutive hits of one particle."""
        a, b = edge_index
        same = (self.pid[a] == self.pid[b]) & (self.pid[a] != 0)
        return same & (np.abs(self.rank[a] - self.rank[b]) == 1)


def _particle_lookup(event: TrackMLEvent, pid: I64) -> tuple[F64, F64, F64, F64] | None:
    """Per hit: the production vertex (vx, vy, vz) and pT of its particle, if known."""
    p = event.particles
    if p is None or len(p["particle_id"]) == 0:
        return None
    ids = np.asarray(p["particle_id"], np.int64)
    order = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[order], pid), 0, len(ids) - 1)
    row = order[pos]
    found = ids[row] == pid
    if not found[pid != 0].all():
        return None
    get = {k: np.where(found, np.asarray(p[k], np.float64)[row], 0.0) for k in p}
    return get["vx"], get["vy"], get["vz"], np.hypot(get["px"], get["py"])


def truth_edges(event: TrackMLEvent) -> TruthEdges:
    """True edges of an event (see the module doc).

    The hit order along a particle is by the distance of the true position (tx, ty, tz)
    from the production vertex (the particles table's vx, vy, vz; the origin if absent).
    pT comes from the particles table, else from the truth momentum at the hit.

    Raises
    ------
    DataError
        If the event has no truth or the truth does not match the hits.
    """
    check_event(event, need_truth=True)
    t = event.truth
    assert t is not None
    pid = np.asarray(t["particle_id"], np.int64)
    tx, ty, tz = (np.asarray(t[k], np.float64) for k in ("tx", "ty", "tz"))
    looked = _particle_lookup(event, pid)
    if looked is None:
        vx = vy = vz = np.zeros(len(pid))
        hit_pt = np.hypot(np.asarray(t["tpx"], np.float64), np.asarray(t["tpy"], np.float64))
        # one pT per particle: the largest seen along it (energy loss lowers it)
        uniq, inv = np.unique(pid, return_inverse=True)
        best = np.zeros(len(uniq))
        np.maximum.at(best, inv, hit_pt)
        hit_pt = best[inv]
    else:
        vx, vy, vz, hit_pt = looked
    dist = np.sqrt((tx - vx) ** 2 + (ty - vy) ** 2 + (tz - vz) ** 2)
    real = np.nonzero(pid != 0)[0]
    order = real[np.lexsort((dist[real], pid[real]))]
    sp = pid[order]
    start = np.r_[True, sp[1:] != sp[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    rank = np.full(len(pid), -1, np.int64)
    rank[order] = np.arange(len(order)) - group_start
    consecutive = ~start[1:]
    edges = np.stack([order[:-1][consecutive], order[1:][consecutive]]).astype(np.int64)
    if edges.size == 0:
        edges = np.zeros((2, 0), np.int64)
    return TruthEdges(
        edges=edges,
        pt=hit_pt[edges[0]],
        pid=pid,
        rank=rank,
        hit_pt=hit_pt,
    )


@dataclass
class GraphCuts:
    """Geometric cuts of :func:`build_graph` (rad, mm; see the module doc)."""

    phi_slope_max: float = 0.8e-3
    dphi_tol: float = 0.01
    z0_max: float = 250.0
    dr_min: float = 20.0
    deta_max: float = 0.6

    def __post_init__(self) -> None:
        if min(self.phi_slope_max, self.z0_max, self.deta_max, self.dr_min) <= 0:
            raise ConfigError(f"graph cuts must be positive: {self}")
        if self.dphi_tol < 0:
            raise ConfigError(f"dphi_tol must be >= 0, not {self.dphi_tol}")


def _pair_quantities(src: I64, dst: I64, c: dict[str, np.ndarray]) -> tuple[F64, F64, F64]:
    """phi slope dphi / (|dr| + 1 mm), z0 (NaN where |dr| < 1 mm) and deta of edges."""
    dr = c["r"][dst] - c["r"][src]
    dz = c["z"][dst] - c["z"][src]
    dphi = _wrap(c["phi"][dst] - c["phi"][src])
    slope = dphi / (np.abs(dr) + 1.0)
    safe = np.abs(dr) >= 1.0
    z0 = np.where(safe, c["z"][src] - c["r"][src] * dz / np.where(safe, dr, 1.0), np.nan)
    return slope, z0, c["eta"][dst] - c["eta"][src]


def _window(q: F64, quantile: float) -> list[float]:
    """[lo, hi] per column of ``q`` (NaNs ignored), widened by 20 %; flat list of 6."""
    out: list[float] = []
    for col in q.T:
        col = col[np.isfinite(col)]
        if len(col) == 0:
            out += [-1e30, 1e30]  # no cut (finite: standard JSON)
            continue
        lo, hi = np.quantile(col, [quantile, 1.0 - quantile])
        pad = 0.2 * (hi - lo) + 1e-12
        out += [float(lo - pad), float(hi + pad)]
    return out


@dataclass
class LayerPairMap:
    """Which layer follows which along tracks: directed pairs (inner, outer) of layer keys.

    ``counts`` holds how many true edges of the training events made each pair (0 for the
    hard-coded fall-back).
    """

    pairs: list[tuple[int, int]]
    counts: list[int] = field(default_factory=list)
    windows: list[list[float] | None] | None = None

    @classmethod
    def barrel(cls) -> LayerPairMap:
        """The fall-back: consecutive barrel layers only."""
        pairs = list(itertools.pairwise(BARREL_LAYERS))
        return cls(pairs=pairs, counts=[0] * len(pairs))

    @classmethod
    def learn(
        cls,
        events: Iterable[TrackMLEvent],
        *,
        min_count: int = 1,
        pt_min: float = 0.0,
        windows: bool = False,
        window_pt_min: float = 0.5,
        window_quantile: float = 0.002,
        window_min_edges: int = 20,
    ) -> LayerPairMap:
        """Learn the pairs from the true edges (of particles with pT > ``pt_min``) of
        ``events``; pairs seen fewer than ``min_count`` times are dropped. Same-layer pairs
        (overlapping modules) are kept.

        With ``windows``, each pair with >= ``window_min_edges`` true edges of particles
        with pT > ``window_pt_min`` also gets its own cut windows, the module-map idea of
        GNN4ITk at layer granularity: the [q, 1 - q] quantiles (q = ``window_quantile``) of
        the phi slope dphi / (|dr| + 1 mm), of z0 (where |dr| >= 1 mm) and of deta of those
        edges, each widened by 20 % of its width; :func:`build_graph` applies them on top
        of the global cuts.

        Raises
        ------
        DataError
            If no event has a true edge.
        """
        if min_count < 1:
            raise ConfigError(f"min_count must be >= 1, not {min_count}")
        if not 0 <= window_quantile < 0.5:
            raise ConfigError(f"window_quantile must be in [0, 0.5), not {window_quantile}")
        tally: dict[tuple[int, int], int] = {}
        values: dict[tuple[int, int], list[np.ndarray]] = {}
        for ev in events:
            te = truth_edges(ev)
            layer = layer_keys(ev.hits["volume_id"], ev.hits["layer_id"])
            keep = te.pt > pt_min
            a, b = layer[te.edges[0][keep]], layer[te.edges[1][keep]]
            uniq, cnt = np.unique(np.stack([a, b], 1), axis=0, return_counts=True)
            for (la, lb), c in zip(uniq.tolist(), cnt.tolist(), strict=True):
                tally[(la, lb)] = tally.get((la, lb), 0) + c
            if windows:
                sig = te.pt > window_pt_min
                src, dst = te.edges[0][sig], te.edges[1][sig]
                q = np.stack(_pair_quantities(src, dst, hit_coordinates(ev)), 1)
                la, lb = layer[src], layer[dst]
                key = la * 10**6 + lb
                order = np.argsort(key, kind="stable")
                ks, starts = np.unique(key[order], return_index=True)
                ends = [*starts[1:], len(order)]
                for k, s0, s1 in zip(ks.tolist(), starts, ends, strict=True):
                    values.setdefault((k // 10**6, k % 10**6), []).append(q[order[s0:s1]])
        if not tally:
            raise DataError("no true edges in the training events: cannot learn a layer map")
        items = sorted((p, c) for p, c in tally.items() if c >= min_count)
        pmap = cls(pairs=[p for p, _ in items], counts=[c for _, c in items])
        if windows:
            pmap.windows = [
                _window(np.concatenate(values[p]), window_quantile)
                if p in values and sum(len(v) for v in values[p]) >= window_min_edges
                else None
                for p in pmap.pairs
            ]
        return pmap

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pairs": [list(p) for p in self.pairs],
            "counts": list(self.counts),
        }
        if self.windows is not None:
            out["windows"] = self.windows
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerPairMap:
        try:
            pairs = [(int(a), int(b)) for a, b in data["pairs"]]
            counts = [int(c) for c in data.get("counts", [0] * len(pairs))]
            win = data.get("windows")
            windows = (
                [None if w is None else [float(v) for v in w] for w in win]
                if win is not None
                else None
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a layer-pair map: {exc}") from exc
        if windows is not None and len(windows) != len(pairs):
            raise DataError("not a layer-pair map: one window per pair expected")
        return cls(pairs=pairs, counts=counts, windows=windows)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass
class EventGraph:
    """The candidate-edge graph of one event.

    ``edge_index`` (2, E) hit rows (inner -> outer); ``coords`` the hits' r, phi, z, eta
    (:func:`hit_coordinates`); ``y`` (E,) true-edge flags and ``truth`` the event's true
    edges when the event has truth, else None.
    """

    event_id: int
    hit_id: I64
    coords: dict[str, np.ndarray]
    edge_index: I64
    y: B8 | None = None
    truth: TruthEdges | None = None

    @classmethod
    def from_edges(
        cls, event: TrackMLEvent, coords: dict[str, np.ndarray], edges: npt.ArrayLike
    ) -> EventGraph:
        """The graph of ``event`` with candidate ``edges`` (2, E) over its hit rows, with
        truth flags when the event has truth (shared by every graph builder)."""
        edge_index = np.asarray(edges, np.int64)
        truth = truth_edges(event) if event.truth is not None else None
        return cls(
            event_id=int(event.event_id),
            hit_id=np.asarray(event.hits["hit_id"], np.int64),
            coords=coords,
            edge_index=edge_index,
            y=truth.is_true(edge_index) if truth is not None else None,
            truth=truth,
        )

    @property
    def num_nodes(self) -> int:
        return len(self.hit_id)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def edge_pt(self) -> F64 | None:
        """Particle pT of each edge's inner hit (meaningful for true edges)."""
        if self.truth is None:
            return None
        return self.truth.hit_pt[self.edge_index[0]]


def _wrap(dphi: F64) -> F64:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def _pair_candidates(
    ia: I64, ib: I64, c: dict[str, np.ndarray], cuts: GraphCuts
) -> tuple[I64, I64]:
    """Candidate (inner, outer) pairs between the hits ``ia`` and ``ib`` (see module doc)."""
    r, phi = c["r"], c["phi"]
    ob = ib[np.argsort(phi[ib], kind="stable")]
    pb = phi[ob]
    ext_phi = np.concatenate([pb - 2 * np.pi, pb, pb + 2 * np.pi])
    ext_idx = np.concatenate([ob, ob, ob])
    rb_lo, rb_hi = float(r[ib].min()), float(r[ib].max())
    ra = r[ia]
    half = cuts.phi_slope_max * np.maximum(np.abs(rb_hi - ra), np.abs(rb_lo - ra)) + cuts.dphi_tol
    half = np.minimum(half, np.pi)
    lo = np.searchsorted(ext_phi, phi[ia] - half, side="left")
    hi = np.searchsorted(ext_phi, phi[ia] + half, side="right")
    # a full-circle window would see each hit three times: keep one turn
    hi = np.minimum(hi, lo + len(ob))
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src = np.repeat(ia, counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    dst = ext_idx[np.repeat(lo, counts) + offset]
    return src.astype(np.int64), dst.astype(np.int64)


def _apply_cuts(src: I64, dst: I64, c: dict[str, np.ndarray], cuts: GraphCuts) -> B8:
    r, phi, z, eta = c["r"], c["phi"], c["z"], c["eta"]
    dr = r[dst] - r[src]
    dz = z[dst] - z[src]
    dphi = _wrap(phi[dst] - phi[src])
    ok = np.abs(dphi) <= cuts.phi_slope_max * np.abs(dr) + cuts.dphi_tol
    ok &= np.abs(eta[dst] - eta[src]) <= cuts.deta_max
    long_lever = np.abs(dr) >= cuts.dr_min
    # |z1 dr - r1 dz| <= z0_max |dr|  <=>  |z0| <= z0_max (no division)
    z0_ok = np.abs(z[src] * dr - r[src] * dz) <= cuts.z0_max * np.abs(dr)
    ok &= ~long_lever | z0_ok
    ok &= src != dst
    return ok


def build_graph(
    event: TrackMLEvent,
    pair_map: LayerPairMap | None = None,
    cuts: GraphCuts | None = None,
) -> EventGraph:
    """The geometric graph of ``event`` (module doc); truth flags when the event has truth.

    Raises
    ------
    DataError
        An event without hits, truth that does not match the hits, or a graph without a
        single edge (nothing downstream could work on it).
    """
    check_event(event)
    pmap = pair_map or LayerPairMap.barrel()
    cuts = cuts or GraphCuts()
    c = hit_coordinates(event)
    layer = c["layer"]
    order = np.argsort(layer, kind="stable")
    keys, starts = np.unique(layer[order], return_index=True)
    bounds = dict(
        zip(keys.tolist(), zip(starts, [*starts[1:], len(order)], strict=True), strict=True)
    )
    srcs, dsts = [], []
    for k, (la, lb) in enumerate(pmap.pairs):
        if la not in bounds or lb not in bounds:
            continue
        ia = order[slice(*bounds[la])]
        ib = order[slice(*bounds[lb])]
        s, d = _pair_candidates(ia, ib, c, cuts)
        ok = _apply_cuts(s, d, c, cuts)
        window = pmap.windows[k] if pmap.windows is not None else None
        if window is not None:
            slope, z0, deta = _pair_quantities(s, d, c)
            w = window
            ok &= (slope >= w[0]) & (slope <= w[1]) & (deta >= w[4]) & (deta <= w[5])
            ok &= np.isnan(z0) | ((z0 >= w[2]) & (z0 <= w[3]))
        srcs.append(s[ok])
        dsts.append(d[ok])
    if srcs:
        edges = np.stack([np.concatenate(srcs), np.concatenate(dsts)])
        # the same hit pair from two layer pairs (e.g. (A, B) and (B, A)): keep one
        lo_hi = np.sort(edges, axis=0)
        _, first = np.unique(lo_hi[0] * len(layer) + lo_hi[1], return_index=True)
        edges = edges[:, np.sort(first)]
    else:
        edges = np.zeros((2, 0), np.int64)
    if edges.shape[1] == 0:
        raise DataError(
            f"event {event.event_id}: the geometric graph has no edge "
            f"({len(layer)} hits, {len(pmap.pairs)} layer pairs): wrong layer map or cuts?"
        )
    return EventGraph.from_edges(event, c, edges)


def perfect_graph(event: TrackMLEvent) -> EventGraph:
    """The truth oracle: a graph of exactly the true edges (efficiency = purity = 1)."""
    truth = truth_edges(event)
    if truth.edges.shape[1] == 0:
        raise DataError(f"event {event.event_id}: no true edges for the perfect graph")
    return EventGraph(
        event_id=int(event.event_id),
        hit_id=np.asarray(event.hits["hit_id"], np.int64),
        coords=hit_coordinates(event),
        edge_index=truth.edges.copy(),
        y=np.ones(truth.edges.shape[1], bool),
        truth=truth,
    )
