"""Triplet seeding on the pixel barrel and the NN seed classifier (silicon simulation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heplab.detector.silicon import simulate_event
from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.trackml import TrackMLEvent
from heplab.ml.engine import TrainConfig
from heplab.reconstruction.tracking.graph import hit_coordinates
from heplab.reconstruction.tracking.seeds import (
    SeedConfig,
    classify_seeds,
    evaluate_seeds,
    find_seeds,
    load_seed_classifier,
    pruning_threshold,
    seed_features,
    seed_truth,
    train_seed_classifier,
)


def _gun(n: int, seed: int) -> dict[str, np.ndarray]:
    """Pions from one vertex (z ~ N(0, 50 mm)), 1/pT flat in [1/20, 1/0.3] GeV^-1."""
    rng = np.random.default_rng(seed)
    pt = 1 / rng.uniform(1 / 20, 1 / 0.3, n)
    eta = rng.uniform(-2, 2, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    zero = np.zeros(n)
    return {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + 0.13957**2),
        "charge": rng.choice([-1.0, 1.0], n),
        "vx": zero,
        "vy": zero.copy(),
        "vz": zero + rng.normal(0, 50),
    }


@pytest.fixture(scope="module")
def events() -> list[TrackMLEvent]:
    return [
        simulate_event(_gun(800, i), None, np.random.default_rng(i), None, event_id=i)
        for i in range(5)
    ]


def test_seeds_find_the_tracks_and_measure_their_pt(events: list[TrackMLEvent]) -> None:
    ev = events[0]
    seeds = find_seeds(ev)
    y = seed_truth(ev, seeds)
    assert {0, 1, 2} <= set(y.tolist())
    c = hit_coordinates(ev)
    assert np.all(np.diff(c["r"][seeds], axis=1) > 0)  # inner -> outer
    # particles with pT > 1 GeV and a hit on each of the first three pixel layers
    assert ev.truth is not None
    assert ev.particles is not None
    pid, layer = ev.truth["particle_id"], c["layer"]
    ppt = np.hypot(ev.particles["px"], ev.particles["py"])
    hard = ev.particles["particle_id"][ppt > 1.0]
    has = [set(pid[layer == k].tolist()) for k in (802, 804, 806)]
    want = set(hard.tolist()) & has[0] & has[1] & has[2]
    good_pids = set(pid[seeds[y == 0, 0]].tolist())
    assert len(want) > 50
    assert len(want & good_pids) / len(want) > 0.95
    # the helix pT of good seeds matches the particle's (radius from three points)
    inv_pt = np.abs(seed_features(ev, seeds[y == 0])[:, 0])
    rows = np.searchsorted(ev.particles["particle_id"], pid[seeds[y == 0, 0]])
    ratio = inv_pt * ppt[rows]
    assert 0.95 < np.median(ratio) < 1.05
    # far fewer seeds than layer-triplet combinations
    n = [int((layer == k).sum()) for k in (802, 804, 806, 808)]
    assert len(seeds) < 1e-3 * (n[0] * n[1] * n[2] + n[1] * n[2] * n[3])


@pytest.mark.slow
def test_classifier_prunes_bad_seeds_and_keeps_good_ones(
    events: list[TrackMLEvent], tmp_path: Path
) -> None:
    cfg = TrainConfig(epochs=6, batch_size=256, lr=3e-3, progress_bar=False)
    net = train_seed_classifier(events[:3], events[3:4], tmp_path / "run", train_config=cfg)
    cal = find_seeds(events[3])
    # calibrated to keep 99 % of the good seeds of one event, measured on another
    prob_cal = classify_seeds(net, events[3], cal)
    thr = pruning_threshold(prob_cal, seed_truth(events[3], cal), keep_good=0.99)
    test = find_seeds(events[4])
    prob = classify_seeds(net, events[4], test)
    m = evaluate_seeds(prob, seed_truth(events[4], test), thr)
    assert m["kept_good"] > 0.97
    assert m["kept_bad"] < 0.3
    cm = np.asarray(m["confusion"])
    assert np.all(np.argmax(cm, axis=1) == [0, 1, 2])
    assert m["efficiency"]["good"] > 0.85
    again, cuts = load_seed_classifier(tmp_path / "run")
    assert cuts == SeedConfig()
    np.testing.assert_allclose(classify_seeds(again, events[4], test), prob, atol=1e-6)
    with pytest.raises(OutputExistsError):
        train_seed_classifier(events[:1], events[3:4], tmp_path / "run", train_config=cfg)


def test_bad_inputs_are_refused(events: list[TrackMLEvent], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SeedConfig(pt_min=0)
    with pytest.raises(ConfigError):
        pruning_threshold(np.zeros((2, 3)), np.zeros(2, np.int64), keep_good=0)
    with pytest.raises(DataError):
        pruning_threshold(np.zeros((2, 3)), np.full(2, 2))
    with pytest.raises(DataError, match="missing"):
        load_seed_classifier(tmp_path)
    empty = TrackMLEvent(1, {k: v[:0] for k, v in events[0].hits.items()})
    with pytest.raises(DataError):
        find_seeds(empty)
