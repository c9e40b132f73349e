"""Unit tests of heplab.reconstruction.jets.cluster_events on hand-made events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets import LABELS, OUTPUT_FIELDS, cluster_events


def _mass(p: list[tuple[float, float, float, float]]) -> float:
    vs = [vector.obj(pt=a, eta=b, phi=c, mass=d) for a, b, c, d in p]
    total = vs[0]
    for v in vs[1:]:
        total = total + v
    return float(total.mass)


def test_back_to_back_pencil_jets(events_factory):
    # two jets of two massless particles each: exact pT and invariant mass
    j1 = [(300.0, 0.1, 0.2, 0.0, 211, 1), (100.0, 0.15, 0.25, 0.0, 22, 0)]
    j2 = [(250.0, -0.3, 0.2 - np.pi, 0.0, -211, -1), (50.0, -0.35, 0.1 - np.pi, 0.0, 130, 0)]
    ev = events_factory([j1 + j2 + [(5.0, 0.0, 0.0, 0.0, 12, 0)]])  # + a neutrino
    jets = cluster_events(ev, ptmin=20.0)
    assert len(jets) == 2
    assert jets.jet_index.tolist() == [0, 1]
    assert jets.event_id.tolist() == [0, 0]
    v1 = vector.obj(pt=300, eta=0.1, phi=0.2, mass=0) + vector.obj(
        pt=100, eta=0.15, phi=0.25, mass=0
    )
    np.testing.assert_allclose(jets.jet_pt[0], v1.pt, rtol=1e-5)
    np.testing.assert_allclose(jets.jet_mass[0], _mass([p[:4] for p in j1]), rtol=1e-4)
    np.testing.assert_allclose(jets.jet_mass[1], _mass([p[:4] for p in j2]), rtol=1e-4)
    np.testing.assert_allclose(jets.jet_energy[0], v1.E, rtol=1e-5)
    assert jets.jet_nparticles.tolist() == [2, 2]
    # two-particle jets: soft drop keeps both (z > 0.1), tau2 = tau3 = 0
    np.testing.assert_allclose(jets.jet_sdmass, jets.jet_mass, rtol=1e-4)
    assert jets.jet_tau2.tolist() == [0.0, 0.0]
    assert jets.jet_tau3.tolist() == [0.0, 0.0]
    assert np.all(jets.jet_tau1.to_numpy() > 0)
    # constituents pT-ordered; particle classes
    assert ak.to_list(jets.part_pid) == [[211, 22], [-211, 130]]
    assert ak.to_list(jets.part_charge) == [[1, 0], [-1, 0]]
    assert ak.to_list(jets.part_isChargedHadron) == [[1, 0], [1, 0]]
    assert ak.to_list(jets.part_isPhoton) == [[0, 1], [0, 0]]
    assert ak.to_list(jets.part_isNeutralHadron) == [[0, 0], [0, 1]]
    assert ak.to_list(jets.part_d0val) == [[0, 0], [0, 0]]


def test_schema_and_dtypes(events_factory, spray_factory):
    rng = np.random.default_rng(1)
    ev = events_factory([spray_factory(200, 0, 0, 20, 0.1, rng)], event_id=[41])
    jets = cluster_events(ev)
    assert tuple(jets.fields) == OUTPUT_FIELDS
    assert jets.event_id.tolist() == [41]
    form = jets.layout.form
    assert form.content("event_id").primitive == "int64"
    assert form.content("jet_index").primitive == "int32"
    assert form.content("jet_pt").primitive == "float32"
    assert form.content("jet_nparticles").primitive == "int32"
    assert form.content("jet_parton_pid").primitive == "int32"
    assert form.content("part_px").content.primitive == "float32"
    assert form.content("part_pid").content.primitive == "int32"
    for name in LABELS:
        assert form.content(name).primitive == "int8"
    # no partons: no label set
    assert sum(int(jets[name][0]) for name in LABELS) == 0


def test_empty_inputs_give_same_schema(events_factory, spray_factory):
    rng = np.random.default_rng(2)
    full = cluster_events(events_factory([spray_factory(100, 0, 0, 10, 0.1, rng)]))
    no_events = cluster_events(events_factory([[]])[:0])
    no_particles = cluster_events(events_factory([[], []]))
    soft = cluster_events(events_factory([[(5.0, 0.0, 0.0, 0.0, 211, 1)]]), ptmin=20.0)
    for empty in (no_events, no_particles, soft):
        assert len(empty) == 0
        assert empty.layout.form == full.layout.form


def test_some_events_without_jets(events_factory, spray_factory):
    rng = np.random.default_rng(3)
    rows = [[], spray_factory(80, 1.0, 1.0, 8, 0.1, rng), [(3.0, 0, 0, 0, 22, 0)]]
    rows.append(
        spray_factory(60, -1.0, 2.0, 8, 0.1, rng) + spray_factory(90, 1.0, -1.0, 8, 0.1, rng)
    )
    jets = cluster_events(events_factory(rows))
    assert jets.event_id.tolist() == [1, 3, 3]
    assert jets.jet_index.tolist() == [0, 0, 1]
    assert jets.jet_pt[1] > jets.jet_pt[2]


def test_constituent_offsets_and_dphi_wrap(events_factory):
    # hard particle near phi = pi, a soft one across the +-pi boundary
    hard = (100.0, 0.5, 3.10, 0.0, 211, 1)
    soft = (1.0, 0.7, 3.10 + 0.1 - 2 * np.pi, 0.0, 22, 0)
    jets = cluster_events(events_factory([[hard, soft]]))
    assert len(jets) == 1
    eta_j, phi_j = float(jets.jet_eta[0]), float(jets.jet_phi[0])
    deta, dphi = jets.part_deta[0].to_numpy(), jets.part_dphi[0].to_numpy()
    np.testing.assert_allclose(deta, [0.5 - eta_j, 0.7 - eta_j], atol=1e-5)
    expected = (np.array([3.10, 3.20]) - phi_j + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dphi, expected, atol=1e-5)
    assert 0.09 < dphi[1] < 0.11  # not -2 pi + 0.1
    assert np.all(np.abs(dphi) <= np.pi)


def test_truncation_keeps_hardest(events_factory):
    pts = [12.0, 3.0, 40.0, 7.0, 25.0, 1.0, 9.0, 30.0, 2.0, 5.0]
    parts = [(pt, 0.01 * k, 0.02 * k, 0.0, 211, 1) for k, pt in enumerate(pts)]
    full = cluster_events(events_factory([parts]))
    cut = cluster_events(events_factory([parts]), max_constituents=4)
    assert cut.jet_nparticles.tolist() == [10]
    assert ak.num(cut.part_px).tolist() == [4]
    pt_kept = np.hypot(cut.part_px[0].to_numpy(), cut.part_py[0].to_numpy())
    np.testing.assert_allclose(pt_kept, [40, 30, 25, 12], rtol=1e-5)
    # the jet itself and its substructure use all constituents
    total = sum(
        (vector.obj(pt=p[0], eta=p[1], phi=p[2], mass=0.0) for p in parts[1:]),
        start=vector.obj(pt=parts[0][0], eta=parts[0][1], phi=parts[0][2], mass=0.0),
    )
    assert float(cut.jet_pt[0]) == pytest.approx(total.pt, rel=1e-5)
    for name in ("jet_pt", "jet_mass", "jet_sdmass", "jet_tau1", "jet_tau2", "jet_tau3"):
        assert float(cut[name][0]) == float(full[name][0])


def test_chs_drops_pileup_charged(events_factory):
    pv = (100.0, 0.0, 0.0, 0.0, 211, 1)
    pu_charged = (30.0, 0.1, 0.1, 0.0, 211, 1, {"from_pv": False})
    neutral = (20.0, -0.1, 0.1, 0.0, 22, 0)
    ev = events_factory([[pv]], pfcands=[[pv, pu_charged, neutral]])
    with_chs = cluster_events(ev)  # auto -> pfcands
    without = cluster_events(ev, chs=False)
    truth = cluster_events(ev, inputs="particles")
    assert float(with_chs.jet_nparticles[0]) == 2
    assert float(without.jet_nparticles[0]) == 3
    assert float(truth.jet_nparticles[0]) == 1
    assert float(without.jet_pt[0]) > float(with_chs.jet_pt[0])


def test_truth_drops_pileup_particles(events_factory):
    ev = events_factory([[(100.0, 0.0, 0.0, 0.0, 211, 1), (50.0, 0.1, 0.0, 0.0, 211, 1)]])
    pileup = ak.to_numpy(ak.flatten(ev.particles.pileup)).copy()
    pileup[1] = 3
    particles = ak.with_field(ev.particles, ak.unflatten(pileup, ak.num(ev.particles)), "pileup")
    jets = cluster_events(ak.with_field(ev, particles, "particles"))
    assert jets.jet_nparticles.tolist() == [1]


@pytest.mark.parametrize("algorithm", ["antikt", "kt", "ca"])
def test_algorithms_and_eta_cut(events_factory, spray_factory, algorithm):
    rng = np.random.default_rng(4)
    rows = [
        spray_factory(200, 0.0, 0.0, 10, 0.05, rng) + spray_factory(150, 2.5, 3.0, 10, 0.05, rng)
    ]
    jets = cluster_events(events_factory(rows), algorithm=algorithm, R=0.4)
    assert len(jets) == 2
    central = cluster_events(events_factory(rows), algorithm=algorithm, R=0.4, eta_max=2.0)
    assert len(central) == 1
    assert abs(float(central.jet_eta[0])) < 0.2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"R": 0.0},
        {"R": -0.4},
        {"algorithm": "siscone"},
        {"max_constituents": 0},
        {"ptmin": -1.0},
        {"inputs": "tracks"},
        {"eta_max": 0.0},
    ],
)
def test_bad_config(events_factory, kwargs):
    with pytest.raises(ConfigError):
        cluster_events(events_factory([[]]), **kwargs)


def test_nan_momenta_and_missing_inputs(events_factory):
    ev = events_factory([[(100.0, 0.0, 0.0, 0.0, 211, 1)], [(50.0, 0.0, 0.0, 0.0, 211, 1)]])
    px = ak.to_numpy(ak.flatten(ev.particles.px)).copy()
    px[1] = np.nan
    bad = ak.with_field(
        ev, ak.with_field(ev.particles, ak.unflatten(px, [1, 1]), "px"), "particles"
    )
    with pytest.raises(DataError, match="NaN"):
        cluster_events(bad)
    with pytest.raises(DataError, match="pfcands"):
        cluster_events(ev, inputs="pfcands")
