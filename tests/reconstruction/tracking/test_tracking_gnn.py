"""Edge classifiers (edge filter MLP, Interaction Network) trained on toy events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from tracktoys import make_events

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.reconstruction.tracking.features import collate_graphs, graph_tensors
from heplab.reconstruction.tracking.graph import LayerPairMap, build_graph
from heplab.reconstruction.tracking.metrics import tally_edges
from heplab.reconstruction.tracking.models import InteractionNetwork, build_model, weighted_bce
from heplab.reconstruction.tracking.pipeline import (
    EdgePipeline,
    PipelineConfig,
    TrainResult,
    train_pipeline,
)


@pytest.fixture(autouse=True, scope="module")
def _threads() -> Iterator[None]:
    # one thread: much faster than two on a shared, busy CPU; restored afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gnn_run(tmp_path_factory: pytest.TempPathFactory, _threads: None) -> TrainResult:
    train, val = make_events(8, 150, seed=0), make_events(3, 150, seed=500)
    cfg = PipelineConfig(model="gnn", epochs=5, hidden=24, n_iterations=3)
    return train_pipeline(train, val, tmp_path_factory.mktemp("gnn"), cfg)


def test_collate_offsets_node_indices() -> None:
    evs = make_events(2, 20, seed=3)
    pm = LayerPairMap.learn(evs)
    a, b = (graph_tensors(build_graph(e, pm)) for e in evs)
    batch = collate_graphs([a, b])
    assert batch["x"].shape[0] == a["x"].shape[0] + b["x"].shape[0]
    n_a = a["x"].shape[0]
    assert torch.equal(batch["edge_index"][:, a["edge_index"].shape[1] :], b["edge_index"] + n_a)
    # the model sees two disjoint graphs: scores equal the per-graph scores
    torch.manual_seed(0)
    net = InteractionNetwork(hidden=8, n_iterations=2).eval()
    with torch.no_grad():
        both = net(batch["x"], batch["edge_index"], batch["edge_attr"])
        alone = net(b["x"], b["edge_index"], b["edge_attr"])
    torch.testing.assert_close(both[a["edge_index"].shape[1] :], alone)


def test_weighted_bce_weights_the_true_class() -> None:
    logits = torch.tensor([0.0, 0.0])
    y = torch.tensor([1.0, 0.0])
    plain = float(weighted_bce(logits, y, 1.0))
    assert plain == pytest.approx(np.log(2.0))
    assert float(weighted_bce(logits, y, 3.0)) == pytest.approx(2 * np.log(2.0))


@pytest.mark.slow
def test_gnn_beats_the_geometric_graph_purity(gnn_run: TrainResult) -> None:
    m = gnn_run.metrics
    g, e = m["graph"], m["edge_classifier"]
    # held-out events: purity well above the raw graph, efficiency kept
    assert e["purity_pt0.5"] > g["purity_pt0.5"] + 0.15
    assert e["purity_pt1"] > g["purity_pt1"] + 0.15
    assert e["purity_pt0.5"] > 0.9
    assert e["efficiency_pt1"] > 0.9
    assert e["efficiency_pt0.5"] > 0.9
    # the run directory: config, weights, metrics, figure
    d = gnn_run.run_dir
    for name in ("config.json", "weights.pt", "metrics.json", "efficiency_purity.png"):
        assert (d / name).is_file()
    saved = json.loads((d / "metrics.json").read_text())
    assert saved["edge_classifier"]["purity_pt1"] == pytest.approx(e["purity_pt1"])
    curve = saved["curve"]
    # efficiency falls and purity rises with the cut (0.1 -> 0.7)
    lo, hi = curve["cut"].index(0.1), curve["cut"].index(0.7)
    assert curve["efficiency_pt1"][lo] > curve["efficiency_pt1"][hi]
    assert curve["purity_pt1"][hi] > curve["purity_pt1"][lo]


@pytest.mark.slow
def test_reloaded_pipeline_scores_identically(gnn_run: TrainResult) -> None:
    ev = make_events(1, 100, seed=900)[0]
    again = EdgePipeline.load(gnn_run.run_dir)
    g = again.graph(ev)
    np.testing.assert_allclose(again.score(g), gnn_run.pipeline.score(g), rtol=1e-6)
    with pytest.raises(OutputExistsError):
        train_pipeline(make_events(1, 20), make_events(1, 20, seed=4), gnn_run.run_dir)


@pytest.mark.slow
def test_edge_filter_learns(tmp_path: Path) -> None:
    train, val = make_events(6, 150, seed=20), make_events(2, 150, seed=600)
    res = train_pipeline(train, val, tmp_path, PipelineConfig(model="filter", epochs=15))
    g, e = res.metrics["graph"], res.metrics["edge_classifier"]
    assert e["purity_pt0.5"] > g["purity_pt0.5"] + 0.1
    assert e["efficiency_pt0.5"] > 0.8
    # held-out scores separate true from fake edges
    from sklearn.metrics import roc_auc_score

    graph = res.pipeline.graph(val[0])
    assert roc_auc_score(graph.y, res.pipeline.score(graph)) > 0.85


def test_bad_settings_and_missing_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        build_model("transformer")
    with pytest.raises(ConfigError):
        PipelineConfig(model="gnn", edge_cut=1.5)
    with pytest.raises(DataError, match=r"config\.json"):
        EdgePipeline.load(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(DataError, match="not a tracking run"):
        EdgePipeline.load(tmp_path)


def test_untrained_scores_are_uninformative() -> None:
    # guards the trained-model tests: an untrained network does not already separate edges
    ev = make_events(1, 150, seed=77)[0]
    g = build_graph(ev, LayerPairMap.learn([ev]))
    torch.manual_seed(1)
    net = build_model("gnn", hidden=16, n_iterations=2).eval()
    t = graph_tensors(g)
    with torch.no_grad():
        s = torch.sigmoid(net(t["x"], t["edge_index"], t["edge_attr"])).numpy()
    sel = tally_edges(g, s > np.median(s)).summary()
    assert sel["purity_pt0.5"] < 0.9
