"""Jet clustering of heplab events with FastJet, into flat per-jet records.

:func:`cluster_events` clusters the particle-flow candidates (or the truth final-state
particles) of every event with FastJet's vectorised awkward interface (anti-kt,
arXiv:0802.1189; kt; Cambridge/Aachen), and returns one record per jet with the jet
kinematics, soft-drop mass and N-subjettiness (:mod:`.substructure`), the constituents
as lists with the weaver/JetClass names (arXiv:2202.03772), and the JetClass truth labels
(:mod:`.labels`). Units: GeV, radians.
"""

from __future__ import annotations

from typing import Any, Final

import awkward as ak
import numpy as np
import vector

from heplab._arrays import ranges
from heplab.errors import ConfigError, DataError
from heplab.reconstruction.jets.labels import LABELS, label_jets_flat
from heplab.reconstruction.jets.substructure import (
    FlatJets,
    nsubjettiness_flat,
    softdrop_flat,
)

__all__ = [
    "ALGORITHMS",
    "JET_FIELDS",
    "OUTPUT_FIELDS",
    "PART_FIELDS",
    "cluster_events",
]

#: Algorithm names accepted by :func:`cluster_events` and their FastJet enum names.
ALGORITHMS: Final = {
    "antikt": "antikt_algorithm",
    "kt": "kt_algorithm",
    "ca": "cambridge_algorithm",
}

#: Per-jet fields and their dtypes.
JET_FIELDS: Final = {
    "event_id": "int64",
    "jet_index": "int32",
    "jet_pt": "float32",
    "jet_eta": "float32",
    "jet_phi": "float32",
    "jet_energy": "float32",
    "jet_mass": "float32",
    "jet_sdmass": "float32",
    "jet_tau1": "float32",
    "jet_tau2": "float32",
    "jet_tau3": "float32",
    "jet_nparticles": "int32",
    "jet_parton_pid": "int32",
    **dict.fromkeys(LABELS, "int8"),
}

#: Per-constituent list fields (weaver / JetClass names) and their dtypes.
PART_FIELDS: Final = {
    "part_px": "float32",
    "part_py": "float32",
    "part_pz": "float32",
    "part_energy": "float32",
    "part_deta": "float32",
    "part_dphi": "float32",
    "part_charge": "float32",
    "part_pid": "int32",
    "part_d0val": "float32",
    "part_d0err": "float32",
    "part_dzval": "float32",
    "part_dzerr": "float32",
    "part_isChargedHadron": "float32",
    "part_isNeutralHadron": "float32",
    "part_isPhoton": "float32",
    "part_isElectron": "float32",
    "part_isMuon": "float32",
}

#: All output fields, in order.
OUTPUT_FIELDS: Final = (*JET_FIELDS, *PART_FIELDS)

_INPUTS = ("auto", "pfcands", "particles")
_MOMENTUM = ("px", "py", "pz", "energy")
_NEUTRINOS = (12, 14, 16)


def _check_config(
    algorithm: str,
    R: float,
    ptmin: float,
    max_constituents: int,
    inputs: str,
    eta_max: float | None,
) -> None:
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"unknown jet algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    if not (isinstance(R, (int, float)) and np.isfinite(R) and R > 0):
        raise ConfigError(f"jet radius R must be a positive number, not {R!r}")
    if not (isinstance(ptmin, (int, float)) and np.isfinite(ptmin) and ptmin >= 0):
        raise ConfigError(f"ptmin must be a non-negative number of GeV, not {ptmin!r}")
    if (
        isinstance(max_constituents, bool)
        or not isinstance(max_constituents, (int, np.integer, float))
        or int(max_constituents) != max_constituents
    ):
        raise ConfigError(f"max_constituents must be an integer, not {max_constituents!r}")
    if max_constituents < 1:
        raise ConfigError(f"max_constituents must be >= 1, not {max_constituents}")
    if inputs not in _INPUTS:
        raise ConfigError(f"inputs must be one of {', '.join(_INPUTS)}, not {inputs!r}")
    if eta_max is not None and not (np.isfinite(eta_max) and eta_max > 0):
        raise ConfigError(f"eta_max must be a positive number or None, not {eta_max!r}")


