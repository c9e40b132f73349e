"""Neural jet taggers (dnn, pfn, efn, particlenet, part, transformer) on synthetic jets.

The jets are physics-shaped and consistent: massless constituents with (px, py, pz, E)
from (pT, eta, phi); top-like signal = three hard prongs placed so that the jet mass is
near 172 GeV; QCD-like background = one hard core with a soft wide spray. 20-60
constituents per jet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from jetsamples import synthetic_jets, synthetic_splits

from heplab.cli import main
from heplab.events.parquet import write_parquet
from heplab.ml.data import JetDataset, jet_arrays, trim_collate
from heplab.ml.metrics import auc
from heplab.reconstruction.jets.taggers import Tagger, get_tagger, list_taggers
from heplab.reconstruction.jets.taggers.nets import DeepSets, knn

NEURAL = ("dnn", "pfn", "efn", "particlenet", "part", "transformer")
FAST = {"epochs": 4, "batch_size": 64, "lr": 3e-3, "patience": 3, "progress_bar": False}


@pytest.fixture(scope="module")
def splits() -> dict[str, ak.Array]:
    return synthetic_splits()


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


def test_registry_lists_the_neural_taggers() -> None:
    assert set(NEURAL) <= set(list_taggers())


def test_synthetic_signal_mass_is_near_the_top() -> None:
    jets = synthetic_jets(400, 0)
    m = ak.to_numpy(jets["jet_mass"])
    y = ak.to_numpy(jets["label"]) == 1
    assert 150 < np.median(m[y]) < 195
    assert np.median(m[~y]) < 120


@pytest.mark.parametrize("model", NEURAL)
def test_neural_tagger_learns_saves_and_loads(
    model: str, splits: dict[str, ak.Array], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    tagger = get_tagger(model, seed=0, work_dir=str(work), **FAST)
    tagger.fit(splits["train"], splits["val"])
    score = tagger.score(splits["test"])
    assert score.dtype == np.float64
    assert score.shape == (len(splits["test"]),)
    y = ak.to_numpy(splits["test"]["label"])
    assert auc(y, score) > 0.95  # every model reaches ~1.0; shuffled labels stay below
    assert tagger.n_params > 0
    saved = tagger.save(tmp_path / "run" / "model")
    assert (saved / "weights.pt").is_file()
    state = torch.load(saved / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    torch.load(work / "checkpoints" / "best.ckpt", weights_only=True)
    loaded = Tagger.load(saved)
    np.testing.assert_array_equal(loaded.score(splits["test"]), score)
    assert loaded.n_params == tagger.n_params
    # nothing outside the run and work dirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "work"]


def test_shuffled_labels_do_not_learn(splits: dict[str, ak.Array]) -> None:
    # an untrained network's score already correlates with the jet structure (AUC anywhere
    # in ~0.2-0.86 on this data), so the check is that it stays below the trained threshold
    rng = np.random.default_rng(0)
    train = ak.with_field(
        splits["train"], rng.permutation(ak.to_numpy(splits["train"]["label"])), "label"
    )
    tagger = get_tagger("pfn", seed=0, **FAST).fit(train, splits["val"])
    y = ak.to_numpy(splits["test"]["label"])
    assert auc(y, tagger.score(splits["test"])) < 0.95


def test_unknown_setting_is_refused() -> None:
    from heplab.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting"):
        get_tagger("pfn", nope=1)
    with pytest.raises(ConfigError, match="epochs"):
        get_tagger("particlenet", epochs="many")


def test_batches_are_trimmed_to_their_longest_jet(splits: dict[str, ak.Array]) -> None:
    arrays = jet_arrays(splits["test"][:50], max_particles=128)
    assert arrays["x"].shape == (50, 128, 13)
    data = JetDataset(arrays)
    batch = trim_collate(data.__getitems__(list(range(10, 26))))
    longest = int(ak.max(ak.num(splits["test"][10:26]["part_px"], axis=1)))
    assert batch["x"].shape[1] == longest == batch["mask"].shape[1] == batch["v"].shape[1]
    assert batch["mask"][:, -1].any()


def _efn_inputs(pt: np.ndarray, deta: np.ndarray, dphi: np.ndarray) -> list[torch.Tensor]:
    v = np.stack([pt, np.zeros_like(pt), np.zeros_like(pt), pt], -1)[None].astype(np.float32)
    coords = np.stack([deta, dphi], -1)[None].astype(np.float32)
    mask = np.ones((1, len(pt)), bool)
    return [torch.from_numpy(coords), torch.from_numpy(v), torch.from_numpy(mask)]


def test_efn_is_irc_safe() -> None:
    torch.manual_seed(0)
    net = DeepSets(13, (16, 16), (16,), energy_flow=True).eval()
    rng = np.random.default_rng(0)
    pt, deta, dphi = rng.uniform(1, 100, 12), rng.normal(0, 0.3, 12), rng.normal(0, 0.3, 12)
    with torch.no_grad():
        ref = net(*_efn_inputs(pt, deta, dphi))
        soft = net(*_efn_inputs(np.append(pt, 0.0), np.append(deta, 0.5), np.append(dphi, -0.4)))
        split_pt = np.concatenate([pt[:-1], [0.3 * pt[-1], 0.7 * pt[-1]]])
        split = net(*_efn_inputs(split_pt, np.append(deta, deta[-1]), np.append(dphi, dphi[-1])))
    torch.testing.assert_close(soft, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(split, ref, rtol=1e-5, atol=1e-6)


def test_particlenet_knn_never_picks_padding() -> None:
    torch.manual_seed(0)
    points = torch.randn(4, 20, 2)
    counts = torch.tensor([20, 15, 9, 5])
    mask = torch.arange(20)[None, :] < counts[:, None]
    points[~mask] = 0.0  # padding at the origin, right among the real particles
    idx, valid = knn(points, mask, k=8)
    assert idx.shape == (4, 20, 8)
    for b in range(4):
        real = idx[b][valid[b]]
        assert (real < counts[b]).all()
        if counts[b] > 8:  # enough real neighbours: every one is real and not self
            assert valid[b][: counts[b]].all()
        self_idx = torch.arange(20)[:, None].expand(-1, 8)
        assert not (valid[b] & (idx[b] == self_idx)).any()


def test_cli_trains_pfn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    for i, (split, n) in enumerate({"train": 400, "val": 150, "test": 300}.items()):
        (data / split).mkdir(parents=True)
        write_parquet(synthetic_jets(n, 10 + i), data / split / "jets.parquet")
    cfg = tmp_path / "pfn.yaml"
    cfg.write_text("epochs: 4\nbatch_size: 64\nlr: 0.003\nprogress_bar: false\n")
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(tmp_path))
    main(["jets", "train", "pfn", "--data", str(data), "--out", "RUN", "--config", str(cfg)])
    assert set(os.listdir(tmp_path)) - before == {"RUN"}
    metrics = json.loads((tmp_path / "RUN" / "metrics.json").read_text())
    assert metrics["test"]["auc"] > 0.6
    assert metrics["params"] > 0
    assert (tmp_path / "RUN" / "model" / "weights.pt").is_file()
