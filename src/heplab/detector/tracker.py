"""Tracker response: acceptance, efficiency, curvature and impact-parameter smearing.

Charged particles with pT > ``pt_min`` and |eta| < ``eta_max`` are reconstructed with the
card's piecewise efficiency (separate tables for hadrons, electrons, muons, as the Delphes
``Efficiency`` modules). The curvature q/pT is smeared with a Gaussian of relative width
sigma(pT)/pT = a pT (+) b / sin^k(theta) (muons: tracker (+)^-1 spectrometer), so that
pT_true / pT_reco - 1 has exactly that width; the track direction is not smeared.

Impact parameters are computed from the truth production vertex in the straight-line
approximation (adequate at the mm scale of vertices and the m scale of track curvature):

    d0 = (vx py - vy px) / pT                                  [mm]
    z0 = vz - pv_z - (vx px + vy py) / pT * pz / pT           [mm]

d0 is the z component of (r_vertex x p_hat_T): positive when the beam line is to the left
of the track, seen from +z (the transverse point of closest approach is at d0 (sin phi,
-cos phi)). z0 is the z of that point relative to the hard-scatter vertex ``pv_z``. Both are
smeared with Gaussians of width sigma_d0 = a (+) b / (pT sqrt(sin theta)) and
sigma_z0 = a (+) b / (pT sin^1.5 theta) (ATLAS ID TDR form), stored in ``d0err``/``dzerr``.

References: ATLAS JINST 3 (2008) S08003; ATLAS ID TDR CERN/LHCC/97-16; CMS arXiv:1405.6569;
ILC TDR Vol. 4 arXiv:1306.6329; Delphes arXiv:1307.6346.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.detector.card import DetectorCard
from heplab.detector.particles import FlatParticles

__all__ = ["ELECTRON_MASS", "MUON_MASS", "PION_MASS", "Tracks", "reconstruct_tracks"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ELECTRON_MASS = 0.000510999  # GeV
MUON_MASS = 0.1056584  # GeV
PION_MASS = 0.1395704  # GeV


@dataclass
class Tracks:
    """Reconstructed tracks (one per reconstructed charged particle), as flat arrays.

    ``idx`` indexes the flat truth particles (ascending, so tracks are grouped by event).
    ``rel_sigma`` is the sigma(pT)/pT used to smear; ``is_em`` marks electron tracks (their
    ECAL shower can be combined with the track). Momenta in GeV, impact parameters in mm.
    """

    idx: I64
    evt: I64
    px: F64
    py: F64
    pz: F64
    energy: F64
    pt: F64
    charge: npt.NDArray[np.int8]
    pid: npt.NDArray[np.int32]
    mass: F64
    d0: F64
    dz: F64
    d0err: F64
    dzerr: F64
    rel_sigma: F64
    is_em: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.idx)

    def rescale(self, scale: F64) -> None:
        """Scale the track momenta by ``scale`` (energy recomputed with the mass)."""
        self.px = self.px * scale
        self.py = self.py * scale
        self.pz = self.pz * scale
        self.pt = self.pt * scale
        self.energy = np.sqrt(self.px**2 + self.py**2 + self.pz**2 + self.mass**2)


def truth_impact_parameters(parts: FlatParticles, idx: I64, pv_z: F64) -> tuple[F64, F64]:
    """Truth (d0, z0) [mm] of particles ``idx`` relative to the beam line and ``pv_z``
    (per event), straight-line approximation (see the module docstring)."""
    px, py, pz = parts.px[idx], parts.py[idx], parts.pz[idx]
    vx, vy, vz = parts.vx[idx], parts.vy[idx], parts.vz[idx]
    pt = np.maximum(parts.pt[idx], 1e-12)
    d0 = (vx * py - vy * px) / pt
    z0 = vz - pv_z[parts.evt[idx]] - (vx * px + vy * py) / pt * (pz / pt)
    return d0, z0


def reconstruct_tracks(
    parts: FlatParticles, card: DetectorCard, rng: np.random.Generator, pv_z: F64
) -> Tracks:
    """Reconstruct tracks from the truth particles.

    Parameters
    ----------
    parts
        Flat truth particles.
    card
        Detector card (``card.tracker``, ``card.muon``, ``card.electron`` are used).
    rng
        Random generator; draws: efficiency, curvature, d0, z0, identification.
    pv_z
        Hard-scatter vertex z per event [mm].
    """
    trk = card.tracker
    charged = np.flatnonzero(parts.charge != 0)
    charged = charged[~card.invisible(parts.abs_pid[charged])]
    pt_c = parts.pt[charged]
    eta_c = parts.eta[charged]
    inside = np.flatnonzero((pt_c > trk.pt_min) & (np.abs(eta_c) < trk.eta_max))
    cand = charged[inside]
    eta_c = eta_c[inside]
    eff = trk.efficiency(pt_c[inside], eta_c, parts.abs_pid[cand])
    keep = np.flatnonzero(rng.random(len(cand)) < eff)
    idx = cand[keep]
    eta = eta_c[keep]

    apid = parts.abs_pid[idx]
    pt = parts.pt[idx]
    sin_t = pt / np.maximum(parts.p[idx], 1e-12)
    charge = parts.charge[idx]
    is_mu = apid == 13
    is_e = apid == 11

    rel = trk.pt_resolution(pt, eta, sin_theta=sin_t)
    if is_mu.any():
        rel[is_mu] = card.muon_pt_resolution(pt[is_mu], eta[is_mu])
    # curvature smearing: k = pT_true / pT_reco ~ N(1, rel); k < 0 flips the charge
    k = 1.0 + rel * rng.standard_normal(len(idx))
    k_abs = np.maximum(np.abs(k), 1e-4)
    scale = 1.0 / k_abs
    pt_reco = pt * scale
    q_reco = charge * np.copysign(1.0, k)

    d0_true, z0_true = truth_impact_parameters(parts, idx, pv_z)
    d0err = trk.d0_resolution(pt, eta, sin_theta=sin_t)
    dzerr = trk.z0_resolution(pt, eta, sin_theta=sin_t)
    d0 = d0_true + d0err * rng.standard_normal(len(idx))
    dz = z0_true + dzerr * rng.standard_normal(len(idx))

    # identification (on the reconstructed pT): failed leptons are charged hadrons
    u = rng.random(len(idx))
    id_e = np.zeros(len(idx), dtype=bool)
    id_mu = np.zeros(len(idx), dtype=bool)
    if is_e.any():
        id_e[is_e] = u[is_e] < card.electron.id_efficiency(pt_reco[is_e], eta[is_e])
    if is_mu.any():
        id_mu[is_mu] = u[is_mu] < card.muon.id_efficiency(pt_reco[is_mu], eta[is_mu])
    sign = np.sign(q_reco)
    pid = (211 * sign).astype(np.int32)
    mass = np.full(len(idx), PION_MASS)
    for ident, code, m in ((id_e, -11, ELECTRON_MASS), (id_mu, -13, MUON_MASS)):
        sel = np.flatnonzero(ident)
        pid[sel] = code * sign[sel]
        mass[sel] = m

    px = parts.px[idx] * scale
    py = parts.py[idx] * scale
    pz = parts.pz[idx] * scale
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    return Tracks(
        idx=idx,
        evt=parts.evt[idx],
        px=px,
        py=py,
        pz=pz,
        energy=energy,
        pt=pt_reco,
        charge=q_reco.astype(np.int8),
        pid=pid,
        mass=mass,
        d0=d0,
        dz=dz,
        d0err=d0err,
        dzerr=dzerr,
        rel_sigma=rel,
        is_em=is_e,
    )
