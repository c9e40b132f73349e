"""Geometric graph construction: truth edges, layer-pair map, cuts, efficiency and purity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tracktoys import make_event, make_events

from heplab.errors import ConfigError, DataError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.graph import (
    BARREL_LAYERS,
    GraphCuts,
    LayerPairMap,
    build_graph,
    check_event,
    hit_coordinates,
    perfect_graph,
    truth_edges,
)
from heplab.reconstruction.tracking.metrics import tally_edges


@pytest.fixture(scope="module")
def pair_map() -> LayerPairMap:
    return LayerPairMap.learn(make_events(6, 150, seed=0))


def test_truth_edges_follow_each_particle_outwards() -> None:
    ev = make_event(30, seed=3, noise=0)
    te = truth_edges(ev)
    c = hit_coordinates(ev)
    pid = ev.truth["particle_id"]
    # every particle with n hits gives n - 1 edges, all within the particle
    n_hits = np.unique(pid, return_counts=True)[1]
    assert te.edges.shape[1] == int((n_hits - 1).sum())
    assert np.all(pid[te.edges[0]] == pid[te.edges[1]])
    # tracks from the origin move away: the outer hit is further from the vertex
    d_in = np.hypot(c["r"][te.edges[0]], c["z"][te.edges[0]])
    d_out = np.hypot(c["r"][te.edges[1]], c["z"][te.edges[1]])
    assert np.all(d_out > d_in)
    assert np.all(te.is_true(te.edges))
    assert np.all(te.is_true(te.edges[::-1]))  # either direction
    # skipping a hit is not a true edge
    first, second = te.edges[0], te.edges[1]
    nxt = {a: b for a, b in zip(first.tolist(), second.tolist(), strict=True)}
    skip = np.array([[a, nxt[b]] for a, b in nxt.items() if b in nxt]).T
    assert skip.shape[1] > 50
    assert not np.any(te.is_true(skip))


def test_learned_map_has_barrel_and_endcap_pairs(pair_map: LayerPairMap) -> None:
    pairs = set(pair_map.pairs)
    assert (802, 804) in pairs
    assert (1702, 1704) in pairs
    assert (808, 1302) in pairs  # pixel -> short strips
    assert any(a // 100 in (7, 9) for a, _ in pairs)  # pixel disks take part
    # nothing goes inwards from the outer barrel to the pixels
    assert (1702, 802) not in pairs
    again = LayerPairMap.from_dict(pair_map.to_dict())
    assert again.pairs == pair_map.pairs
    assert LayerPairMap.barrel().pairs[0] == (BARREL_LAYERS[0], BARREL_LAYERS[1])


def test_graph_efficiency_high_and_purity_below_one(pair_map: LayerPairMap) -> None:
    ev = make_event(300, seed=50, noise=60)
    g = build_graph(ev, pair_map)
    m = tally_edges(g).summary()
    assert m["efficiency_pt1"] > 0.97
    assert m["efficiency_pt0.5"] > 0.95
    assert 0.05 < m["purity_pt0.5"] < 0.9  # a geometric graph is far from pure
    # no duplicated hit pairs, all inner -> outer by the learned layer order
    key = np.sort(g.edge_index, axis=0)
    assert len(np.unique(key[0] * len(ev) + key[1])) == g.num_edges
    # the barrel-only fall-back loses the endcap edges
    fb = tally_edges(build_graph(ev)).summary()
    assert fb["efficiency_pt1"] < 0.85
    # the oracle is perfect
    p = tally_edges(perfect_graph(ev)).summary()
    assert p["efficiency_pt1"] == 1.0
    assert p["purity_pt0.5"] == 1.0


def test_tighter_cuts_trade_efficiency_for_purity(pair_map: LayerPairMap) -> None:
    ev = make_event(300, seed=51, noise=60)
    loose = tally_edges(build_graph(ev, pair_map)).summary()
    tight_cuts = GraphCuts(phi_slope_max=0.35e-3, dphi_tol=0.002)  # ~ pT > 1 GeV
    tight = tally_edges(build_graph(ev, pair_map, tight_cuts)).summary()
    assert tight["purity_pt1"] > loose["purity_pt1"]
    assert tight["efficiency_pt0.5"] < loose["efficiency_pt0.5"]
    assert tight["efficiency_pt1"] > 0.85  # pT > 1 GeV edges mostly survive


def test_phi_wrap_keeps_edges_across_pi(pair_map: LayerPairMap) -> None:
    ev = make_event(400, seed=7, noise=0, pt_min=2.0)
    te = truth_edges(ev)
    phi = hit_coordinates(ev)["phi"]
    crossing = np.abs(phi[te.edges[1]] - phi[te.edges[0]]) > np.pi  # straddle phi = +-pi
    assert crossing.sum() >= 3
    g = build_graph(ev, pair_map)
    n = len(ev)
    kept = set((np.sort(g.edge_index, 0)[0] * n + np.sort(g.edge_index, 0)[1]).tolist())
    want = np.sort(te.edges[:, crossing], 0)
    assert all(k in kept for k in (want[0] * n + want[1]).tolist())


def test_fail_fast_on_bad_events(pair_map: LayerPairMap) -> None:
    ev = make_event(10, seed=1)
    bad = dataclasses.replace(ev, truth={k: v[:-1] for k, v in ev.truth.items()})
    with pytest.raises(DataError, match="truth rows"):
        check_event(bad)
    with pytest.raises(DataError, match="truth rows"):
        build_graph(bad, pair_map)
    empty = TrackMLEvent(5, {k: v[:0] for k, v in ev.hits.items()})
    with pytest.raises(DataError, match="no hits"):
        build_graph(empty, pair_map)
    # a layer map that matches no layer of the event: an empty graph is an error
    with pytest.raises(DataError, match="no edge"):
        build_graph(ev, LayerPairMap(pairs=[(101, 102)]))
    with pytest.raises(DataError, match="truth"):
        truth_edges(TrackMLEvent(1, ev.hits))
    with pytest.raises(ConfigError):
        GraphCuts(z0_max=-1)


def test_large_event_is_fast_and_sparse(pair_map: LayerPairMap) -> None:
    import time

    ev = make_event(3000, seed=9, noise=1000)
    t = time.perf_counter()
    g = build_graph(ev, pair_map)
    dt = time.perf_counter() - t
    assert dt < 5.0
    # far from the all-pairs graph of ~ N^2 / n_layers^2 edges per pair
    assert g.num_edges < 20 * len(ev)
    assert tally_edges(g).summary()["efficiency_pt1"] > 0.97


def test_learned_pair_windows_raise_purity(pair_map: LayerPairMap) -> None:
    train = make_events(6, 150, seed=0)
    windowed = LayerPairMap.learn(train, windows=True)
    assert windowed.pairs == pair_map.pairs
    assert windowed.windows is not None
    assert sum(w is not None for w in windowed.windows) > 20
    ev = make_event(300, seed=50, noise=60)
    plain = tally_edges(build_graph(ev, pair_map)).summary()
    tight = tally_edges(build_graph(ev, windowed)).summary()
    assert tight["purity_pt0.5"] > plain["purity_pt0.5"] + 0.05
    assert tight["efficiency_pt1"] > plain["efficiency_pt1"] - 0.02
    # rare pairs dropped: fewer pairs and edges
    pruned = LayerPairMap.learn(train, windows=True, min_count=5)
    assert len(pruned.pairs) < len(windowed.pairs)
    again = LayerPairMap.from_dict(windowed.to_dict())
    assert again.windows == windowed.windows
    with pytest.raises(DataError, match="one window per pair"):
        LayerPairMap.from_dict({"pairs": [[802, 804]], "windows": []})
