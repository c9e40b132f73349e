"""Detector cards: built-ins, package data, round trip, validation, formulas, geometry."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from heplab.detector import card_from_dict, list_cards, load_card
from heplab.errors import ConfigError


def test_builtin_cards_are_package_data() -> None:
    files = resources.files("heplab.detector").joinpath("cards")
    for name in list_cards():
        assert files.joinpath(f"{name}.yaml").is_file()
    assert list_cards() == ["atlas", "cms", "ee"]


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_builtin_card_loads_and_round_trips(name: str) -> None:
    card = load_card(name)
    assert card.name == name
    d = card.to_dict()
    text = json.dumps(d, allow_nan=False)  # JSON-serialisable, no inf/nan
    again = card_from_dict(json.loads(text))
    assert again == card
    assert again.to_dict() == d


def test_user_card_with_base(tmp_path: Path) -> None:
    path = tmp_path / "mydet.yaml"
    path.write_text(
        yaml.safe_dump({"base": "atlas", "ecal": {"energy_min": 0.25}, "tracker": {"pt_min": 1.0}})
    )
    card = load_card(path)
    atlas = load_card("atlas")
    assert card.name == "mydet"
    assert card.ecal.energy_min == 0.25
    assert card.tracker.pt_min == 1.0
    assert card.hcal == atlas.hcal
    assert card.ecal.resolution_bins == atlas.ecal.resolution_bins
    assert load_card(str(path)) == card


def _write(tmp_path: Path, data: object, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"colour": "red"}, r"<top>: unknown key\(s\) colour"),
        ({"tracker": {"eta_maxx": 2.0}}, r"tracker: unknown key\(s\) eta_maxx"),
        (
            {
                "ecal": {
                    "resolution": [{"eta_max": 5, "stochastic": -0.1, "noise": 0, "constant": 0}]
                }
            },
            r"ecal\.resolution\[0\]\.stochastic: must be >= 0",
        ),
        (
            {
                "hcal": {
                    "regions": [
                        {"eta_max": 3, "n_eta": 3, "n_phi": 8},
                        {"eta_max": 2, "n_eta": 2, "n_phi": 8},
                    ]
                }
            },
            r"hcal\.regions\[\*\]\.eta_max: must be strictly increasing",
        ),
        (
            {
                "tracker": {
                    "efficiency": {
                        "hadron": {"eta_edges": [0, 2.5], "pt_edges": [1], "values": [[1.5]]}
                    }
                }
            },
            r"tracker\.efficiency\.hadron\.values\[0\]\[0\]: must be <= 1",
        ),
        (
            {
                "tracker": {
                    "efficiency": {
                        "muon": {"eta_edges": [0, 1, 2.5], "pt_edges": [1], "values": [[1.0]]}
                    }
                }
            },
            r"tracker\.efficiency\.muon\.values: needs one row per \|eta\| bin",
        ),
        (
            {
                "tracker": {
                    "efficiency": {
                        "muon": {"eta_edges": [0.5, 2.5], "pt_edges": [1], "values": [[1.0]]}
                    }
                }
            },
            r"eta_edges: must start at 0",
        ),
        ({"tracker": {"eta_max": -1}}, r"tracker\.eta_max: must be > 0"),
        (
            {"tracker": {"pt_resolution": {"bins": [{"eta_max": 1.0, "a": 1e-4, "b": 0.01}]}}},
            r"bins end at",
        ),
        ({"energy_fractions": {"211": [0.7, 0.7]}}, r"energy_fractions\.211: fractions sum to"),
        ({"energy_fractions": {"13": [0.0, 0.1]}}, r"neutrinos and muons never deposit"),
        ({"ecal": {"smearing": "uniform"}}, r"ecal\.smearing: must be one of"),
        ({"pflow": {"chs_dz_max_mm": "1 mm"}}, r"pflow\.chs_dz_max_mm: expected a number"),
        ({"geometry": {"bz_tesla": float("nan")}}, r"geometry\.bz_tesla: must be finite"),
    ],
)
def test_invalid_user_card(tmp_path: Path, override: dict, pattern: str) -> None:
    path = _write(tmp_path, {"base": "atlas", **override})
    with pytest.raises(ConfigError, match=pattern) as info:
        load_card(path)
    assert "bad.yaml" in str(info.value)  # the message names the card


def test_missing_key_and_bad_files(tmp_path: Path) -> None:
    data = load_card("cms").to_dict()
    del data["hcal"]["energy_min"]
    with pytest.raises(
        ConfigError, match=r"detector card 'cms': hcal: missing key\(s\) energy_min"
    ):
        card_from_dict(data)
    with pytest.raises(ConfigError, match="not a built-in card"):
        load_card("lhcb")
    with pytest.raises(ConfigError, match="not a built-in card"):
        load_card(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tracker: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_card(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top"):
        load_card(listing)


def test_tracker_resolution_formulas() -> None:
    atlas = load_card("atlas").tracker
    # barrel: a = 3.4e-4 / GeV, b = 1.5 %
    assert atlas.pt_resolution(100.0, 0.0) == pytest.approx(np.hypot(3.4e-4 * 100, 0.015))
    assert atlas.pt_resolution(10.0, 2.0) == pytest.approx(np.hypot(4.1e-4 * 10, 0.033))
    ee = load_card("ee").tracker
    # ILD: sigma(1/pT) = 2e-5 (+) 1e-3 / (pT sin theta)  =>  sigma(pT)/pT = pT sigma(1/pT)
    for pt, eta in [(1.0, 0.0), (45.0, 1.2), (150.0, 2.0)]:
        sin_t = 1.0 / np.cosh(eta)
        expected = pt * np.hypot(2e-5, 1e-3 / (pt * sin_t))
        assert ee.pt_resolution(pt, eta) == pytest.approx(expected)
    # ATLAS ID TDR impact parameters: 11 um (+) 73 um / (pT sqrt(sin theta))
    assert atlas.d0_resolution(1.0, 0.0) == pytest.approx(np.hypot(0.011, 0.073))
    sin_t = 1.0 / np.cosh(1.5)
    assert atlas.z0_resolution(2.0, 1.5) == pytest.approx(np.hypot(0.087, 0.115 / (2 * sin_t**1.5)))


def test_calorimeter_resolution_formula() -> None:
    ecal = load_card("atlas").ecal
    for e in (1.0, 10.0, 250.0):
        assert ecal.energy_resolution(e, 0.3) == pytest.approx(np.hypot(0.10 / np.sqrt(e), 0.007))
    hcal = load_card("atlas").hcal
    e = 20.0
    assert hcal.energy_resolution(e, 1.0) == pytest.approx(
        np.sqrt(0.5205**2 / e + (1.59 / e) ** 2 + 0.0302**2)
    )


def test_efficiency_table_edges() -> None:
    table = load_card("atlas").tracker.efficiency_hadron
    pt = np.array([0.05, 0.5, 0.99, 1.0, 50.0, 5.0, 5.0])
    eta = np.array([0.0, 0.5, -1.2, 1.4, -1.6, 2.49, 2.6])
    assert table(pt, eta).tolist() == [0.0, 0.70, 0.70, 0.95, 0.85, 0.85, 0.0]


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_tower_grid_is_consistent(name: str) -> None:
    card = load_card(name)
    rng = np.random.default_rng(4)
    for calo in (card.ecal, card.hcal):
        eta = rng.uniform(-calo.eta_max, calo.eta_max, 20000)
        phi = rng.uniform(-np.pi, np.pi, 20000)
        tower, inside = calo.tower_index(eta, phi)
        assert inside.all()
        assert tower.min() >= 0
        assert tower.max() < calo.n_towers
        e_lo, e_hi, p_lo, p_hi = calo.tower_bounds(tower)
        assert np.all((e_lo <= eta) & (eta < e_hi + 1e-12))
        assert np.all((p_lo <= phi + 1e-12) & (phi < p_hi + 1e-12))
        # the centre of a tower is in that tower; outside the coverage is outside
        c_eta, c_phi = calo.tower_centre(tower)
        assert np.array_equal(calo.tower_index(c_eta, c_phi)[0], tower)
        assert not calo.tower_index(np.array([calo.eta_max + 0.01]), np.array([0.0]))[1].any()
    n_expected = 2 * sum(r.n_eta * r.n_phi for r in card.ecal.regions)
    assert card.ecal.n_towers == n_expected
