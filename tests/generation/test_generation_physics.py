"""Physics validation of the production chain: Pythia 8 -> (pile-up) -> detector card."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplab.analysis.resonances import dilepton_mass
from heplab.demo import histogram_peak
from heplab.generation.production import build_config, generate_chunk

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("card", ["atlas", "cms"])
def test_z_to_leptons_peaks_at_the_z_mass_after_the_detector(card: str) -> None:
    cfg = build_config("z-ll", events=600, chunk_size=600, detector=card, seed=2)
    events, _ = generate_chunk(cfg, 0)
    mass, flavour = dilepton_mass(events.pfcands)
    found = np.isfinite(mass)
    # truth acceptance: both Z leptons with pT > 20 GeV and |eta| < 2.5 (about 40% at 14 TeV)
    p = events.particles
    lep = p[(np.abs(p.pid) == 11) | (np.abs(p.pid) == 13)]
    pt = np.hypot(lep.px, lep.py)
    eta = np.arcsinh(lep.pz / pt)
    accepted = ak.to_numpy(ak.sum((pt > 20) & (np.abs(eta) < 2.5), axis=1) >= 2)
    assert 0.3 < accepted.mean() < 0.55
    # inside the acceptance, two identified leptons (per-lepton id x tracking ~ 0.8-0.95)
    assert 0.6 < found[accepted].mean() < 0.95
    assert set(np.unique(flavour[found])) == {11, 13}
    peak = histogram_peak(mass, 60, 120, 1.0)
    assert abs(peak - 91.0) <= 3.0
    core = mass[found & (np.abs(mass - 91.19) < 10)]
    assert abs(np.median(core) - 91.19) < 1.5
    # no neutrinos in Z -> ll: the missing pT is small
    assert np.median(ak.to_numpy(events.met)) < 25.0


def test_pileup_overlay_in_production() -> None:
    mu = 30.0
    cfg = build_config(
        "z-ll", events=40, chunk_size=40, detector="atlas", pileup=mu, seed=4, pileup_pool=100
    )
    events, timing = generate_chunk(cfg, 0)
    assert "pileup_generation" in timing
    assert "detector" in timing
    n_vertices = ak.to_numpy(ak.max(events.particles.pileup, axis=1))
    # the number of pile-up interactions per event is Poisson(mu): the largest index
    # per event is the count when every interaction left a particle
    assert abs(n_vertices.mean() - mu) < 4 * np.sqrt(mu / len(n_vertices)) + 1
    pf = events.pfcands
    charged = pf[pf.charge != 0]
    # charged-hadron subtraction flags: most charged candidates come from pile-up vertices
    frac_pu = float(ak.mean(~charged.from_pv))
    assert 0.3 < frac_pu < 0.99
    # the Z leptons still come from the hard vertex
    mass, _ = dilepton_mass(pf[pf.from_pv])
    assert abs(np.nanmedian(mass[np.abs(mass - 91) < 15]) - 91.2) < 2.0
