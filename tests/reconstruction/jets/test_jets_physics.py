"""Physics validation of jet clustering, substructure and labels on Pythia 8 events.

From 400 ``ttbar-boosted`` and 400 ``qcd-dijet`` events (14 TeV, pT-hat 400-1100 GeV),
anti-kt R = 0.8 jets with pT > 400 GeV and |eta| < 2, on truth particles and (when
:mod:`heplab.detector` is available) on CMS-like particle-flow candidates:

- the soft-drop mass (beta = 0, zcut = 0.1) of Tbqq-labelled jets peaks at the top mass;
- among their three exclusive-kt subjets the pair closest to the W mass peaks at m_W, with
  a clear excess over QCD jets in 65-95 GeV;
- QCD jets have a soft-drop mass far below the top peak and a larger tau3/tau2;
- most leading jets of boosted ttbar are fully contained hadronic top jets.
"""

from __future__ import annotations

import importlib
import logging

import awkward as ak
import numpy as np
import pytest

from heplab.generation.catalogue import get_process
from heplab.generation.pythia import generate_pythia
from heplab.reconstruction.jets import cluster_events, subjet_pair_masses

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)

N_EVENTS = 400
M_W = 80.4


def _generate(name: str, seed: int) -> ak.Array:
    entry = get_process(name)
    settings = [*entry.pythia_settings(entry.resolve_params({})), f"Beams:eCM = {entry.sqrts}"]
    events = generate_pythia(settings, N_EVENTS, seed=seed, beamspot_sigma_z=50.0)
    return ak.with_field(events, np.arange(len(events), dtype=np.int64), "event_id")


@pytest.fixture(scope="module")
def samples() -> dict[str, ak.Array]:
    return {"top": _generate("ttbar-boosted", 11), "qcd": _generate("qcd-dijet", 12)}


def _with_pfcands(events: ak.Array) -> ak.Array:
    try:
        detector = importlib.import_module("heplab.detector")
    except ImportError as exc:
        pytest.skip(f"heplab.detector is not importable ({exc}): no pfcands to cluster")
    if not hasattr(detector, "simulate") or not hasattr(detector, "load_card"):
        pytest.skip("heplab.detector has no simulate/load_card yet: no pfcands to cluster")
    reco = detector.simulate(
        events.particles, detector.load_card("cms"), np.random.default_rng(5), pv_z=events.pv_z
    )
    return ak.with_field(events, reco.pfcands, "pfcands")


@pytest.fixture(scope="module", params=["particles", "pfcands"])
def jets(request: pytest.FixtureRequest, samples: dict[str, ak.Array]) -> dict[str, ak.Array]:
    out = {}
    for key, events in samples.items():
        if request.param == "pfcands":
            events = _with_pfcands(events)
        all_jets = cluster_events(events, R=0.8, ptmin=200.0, inputs=request.param)
        out[key + "_all"] = all_jets
        out[key] = all_jets[(all_jets.jet_pt > 400) & (np.abs(all_jets.jet_eta) < 2.0)]
    out["inputs"] = request.param
    return out


def _mode(values: np.ndarray, lo: float, hi: float, width: float = 5.0) -> float:
    counts, edges = np.histogram(values, bins=np.arange(lo, hi + width, width))
    k = int(np.argmax(counts))
    return float(0.5 * (edges[k] + edges[k + 1]))


def _tops(jets: dict[str, ak.Array]) -> ak.Array:
    tops = jets["top"][jets["top"].label_Tbqq == 1]
    assert len(tops) >= 100, f"only {len(tops)} Tbqq jets"
    return tops


def _qcd(jets: dict[str, ak.Array]) -> ak.Array:
    qcd = jets["qcd"][jets["qcd"].label_QCD == 1]
    assert len(qcd) >= 200, f"only {len(qcd)} QCD jets"
    return qcd


def _w_candidate(jets: ak.Array) -> np.ndarray:
    """The exclusive-subjet pair mass closest to m_W, per jet [GeV]."""
    cons = ak.zip(
        {"px": jets.part_px, "py": jets.part_py, "pz": jets.part_pz, "E": jets.part_energy}
    )
    masses = subjet_pair_masses(cons, 3)
    best = ak.argmin(np.abs(masses - M_W), axis=1, keepdims=True)
    return ak.to_numpy(ak.fill_none(ak.firsts(masses[best]), 0.0))


def test_top_softdrop_mass_peak(jets):
    sd = ak.to_numpy(_tops(jets).jet_sdmass)
    mode = _mode(sd, 0.0, 300.0)
    log.info(
        "%s: Tbqq soft-drop mass mode %.1f GeV, median %.1f GeV (%d jets)",
        jets["inputs"],
        mode,
        np.median(sd),
        len(sd),
    )
    assert 160.0 <= mode <= 185.0
    assert 150.0 < np.median(sd) < 190.0


def test_w_mass_in_top_subjets(jets):
    w_top = _w_candidate(_tops(jets))
    w_qcd = _w_candidate(_qcd(jets))
    mode = _mode(w_top, 0.0, 200.0)
    in_top = float(np.mean((w_top > 65) & (w_top < 95)))
    in_qcd = float(np.mean((w_qcd > 65) & (w_qcd < 95)))
    log.info(
        "%s: W candidate mode %.1f GeV; in 65-95 GeV: top %.2f, QCD %.2f",
        jets["inputs"],
        mode,
        in_top,
        in_qcd,
    )
    assert 70.0 <= mode <= 90.0
    assert in_top > in_qcd + 0.25


def test_qcd_softdrop_mass_and_tau32(jets):
    tops, qcd = _tops(jets), _qcd(jets)
    sd_qcd = float(np.median(ak.to_numpy(qcd.jet_sdmass)))
    tau32_top = float(np.median(ak.to_numpy(tops.jet_tau3 / tops.jet_tau2)))
    tau32_qcd = float(np.median(ak.to_numpy(qcd.jet_tau3 / np.maximum(qcd.jet_tau2, 1e-9))))
    log.info(
        "%s: QCD soft-drop median %.1f GeV; tau32 median top %.3f, QCD %.3f",
        jets["inputs"],
        sd_qcd,
        tau32_top,
        tau32_qcd,
    )
    assert sd_qcd < 100.0
    assert tau32_top < tau32_qcd - 0.15


def test_labels(jets):
    top_all, qcd = jets["top_all"], jets["qcd"]
    lead = top_all[(top_all.jet_index == 0) & (top_all.jet_pt > 400)]
    frac = float(np.mean(ak.to_numpy(lead.label_Tbqq)))
    log.info(
        "%s: leading ttbar jets with pT > 400 GeV labelled Tbqq: %.2f (%d jets)",
        jets["inputs"],
        frac,
        len(lead),
    )
    assert frac > 0.4
    # QCD dijets: only QCD labels, with a quark or gluon as the matched parton
    assert float(np.mean(ak.to_numpy(qcd.label_QCD))) > 0.95
    pid = np.abs(ak.to_numpy(qcd.jet_parton_pid))
    assert float(np.mean(np.isin(pid, [1, 2, 3, 4, 5, 21]))) > 0.9
    # at most one label per jet, and fully hadronic ttbar has no leptonic-top jets
    labels = [name for name in top_all.fields if name.startswith("label_")]
    total = sum(ak.to_numpy(top_all[name]).astype(int) for name in labels)
    assert total.max() <= 1
    assert int(ak.sum(top_all.label_Tbl)) == 0
