"""The Hough-transform baseline and the helix fit (pT resolution against Gluckstern)."""

from __future__ import annotations

import numpy as np
import pytest
from tracktoys import make_event

from heplab.errors import ConfigError, DataError
from heplab.reconstruction.tracking.helix import (
    fit_circle,
    fit_helix,
    gluckstern_sigma_curvature,
    track_residuals,
)
from heplab.reconstruction.tracking.hough import HoughConfig, hough_tracks
from heplab.reconstruction.tracking.metrics import tally_tracks
from heplab.reconstruction.tracking.pipeline import reconstruct
from heplab.reconstruction.tracking.score import score_event


def test_hough_finds_the_stiff_tracks() -> None:
    ev = make_event(150, seed=21, noise=30)
    sub, ms = reconstruct(ev, "hough")
    t = tally_tracks(ev, sub["track_id"]).summary()
    assert t["track_efficiency"] > 0.95
    assert t["fake_rate"] < 0.05
    assert 0.4 < score_event(ev.truth, sub) < 1.0  # tracks below pt_min = 0.8 GeV are missed
    assert set(ms) == {"hough"}
    # a higher pT threshold loses the soft tracks: fewer hits assigned
    soft = hough_tracks(ev, HoughConfig(pt_min=3.0))
    hard = hough_tracks(ev)
    assert (soft >= 0).sum() < (hard >= 0).sum()


def test_hough_on_pure_noise_finds_nothing() -> None:
    ev = make_event(0, seed=3, noise=400)
    assert np.all(hough_tracks(ev) < 0)
    with pytest.raises(ConfigError):
        HoughConfig(n_phi=2)
    with pytest.raises(ConfigError, match="--model RUN"):
        reconstruct(ev, "hashing")  # the hashing graph feeds a trained edge classifier


def test_circle_fit_recovers_a_known_circle() -> None:
    ang = np.linspace(0.1, 0.4, 8)  # a short arc, where the Kasa fit is biased
    x, y = 1500.0 + 3000.0 * np.cos(ang), -200.0 + 3000.0 * np.sin(ang)
    xc, yc, r = fit_circle(x, y)
    assert (xc, yc, r) == pytest.approx((1500.0, -200.0, 3000.0), rel=1e-9)
    with pytest.raises(DataError):
        fit_circle(x[:2], y[:2])


@pytest.mark.parametrize("pt", [1.0, 10.0])
def test_helix_fit_pt_resolution_matches_gluckstern(pt: float) -> None:
    sigma = 0.02  # mm, the toy's r-phi smearing; no multiple scattering in the toy
    ev = make_event(
        200, seed=4, noise=0, pt_min=pt, pt_max=pt * 1.0001, eta_max=1.0, sigma_rphi=sigma
    )
    res = track_residuals(ev, ev.truth["particle_id"])
    assert len(res["res_pt"]) == 200
    assert res["charge_ok"].all()
    # 10 barrel layers from 32 to 1020 mm
    curvature = 0.3e-3 * 2.0 / pt  # 1/R [1/mm]
    expected = gluckstern_sigma_curvature(sigma, 1020.0 - 32.0, 10) / curvature
    width = np.std(res["res_pt"])
    assert 0.5 * expected < width < 2.0 * expected
    assert abs(np.mean(res["res_pt"])) < 3 * width / np.sqrt(200) + 1e-5  # unbiased
    assert np.std(res["res_z0"]) < 0.2  # mm, sigma_z = 0.1 mm per hit
    assert np.std(res["res_d0"]) < 0.05  # mm
    assert np.std(res["res_phi"]) < 1e-3
    assert np.std(res["res_eta"]) < 1e-3


def test_helix_fit_signs() -> None:
    # hand-built: a positive track from the origin with phi0 = 0.3 (turns clockwise)
    pt, phi0, q = 2.0, 0.3, 1
    radius = pt / 0.6 * 1000.0
    s = np.array([32.0, 72, 116, 172, 260, 360, 500])
    kappa = -q / radius
    x = (np.sin(phi0 + kappa * s) - np.sin(phi0)) / kappa
    y = -(np.cos(phi0 + kappa * s) - np.cos(phi0)) / kappa
    z = 5.0 + 0.5 * s
    fit = fit_helix(x + 0.0, y + 0.0, z)
    assert fit.q == 1
    assert fit.pt == pytest.approx(pt, rel=1e-6)
    assert fit.phi == pytest.approx(phi0, abs=1e-6)
    assert fit.d0 == pytest.approx(0.0, abs=1e-6)
    assert fit.z0 == pytest.approx(5.0, abs=1e-6)
    assert fit.eta == pytest.approx(np.arcsinh(0.5), abs=1e-6)
    # shifted 1 mm to the left of the direction of flight: the beam line is to the
    # right of the track -> d0 < 0 in the tracker convention
    shift = np.array([-np.sin(phi0), np.cos(phi0)])
    moved = fit_helix(x + shift[0], y + shift[1], z)
    assert moved.d0 == pytest.approx(-1.0, abs=1e-3)
