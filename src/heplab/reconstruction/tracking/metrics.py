"""Per-stage metrics of track finding: edges (graph, classifier) and tracks.

Edges, per pT threshold c (0.5 and 1 GeV; the pT of the particle of an edge's hits):

- efficiency = selected true edges with pT > c / true edges with pT > c that the stage
  could have kept (its input graph's; for the graph stage: all true edges of the event);
- total efficiency = selected true edges with pT > c / all true edges of the event (the
  efficiency of the chain up to this stage);
- purity = selected true edges with pT > c / (selected edges - selected true edges with
  pT <= c): true edges of softer particles count neither as signal nor as fakes.

Tracks (the definitions of the TrackML paper arXiv:1904.06778 and Exa.TrkX
arXiv:2103.06995): a track *matches* particle p when more than half of its hits are p's; a
particle (pT > ``pt_min``, >= ``min_hits`` hits, noise excluded) is *found* when a matching
track also holds more than half of p's hits. Track efficiency = found / eligible particles;
fake rate = tracks (>= ``min_track_hits`` hits) matching no particle / all such tracks;
duplicate rate = (tracks matching an eligible particle - distinct particles so matched) /
tracks matching an eligible particle. Counts add over events (:class:`EdgeTally`,
:class:`TrackTally` support ``+``), so the rates are ratios of sums, not means of ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.graph import EventGraph, truth_edges

__all__ = ["PT_CUTS", "EdgeTally", "TrackTally", "tally_edges", "tally_tracks"]

PT_CUTS: tuple[float, ...] = (0.5, 1.0)


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


@dataclass
class EdgeTally:
    """Edge counts per pT threshold (arrays indexed like ``pt_cuts``)."""

    pt_cuts: tuple[float, ...]
    truth: np.ndarray
    candidates: np.ndarray
    selected_true: np.ndarray
    selected_soft: np.ndarray
    selected: int

    def __add__(self, other: EdgeTally) -> EdgeTally:
        if self.pt_cuts != other.pt_cuts:
            raise ValueError("cannot add edge tallies of different pT thresholds")
        return EdgeTally(
            self.pt_cuts,
            self.truth + other.truth,
            self.candidates + other.candidates,
            self.selected_true + other.selected_true,
            self.selected_soft + other.selected_soft,
            self.selected + other.selected,
        )

    def summary(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}efficiency_pt1``, ``{prefix}purity_pt1``, ... (module doc)."""
        out: dict[str, float] = {f"{prefix}edges": float(self.selected)}
        for k, c in enumerate(self.pt_cuts):
            tag = f"pt{c:g}"
            out[f"{prefix}efficiency_{tag}"] = _ratio(self.selected_true[k], self.candidates[k])
            out[f"{prefix}total_efficiency_{tag}"] = _ratio(self.selected_true[k], self.truth[k])
            out[f"{prefix}purity_{tag}"] = _ratio(
                self.selected_true[k], self.selected - self.selected_soft[k]
            )
        return out


def tally_edges(
    graph: EventGraph,
    selected: npt.NDArray[np.bool_] | None = None,
    pt_cuts: tuple[float, ...] = PT_CUTS,
) -> EdgeTally:
    """Count the graph's edges (``selected`` is None) or a selection of them.

    Raises
    ------
    ValueError
        If the graph has no truth or ``selected`` does not have one flag per edge.
    """
    if graph.truth is None or graph.y is None:
        raise ValueError(f"event {graph.event_id}: edge metrics need truth")
    pt = graph.truth.hit_pt[graph.edge_index[0]]
    y = graph.y
    cuts = np.asarray(pt_cuts)
    truth = (graph.truth.pt[None, :] > cuts[:, None]).sum(1)
    candidates = ((pt[None, :] > cuts[:, None]) & y[None, :]).sum(1)
    if selected is None:
        sel = np.ones(len(y), bool)
        candidates = truth
    else:
        sel = np.asarray(selected, bool)
        if sel.shape != y.shape:
            raise ValueError(f"selected has shape {sel.shape}, the graph {y.shape} edges")
    hard = pt[None, :] > cuts[:, None]
    sel_true = (hard & (y & sel)[None, :]).sum(1)
    sel_soft = (~hard & (y & sel)[None, :]).sum(1)
    return EdgeTally(tuple(pt_cuts), truth, candidates, sel_true, sel_soft, int(sel.sum()))


@dataclass
class TrackTally:
    """Track-level counts (module doc); ``+`` adds events."""

    particles: int = 0
    found: int = 0
    tracks: int = 0
    fakes: int = 0
    matched: int = 0
    duplicates: int = 0

    def __add__(self, other: TrackTally) -> TrackTally:
        return TrackTally(
            self.particles + other.particles,
            self.found + other.found,
            self.tracks + other.tracks,
            self.fakes + other.fakes,
            self.matched + other.matched,
            self.duplicates + other.duplicates,
        )

    def summary(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}track_efficiency": _ratio(self.found, self.particles),
            f"{prefix}fake_rate": _ratio(self.fakes, self.tracks),
            f"{prefix}duplicate_rate": _ratio(self.duplicates, self.matched),
            f"{prefix}tracks": float(self.tracks),
            f"{prefix}particles": float(self.particles),
        }


def tally_tracks(
    event: TrackMLEvent,
    track_id: npt.ArrayLike,
    *,
    pt_min: float = 1.0,
    min_hits: int = 5,
    min_track_hits: int = 3,
) -> TrackTally:
    """Count found particles, fakes and duplicates of one event's track assignment.

    ``track_id`` has one entry per hit (row order of ``event.hits``).

    Raises
    ------
    ValueError
        If ``track_id`` does not have one entry per hit.
    """
    te = truth_edges(event)
    tid = np.asarray(track_id, np.int64)
    if tid.shape != te.pid.shape:
        raise ValueError(f"{len(tid)} track ids for {len(te.pid)} hits")
    pid = te.pid
    _, tinv, tsize = np.unique(tid, return_inverse=True, return_counts=True)
    puniq, pinv, psize = np.unique(pid, return_inverse=True, return_counts=True)
    # per particle: eligible?
    ppt = np.zeros(len(puniq))
    ppt[pinv] = te.hit_pt
    eligible = (ppt > pt_min) & (psize >= min_hits) & (puniq != 0)
    # (track, particle) pairs and their shared hits
    pair = tinv.astype(np.int64) * len(puniq) + pinv
    pu, shared = np.unique(pair, return_counts=True)
    pt_idx, pp_idx = pu // len(puniq), pu % len(puniq)
    real = puniq[pp_idx] != 0
    majority = real & (2 * shared > tsize[pt_idx])
    found = majority & (2 * shared > psize[pp_idx])
    found_particles = np.unique(pp_idx[found & eligible[pp_idx]])
    big = tsize >= min_track_hits
    matched_tracks = np.zeros(len(tsize), bool)
    matched_tracks[pt_idx[majority]] = True
    to_eligible = majority & eligible[pp_idx] & big[pt_idx]
    n_matched = int(to_eligible.sum())
    return TrackTally(
        particles=int(eligible.sum()),
        found=len(found_particles),
        tracks=int(big.sum()),
        fakes=int((big & ~matched_tracks).sum()),
        matched=n_matched,
        duplicates=n_matched - len(np.unique(pp_idx[to_eligible])),
    )
