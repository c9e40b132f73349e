"""Tracker response: momentum resolution, efficiency, impact parameters, pile-up flag."""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np
import pytest

from heplab.detector import load_card, simulate

N = 20000

PION_POINTS = {
    "atlas": [(1.0, 0.2), (20.0, 1.0), (100.0, 2.0)],
    "cms": [(1.0, 0.2), (20.0, 1.0), (100.0, 2.0)],
    "ee": [(1.0, 0.2), (20.0, 1.0), (100.0, 2.0)],
}
MUON_POINTS = [(50.0, 0.3), (500.0, 1.2)]


def _flat(reco: ak.Array) -> dict[str, np.ndarray]:
    c = ak.flatten(reco.pfcands)
    return {f: ak.to_numpy(c[f]) for f in c.fields}


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_pion_track_pt_resolution(
    name: str, gun: Callable[..., ak.Array], std_tol: Callable[..., float]
) -> None:
    card = load_card(name)
    rng = np.random.default_rng(11)
    for pt, eta in PION_POINTS[name]:
        reco = simulate(gun(211, pt, eta, N, rng), card, rng)
        c = _flat(reco)
        ch = c["pid"] == 211
        assert ch.sum() > 0.6 * N
        k = pt / np.hypot(c["px"][ch], c["py"][ch]) - 1.0  # curvature residual
        expected = float(card.tracker.pt_resolution(pt, eta))
        assert abs(k.mean()) < 4 * expected / np.sqrt(ch.sum())
        assert k.std() / expected == pytest.approx(1.0, abs=std_tol(k)), (pt, eta)


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_muon_pt_resolution_combines_spectrometer(
    name: str, gun: Callable[..., ak.Array], std_tol: Callable[..., float]
) -> None:
    card = load_card(name)
    rng = np.random.default_rng(12)
    for pt, eta in MUON_POINTS:
        reco = simulate(gun(13, pt, eta, N, rng), card, rng)
        c = _flat(reco)
        tracked = np.abs(c["charge"]) == 1
        k = pt / np.hypot(c["px"][tracked], c["py"][tracked]) - 1.0
        expected = float(card.muon_pt_resolution(pt, eta))
        assert k.std() / expected == pytest.approx(1.0, abs=std_tol(k)), (pt, eta)
        tracker_only = float(card.tracker.pt_resolution(pt, eta))
        if card.muon.spectrometer_bins:
            assert expected < tracker_only  # the spectrometer helps
        else:
            assert expected == pytest.approx(tracker_only)


def test_muon_candidate_identity_and_no_calorimeter_energy(gun: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(13)
    reco = simulate(gun(13, 40.0, 0.5, N, rng), card, rng)  # mu-: pid 13, charge -1
    c = _flat(reco)
    assert set(np.unique(c["pid"])) <= {13, -211}  # identified muons, failures as hadrons
    assert np.all(c["charge"] == -1)  # no neutral leftovers: muons deposit nothing
    frac = np.mean(c["pid"] == 13) * len(c["pid"]) / N
    expected = 0.99 * 0.95  # tracking x identification (barrel, pT > 10 GeV)
    assert frac == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / N))
    mu = c["pid"] == 13
    m2 = c["energy"][mu] ** 2 - c["px"][mu] ** 2 - c["py"][mu] ** 2 - c["pz"][mu] ** 2
    assert np.sqrt(np.maximum(m2, 0)).mean() == pytest.approx(0.10566, abs=0.01)


