"""Fast detector response (Delphes-like, vectorised with numpy and awkward).

Truth final-state particles -> tracks, calorimeter towers -> particle-flow candidates and
missing transverse momentum, for an ATLAS-like, a CMS-like and an e+e- (ILD/CLD-like)
detector, or any user card in YAML. Pile-up is overlaid from a pool of minimum-bias events.

Usage::

    from heplab.detector import load_card, simulate

    card = load_card("atlas")
    reco = simulate(events.particles, card, np.random.default_rng(1), pv_z=events.pv_z)

Formulas, parameters and sources: ``docs/detector.md``. Reference: J. de Favereau et al.
(Delphes 3), JHEP 02 (2014) 057, arXiv:1307.6346.
"""

from __future__ import annotations

from heplab.detector.card import (
    CalorimeterCard,
    DetectorCard,
    EfficiencyTable,
    TrackerCard,
    card_from_dict,
    list_cards,
    load_card,
)
from heplab.detector.pileup import overlay_pileup
from heplab.detector.response import simulate

__all__ = [
    "CalorimeterCard",
    "DetectorCard",
    "EfficiencyTable",
    "TrackerCard",
    "card_from_dict",
    "list_cards",
    "load_card",
    "overlay_pileup",
    "simulate",
]
