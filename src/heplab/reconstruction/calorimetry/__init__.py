"""Calorimeter reconstruction: particle ID, energy regression, clustering of showers.

- :mod:`~heplab.reconstruction.calorimetry.shapes`: shower shapes from cell energies;
- :mod:`~heplab.reconstruction.calorimetry.pid`: e vs pi+-, gamma vs pi0 (CNN on cell
  images, DNN / BDT on shower shapes), ROC and rejection at fixed efficiency;
- :mod:`~heplab.reconstruction.calorimetry.regression`: energy regression beside the
  sum calibration, response and resolution vs energy;
- :mod:`~heplab.reconstruction.calorimetry.clustering`: events of overlapping showers,
  topological clustering (ATLAS, arXiv:1603.02934), per-shower response metrics;
- :mod:`~heplab.reconstruction.calorimetry.gravnet`: GravNet (arXiv:1902.07987)
  predicting each cell's energy fraction per shower.

Commands: ``heplab calo pid | regress | cluster`` (:mod:`heplab.commands.calo_reco`).
The submodules are imported on demand (torch_geometric is only needed by ``gravnet``).
"""

from __future__ import annotations

__all__: list[str] = []
