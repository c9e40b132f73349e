"""Particle flow (Delphes energy-flow logic), vectorised over all towers of all events.

1. Every reconstructed track is a charged candidate: an identified electron (+-11) or muon
   (+-13), otherwise a charged hadron (+-211, pion mass).
2. In each tower of each calorimeter the expected deposits of the tracked particles that
   hit it, T = sum f_calo * E_track, are subtracted from the smeared tower energy E. The
   excess E - T becomes a neutral candidate (ECAL: photon 22, HCAL: neutral hadron 130,
   massless) when it exceeds both ``energy_min`` and ``significance_min`` *
   sqrt(sigma_cal^2 + sigma_T^2) (sigma_cal at the true tower energy, sigma_T from the
   track resolutions). Its direction is the tower centre, or a uniform random point in the
   tower (Delphes ``SmearTowerCenter``).
3. ECAL towers without a significant excess that hold electron tracks: the electron
   energy becomes the inverse-variance weighted mean of the track sum and of the ECAL
   measurement (E minus the other tracks' expected deposits), and the electron tracks are
   rescaled to it (Delphes >= 3.4 ``Calorimeter``; only electrons, so charged hadrons and
   muons keep their track momentum).
4. Charged particles that are not tracked (outside the tracker, below its threshold, or
   lost to its inefficiency) still deposit, so their energy shows up in neutral candidates.
5. ``from_pv``: neutrals True; charged candidates True when
   |dz| < max(chs_dz_max_mm, chs_dz_nsigma * dzerr).

References: Delphes 3, arXiv:1307.6346; CMS particle flow, arXiv:1706.04965; ATLAS
particle flow, Eur. Phys. J. C 77 (2017) 466, arXiv:1703.10485.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.detector.calorimeter import Towers
from heplab.detector.card import CalorimeterCard
from heplab.detector.tracker import Tracks

__all__ = ["Neutrals", "energy_flow"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class Neutrals:
    """Neutral candidates of one calorimeter (grouped by event)."""

    evt: I64
    px: F64
    py: F64
    pz: F64
    energy: F64

    def __len__(self) -> int:
        return len(self.evt)


def energy_flow(
    towers: Towers,
    calo: CalorimeterCard,
    track_slot: I64,
    tracks: Tracks,
    *,
    position: str,
    combine_em: bool,
    rng: np.random.Generator,
) -> Neutrals:
    """Track subtraction in the towers of one calorimeter (steps 2-4 of the module
    docstring): returns the neutral candidates; with ``combine_em`` also rescales the
    electron tracks of towers without a significant excess (in place).

    Parameters
    ----------
    towers
        The calorimeter's hit towers and deposits.
    calo
        Its card (thresholds, geometry).
    track_slot
        Flat particle index -> row in ``tracks`` (-1 when the particle is not tracked).
    tracks
        The reconstructed tracks.
    position
        ``uniform`` or ``centre`` (direction of neutral candidates within the tower).
    combine_em
        Whether to combine electron tracks with the ECAL (ECAL only).
    rng
        Random generator (two uniforms per neutral candidate with ``uniform``).
    """
    n = len(towers)
    slot = track_slot[towers.dep_particle]
    tracked = np.flatnonzero(slot >= 0)
    rows = towers.dep_tower[tracked]
    slot = slot[tracked]
    e_exp = towers.dep_fraction[tracked] * tracks.energy[slot]
    var = (e_exp * tracks.rel_sigma[slot]) ** 2
    t_all = np.bincount(rows, weights=e_exp, minlength=n)
    v_all = np.bincount(rows, weights=var, minlength=n)
    excess = towers.e_meas - t_all
    sig = np.sqrt(towers.sigma**2 + v_all)
    neutral = (excess > calo.energy_min) & (excess > calo.significance_min * sig)

    if combine_em and len(slot):
        em = np.flatnonzero(tracks.is_em[slot])
        if len(em):
            em_rows, em_slot = rows[em], slot[em]
            # the towers holding electron tracks, and per deposit its place among them
            t_rows, t_inv = np.unique(em_rows, return_inverse=True)
            t_inv = t_inv.reshape(-1)
            m = len(t_rows)
            t_em = np.bincount(t_inv, weights=e_exp[em], minlength=m)
            v_em = np.bincount(t_inv, weights=var[em], minlength=m)
            # calorimeter estimate of the electrons' energy and its variance
            e_cal = towers.e_meas[t_rows] - (t_all[t_rows] - t_em)
            v_cal = towers.sigma[t_rows] ** 2 + (v_all[t_rows] - v_em)
            denom = v_cal + v_em
            best = t_em.copy()
            ok = np.flatnonzero(denom > 0)
            best[ok] = (e_cal[ok] * v_em[ok] + t_em[ok] * v_cal[ok]) / denom[ok]
            use = ~neutral[t_rows] & (t_em > 0) & (best > 0)
            scale_tower = np.ones(m)
            scale_tower[use] = best[use] / t_em[use]
            scale = np.ones(len(tracks))
            scale[em_slot] = scale_tower[t_inv]
            tracks.rescale(scale)

    keep = np.flatnonzero(neutral)
    energy = excess[keep]
    tower = towers.tower[keep]
    if position == "uniform":
        e_lo, e_hi, p_lo, p_hi = calo.tower_bounds(tower)
        u = rng.random((2, len(keep)))
        eta = e_lo + (e_hi - e_lo) * u[0]
        phi = p_lo + (p_hi - p_lo) * u[1]
    else:
        eta, phi = calo.tower_centre(tower)
    ex = np.exp(np.clip(eta, -30.0, 30.0))
    inv = 1.0 / ex
    pt = 2.0 * energy / (ex + inv)  # E / cosh(eta)
    return Neutrals(
        evt=towers.evt[keep],
        px=pt * np.cos(phi),
        py=pt * np.sin(phi),
        pz=energy * (ex - inv) / (ex + inv),  # E tanh(eta)
        energy=energy,
    )
