"""Jet images (centring, rotation, flip, pixelation, colour channels) and the convolutional
taggers (cnn, resnext, pcnn) on synthetic top-like vs QCD-like jets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
from jetsamples import synthetic_jets, synthetic_splits

from heplab.errors import ConfigError, DataError
from heplab.ml.images import jet_images, pixelate
from heplab.ml.metrics import auc
from heplab.reconstruction.jets.taggers import Tagger, get_tagger, list_taggers

FAST = {"epochs": 4, "batch_size": 64, "lr": 3e-3, "patience": 3, "progress_bar": False}
#: CPU-sized settings of the tests (the defaults are bigger).
SMALL_IMAGES = {"npix": 24}
COLOUR = ["pt", "charged_pt", "neutral_pt", "charged_n"]
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "cnn": ("cnn", {**SMALL_IMAGES, "conv": [[8], [16], [16]]}),
    "cnn-colour": ("cnn", {**SMALL_IMAGES, "conv": [[8], [16], [16]], "channels": COLOUR}),
    "resnext": (
        "resnext",
        {"npix": 16, "stem": 8, "widths": [16, 32], "blocks": 1, "group_width": 2},
    ),
    "pcnn": ("pcnn", {"channels": [32, 32]}),
}


@pytest.fixture(scope="module")
def splits() -> dict[str, ak.Array]:
    return synthetic_splits()


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)  # small nets: a second thread only adds contention


def _jets(rows: list[list[tuple[float, float, float, int]]]) -> ak.Array:
    """Jets from constituents (pt [GeV], deta, dphi, charge), at eta = phi = 0."""
    flat = np.array([p for r in rows for p in r], dtype=np.float64).reshape(-1, 4)
    counts = [len(r) for r in rows]
    pt, deta, dphi, charge = flat.T
    cols = {
        "part_px": pt * np.cos(dphi),
        "part_py": pt * np.sin(dphi),
        "part_pz": pt * np.sinh(deta),
        "part_energy": pt * np.cosh(deta),
        "part_deta": deta,
        "part_dphi": dphi,
        "part_charge": charge,
    }
    return ak.zip({k: ak.unflatten(v, counts) for k, v in cols.items()}, depth_limit=1)


def _pixel(u: float, v: float, npix: int, half_width: float = 1.0) -> tuple[int, int]:
    scale = npix / (2 * half_width)
    return int(np.floor((v + half_width) * scale)), int(np.floor((u + half_width) * scale))


RAW = {"centre": "none", "rotate": False, "flip": False}


# -- images ---------------------------------------------------------------------------
def test_particles_land_in_their_pixels_before_and_after_centring() -> None:
    jets = _jets([[(300.0, 0.31, -0.22, 1), (20.0, -0.45, 0.17, 0)]])
    raw = jet_images(jets, npix=40, normalise=False, **RAW)[0, 0]
    assert raw[_pixel(0.31, -0.22, 40)] == pytest.approx(300.0)
    assert raw[_pixel(-0.45, 0.17, 40)] == pytest.approx(20.0)
    assert raw.sum() == pytest.approx(320.0)
    # centred on the hardest constituent (odd npix: the origin is a pixel centre)
    hard = jet_images(jets, npix=41, centre="hardest", rotate=False, flip=False)[0, 0]
    assert hard[20, 20] == pytest.approx(300 / 320, rel=1e-6)
    assert hard[_pixel(-0.45 - 0.31, 0.17 + 0.22, 41)] == pytest.approx(20 / 320, rel=1e-6)
    # centred on the pT centroid: the image's intensity centroid is the image centre
    img = jet_images(synthetic_jets(50, 7), npix=41, rotate=False, flip=False)[:, 0]
    centres = (np.arange(41) + 0.5) / 41 * 2.0 - 1.0
    mean_v = (img.sum(axis=2) * centres).sum(axis=1)
    mean_u = (img.sum(axis=1) * centres).sum(axis=1)
    assert np.abs(mean_u).max() < 0.01
    assert np.abs(mean_v).max() < 0.01


def _two_prong(n: int, seed: int) -> tuple[ak.Array, np.ndarray]:
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    dist = rng.uniform(0.2, 0.6, n)
    lead = rng.uniform(300, 400, n)
    sub = lead * rng.uniform(0.2, 0.8, n)
    # the leading prong off the jet axis too, at a random place
    u0, v0 = rng.uniform(-0.2, 0.2, n), rng.uniform(-0.2, 0.2, n)
    rows = [
        [
            (lead[k], u0[k], v0[k], 1),
            (sub[k], u0[k] + dist[k] * np.cos(angle[k]), v0[k] + dist[k] * np.sin(angle[k]), 0),
        ]
        for k in range(n)
    ]
    return _jets(rows), dist


def test_a_two_prong_jet_is_vertical_after_rotation() -> None:
    jets, _ = _two_prong(40, 0)
    img = jet_images(jets, npix=41, centre="centroid", rotate=True, flip=False)[:, 0]
    assert np.allclose(img[:, :, 20].sum(axis=1), 1.0)  # all of it in the central column
    unrotated = jet_images(jets, npix=41, centre="centroid", rotate=False, flip=False)[:, 0]
    assert (unrotated[:, :, 20].sum(axis=1) < 0.5).sum() > 20


def test_flip_puts_the_second_prong_on_top() -> None:
    jets, dist = _two_prong(40, 1)
    npix, pitch = 41, 2.0 / 41
    img = jet_images(jets, npix=npix, centre="hardest")[:, 0]
    lead = img[:, 20, 20]
    assert np.all(lead > 0.5)
    # the second prong straight above the hardest constituent, at its distance
    rows = np.argmax(np.where(np.arange(npix)[None, :] == 20, 0, img[:, :, 20]), axis=1)
    assert np.all(rows > 20)
    assert np.all(np.abs((rows - 20) * pitch - dist) <= pitch)
    # centred on the centroid, the harder prong (nearer the centroid) is the one on top
    img = jet_images(jets, npix=npix, centre="centroid")[:, 0]
    hardest_row = np.argmax(img[:, :, 20], axis=1)
    assert np.all(hardest_row > 20)
    above, below = img[:, 21:].sum(axis=(1, 2)), img[:, :20].sum(axis=(1, 2))
    assert np.all(below > 0.1)
    assert np.all(above > below)


def test_flipped_images_are_heavier_on_top_and_right() -> None:
    # even npix: rows >= npix / 2 are exactly v >= 0, columns >= npix / 2 are u >= 0; a
    # wide window keeps every constituent (the flip weighs them all, in the window or not)
    img = jet_images(synthetic_jets(200, 4), npix=40, half_width=3.0)[:, 0]
    assert np.all(img[:, 20:].sum(axis=(1, 2)) >= img[:, :20].sum(axis=(1, 2)))
    assert np.all(img[:, :, 20:].sum(axis=(1, 2)) >= img[:, :, :20].sum(axis=(1, 2)))
    raw = jet_images(synthetic_jets(200, 4), npix=40, half_width=3.0, flip=False)[:, 0]
    assert np.any(raw[:, 20:].sum(axis=(1, 2)) < raw[:, :20].sum(axis=(1, 2)))


def test_preprocessed_images_are_rotation_reflection_and_translation_invariant() -> None:
    jets = synthetic_jets(60, 5)
    counts = ak.to_numpy(ak.num(jets["part_px"], axis=1))
    pt = np.hypot(ak.flatten(jets["part_px"]), ak.flatten(jets["part_py"])).to_numpy()
    u = ak.to_numpy(ak.flatten(jets["part_deta"])).astype(np.float64)
    v = ak.to_numpy(ak.flatten(jets["part_dphi"])).astype(np.float64)
    rng = np.random.default_rng(0)
    jet = np.repeat(np.arange(len(counts)), counts)
    a = rng.uniform(0, 2 * np.pi, len(counts))[jet]
    shift_u, shift_v = rng.normal(0, 0.1, len(counts))[jet], rng.normal(0, 0.1, len(counts))[jet]
    ref = pixelate(counts, pt, u, v)
    turned = pixelate(counts, pt, u * np.cos(a) - v * np.sin(a), u * np.sin(a) + v * np.cos(a))
    mirrored = pixelate(counts, pt, -u + shift_u, v + shift_v)
    np.testing.assert_allclose(turned, ref, atol=1e-6)
    np.testing.assert_allclose(mirrored, ref, atol=1e-6)
    assert np.abs(pixelate(counts, pt, u, v, rotate=False) - ref).max() > 0.01


def test_images_are_normalised_and_keep_the_hardest_constituents() -> None:
    jets = synthetic_jets(100, 6)
    img = jet_images(jets, channels=COLOUR)
    assert img.shape == (100, 4, 40, 40)
    assert img.dtype == np.float32
    np.testing.assert_allclose(img.sum(axis=(2, 3)), 1.0, rtol=1e-5)
    raw = jet_images(jets, npix=40, half_width=2.0, normalise=False, max_particles=5)[:, 0]
    pt = np.hypot(jets["part_px"], jets["part_py"])
    top5 = ak.to_numpy(ak.sum(ak.sort(pt, axis=1, ascending=False)[:, :5], axis=1))
    np.testing.assert_allclose(raw.sum(axis=(1, 2)), top5, rtol=1e-5)


def test_charge_channels_see_only_their_particles() -> None:
    jets = _jets([[(100.0, 0.1, 0.2, 1), (50.0, 0.1, 0.2, -1), (80.0, -0.3, -0.1, 0)]])
    img = jet_images(jets, npix=20, channels=[*COLOUR, "n"], normalise=False, **RAW)[0]
    charged, neutral = _pixel(0.1, 0.2, 20), _pixel(-0.3, -0.1, 20)
    pt, charged_pt, neutral_pt, charged_n, n = img
    assert pt[charged] == pytest.approx(150)
    assert pt[neutral] == pytest.approx(80)
    assert charged_pt[charged] == pytest.approx(150)
    assert charged_pt.sum() == pytest.approx(150)
    assert neutral_pt[neutral] == pytest.approx(80)
    assert neutral_pt.sum() == pytest.approx(80)
    assert charged_n[charged] == 2
    assert charged_n.sum() == 2
    assert n.sum() == 3
    no_charge = ak.without_field(jets, "part_charge")
    assert jet_images(no_charge, channels=["pt", "n"]).shape == (1, 2, 40, 40)
    with pytest.raises(DataError, match="part_charge"):
        jet_images(no_charge, channels=["charged_pt"])


# -- taggers --------------------------------------------------------------------------
def test_registry_lists_the_convolutional_taggers() -> None:
    assert {"cnn", "resnext", "pcnn"} <= set(list_taggers())


def test_images_pass_standardisation_and_batching_untouched() -> None:
    from heplab.ml.data import JetDataset, Standardiser, trim_collate

    tagger = get_tagger("cnn", npix=16, channels=COLOUR)
    arrays = tagger._arrays(synthetic_jets(40, 9))
    assert arrays["img"].shape == (40, 4, 16, 16)
    applied = Standardiser.fit(arrays).apply(arrays)
    assert applied["img"] is arrays["img"]
    batch = trim_collate(JetDataset(applied).__getitems__(list(range(5, 15))))
    np.testing.assert_array_equal(batch["img"].numpy(), arrays["img"][5:15])


@pytest.mark.parametrize("case", list(CASES))
def test_convolutional_tagger_learns_saves_and_loads(
    case: str, splits: dict[str, ak.Array], tmp_path: Path
) -> None:
    model, config = CASES[case]
    tagger = get_tagger(model, seed=0, **FAST, **config)
    tagger.fit(splits["train"], splits["val"])
    score = tagger.score(splits["test"])
    assert score.dtype == np.float64
    assert score.shape == (len(splits["test"]),)
    y = ak.to_numpy(splits["test"]["label"])
    assert auc(y, score) > 0.9
    assert tagger.n_params > 0
    if model != "pcnn":
        assert tagger.net_.features[0][0].in_channels == len(tagger.config["channels"])
    loaded = Tagger.load(tagger.save(tmp_path / "model"))
    assert type(loaded) is type(tagger)
    np.testing.assert_array_equal(loaded.score(splits["test"]), score)
    assert loaded.n_params == tagger.n_params


def test_pcnn_score_does_not_depend_on_the_padding(splits: dict[str, ak.Array]) -> None:
    tagger = get_tagger("pcnn", seed=0, channels=[16, 16])
    torch.manual_seed(0)
    net = tagger.build(13, 0).eval()
    from heplab.ml.data import jet_arrays

    jets = splits["test"][:8]
    arrays = jet_arrays(jets, max_particles=128)
    x, mask = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["mask"])
    with torch.inference_mode():
        padded = net(x, mask)
        alone = torch.stack(
            [
                net(x[i : i + 1, : int(mask[i].sum())], mask[i : i + 1, : int(mask[i].sum())])[0]
                for i in range(8)
            ]
        )
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "config", "match"),
    [
        ("cnn", {"npix": 3}, "npix"),
        ("cnn", {"channels": ["pt", "colour"]}, "unknown channel"),
        ("cnn", {"channels": []}, "channels"),
        ("resnext", {"channels": ["pt", "pt"]}, "repeated"),
        ("cnn", {"centre": "middle"}, "centre"),
        ("cnn", {"half_width": 0.0}, "half_width"),
        ("cnn", {"npix": 4, "conv": [[8], [8], [8]]}, "blocks"),
        ("cnn", {"kernel": 4}, "kernel"),
        ("cnn", {"epochs": 0}, "epochs"),
        ("resnext", {"cardinality": 0}, "cardinality"),
        ("resnext", {"widths": []}, "widths"),
        ("pcnn", {"channels": ["pt"]}, "channels"),
        ("pcnn", {"kernel": 2}, "kernel"),
    ],
)
def test_bad_settings_are_refused(model: str, config: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_tagger(model, **config)
