"""Fast detector response (Delphes-like, vectorised with numpy and awkward).

Truth final-state particles -> tracks, calorimeter towers -> particle-flow candidates and
missing transverse momentum, for an ATLAS-like, a CMS-like and an e+e- (ILD/CLD-like)
detector, or any user card in YAML. Pile-up is overlaid from a pool of minimum-bias events.

Usage::

    from heplab.detector import load_card, simulate

    card = load_card("atlas")
    reco = simulate(events.particles, card, np.random.default_rng(1), pv_z=events.pv_z)

Beside this event-level response, two detailed simulations share the package:

- :mod:`heplab.detector.silicon`: a TrackML-like silicon tracker (helices in 2 T, multiple
  scattering, pixel clusters with charge sharing, noise), writing TrackML CSV files;
- :mod:`heplab.detector.showers`: a GFlash-style parametrised shower engine for sampling
  calorimeters, on the geometries of :mod:`heplab.detector.calogeometry` (CaloGAN,
  CaloChallenge-like, a granular endcap).

Formulas, parameters and sources: ``docs/detector.md`` and the modules' docstrings. Reference: J. de Favereau et al.
(Delphes 3), JHEP 02 (2014) 057, arXiv:1307.6346.
"""

from __future__ import annotations

import importlib
from typing import Any

from heplab.detector.calogeometry import GEOMETRIES as CALO_GEOMETRIES
from heplab.detector.calogeometry import CaloGeometry, CaloLayer
from heplab.detector.calogeometry import load_geometry as load_calo_geometry
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

# The shower engine and the tracker simulation use heplab.events, whose calorimeter files
# need the geometries of this package: they are loaded on first use (PEP 562), so that
# ``import heplab.events`` and ``import heplab.detector`` work in either order.
_LAZY = {
    "ShowerConfig": ("heplab.detector.showers", "ShowerConfig"),
    "simulate_showers": ("heplab.detector.showers", "simulate_showers"),
    "TrackerSimulationConfig": ("heplab.detector.silicon", "SimulationConfig"),
    "TrackerGeometry": ("heplab.detector.silicon", "TrackerGeometry"),
    "simulate_event": ("heplab.detector.silicon", "simulate_event"),
    "generate_trackml": ("heplab.detector.silicon", "generate"),
    "load_tracker_geometry": ("heplab.detector.silicon", "load_geometry"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'heplab.detector' has no attribute {name!r}")


__all__ = [
    "CALO_GEOMETRIES",
    "CaloGeometry",
    "CaloLayer",
    "CalorimeterCard",
    "DetectorCard",
    "EfficiencyTable",
    "ShowerConfig",
    "TrackerCard",
    "TrackerGeometry",
    "TrackerSimulationConfig",
    "card_from_dict",
    "generate_trackml",
    "list_cards",
    "load_calo_geometry",
    "load_card",
    "load_tracker_geometry",
    "overlay_pileup",
    "simulate",
    "simulate_event",
    "simulate_showers",
]
