"""Truth labels of jets from the hard-process record, following the JetClass rules.

JetClass (Qu, Li, Qian, arXiv:2202.03772) labels a jet by the hard-process decay products
of a resonance that lie within the jet radius of the jet axis (dR in pseudorapidity-
azimuth, the same R as the clustering):

==============  ===================================================================
``label_Tbqq``  t -> b W, W -> q q': the b and both W quarks within R
``label_Tbl``   t -> b W, W -> l nu (l = e, mu, tau): the b and the charged lepton
``label_H4q``   H -> W W* or Z Z*, both -> q q: all four quarks
``label_Hqql``  H -> W W*, one W -> q q', the other -> l nu: both quarks and the lepton
``label_Hbb``   H -> b b-bar: both b quarks (likewise ``Hcc`` for c c-bar, ``Hgg`` for g g)
``label_Wqq``   W -> q q': both quarks (a W from a top counts when the top's b is not
                within R, i.e. when the jet is not Tbqq; a W* from an H never counts)
``label_Zqq``   Z -> q q-bar: both quarks (a Z from an H never counts)
``label_QCD``   no decay product (quark, gluon, charged lepton) of any resonance within R
==============  ===================================================================

At most one label is 1 (the first that matches, in the order Tbqq, Tbl, H4q, Hqql, Hbb,
Hcc, Hgg, Wqq, Zqq); a jet with only part of a decay inside (a top jet missing a quark, a
lone b) has none. The H rules apply to the SM Higgs (PDG 25) only; other scalars (the X,
Y of ``wprime-xy``) make their jets non-QCD without a label.

``jet_parton_pid`` is the (signed) PDG id of the matched resonance for a labelled jet;
otherwise that of the nearest hard outgoing parton or resonance decay product within R
(the initiating parton, for quark/gluon studies); 0 if there is none.

Events without ``partons`` give all labels 0 and ``jet_parton_pid`` 0.
"""

from __future__ import annotations

from typing import Any, Final

import awkward as ak
import numpy as np
import vector

from heplab._arrays import ranges
from heplab.errors import ConfigError, DataError

__all__ = ["LABELS", "label_jets", "label_jets_flat"]

#: The JetClass one-hot label names, in the order of the JetClass files.
LABELS: Final = (
    "label_QCD",
    "label_Hbb",
    "label_Hcc",
    "label_Hgg",
    "label_H4q",
    "label_Hqql",
    "label_Zqq",
    "label_Wqq",
    "label_Tbqq",
    "label_Tbl",
)

#: Matching priority: the first candidate type a jet matches gives its label.
_PRIORITY: Final = (
    "label_Tbqq",
    "label_Tbl",
    "label_H4q",
    "label_Hqql",
    "label_Hbb",
    "label_Hcc",
    "label_Hgg",
    "label_Wqq",
    "label_Zqq",
)
_CODE = {name: k for k, name in enumerate(_PRIORITY)}

_QUARKS = (1, 2, 3, 4, 5)
_CHARGED_LEPTONS = (11, 13, 15)
_NEUTRINOS = (12, 14, 16)


