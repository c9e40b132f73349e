"""Track building (connected components, walk-through), submissions and track metrics."""

from __future__ import annotations

import numpy as np
import pytest
from tracktoys import make_event

from heplab.errors import ConfigError, DataError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.building import connected_components, submission, walkthrough
from heplab.reconstruction.tracking.metrics import tally_tracks
from heplab.reconstruction.tracking.pipeline import reconstruct_event
from heplab.reconstruction.tracking.score import score_event


def same_partition(a: np.ndarray, b: list[list[int]]) -> bool:
    groups = {tuple(np.nonzero(a == v)[0].tolist()) for v in np.unique(a)}
    return groups == {tuple(g) for g in b}


def test_connected_components_cut_the_low_scores() -> None:
    edges = np.array([[0, 1, 2, 4], [1, 2, 3, 5]])
    scores = np.array([0.9, 0.8, 0.3, 0.7])
    labels = connected_components(6, edges, scores, cut=0.5)
    assert same_partition(labels, [[0, 1, 2], [3], [4, 5]])
    with pytest.raises(DataError, match="dropped them all"):
        connected_components(6, edges, scores, cut=0.95)
    with pytest.raises(DataError, match="scores"):
        connected_components(6, edges, scores[:2])


def test_walkthrough_splits_where_components_merge() -> None:
    # two tracks 0-1-2 and 3-5-6 touched by fakes 3->1 and 1->4 / 5->2
    edges = np.array([[0, 3, 1, 1, 3, 5, 5], [1, 1, 2, 4, 5, 6, 2]])
    scores = np.array([0.9, 0.6, 0.9, 0.7, 0.8, 0.95, 0.55])
    cc = connected_components(7, edges, scores)
    assert len(np.unique(cc)) == 1  # one blob
    walk = walkthrough(7, edges, scores)
    assert same_partition(walk, [[0, 1, 2], [3, 5, 6], [4]])


def test_submission_gives_leftovers_their_own_ids() -> None:
    hit_id = np.arange(1, 9)
    labels = np.array([7, 7, 7, 7, 3, 3, 3, 9])
    sub = submission(hit_id, labels, min_hits=3)
    assert sub["track_id"].tolist() == [1, 1, 1, 1, 2, 2, 2, 3]
    sub = submission(hit_id, labels, min_hits=4)
    t = sub["track_id"]
    assert t[:4].tolist() == [1, 1, 1, 1]
    assert len(np.unique(t[4:])) == 4
    assert not set(t[4:]) & {1}


def hand_event() -> TrackMLEvent:
    # p1: pT 2, rows 0-5; p2: pT 2, rows 6-10; p3: pT 0.5, rows 11-15; noise 16-18
    pid = np.array([1] * 6 + [2] * 5 + [3] * 5 + [0] * 3)
    pt = np.where(pid == 3, 0.5, np.where(pid == 0, 0.0, 2.0))
    n = len(pid)
    z = np.arange(n, dtype=float)
    hits = {
        "hit_id": np.arange(1, n + 1),
        "x": z,
        "y": z,
        "z": z,
        "volume_id": z,
        "layer_id": z,
        "module_id": z,
    }
    truth = {
        "hit_id": np.arange(1, n + 1),
        "particle_id": pid,
        "tx": z,
        "ty": z,
        "tz": z,
        "tpx": pt,
        "tpy": np.zeros(n),
        "tpz": np.zeros(n),
        "weight": (pid > 0) / (pid > 0).sum(),
    }
    return TrackMLEvent(1, hits, truth)


def test_track_metrics_by_hand() -> None:
    ev = hand_event()
    track = np.zeros(19, int)
    track[[0, 1, 2, 3]] = 1  # 4/6 of p1: found
    track[[4, 5, 16]] = 2  # p1 majority, 2/6: a duplicate, not found
    track[[6, 7, 11, 12]] = 3  # 2 p2 + 2 p3: no majority -> fake
    track[[8, 9, 10, 17]] = 4  # 3/5 of p2: found
    track[[13, 14, 15, 18]] = 5  # p3 (pT 0.5): matched, not eligible
    t = tally_tracks(ev, track)
    assert (t.particles, t.found, t.tracks, t.fakes, t.matched, t.duplicates) == (2, 2, 5, 1, 3, 1)
    s = t.summary()
    assert s["track_efficiency"] == 1.0
    assert s["fake_rate"] == pytest.approx(0.2)
    assert s["duplicate_rate"] == pytest.approx(1 / 3)
    # the TrackML score of the same assignment: good tracks 1, 4, 5 -> their majority hits
    w = ev.truth["weight"]
    expect = w[[0, 1, 2, 3]].sum() + w[[8, 9, 10]].sum() + w[[13, 14, 15]].sum()
    sub = {"hit_id": ev.hits["hit_id"], "track_id": track}
    assert score_event(ev.truth, sub) == pytest.approx(expect)
    with pytest.raises(ValueError, match="track ids"):
        tally_tracks(ev, track[:-1])


def test_truth_oracle_reconstructs_every_track() -> None:
    ev = make_event(150, seed=11, noise=30)
    for builder in ("cc", "walk"):
        sub, ms = reconstruct_event(ev, graph="perfect", scores="perfect", builder=builder)
        t = tally_tracks(ev, sub["track_id"]).summary()
        assert t["track_efficiency"] == 1.0
        assert t["fake_rate"] == 0.0
        assert t["duplicate_rate"] == 0.0
        assert score_event(ev.truth, sub) == pytest.approx(1.0)
        assert set(ms) == {"graph", "edge_scores", "tracks"}
    with pytest.raises(ConfigError, match="pipeline"):
        reconstruct_event(ev)
