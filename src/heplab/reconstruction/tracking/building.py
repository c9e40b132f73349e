"""Track building from scored edges, and the TrackML submission.

- :func:`connected_components`: keep the edges with score > ``cut`` and label the
  connected components of the (undirected) hit graph with
  :func:`scipy.sparse.csgraph.connected_components` (Exa.TrkX arXiv:2103.06995).
- :func:`walkthrough`: a walk along the best edges, vectorised. Each hit keeps its
  outgoing edge (inner -> outer) of highest score above ``cut``; where several hits chose
  the same next hit, only the highest-scoring of those edges stays. Every hit then has at
  most one successor and one predecessor, so the kept edges are disjoint chains: the walks
  that start at hits without a predecessor and follow the best edge layer by layer, with
  the conflicts of Exa.TrkX's walk-through resolved by score instead of by visiting order.
  A connected component that is already a simple chain is the same track either way; the
  walk splits the components where tracks cross.

Labels are per hit (row order of the event's hits). :func:`submission` turns them into the
TrackML submission ``hit_id, track_id``: tracks with fewer than ``min_hits`` hits are
dissolved and **every unassigned hit gets its own track id**. The TrackML scorer
(arXiv:1904.06778; trackml-library) gives no track id a special meaning, so a shared id 0
would make one large track of all leftovers; a singleton can only ever add its own weight
(for a particle with a single hit, which carries no weight), never take any.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as _cc

from heplab.errors import DataError

__all__ = ["connected_components", "submission", "walkthrough"]

I64 = npt.NDArray[np.int64]


def _check(n_hits: int, edge_index: np.ndarray, scores: np.ndarray) -> None:
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise DataError(f"edge_index must have shape (2, E), not {edge_index.shape}")
    if scores.shape != (edge_index.shape[1],):
        raise DataError(f"{len(scores)} scores for {edge_index.shape[1]} edges")
    if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= n_hits):
        raise DataError(f"edge_index refers to hits outside 0..{n_hits - 1}")


def connected_components(
    n_hits: int, edge_index: npt.ArrayLike, scores: npt.ArrayLike, cut: float = 0.5
) -> I64:
    """Component label of each hit, from the edges with score > ``cut`` (module doc).

    Raises
    ------
    DataError
        If no edge passes the cut (nothing to build from) or the shapes disagree.
    """
    ei = np.asarray(edge_index, np.int64)
    s = np.asarray(scores, np.float64)
    _check(n_hits, ei, s)
    keep = s > cut
    if not keep.any():
        raise DataError(f"no edge has a score above {cut}: the edge classifier dropped them all")
    a, b = ei[:, keep]
    adj = sp.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_hits, n_hits)).tocsr()
    _, labels = _cc(adj, directed=False)
    return labels.astype(np.int64)


def walkthrough(
    n_hits: int, edge_index: npt.ArrayLike, scores: npt.ArrayLike, cut: float = 0.5
) -> I64:
    """Chain label of each hit from the best-edge walk (module doc).

    Raises
    ------
    DataError
        If no edge passes the cut or the shapes disagree.
    """
    ei = np.asarray(edge_index, np.int64)
    s = np.asarray(scores, np.float64)
    _check(n_hits, ei, s)
    keep = np.nonzero(s > cut)[0]
    if len(keep) == 0:
        raise DataError(f"no edge has a score above {cut}: the edge classifier dropped them all")
    src, dst, sc = ei[0, keep], ei[1, keep], s[keep]
    # best outgoing edge per source hit: sort by (source, -score), first of each source
    order = np.lexsort((-sc, src))
    first = np.r_[True, src[order][1:] != src[order][:-1]]
    best = order[first]
    # conflicts: several sources chose the same destination -> the highest score wins
    order2 = best[np.lexsort((-sc[best], dst[best]))]
    first2 = np.r_[True, dst[order2][1:] != dst[order2][:-1]]
    chosen = order2[first2]
    a, b = src[chosen], dst[chosen]
    adj = sp.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_hits, n_hits)).tocsr()
    _, labels = _cc(adj, directed=False)
    return labels.astype(np.int64)


def submission(
    hit_id: npt.ArrayLike, labels: npt.ArrayLike, *, min_hits: int = 3
) -> dict[str, np.ndarray]:
    """TrackML submission ``{"hit_id", "track_id"}`` from per-hit labels (module doc).

    Track ids are 1..K for the tracks with >= ``min_hits`` hits (largest first), then
    K+1.. for the single leftover hits.
    """
    hid = np.asarray(hit_id, np.int64)
    lab = np.asarray(labels, np.int64)
    if hid.shape != lab.shape:
        raise DataError(f"{len(lab)} labels for {len(hid)} hits")
    uniq, inv, size = np.unique(lab, return_inverse=True, return_counts=True)
    big = size >= min_hits
    rank = np.argsort(-size, kind="stable")
    new_id = np.zeros(len(uniq), np.int64)
    n_big = int(big.sum())
    big_sorted = rank[big[rank]]
    new_id[big_sorted] = np.arange(1, n_big + 1)
    track = new_id[inv]
    loose = track == 0
    track[loose] = n_big + 1 + np.arange(int(loose.sum()))
    return {"hit_id": hid, "track_id": track}
