"""Triplet seeding and track following: the classical combinatorial baseline.

Both steps walk the edges of a geometric graph (:func:`~heplab.reconstruction.tracking.
graph.build_graph`: adjacent-layer pairs with phi-slope / z0 cuts), vectorised over all
seeds at once.

Seeds: triplets (a -> b -> c) of two graph edges sharing the middle hit, with the first
hit in the pixel detector (TrackML volumes 7, 8, 9), kept when

- the circle through the three hits in x-y has a radius R >= pT_min / (0.3e-3 B) mm
  (pT = 0.3e-3 B R GeV, B in T, R in mm);
- its transverse impact parameter | |c| - R | (c the circle centre) is below ``d0_max``:
  the track comes from the beam line;
- the two segments have the same slope in (chord, z): |cot1 - cot2| <= ``cot_tol``
  (1 + cot1^2), cot = dz / chord length in x-y (a straight line in s-z; the (1 + cot^2)
  scales the tolerance with the longer path at large |eta|).

Following: each candidate keeps its last three hits; the next hit is the graph successor
of its last hit that lies closest to the circle through those three hits (distance
``xy_res`` in mm) and to the extrapolated s-z slope (``dcot``), scored
(xy_res / xy_tol)^2 + (dcot / (cot_tol (1 + cot^2)))^2 and accepted when both are within
tolerance; a candidate stops when no successor passes. Finally the candidates, longest
first (then the best mean score), claim their hits; a candidate keeping fewer than
``min_hits`` free hits is dropped (as in the Hough baseline).

References: the ATLAS / ACTS seed finders (triplets on space points, ACTS arXiv:2106.13593)
and combinatorial Kalman filters, here with circle / line extrapolation instead of a
Kalman filter; Amrouche et al. (TrackML) arXiv:1904.06778.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.errors import ConfigError
from heplab.reconstruction.tracking.graph import EventGraph

__all__ = ["SeedingConfig", "circle_through", "find_seeds", "follow_tracks", "seeding_tracks"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PIXEL_VOLUMES = (7, 8, 9)


@dataclass
class SeedingConfig:
    """Cuts of the seed finder and the track following (GeV, mm, T)."""

    pt_min: float = 0.5
    d0_max: float = 2.0
    cot_tol: float = 0.02
    xy_tol: float = 1.0
    min_hits: int = 5
    max_steps: int = 25
    b_field: float = 2.0

    def __post_init__(self) -> None:
        if min(self.pt_min, self.d0_max, self.cot_tol, self.xy_tol, self.b_field) <= 0:
            raise ConfigError(f"seeding cuts must be > 0: {self}")
        if self.min_hits < 3 or self.max_steps < 0:
            raise ConfigError("min_hits must be >= 3 and max_steps >= 0")


def circle_through(x1: F64, y1: F64, x2: F64, y2: F64, x3: F64, y3: F64) -> tuple[F64, F64, F64]:
    """Centre (xc, yc) and radius of the circles through three points (inf if collinear)."""
    d = 2.0 * (x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2))
    s1, s2, s3 = x1**2 + y1**2, x2**2 + y2**2, x3**2 + y3**2
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = (s1 * (y2 - y3) + s2 * (y3 - y1) + s3 * (y1 - y2)) / d
        yc = (s1 * (x3 - x2) + s2 * (x1 - x3) + s3 * (x2 - x1)) / d
    radius = np.hypot(x1 - xc, y1 - yc)
    bad = ~np.isfinite(radius)
    return (np.where(bad, np.inf, xc), np.where(bad, np.inf, yc), np.where(bad, np.inf, radius))


def _cot(x: F64, y: F64, z: F64, a: I64, b: I64) -> F64:
    chord = np.hypot(x[b] - x[a], y[b] - y[a])
    return (z[b] - z[a]) / np.maximum(chord, 1e-6)


def _csr(n: int, edge_index: I64) -> tuple[I64, I64]:
    order = np.argsort(edge_index[0], kind="stable")
    dst = edge_index[1][order]
    indptr = np.r_[0, np.cumsum(np.bincount(edge_index[0], minlength=n))]
    return indptr, dst


def _successors(indptr: I64, dst: I64, nodes: I64) -> tuple[I64, I64]:
    """(position in ``nodes``, successor hit) for every out-edge of each node."""
    start, count = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
    total = int(count.sum())
    owner = np.repeat(np.arange(len(nodes)), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return owner, dst[np.repeat(start, count) + offset]


def find_seeds(graph: EventGraph, volume_id: npt.ArrayLike, cfg: SeedingConfig) -> I64:
    """(S, 3) hit rows of the triplet seeds (module doc)."""
    c = graph.coords
    x, y, z = c["x"], c["y"], c["z"]
    n = graph.num_nodes
    indptr, dst = _csr(n, graph.edge_index)
    vol = np.asarray(volume_id)
    first = graph.edge_index[:, np.isin(vol[graph.edge_index[0]], PIXEL_VOLUMES)]
    owner, third = _successors(indptr, dst, first[1])
    a, b, cc = first[0][owner], first[1][owner], third
    xc, yc, radius = circle_through(x[a], y[a], x[b], y[b], x[cc], y[cc])
    r_min = cfg.pt_min / (0.3e-3 * cfg.b_field)
    ok = radius >= r_min
    d0 = np.where(np.isfinite(radius), np.abs(np.hypot(xc, yc) - radius), 0.0)
    ok &= d0 <= cfg.d0_max
    cot1, cot2 = _cot(x, y, z, a, b), _cot(x, y, z, b, cc)
    ok &= np.abs(cot1 - cot2) <= cfg.cot_tol * (1.0 + cot1**2)
    return np.stack([a[ok], b[ok], cc[ok]], 1).astype(np.int64)


def follow_tracks(graph: EventGraph, seeds: I64, cfg: SeedingConfig) -> tuple[list[I64], F64]:
    """Extend the seeds along the graph (module doc): (hits per candidate, mean score)."""
    c = graph.coords
    x, y, z = c["x"], c["y"], c["z"]
    indptr, dst = _csr(graph.num_nodes, graph.edge_index)
    hits = [seeds[:, k].copy() for k in range(3)]
    score_sum = np.zeros(len(seeds))
    n_steps = np.zeros(len(seeds))
    active = np.arange(len(seeds))
    for _ in range(cfg.max_steps):
        if len(active) == 0:
            break
        h1, h2, h3 = (hits[-k][active] for k in (3, 2, 1))
        xc, yc, radius = circle_through(x[h1], y[h1], x[h2], y[h2], x[h3], y[h3])
        cot = _cot(x, y, z, h2, h3)
        owner, cand = _successors(indptr, dst, h3)
        if len(owner) == 0:
            break
        straight = ~np.isfinite(radius[owner])
        res_circle = np.abs(np.hypot(x[cand] - xc[owner], y[cand] - yc[owner]) - radius[owner])
        # a straight segment: distance from the line through h2, h3
        dx, dy = x[h3] - x[h2], y[h3] - y[h2]
        norm = np.maximum(np.hypot(dx, dy), 1e-9)
        res_line = np.abs(
            (x[cand] - x[h3[owner]]) * dy[owner] - (y[cand] - y[h3[owner]]) * dx[owner]
        )
        xy_res = np.where(straight, res_line / norm[owner], np.nan_to_num(res_circle, nan=np.inf))
        dcot = np.abs(_cot(x, y, z, h3[owner], cand) - cot[owner])
        cot_tol = cfg.cot_tol * (1.0 + cot[owner] ** 2)
        score = (xy_res / cfg.xy_tol) ** 2 + (dcot / cot_tol) ** 2
        ok = (xy_res <= cfg.xy_tol) & (dcot <= cot_tol)
        owner, cand, score = owner[ok], cand[ok], score[ok]
        order = np.lexsort((score, owner))
        best = order[np.r_[True, owner[order][1:] != owner[order][:-1]]] if len(order) else order
        nxt = np.full(len(active), -1, np.int64)
        nxt[owner[best]] = cand[best]
        step_score = np.zeros(len(active))
        step_score[owner[best]] = score[best]
        column = np.full(len(seeds), -1, np.int64)
        column[active] = nxt
        hits.append(column)
        score_sum[active] += step_score
        n_steps[active] += nxt >= 0
        # a candidate without a successor stops (its column holds -1 from here on)
        active = active[nxt >= 0]
    table = np.stack(hits, 1)
    tracks = [row[row >= 0] for row in table]
    mean_score = score_sum / np.maximum(n_steps, 1)
    return tracks, mean_score


def seeding_tracks(
    graph: EventGraph, volume_id: npt.ArrayLike, config: SeedingConfig | None = None
) -> I64:
    """Candidate label of each hit (-1: unassigned) from seeding + following."""
    cfg = config or SeedingConfig()
    labels = np.full(graph.num_nodes, -1, np.int64)
    seeds = find_seeds(graph, volume_id, cfg)
    if len(seeds) == 0:
        return labels
    tracks, mean_score = follow_tracks(graph, seeds, cfg)
    length = np.array([len(t) for t in tracks])
    order = np.lexsort((mean_score, -length))
    for i in order:
        if length[i] < cfg.min_hits:
            break
        t = tracks[i]
        free = t[labels[t] < 0]
        if len(free) >= cfg.min_hits:
            labels[free] = i
    return labels
