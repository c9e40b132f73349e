"""Calorimeter response: energy resolution and scale, tower position, propagation."""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np
import pytest

from heplab.detector import card_from_dict, load_card, simulate
from heplab.detector.calorimeter import group_keys, smear_energy

N = 20000

# (pid, pT, eta) per card: a central and a forward point of each calorimeter
ECAL_POINTS = {
    "atlas": [(22, 20.0, 0.4), (22, 10.0, 3.6)],
    "cms": [(22, 40.0, 0.4), (22, 30.0, 2.2)],
    "ee": [(22, 5.0, 0.4), (22, 30.0, 2.0)],
}
HCAL_POINTS = {
    "atlas": [(130, 50.0, 0.4), (2112, 20.0, 2.2)],
    "cms": [(130, 50.0, 0.4), (130, 20.0, 3.5)],
    "ee": [(130, 20.0, 0.4), (2112, 10.0, 1.9)],
}


def _flat(reco: ak.Array) -> dict[str, np.ndarray]:
    c = ak.flatten(reco.pfcands)
    return {f: ak.to_numpy(c[f]) for f in c.fields}


def _check_energy_response(
    card_name: str,
    points: list[tuple[int, float, float]],
    out_pid: int,
    gun: Callable[..., ak.Array],
    std_tol: Callable[..., float],
) -> None:
    card = load_card(card_name)
    calo = card.ecal if out_pid == 22 else card.hcal
    rng = np.random.default_rng(21)
    for pid, pt, eta in points:
        reco = simulate(gun(pid, pt, eta, N, rng), card, rng)
        c = _flat(reco)
        assert np.all(c["pid"] == out_pid)
        assert np.all(ak.num(reco.pfcands) <= 1)
        # one candidate per particle (bar a rare downward fluctuation below threshold)
        assert len(c["pid"]) > 0.999 * N
        e_true = float(ak.mean(gun(pid, pt, eta, 1, rng).energy))
        r = c["energy"].astype(np.float64) / e_true
        expected = float(calo.energy_resolution(e_true, eta))
        assert r.mean() == pytest.approx(1.0, abs=4 * expected / np.sqrt(N)), (pid, pt, eta)
        assert r.std() / expected == pytest.approx(1.0, abs=std_tol(r)), (pid, pt, eta)


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_ecal_photon_energy_resolution(
    name: str, gun: Callable[..., ak.Array], std_tol: Callable[..., float]
) -> None:
    _check_energy_response(name, ECAL_POINTS[name], 22, gun, std_tol)


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_hcal_neutral_hadron_energy_resolution(
    name: str, gun: Callable[..., ak.Array], std_tol: Callable[..., float]
) -> None:
    _check_energy_response(name, HCAL_POINTS[name], 130, gun, std_tol)


def test_gaussian_smearing_option(
    gun: Callable[..., ak.Array], std_tol: Callable[..., float]
) -> None:
    data = load_card("cms").to_dict()
    data["hcal"]["smearing"] = "gaussian"
    card = card_from_dict(data)
    rng = np.random.default_rng(22)
    reco = simulate(gun(130, 100.0, 0.0, N, rng), card, rng)
    r = _flat(reco)["energy"].astype(np.float64) / np.hypot(100.0, 0.497611)
    expected = float(card.hcal.energy_resolution(100.0, 0.0))
    assert r.std() / expected == pytest.approx(1.0, abs=std_tol(r))
    # Gaussian: symmetric; log-normal (the default) would have a positive skew
    skew = np.mean((r - r.mean()) ** 3) / r.std() ** 3
    assert abs(skew) < 0.1


