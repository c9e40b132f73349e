"""ML fast simulation of calorimeter showers and its evaluation.

- :mod:`~heplab.simulation.generators`: one interface (``fit``, ``sample(energies)``,
  ``log_prob`` where defined, ``save`` / ``load``) and the registry ``GENERATORS`` of
  conditional shower generators: ``gan`` (WGAN-GP, :mod:`.gan`), ``vae`` (:mod:`.vae`),
  ``flow`` (two-stage CaloFlow-like flow with a distilled IAF student, :mod:`.flow`) and
  ``flowmatch`` (conditional flow matching, :mod:`.flowmatch`); preprocessing in
  :mod:`.preprocessing`, run directories in :mod:`.runs`.
- :mod:`~heplab.simulation.evaluation`: the CaloChallenge protocol (arXiv:2410.21611):
  high-level features and separation powers, the classifier test (AUC, JSD) on low- and
  high-level inputs, FPD and KPD (arXiv:2211.10295), each beside the floor measured
  between two halves of the reference.
- :mod:`~heplab.simulation.reweight`: DCTR-like classifier reweighting (arXiv:1907.08209).

Showers come from :mod:`heplab.detector.showers` (a GFlash-style engine, simpler than
Geant4) or from a user's CaloGAN / CaloChallenge HDF5 files (:mod:`heplab.events.calo`).
Commands: ``heplab calo train | sample | evaluate``. The submodules import torch; they are
loaded on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GENERATORS": "heplab.simulation.generators",
    "ShowerGenerator": "heplab.simulation.generators",
    "load_generator": "heplab.simulation.generators",
    "make_generator": "heplab.simulation.generators",
    "evaluate": "heplab.simulation.evaluation",
    "json_summary": "heplab.simulation.evaluation",
    "classifier_test": "heplab.simulation.evaluation_metrics",
    "fpd": "heplab.simulation.evaluation_metrics",
    "kpd": "heplab.simulation.evaluation_metrics",
    "separation_power": "heplab.simulation.evaluation_features",
    "ClassifierConfig": "heplab.simulation.evaluation_metrics",
    "high_level_features": "heplab.simulation.evaluation_features",
    "DCTRReweighter": "heplab.simulation.reweight",
    "reweight_and_evaluate": "heplab.simulation.reweight",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'heplab.simulation' has no attribute {name!r}")
