"""Similarity hashing: bucket sizes, graph efficiency and purity, learned embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from tracktoys import make_event, make_events

from heplab.errors import ConfigError, DataError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.features import graph_tensors
from heplab.reconstruction.tracking.graph import LayerPairMap
from heplab.reconstruction.tracking.hashing import (
    HashConfig,
    direction_embedding,
    hash_buckets,
    hash_graph,
    pair_counts,
)
from heplab.reconstruction.tracking.metrics import tally_edges


@pytest.fixture(scope="module")
def pair_map() -> LayerPairMap:
    return LayerPairMap.learn(make_events(4, 150, seed=0))


@pytest.fixture(scope="module")
def event() -> TrackMLEvent:
    return make_event(400, seed=77, noise=80)


def test_buckets_hold_about_the_requested_number_of_hits() -> None:
    feats = np.random.default_rng(1).normal(size=(3000, 3))
    cfg = HashConfig(bucket_size=25, n_tables=3)
    b = hash_buckets(feats, cfg)
    assert b.shape == (3, 3000)
    for t in range(3):
        sizes = np.bincount(b[t])
        sizes = sizes[sizes > 0]
        assert 15 < sizes.mean() < 35
        assert sizes.max() < 3 * 25
    # the tables differ (new projections and offsets), the same seed repeats them
    assert not np.array_equal(b[0], b[1])
    np.testing.assert_array_equal(b, hash_buckets(feats, cfg))


def test_efficiency_grows_with_bucket_size_and_tables(
    event: TrackMLEvent, pair_map: LayerPairMap
) -> None:
    eff, edges = [], []
    for size in (10, 30, 100):
        g = hash_graph(event, pair_map, HashConfig(bucket_size=size, n_tables=4))
        m = tally_edges(g).summary()
        eff.append(m["efficiency_pt1"])
        edges.append(g.num_edges)
    assert eff[0] < eff[1] < eff[2]
    assert edges[0] < edges[1] < edges[2]
    assert eff[1] > 0.9  # buckets of 30 hits, 4 tables
    one = tally_edges(hash_graph(event, pair_map, HashConfig(bucket_size=30, n_tables=1)))
    assert one.summary()["efficiency_pt1"] < eff[1] - 0.1
    # far fewer candidates than all pairs on the same layer pairs
    assert edges[1] < 0.05 * pair_counts(event, pair_map)["layer_pairs"]


def test_graph_is_an_event_graph_the_gnn_can_use(
    event: TrackMLEvent, pair_map: LayerPairMap
) -> None:
    g = hash_graph(event, pair_map)
    layer = g.coords["layer"]
    pairs = set(pair_map.pairs)
    used = zip(layer[g.edge_index[0]].tolist(), layer[g.edge_index[1]].tolist(), strict=True)
    assert all(p in pairs for p in used)
    key = np.sort(g.edge_index, axis=0)
    assert len(np.unique(key[0] * len(event) + key[1])) == g.num_edges
    assert g.y is not None
    assert g.y.any()
    assert not g.y.all()
    t = graph_tensors(g)
    assert t["edge_index"].shape[1] == g.num_edges


def test_a_perfect_embedding_gives_a_perfect_graph(
    event: TrackMLEvent, pair_map: LayerPairMap
) -> None:
    assert event.truth is not None
    pid = event.truth["particle_id"]

    def oracle(ev: TrackMLEvent) -> np.ndarray:
        # every hit of a particle at one point; noise hits scattered
        _, inv = np.unique(pid, return_inverse=True)
        pts = np.random.default_rng(5).normal(size=(inv.max() + 1, 4))[inv]
        noise = pid == 0
        pts[noise] = np.random.default_rng(6).normal(size=(int(noise.sum()), 4)) * 3
        return pts

    cfg = HashConfig(bucket_size=10, n_tables=1)
    base = tally_edges(hash_graph(event, pair_map, cfg)).summary()
    m = tally_edges(hash_graph(event, pair_map, cfg, embedding=oracle)).summary()
    assert m["efficiency_pt0.5"] > 0.99
    assert base["efficiency_pt0.5"] < 0.8  # the direction hash at this bucket size
    assert m["purity_pt0.5"] > base["purity_pt0.5"] + 0.1


def test_bad_inputs_are_refused(event: TrackMLEvent, pair_map: LayerPairMap) -> None:
    with pytest.raises(ConfigError):
        HashConfig(bucket_size=1)
    with pytest.raises(ConfigError):
        HashConfig(n_tables=0)
    with pytest.raises(DataError, match="embedding"):
        hash_graph(event, pair_map, embedding=lambda ev: np.zeros((3, 2)))
    with pytest.raises(DataError):
        hash_buckets(np.full((5, 2), np.nan))
    empty = LayerPairMap(pairs=[(9999, 9998)])
    with pytest.raises(DataError, match="no edge"):
        hash_graph(event, empty)
    assert direction_embedding(event).shape == (len(event), 3)
