"""Clustering of overlapping showers on the granular endcap: topo baseline and GravNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heplab.detector.calogeometry import load_geometry
from heplab.errors import ConfigError
from heplab.reconstruction.calorimetry.clustering import (
    TopoConfig,
    cluster_summary,
    compare_clusterings,
    make_overlap_events,
    match_showers,
    nearest_seed,
    topo_cluster,
)

GEO = load_geometry("endcap")


def test_overlap_events_truth_bookkeeping() -> None:
    events = make_overlap_events(20, seed=4)
    for ev in events:
        assert 2 <= ev.n_showers <= 5
        assert ev.truth.shape == (len(ev.voxels), ev.n_showers)
        # the read-out cells hold almost all of every shower's visible energy
        kept = ev.truth.sum(axis=0)
        assert np.all(kept <= ev.e_vis + 1e-9)
        assert kept.sum() > 0.97 * ev.e_vis.sum()
        # measured = truth + noise (sigma 0.03 MeV per cell)
        resid = ev.energy - ev.truth.sum(axis=1)
        assert abs(resid[ev.truth.sum(axis=1) > 1e-3].mean()) < 3e-5
    # an EM shower's visible energy is the Si sampling fraction (1.35 %) of its energy
    em = np.array(
        [
            e
            for ev in events
            for e, p in zip(ev.e_vis / ev.e_inc, ev.particles, strict=True)
            if p != "pi+"
        ]
    )
    assert np.median(em) == pytest.approx(0.0135, rel=0.1)


def test_topo_finds_isolated_showers_whole() -> None:
    events = make_overlap_events(15, n_showers=(1, 1), particles=("e-",), seed=5)
    summary, _ = compare_clusterings(events, {"topo": lambda ev: topo_cluster(ev, GEO)})
    assert summary["topo"]["response"] == pytest.approx(1.0, abs=0.03)
    assert summary["topo"]["resolution"] < 0.05


def test_topo_splits_separated_showers_and_merges_coincident_ones() -> None:
    far = make_overlap_events(15, n_showers=(2, 2), particles=("gamma",), spread=100.0, seed=6)
    r_far = np.concatenate([match_showers(ev, topo_cluster(ev, GEO)) for ev in far])
    close = make_overlap_events(15, n_showers=(2, 2), particles=("gamma",), spread=4.0, seed=6)
    r_close = np.concatenate([match_showers(ev, topo_cluster(ev, GEO)) for ev in close])
    # > 4 R_M apart: most showers are their own cluster; a few mm apart: one cluster each
    assert np.mean(np.abs(r_far - 1) < 0.1) > 0.8
    assert np.mean(np.abs(r_close - 1) < 0.1) < 0.4
    summary = cluster_summary(far, [r_far])
    assert summary["by_particle"]["gamma"]["n"] == 30


def test_nearest_seed_and_errors() -> None:
    ev = make_overlap_events(1, seed=7)[0]
    p = nearest_seed(ev, GEO)
    assert set(np.unique(p.sum(axis=1))) <= {0.0, 1.0}
    with pytest.raises(ConfigError):
        match_showers(ev, np.zeros((3, 2)))
    with pytest.raises(ConfigError):
        TopoConfig(seed_sigma=1.0, grow_sigma=2.0)
    with pytest.raises(ConfigError):
        make_overlap_events(0)
    with pytest.raises(ConfigError):
        topo_cluster(ev, load_geometry("calogan"))


@pytest.mark.slow
def test_gravnet_learns_isolated_showers(tmp_path: Path) -> None:
    """End to end on the CPU budget of a test: on single-shower events GravNet must learn to
    give a shower's cells to one slot and the noise to the noise slot (response ~1)."""
    from heplab.ml.engine import TrainConfig
    from heplab.reconstruction.calorimetry.gravnet import (
        GravNetClusterer,
        GravNetConfig,
        train_gravnet,
    )

    kw = {"n_showers": (1, 1), "particles": ("e-",), "energy": (10.0, 30.0), "spot_scale": 0.1}
    train = make_overlap_events(24, seed=1, **kw)
    val = make_overlap_events(8, seed=2, **kw)
    test = make_overlap_events(10, seed=3, **kw)
    cfg = TrainConfig(epochs=4, batch_size=4, lr=5e-3, patience=4, progress_bar=False)
    model, info = train_gravnet(
        train, val, out_dir=tmp_path, config=GravNetConfig(max_showers=2), train_config=cfg
    )
    assert info["epochs"] == 4
    summary, _ = compare_clusterings(test, {"gravnet": model.assign})
    assert summary["gravnet"]["response"] == pytest.approx(1.0, abs=0.1)
    again = GravNetClusterer.load(tmp_path)
    np.testing.assert_allclose(again.assign(test[0]), model.assign(test[0]), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_cluster_command(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from heplab.commands.calo_reco import cluster

    run = tmp_path / "run"
    args = ["--events", "10", "--test-events", "8", "--epochs", "1", "--out", str(run)]
    result = CliRunner().invoke(cluster, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"topo", "nearest_seed", "gravnet", "gravnet_training"}
    # the topo baseline on overlapping showers: median response near 1, broad (merging)
    assert metrics["topo"]["response"] == pytest.approx(1.0, abs=0.15)
    assert (run / "response.png").stat().st_size > 1000
    assert (run / "gravnet.json").is_file()
