"""Pythia 8 extraction into the data model: conservation laws and the hard-process truth."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplab.errors import ConfigError
from heplab.generation.catalogue import get_process
from heplab.generation.pythia import generate_gun, generate_pythia, make_pythia


def _settings(name: str, **params: object) -> list[str]:
    e = get_process(name)
    s = e.pythia_settings(e.resolve_params(params))
    beams = ["Beams:idA = 11", "Beams:idB = -11"] if e.beams == "ee" else []
    return [*beams, f"Beams:eCM = {e.sqrts}", *s]


@pytest.fixture(scope="module")
def ttbar() -> ak.Array:
    return generate_pythia(_settings("ttbar-boosted"), 40, seed=11, beamspot_sigma_z=50.0)


def test_final_state_conserves_four_momentum_and_charge(ttbar: ak.Array) -> None:
    p = ttbar.particles
    # all stable particles of a pp event carry the beams' 4-momentum and charge (+2)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(p.energy, axis=1)), 14000.0, rtol=2e-4)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(p.px, axis=1)), 0.0, atol=0.5)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(p.pz, axis=1)), 0.0, atol=3.0)
    assert (ak.to_numpy(ak.sum(p.charge, axis=1)) == 2).all()
    # with c*tau > 10 mm stable: no pi0, no b hadrons, but K0S and Lambda survive
    pids = np.abs(ak.to_numpy(ak.flatten(p.pid)))
    assert not np.isin(pids, [111, 511, 521, 15]).any()
    assert np.isin(pids, [310]).any()


def test_beam_spot_moves_every_vertex(ttbar: ak.Array) -> None:
    pv = ak.to_numpy(ttbar.pv_z)
    assert 20 < pv.std() < 90  # 50 mm beam spot, 40 events
    # prompt particles start at the hard-scatter vertex
    first_vz = ak.to_numpy(ak.fill_none(ak.firsts(ttbar.particles.vz), np.nan))
    assert np.median(np.abs(first_vz - pv)) < 1.0


def _mass(qs: list[dict[str, float]]) -> float:
    e, px, py, pz = (sum(q[k] for q in qs) for k in ("energy", "px", "py", "pz"))
    return float(np.sqrt(max(e**2 - px**2 - py**2 - pz**2, 0.0)))


def test_top_decay_tree(ttbar: ak.Array) -> None:
    top_masses, w_masses = [], []
    for ev in ttbar.partons.to_list():
        tops = [i for i, q in enumerate(ev) if abs(q["pid"]) == 6]
        assert len(tops) == 2
        for t in tops:
            daughters = [q for q in ev if q["mother"] == t]
            assert sorted(abs(q["pid"]) for q in daughters) == [5, 24]
            w = next(i for i, q in enumerate(ev) if q["mother"] == t and abs(q["pid"]) == 24)
            wd = [q for q in ev if q["mother"] == w]
            # all-hadronic sample: W -> q q'
            assert len(wd) == 2
            assert all(1 <= abs(q["pid"]) <= 5 for q in wd)
            # the W daughters rebuild the W, the W and b the top (Breit-Wigner tails allowed)
            w_masses.append(_mass(wd))
            top_masses.append(_mass([ev[t]]))
            # the W is kept as its last copy (after recoiling against the b's radiation),
            # and its daughters come from that copy's decay
            assert w_masses[-1] == pytest.approx(_mass([ev[w]]), rel=1e-3)
    assert np.median(top_masses) == pytest.approx(172.5, abs=1.5)
    assert np.median(w_masses) == pytest.approx(80.4, abs=1.5)
    assert np.mean(np.abs(np.array(w_masses) - 80.4) < 10) > 0.9


def test_same_seed_same_events_and_other_seed_differs() -> None:
    s = _settings("z-ll")
    a = generate_pythia(s, 5, seed=3)
    b = generate_pythia(s, 5, seed=3)
    c = generate_pythia(s, 5, seed=4)
    assert ak.all(a.particles.px == b.particles.px)
    assert not ak.array_equal(a.particles.px, c.particles.px)


def test_ee_events_have_no_underlying_event() -> None:
    ev = generate_pythia(_settings("ee-z"), 20, seed=2)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(ev.particles.energy, axis=1)), 91.2, rtol=1e-4)
    assert (ak.to_numpy(ak.sum(ev.particles.charge, axis=1)) == 0).all()


def test_gun_makes_the_requested_particles() -> None:
    params = {
        "pid": 22,
        "energy": 10.0,
        "energy_max": 100.0,
        "spectrum": "logflat",
        "eta_min": -1.0,
        "eta_max": 1.0,
        "phi_min": -3.14,
        "phi_max": 3.14,
        "n_particles": 2,
    }
    ev = generate_gun(params, 200, seed=5)
    e = ak.to_numpy(ak.flatten(ev.partons.energy))
    assert e.min() >= 10
    assert e.max() <= 100
    # log-flat: as many below sqrt(10*100) as above
    assert 0.4 < np.mean(e < np.sqrt(1000)) < 0.6
    assert ak.all(ak.num(ev.particles) == 2)
    np.testing.assert_allclose(
        ak.to_numpy(ak.sum(ev.particles.energy, axis=1)),
        ak.to_numpy(ak.sum(ev.partons.energy, axis=1)),
        rtol=1e-5,
    )
    with pytest.raises(ConfigError, match="coloured"):
        generate_gun({**params, "pid": 21}, 1, seed=1)
    with pytest.raises(ConfigError, match="unknown"):
        generate_gun({**params, "pid": 9999999}, 1, seed=1)


def test_pythia_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="does not accept"):
        make_pythia(["Top:nonsense = on"], seed=1)
