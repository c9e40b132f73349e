"""The TrackML-like silicon tracker: geometry, helices, scattering, clusters, weights."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import yaml

from heplab.detector.silicon import (
    SimulationConfig,
    highland_theta0,
    load_geometry,
    pt_weight,
    simulate_event,
    simulate_events,
    trackml_weights,
)
from heplab.errors import ConfigError

MUON = 0.1056584
CLEAN = SimulationConfig(
    multiple_scattering=False, smearing=False, efficiency=1.0, noise_fraction=0.0
)


def _particles(
    pt: float | np.ndarray,
    eta: float | np.ndarray = 0.0,
    phi: float | np.ndarray = 0.3,
    q: float | np.ndarray = -1.0,
    n: int = 1,
    mass: float = MUON,
) -> dict[str, np.ndarray]:
    pt_, eta_, phi_, q_ = (np.broadcast_to(np.asarray(v, float), (n,)) for v in (pt, eta, phi, q))
    px, py, pz = pt_ * np.cos(phi_), pt_ * np.sin(phi_), pt_ * np.sinh(eta_)
    zero = np.zeros(n)
    return {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + mass**2),
        "charge": q_.copy(),
        "vx": zero,
        "vy": zero,
        "vz": zero,
    }


def _kasa_radius(x: np.ndarray, y: np.ndarray) -> float:
    """Algebraic least-squares circle fit: x^2 + y^2 + D x + E y + F = 0."""
    a = np.c_[x, y, np.ones_like(x)]
    b = -(x**2 + y**2)
    d, e, f = np.linalg.lstsq(a, b, rcond=None)[0]
    return float(np.sqrt(d**2 / 4 + e**2 / 4 - f))


def test_geometry_is_the_trackml_layout() -> None:
    g = load_geometry()
    assert g.field_tesla == 2.0
    assert {s.volume_id for s in g.surfaces} == {7, 8, 9, 12, 13, 14, 16, 17, 18}
    radii = sorted(s.radius for s in g.surfaces if s.kind == "barrel")
    assert radii == [32, 72, 116, 172, 260, 360, 500, 660, 820, 1020]
    pix_disks = sorted(s.z for s in g.surfaces if s.volume_id == 9)
    assert pix_disks == [600, 700, 820, 960, 1100, 1300, 1500]
    assert [s.layer_id for s in g.surfaces if s.volume_id == 7] == [2, 4, 6, 8, 10, 12, 14]
    strip_z = [abs(s.z) for s in g.surfaces if s.volume_id in (12, 14, 16, 18)]
    assert min(strip_z) == 1220
    assert max(strip_z) == 2950


def test_geometry_errors_and_user_file(tmp_path: Path) -> None:
    data = load_geometry().to_dict()
    data = yaml.safe_load(yaml.safe_dump(data))
    data["volumes"] = data["volumes"][1:2]  # the pixel barrel alone
    path = tmp_path / "pix.yaml"
    path.write_text(yaml.safe_dump(data))
    g = load_geometry(path)
    assert len(g) == 4
    data["volumes"][0]["layers"][0]["colour"] = "red"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="colour"):
        load_geometry(path)
    with pytest.raises(ConfigError, match="unknown tracker geometry"):
        load_geometry("atlas-itk")
    with pytest.raises(ConfigError, match="no such geometry"):
        load_geometry(tmp_path / "missing.yaml")


def test_muon_hits_every_barrel_layer_once_at_its_radius() -> None:
    g = load_geometry()
    phis = np.linspace(-3.0, 3.0, 7)
    ev = simulate_event(
        _particles(10.0, eta=0.05, phi=phis, n=7), g, np.random.default_rng(1), CLEAN
    )
    assert ev.truth is not None
    for pid in np.unique(ev.truth["particle_id"]):
        rows = ev.truth["particle_id"] == pid
        vol = ev.hits["volume_id"][rows]
        lay = ev.hits["layer_id"][rows]
        assert list(zip(vol, lay, strict=True)) == [
            (8, 2), (8, 4), (8, 6), (8, 8), (13, 2), (13, 4), (13, 6), (13, 8), (17, 2), (17, 4)
        ]  # fmt: skip
        r = np.hypot(ev.hits["x"][rows], ev.hits["y"][rows])
        np.testing.assert_allclose(r, [32, 72, 116, 172, 260, 360, 500, 660, 820, 1020], rtol=1e-5)
    assert len(ev) == 70


@pytest.mark.parametrize(("pt", "q"), [(10.0, -1.0), (1.0, 1.0), (0.6, -1.0)])
def test_circle_through_hits_has_radius_pt_over_03b(pt: float, q: float) -> None:
    ev = simulate_event(_particles(pt, q=q, phi=1.0), None, np.random.default_rng(2), CLEAN)
    x, y = ev.hits["x"].astype(float), ev.hits["y"].astype(float)
    expected = pt / (0.3 * 2.0) * 1000.0
    assert _kasa_radius(x, y) == pytest.approx(expected, rel=2e-3)
    # a positive particle turns clockwise seen from +z: its azimuth falls with r
    order = np.argsort(np.hypot(x, y))
    dphi = np.diff(np.unwrap(np.arctan2(y, x)[order]))
    assert np.all(np.sign(dphi) == -q)


def test_low_pt_looper_stops_after_half_a_turn() -> None:
    # R = 0.16 / 0.6 m = 267 mm: reaches r = 533 mm at the half turn, never the 660 mm
    # layer, and is not followed back inwards through the layers it crossed
    ev = simulate_event(_particles(0.16), None, np.random.default_rng(3), CLEAN)
    r = np.hypot(ev.hits["x"], ev.hits["y"])
    np.testing.assert_allclose(np.sort(r), [32, 72, 116, 172, 260, 360, 500], rtol=1e-5)


def test_multiple_scattering_spread_matches_highland() -> None:
    n = 3000
    p = 1.0
    # identical tracks: no cluster merging, so that each particle keeps its own hits
    cfg = SimulationConfig(smearing=False, efficiency=1.0, noise_fraction=0.0, clusters=False)
    ev = simulate_event(_particles(p, phi=np.zeros(n), n=n), None, np.random.default_rng(4), cfg)
    assert ev.truth is not None
    second = (ev.hits["volume_id"] == 8) & (ev.hits["layer_id"] == 4)  # R = 72 mm
    assert second.sum() == n
    beta = p / math.hypot(p, MUON)
    theta0 = float(highland_theta0(np.array(p), np.array(beta), np.array(1.0), np.array(0.015)))
    # Highland at x/X0 = 0.015: 13.6 MeV * sqrt(0.015) * (1 + 0.038 ln 0.015) ~ 1.40 mrad
    assert theta0 == pytest.approx(
        0.0136 * math.sqrt(0.015) * (1 + 0.038 * math.log(0.015 / beta**2)) / beta
    )
    lever = 72.0 - 32.0  # mm between the scattering layer and the measuring layer
    spread_z = float(np.std(ev.truth["tz"][second]))
    r = np.hypot(ev.truth["tx"][second], ev.truth["ty"][second])
    phi = np.arctan2(ev.truth["ty"][second], ev.truth["tx"][second])
    spread_rphi = float(np.std(r * (phi - np.mean(phi))))
    assert spread_z == pytest.approx(theta0 * lever, rel=0.1)
    assert spread_rphi == pytest.approx(theta0 * lever, rel=0.1)
    # and without scattering there is no spread at all
    clean = simulate_event(_particles(p, phi=np.zeros(50), n=50), None, None, CLEAN)
    assert clean.truth is not None
    assert np.ptp(clean.truth["tz"]) == 0.0


def test_inefficiency_and_noise_fractions_match_settings() -> None:
    n = 600
    rng = np.random.default_rng(5)
    parts = _particles(10.0, eta=rng.uniform(-0.5, 0.5, n), phi=rng.uniform(-3, 3, n), n=n)
    cfg = SimulationConfig(efficiency=0.9, noise_fraction=0.2, clusters=False)
    ev = simulate_event(parts, None, np.random.default_rng(6), cfg)
    assert ev.truth is not None
    noise = ev.truth["particle_id"] == 0
    assert noise.mean() == pytest.approx(0.2, abs=0.02)
    # every muon crosses the 10 barrel layers: 6000 crossings
    assert (~noise).sum() / (10 * n) == pytest.approx(0.9, abs=0.015)
    # noise lies on the layer surfaces and weighs nothing
    g = load_geometry()
    layer_r = {(s.volume_id, s.layer_id): s.radius for s in g.surfaces if s.kind == "barrel"}
    layer_z = {(s.volume_id, s.layer_id): s.z for s in g.surfaces if s.kind == "disk"}
    for i in np.flatnonzero(noise)[:200]:
        key = (int(ev.hits["volume_id"][i]), int(ev.hits["layer_id"][i]))
        if key in layer_r:
            assert math.hypot(ev.hits["x"][i], ev.hits["y"][i]) == pytest.approx(layer_r[key])
        else:
            assert ev.hits["z"][i] == pytest.approx(layer_z[key])
    assert np.all(ev.truth["weight"][noise] == 0)
    assert np.all(ev.truth["n_particles"][noise] == 0)


def test_smearing_width_is_pitch_over_sqrt12() -> None:
    n = 2000
    cfg = SimulationConfig(
        multiple_scattering=False, efficiency=1.0, noise_fraction=0.0, clusters=False
    )
    ev = simulate_event(
        _particles(10.0, phi=np.linspace(-3, 3, n), n=n), None, np.random.default_rng(7), cfg
    )
    assert ev.truth is not None
    for vol, pitch_z in ((8, 0.05), (13, 1.2), (17, 10.8)):
        rows = ev.hits["volume_id"] == vol
        dz = ev.hits["z"][rows].astype(float) - ev.truth["tz"][rows]
        assert np.std(dz) == pytest.approx(pitch_z / math.sqrt(12), rel=0.08)


def test_close_tracks_merge_into_one_pixel_cluster() -> None:
    g = load_geometry()
    cfg = SimulationConfig(multiple_scattering=False, smearing=False, efficiency=1.0,
                           noise_fraction=0.0)  # fmt: skip
    for dphi, merged in ((2e-5, True), (0.01, False)):
        parts = _particles(10.0, phi=np.array([0.5, 0.5 + dphi]), n=2)
        ev = simulate_event(parts, g, np.random.default_rng(8), cfg)
        assert ev.truth is not None
        assert ev.cells is not None
        pix = ev.hits["volume_id"] == 8
        strips = ~pix
        assert strips.sum() == 12  # strips never merge
        if merged:
            assert pix.sum() == 4
            assert np.all(ev.truth["n_particles"][pix] == 2)
            # the merged hit carries the charge of both particles
            q = np.bincount(ev.cells["hit_id"], ev.cells["value"], len(ev) + 1)[1:]
            assert np.median(q[pix]) > 1.5 * np.median(q[strips])
        else:
            assert pix.sum() == 8
            assert np.all(ev.truth["n_particles"] == 1)


def test_cluster_length_follows_incidence_angle() -> None:
    """Barrel pixel clusters grow along z as thickness * cot(theta) / pitch."""
    n = 200
    cfg = SimulationConfig(multiple_scattering=False, efficiency=1.0, noise_fraction=0.0)
    for eta in (0.0, 1.5):
        ev = simulate_event(
            _particles(5.0, eta=eta, phi=np.linspace(-3, 3, n), n=n),
            None,
            np.random.default_rng(9),
            cfg,
        )
        assert ev.cells is not None
        first = np.flatnonzero((ev.hits["volume_id"] == 8) & (ev.hits["layer_id"] == 2)) + 1
        cells = np.isin(ev.cells["hit_id"], first)
        h, c1 = ev.cells["hit_id"][cells], ev.cells["ch1"][cells]
        span = [np.ptp(c1[h == i]) + 1 for i in first]
        expected = 0.15 * math.sinh(eta) / 0.05 + 1
        assert np.mean(span) == pytest.approx(expected, abs=0.6)


def test_weights_by_hand() -> None:
    assert pt_weight(np.array([0.04, 0.3, 0.5, 1.75, 3.0, 10.0])) == pytest.approx(
        [0.0, 0.2, 0.2, 0.6, 1.0, 1.0]
    )
    # particle 11: 4 hits, pT = 2 GeV; 22: 5 hits, pT = 0.3 GeV; 33: 3 hits; 0: noise
    pid = np.array([11, 22, 0, 11, 33, 22, 11, 22, 33, 22, 11, 33, 22])
    tz = np.array([40, 5, 9, 10, 1, 1, 30, 4, 2, 3, 20, 3, 2], float)  # order by |tz - vz|
    particles = {
        "particle_id": np.array([11, 22, 33]),
        "vz": np.zeros(3),
        "px": np.array([2.0, 0.3, 5.0]),
        "py": np.zeros(3),
    }
    w = trackml_weights({"particle_id": pid, "tz": tz}, particles)
    w_pt_a = 0.2 + 0.8 * (2.0 - 0.5) / 2.5
    # 4 hits: proposal (10,8,6,5,3,3,3,5,6) at supports k*3/8 read at 0,1,2,3
    order4 = np.array([10.0, 6 - (1 - 0.75) / 0.375, 3.0, 6.0])
    order5 = np.array([10.0, 6.0, 3.0, 3.0, 6.0])  # supports k/2: entries 0, 2, 4, 6, 8
    expected = np.zeros(len(pid))
    expected[[3, 10, 6, 0]] = w_pt_a * order4 / order4.sum()  # tz 10, 20, 30, 40
    expected[[5, 12, 9, 7, 1]] = 0.2 * order5 / order5.sum()  # tz 1, 2, 3, 4, 5
    expected /= expected.sum()
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert w.sum() == pytest.approx(1.0)


def test_simulated_event_tables_and_weights() -> None:
    rng = np.random.default_rng(10)
    n = 300
    parts = _particles(
        np.exp(rng.uniform(np.log(0.2), np.log(20), n)),
        eta=rng.uniform(-3.5, 3.5, n),
        phi=rng.uniform(-3, 3, n),
        q=rng.choice([-1.0, 1.0], n),
        n=n,
        mass=0.13957,
    )
    ev = simulate_event(parts, None, np.random.default_rng(11))
    assert ev.truth is not None
    assert ev.particles is not None
    assert ev.cells is not None
    assert ev.truth["weight"].sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(ev.hits["hit_id"], np.arange(1, len(ev) + 1))
    key = ev.hits["volume_id"].astype(np.int64) * 10**8 + ev.hits["layer_id"] * 10**6
    assert np.all(np.diff(key + ev.hits["module_id"]) >= 0)  # sorted by volume/layer/module
    # nhits of each particle = its truth hits; every hit has at least one cell
    counts = {
        int(k): int(v)
        for k, v in zip(*np.unique(ev.truth["particle_id"], return_counts=True), strict=True)
    }
    for pid, nh in zip(ev.particles["particle_id"], ev.particles["nhits"], strict=True):
        assert counts.get(int(pid), 0) == nh
    assert set(np.unique(ev.cells["hit_id"])) == set(ev.hits["hit_id"])
    # particles with fewer than 4 hits weigh nothing
    few = ev.particles["particle_id"][ev.particles["nhits"] < 4]
    assert np.all(ev.truth["weight"][np.isin(ev.truth["particle_id"], few)] == 0)


def test_simulate_events_from_heplab_records_is_reproducible() -> None:
    parts = [_particles(5.0, phi=np.array([0.1, 2.0]), n=2), _particles(2.0, eta=1.0, n=1)]
    for p in parts:
        p["pileup"] = np.zeros(len(p["px"]), np.int16)
    plist = ak.zip({k: ak.Array([p[k].tolist() for p in parts]) for k in parts[0]})
    events = ak.zip({"event_id": ak.Array([5, 6]), "particles": plist}, depth_limit=1)
    a = list(simulate_events(events, seed=3, first_event_id=1000))
    b = list(simulate_events(events, seed=3, first_event_id=1000))
    c = list(simulate_events(events, seed=4, first_event_id=1000))
    assert [e.event_id for e in a] == [1005, 1006]
    assert len({len(e) for e in a}) == 2
    np.testing.assert_array_equal(a[0].hits["x"], b[0].hits["x"])
    assert not np.array_equal(a[0].hits["x"], c[0].hits["x"])
    assert a[0].particles is not None
    assert (a[0].particles["particle_id"] >> 28).tolist() == [1, 1]  # hard scatter


def test_bad_input_and_settings() -> None:
    with pytest.raises(ConfigError, match="energy"):
        simulate_event({"px": np.ones(1)}, None, None)
    with pytest.raises(ConfigError, match="noise_fraction"):
        SimulationConfig(noise_fraction=1.0)
    with pytest.raises(ConfigError, match="unknown"):
        SimulationConfig.from_dict({"ptmin": 1})


def test_energy_loss_matches_silicon_dedx() -> None:
    """Minimum-ionising loss: 0.3876 MeV/mm * 93.7 mm * x/X0 per layer (at normal incidence)."""
    cfg = SimulationConfig(
        multiple_scattering=False,
        smearing=False,
        efficiency=1.0,
        noise_fraction=0.0,
        energy_loss=True,
    )
    ev = simulate_event(_particles(5.0, phi=0.2), None, np.random.default_rng(12), cfg)
    assert ev.truth is not None
    p = np.sqrt(ev.truth["tpx"] ** 2 + ev.truth["tpy"] ** 2 + ev.truth["tpz"] ** 2)
    # momentum at the last hit (R = 1020 mm) after 4 pixel, 4 short-strip, 1 long-strip layers
    g = load_geometry()
    r = np.hypot(ev.truth["tx"], ev.truth["ty"])
    rho = 5.0 / 0.6 * 1000.0
    loss = 0.0
    for s in g.surfaces:
        if s.kind == "barrel" and s.radius < 1000:
            cos_inc = math.sqrt(1 - (s.radius / (2 * rho)) ** 2)
            loss += 0.3876e-3 * 93.7 * s.x_over_x0 / cos_inc
    assert float(p[np.argmax(r)]) == pytest.approx(5.0 - loss, abs=0.05 * loss)
    assert float(p[np.argmin(r)]) == pytest.approx(5.0, abs=1e-5)