class _Inputs:
    """The clustering inputs of all events as flat numpy arrays (event-ordered)."""

    def __init__(self, events: ak.Array, collection: str, chs: bool) -> None:
        if collection not in ak.fields(events):
            raise DataError(
                f"events have no {collection!r} to cluster (fields: {ak.fields(events)})"
            )
        coll = events[collection]
        fields = ak.fields(coll)
        missing = [f for f in (*_MOMENTUM, "pid") if f not in fields]
        if missing:
            raise DataError(f"events.{collection} lack the fields {missing}")
        counts = ak.to_numpy(ak.num(coll, axis=1)).astype(np.int64)
        flat = ak.flatten(coll, axis=1)

        def col(name: str, dtype: Any, default: float = 0) -> np.ndarray:
            if name in fields:
                return np.asarray(ak.to_numpy(flat[name]), dtype=dtype)
            return np.full(len(flat), default, dtype=dtype)

        mom = {k: np.asarray(ak.to_numpy(flat[k])) for k in _MOMENTUM}
        bad = ~np.isfinite(mom["px"]) | ~np.isfinite(mom["py"])
        bad |= ~np.isfinite(mom["pz"]) | ~np.isfinite(mom["energy"])
        if bad.any():
            first = int(np.repeat(np.arange(len(counts)), counts)[np.argmax(bad)])
            raise DataError(
                f"events.{collection}: {int(bad.sum())} entries with NaN or infinite momenta "
                f"(first in event {first})"
            )
        pid = col("pid", np.int32)
        charge = col("charge", np.int8)
        keep = np.ones(len(flat), dtype=bool)
        if collection == "particles":
            keep &= ~np.isin(np.abs(pid), _NEUTRINOS)
            if "pileup" in fields:
                keep &= col("pileup", np.int16) == 0
        elif chs and "from_pv" in fields:
            keep &= (charge == 0) | col("from_pv", bool)
        event = np.repeat(np.arange(len(counts)), counts)
        self.counts = np.bincount(event[keep], minlength=len(counts)).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.px, self.py, self.pz, self.E = (mom[k][keep] for k in _MOMENTUM)
        self.pid = pid[keep]
        self.charge = charge[keep]
        self.d0 = col("d0", np.float32)[keep]
        self.d0err = col("d0err", np.float32)[keep]
        self.dz = col("dz", np.float32)[keep]
        self.dzerr = col("dzerr", np.float32)[keep]

    def to_awkward(self) -> ak.Array:
        content = ak.contents.RecordArray(
            [
                ak.contents.NumpyArray(np.asarray(a, dtype=np.float64))
                for a in (self.px, self.py, self.pz, self.E)
            ],
            ["px", "py", "pz", "E"],
        )
        return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(self.offsets), content))


def _assemble(
    jet: dict[str, np.ndarray], part: dict[str, np.ndarray], part_counts: np.ndarray
) -> ak.Array:
    """The flat per-jet output array from numpy columns (any length, including 0)."""
    offsets = ak.index.Index64(np.concatenate([[0], np.cumsum(part_counts, dtype=np.int64)]))
    contents: list[ak.contents.Content] = []
    for name, dtype in JET_FIELDS.items():
        contents.append(ak.contents.NumpyArray(np.ascontiguousarray(jet[name], dtype=dtype)))
    for name, dtype in PART_FIELDS.items():
        values = ak.contents.NumpyArray(np.ascontiguousarray(part[name], dtype=dtype))
        contents.append(ak.contents.ListOffsetArray(offsets, values))
    return ak.Array(ak.contents.RecordArray(contents, list(OUTPUT_FIELDS), length=len(part_counts)))


def _empty() -> ak.Array:
    return _assemble(
        {k: np.zeros(0) for k in JET_FIELDS},
        {k: np.zeros(0) for k in PART_FIELDS},
        np.zeros(0, np.int64),
    )


