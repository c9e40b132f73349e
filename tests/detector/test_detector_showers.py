"""Physics of the parametrised shower engine (GFlash EM showers, pions, pi0s)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.special import gammaln

from heplab.detector.calogeometry import geometry_from_dict, load_geometry
from heplab.detector.showers import (
    ShowerConfig,
    deposit,
    generate_spots,
    sample_energies,
    simulate,
    simulate_showers,
)
from heplab.errors import ConfigError
from heplab.events.calo import PARTICLES, ShowerSet

DS2_ENERGIES = (10.0, 100.0, 1000.0)


@pytest.fixture(scope="module")
def ds2_electrons() -> dict[float, ShowerSet]:
    geo = load_geometry("ds2")
    return {
        e: simulate_showers("e-", e, "flat", 250, geo, seed=11 + i)
        for i, e in enumerate(DS2_ENERGIES)
    }


def _gamma_profile(t: np.ndarray, a: float, b: float, norm: float) -> np.ndarray:
    return norm * np.exp((a - 1) * np.log(b * t) + np.log(b) - b * t - gammaln(a))


@pytest.mark.slow
def test_longitudinal_peak_follows_gflash(ds2_electrons: dict[float, ShowerSet]) -> None:
    geo = load_geometry("ds2")
    t = np.array([la.depth_x0 for la in geo.layers])
    peaks = []
    for energy, showers in ds2_electrons.items():
        profile = showers.layer_energies().mean(axis=0) / geo.layers[0].thickness_x0
        (a, b, _), _ = curve_fit(_gamma_profile, t, profile, p0=(4.0, 0.5, profile.sum()))
        peak = (a - 1) / b
        expected = np.log(energy / geo.critical_energy) - 0.858  # GFlash <T_hom>
        assert peak == pytest.approx(expected, abs=0.4), energy
        peaks.append(peak)
    # one X0 per e-fold of energy
    slope = np.polyfit(np.log(DS2_ENERGIES), peaks, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)


@pytest.mark.slow
def test_resolution_scales_as_stochastic_term(ds2_electrons: dict[float, ShowerSet]) -> None:
    geo = load_geometry("ds2")
    rel = []
    for energy, showers in ds2_electrons.items():
        response = showers.total_energy() / energy
        rel.append(response.std() / response.mean())
    energies = np.array(DS2_ENERGIES)

    def model(e: np.ndarray, a: float, b: float) -> np.ndarray:
        return np.sqrt(a**2 / e + b**2)

    (a, b), _ = curve_fit(model, energies, np.array(rel), p0=(0.15, 0.005))
    assert abs(a) == pytest.approx(geo.em_resolution, rel=0.15)
    assert abs(b) < 0.01


def test_energy_conservation_and_visible_fraction() -> None:
    for name in ("calogan", "ds2"):
        geo = load_geometry(name)
        sf = geo.layers[0].sampling_fraction
        for particle in PARTICLES:
            s = simulate_showers(
                particle, "5:80", "flat", 60, geo, seed=5, config={"threshold": 0.0}
            )
            x = s.extra
            total = (
                x["e_cells"]
                + x["e_leak_side"]
                + x["e_leak_back"]
                + x["e_invisible"]
                + x["e_missed"]
            )
            assert np.allclose(total, s.energies, rtol=1e-9), (name, particle)
            # no noise, no threshold: the cells hold exactly the visible energy
            assert s.total_energy() == pytest.approx(x["e_visible_true"], rel=1e-5)
            if particle != "pi+":
                # visible / E = sampling fraction x containment (sampling fluctuations average out)
                ratio = s.total_energy().sum() / (sf * x["e_cells"].sum())
                assert ratio == pytest.approx(1.0, abs=0.02), (name, particle)
                assert np.all(x["e_invisible"] == 0)


def test_pions_respond_lower_and_broader_than_electrons() -> None:
    geo = load_geometry("calogan")
    e = simulate_showers("e-", 50, "flat", 200, geo, seed=1).total_energy() / 50
    pi = simulate_showers("pi+", 50, "flat", 200, geo, seed=2)
    r = pi.total_energy() / 50
    assert r.mean() < 0.7 * e.mean()
    assert r.std() / r.mean() > 3 * e.std() / e.mean()
    # invisible energy (e/h > 1) and a first interaction spread over lambda_I
    assert np.all(pi.extra["e_invisible"] >= 0)
    assert pi.extra["e_invisible"].mean() > 1.0
    lam_x0 = geo.interaction_length / geo.radiation_length
    interacted = pi.extra["t_start"] < geo.depth_x0
    assert interacted.mean() == pytest.approx(1 - np.exp(-geo.depth_x0 / lam_x0), abs=0.08)


def test_non_compensation_in_a_containing_calorimeter() -> None:
    """7 lambda_I deep, 4 m wide: what is left of pi/e is e/h and the EM fraction."""
    data = load_geometry("ds2").to_dict()
    data.update(name="deep", threshold=0.0)
    data["layers"] = [
        {"kind": "cartesian", "count": 40, "shape": [1, 1], "cell_size": [4000.0, 4000.0],
         "thickness_x0": 5.0, "sampling_fraction": 0.022},
    ]  # fmt: skip
    geo = geometry_from_dict(data)
    assert geo.depth_lambda > 7
    rng = np.random.default_rng(12)
    e = simulate("e-", np.full(150, 50.0), geo, rng).total_energy() / 50
    pi = simulate("pi+", np.full(300, 50.0), geo, rng)
    r = pi.total_energy() / 50
    f_em = pi.extra["f_em"]
    # Groom: <f_em> = 1 - (E / 1 GeV)^(0.82 - 1) = 0.506 at 50 GeV
    assert f_em.mean() == pytest.approx(1 - 50 ** (-0.18), abs=0.03)
    expected = np.mean(f_em + (1 - f_em) / ShowerConfig().e_over_h)
    assert r.mean() / e.mean() == pytest.approx(expected, abs=0.03)
    assert r.std() / r.mean() > 2 * e.std() / e.mean()


def _strip_width(showers: ShowerSet, half: int = 8) -> np.ndarray:
    """Energy-weighted RMS in x [mm] of the strip layer (layer_0, 5 mm strips), within
    +-half strips of the hottest one (GFlash's radial tails make the unwindowed second
    moment diverge)."""
    strips = showers.geometry.split(showers.showers)[0].sum(axis=1).astype(np.float64)
    x, _ = showers.geometry.layers[0].cell_centres()
    xs = x[:96]
    window = np.abs(np.arange(96)[None, :] - strips.argmax(axis=1)[:, None]) <= half
    w = np.where(window, strips, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = w[total[:, 0] > 0] / total[total[:, 0] > 0]
    mean = w @ xs
    return np.sqrt(np.maximum(w @ xs**2 - mean**2, 0))


def test_pi0_showers_are_wider_than_photons() -> None:
    geo = load_geometry("calogan")
    gamma = simulate_showers("gamma", 20, "flat", 200, geo, seed=3)
    pi0 = simulate_showers("pi0", 20, "flat", 200, geo, seed=4)
    # two photons ~ L 2 m / E >= 20 mm apart at 20 GeV (L = 1.5 m)
    assert np.median(_strip_width(pi0)) > 1.2 * np.median(_strip_width(gamma))
    # same energy in the calorimeter: the pi0 is two photons, not a different response
    assert pi0.total_energy().mean() == pytest.approx(gamma.total_energy().mean(), rel=0.05)


def test_photons_convert_later_than_electrons() -> None:
    geo = load_geometry("ds2")
    gamma = simulate_showers("gamma", 20, "flat", 300, geo, seed=6)
    assert gamma.extra["t_start"].mean() == pytest.approx(9 / 7, rel=0.15)
    e = simulate_showers("e-", 20, "flat", 300, geo, seed=6)
    centre = np.array([la.depth_x0 for la in geo.layers])
    mean_depth = lambda s: (s.layer_energies() @ centre) / s.total_energy()  # noqa: E731
    assert mean_depth(gamma).mean() - mean_depth(e).mean() == pytest.approx(9 / 7, abs=0.4)


def test_overlay_of_showers_in_one_event() -> None:
    geo = load_geometry("endcap")
    rng = np.random.default_rng(7)
    positions = np.array([[-60.0, 0.0], [60.0, 20.0], [0.0, -80.0]])
    spots, _ = generate_spots("e-", [20.0, 40.0, 10.0], geo, rng, positions=positions)
    cfg = ShowerConfig(noise=0.0, threshold=0.0)
    dep = deposit(spots, geo, 3, rng, config=cfg, event_of_shower=[0, 0, 0], contributions=True)
    assert dep.cells.shape == (1, geo.n_voxels)
    shower, voxel, energy = dep.contributions
    per_cell = np.bincount(voxel, energy, minlength=geo.n_voxels)
    assert np.allclose(per_cell, dep.cells[0], rtol=1e-5, atol=1e-9)
    x, y, _ = geo.cell_centres()
    for k in range(3):
        sel = shower == k
        cx = np.average(x[voxel[sel]], weights=energy[sel])
        cy = np.average(y[voxel[sel]], weights=energy[sel])
        assert np.hypot(cx - positions[k, 0], cy - positions[k, 1]) < 3.0


def test_seeds_noise_threshold_and_bad_settings() -> None:
    geo = load_geometry("calogan")
    a = simulate_showers("e-", "10:20", "logflat", 20, geo, seed=9)
    b = simulate_showers("e-", "10:20", "logflat", 20, geo, seed=9)
    c = simulate_showers("e-", "10:20", "logflat", 20, geo, seed=10)
    assert np.array_equal(a.showers, b.showers)
    assert not np.array_equal(a.showers, c.showers)
    assert a.energies.min() >= 10
    assert a.energies.max() <= 20
    noisy = simulate(
        "e-", np.full(20, 10.0), geo, np.random.default_rng(1),
        config={"noise": 0.002, "threshold": 0.006},
    )  # fmt: skip
    nonzero = noisy.showers[noisy.showers > 0]
    assert nonzero.min() >= 0.006
    # noise-only cells above 3 sigma are rare, so most of the face stays empty
    assert (noisy.showers > 0).mean() < 0.5
    with pytest.raises(ConfigError):
        ShowerConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError):
        ShowerConfig(e_over_h=0.5)
    with pytest.raises(ConfigError):
        simulate("mu-", [10.0], geo, np.random.default_rng(1))
    with pytest.raises(ConfigError):
        sample_energies("10:5", "flat", 3, np.random.default_rng(1))
    with pytest.raises(ConfigError):
        sample_energies("10:50", "gaussian", 3, np.random.default_rng(1))
