"""The recurrent (``rnn``) and Lorentz-equivariant (``lorentznet``) taggers.

Physics checks: both learn top-like vs QCD-like synthetic jets; the RNN never reads the
padding and, ordered by impact-parameter significance, learns b-like displaced tracks that
carry no kinematic information; LorentzNet's score is exactly invariant (float64) under
boosts and rotations of all 4-vectors without the beams, and with them only under rotations
about the beam axis.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from jetsamples import synthetic_jets

from heplab.errors import ConfigError, DataError
from heplab.ml.metrics import auc
from heplab.reconstruction.jets.taggers import Tagger, get_tagger, list_taggers
from heplab.reconstruction.jets.taggers.lorentz import LGEB, LorentzNet
from heplab.reconstruction.jets.taggers.sequence import IP_COLUMNS, RNN, sequence_arrays

FAST = {"epochs": 4, "batch_size": 64, "lr": 3e-3, "patience": 3, "progress_bar": False}


@pytest.fixture(scope="module")
def splits() -> dict[str, ak.Array]:
    return {
        "train": synthetic_jets(300, 1),
        "val": synthetic_jets(100, 2),
        "test": synthetic_jets(200, 3),
    }


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


def _learns_saves_and_loads(tagger: Tagger, splits: dict[str, ak.Array], tmp_path: Path) -> None:
    tagger.fit(splits["train"], splits["val"])
    score = tagger.score(splits["test"])
    assert score.dtype == np.float64
    assert score.shape == (len(splits["test"]),)
    assert auc(ak.to_numpy(splits["test"]["label"]), score) > 0.9
    loaded = Tagger.load(tagger.save(tmp_path / "model"))
    assert type(loaded) is type(tagger)
    np.testing.assert_array_equal(loaded.score(splits["test"]), score)
    assert loaded.n_params == tagger.n_params


def test_registry_lists_both() -> None:
    assert {"rnn", "lorentznet"} <= set(list_taggers())


# -- rnn ------------------------------------------------------------------------------------
def test_rnn_learns_saves_loads_and_ignores_the_batch(
    splits: dict[str, ak.Array], tmp_path: Path
) -> None:
    tagger = get_tagger("rnn", seed=0, **FAST)
    _learns_saves_and_loads(tagger, splits, tmp_path)
    assert tagger.n_params == 24_449
    # a jet scored alone (its batch trimmed to its own length) = scored among longer jets
    test = splits["test"]
    n = ak.to_numpy(ak.num(test["part_px"], axis=1))
    short = int(np.argmin(n))
    assert n.max() > n[short] + 10
    together = tagger.score(test)[short]
    np.testing.assert_allclose(tagger.score(test[short : short + 1]), [together], rtol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        {"cell": "lstm"},
        {"cell": "gru"},
        {"cell": "lstm", "bidirectional": True, "layers": 2},
        {"cell": "gru", "bidirectional": True},
    ],
)
def test_rnn_never_reads_the_padding(config: dict[str, object]) -> None:
    torch.manual_seed(0)
    net = RNN(13, **config).eval()  # type: ignore[arg-type]
    x = torch.randn(3, 30, 13)
    lengths = (7, 30, 18)
    mask = torch.arange(30)[None, :] < torch.tensor(lengths)[:, None]
    x[~mask] = 1.0e3  # garbage where the padding is: packed sequences never read it
    with torch.no_grad():
        batched = net(x, mask)
        alone = torch.cat(
            [net(x[i : i + 1, :k], mask[i : i + 1, :k]) for i, k in enumerate(lengths)]
        )
        naive = net(x, torch.ones_like(mask))  # reading the garbage changes the score
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)
    assert (naive - batched).abs()[[0, 2]].min() > 1e-3


def _with_ip(jets: ak.Array, displaced: np.ndarray, seed: int) -> ak.Array:
    """Impact parameters [mm]: prompt tracks d0, dz ~ N(0, 20 um) with sigma = 20 um; in a
    ``displaced`` (b-like) jet ~3 of its tracks come from a decay vertex, d0, dz ~ 0.3-1 mm
    (lifetime-signed: positive downstream along the jet); neutral particles have no track
    (value and error 0)."""
    rng = np.random.default_rng(seed)
    counts = ak.to_numpy(ak.num(jets["part_px"], axis=1))
    total = int(counts.sum())
    charged = ak.to_numpy(ak.flatten(jets["part_charge"])) != 0
    sigma = np.where(charged, 0.02, 0.0)
    d0, dz = rng.normal(0, 1, total) * sigma, rng.normal(0, 1, total) * sigma
    rank = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    jet = np.repeat(np.arange(len(counts)), counts)
    from_decay = displaced[jet] & charged & (rank % 7 == 3)  # ~3 of the charged tracks
    d0 = np.where(from_decay, rng.uniform(0.3, 1.0, total), d0)
    dz = np.where(from_decay, rng.uniform(0.3, 1.0, total), dz)
    for name, values in zip(IP_COLUMNS, (d0, sigma, dz, sigma), strict=True):
        jets = ak.with_field(jets, ak.unflatten(values.astype(np.float32), counts), name)
    return jets


def test_d0sig_orders_by_significance_and_keeps_the_most_significant() -> None:
    jets = _with_ip(synthetic_jets(40, 5), np.arange(40) % 2 == 0, 5)
    sig = np.abs(jets["part_d0val"] / ak.where(jets["part_d0err"] > 0, jets["part_d0err"], 1))
    full = sequence_arrays(jets, order="d0sig", max_particles=128)
    pt = sequence_arrays(jets, max_particles=128)
    assert full["x"].shape == (40, 128, 17)
    np.testing.assert_array_equal(full["mask"], pt["mask"])  # padding stays at the end
    for i in range(40):
        k = int(full["mask"][i].sum())
        s = np.abs(full["x"][i, :k, 14])  # psi(d0 / sigma): monotonic in |significance|
        assert (np.diff(s) <= 0).all()
        np.testing.assert_allclose(np.sort(s), np.sort(np.log1p(ak.to_numpy(sig[i]))), rtol=1e-5)
        # the same particles, reordered: the jet 4-vector is unchanged
        np.testing.assert_allclose(full["v"][i, :k].sum(0), pt["v"][i, :k].sum(0), rtol=1e-5)
    clipped = sequence_arrays(jets, order="d0sig", max_particles=10)
    assert clipped["x"].shape == (40, 10, 17)
    kept = np.sort(np.abs(clipped["x"][:, :, 14]), axis=1)
    best = np.stack([np.sort(np.log1p(np.sort(ak.to_numpy(s))[-10:])) for s in sig])
    np.testing.assert_allclose(kept, best, rtol=1e-5)


def test_d0sig_refuses_jets_without_impact_parameters() -> None:
    tagger = get_tagger("rnn", order="d0sig", **FAST)
    with pytest.raises(DataError, match=r"part_d0val, part_d0err, part_dzval, part_dzerr"):
        tagger.fit(synthetic_jets(60, 0))
    partial = ak.without_field(_with_ip(synthetic_jets(20, 0), np.zeros(20, bool), 0), "part_dzerr")
    with pytest.raises(DataError, match=r"column\(s\) part_dzerr \("):
        sequence_arrays(partial, order="d0sig")


def test_d0sig_rnn_learns_displaced_tracks() -> None:
    # labels independent of the kinematics: only the displaced tracks tell b-like jets
    rng = np.random.default_rng(7)
    data = {}
    for split, (n, seed) in {"train": (300, 11), "val": (100, 12), "test": (200, 13)}.items():
        b_like = rng.random(n) < 0.5
        jets = _with_ip(synthetic_jets(n, seed), b_like, seed)
        data[split] = ak.with_field(jets, b_like.astype(np.int8), "label")
    # RNNIP's 15 most significant tracks
    tagger = get_tagger("rnn", seed=0, order="d0sig", max_particles=15, **FAST)
    tagger.fit(data["train"], data["val"])
    assert tagger.inputs_["n_x"] == 17
    score = tagger.score(data["test"])
    assert auc(ak.to_numpy(data["test"]["label"]), score) > 0.9


# -- lorentznet -----------------------------------------------------------------------------
def test_lorentznet_learns_saves_and_loads(splits: dict[str, ak.Array], tmp_path: Path) -> None:
    # the 32 hardest particles carry the jet mass; the (N x N) cost drops ~3x from 60
    tagger = get_tagger("lorentznet", seed=0, max_particles=32, **{**FAST, "epochs": 2})
    _learns_saves_and_loads(tagger, splits, tmp_path)
    assert 10_000 <= tagger.n_params <= 30_000  # sized for a CPU


def _four_vectors(b: int, n: int, seed: int) -> torch.Tensor:
    """Float64 (px, py, pz, E) [GeV] of jets around (eta, phi) = (0.5, 1), masses < 0.5."""
    g = torch.Generator().manual_seed(seed)
    pt = torch.rand(b, n, generator=g, dtype=torch.float64) * 100 + 1
    eta = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.3 + 0.5
    phi = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.3 + 1.0
    m = torch.rand(b, n, generator=g, dtype=torch.float64) * 0.5
    px, py, pz = pt * phi.cos(), pt * phi.sin(), pt * eta.sinh()
    return torch.stack([px, py, pz, (px**2 + py**2 + pz**2 + m**2).sqrt()], dim=-1)


def _boost(v: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The Lorentz boost of velocity ``beta`` (3-vector) on ``(..., 4)`` (px, py, pz, E)."""
    b2 = (beta * beta).sum()
    gamma = 1 / torch.sqrt(1 - b2)
    p, e = v[..., :3], v[..., 3:]
    bp = (p * beta).sum(-1, keepdim=True)
    return torch.cat([p + ((gamma - 1) * bp / b2 - gamma * e) * beta, gamma * (e - bp)], -1)


