"""Object condensation (arXiv:2002.03605) on GravNet for overlapping endcap showers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from heplab.errors import ConfigError
from heplab.reconstruction.calorimetry.clustering import (
    ClusterEvent,
    compare_clusterings,
    make_overlap_events,
    nearest_seed,
)
from heplab.reconstruction.calorimetry.gravnet import (
    GravNetConfig,
    condensation_clusters,
    condensation_loss,
)


def _two_showers(shift: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Six cells: three of object 0 around the origin, two of object 1 at ``shift``, a noise
    cell; the first cell of each object has a high beta (its condensation point)."""
    xc = torch.tensor(
        [[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [shift, 0.0], [shift, 0.1], [0.5 * shift, 3.0]]
    )
    logit = torch.tensor([4.0, -4.0, -4.0, 4.0, -4.0, -6.0])
    obj = torch.tensor([0, 0, 0, 1, 1, -1])
    return logit, xc, obj


def test_condensation_loss_attracts_repels_and_keeps_events_apart() -> None:
    logit, xc, obj = _two_showers(3.0)
    one = torch.zeros(6, dtype=torch.long)
    separated = condensation_loss(logit, xc, obj, one)
    # the two showers' points within the repulsion radius: the hinge must cost
    logit_c, xc_c, _ = _two_showers(0.3)
    close = condensation_loss(logit_c, xc_c, obj, one)
    assert close > separated + 0.1
    # a cell far from its own condensation point costs (attraction)
    far = xc.clone()
    far[1] = torch.tensor([1.5, 0.0])
    assert condensation_loss(logit, far, obj, one) > separated + 0.01
    # low beta of the condensation points costs (beta term)
    weak = logit.clone()
    weak[[0, 3]] = -1.0
    assert condensation_loss(weak, xc, obj, one) > separated + 1.0
    # two events in one batch, drawn on top of each other in x_c: no cross-event repulsion
    both = condensation_loss(
        torch.cat([logit, logit]),
        torch.cat([xc, xc]),
        torch.cat([obj, obj]),
        torch.cat([one, one + 1]),
    )
    assert both.item() == pytest.approx(separated.item(), rel=1e-5)
    # gradients reach beta and x_c
    xg = xc.clone().requires_grad_(True)
    lg = logit.clone().requires_grad_(True)
    condensation_loss(lg, xg, obj, one).backward()
    assert xg.grad is not None
    assert lg.grad is not None
    assert torch.isfinite(xg.grad).all()
    assert lg.grad[0] < 0


def test_condensation_inference_and_config() -> None:
    beta = np.array([0.9, 0.05, 0.02, 0.8, 0.03, 0.01])
    xc = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.2], [3.0, 0.0], [3.1, 0.0], [1.0, 0.0]])
    labels = condensation_clusters(beta, xc, t_beta=0.5, t_d=0.3)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, -1])
    rest = condensation_clusters(beta, xc, t_beta=0.5, t_d=0.3, rest=True)
    np.testing.assert_array_equal(rest, [0, 0, 0, 1, 1, 0])
    assert (condensation_clusters(beta, xc, t_beta=0.95, t_d=0.3) == -1).all()
    with pytest.raises(ConfigError):
        GravNetConfig(model="slots")
    with pytest.raises(ConfigError):
        GravNetConfig(model="oc", t_beta=1.5)
    assert GravNetConfig(model="oc", cluster_dims=3).n_outputs == 4


@pytest.mark.slow
def test_condensation_separates_overlapping_showers(tmp_path: Path) -> None:
    """A short OC training on 2-3 overlapping EM showers: on held-out events the clusters
    must have a per-shower median response near 1, about one cluster per shower (the summed
    response would reward fragmentation: every fragment goes to its main shower) and a
    smaller mean |response - 1| than the nearest-seed splitting of the same topo clusters."""
    from heplab.detector.calogeometry import load_geometry
    from heplab.ml.engine import TrainConfig
    from heplab.reconstruction.calorimetry.gravnet import GravNetClusterer, train_gravnet

    geo = load_geometry("endcap")
    kw = {"n_showers": (2, 3), "particles": ("e-", "gamma")}
    train = make_overlap_events(96, seed=11, **kw)
    val = make_overlap_events(8, seed=12, **kw)
    test = make_overlap_events(30, seed=13, **kw)
    cfg = TrainConfig(epochs=8, batch_size=8, lr=5e-3, patience=8, progress_bar=False)
    model, _ = train_gravnet(
        train,
        val,
        out_dir=tmp_path,
        geometry=geo,
        config=GravNetConfig(model="oc"),
        train_config=cfg,
    )

    def ns(ev: ClusterEvent) -> np.ndarray:
        return nearest_seed(ev, geo, model.topo)

    summary, _ = compare_clusterings(test, {"oc": model.assign, "nearest_seed": ns})

    def pieces(assign: Callable[[ClusterEvent], np.ndarray]) -> float:
        n = sum(int(np.sum(assign(ev).T @ ev.energy > 0.01 * ev.e_vis.min())) for ev in test)
        return n / sum(ev.n_showers for ev in test)

    assert summary["oc"]["response"] == pytest.approx(1.0, abs=0.1)
    assert 0.8 < pieces(model.assign) < 1.3
    assert summary["oc"]["mean_abs_dev"] < summary["nearest_seed"]["mean_abs_dev"]
    again = GravNetClusterer.load(tmp_path)
    assert again.config.model == "oc"
    np.testing.assert_array_equal(again.assign(test[0]), model.assign(test[0]))


@pytest.mark.slow
def test_cluster_command_model_choice(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    import heplab.cli

    run = tmp_path / "run"
    args = ["calo", "cluster", "--events", "10", "--test-events", "6", "--epochs", "1"]
    result = CliRunner().invoke(
        heplab.cli.cli, [*args, "--model", "fractions", "--out", str(run), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["gravnet_training"]["model"] == "fractions"
    assert json.loads((run / "gravnet.json").read_text())["config"]["model"] == "fractions"
    # the baselines do not depend on the model choice: topo response near 1
    assert metrics["topo"]["response"] == pytest.approx(1.0, abs=0.15)
    assert metrics["nearest_seed"]["ms_per_event"] > 0
    bad = CliRunner().invoke(heplab.cli.cli, [*args, "--model", "slots", "--out", str(run)])
    assert bad.exit_code != 0
