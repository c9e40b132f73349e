"""Particle flow: track subtraction, electrons, MET, and the output record."""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np
import pytest

from heplab.detector import card_from_dict, load_card, simulate
from heplab.errors import DataError
from heplab.events.schema import PARTICLE_FIELDS, PFCAND_FIELDS

N = 20000


def _flat(reco: ak.Array) -> dict[str, np.ndarray]:
    c = ak.flatten(reco.pfcands)
    return {f: ak.to_numpy(c[f]) for f in c.fields}


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_charged_pion_is_subtracted_from_the_hcal(name: str, gun: Callable[..., ak.Array]) -> None:
    card = load_card(name)
    rng = np.random.default_rng(31)
    pt, eta = 20.0, 0.5
    e_true = float(np.hypot(pt * np.cosh(eta), 0.13957))
    reco = simulate(gun(211, pt, eta, N, rng), card, rng)
    ch_count = ak.to_numpy(ak.sum(reco.pfcands.charge != 0, axis=1))
    neu_e = ak.to_numpy(ak.sum(reco.pfcands.energy * (reco.pfcands.charge == 0), axis=1))
    tracked = ch_count == 1
    assert set(np.unique(ch_count)) <= {0, 1}
    assert np.all(ak.to_numpy(ak.flatten(reco.pfcands.pid[reco.pfcands.charge != 0])) == 211)
    # tracked: the deposit is explained by the track; a neutral only from an upward
    # fluctuation beyond significance_min (2) sigma: rare, and small on average
    sigma = e_true * float(card.hcal.energy_resolution(e_true, eta))
    assert np.mean(neu_e[tracked] > 0) < 0.06
    assert neu_e[tracked].mean() < 0.15 * sigma
    # untracked (tracking inefficiency): the whole deposit appears as a neutral hadron
    assert (~tracked).sum() > 100
    assert np.mean(neu_e[~tracked] > 0) > 0.95
    assert neu_e[~tracked].mean() == pytest.approx(e_true, rel=0.05)


@pytest.mark.parametrize("name", ["atlas", "cms", "ee"])
def test_electron_combines_track_and_ecal(name: str, gun: Callable[..., ak.Array]) -> None:
    card = load_card(name)
    rng = np.random.default_rng(32)
    pt, eta = 150.0, 0.3  # high pT: the ECAL beats the tracker (and for ee the reverse)
    e_true = pt * np.cosh(eta)
    reco = simulate(gun(11, pt, eta, N, rng), card, rng)
    c = _flat(reco)
    ele = c["pid"] == 11
    assert np.all(c["charge"][ele] == -1)
    expected_frac = float(card.tracker.efficiency(pt, eta, 11)) * float(
        card.electron.id_efficiency(pt, eta)
    )
    assert ele.sum() / N == pytest.approx(expected_frac, abs=0.01)
    q25, q50, q75 = np.percentile(c["energy"][ele] / e_true, [25, 50, 75])
    width = (q75 - q25) / 1.349  # robust Gaussian width
    combined = float(card.electron_energy_resolution(e_true, eta))
    assert q50 == pytest.approx(1.0, abs=0.2 * combined)
    assert width == pytest.approx(combined, rel=0.15)
    track_only = float(card.tracker.pt_resolution(pt, eta))
    ecal_only = float(card.ecal.energy_resolution(e_true, eta))
    assert combined < min(track_only, ecal_only)


def test_electron_without_combination_keeps_the_track(gun: Callable[..., ak.Array]) -> None:
    data = load_card("atlas").to_dict()
    data["electron"]["combine_with_ecal"] = False
    card = card_from_dict(data)
    rng = np.random.default_rng(33)
    pt, eta = 150.0, 0.3
    reco = simulate(gun(11, pt, eta, N, rng), card, rng)
    c = _flat(reco)
    ele = c["pid"] == 11
    k = pt / np.hypot(c["px"][ele], c["py"][ele]) - 1.0
    assert k.std() == pytest.approx(float(card.tracker.pt_resolution(pt, eta)), rel=0.05)


