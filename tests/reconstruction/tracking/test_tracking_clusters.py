"""NN pixel-cluster classifier and splitting on jet-core events of the silicon simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.trackml import TrackMLEvent, read_event, write_event
from heplab.ml.engine import TrainConfig
from heplab.reconstruction.tracking.clusters import (
    ClusterSample,
    JetCoreGun,
    cluster_sample,
    evaluate_clusters,
    load_cluster_classifier,
    plot_cluster_performance,
    predict_clusters,
    simulate_jet_cores,
    split_clusters,
    splitting_residuals,
    train_cluster_classifier,
)


@pytest.fixture(scope="module")
def sample() -> ClusterSample:
    return cluster_sample(simulate_jet_cores(9, seed=11))


def test_jet_cores_merge_and_truth_is_consistent(sample: ClusterSample) -> None:
    frac_multi = float(np.mean(sample.y > 0))
    assert 0.05 < frac_multi < 0.5  # dense, but most clusters are still single
    # single-particle hits sit on their crossing within the smearing (50 um / sqrt(12))
    single = sample.y == 0
    d1 = np.linalg.norm(sample.position[single] - sample.true_points[single, 0], axis=1)
    assert np.median(d1) < 0.03
    # a 2-particle cluster has two distinct crossings near its hit (same module)
    two = sample.n_particles == 2
    tp = sample.true_points[two]
    assert not np.isnan(tp[:, :2]).any()
    assert np.isnan(tp[:, 2:]).all()
    sep = np.linalg.norm(tp[:, 0] - tp[:, 1], axis=1)
    assert np.all(sep > 0)
    assert np.median(sep) < 0.3
    # charge x cos(incidence) counts MIPs: about 1 per particle
    q = sample.aux[:, 5]
    assert 0.8 < np.median(q[single]) < 1.3
    assert 1.7 < np.median(q[two]) < 2.6
    # the 7x7 map holds the whole charge of a compact cluster
    small = np.diff(sample.cell_ptr) <= 4
    per_cluster = np.add.reduceat(sample.cell_q, sample.cell_ptr[:-1])
    np.testing.assert_allclose(
        sample.image[small].sum(axis=(1, 2, 3)), per_cluster[small], rtol=1e-5
    )


def test_splitting_reduces_the_position_error(sample: ClusterSample) -> None:
    two = sample.subset(sample.n_particles == 2)
    assert len(two) > 100
    res = splitting_residuals(two, split_clusters(two, np.full(len(two), 2)))
    assert res["crossings"] == 2 * len(two)
    # the merged hit sits between the particles; the split hits near each of them
    assert res["split_median_mm"] < 0.8 * res["merged_median_mm"]
    assert res["split_rms_mm"] < res["merged_rms_mm"]
    # k = 1 leaves the hit alone
    same = split_clusters(two, np.ones(len(two), np.int64))
    np.testing.assert_array_equal(same[:, 0], two.position)


@pytest.mark.slow
def test_classifier_separates_single_from_merged(sample: ClusterSample, tmp_path: Path) -> None:
    train = sample.subset(sample.event < 5)
    val = sample.subset(sample.event == 5)
    test = sample.subset(sample.event >= 6)
    cfg = TrainConfig(epochs=5, batch_size=128, lr=3e-3, progress_bar=False)
    net = train_cluster_classifier(train, val, tmp_path / "run", config=cfg)
    m = evaluate_clusters(net, test)
    # held-out clusters: 1 vs >1 both ways, and the 3x3 matrix is diagonal-dominated
    assert m["efficiency_single"] > 0.8
    assert m["efficiency_multi"] > 0.8
    cm = np.asarray(m["confusion"])
    assert cm.sum() == len(test)
    assert np.all(np.diag(cm) >= cm.max(axis=1) * 0.99)
    again = load_cluster_classifier(tmp_path / "run")
    np.testing.assert_allclose(
        predict_clusters(again, test), predict_clusters(net, test), atol=1e-6
    )
    with pytest.raises(OutputExistsError):
        train_cluster_classifier(train, val, tmp_path / "run", config=cfg)
    fig = plot_cluster_performance(m, None, tmp_path / "clusters.png")
    assert fig.stat().st_size > 1000
    with pytest.raises(OutputExistsError):
        plot_cluster_performance(m, None, fig)


def test_events_from_a_run_directory(tmp_path: Path) -> None:
    ((ev, _),) = simulate_jet_cores(1, seed=4)
    write_event(tmp_path, ev)
    again = read_event(tmp_path, ev.event_id)
    s = cluster_sample([again])
    ref = cluster_sample([ev])
    np.testing.assert_array_equal(s.y, ref.y)
    np.testing.assert_allclose(s.image, ref.image, rtol=1e-6)
    # without the crossings only the dominant particle's crossing is known
    multi = s.y > 0
    assert np.isnan(s.true_points[multi, 1]).all()
    assert not np.isnan(s.true_points[:, 0]).any()


def test_bad_inputs_are_refused(sample: ClusterSample, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        JetCoreGun(dr_min=0.01, dr_max=0.001)
    with pytest.raises(ConfigError):
        cluster_sample([], size=6)
    ev = TrackMLEvent(1, {"hit_id": np.arange(1, 3), "volume_id": np.array([8, 8])})
    with pytest.raises(DataError, match="cells"):
        cluster_sample([ev])
    with pytest.raises(DataError, match="missing"):
        load_cluster_classifier(tmp_path)
    with pytest.raises(ConfigError):
        split_clusters(sample, np.zeros(len(sample), np.int64))
