"""Unit tests of heplab.reconstruction.jets.substructure (soft drop, N-subjettiness, subjets)."""

from __future__ import annotations

import awkward as ak
import fastjet
import numpy as np
import pytest
import vector

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets import (
    cluster_events,
    exclusive_subjets,
    nsubjettiness,
    softdrop,
    subjet_pair_masses,
)


def _jets(rows: list[list[tuple[float, float, float, float]]]) -> ak.Array:
    """Jagged [jet][constituent] px, py, pz, E from (pt, eta, phi, mass) tuples."""
    counts = [len(r) for r in rows]
    flat = np.array([p for r in rows for p in r], dtype=float).reshape(-1, 4)
    v = vector.array({"pt": flat[:, 0], "eta": flat[:, 1], "phi": flat[:, 2], "mass": flat[:, 3]})
    rec = ak.zip({"px": v.px, "py": v.py, "pz": v.pz, "E": v.E})
    return ak.unflatten(rec, counts)


def _prong(pt: float, eta: float, phi: float, n: int, width: float, rng: np.random.Generator):
    shares = rng.dirichlet(np.full(n, 5.0)) * pt
    return [(s, eta + rng.normal(0, width), phi + rng.normal(0, width), 0.0) for s in shares]


def _random_jets(n_jets: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_jets):
        n = int(rng.integers(1, 60))
        pt = rng.exponential(10.0, n) + 0.2
        rows.append(
            list(zip(pt, rng.normal(0, 0.3, n), rng.normal(0, 0.3, n), np.zeros(n), strict=True))
        )
    return _jets(rows)


def _top_and_qcd(rng: np.random.Generator) -> ak.Array:
    """A synthetic three-prong 'top' jet and a one-prong jet of massless particles."""
    top = _prong(350, 0.0, 0.0, 12, 0.01, rng)
    top += _prong(250, 0.35, 0.25, 10, 0.01, rng)
    top += _prong(200, -0.2, 0.4, 10, 0.01, rng)
    one = _prong(800, 0.0, 0.0, 30, 0.01, rng)
    return _jets([top, one])


def test_three_prong_mass_and_softdrop():
    rng = np.random.default_rng(5)
    jets = _top_and_qcd(rng)
    prongs = [
        vector.obj(pt=350, eta=0.0, phi=0.0, mass=0),
        vector.obj(pt=250, eta=0.35, phi=0.25, mass=0),
    ]
    prongs.append(vector.obj(pt=200, eta=-0.2, phi=0.4, mass=0))
    m3 = (prongs[0] + prongs[1] + prongs[2]).mass
    mass = ak.sum(vector.zip({k: jets[k] for k in ("px", "py", "pz", "E")}), axis=1).mass
    assert float(mass[0]) == pytest.approx(m3, rel=0.03)
    groomed = softdrop(jets)
    # all three prongs are hard: soft drop keeps them
    assert float(groomed.mass[0]) == pytest.approx(float(mass[0]), rel=1e-9)
    assert float(groomed.zg[0]) > 0.1
    assert float(groomed.mass[1]) < 20.0


def test_softdrop_removes_soft_wide_angle_radiation():
    core = [(300.0, 0.0, 0.0, 0.0), (200.0, 0.05, 0.1, 0.0)]
    soft = [(10.0, 0.6, -0.4, 0.0)]  # z = 10 / 510 < 0.1 at the first declustering
    jets = _jets([core + soft])
    groomed = softdrop(jets, zcut=0.1, beta=0.0, R=0.8)
    core_mass = (
        vector.obj(pt=300, eta=0, phi=0, mass=0) + vector.obj(pt=200, eta=0.05, phi=0.1, mass=0)
    ).mass
    assert float(groomed.mass[0]) == pytest.approx(core_mass, rel=1e-9)
    assert float(groomed.rg[0]) == pytest.approx(np.hypot(0.05, 0.1), rel=1e-3)
    # with zcut = 0.01 the soft particle is kept
    kept = softdrop(jets, zcut=0.01)
    full = ak.sum(vector.zip({k: jets[k] for k in ("px", "py", "pz", "E")}), axis=1)
    assert float(kept.mass[0]) == pytest.approx(float(full.mass[0]), rel=1e-9)


@pytest.mark.parametrize(("beta", "zcut"), [(0.0, 0.1), (1.0, 0.1), (2.0, 0.2)])
def test_softdrop_equals_fastjet_contrib(beta, zcut):
    jets = _random_jets(60, seed=int(10 * beta + 100 * zcut))
    ours = softdrop(jets, beta=beta, zcut=zcut, R=0.8)
    cs = fastjet.ClusterSequence(jets, fastjet.JetDefinition(fastjet.cambridge_algorithm, 1000.0))
    ref = cs.exclusive_jets_softdrop_grooming(njets=1, beta=beta, symmetry_cut=zcut, R0=0.8)
    np.testing.assert_allclose(
        ours.mass.to_numpy(), np.maximum(ref.msoftdrop.to_numpy(), 0), atol=1e-6
    )
    np.testing.assert_allclose(ours.pt.to_numpy(), ref.ptsoftdrop.to_numpy(), rtol=1e-9)
    has_split = ref.symmetrysoftdrop.to_numpy() >= 0
    np.testing.assert_allclose(
        ours.zg.to_numpy()[has_split], ref.symmetrysoftdrop.to_numpy()[has_split], rtol=1e-9
    )


