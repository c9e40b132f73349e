"""Track finding on TrackML-like silicon-tracker events.

Modules: :mod:`.score` (the TrackML score, arXiv:1904.06778) and the track-finding
pipeline (graph building, GNN edge classification, track building, baselines).
"""

from __future__ import annotations

__all__: list[str] = []

# The track-finding pipeline's numpy-only API (the torch parts: .features, .models,
# .embedding, .pipeline are imported from their modules, so that `.score` stays light).
from heplab.reconstruction.tracking.building import (
    connected_components,
    submission,
    walkthrough,
)
from heplab.reconstruction.tracking.graph import (
    EventGraph,
    GraphCuts,
    LayerPairMap,
    build_graph,
    perfect_graph,
    truth_edges,
)
from heplab.reconstruction.tracking.helix import fit_helix, fit_tracks, track_residuals
from heplab.reconstruction.tracking.hough import HoughConfig, hough_tracks
from heplab.reconstruction.tracking.metrics import tally_edges, tally_tracks
from heplab.reconstruction.tracking.seeding import SeedingConfig, seeding_tracks

__all__ += [
    "EventGraph",
    "GraphCuts",
    "HoughConfig",
    "LayerPairMap",
    "SeedingConfig",
    "build_graph",
    "connected_components",
    "fit_helix",
    "fit_tracks",
    "hough_tracks",
    "perfect_graph",
    "seeding_tracks",
    "submission",
    "tally_edges",
    "tally_tracks",
    "track_residuals",
    "truth_edges",
    "walkthrough",
]