def _wrap(dphi: np.ndarray) -> np.ndarray:
    """An azimuth difference folded into [-pi, pi)."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def cluster_events(
    events: ak.Array,
    *,
    algorithm: str = "antikt",
    R: float = 0.8,
    ptmin: float = 20.0,
    max_constituents: int = 128,
    inputs: str = "auto",
    chs: bool = True,
    eta_max: float | None = None,
) -> ak.Array:
    """Cluster the events into jets with substructure, constituents and truth labels.

    Parameters
    ----------
    events
        heplab event records (:mod:`heplab.events.schema`).
    algorithm
        ``"antikt"`` (default), ``"kt"`` or ``"ca"`` (Cambridge/Aachen); E-scheme.
    R
        Jet radius (default 0.8); also the truth-matching radius of the labels and the R0
        of soft drop and N-subjettiness.
    ptmin
        Minimum jet pT [GeV] (default 20); substructure is computed for these jets only.
    max_constituents
        Constituent lists are pT-ordered and cut to this length (``jet_nparticles`` keeps
        the full count; the jet kinematics and substructure use all constituents).
    inputs
        ``"pfcands"``, ``"particles"`` (truth: neutrinos and pile-up particles dropped) or
        ``"auto"`` (pfcands when the events have them, else particles).
    chs
        Charged-hadron subtraction: with pfcands, drop charged candidates with
        ``from_pv == False`` before clustering.
    eta_max
        If given, keep only jets with ``|jet_eta| < eta_max``.

    Returns
    -------
    ak.Array
        One record per jet (fields :data:`OUTPUT_FIELDS`), the jets of all events in event
        order and pT-ordered within each event. ``event_id`` comes from the events (the
        event index if they have none), ``jet_index`` is the jet's pT rank in its event.
        ``jet_sdmass`` is the soft-drop mass (beta = 0, zcut = 0.1, arXiv:1402.2657),
        ``jet_tau1..3`` N-subjettiness (beta = 1, exclusive-kt axes, arXiv:1011.2268),
        ``part_deta``/``part_dphi`` the constituent's pseudorapidity / azimuth relative to
        the jet axis (dphi in [-pi, pi)), ``part_d0val`` etc. the impact parameters [mm]
        (0 for truth particles and neutrals), ``part_is*`` the particle class (truth
        particles by PDG id and charge: charged/neutral hadrons, photons, e, mu), and the
        JetClass labels ``label_*`` with ``jet_parton_pid`` (:mod:`.labels`).

    Raises
    ------
    ConfigError
        Unknown algorithm or inputs, R <= 0, ptmin < 0, max_constituents < 1.
    DataError
        Missing input collection or fields, NaN/infinite momenta.
    """
    _check_config(algorithm, R, ptmin, max_constituents, inputs, eta_max)
    import fastjet

    if not isinstance(events, ak.Array):
        events = ak.Array(events)
    n_events = len(events)
    if n_events == 0:
        return _empty()
    fields = ak.fields(events)
    collection = inputs if inputs != "auto" else ("pfcands" if "pfcands" in fields else "particles")
    inp = _Inputs(events, collection, chs)
    event_ids = (
        np.asarray(ak.to_numpy(events["event_id"]), dtype=np.int64)
        if "event_id" in fields
        else np.arange(n_events, dtype=np.int64)
    )
    if inp.offsets[-1] == 0:
        return _empty()

    # ---- clustering
    jetdef = fastjet.JetDefinition(getattr(fastjet, ALGORITHMS[algorithm]), float(R))
    cs = fastjet.ClusterSequence(inp.to_awkward(), jetdef)
    jets = cs.inclusive_jets(float(ptmin)).layout
    cidx = cs.constituent_index(float(ptmin)).layout
    jet_off = np.asarray(jets.offsets).astype(np.int64)
    jrec = jets.content
    jp4 = np.stack(
        [
            np.asarray(jrec.content(k).data)[jet_off[0] : jet_off[-1]]
            for k in ("px", "py", "pz", "E")
        ],
        axis=1,
    )
    n_per_event = np.diff(jet_off)
    jet_event = np.repeat(np.arange(n_events), n_per_event)
    con_off = np.asarray(cidx.content.offsets).astype(np.int64)
    local = np.asarray(cidx.content.content.data).astype(np.int64)
    ncon = np.diff(con_off)
    if len(ncon) != len(jp4):
        raise DataError("FastJet returned inconsistent jets and constituents")

    jv: Any = vector.array({"px": jp4[:, 0], "py": jp4[:, 1], "pz": jp4[:, 2], "E": jp4[:, 3]})
    jet_pt = np.asarray(jv.pt)
    with np.errstate(all="ignore"):
        jet_eta = np.asarray(jv.eta)
    jet_phi = np.asarray(jv.phi)
    keep = np.ones(len(jp4), dtype=bool)
    if eta_max is not None:
        keep &= np.abs(jet_eta) < eta_max
    sel = np.flatnonzero(keep)
    sel = sel[np.lexsort((-jet_pt[sel], jet_event[sel]))]
    if sel.size == 0:
        return _empty()
    jet_event, jp4, ncon = jet_event[sel], jp4[sel], ncon[sel]
    jet_pt, jet_eta, jet_phi = jet_pt[sel], jet_eta[sel], jet_phi[sel]
    n_jets = sel.size
    first_of_event = np.searchsorted(jet_event, jet_event, side="left")
    jet_index = np.arange(n_jets) - first_of_event

    # ---- constituents (all, in jet order), as flat positions into the inputs
    src = ranges(con_off[sel], ncon)
    con_jet = np.repeat(np.arange(n_jets), ncon)
    g = local[src] + inp.offsets[jet_event[con_jet]]
    flat = FlatJets(
        inp.px[g], inp.py[g], inp.pz[g], inp.E[g], np.concatenate([[0], np.cumsum(ncon)])
    )

    # ---- substructure on all constituents
    sd = softdrop_flat(flat, beta=0.0, zcut=0.1, R0=float(R))
    sdv: Any = vector.array(
        {"px": sd.p4[:, 0], "py": sd.p4[:, 1], "pz": sd.p4[:, 2], "E": sd.p4[:, 3]}
    )
    taus = nsubjettiness_flat(flat, (1, 2, 3), R=float(R), beta=1.0)

    # ---- constituents pT-ordered and truncated
    cv: Any = vector.array({"px": flat.px, "py": flat.py, "pz": flat.pz, "E": flat.E})
    cpt = np.asarray(cv.pt)
    order = np.lexsort((-cpt, con_jet))
    rank = np.arange(len(order)) - flat.offsets[:-1][con_jet]
    kept = order[rank < max_constituents]  # con_jet is sorted, so rank follows `order`
    g_k, jet_k = g[kept], con_jet[kept]
    with np.errstate(all="ignore"):
        c_eta = np.asarray(cv.eta)[kept]
    c_phi = np.asarray(cv.phi)[kept]
    pid, charge = inp.pid[g_k], inp.charge[g_k]
    apid = np.abs(pid)
    is_e, is_mu, is_gamma = apid == 11, apid == 13, apid == 22
    charged_had = (charge != 0) & ~is_e & ~is_mu & (apid != 15)
    neutral_had = (charge == 0) & ~is_gamma & ~np.isin(apid, _NEUTRINOS)
    with np.errstate(invalid="ignore"):  # inf - inf for particles along the beam axis
        c_deta = c_eta - jet_eta[jet_k]
    part = {
        "part_px": inp.px[g_k],
        "part_py": inp.py[g_k],
        "part_pz": inp.pz[g_k],
        "part_energy": inp.E[g_k],
        "part_deta": c_deta,
        "part_dphi": _wrap(c_phi - jet_phi[jet_k]),
        "part_charge": charge,
        "part_pid": pid,
        "part_d0val": inp.d0[g_k],
        "part_d0err": inp.d0err[g_k],
        "part_dzval": inp.dz[g_k],
        "part_dzerr": inp.dzerr[g_k],
        "part_isChargedHadron": charged_had,
        "part_isNeutralHadron": neutral_had,
        "part_isPhoton": is_gamma,
        "part_isElectron": is_e,
        "part_isMuon": is_mu,
    }
    part_counts = np.minimum(ncon, max_constituents)

    # ---- truth labels
    partons = events["partons"] if "partons" in fields else None
    labels = label_jets_flat(jet_event, jet_eta, jet_phi, partons, float(R))

    jet = {
        "event_id": event_ids[jet_event],
        "jet_index": jet_index,
        "jet_pt": jet_pt,
        "jet_eta": jet_eta,
        "jet_phi": jet_phi,
        "jet_energy": jp4[:, 3],
        "jet_mass": np.maximum(np.asarray(jv.mass)[sel], 0.0),
        "jet_sdmass": np.maximum(np.nan_to_num(np.asarray(sdv.mass)), 0.0),
        "jet_tau1": taus[1],
        "jet_tau2": taus[2],
        "jet_tau3": taus[3],
        "jet_nparticles": ncon,
        **labels,
    }
    return _assemble(jet, part, part_counts)
