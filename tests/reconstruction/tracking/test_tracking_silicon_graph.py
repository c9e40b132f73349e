"""The graph and track building on heplab's own TrackML-like simulation (multiple
scattering, merged pixel clusters, noise, TrackML weights), not only on the toys."""

from __future__ import annotations

import numpy as np
import pytest

from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.graph import LayerPairMap, build_graph
from heplab.reconstruction.tracking.metrics import tally_edges, tally_tracks
from heplab.reconstruction.tracking.pipeline import reconstruct, reconstruct_event
from heplab.reconstruction.tracking.score import score_event

silicon = pytest.importorskip("heplab.detector.silicon")


def collision_event(seed: int, n_charged: int = 150) -> TrackMLEvent:
    """Charged pions (pT 0.1 + Exp(1.5 GeV), |eta| < 3.5) from one vertex near z = 0."""
    rng = np.random.default_rng(seed)
    pt = 0.1 + rng.exponential(1.5, n_charged)
    eta = rng.uniform(-3.5, 3.5, n_charged)
    phi = rng.uniform(-np.pi, np.pi, n_charged)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    vz = rng.normal(0.0, 40.0)
    particles = {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + 0.1396**2),
        "charge": rng.choice([-1.0, 1.0], n_charged),
        "vx": np.zeros(n_charged),
        "vy": np.zeros(n_charged),
        "vz": np.full(n_charged, vz),
    }
    return silicon.simulate_event(particles, rng=np.random.default_rng(seed + 1000), event_id=seed)


@pytest.fixture(scope="module")
def events() -> list[TrackMLEvent]:
    return [collision_event(s) for s in range(6)]


def test_graph_on_simulated_events(events: list[TrackMLEvent]) -> None:
    pair_map = LayerPairMap.learn(events[:4])
    tally = None
    for ev in events[4:]:
        t = tally_edges(build_graph(ev, pair_map))
        tally = t if tally is None else tally + t
    assert tally is not None
    m = tally.summary()
    assert m["efficiency_pt1"] > 0.97
    assert m["efficiency_pt0.5"] > 0.95
    assert m["purity_pt0.5"] < 0.8


def test_track_building_and_hough_on_simulated_events(events: list[TrackMLEvent]) -> None:
    ev = events[5]
    # truth oracle for the scores: the loss is the graph's and the building's only
    sub, _ = reconstruct_event(ev, graph="perfect", scores="perfect")
    t = tally_tracks(ev, sub["track_id"]).summary()
    assert t["track_efficiency"] > 0.98
    assert score_event(ev.truth, sub) > 0.97
    hsub, _ = reconstruct(ev, "hough")
    h = tally_tracks(ev, hsub["track_id"]).summary()
    assert h["track_efficiency"] > 0.85
    assert h["fake_rate"] < 0.1
