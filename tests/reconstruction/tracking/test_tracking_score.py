"""The TrackML score: hand-computed events, a reference loop, submission files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from heplab.errors import DataError
from heplab.events.trackml import TrackMLEvent, write_event
from heplab.reconstruction.tracking.score import read_submission, score_event, score_submission


def _truth(pid: list[int], weight: list[float] | None = None) -> dict[str, np.ndarray]:
    n = len(pid)
    w = np.full(n, 1.0 / n) if weight is None else np.asarray(weight, float)
    return {"hit_id": np.arange(1, n + 1), "particle_id": np.asarray(pid), "weight": w}


def _sub(tracks: list[int], hit_id: np.ndarray | None = None) -> dict[str, np.ndarray]:
    hits = np.arange(1, len(tracks) + 1) if hit_id is None else hit_id
    return {"hit_id": hits, "track_id": np.asarray(tracks)}


def _reference(truth: dict[str, np.ndarray], sub: dict[str, np.ndarray]) -> float:
    """The score's definition, written as a plain loop (slow, obvious)."""
    track_of = dict(zip(sub["hit_id"].tolist(), sub["track_id"].tolist(), strict=True))
    p_count = Counter(truth["particle_id"].tolist())
    hits_of: dict[int, list[int]] = {}
    for i, h in enumerate(truth["hit_id"].tolist()):
        hits_of.setdefault(track_of[h], []).append(i)
    total = 0.0
    for rows in hits_of.values():
        counts = Counter(int(truth["particle_id"][i]) for i in rows)
        best = max(counts.values())
        major = min(p for p, c in counts.items() if c == best)
        if major != 0 and best / len(rows) > 0.5 and best / p_count[major] > 0.5:
            total += sum(truth["weight"][i] for i in rows if truth["particle_id"][i] == major)
    return total / float(np.sum(truth["weight"]))


PIDS = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 0, 0]


def test_perfect_submission_scores_one() -> None:
    truth = _truth(PIDS)
    noise_track = [7, 8]  # noise hits in their own tracks
    score = score_event(truth, _sub([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, *noise_track]))
    # noise carries weight here (1/13 each): it is never counted
    assert score == pytest.approx(11 / 13)
    weights = [*[1 / 11] * 11, 0.0, 0.0]  # TrackML files: noise weighs 0
    truth = _truth(PIDS, weights)
    assert score_event(truth, _sub([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 0, 0])) == pytest.approx(1.0)


def test_all_hits_in_one_track_scores_zero() -> None:
    assert score_event(_truth(PIDS), _sub([5] * len(PIDS))) == 0.0


def test_half_split_tracks_score_zero() -> None:
    # each particle's 4 hits split 2 + 2: a track holds exactly half, not more than half
    truth = _truth([1, 1, 1, 1, 2, 2, 2, 2])
    assert score_event(truth, _sub([1, 1, 2, 2, 3, 3, 4, 4])) == 0.0
    # 3 of 4 in one track: that track counts with its 3 hits
    assert score_event(truth, _sub([1, 1, 1, 2, 3, 3, 3, 3])) == pytest.approx(7 / 8)


def test_fifty_fifty_tracks_do_not_count() -> None:
    # a track with 2 hits of particle 1 and 2 of particle 2: purity 1/2 is not > 1/2
    truth = _truth([1, 1, 2, 2, 1, 2])
    assert score_event(truth, _sub([1, 1, 1, 1, 2, 3])) == 0.0
    # particle 1 has 4 hits; a pure track with 2 of them holds only half
    truth = _truth([1, 1, 1, 1])
    assert score_event(truth, _sub([1, 1, 2, 3])) == 0.0


def test_hand_computed_weights() -> None:
    # particle 1: 5 hits (weights 1..5), particle 2: 3 hits (weights 6, 7, 8), noise: 1 hit
    pid = [1, 1, 1, 1, 1, 2, 2, 2, 0]
    w = [1.0, 2, 3, 4, 5, 6, 7, 8, 0]
    truth = _truth(pid, w)
    # track A: hits 1, 2, 3 of particle 1 + the noise hit -> 3/4 pure, 3/5 of particle 1
    # track B: hits 4, 5 of particle 1 + hits 6, 7 of particle 2 -> majority tie (2 vs 2)
    #          -> particle 1 (smaller id), purity 2/4: no
    # track C: hit 8 of particle 2 alone -> 1/3 of particle 2: no
    score = score_event(truth, _sub([10, 10, 10, 11, 11, 11, 11, 12, 10]))
    assert score == pytest.approx((1 + 2 + 3) / 36)
    # order of the submission rows does not matter
    perm = np.array([8, 3, 0, 5, 1, 7, 2, 6, 4])
    tracks = np.array([10, 10, 10, 11, 11, 11, 11, 12, 10])
    assert score_event(truth, {"hit_id": perm + 1, "track_id": tracks[perm]}) == pytest.approx(
        score
    )