def test_nsubjettiness_one_vs_three_prongs():
    jets = _top_and_qcd(np.random.default_rng(6))
    tau1 = nsubjettiness(jets, 1, R=0.8)
    tau2 = nsubjettiness(jets, 2, R=0.8)
    tau3 = nsubjettiness(jets, 3, R=0.8)
    assert tau1[1] < 0.1 * tau1[0]  # one prong: small tau1
    assert tau3[0] / tau2[0] < 0.3  # three prongs: small tau3/tau2
    assert tau1[0] > tau2[0] > tau3[0] > 0


def test_nsubjettiness_equals_fastjet_contrib():
    jets = _random_jets(40, seed=7)
    cs = fastjet.ClusterSequence(jets, fastjet.JetDefinition(fastjet.cambridge_algorithm, 1000.0))
    ref = cs.njettiness(njets=[1, 2, 3], R0=0.8, axes_definition="KT_Axes", beta=1.0).to_numpy()
    for k, n in enumerate((1, 2, 3)):
        np.testing.assert_allclose(nsubjettiness(jets, n, R=0.8), ref[:, k], rtol=1e-7, atol=1e-12)


def test_few_constituents():
    jets = _jets([[(100.0, 0, 0, 0)], [(50.0, 0, 0, 0), (40.0, 0.1, 0.1, 0)], []])
    assert nsubjettiness(jets, 1, R=0.8).tolist()[0] == 0.0
    assert nsubjettiness(jets, 2, R=0.8).tolist()[:2] == [0.0, 0.0]
    assert nsubjettiness(jets, 3, R=0.8).tolist() == [0.0, 0.0, 0.0]
    assert nsubjettiness(jets, 1, R=0.8)[1] > 0
    sub = exclusive_subjets(jets, 3)
    assert ak.num(sub).tolist() == [1, 2, 0]
    assert ak.num(subjet_pair_masses(jets, 3)).tolist() == [0, 1, 0]
    groomed = softdrop(jets)
    assert groomed.pt.tolist()[0] == pytest.approx(100.0)
    assert groomed.pt.tolist()[2] == 0.0


def test_exclusive_subjets_and_pair_masses():
    rng = np.random.default_rng(8)
    jets = _top_and_qcd(rng)
    sub = exclusive_subjets(jets, 3)
    assert ak.num(sub).tolist() == [3, 3]
    pt = sub.pt.to_numpy()
    assert np.all(np.diff(pt, axis=1) <= 0)  # pT-ordered
    np.testing.assert_allclose(pt[0], [350, 250, 200], rtol=0.05)
    masses = subjet_pair_masses(jets, 3)
    assert ak.num(masses).tolist() == [3, 3]
    p = [
        vector.obj(pt=350, eta=0.0, phi=0.0, mass=0),
        vector.obj(pt=250, eta=0.35, phi=0.25, mass=0),
    ]
    p.append(vector.obj(pt=200, eta=-0.2, phi=0.4, mass=0))
    expected = [(p[0] + p[1]).mass, (p[0] + p[2]).mass, (p[1] + p[2]).mass]
    np.testing.assert_allclose(masses[0].to_numpy(), expected, rtol=0.05)


def test_inputs_in_other_coordinates():
    rows = [[(100.0, 0.0, 0.0, 0.0), (50.0, 0.2, 0.1, 0.0)]]
    cartesian = _jets(rows)
    ptetaphi = ak.zip(
        {"pt": [[100.0, 50.0]], "eta": [[0.0, 0.2]], "phi": [[0.0, 0.1]], "mass": [[0.0, 0.0]]}
    )
    np.testing.assert_allclose(
        softdrop(ptetaphi).mass.to_numpy(), softdrop(cartesian).mass.to_numpy()
    )
    named = ak.zip(
        {"px": cartesian.px, "py": cartesian.py, "pz": cartesian.pz, "energy": cartesian.E}
    )
    np.testing.assert_allclose(nsubjettiness(named, 1, R=0.8), nsubjettiness(cartesian, 1, R=0.8))


def test_bad_arguments():
    jets = _jets([[(100.0, 0, 0, 0)]])
    with pytest.raises(ConfigError):
        softdrop(jets, R=0.0)
    with pytest.raises(ConfigError):
        softdrop(jets, zcut=1.5)
    with pytest.raises(ConfigError):
        nsubjettiness(jets, 0, R=0.8)
    with pytest.raises(ConfigError):
        exclusive_subjets(jets, 0)
    with pytest.raises(DataError):
        softdrop(ak.Array([[{"a": 1.0}]]))
    bad = ak.zip({"px": [[np.nan]], "py": [[0.0]], "pz": [[0.0]], "E": [[1.0]]})
    with pytest.raises(DataError):
        nsubjettiness(bad, 1, R=0.8)


def test_cluster_events_substructure_matches_helpers(events_factory, spray_factory):
    rng = np.random.default_rng(9)
    rows = [spray_factory(300, 0, 0, 15, 0.02, rng) + spray_factory(200, 0.3, 0.3, 15, 0.02, rng)]
    jets = cluster_events(events_factory(rows), max_constituents=1000)
    cons = ak.zip(
        {"px": jets.part_px, "py": jets.part_py, "pz": jets.part_pz, "E": jets.part_energy}
    )
    np.testing.assert_allclose(
        jets.jet_sdmass.to_numpy(), softdrop(cons).mass.to_numpy(), rtol=1e-4
    )
    for n in (1, 2, 3):
        np.testing.assert_allclose(
            jets[f"jet_tau{n}"].to_numpy(), nsubjettiness(cons, n, R=0.8), rtol=1e-3
        )
