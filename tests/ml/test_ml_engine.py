"""The training engine (heplab.ml.engine) on a toy problem: stopping, best weights, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from heplab.ml.data import JetDataset
from heplab.ml.engine import TrainConfig, fit, loss_fn, make_loader


class Toy(nn.Module):
    input_names = ("x", "mask")

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net((x * mask.unsqueeze(-1)).sum(1)).squeeze(-1)


def toy_data(n: int, seed: int, noise_labels: bool = False) -> JetDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.float32)
    x = rng.normal(0, 1, (n, 6, 4)).astype(np.float32)
    if not noise_labels:
        x[:, :, 0] += 0.5 * (2 * y[:, None] - 1)
    mask = np.arange(6)[None, :] < rng.integers(2, 7, n)[:, None]
    return JetDataset({"x": x, "mask": mask, "y": y})


def val_loss(net: nn.Module, data: JetDataset) -> float:
    net.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for b in make_loader(data, 64, shuffle=False):
            total += float(loss_fn(net(b["x"], b["mask"]), b["y"], 2)) * len(b["y"])
            n += len(b["y"])
    return total / n


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    # pure-noise labels and a large learning rate: the val loss rises after an epoch or two
    train, val = toy_data(256, 0, noise_labels=True), toy_data(256, 1, noise_labels=True)
    torch.manual_seed(0)
    net = Toy()
    cfg = TrainConfig(epochs=40, batch_size=32, lr=0.03, patience=2, progress_bar=False)
    res = fit(net, train, val, config=cfg, out_dir=tmp_path)
    assert res.epochs_run < 40  # stopped early
    assert res.val_losses[-1] > res.best_val_loss
    assert res.best_epoch == int(np.argmin(res.val_losses))
    assert val_loss(net, val) == pytest.approx(res.best_val_loss, rel=1e-5)
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(saved[k], v)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert "state_dict" in ckpt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "checkpoints"]


def test_same_seed_same_weights(tmp_path: Path) -> None:
    train, val = toy_data(200, 0), toy_data(100, 1)
    outs = []
    for i in range(2):
        torch.manual_seed(0)
        net = Toy()
        cfg = TrainConfig(epochs=2, batch_size=32, seed=3, progress_bar=False)
        fit(net, train, val, config=cfg, out_dir=tmp_path / str(i))
        with torch.no_grad():
            outs.append(net(val.tensors["x"], val.tensors["mask"]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_rerun_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    train, val = toy_data(200, 0), toy_data(100, 1)
    cfg = TrainConfig(epochs=2, batch_size=32, patience=10, progress_bar=False)
    first = fit(Toy(), train, val, config=cfg, out_dir=tmp_path)
    assert first.epochs_run == 2
    cfg.epochs = 3
    second = fit(Toy(), train, val, config=cfg, out_dir=tmp_path)
    assert second.epochs_run == 3  # two restored from the checkpoint + one new
    assert second.val_losses[:2] == first.val_losses


def test_onecycle_schedule_and_bad_settings(tmp_path: Path) -> None:
    from heplab.errors import ConfigError

    cfg = TrainConfig(epochs=1, batch_size=64, schedule="onecycle", progress_bar=False)
    res = fit(Toy(), toy_data(128, 0), toy_data(64, 1), config=cfg, out_dir=tmp_path)
    assert res.epochs_run == 1
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")


class MeanRegressor(nn.Module):
    """A network with its own objective: least squares of a scalar target, no ``y`` key."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((self.lin(batch["features"]).squeeze(-1) - batch["target"]) ** 2).mean()


class _Rows(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, features: torch.Tensor, target: torch.Tensor) -> None:
        self.features, self.target = features, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[i], "target": self.target[i]}


def _stack(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def test_own_training_loss_and_collate_fn(tmp_path: Path) -> None:
    # target = features . (1, -2, 0.5) + 0.3: the engine minimises the network's own loss
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(512, 3, generator=gen)
    target = feats @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    train, val = _Rows(feats[:384], target[:384]), _Rows(feats[384:], target[384:])
    torch.manual_seed(0)
    net = MeanRegressor()
    cfg = TrainConfig(epochs=30, batch_size=32, lr=0.05, weight_decay=0.0, progress_bar=False)
    res = fit(net, train, val, config=cfg, out_dir=tmp_path, collate_fn=_stack)
    assert res.best_val_loss < 1e-3  # the exact linear solution is reachable
    assert torch.allclose(net.lin.weight.detach(), torch.tensor([[1.0, -2.0, 0.5]]), atol=0.05)
