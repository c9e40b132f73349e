"""Resonance reconstruction from particle-flow candidates: Z -> l+l- and friends."""

from __future__ import annotations

import awkward as ak
import numpy as np
import vector

__all__ = ["Z_MASS", "dilepton_mass"]

vector.register_awkward()

#: Z boson mass [GeV] (PDG 2024).
Z_MASS = 91.1880


def dilepton_mass(
    pfcands: ak.Array,
    *,
    flavours: tuple[int, ...] = (11, 13),
    ptmin: float = 20.0,
    eta_max: float = 2.5,
    target: float = Z_MASS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the mass [GeV] of the opposite-charge same-flavour lepton pair closest to
    ``target`` among candidates with pT > ``ptmin`` GeV and |eta| < ``eta_max``.

    Returns ``(mass, flavour)`` arrays with one entry per event: NaN and 0 where an event
    has no such pair.
    """
    lep = ak.zip(
        {
            "px": pfcands.px,
            "py": pfcands.py,
            "pz": pfcands.pz,
            "energy": pfcands.energy,
            "pid": pfcands.pid,
        },
        with_name="Momentum4D",
    )
    apid = np.abs(lep.pid)
    is_lepton = apid == flavours[0]
    for f in flavours[1:]:
        is_lepton = is_lepton | (apid == f)
    sel = is_lepton & (lep.pt > ptmin) & (np.abs(lep.eta) < eta_max)
    lep = lep[sel]
    a, b = ak.unzip(ak.combinations(lep, 2))
    ossf = a.pid == -b.pid
    a, b = a[ossf], b[ossf]
    mass = (a + b).mass
    best = ak.argmin(np.abs(mass - target), axis=1, keepdims=True)
    m = ak.to_numpy(ak.fill_none(ak.firsts(mass[best]), np.nan)).astype(np.float64)
    f = ak.to_numpy(ak.fill_none(ak.firsts(np.abs(a.pid[best])), 0)).astype(np.int32)
    return m, f