def _delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """dR in pseudorapidity-azimuth; NaN/inf inputs (partons along the beam) give inf."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    with np.errstate(invalid="ignore"):
        dr = np.hypot(eta1 - eta2, dphi)
    return np.where(np.isfinite(dr), dr, np.inf)


class _Tree:
    """The flattened ``partons`` of all events with their decay structure (global indices)."""

    def __init__(self, partons: ak.Array) -> None:
        missing = [f for f in ("px", "py", "pz", "pid", "mother") if f not in ak.fields(partons)]
        if missing:
            raise DataError(f"partons lack the fields {missing} needed for jet labels")
        counts = ak.to_numpy(ak.num(partons, axis=1)).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = ak.flatten(partons, axis=1)
        n = len(flat)
        self.event = np.repeat(np.arange(len(counts)), counts)
        self.pid = ak.to_numpy(flat.pid).astype(np.int64)
        self.apid = np.abs(self.pid)
        mother = ak.to_numpy(flat.mother).astype(np.int64)
        has_m = mother >= 0
        self.mother = np.where(has_m, mother + self.offsets[self.event], -1)
        if has_m.any() and (mother[has_m] >= counts[self.event[has_m]]).any():
            raise DataError("partons: a mother index points outside its event's list")
        status = (
            ak.to_numpy(flat.status).astype(np.int64)
            if "status" in ak.fields(flat)
            else np.zeros(n, np.int64)
        )
        comps = {k: ak.to_numpy(flat[k]).astype(np.float64) for k in ("px", "py", "pz")}
        v: Any = vector.array(comps)
        with np.errstate(all="ignore"):
            self.eta = np.asarray(v.eta, dtype=np.float64)
            self.phi = np.asarray(v.phi, dtype=np.float64)
        # the first two children of every entry
        self.n_children = np.bincount(self.mother[has_m], minlength=n)
        kids = np.flatnonzero(has_m)
        kids = kids[np.argsort(self.mother[kids], kind="stable")]
        first = np.concatenate([[0], np.cumsum(self.n_children)[:-1]])
        self.d1 = np.full(n, -1, dtype=np.int64)
        self.d2 = np.full(n, -1, dtype=np.int64)
        one = self.n_children >= 1
        two = self.n_children >= 2
        self.d1[one] = kids[first[one]]
        self.d2[two] = kids[first[two] + 1]
        leaf = self.n_children == 0
        # resonance decay products that can be seen in a jet, and hard outgoing partons
        self.product = leaf & has_m & ~np.isin(self.apid, _NEUTRINOS)
        self.hard = leaf & ~has_m & (np.abs(status) != 21)

    def two_body(self, ids: np.ndarray) -> np.ndarray:
        """Mask of the entries with exactly two children."""
        return self.n_children[ids] == 2

    def is_(self, idx: np.ndarray, apids: tuple[int, ...]) -> np.ndarray:
        return (idx >= 0) & np.isin(self.apid[np.maximum(idx, 0)], apids)


def _decays(tree: _Tree, res: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For W/Z entries ``res``: ``(hadronic, leptonic, lepton)`` (lepton index or -1)."""
    d1, d2 = tree.d1[res], tree.d2[res]
    two = tree.two_body(res)
    hadronic = two & tree.is_(d1, _QUARKS) & tree.is_(d2, _QUARKS)
    l1 = tree.is_(d1, _CHARGED_LEPTONS) & tree.is_(d2, _NEUTRINOS)
    l2 = tree.is_(d2, _CHARGED_LEPTONS) & tree.is_(d1, _NEUTRINOS)
    leptonic = two & (l1 | l2)
    lepton = np.where(l1, d1, np.where(l2, d2, -1))
    return hadronic, leptonic, lepton


