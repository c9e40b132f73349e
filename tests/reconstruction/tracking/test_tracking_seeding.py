"""Triplet seeding and track following on the geometric graph."""

from __future__ import annotations

import numpy as np
import pytest
from tracktoys import make_event, make_events

from heplab.errors import ConfigError
from heplab.reconstruction.tracking.building import submission
from heplab.reconstruction.tracking.graph import LayerPairMap, build_graph
from heplab.reconstruction.tracking.metrics import tally_tracks
from heplab.reconstruction.tracking.seeding import (
    SeedingConfig,
    circle_through,
    find_seeds,
    seeding_tracks,
)


@pytest.fixture(scope="module")
def pair_map() -> LayerPairMap:
    return LayerPairMap.learn(make_events(6, 150, seed=0), windows=True, min_count=5)


def test_circle_through_three_points() -> None:
    ang = np.array([0.1, 0.5, 1.3])
    x, y = 3.0 + 2.0 * np.cos(ang), -1.0 + 2.0 * np.sin(ang)
    xc, yc, r = circle_through(*(np.array([v]) for v in (x[0], y[0], x[1], y[1], x[2], y[2])))
    assert (xc[0], yc[0], r[0]) == pytest.approx((3.0, -1.0, 2.0))
    line = circle_through(*(np.array([v]) for v in (0.0, 0.0, 1.0, 1.0, 2.0, 2.0)))
    assert np.isinf(line[2][0])


def test_seeds_are_true_triplets_from_the_beam_line(pair_map: LayerPairMap) -> None:
    ev = make_event(200, seed=31, noise=40)
    g = build_graph(ev, pair_map)
    seeds = find_seeds(g, ev.hits["volume_id"], SeedingConfig())
    pid = ev.truth["particle_id"]
    same = (pid[seeds[:, 0]] == pid[seeds[:, 1]]) & (pid[seeds[:, 1]] == pid[seeds[:, 2]])
    assert len(seeds) > 100
    assert (same & (pid[seeds[:, 0]] > 0)).mean() > 0.8  # seed purity
    # a tighter pT threshold keeps fewer seeds
    stiff = find_seeds(g, ev.hits["volume_id"], SeedingConfig(pt_min=2.0))
    assert len(stiff) < len(seeds)
    with pytest.raises(ConfigError):
        SeedingConfig(min_hits=2)


def test_seeding_and_following_find_the_tracks(pair_map: LayerPairMap) -> None:
    ev = make_event(300, seed=77, noise=60)
    g = build_graph(ev, pair_map)
    labels = seeding_tracks(g, ev.hits["volume_id"])
    loose = labels < 0
    labels[loose] = labels.max() + 1 + np.arange(int(loose.sum()))
    sub = submission(ev.hits["hit_id"], labels, min_hits=3)
    t = tally_tracks(ev, sub["track_id"]).summary()
    assert t["track_efficiency"] > 0.95
    assert t["fake_rate"] < 0.02
    assert t["duplicate_rate"] < 0.02
    # following matters: seeds alone (no steps) cannot reach 5 hits
    short = seeding_tracks(g, ev.hits["volume_id"], SeedingConfig(max_steps=0))
    assert np.all(short < 0)
