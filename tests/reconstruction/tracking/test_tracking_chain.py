"""The Exa.TrkX chain (edge filter -> Interaction Network) and the HEP.TrkX network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score
from tracktoys import make_events

import heplab.cli
from heplab.errors import ConfigError, DataError
from heplab.events.trackml import write_event
from heplab.reconstruction.tracking.graph import LayerPairMap, build_graph
from heplab.reconstruction.tracking.metrics import tally_edges
from heplab.reconstruction.tracking.models import HEPTrkXNetwork, build_model
from heplab.reconstruction.tracking.pipeline import (
    EdgePipeline,
    PipelineConfig,
    TrainResult,
    subgraph,
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
def chain_run(tmp_path_factory: pytest.TempPathFactory, _threads: None) -> TrainResult:
    train = make_events(6, 250, seed=0, noise=300)
    val = make_events(2, 250, seed=500, noise=300)
    # a looser filter cut than the default 99.5 %: toy events this small need it to prune
    cfg = PipelineConfig(
        model="chain",
        epochs=10,
        filter_epochs=10,
        hidden=24,
        n_iterations=3,
        filter_efficiency=0.98,
    )
    return train_pipeline(train, val, tmp_path_factory.mktemp("chain"), cfg)


@pytest.mark.slow
def test_chain_filter_keeps_true_edges_and_prunes_fakes(chain_run: TrainResult) -> None:
    m = chain_run.metrics
    f, g, e = m["filter"]["selection"], m["graph"], m["edge_classifier"]
    # the cut keeps 98 % of the training true edges: held-out ones survive as well
    assert f["efficiency_pt0.5"] > 0.96
    # ... and it thins the graph: fewer edges, higher purity than the raw graph
    assert f["edges"] < 0.9 * g["edges"]
    assert f["purity_pt0.5"] > g["purity_pt0.5"]
    # the GNN on the pruned graph: far purer than the raw graph, efficiency kept
    assert e["purity_pt0.5"] > g["purity_pt0.5"] + 0.25
    assert e["efficiency_pt0.5"] > 0.8
    d = chain_run.run_dir
    for name in ("config.json", "weights.pt", "filter_weights.pt", "metrics.json"):
        assert (d / name).is_file()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["pipeline"]["model"] == "chain"
    assert cfg["filter_cut"] == pytest.approx(m["filter"]["cut"])


@pytest.mark.slow
def test_chain_scores_pruned_edges_zero_and_reloads(chain_run: TrainResult) -> None:
    ev = make_events(1, 200, seed=901, noise=300)[0]
    pipe = chain_run.pipeline
    g = pipe.graph(ev)
    keep = pipe.filter_mask(g)
    s = pipe.score(g)
    assert 0 < keep.sum() < g.num_edges
    assert np.all(s[~keep] == 0.0)
    # the GNN saw only the kept edges: its scores there separate true from fake edges
    assert g.y is not None
    assert roc_auc_score(g.y[keep], s[keep]) > 0.9
    again = EdgePipeline.load(chain_run.run_dir)
    assert again.filter_model is not None
    assert again.filter_cut == pytest.approx(pipe.filter_cut)
    np.testing.assert_allclose(again.score(g), s, rtol=1e-6, atol=1e-7)
    # fail fast: a filter that drops every edge stops with a clear message
    again.filter_cut = 1.0
    with pytest.raises(DataError, match="dropped all"):
        again.score(g)


def test_subgraph_keeps_nodes_and_truth() -> None:
    ev = make_events(1, 60, seed=5)[0]
    g = build_graph(ev, LayerPairMap.learn([ev]))
    assert g.y is not None
    sub = subgraph(g, g.y)
    assert sub.num_nodes == g.num_nodes
    assert sub.num_edges == int(g.y.sum())
    t = tally_edges(sub).summary()
    assert t["purity_pt0.5"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="keep has shape"):
        subgraph(g, np.ones(3, bool))


@pytest.mark.slow
def test_hetrkx_learns_on_held_out_events(tmp_path: Path) -> None:
    train = make_events(6, 200, seed=30, noise=200)
    val = make_events(2, 200, seed=700, noise=200)
    cfg = PipelineConfig(model="hetrkx", epochs=6, hidden=24, n_iterations=3)
    res = train_pipeline(train, val, tmp_path, cfg)
    g, e = res.metrics["graph"], res.metrics["edge_classifier"]
    assert e["purity_pt0.5"] > g["purity_pt0.5"] + 0.2
    assert e["efficiency_pt0.5"] > 0.8
    graph = res.pipeline.graph(val[0])
    assert graph.y is not None
    assert roc_auc_score(graph.y, res.pipeline.score(graph)) > 0.9
    again = EdgePipeline.load(tmp_path)
    assert isinstance(again.model, HEPTrkXNetwork)
    np.testing.assert_allclose(again.score(graph), res.pipeline.score(graph), rtol=1e-6)


def test_hetrkx_attention_is_per_graph() -> None:
    # two disjoint copies of a graph get the scores of one: aggregation stays on its edges
    torch.manual_seed(0)
    net = build_model("hetrkx", hidden=8, n_iterations=2).eval()
    x = torch.randn(5, 3)
    ei = torch.tensor([[0, 1, 2, 0], [1, 2, 3, 4]])
    ea = torch.randn(4, 10)
    with torch.no_grad():
        one = net(x, ei, ea)
        two = net(torch.cat([x, x]), torch.cat([ei, ei + 5], 1), torch.cat([ea, ea]))
    torch.testing.assert_close(two[:4], one)
    torch.testing.assert_close(two[4:], one)


def test_chain_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        PipelineConfig(model="chain", filter_efficiency=0.0)
    with pytest.raises(ConfigError):
        PipelineConfig(model="chain", filter_epochs=0)
    with pytest.raises(ConfigError):
        PipelineConfig(model="edgenet")
    assert PipelineConfig(model="chain").classifier == "gnn"


@pytest.mark.slow
def test_cli_train_chain_then_run(tmp_path: Path) -> None:
    data = tmp_path / "toys"
    for ev in make_events(5, 120, seed=60):
        write_event(data, ev)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(
        heplab.cli.cli,
        [
            "tracking",
            "train",
            "--data",
            str(data),
            "--out",
            str(run_dir),
            "--model",
            "chain",
            "--epochs",
            "4",
            "--filter-efficiency",
            "0.99",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "filter cut" in res.output
    assert (run_dir / "filter_weights.pt").is_file()
    sub = tmp_path / "sub.csv"
    res = runner.invoke(
        heplab.cli.cli,
        [
            "tracking",
            "run",
            str(data),
            "--method",
            "gnn",
            "--model",
            str(run_dir),
            "--out",
            str(sub),
            "--json",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    # clean toy events (no multiple scattering): the chain finds most tracks
    assert summary["score"] > 0.7
    assert summary["track_efficiency"] > 0.8
