"""Calorimeter response: propagation to the calorimeter, tower deposits, energy smearing.

Every visible particle (not a neutrino, muon or card-listed invisible id) deposits the
fractions (f_ECAL, f_HCAL) of its energy in one ECAL and one HCAL tower (Delphes
``EnergyFraction``: e, gamma, pi0 -> ECAL; K0S, Lambda 30/70; other hadrons -> HCAL).

Where it lands: the particle goes in a straight line in (r, z) from its production vertex
(its vz) to the calorimeter envelope, a cylinder of radius R and half-length Z; charged
particles bend in phi in the solenoid field B: at transverse distance r the azimuth has
turned by asin(r / 2 r_c), r_c = pT / (0.3 |q| B) [m, GeV, T], clockwise seen from +z for
positive charge. Charged particles with 2 r_c smaller than that distance (loopers:
pT < 0.3 |q| B r / 2) never reach the calorimeter and deposit nothing. (Delphes
``ParticlePropagator`` follows the full helix; this is its barrel/endcap approximation.)

Towers are an (eta, phi) grid per calorimeter (see :class:`~heplab.detector.card.CalorimeterCard`).
Deposits are summed per (event, tower) with a sort on the flattened key
event * n_towers + tower (``np.unique`` + ``np.bincount``), then the tower energy E is
smeared with sigma(E)/E = S/sqrt(E) (+) N/E (+) C, log-normal with exactly that mean and
width (Delphes ``LogNormal``) or Gaussian truncated at 0.

References: Delphes 3, arXiv:1307.6346 (Calorimeter / SimpleCalorimeter modules).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.detector.card import CalorimeterCard, DetectorCard
from heplab.detector.particles import FlatParticles, asinh_fast

__all__ = [
    "CaloImpact",
    "Towers",
    "calo_impact",
    "deposit_and_smear",
    "group_keys",
    "smear_energy",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class CaloImpact:
    """Where each particle meets the calorimeter: (eta, phi) seen from the origin, and
    whether it gets there."""

    eta: F64
    phi: F64
    reaches: npt.NDArray[np.bool_]


@dataclass
class Towers:
    """Hit towers of one calorimeter (sorted by event, then tower id) and their deposits.

    ``e_true``/``e_meas`` [GeV] are the summed deposits and the smeared energy; ``sigma``
    [GeV] is the calorimeter resolution at ``e_true``. ``dep_particle`` (flat particle
    index), ``dep_tower`` (row in these arrays) and ``dep_energy`` [GeV] list the deposits.
    """

    evt: I64
    tower: I64
    eta: F64
    e_true: F64
    e_meas: F64
    sigma: F64
    dep_particle: I64
    dep_tower: I64
    dep_fraction: F64

    def __len__(self) -> int:
        return len(self.evt)


def calo_impact(parts: FlatParticles, card: DetectorCard) -> CaloImpact:
    """Propagate particles to the calorimeter envelope (see the module docstring)."""
    geo = card.geometry
    r_cal = geo.calo_radius_m * 1000.0  # mm
    z_cal = geo.calo_half_length_m * 1000.0  # mm
    pt = np.maximum(parts.pt, 1e-12)
    cot = parts.pz / pt
    vz = parts.vz
    # sinh(eta) of the impact point: z/R in the barrel, Z cot / (Z - vz) on an endcap
    t_barrel = vz * (1.0 / r_cal) + cot
    barrel = np.abs(t_barrel) <= z_cal / r_cal
    z_end = np.copysign(z_cal, parts.pz)
    gap = np.maximum(np.abs(z_end - vz), 1e-3)  # |Z - vz| > 0 for sane vertices
    t_end = np.abs(z_end) * cot / gap
    t_hit = t_end + barrel * (t_barrel - t_end)  # (arithmetic blend: faster than np.where)
    eta = asinh_fast(t_hit)

    # azimuth of the impact point: charged particles turn by asin(r / 2 r_c)
    x = parts.px
    y = parts.py
    reaches = np.ones(len(parts), dtype=bool)
    charged = np.flatnonzero(parts.charge != 0)
    if geo.bz_tesla > 0 and len(charged):
        q = parts.charge[charged]
        pt_c = pt[charged]
        # transverse distance travelled: R in the barrel, |Z - vz| / |cot| on an endcap
        r_end = gap[charged] / np.maximum(np.abs(cot[charged]), 1e-12)
        r_hit = r_end + barrel[charged] * (r_cal - r_end)
        # r / (2 r_c), r_c = pT / (0.3 |q| B) [m]
        ratio = r_hit * (0.3e-3 * 0.5 * geo.bz_tesla) * np.abs(q) / pt_c
        reaches[charged] = ratio <= 1.0
        sd = np.copysign(np.minimum(ratio, 1.0), q)  # sin of the turn, clockwise for q > 0
        cd = np.sqrt(1.0 - sd * sd)
        xc, yc = x[charged], y[charged]
        x = x.copy()
        y = y.copy()
        x[charged] = xc * cd + yc * sd
        y[charged] = yc * cd - xc * sd
    phi = np.arctan2(y, x)
    return CaloImpact(eta=eta, phi=phi, reaches=reaches)


def group_keys(key: I64) -> tuple[I64, I64]:
    """``np.unique(key, return_inverse=True)`` for non-negative int64 keys, faster: the
    position is packed into the low bits so one ``np.sort`` replaces the argsort."""
    n = len(key)
    if n == 0:
        return key.copy(), np.zeros(0, dtype=np.int64)
    pos_bits = max(int(n - 1).bit_length(), 1)
    key_bits = max(int(key.max()).bit_length(), 1)
    if pos_bits + key_bits > 62:
        ukey, inv = np.unique(key, return_inverse=True)
        return ukey, inv.reshape(-1).astype(np.int64)
    packed = np.sort((key << pos_bits) | np.arange(n, dtype=np.int64))
    skey = packed >> pos_bits
    order = packed & ((1 << pos_bits) - 1)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(skey[1:], skey[:-1], out=new[1:])
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    return skey[new], inv


def smear_energy(e_true: F64, rel_sigma: F64, mode: str, rng: np.random.Generator) -> F64:
    """Smear energies ``e_true`` [GeV] with relative widths ``rel_sigma`` (sigma/E).

    ``lognormal``: E exp(s z - s^2/2), z ~ N(0, 1), s^2 = ln(1 + (sigma/E)^2): a log-normal
    with mean E and standard deviation sigma exactly (Delphes ``LogNormal``).
    ``gaussian``: N(E, sigma) truncated at 0.
    """
    z = rng.standard_normal(len(e_true))
    if mode == "lognormal":
        s2 = np.log1p(rel_sigma * rel_sigma)
        return e_true * np.exp(np.sqrt(s2) * z - 0.5 * s2)
    return np.maximum(e_true * (1.0 + rel_sigma * z), 0.0)


def deposit_and_smear(
    parts: FlatParticles,
    impact: CaloImpact,
    fraction: F64,
    calo: CalorimeterCard,
    rng: np.random.Generator,
) -> Towers:
    """Sum the deposits ``fraction * energy`` per (event, tower) and smear the towers.

    Parameters
    ----------
    parts
        Flat truth particles.
    impact
        Their calorimeter impact points (:func:`calo_impact`).
    fraction
        Fraction of each particle's energy deposited in this calorimeter (0 for none).
    calo
        The calorimeter card.
    rng
        Random generator (one normal per hit tower).
    """
    dep = np.flatnonzero((fraction > 0) & impact.reaches & (parts.energy > 0))
    tower, inside = calo.tower_index(impact.eta[dep], impact.phi[dep], phi_wrapped=True)
    if not inside.all():
        sel = np.flatnonzero(inside)
        dep = dep[sel]
        tower = tower[sel]
    key = parts.evt[dep] * calo.n_towers + tower
    ukey, inv = group_keys(key)
    e_dep = fraction[dep] * parts.energy[dep]
    e_true = np.bincount(inv, weights=e_dep, minlength=len(ukey)).astype(np.float64)
    t_id = ukey % calo.n_towers if len(ukey) else ukey
    t_eta = calo.tower_eta(t_id)
    rel = calo.energy_resolution(e_true, t_eta)
    e_meas = smear_energy(e_true, rel, calo.smearing, rng)
    return Towers(
        evt=ukey // calo.n_towers,
        tower=t_id,
        eta=t_eta,
        e_true=e_true,
        e_meas=e_meas,
        sigma=e_true * rel,
        dep_particle=dep,
        dep_tower=inv.astype(np.int64),
        dep_fraction=fraction[dep],
    )