def _rotate(v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.cat([v[..., :3] @ r.T, v[..., 3:]], dim=-1)


def _rotation_z(angle: float) -> torch.Tensor:
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


@pytest.fixture
def event() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    v = _four_vectors(3, 20, 0)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 15:] = False
    mask[2, 5:] = False
    x = torch.randn(3, 20, 13, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return x, v * mask.unsqueeze(-1), mask


#: The jets' direction in _four_vectors, (eta, phi) = (0.5, 1).
_AXIS = torch.tensor([np.cos(1.0), np.sin(1.0), np.sinh(0.5)], dtype=torch.float64)


def _lorentz(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A random rotation after a boost with beta = 0.9 along the jets' axis."""
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2)).double())
    q = q * torch.sign(torch.det(q))  # proper rotation
    return _rotate(_boost(v, 0.9 * _AXIS / _AXIS.norm()), q) * mask.unsqueeze(-1)


def test_lorentznet_is_lorentz_invariant_without_beams(
    event: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    x, v, mask = event
    torch.manual_seed(0)
    net = LorentzNet(13, beams=False).double().eval()
    with torch.no_grad():
        ref = net(x, v, mask)
        transformed = net(x, _lorentz(v, mask), mask)
        stretched = v.clone()
        stretched[..., :3] *= 1.1  # changes every mass: not a Lorentz transformation
        changed = net(x, stretched, mask)
        garbage_v, garbage_x = v.clone(), x.clone()
        garbage_v[~mask], garbage_x[~mask] = 1.0e3, 1.0e3
        padded = net(garbage_x, garbage_v, mask)
        net.chunk = 1  # one jet per dense pass, each trimmed to its own length
        chunked = net(garbage_x, garbage_v, mask)
    torch.testing.assert_close(transformed, ref, rtol=0, atol=1e-10)
    assert (changed - ref).abs().min() > 1e-3
    torch.testing.assert_close(padded, ref, rtol=0, atol=1e-12)  # padding is never read
    torch.testing.assert_close(chunked, ref, rtol=0, atol=1e-12)


def test_lgeb_four_vectors_are_equivariant(
    event: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    x, v, mask = event
    torch.manual_seed(0)
    block = LGEB(8, 3, c_weight=0.1).double()
    h = torch.randn(3, 20, 8, dtype=torch.float64)
    edges = (mask.unsqueeze(2) & mask.unsqueeze(1) & ~torch.eye(20, dtype=torch.bool)).double()
    with torch.no_grad():
        h1, x1 = block(h, v, x[..., :3], edges)
        h2, x2 = block(h, _lorentz(v, mask), x[..., :3], edges)
    torch.testing.assert_close(h2, h1, rtol=0, atol=1e-10)  # scalars stay invariant
    torch.testing.assert_close(x2, _lorentz(x1, mask), rtol=1e-10, atol=1e-8)  # x -> Lx
    assert (x1 - v).abs().max() > 1e-3  # and the update did something


def test_lorentznet_beams_keep_only_rotations_about_the_beam(
    event: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    x, v, mask = event
    torch.manual_seed(0)
    net = LorentzNet(13, beams=True).double().eval()
    with torch.no_grad():
        ref = net(x, v, mask)
        azimuth = net(x, _rotate(v, _rotation_z(0.7)) * mask.unsqueeze(-1), mask)
        boosted = net(x, _lorentz(v, mask), mask)
    torch.testing.assert_close(azimuth, ref, rtol=0, atol=1e-10)
    assert (boosted - ref).abs().max() > 1e-4


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "config", "match"),
    [
        ("rnn", {"cell": "transformer"}, "cell"),
        ("rnn", {"order": "eta"}, "order"),
        ("rnn", {"hidden": 0}, "hidden"),
        ("lorentznet", {"scalars": "all"}, "scalars"),
        ("lorentznet", {"pool": "max"}, "pool"),
        ("lorentznet", {"p_scale": 0.0}, "p_scale"),
        ("lorentznet", {"beams": "yes"}, "beams"),
    ],
)
def test_bad_settings_are_refused(name: str, config: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_tagger(name, **config)