def test_lognormal_smearing_moments() -> None:
    rng = np.random.default_rng(23)
    e = np.full(200000, 7.0)
    out = smear_energy(e, np.full(len(e), 0.3), "lognormal", rng)
    assert out.min() > 0
    assert out.mean() == pytest.approx(7.0, rel=4 * 0.3 / np.sqrt(len(e)))
    assert out.std() == pytest.approx(2.1, rel=0.01)


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_single_photon_lands_in_its_tower(name: str, build: Callable[..., ak.Array]) -> None:
    card = load_card(name)
    rng = np.random.default_rng(24)
    n = 3000
    pt = 30.0
    eta = rng.uniform(-2.0, 2.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    reco = simulate(build(22, pt, eta, phi, np.ones(n, dtype=np.int64)), card, rng)
    assert np.all(ak.num(reco.pfcands) == 1)
    c = ak.flatten(reco.pfcands)
    assert np.all(ak.to_numpy(c.pid) == 22)
    cpx, cpy, cpz = (ak.to_numpy(c[f]).astype(np.float64) for f in ("px", "py", "pz"))
    c_eta = np.arcsinh(cpz / np.hypot(cpx, cpy))
    c_phi = np.arctan2(cpy, cpx)
    t_true, _ = card.ecal.tower_index(eta, phi)
    t_cand, _ = card.ecal.tower_index(c_eta, c_phi)
    assert np.array_equal(t_true, t_cand)
    # the direction is spread uniformly over the tower (Delphes SmearTowerCenter)
    e_lo, e_hi, p_lo, p_hi = card.ecal.tower_bounds(t_true)
    u_eta = (c_eta - e_lo) / (e_hi - e_lo)
    u_phi = (c_phi - p_lo) / (p_hi - p_lo)
    for u in (u_eta, u_phi):
        assert u.mean() == pytest.approx(0.5, abs=4 * np.sqrt(1 / 12 / n))
        assert u.std() == pytest.approx(np.sqrt(1 / 12), rel=0.05)
    # energy within 5 sigma of the resolution
    e = ak.to_numpy(c.energy)
    e_true = pt * np.cosh(eta)
    sigma = e_true * card.ecal.energy_resolution(e_true, eta)
    assert np.all(np.abs(e - e_true) < 5 * sigma)


def test_neutral_position_centre_option(gun: Callable[..., ak.Array]) -> None:
    data = load_card("atlas").to_dict()
    data["pflow"]["neutral_position"] = "centre"
    card = card_from_dict(data)
    rng = np.random.default_rng(25)
    reco = simulate(gun(22, 30.0, 0.73, 500, rng), card, rng)
    c = ak.flatten(reco.pfcands)
    c_eta = np.arcsinh(ak.to_numpy(c.pz) / np.hypot(ak.to_numpy(c.px), ak.to_numpy(c.py)))
    t, _ = card.ecal.tower_index(np.full(500, 0.73), np.zeros(500))
    centre, _ = card.ecal.tower_centre(t)
    np.testing.assert_allclose(c_eta, centre, atol=1e-5)


def test_charged_particles_bend_and_loopers_stay_inside(gun: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")  # 2 T, R = 1.15 m: pT < 0.3 * 2 * 1.15 / 2 = 0.345 GeV loops
    rng = np.random.default_rng(26)
    # a looper below the tracking threshold leaves nothing at all
    reco = simulate(gun(211, 0.3, 0.0, 2000, rng), card, rng)
    assert ak.sum(ak.num(reco.pfcands)) == 0
    # an untracked pion beyond the tracker (|eta| = 3) shows up as a neutral hadron,
    # turned in phi by asin(r / 2 r_c) (clockwise for positive charge)
    n = 4000
    pt, eta = 5.0, 3.0
    reco = simulate(gun(211, pt, eta, n, rng, phi=np.zeros(n)), card, rng)
    c = ak.flatten(reco.pfcands)
    assert np.all(ak.to_numpy(c.pid) == 130)
    phi = np.arctan2(ak.to_numpy(c.py), ak.to_numpy(c.px))
    r_hit = 3.51 / np.sinh(eta)  # m, endcap at |z| = 3.51 m
    expected = -np.arcsin(r_hit * 0.3 * 2.0 / (2 * pt))
    # candidates are spread uniformly over the tower containing the impact point
    t_exp, _ = card.hcal.tower_index(np.full(1, eta), np.full(1, expected))
    t_got, _ = card.hcal.tower_index(np.full(len(phi), eta), phi)
    assert np.all(t_got == t_exp[0])


def test_vertex_z_moves_the_impact_eta(gun: Callable[..., ak.Array]) -> None:
    data = load_card("atlas").to_dict()
    data["pflow"]["neutral_position"] = "centre"
    card = card_from_dict(data)
    rng = np.random.default_rng(27)
    n = 200
    # a photon at eta 0 from z = +100 mm hits the barrel (R = 1150 mm) at eta = asinh(100/1150)
    reco = simulate(gun(22, 20.0, 0.0, n, rng, vz=100.0), card, rng)
    c = ak.flatten(reco.pfcands)
    c_eta = np.arcsinh(ak.to_numpy(c.pz) / np.hypot(ak.to_numpy(c.px), ak.to_numpy(c.py)))
    t, _ = card.ecal.tower_index(np.full(n, np.arcsinh(100.0 / 1150.0)), np.zeros(n))
    np.testing.assert_allclose(c_eta, card.ecal.tower_centre(t)[0], atol=1e-5)


def test_group_keys_matches_unique() -> None:
    rng = np.random.default_rng(28)
    for n in (0, 1, 1000):
        key = rng.integers(0, 500, n).astype(np.int64)
        u, inv = group_keys(key)
        u2, inv2 = np.unique(key, return_inverse=True)
        assert np.array_equal(u, u2)
        assert np.array_equal(inv, inv2.reshape(-1))
