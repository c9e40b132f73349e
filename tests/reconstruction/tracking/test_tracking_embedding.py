"""Metric-learning graph construction: radius search and a trained hit embedding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from tracktoys import make_events

from heplab.reconstruction.tracking.embedding import (
    EmbeddingConfig,
    HitEmbedding,
    embedding_graph,
    radius_edges,
    train_embedding,
)
from heplab.reconstruction.tracking.graph import hit_coordinates
from heplab.reconstruction.tracking.metrics import tally_edges


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread (much faster than two on a shared, busy CPU), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_radius_edges_in_chunks_match_all_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(300, 3, generator=gen)
    e = radius_edges(pts, 0.1, k_max=299, chunk=64)
    d = torch.cdist(pts, pts)
    i, j = torch.nonzero(torch.triu(d < 0.1, diagonal=1), as_tuple=True)
    assert e.shape[1] == len(i) > 0
    assert set(map(tuple, e.T.tolist())) == set(zip(i.tolist(), j.tolist(), strict=True))
    # k_max caps the neighbours of each query
    capped = radius_edges(pts, 0.1, k_max=1, chunk=64)
    assert capped.shape[1] <= 300


@pytest.mark.slow
def test_trained_embedding_builds_an_efficient_graph(tmp_path: Path, one_thread: None) -> None:
    train, val = make_events(4, 100, seed=0), make_events(2, 100, seed=300)
    model = train_embedding(train, val[:1], tmp_path, EmbeddingConfig(epochs=5))
    g = embedding_graph(val[1], model, k_max=8)
    m = tally_edges(g).summary()
    assert m["efficiency_pt1"] > 0.93
    assert m["purity_pt0.5"] > 0.1
    # edges point away from the origin
    c = hit_coordinates(val[1])
    dist = np.hypot(c["r"], c["z"])
    assert np.all(dist[g.edge_index[0]] <= dist[g.edge_index[1]])
    # an untrained (smooth, random) embedding keeps some locality but misses many edges
    torch.manual_seed(0)
    raw = tally_edges(embedding_graph(val[1], HitEmbedding(), k_max=8)).summary()
    assert m["efficiency_pt1"] > raw["efficiency_pt1"] + 0.2
    assert m["purity_pt0.5"] > 0.8 * raw["purity_pt0.5"]
