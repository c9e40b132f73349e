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
    # Z -> ee/mumu with both leptons in |eta| < 2.5 and pT > 20 GeV: about half the events
    assert found.mean() > 0.4
    assert set(np.unique(flavour[found])) == {11, 13}
    peak = histogram_peak(mass, 60, 120, 1.0)
    assert abs(peak - 91.0) <= 3.0
    core = mass[found & (np.abs(mass - 91.19) < 10)]
    assert abs(np.median(core) - 91.19) < 1.5
    # no neutrinos in Z -> ll: the missing pT is small
    assert np.median(ak.to_numpy(events.met)) < 25.0


def test_pileup_overlay_in_production() -> None:
    mu = 30.0
    cfg = build_config("z-ll", events=40, chunk_size=40, detector="atlas", pileup=mu, seed=4,
                       pileup_pool=100)
    events, timing = generate_chunk(cfg, 0)
    assert "pileup_generation" in timing and "detector" in timing
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