def test_matches_reference_loop_on_random_events() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n_part = int(rng.integers(1, 30))
        nh = rng.integers(1, 12, n_part)
        pid = np.r_[np.repeat(np.arange(1, n_part + 1) * 1000003, nh), np.zeros(5, int)]
        w = rng.random(len(pid))
        truth = _truth(pid.tolist(), w.tolist())
        truth["hit_id"] = rng.permutation(np.arange(10, 10 + len(pid)))
        # a noisy version of the perfect assignment
        tracks = pid.copy()
        flip = rng.random(len(pid)) < rng.uniform(0, 0.6)
        tracks[flip] = rng.integers(0, n_part + 3, flip.sum()) * 1000003
        sub = {"hit_id": truth["hit_id"], "track_id": tracks}
        assert score_event(truth, sub) == pytest.approx(_reference(truth, sub), abs=1e-12)
    # random assignment: low score
    pid = np.repeat(np.arange(1, 201), 10)
    truth = _truth(pid.tolist())
    sub = _sub(rng.integers(0, 200, len(pid)).tolist())
    assert score_event(truth, sub) == pytest.approx(_reference(truth, sub))
    assert score_event(truth, sub) < 0.05


def test_submission_errors_name_the_problem() -> None:
    truth = _truth([1, 1, 2])
    with pytest.raises(DataError, match="hit_id 3 missing"):
        score_event(truth, _sub([1, 1]))
    with pytest.raises(DataError, match="unknown hit_id 9"):
        score_event(truth, _sub([1, 1, 2], np.array([1, 2, 9])))
    with pytest.raises(DataError, match="hit_id 2 assigned more than once"):
        score_event(truth, _sub([1, 1, 2, 3], np.array([1, 2, 2, 3])))
    with pytest.raises(DataError, match="track_id"):
        score_event(truth, {"hit_id": np.array([1, 2, 3]), "track_id": np.array([1.5, 1, 2])})


def _write_truth(directory: Path, event_id: int, pid: list[int]) -> None:
    n = len(pid)
    zero = np.zeros(n, np.float32)
    hits: dict[str, np.ndarray] = {
        "hit_id": np.arange(1, n + 1),
        "x": zero,
        "y": zero,
        "z": zero,
        "volume_id": np.full(n, 8),
        "layer_id": np.full(n, 2),
        "module_id": np.ones(n, int),
    }
    w = np.where(np.asarray(pid) == 0, 0.0, 1.0)
    truth: dict[str, np.ndarray] = {
        "hit_id": np.arange(1, n + 1),
        "particle_id": np.asarray(pid),
        **{k: zero for k in ("tx", "ty", "tz", "tpx", "tpy", "tpz")},
        "weight": (w / w.sum()).astype(np.float32),
    }
    write_event(directory, TrackMLEvent(event_id, hits, truth))


def test_score_submission_files(tmp_path: Path) -> None:
    _write_truth(tmp_path, 1000, [1, 1, 1, 2, 2, 2, 0])
    _write_truth(tmp_path, 1001, [5, 5, 5, 5])
    sub = tmp_path / "submission.csv"
    rows = ["event_id,hit_id,track_id"]
    rows += [f"1000,{h},{t}" for h, t in zip(range(1, 8), [1, 1, 1, 2, 2, 2, 3], strict=True)]
    rows += [f"1001,{h},{t}" for h, t in zip(range(1, 5), [1, 1, 2, 2], strict=True)]
    sub.write_text("\n".join(rows) + "\n")
    result = score_submission(sub, tmp_path)
    assert result["events"] == 2
    assert result["per_event"] == {1000: pytest.approx(1.0), 1001: 0.0}
    assert result["score"] == pytest.approx(0.5)
    # an event without truth, a bad header, a missing hit
    sub.write_text("event_id,hit_id,track_id\n1002,1,1\n")
    with pytest.raises(DataError, match="event 1002 has no truth"):
        score_submission(sub, tmp_path)
    sub.write_text("event,hit_id,track_id\n1000,1,1\n")
    with pytest.raises(DataError, match=r"submission\.csv.*event_id"):
        read_submission(sub)
    sub.write_text("event_id,hit_id,track_id\n1001,1,1\n1001,2,1\n1001,3,1\n")
    with pytest.raises(DataError, match=r"submission\.csv: event 1001 .*hit_id 4 missing"):
        score_submission(sub, tmp_path)
    with pytest.raises(DataError, match="no such submission"):
        score_submission(tmp_path / "none.csv", tmp_path)