def _candidates(tree: _Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every labelled decay: ``(code, resonance index, products (n, 4) padded with -1)``."""
    codes: list[np.ndarray] = []
    res_list: list[np.ndarray] = []
    prods: list[np.ndarray] = []

    def add(name: str, res: np.ndarray, *cols: np.ndarray) -> None:
        if res.size == 0:
            return
        block = np.full((res.size, 4), -1, dtype=np.int64)
        for k, c in enumerate(cols):
            block[:, k] = c
        codes.append(np.full(res.size, _CODE[name]))
        res_list.append(res)
        prods.append(block)

    apid = tree.apid
    mother_apid = np.where(tree.mother >= 0, apid[np.maximum(tree.mother, 0)], 0)

    # W and Z bosons (W from tops included, W*/Z* from H excluded)
    for pdg, name in ((24, "label_Wqq"), (23, "label_Zqq")):
        v = np.flatnonzero((apid == pdg) & (mother_apid != 25))
        had = _decays(tree, v)[0]
        add(name, v[had], tree.d1[v[had]], tree.d2[v[had]])

    # top quarks: t -> b W
    t = np.flatnonzero(apid == 6)
    t = t[tree.two_body(t)]
    d1, d2 = tree.d1[t], tree.d2[t]
    w_first = tree.is_(d1, (24,)) & tree.is_(d2, _QUARKS)
    b_first = tree.is_(d2, (24,)) & tree.is_(d1, _QUARKS)
    ok = w_first | b_first
    t, w, b = t[ok], np.where(w_first, d1, d2)[ok], np.where(w_first, d2, d1)[ok]
    had, lep, lepton = _decays(tree, w)
    add("label_Tbqq", t[had], b[had], tree.d1[w[had]], tree.d2[w[had]])
    add("label_Tbl", t[lep], b[lep], lepton[lep])

    # Higgs bosons
    h = np.flatnonzero(apid == 25)
    h = h[tree.two_body(h)]
    d1, d2 = tree.d1[h], tree.d2[h]
    a1, a2 = apid[d1], apid[d2]
    for pdg, name in ((5, "label_Hbb"), (4, "label_Hcc"), (21, "label_Hgg")):
        sel = (a1 == pdg) & (a2 == pdg)
        add(name, h[sel], d1[sel], d2[sel])
    vv = ((a1 == 24) & (a2 == 24)) | ((a1 == 23) & (a2 == 23))
    h, v1, v2 = h[vv], d1[vv], d2[vv]
    had1, lep1, lepton1 = _decays(tree, v1)
    had2, lep2, lepton2 = _decays(tree, v2)
    four = had1 & had2
    add(
        "label_H4q",
        h[four],
        tree.d1[v1[four]],
        tree.d2[v1[four]],
        tree.d1[v2[four]],
        tree.d2[v2[four]],
    )
    ww = apid[v1] == 24
    q1l2 = ww & had1 & lep2
    q2l1 = ww & had2 & lep1
    qv = np.where(q1l2, v1, v2)
    lepton = np.where(q1l2, lepton2, lepton1)
    sel = q1l2 | q2l1
    add("label_Hqql", h[sel], tree.d1[qv[sel]], tree.d2[qv[sel]], lepton[sel])

    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    return np.concatenate(codes), np.concatenate(res_list), np.concatenate(prods)


def _pairs(
    jet_event: np.ndarray, item_event: np.ndarray, n_events: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (jet, item) index pairs of the same event; ``item_event`` must be sorted."""
    counts = np.bincount(item_event, minlength=n_events)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_jet = counts[jet_event]
    jet = np.repeat(np.arange(len(jet_event)), per_jet)
    item = ranges(starts[jet_event], per_jet)
    return jet, item


def label_jets_flat(
    jet_event: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    partons: ak.Array | None,
    R: float,
) -> dict[str, np.ndarray]:
    """:func:`label_jets` for flat jets: ``jet_event`` is each jet's index into ``partons``.

    Returns the ``LABELS`` (int8) and ``jet_parton_pid`` (int32), one entry per jet.
    """
    if not (np.isfinite(R) and R > 0):
        raise ConfigError(f"the matching radius R must be positive, not {R!r}")
    n_jets = len(jet_event)
    out: dict[str, np.ndarray] = {name: np.zeros(n_jets, np.int8) for name in LABELS}
    out["jet_parton_pid"] = np.zeros(n_jets, np.int32)
    if partons is None or n_jets == 0:
        return out
    jet_event = np.asarray(jet_event, dtype=np.int64)
    jet_eta = np.asarray(jet_eta, dtype=np.float64)
    jet_phi = np.asarray(jet_phi, dtype=np.float64)
    tree = _Tree(partons)
    n_events = len(tree.offsets) - 1
    if n_jets and (jet_event.min() < 0 or jet_event.max() >= n_events):
        raise DataError("label_jets: a jet's event index is outside the partons array")

    # resonance candidates: all their products within R
    code, res, prods = _candidates(tree)
    order = np.lexsort((code, tree.event[res])) if res.size else np.zeros(0, np.int64)
    code, res, prods = code[order], res[order], prods[order]
    best = np.full(n_jets, len(_PRIORITY), dtype=np.int64)
    best_res = np.full(n_jets, -1, dtype=np.int64)
    if res.size:
        jet, cand = _pairs(jet_event, tree.event[res], n_events)
        p = prods[cand]
        valid = p >= 0
        pp = np.maximum(p, 0)
        dr = _delta_r(jet_eta[jet, None], jet_phi[jet, None], tree.eta[pp], tree.phi[pp])
        inside = ((dr < R) | ~valid).all(axis=1)
        jet, cand = jet[inside], cand[inside]
        # the lowest code wins (pairs are ordered by code within each event's candidates)
        key = np.lexsort((code[cand], jet))
        jet, cand = jet[key], cand[key]
        first = np.ones(len(jet), dtype=bool)
        first[1:] = jet[1:] != jet[:-1]
        best[jet[first]] = code[cand[first]]
        best_res[jet[first]] = res[cand[first]]
    for k, name in enumerate(_PRIORITY):
        out[name][best == k] = 1
    labelled = best_res >= 0
    out["jet_parton_pid"][labelled] = tree.pid[best_res[labelled]]

    # decay products and hard partons within R: QCD and the initiating parton
    items = np.flatnonzero(tree.product | tree.hard)
    has_product = np.zeros(n_jets, dtype=bool)
    if items.size:
        jet, item = _pairs(jet_event, tree.event[items], n_events)
        item = items[item]
        dr = _delta_r(jet_eta[jet], jet_phi[jet], tree.eta[item], tree.phi[item])
        near = dr < R
        jet, item, dr = jet[near], item[near], dr[near]
        has_product[jet[tree.product[item]]] = True
        key = np.lexsort((dr, jet))
        jet, item = jet[key], item[key]
        first = np.ones(len(jet), dtype=bool)
        first[1:] = jet[1:] != jet[:-1]
        nearest = np.zeros(n_jets, dtype=np.int64)
        nearest[jet[first]] = tree.pid[item[first]]
        out["jet_parton_pid"][~labelled] = nearest[~labelled]
    out["label_QCD"][:] = (~has_product & ~labelled).astype(np.int8)
    return out


def label_jets(jets_eta: Any, jets_phi: Any, partons: ak.Array, R: float) -> dict[str, np.ndarray]:
    """JetClass truth labels of jets (see the module documentation for the rules).

    Parameters
    ----------
    jets_eta, jets_phi
        Jagged ``[event][jet]`` pseudorapidity and azimuth [rad] of the jet axes, one list
        per entry of ``partons``.
    partons
        The events' hard-process records (``pid``, ``mother``, ``px, py, pz`` [GeV],
        optionally ``status``; :mod:`heplab.events.schema`).
    R
        Matching radius (the jet radius) in pseudorapidity-azimuth.

    Returns
    -------
    dict
        ``label_*`` (int8, 0/1) and ``jet_parton_pid`` (int32), flat numpy arrays with one
        entry per jet, jets in event order.
    """
    eta = ak.Array(jets_eta)
    phi = ak.Array(jets_phi)
    counts = ak.to_numpy(ak.num(eta, axis=1)).astype(np.int64)
    if len(counts) != len(partons):
        raise DataError(f"label_jets: {len(counts)} events of jets but {len(partons)} of partons")
    if not np.array_equal(counts, ak.to_numpy(ak.num(phi, axis=1))):
        raise DataError("label_jets: jets_eta and jets_phi have different jet counts")
    jet_event = np.repeat(np.arange(len(counts)), counts)
    return label_jets_flat(
        jet_event,
        ak.to_numpy(ak.flatten(eta, axis=1)),
        ak.to_numpy(ak.flatten(phi, axis=1)),
        partons,
        R,
    )
