"""The heplab event data model.

An *event array* is an awkward array with one record per collision. Units: GeV, mm, ns.

Event-level fields

=================  ========  ==========================================================
``event_id``       int64     global index of the event in its run (chunk * chunk_size + i)
``weight``         float64   generator weight (1 for unweighted production)
``id1``, ``id2``   int32     PDG ids of the incoming partons of the hard process (0 for guns)
``pthat``          float32   hard-process pT-hat [GeV] (0 where undefined)
``pv_z``           float32   true z of the hard-scatter vertex [mm] (beam spot)
``particles``      list      truth final-state particles (below)
``partons``        list      hard-process truth: incoming and outgoing partons and the decay
                             tree of resonances (t, W, Z, H, ...) before showering (below)
``pfcands``        list      particle-flow candidates after the detector response (optional)
``met``            float32   missing transverse momentum [GeV] from ``pfcands`` (optional)
``met_phi``        float32   its azimuth (optional)
``sumet``          float32   scalar sum of the candidates' pT [GeV] (optional)
=================  ========  ==========================================================

``particles`` records (truth, stable; neutrinos included):
``px, py, pz, energy`` (float32, GeV), ``pid`` (int32 PDG id), ``charge`` (int8, units of e),
``vx, vy, vz`` (float32, production vertex in mm, beam spot included), ``pileup`` (int16:
0 for the hard scatter, k > 0 for the k-th pile-up interaction).

``partons`` records: ``px, py, pz, energy`` (float32), ``pid`` (int32), ``status`` (int32:
Pythia's status of the copy taken: -21 incoming, -22 intermediate resonance, 23 outgoing),
``mother`` (int32 index into the same list, -1 for none). Resonances appear once (their
last copy before decay) and point to nothing or to their parent resonance; their decay
products point to them.

``pfcands`` records: ``px, py, pz, energy`` (float32), ``pid`` (int32, signed: +-211 charged
hadron, 130 neutral hadron, 22 photon, +-11 electron, +-13 muon), ``charge`` (int8), ``d0,
dz`` (float32, transverse and longitudinal impact parameters [mm], 0 for neutrals), ``d0err,
dzerr`` (float32, their resolutions [mm], 0 for neutrals), ``from_pv`` (bool: charged
candidates compatible with the hard-scatter vertex, all neutrals True).

All 4-momenta carry the ``vector`` ``Momentum4D`` behaviour when read with
:func:`heplab.events.with_vector`.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EVENT_FIELDS",
    "EVENT_FIELD_DTYPES",
    "PARTICLE_FIELDS",
    "PARTON_FIELDS",
    "PFCAND_FIELDS",
    "PF_PIDS",
]

#: Event-level scalar fields always present.
EVENT_FIELDS: Final = ("event_id", "weight", "id1", "id2", "pthat", "pv_z")

#: dtypes of the event-level scalar fields of the data model ;
#: ``process_code`` (the generator's process id) is kept where a source provides it.
EVENT_FIELD_DTYPES: Final = {
    "event_id": "int64",
    "weight": "float64",
    "id1": "int32",
    "id2": "int32",
    "process_code": "int32",
    "pthat": "float32",
    "pv_z": "float32",
    "met": "float32",
    "met_phi": "float32",
    "sumet": "float32",
}

#: Fields of the truth final-state ``particles`` records and their numpy dtypes.
PARTICLE_FIELDS: Final = {
    "px": "float32",
    "py": "float32",
    "pz": "float32",
    "energy": "float32",
    "pid": "int32",
    "charge": "int8",
    "vx": "float32",
    "vy": "float32",
    "vz": "float32",
    "pileup": "int16",
}

#: Fields of the hard-process ``partons`` records.
PARTON_FIELDS: Final = {
    "px": "float32",
    "py": "float32",
    "pz": "float32",
    "energy": "float32",
    "pid": "int32",
    "status": "int32",
    "mother": "int32",
}

#: Fields of the particle-flow candidates ``pfcands`` records.
PFCAND_FIELDS: Final = {
    "px": "float32",
    "py": "float32",
    "pz": "float32",
    "energy": "float32",
    "pid": "int32",
    "charge": "int8",
    "d0": "float32",
    "dz": "float32",
    "d0err": "float32",
    "dzerr": "float32",
    "from_pv": "bool",
}

#: |pid| values a particle-flow candidate can carry.
PF_PIDS: Final = {
    "charged_hadron": 211,
    "neutral_hadron": 130,
    "photon": 22,
    "electron": 11,
    "muon": 13,
}