@pytest.mark.parametrize(
    ("name", "pid", "pt", "eta", "eff"),
    [
        ("atlas", 211, 0.7, 0.5, 0.70),
        ("atlas", -211, 5.0, -2.0, 0.85),
        ("atlas", 211, 0.3, 0.0, 0.0),  # below the 0.4 GeV threshold
        ("atlas", 211, 5.0, 2.7, 0.0),  # outside the tracker
        ("cms", 11, 0.5, 2.0, 0.50),
        ("ee", 211, 0.5, 1.0, 0.95),
    ],
)
def test_tracking_efficiency(
    gun: Callable[..., ak.Array], name: str, pid: int, pt: float, eta: float, eff: float
) -> None:
    card = load_card(name)
    assert float(card.tracker.efficiency(pt, eta, abs(pid))) == pytest.approx(eff)
    rng = np.random.default_rng(14)
    reco = simulate(gun(pid, pt, eta, N, rng), card, rng)
    c = _flat(reco)
    frac = np.count_nonzero(c["charge"] != 0) / N
    tol = 4 * np.sqrt(max(eff * (1 - eff), 1e-4) / N)
    assert frac == pytest.approx(eff, abs=tol)


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_impact_parameter_resolution(
    name: str, gun: Callable[..., ak.Array], std_tol: Callable[..., float]
) -> None:
    card = load_card(name)
    rng = np.random.default_rng(15)
    for pt, eta in [(1.0, 0.0), (10.0, 1.5)]:
        reco = simulate(gun(211, pt, eta, N, rng), card, rng, pv_z=np.zeros(N))
        c = _flat(reco)
        ch = c["charge"] != 0
        sd0 = float(card.tracker.d0_resolution(pt, eta))
        sz0 = float(card.tracker.z0_resolution(pt, eta))
        np.testing.assert_allclose(c["d0err"][ch], sd0, rtol=1e-5)
        np.testing.assert_allclose(c["dzerr"][ch], sz0, rtol=1e-5)
        d0, dz = c["d0"][ch].astype(np.float64), c["dz"][ch].astype(np.float64)
        assert d0.std() / sd0 == pytest.approx(1.0, abs=std_tol(d0))
        assert dz.std() / sz0 == pytest.approx(1.0, abs=std_tol(dz))
        assert abs(d0.mean()) < 4 * sd0 / np.sqrt(len(d0))


def test_displaced_vertex_gives_truth_d0_and_z0(gun: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(16)
    n = 4000
    # produced at (2 mm, 0, 10 mm), pv at z = 4 mm, moving along +y (phi = pi/2) and -y
    for phi, d0_true in [(np.pi / 2, 2.0), (-np.pi / 2, -2.0)]:
        ev = gun(211, 20.0, 0.8, n, rng, phi=np.full(n, phi), vx=2.0, vz=10.0)
        reco = simulate(ev, card, rng, pv_z=np.full(n, 4.0))
        c = _flat(reco)
        ch = c["charge"] != 0
        sd0 = float(card.tracker.d0_resolution(20.0, 0.8))
        sz0 = float(card.tracker.z0_resolution(20.0, 0.8))
        assert c["d0"][ch].mean() == pytest.approx(d0_true, abs=4 * sd0 / np.sqrt(ch.sum()))
        assert c["dz"][ch].mean() == pytest.approx(6.0, abs=4 * sz0 / np.sqrt(ch.sum()))
        assert not c["from_pv"][ch].any()  # 6 mm away from the hard-scatter vertex


def test_z0_along_the_track_and_default_pv(gun: Callable[..., ak.Array]) -> None:
    card = load_card("cms")
    rng = np.random.default_rng(17)
    n = 4000
    # vertex (1, 1, 3) mm, track along phi = pi/4, eta = 1: the point of closest approach
    # is sqrt(2) mm back along the track, so z0 = 3 - sqrt(2) sinh(1)
    ev = gun(211, 30.0, 1.0, n, rng, phi=np.full(n, np.pi / 4), vx=1.0, vy=1.0, vz=3.0)
    reco = simulate(ev, card, rng, pv_z=np.zeros(n))
    c = _flat(reco)
    ch = c["charge"] != 0
    expected = 3.0 - np.sqrt(2.0) * np.sinh(1.0)
    assert c["dz"][ch].mean() == pytest.approx(expected, abs=0.01)
    assert np.abs(c["d0"][ch]).mean() < 0.05  # (1, 1) lies on the track's line
    # without pv_z the hard-scatter vertex is the median vz of the pileup == 0 particles
    reco2 = simulate(ev, card, np.random.default_rng(1))
    c2 = _flat(reco2)
    ch2 = c2["charge"] != 0
    assert c2["dz"][ch2].mean() == pytest.approx(expected - 3.0, abs=0.01)


def test_pileup_flag_from_dz(build: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(18)
    n = 5000
    # per event: one hard-scatter pion at the pv, one pile-up pion 25 mm away, one photon
    counts = np.full(n, 3)
    pid = np.tile([211, -211, 22], n)
    vz = np.tile([5.0, 30.0, 5.0], n)
    pileup = np.tile([0, 1, 0], n)
    phi = rng.uniform(-np.pi, np.pi, 3 * n)
    ev = build(pid, 15.0, 0.4, phi, counts, vz=vz, pileup=pileup)
    reco = simulate(ev, card, rng, pv_z=np.full(n, 5.0))
    c = _flat(reco)
    hs = c["pid"] == 211
    pu = c["pid"] == -211
    assert c["from_pv"][hs].mean() > 0.995
    assert not c["from_pv"][pu].any()
    assert c["from_pv"][c["charge"] == 0].all()  # neutrals are always True