def test_neutrino_gives_met(build: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(34)
    n = 5000
    phi_nu = rng.uniform(-np.pi, np.pi, n)
    phi = np.stack([phi_nu, phi_nu + np.pi], axis=1).reshape(-1)
    pid = np.tile([12, 22], n)
    eta = np.tile([0.7, -0.2], n)
    reco = simulate(build(pid, 60.0, eta, phi, np.full(n, 2)), card, rng)
    met = ak.to_numpy(reco.met).astype(np.float64)
    dphi = np.angle(np.exp(1j * (ak.to_numpy(reco.met_phi) - phi_nu)))
    e_gamma = 60.0 * np.cosh(0.2)
    sigma = 60.0 * float(card.ecal.energy_resolution(e_gamma, -0.2))
    assert met.mean() == pytest.approx(60.0, abs=4 * sigma / np.sqrt(n))
    assert met.std() == pytest.approx(sigma, rel=0.1)
    assert np.abs(dphi).max() < 0.1  # within the photon's tower
    np.testing.assert_allclose(ak.to_numpy(reco.sumet), met, rtol=1e-5)


def test_met_and_sumet_are_sums_of_candidates(build: Callable[..., ak.Array]) -> None:
    card = load_card("cms")
    rng = np.random.default_rng(35)
    n = 300
    counts = rng.integers(0, 60, n)
    total = int(counts.sum())
    pid = rng.choice([211, -211, 22, 130, 2112, 11, -13, 12, 321], total)
    ev = build(
        pid,
        rng.exponential(5.0, total) + 0.2,
        rng.uniform(-4, 4, total),
        rng.uniform(-np.pi, np.pi, total),
        counts,
    )
    reco = simulate(ev, card, rng)
    px, py = reco.pfcands.px, reco.pfcands.py
    mex = -ak.to_numpy(ak.sum(px, axis=1)).astype(np.float64)
    mey = -ak.to_numpy(ak.sum(py, axis=1)).astype(np.float64)
    np.testing.assert_allclose(ak.to_numpy(reco.met), np.hypot(mex, mey), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        ak.to_numpy(reco.sumet), ak.to_numpy(ak.sum(np.hypot(px, py), axis=1)), rtol=1e-4
    )
    has_met = np.hypot(mex, mey) > 1.0
    dphi = np.angle(
        np.exp(1j * (ak.to_numpy(reco.met_phi)[has_met] - np.arctan2(mey, mex)[has_met]))
    )
    assert np.abs(dphi).max() < 1e-3


def test_output_schema_and_determinism(build: Callable[..., ak.Array]) -> None:
    card = load_card("ee")
    rng = np.random.default_rng(36)
    counts = np.array([5, 0, 3, 40, 1])
    total = int(counts.sum())
    ev = build(
        rng.choice([211, -211, 22, 130, 11, 13], total),
        rng.uniform(0.5, 30, total),
        rng.uniform(-2.5, 2.5, total),
        rng.uniform(-np.pi, np.pi, total),
        counts,
    )
    a = simulate(ev, card, np.random.default_rng(7))
    b = simulate(ev, card, np.random.default_rng(7))
    c = simulate(ev, card, np.random.default_rng(8))
    assert len(a) == len(counts)
    assert a.fields == ["pfcands", "met", "met_phi", "sumet"]
    assert a.pfcands.fields == list(PFCAND_FIELDS)
    form = ak.flatten(a.pfcands)
    for field, dtype in PFCAND_FIELDS.items():
        assert ak.to_numpy(form[field]).dtype == np.dtype(dtype), field
    for field in ("met", "met_phi", "sumet"):
        assert ak.to_numpy(a[field]).dtype == np.float32
    assert ak.num(a.pfcands)[1] == 0
    assert ak.array_equal(a, b)
    assert not ak.array_equal(a, c)
    # neutrals have no impact parameters and are always from the PV
    neutral = form.charge == 0
    assert ak.all(form.d0[neutral] == 0)
    assert ak.all(form.dzerr[neutral] == 0)
    assert ak.all(form.from_pv[neutral])


def test_empty_events(build: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(37)
    empty = build(211, 1.0, 0.0, 0.0, np.zeros(4, dtype=np.int64))
    out = simulate(empty, card, rng)
    assert len(out) == 4
    assert ak.all(ak.num(out.pfcands) == 0)
    assert ak.all(out.met == 0)
    assert ak.all(out.sumet == 0)
    none = simulate(build(211, 1.0, 0.0, 0.0, np.zeros(0, dtype=np.int64)), card, rng)
    assert len(none) == 0
    assert none.pfcands.fields == list(PFCAND_FIELDS)


def test_far_forward_particles_leave_nothing(gun: Callable[..., ak.Array]) -> None:
    card = load_card("cms")
    rng = np.random.default_rng(38)
    reco = simulate(gun(211, 1.0, 7.0, 1000, rng), card, rng)
    assert ak.sum(ak.num(reco.pfcands)) == 0


def _good(build: Callable[..., ak.Array]) -> ak.Array:
    return build(np.array([211, 22]), 10.0, 0.5, np.array([0.0, 1.0]), np.array([2]))


def test_bad_input_raises_data_error(build: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(39)
    ev = _good(build)
    for field in ("px", "energy", "vz"):
        for bad_value in (np.nan, np.inf):
            values = ak.to_numpy(ak.flatten(ev[field])).copy()
            values[1] = bad_value
            bad = ak.with_field(ev, ak.unflatten(values, ak.num(ev)), field)
            with pytest.raises(DataError, match=f"'{field}' has 1 non-finite"):
                simulate(bad, card, rng)
    for field in PARTICLE_FIELDS:
        missing = ev[[f for f in PARTICLE_FIELDS if f != field]]
        with pytest.raises(DataError, match=f"missing field\\(s\\) {field}"):
            simulate(missing, card, rng)
    events = ak.zip({"particles": ev, "pv_z": np.zeros(1, np.float32)}, depth_limit=1)
    with pytest.raises(DataError, match=r"pass events\.particles"):
        simulate(events, card, rng)
    with pytest.raises(DataError, match="ndim"):
        simulate(ak.flatten(ev), card, rng)
    with pytest.raises(DataError, match="pv_z: expected 1 values"):
        simulate(ev, card, rng, pv_z=np.zeros(3))
    with pytest.raises(DataError, match="awkward array"):
        simulate([[1, 2]], card, rng)  # type: ignore[arg-type]


def test_blocks_of_events_are_stitched_back(
    build: Callable[..., ak.Array], monkeypatch: pytest.MonkeyPatch
) -> None:
    import heplab.detector.response as response

    data = load_card("ee").to_dict()
    for table in data["tracker"]["efficiency"].values():
        table["values"] = [[1.0] * len(row) for row in table["values"]]
    card = card_from_dict(data)
    rng = np.random.default_rng(40)
    counts = rng.integers(0, 12, 200)
    counts[[0, 57, 199]] = 0
    total = int(counts.sum())
    pid = rng.choice([211, -211, 22, 130], total)
    eta = rng.uniform(-3.0, 3.0, total)
    ev = build(pid, rng.uniform(0.5, 20, total), eta, rng.uniform(-np.pi, np.pi, total), counts)
    visible_charged = (np.abs(pid) == 211) & (np.abs(eta) < card.tracker.eta_max)
    expected = np.bincount(np.repeat(np.arange(200), counts)[visible_charged], minlength=200)
    monkeypatch.setattr(response, "_BLOCK", 5)  # many blocks, cut inside and between events
    reco = simulate(ev, card, rng)
    assert len(reco) == 200
    assert np.array_equal(ak.to_numpy(ak.sum(reco.pfcands.charge != 0, axis=1)), expected)
    mex = -ak.to_numpy(ak.sum(reco.pfcands.px, axis=1))
    np.testing.assert_allclose(
        ak.to_numpy(reco.met),
        np.hypot(mex, ak.to_numpy(ak.sum(reco.pfcands.py, axis=1))),
        rtol=1e-4,
        atol=1e-3,
    )


def test_energy_fractions_and_invisible_ids(build: Callable[..., ak.Array]) -> None:
    card = load_card("atlas")
    rng = np.random.default_rng(41)
    n = 4000
    # a stable K0S shares 30 / 70 % between ECAL and HCAL; a neutralino leaves nothing
    ev = build(np.tile([310, 1000022], n), 100.0, 0.3, np.tile([0.5, 2.0], n), np.full(n, 2))
    reco = simulate(ev, "atlas", rng)
    c = _flat(reco)
    e_k = np.hypot(100.0 * np.cosh(0.3), 0.497611)
    e_gamma = c["energy"][c["pid"] == 22].sum() / n
    e_nh = c["energy"][c["pid"] == 130].sum() / n
    assert e_gamma == pytest.approx(0.3 * e_k, rel=0.02)
    assert e_nh == pytest.approx(0.7 * e_k, rel=0.02)
    assert set(np.unique(c["pid"])) == {22, 130}
    assert ak.to_numpy(reco.met).mean() == pytest.approx(100.0, rel=0.05)  # the neutralino
    assert card.invisible(np.array([12, 1000022, 211])).tolist() == [True, True, False]
