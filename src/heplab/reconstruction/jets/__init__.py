"""Reconstruction of jets: clustering with FastJet, substructure and truth labels.

- :func:`cluster_events`: events -> flat per-jet records (kinematics, soft-drop mass,
  N-subjettiness, weaver/JetClass constituent lists, JetClass labels);
- :func:`softdrop`, :func:`nsubjettiness`, :func:`exclusive_subjets`,
  :func:`subjet_pair_masses`: substructure of jagged ``[jet][constituent]`` arrays;
- :func:`label_jets`: JetClass truth labels from the hard-process record.

See ``docs/jets.md``.
"""

from __future__ import annotations

from heplab.reconstruction.jets.cluster import (
    ALGORITHMS,
    JET_FIELDS,
    OUTPUT_FIELDS,
    PART_FIELDS,
    cluster_events,
)
from heplab.reconstruction.jets.labels import LABELS, label_jets
from heplab.reconstruction.jets.substructure import (
    exclusive_subjets,
    nsubjettiness,
    softdrop,
    subjet_pair_masses,
)

__all__ = [
    "ALGORITHMS",
    "JET_FIELDS",
    "LABELS",
    "OUTPUT_FIELDS",
    "PART_FIELDS",
    "cluster_events",
    "exclusive_subjets",
    "label_jets",
    "nsubjettiness",
    "softdrop",
    "subjet_pair_masses",
]
