"""Similarity hashing: candidate edges from hits that share a hash bucket.

Graph construction by approximate nearest neighbours (Amrouche et al., "Hashing and metric
learning for charged particle tracking", arXiv:2101.06428): instead of testing every pair
of hits on adjacent layers, the hits are hashed into buckets of a few tens of hits by
locality-sensitive hashing (LSH), so that hits of one track tend to land in one bucket;
the candidate edges are the pairs of hits in the same bucket on adjacent layers. Several
independent hash tables are OR'd: an edge cut by a bucket boundary in one table is kept by
another.

Hashing (:func:`hash_buckets`), per table, of the hit embeddings f (N, D):

- m random projections p_j = f . a_j, a_j ~ N(0, 1)^D (random-projection LSH);
- hierarchical equal-population binning: the hits are cut into B bins by the rank of p_1,
  each bin into B bins by the rank of p_2 within it, ..., with
  B = round((N / bucket_size)^(1/m)), so every bucket holds about ``bucket_size`` hits;
  the bin edges are shifted by a random fraction of a bin in every table (bins rank r of g
  hits: floor(B r / g + u), u ~ U(0, 1)); hits with equal projections share a rank, so
  identical embeddings always share a bucket.

Embeddings: the default, :func:`direction_embedding`, is the hit's direction seen from
the beam line, f = (cos phi, sin phi, w_eta eta) (eta = asinh(z / r) from the origin;
``eta_weight`` w_eta sets how much eta counts against phi: a vertex displaced by dz moves
the eta of a hit at radius r by about dz / (r cosh eta), which is large on the inner
pixel layers, so eta weighs less than phi by default). A learned embedding (a metric-
learning network, Exa.TrkX arXiv:2103.06995) is any callable ``event -> (N, D)`` array.

Candidate edges (:func:`hash_graph`): pairs (i, j) in one bucket with (layer of i, layer of
j) in the layer-pair map of :mod:`.graph` (:class:`~.graph.LayerPairMap`: consecutive
layers along the tracks, learned from truth, or the barrel fall-back), directed inner ->
outer as the map orders them; the union over the tables, each hit pair once. The result is
an :class:`~.graph.EventGraph` with the truth flags of :func:`~.graph.truth_edges` (true =
consecutive hits of one particle), so the edge classifiers, track building and
:func:`~.metrics.tally_edges` run on it unchanged.

Cost: O(N log N) per table for the hashing, O(candidates) for the pairs (never O(N^2)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.errors import ConfigError, DataError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.graph import (
    EventGraph,
    LayerPairMap,
    check_event,
    hit_coordinates,
)

__all__ = [
    "Embedding",
    "HashConfig",
    "direction_embedding",
    "hash_buckets",
    "hash_graph",
    "pair_counts",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: an embedding: event -> (N hits, D) array
Embedding = Callable[[TrackMLEvent], npt.ArrayLike]


@dataclass(frozen=True)
class HashConfig:
    """Settings of the hashing (module doc).

    ``bucket_size`` mean hits per bucket; ``n_tables`` hash tables OR'd;
    ``n_projections`` random projections per table; ``eta_weight`` of the default
    embedding; ``seed`` of the random projections and offsets.
    """

    bucket_size: float = 30.0
    n_tables: int = 4
    n_projections: int = 2
    eta_weight: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.bucket_size >= 2:
            raise ConfigError(f"bucket_size must be >= 2 hits, not {self.bucket_size}")
        if self.n_tables < 1 or self.n_projections < 1:
            raise ConfigError("n_tables and n_projections must be >= 1")
        if not self.eta_weight >= 0:
            raise ConfigError(f"eta_weight must be >= 0, not {self.eta_weight}")


def direction_embedding(event: TrackMLEvent, eta_weight: float = 0.3) -> F64:
    """(N, 3): cos phi, sin phi, ``eta_weight`` * eta of each hit (module doc)."""
    c = hit_coordinates(event)
    return np.stack([np.cos(c["phi"]), np.sin(c["phi"]), eta_weight * c["eta"]], axis=1)


def hash_buckets(features: npt.ArrayLike, config: HashConfig | None = None) -> I64:
    """Bucket ids (n_tables, N) of the hits with embeddings ``features`` (N, D).

    Raises
    ------
    DataError
        ``features`` not a finite (N, D) array.
    """
    cfg = config or HashConfig()
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or not np.isfinite(f).all():
        raise DataError(f"hash features must be a finite (N, D) array, not shape {f.shape}")
    n, d = f.shape
    rng = np.random.default_rng(cfg.seed)
    m = cfg.n_projections
    n_bins = max(1, round((n / cfg.bucket_size) ** (1.0 / m)))
    out = np.zeros((cfg.n_tables, n), np.int64)
    if n == 0:
        return out
    for t in range(cfg.n_tables):
        proj = f @ rng.standard_normal((d, m))
        key = np.zeros(n, np.int64)
        for j in range(m):
            u = rng.uniform()
            order = np.lexsort((proj[:, j], key))
            sk, sp = key[order], proj[order, j]
            start = np.r_[True, sk[1:] != sk[:-1]]
            first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
            size = np.diff(np.r_[np.flatnonzero(start), n])
            g = np.repeat(size, size)
            # equal projections share the rank of the first of them (and so a bin)
            tie_start = start | np.r_[True, sp[1:] != sp[:-1]]
            rank = np.maximum.accumulate(np.where(tie_start, np.arange(n), 0)) - first
            b = np.floor(n_bins * rank / g + u).astype(np.int64)  # 0 .. n_bins
            new = np.empty(n, np.int64)
            new[order] = sk * (n_bins + 1) + b
            key = np.unique(new, return_inverse=True)[1].astype(np.int64)
        out[t] = key
    return out


def _same_bucket_pairs(ia: I64, ib: I64, ba: I64, bb: I64) -> tuple[I64, I64]:
    """All (a in ia, b in ib) with equal bucket ids ``ba`` / ``bb``."""
    order = np.argsort(bb, kind="stable")
    sb = bb[order]
    lo = np.searchsorted(sb, ba, side="left")
    hi = np.searchsorted(sb, ba, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src = np.repeat(ia, counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    dst = ib[order[np.repeat(lo, counts) + offset]]
    return src.astype(np.int64), dst.astype(np.int64)


def _layer_groups(layer: I64) -> dict[int, I64]:
    order = np.argsort(layer, kind="stable")
    keys, starts = np.unique(layer[order], return_index=True)
    ends = [*starts[1:], len(order)]
    return {int(k): order[s:e] for k, s, e in zip(keys, starts, ends, strict=True)}


def hash_graph(
    event: TrackMLEvent,
    pair_map: LayerPairMap | None = None,
    config: HashConfig | None = None,
    embedding: Embedding | None = None,
) -> EventGraph:
    """The hashing graph of ``event`` (module doc), with truth flags when it has truth.

    ``embedding`` maps the event to (N, D) hit embeddings (default
    :func:`direction_embedding`); ``pair_map`` defaults to the barrel fall-back.

    Raises
    ------
    DataError
        An event without hits or with mismatched truth, an embedding of the wrong shape,
        or a graph without a single edge.
    """
    check_event(event)
    cfg = config or HashConfig()
    pmap = pair_map or LayerPairMap.barrel()
    coords = hit_coordinates(event)
    n = len(event)
    feats = (
        direction_embedding(event, cfg.eta_weight)
        if embedding is None
        else np.asarray(embedding(event), np.float64)
    )
    if feats.ndim != 2 or feats.shape[0] != n:
        raise DataError(
            f"event {event.event_id}: the embedding has shape {feats.shape}, not ({n}, D)"
        )
    buckets = hash_buckets(feats, cfg)
    groups = _layer_groups(coords["layer"])
    keys: list[I64] = []
    for la, lb in pmap.pairs:
        if la not in groups or lb not in groups:
            continue
        ia, ib = groups[la], groups[lb]
        for t in range(cfg.n_tables):
            s, d = _same_bucket_pairs(ia, ib, buckets[t, ia], buckets[t, ib])
            ok = s != d
            keys.append(s[ok] * n + d[ok])
    edges = np.zeros((2, 0), np.int64)
    if keys:
        # first occurrence of each directed pair, then of each unordered hit pair
        uk, first = np.unique(np.concatenate(keys), return_index=True)
        uk = uk[np.argsort(first, kind="stable")]
        src, dst = uk // n, uk % n
        lo_hi = np.minimum(src, dst) * n + np.maximum(src, dst)
        _, keep = np.unique(lo_hi, return_index=True)
        keep = np.sort(keep)
        edges = np.stack([src[keep], dst[keep]]).astype(np.int64)
    if edges.shape[1] == 0:
        raise DataError(
            f"event {event.event_id}: the hashing graph has no edge ({n} hits, "
            f"{len(pmap.pairs)} layer pairs, buckets of {cfg.bucket_size:g}): wrong layer map?"
        )
    return EventGraph.from_edges(event, coords, edges)


def pair_counts(event: TrackMLEvent, pair_map: LayerPairMap | None = None) -> dict[str, int]:
    """The pairs a hashing graph is measured against: ``all_pairs`` N (N - 1) / 2 and
    ``layer_pairs`` (all hit pairs on the layer pairs of the map)."""
    pmap = pair_map or LayerPairMap.barrel()
    layer = hit_coordinates(event)["layer"]
    counts = {int(k): int(c) for k, c in zip(*np.unique(layer, return_counts=True), strict=True)}
    adjacent = sum(counts.get(a, 0) * counts.get(b, 0) for a, b in pmap.pairs if a != b)
    same = sum(counts.get(a, 0) * (counts.get(a, 0) - 1) // 2 for a, b in pmap.pairs if a == b)
    n = len(layer)
    return {"all_pairs": n * (n - 1) // 2, "layer_pairs": adjacent + same}
