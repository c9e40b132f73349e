"""Detector cards: the parameters of the fast detector response, read from YAML.

A card is a tree of frozen dataclasses (:class:`DetectorCard` at the root). The built-in
cards ``atlas``, ``cms`` and ``ee`` live in ``heplab/detector/cards/*.yaml`` (package data);
any other name is read as the path of a user card. A user card may start from a built-in
one with ``base: atlas`` and override only what differs (mappings are merged key by key,
lists are replaced). Every formula and number is documented in ``docs/detector.md``.

Units: GeV, mm (impact parameters), m and T (geometry of the calorimeter envelope).

References
----------
- J. de Favereau et al. (Delphes 3), JHEP 02 (2014) 057, arXiv:1307.6346.
- ATLAS Collaboration, JINST 3 (2008) S08003; CMS Collaboration, JINST 3 (2008) S08004.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from heplab.errors import ConfigError

__all__ = [
    "CaloRegion",
    "CaloResolutionBin",
    "CalorimeterCard",
    "DetectorCard",
    "EfficiencyTable",
    "ElectronCard",
    "GeometryCard",
    "ImpactParameterResolution",
    "MuonCard",
    "PFlowCard",
    "PtResolutionBin",
    "TrackerCard",
    "card_from_dict",
    "list_cards",
    "load_card",
]

FloatArray = npt.NDArray[np.float64]

#: |PDG id| of particles that never leave a signal (neutrinos); the card adds its own.
NEUTRINO_PIDS = (12, 14, 16)
#: |PDG id| of the muon: it deposits nothing in the calorimeters (minimum ionisation ignored).
MUON_PID = 13

_BUILTIN = ("atlas", "cms", "ee")


def _sin_theta(eta: FloatArray) -> FloatArray:
    """sin(theta) = 1/cosh(eta)."""
    return 1.0 / np.cosh(np.minimum(np.abs(eta), 50.0))


def _count_edges(x: FloatArray, edges: FloatArray, *, inclusive: bool) -> npt.NDArray[np.intp]:
    """Number of ``edges`` <= x (``inclusive``) or < x: ``np.searchsorted`` with side
    'right' or 'left', done with a few comparisons when there are few edges (faster)."""
    if len(edges) > 6:
        return np.searchsorted(edges, x, side="right" if inclusive else "left")
    out = np.zeros(np.shape(x), dtype=np.intp)
    for e in edges:
        out += (x >= e) if inclusive else (x > e)
    return out


def _eta_bin(eta_max: FloatArray, eta: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Index of the |eta| bin (bins are ``(previous eta_max, eta_max]``; beyond the last
    bin the last one is used)."""
    idx = _count_edges(np.abs(np.asarray(eta, dtype=np.float64)), eta_max, inclusive=False)
    return np.minimum(idx, len(eta_max) - 1)


class _PidLookup:
    """Vectorised |pid| -> value table (a dense array for |pid| < 10000, a sorted search
    for the rest)."""

    DENSE = 10000

    def __init__(self, table: Mapping[int, float], default: float) -> None:
        self.default = default
        self.dense = np.full(self.DENSE + 1, default, dtype=np.float64)
        big = sorted(p for p in table if p >= self.DENSE)
        for p, v in table.items():
            if p < self.DENSE:
                self.dense[p] = v
        self.big_keys = np.array(big, dtype=np.int64)
        self.big_vals = np.array([table[p] for p in big], dtype=np.float64)

    def __call__(self, abs_pid: npt.NDArray[np.int64]) -> FloatArray:
        out = self.dense[np.minimum(abs_pid, self.DENSE)]  # entry DENSE holds the default
        if len(self.big_keys):
            big = np.flatnonzero(abs_pid >= self.DENSE)
            if len(big):
                i = np.clip(np.searchsorted(self.big_keys, abs_pid[big]), 0, len(self.big_keys) - 1)
                hit = self.big_keys[i] == abs_pid[big]
                out[big[hit]] = self.big_vals[i[hit]]
        return out


# --------------------------------------------------------------------------------------
# the dataclass tree
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EfficiencyTable:
    """A piecewise-constant efficiency in (|eta|, pT), like the Delphes efficiency formulas.

    ``values[i][j]`` applies to ``eta_edges[i] <= |eta| < eta_edges[i+1]`` and
    ``pt_edges[j] <= pT < pt_edges[j+1]`` (the last pT bin is open). Below the first pT
    edge and beyond the last |eta| edge the efficiency is 0.
    """

    eta_edges: tuple[float, ...]
    pt_edges: tuple[float, ...]
    values: tuple[tuple[float, ...], ...]

    def __call__(self, pt: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
        """Efficiency at ``pt`` [GeV] and ``eta`` (arrays broadcast)."""
        pt_a = np.asarray(pt, dtype=np.float64)
        aeta = np.abs(np.asarray(eta, dtype=np.float64))
        table = np.asarray(self.values, dtype=np.float64)
        ie = _count_edges(aeta, np.asarray(self.eta_edges), inclusive=True) - 1
        ip = _count_edges(pt_a, np.asarray(self.pt_edges), inclusive=True) - 1
        valid = (ie >= 0) & (ie < table.shape[0]) & (ip >= 0)
        ie_c = np.clip(ie, 0, table.shape[0] - 1)
        ip_c = np.clip(ip, 0, table.shape[1] - 1)
        return table[ie_c, ip_c] * valid

    def to_dict(self) -> dict[str, Any]:
        """The YAML form."""
        return {
            "eta_edges": list(self.eta_edges),
            "pt_edges": list(self.pt_edges),
            "values": [list(row) for row in self.values],
        }


@dataclass(frozen=True)
class PtResolutionBin:
    """sigma(pT)/pT = (a pT) (+) (b / sin^k theta) for |eta| up to ``eta_max``.

    ``a`` [1/GeV] is the curvature (point-resolution) term, ``b`` the multiple-scattering
    term; the power k is the tracker's ``sin_theta_power``.
    """

    eta_max: float
    a: float
    b: float


@dataclass(frozen=True)
class ImpactParameterResolution:
    """sigma = a (+) b / (pT sin^p theta) [mm], with p = 1/2 for d0 and 3/2 for z0."""

    a: float
    b: float


@dataclass(frozen=True)
class GeometryCard:
    """Solenoid field and the calorimeter envelope (a cylinder around the beam)."""

    bz_tesla: float
    calo_radius_m: float
    calo_half_length_m: float


@dataclass(frozen=True)
class TrackerCard:
    """Track reconstruction: acceptance, efficiency and resolutions."""

    eta_max: float
    pt_min: float
    efficiency_hadron: EfficiencyTable
    efficiency_electron: EfficiencyTable
    efficiency_muon: EfficiencyTable
    sin_theta_power: float
    pt_resolution_bins: tuple[PtResolutionBin, ...]
    d0: ImpactParameterResolution
    z0: ImpactParameterResolution

    @cached_property
    def _res_table(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        bins = self.pt_resolution_bins
        return (
            np.array([b.eta_max for b in bins]),
            np.array([b.a for b in bins]),
            np.array([b.b for b in bins]),
        )

    def pt_resolution(
        self, pt: npt.ArrayLike, eta: npt.ArrayLike, *, sin_theta: FloatArray | None = None
    ) -> FloatArray:
        """Relative track momentum resolution sigma(pT)/pT (= pT sigma(1/pT)).

        sigma(pT)/pT = sqrt((a pT)^2 + (b / sin^k(theta))^2), with (a, b) from the |eta|
        bin and k = ``sin_theta_power`` (0 for the LHC cards; 1 for the e+e- card, which
        writes the ILD form sigma(1/pT) = a (+) b / (pT sin theta)). ``sin_theta`` may be
        passed when already known (speed).
        """
        pt_a = np.asarray(pt, dtype=np.float64)
        eta_a = np.asarray(eta, dtype=np.float64)
        edges, a, b = self._res_table
        i = _eta_bin(edges, eta_a)
        ms = b[i]
        if self.sin_theta_power != 0:
            s = _sin_theta(eta_a) if sin_theta is None else sin_theta
            ms = ms / s**self.sin_theta_power
        ct = a[i] * pt_a
        return np.sqrt(ct * ct + ms * ms)

    def d0_resolution(
        self, pt: npt.ArrayLike, eta: npt.ArrayLike, *, sin_theta: FloatArray | None = None
    ) -> FloatArray:
        """Transverse impact-parameter resolution [mm]: a (+) b / (pT sqrt(sin theta))."""
        pt_a = np.maximum(np.asarray(pt, dtype=np.float64), 1e-9)
        s = _sin_theta(np.asarray(eta, dtype=np.float64)) if sin_theta is None else sin_theta
        ms = self.d0.b / (pt_a * np.sqrt(s))
        return np.sqrt(self.d0.a**2 + ms * ms)

    def z0_resolution(
        self, pt: npt.ArrayLike, eta: npt.ArrayLike, *, sin_theta: FloatArray | None = None
    ) -> FloatArray:
        """Longitudinal impact-parameter resolution [mm]: a (+) b / (pT sin^1.5 theta)."""
        pt_a = np.maximum(np.asarray(pt, dtype=np.float64), 1e-9)
        s = _sin_theta(np.asarray(eta, dtype=np.float64)) if sin_theta is None else sin_theta
        ms = self.z0.b / (pt_a * s * np.sqrt(s))
        return np.sqrt(self.z0.a**2 + ms * ms)

    def efficiency(
        self, pt: npt.ArrayLike, eta: npt.ArrayLike, abs_pid: npt.ArrayLike
    ) -> FloatArray:
        """Tracking efficiency (electron, muon or hadron table by |pid|), 0 outside the
        acceptance (|eta| >= eta_max or pT <= pt_min)."""
        pt_a, eta_a = np.broadcast_arrays(
            np.asarray(pt, dtype=np.float64), np.asarray(eta, dtype=np.float64)
        )
        apid = np.broadcast_to(np.asarray(abs_pid), pt_a.shape)
        eff = np.zeros(pt_a.shape)
        is_e = apid == 11
        is_mu = apid == MUON_PID
        is_h = ~(is_e | is_mu)
        for mask, table in (
            (is_h, self.efficiency_hadron),
            (is_e, self.efficiency_electron),
            (is_mu, self.efficiency_muon),
        ):
            if mask.any():
                eff[mask] = table(pt_a[mask], eta_a[mask])
        inside = (pt_a > self.pt_min) & (np.abs(eta_a) < self.eta_max)
        return eff * inside


@dataclass(frozen=True)
class CaloRegion:
    """A ring of towers: |eta| from the previous region's ``eta_max`` (0 for the first) to
    ``eta_max``, cut into ``n_eta`` equal rings of ``n_phi`` equal towers each (both signs
    of eta)."""

    eta_max: float
    n_eta: int
    n_phi: int


@dataclass(frozen=True)
class CaloResolutionBin:
    """sigma(E)/E = S/sqrt(E) (+) N/E (+) C for |eta| up to ``eta_max`` (E in GeV)."""

    eta_max: float
    stochastic: float
    noise: float
    constant: float


@dataclass(frozen=True)
class CalorimeterCard:
    """One calorimeter (ECAL or HCAL): tower grid, resolution, particle-flow thresholds.

    ``energy_min`` [GeV] and ``significance_min`` are the Delphes ``EnergyMin`` and
    ``EnergySignificanceMin``: a tower's energy left after subtracting its tracks becomes
    a neutral candidate when it exceeds both ``energy_min`` and ``significance_min`` times
    the combined (calorimeter (+) tracks) resolution. ``smearing`` is ``lognormal`` (as
    Delphes; mean and width exactly those of the formula, never negative) or ``gaussian``
    (truncated at 0).
    """

    regions: tuple[CaloRegion, ...]
    resolution_bins: tuple[CaloResolutionBin, ...]
    energy_min: float
    significance_min: float
    smearing: str

    # -- resolution ---------------------------------------------------------------------

    @cached_property
    def _res_table(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        bins = self.resolution_bins
        return (
            np.array([b.eta_max for b in bins]),
            np.array([b.stochastic for b in bins]),
            np.array([b.noise for b in bins]),
            np.array([b.constant for b in bins]),
        )

    def energy_resolution(self, energy: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
        """Relative resolution sigma(E)/E = S/sqrt(E) (+) N/E (+) C at ``energy`` [GeV]."""
        e = np.maximum(np.asarray(energy, dtype=np.float64), 1e-12)
        edges, s, n, c = self._res_table
        i = _eta_bin(edges, eta)
        return np.sqrt(s[i] ** 2 / e + (n[i] / e) ** 2 + c[i] ** 2)

    # -- geometry -------------------------------------------------------------------------

    @property
    def eta_max(self) -> float:
        """Outer |eta| edge of the calorimeter."""
        return self.regions[-1].eta_max

    @cached_property
    def _grid(self) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        pos = [0.0]
        nphi_pos: list[int] = []
        lo = 0.0
        for r in self.regions:
            pos.extend(np.linspace(lo, r.eta_max, r.n_eta + 1)[1:].tolist())
            nphi_pos.extend([r.n_phi] * r.n_eta)
            lo = r.eta_max
        pos_a = np.array(pos)
        edges = np.concatenate([-pos_a[:0:-1], pos_a])
        nphi = np.array(nphi_pos[::-1] + nphi_pos, dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(nphi)]).astype(np.int64)
        return edges, nphi, offset

    @property
    def eta_edges(self) -> FloatArray:
        """Signed eta edges of the tower rings, from -eta_max to +eta_max."""
        return self._grid[0]

    @property
    def n_towers(self) -> int:
        """Number of towers in the whole grid."""
        return int(self._grid[2][-1])

    @cached_property
    def _tower_ring(self) -> npt.NDArray[np.int64]:
        _, nphi, _ = self._grid
        return np.repeat(np.arange(len(nphi), dtype=np.int64), nphi)

    @cached_property
    def _ring_lut(self) -> tuple[float, npt.NDArray[np.int64], FloatArray]:
        """Lookup table |eta| -> positive ring: cells of half the narrowest ring, so a
        cell overlaps at most two rings and one comparison with the edge corrects it."""
        edges, _, _ = self._grid
        pos = edges[len(edges) // 2 :]
        cell = float(np.min(np.diff(pos))) / 2.0
        n_cells = int(np.ceil(pos[-1] / cell)) + 1
        lower = np.arange(n_cells) * cell
        lut = np.clip(np.searchsorted(pos, lower, side="right") - 1, 0, len(pos) - 2)
        # edges padded with +inf so ring + 1 can always be looked up
        return 1.0 / cell, lut.astype(np.int64), np.append(pos, np.inf)

    def tower_index(
        self, eta: npt.ArrayLike, phi: npt.ArrayLike, *, phi_wrapped: bool = False
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Tower id of directions (eta, phi [rad]) and whether they are inside the grid.

        ``phi_wrapped`` promises phi in [-pi, pi] already (skips the wrapping).
        """
        _, nphi, offset = self._grid
        inv_cell, lut, pos = self._ring_lut
        eta_a = np.asarray(eta, dtype=np.float64)
        aeta = np.abs(eta_a)
        inside = aeta < pos[-2]
        cell = np.minimum((aeta * inv_cell).astype(np.int64), len(lut) - 1)
        k = lut[cell]
        k += aeta >= pos[k + 1]
        n_pos = len(nphi) // 2
        k = np.minimum(k, n_pos - 1)
        # rings are numbered from -eta_max: ring n_pos + k for eta >= 0, n_pos - 1 - k below
        ring = n_pos - 1 - k + (eta_a >= 0) * (2 * k + 1)
        n = nphi[ring]
        phi_a = np.asarray(phi, dtype=np.float64)
        if not phi_wrapped:
            phi_a = np.mod(phi_a + np.pi, 2.0 * np.pi) - np.pi
        frac = (phi_a + np.pi) * (0.5 / np.pi)
        iphi = np.minimum((frac * n).astype(np.int64), n - 1)
        return offset[ring] + iphi, inside

    def tower_bounds(
        self, tower: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(eta_lo, eta_hi, phi_lo, phi_hi) of tower ids."""
        edges, nphi, offset = self._grid
        t = np.asarray(tower, dtype=np.int64)
        ring = self._tower_ring[t]
        iphi = t - offset[ring]
        dphi = 2.0 * np.pi / nphi[ring]
        phi_lo = -np.pi + iphi * dphi
        return edges[ring], edges[ring + 1], phi_lo, phi_lo + dphi

    @cached_property
    def _ring_eta(self) -> FloatArray:
        edges = self._grid[0]
        return 0.5 * (edges[:-1] + edges[1:])

    def tower_eta(self, tower: npt.ArrayLike) -> FloatArray:
        """eta of the centre of tower ids."""
        return self._ring_eta[self._tower_ring[np.asarray(tower, dtype=np.int64)]]

    def tower_centre(self, tower: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(eta, phi) of the centre of tower ids."""
        e_lo, e_hi, p_lo, p_hi = self.tower_bounds(tower)
        return 0.5 * (e_lo + e_hi), 0.5 * (p_lo + p_hi)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form."""
        return {
            "regions": [
                {"eta_max": r.eta_max, "n_eta": r.n_eta, "n_phi": r.n_phi} for r in self.regions
            ],
            "resolution": [
                {
                    "eta_max": b.eta_max,
                    "stochastic": b.stochastic,
                    "noise": b.noise,
                    "constant": b.constant,
                }
                for b in self.resolution_bins
            ],
            "energy_min": self.energy_min,
            "significance_min": self.significance_min,
            "smearing": self.smearing,
        }


@dataclass(frozen=True)
class ElectronCard:
    """Electron identification; with ``combine_with_ecal`` the electron energy is the
    resolution-weighted mean of track momentum and ECAL energy (Delphes >= 3.4)."""

    id_efficiency: EfficiencyTable
    combine_with_ecal: bool


@dataclass(frozen=True)
class MuonCard:
    """Muon identification and the muon spectrometer's stand-alone pT resolution.

    With ``spectrometer_eta_max`` > 0, muons with |eta| below it get the combined
    resolution 1/sigma^2 = 1/sigma_ID^2 + 1/sigma_MS^2; otherwise the tracker's.
    """

    id_efficiency: EfficiencyTable
    spectrometer_eta_max: float
    spectrometer_bins: tuple[PtResolutionBin, ...]

    def spectrometer_resolution(self, pt: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
        """Stand-alone spectrometer sigma(pT)/pT = a pT (+) b (inf where there is none)."""
        pt_a = np.asarray(pt, dtype=np.float64)
        eta_a = np.asarray(eta, dtype=np.float64)
        if not self.spectrometer_bins or self.spectrometer_eta_max <= 0:
            return np.full(np.broadcast(pt_a, eta_a).shape, np.inf)
        edges = np.array([b.eta_max for b in self.spectrometer_bins])
        a = np.array([b.a for b in self.spectrometer_bins])
        b = np.array([b.b for b in self.spectrometer_bins])
        i = _eta_bin(edges, eta_a)
        res = np.hypot(a[i] * pt_a, b[i])
        return np.where(np.abs(eta_a) < self.spectrometer_eta_max, res, np.inf)


@dataclass(frozen=True)
class PFlowCard:
    """Particle-flow options.

    ``neutral_position``: ``uniform`` (a random point inside the tower, Delphes'
    ``SmearTowerCenter``) or ``centre``. Charged candidates are flagged ``from_pv`` when
    |dz| < max(``chs_dz_max_mm``, ``chs_dz_nsigma`` * dzerr) (charged-hadron subtraction).
    """

    neutral_position: str
    chs_dz_max_mm: float
    chs_dz_nsigma: float


@dataclass(frozen=True)
class DetectorCard:
    """A whole detector: see the module docstring and ``docs/detector.md``."""

    name: str
    description: str
    references: tuple[str, ...]
    geometry: GeometryCard
    tracker: TrackerCard
    ecal: CalorimeterCard
    hcal: CalorimeterCard
    electron: ElectronCard
    muon: MuonCard
    pflow: PFlowCard
    #: (|pid|, ECAL fraction, HCAL fraction) for particles that differ from the default
    energy_fractions: tuple[tuple[int, float, float], ...]
    #: (ECAL, HCAL) fractions of every other visible particle (hadrons)
    default_fractions: tuple[float, float]
    #: |pid| of invisible particles besides the neutrinos (e.g. neutralinos)
    invisible_pids: tuple[int, ...]

    def muon_pt_resolution(self, pt: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
        """Muon sigma(pT)/pT: tracker combined with the spectrometer (inverse-variance)."""
        s_id = self.tracker.pt_resolution(pt, eta)
        s_ms = self.muon.spectrometer_resolution(pt, eta)
        with np.errstate(divide="ignore"):
            inv = 1.0 / s_id**2 + 1.0 / s_ms**2
        return 1.0 / np.sqrt(inv)

    def electron_energy_resolution(self, energy: npt.ArrayLike, eta: npt.ArrayLike) -> FloatArray:
        """Electron sigma(E)/E when track and ECAL are combined (inverse-variance mean of
        the two measurements; the tracker one evaluated at pT = E / cosh(eta))."""
        e = np.asarray(energy, dtype=np.float64)
        eta_a = np.asarray(eta, dtype=np.float64)
        s_trk = self.tracker.pt_resolution(e / np.cosh(eta_a), eta_a)
        s_cal = self.ecal.energy_resolution(e, eta_a)
        if not self.electron.combine_with_ecal:
            return s_trk
        return 1.0 / np.sqrt(1.0 / s_trk**2 + 1.0 / s_cal**2)

    @cached_property
    def _lookups(self) -> tuple[_PidLookup, _PidLookup, _PidLookup]:
        fe = {p: f_e for p, f_e, _ in self.energy_fractions}
        fh = {p: f_h for p, _, f_h in self.energy_fractions}
        dead = (*NEUTRINO_PIDS, MUON_PID, *self.invisible_pids)
        for p in dead:
            fe[p] = fh[p] = 0.0
        inv = {p: 1.0 for p in (*NEUTRINO_PIDS, *self.invisible_pids)}
        return (
            _PidLookup(fe, self.default_fractions[0]),
            _PidLookup(fh, self.default_fractions[1]),
            _PidLookup(inv, 0.0),
        )

    def deposit_fractions(self, abs_pid: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(ECAL, HCAL) fractions of the energy of particles with these |pid|."""
        apid = np.abs(np.asarray(abs_pid, dtype=np.int64))
        fe, fh, _ = self._lookups
        return fe(apid), fh(apid)

    def invisible(self, abs_pid: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether particles with these |pid| leave no signal at all."""
        apid = np.abs(np.asarray(abs_pid, dtype=np.int64))
        return self._lookups[2](apid) > 0

    def to_dict(self) -> dict[str, Any]:
        """The card in its YAML form (JSON-serialisable; :func:`card_from_dict` reads it)."""
        t = self.tracker
        fractions: dict[str, list[float]] = {"default": list(self.default_fractions)}
        for p, f_e, f_h in self.energy_fractions:
            fractions[str(p)] = [f_e, f_h]
        return {
            "name": self.name,
            "description": self.description,
            "references": list(self.references),
            "geometry": {
                "bz_tesla": self.geometry.bz_tesla,
                "calo_radius_m": self.geometry.calo_radius_m,
                "calo_half_length_m": self.geometry.calo_half_length_m,
            },
            "invisible_pids": list(self.invisible_pids),
            "energy_fractions": fractions,
            "tracker": {
                "eta_max": t.eta_max,
                "pt_min": t.pt_min,
                "efficiency": {
                    "hadron": t.efficiency_hadron.to_dict(),
                    "electron": t.efficiency_electron.to_dict(),
                    "muon": t.efficiency_muon.to_dict(),
                },
                "pt_resolution": {
                    "sin_theta_power": t.sin_theta_power,
                    "bins": [
                        {"eta_max": b.eta_max, "a": b.a, "b": b.b} for b in t.pt_resolution_bins
                    ],
                },
                "d0_resolution": {"a": t.d0.a, "b": t.d0.b},
                "z0_resolution": {"a": t.z0.a, "b": t.z0.b},
            },
            "ecal": self.ecal.to_dict(),
            "hcal": self.hcal.to_dict(),
            "electron": {
                "id_efficiency": self.electron.id_efficiency.to_dict(),
                "combine_with_ecal": self.electron.combine_with_ecal,
            },
            "muon": {
                "id_efficiency": self.muon.id_efficiency.to_dict(),
                "spectrometer": None
                if not self.muon.spectrometer_bins
                else {
                    "eta_max": self.muon.spectrometer_eta_max,
                    "pt_resolution": [
                        {"eta_max": b.eta_max, "a": b.a, "b": b.b}
                        for b in self.muon.spectrometer_bins
                    ],
                },
            },
            "pflow": {
                "neutral_position": self.pflow.neutral_position,
                "chs_dz_max_mm": self.pflow.chs_dz_max_mm,
                "chs_dz_nsigma": self.pflow.chs_dz_nsigma,
            },
        }


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


class _Reader:
    """Validating accessors that name the card and the key in every error."""

    def __init__(self, card: str) -> None:
        self.card = card

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"detector card '{self.card}': {key}: {message}")

    def mapping(
        self,
        obj: Any,
        key: str,
        required: Sequence[str],
        optional: Sequence[str] = (),
    ) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.error(key, f"expected a mapping, got {type(obj).__name__}")
        unknown = sorted(str(k) for k in obj if k not in required and k not in optional)
        if unknown:
            allowed = ", ".join([*required, *optional])
            raise self.error(key, f"unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
        missing = [k for k in required if k not in obj]
        if missing:
            raise self.error(key, f"missing key(s) {', '.join(missing)}")
        return obj

    def number(
        self,
        obj: Any,
        key: str,
        *,
        minimum: float | None = 0.0,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        if isinstance(obj, bool) or not isinstance(obj, int | float):
            raise self.error(key, f"expected a number, got {obj!r}")
        value = float(obj)
        if not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value}")
        if positive and value <= 0:
            raise self.error(key, f"must be > 0, got {value}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum}, got {value}")
        return value

    def integer(self, obj: Any, key: str, *, minimum: int = 1) -> int:
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise self.error(key, f"expected an integer, got {obj!r}")
        if obj < minimum:
            raise self.error(key, f"must be >= {minimum}, got {obj}")
        return int(obj)

    def sequence(self, obj: Any, key: str, *, min_len: int = 1) -> list[Any]:
        if isinstance(obj, str | bytes) or not isinstance(obj, Sequence):
            raise self.error(key, f"expected a list, got {type(obj).__name__}")
        if len(obj) < min_len:
            raise self.error(key, f"needs at least {min_len} entr{'y' if min_len == 1 else 'ies'}")
        return list(obj)

    def choice(self, obj: Any, key: str, choices: Sequence[str]) -> str:
        if obj not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {obj!r}")
        return str(obj)

    def boolean(self, obj: Any, key: str) -> bool:
        if not isinstance(obj, bool):
            raise self.error(key, f"expected true or false, got {obj!r}")
        return obj

    def increasing(self, values: Sequence[float], key: str) -> None:
        if any(b <= a for a, b in pairwise(values)):
            raise self.error(key, f"must be strictly increasing, got {list(values)}")

    # -- composite pieces ---------------------------------------------------------------

    def efficiency(self, obj: Any, key: str, eta_limit: float | None = None) -> EfficiencyTable:
        m = self.mapping(obj, key, ("eta_edges", "pt_edges", "values"))
        eta_edges = [
            self.number(v, f"{key}.eta_edges[{i}]")
            for i, v in enumerate(self.sequence(m["eta_edges"], f"{key}.eta_edges", min_len=2))
        ]
        if eta_edges[0] != 0.0:
            raise self.error(f"{key}.eta_edges", "must start at 0 (bins are in |eta|)")
        self.increasing(eta_edges, f"{key}.eta_edges")
        if eta_limit is not None and eta_edges[-1] > eta_limit + 1e-9:
            raise self.error(
                f"{key}.eta_edges", f"last edge {eta_edges[-1]} beyond the coverage {eta_limit}"
            )
        pt_edges = [
            self.number(v, f"{key}.pt_edges[{i}]")
            for i, v in enumerate(self.sequence(m["pt_edges"], f"{key}.pt_edges"))
        ]
        self.increasing(pt_edges, f"{key}.pt_edges")
        rows = self.sequence(m["values"], f"{key}.values")
        if len(rows) != len(eta_edges) - 1:
            raise self.error(
                f"{key}.values",
                f"needs one row per |eta| bin ({len(eta_edges) - 1}), got {len(rows)}",
            )
        values: list[tuple[float, ...]] = []
        for i, row in enumerate(rows):
            row_l = self.sequence(row, f"{key}.values[{i}]")
            if len(row_l) != len(pt_edges):
                raise self.error(
                    f"{key}.values[{i}]",
                    f"needs one value per pT edge ({len(pt_edges)}), got {len(row_l)}",
                )
            values.append(
                tuple(
                    self.number(v, f"{key}.values[{i}][{j}]", minimum=0.0, maximum=1.0)
                    for j, v in enumerate(row_l)
                )
            )
        return EfficiencyTable(tuple(eta_edges), tuple(pt_edges), tuple(values))

    def pt_bins(self, obj: Any, key: str) -> tuple[PtResolutionBin, ...]:
        bins: list[PtResolutionBin] = []
        for i, b in enumerate(self.sequence(obj, key)):
            k = f"{key}[{i}]"
            m = self.mapping(b, k, ("eta_max", "a", "b"))
            bins.append(
                PtResolutionBin(
                    self.number(m["eta_max"], f"{k}.eta_max", positive=True),
                    self.number(m["a"], f"{k}.a"),
                    self.number(m["b"], f"{k}.b"),
                )
            )
        self.increasing([b.eta_max for b in bins], f"{key}[*].eta_max")
        return tuple(bins)

    def impact(self, obj: Any, key: str) -> ImpactParameterResolution:
        m = self.mapping(obj, key, ("a", "b"))
        res = ImpactParameterResolution(
            self.number(m["a"], f"{key}.a"), self.number(m["b"], f"{key}.b")
        )
        if res.a == 0 and res.b == 0:
            raise self.error(key, "a and b cannot both be 0")
        return res

    def calorimeter(self, obj: Any, key: str) -> CalorimeterCard:
        m = self.mapping(
            obj,
            key,
            ("regions", "resolution", "energy_min", "significance_min"),
            ("smearing",),
        )
        regions: list[CaloRegion] = []
        for i, r in enumerate(self.sequence(m["regions"], f"{key}.regions")):
            k = f"{key}.regions[{i}]"
            rm = self.mapping(r, k, ("eta_max", "n_eta", "n_phi"))
            regions.append(
                CaloRegion(
                    self.number(rm["eta_max"], f"{k}.eta_max", positive=True, maximum=10.0),
                    self.integer(rm["n_eta"], f"{k}.n_eta"),
                    self.integer(rm["n_phi"], f"{k}.n_phi"),
                )
            )
        self.increasing([r.eta_max for r in regions], f"{key}.regions[*].eta_max")
        res: list[CaloResolutionBin] = []
        for i, b in enumerate(self.sequence(m["resolution"], f"{key}.resolution")):
            k = f"{key}.resolution[{i}]"
            bm = self.mapping(b, k, ("eta_max", "stochastic", "noise", "constant"))
            rb = CaloResolutionBin(
                self.number(bm["eta_max"], f"{k}.eta_max", positive=True),
                self.number(bm["stochastic"], f"{k}.stochastic"),
                self.number(bm["noise"], f"{k}.noise"),
                self.number(bm["constant"], f"{k}.constant"),
            )
            if rb.stochastic == rb.noise == rb.constant == 0:
                raise self.error(k, "a perfect calorimeter (all terms 0) is not supported")
            res.append(rb)
        self.increasing([b.eta_max for b in res], f"{key}.resolution[*].eta_max")
        if res[-1].eta_max < regions[-1].eta_max - 1e-9:
            raise self.error(
                f"{key}.resolution",
                f"bins end at |eta| = {res[-1].eta_max}, the towers at {regions[-1].eta_max}",
            )
        return CalorimeterCard(
            regions=tuple(regions),
            resolution_bins=tuple(res),
            energy_min=self.number(m["energy_min"], f"{key}.energy_min"),
            significance_min=self.number(m["significance_min"], f"{key}.significance_min"),
            smearing=self.choice(
                m.get("smearing", "lognormal"), f"{key}.smearing", ("lognormal", "gaussian")
            ),
        )


def _pid_key(r: _Reader, key: Any, where: str) -> int:
    if isinstance(key, bool):
        raise r.error(where, f"{key!r} is not a PDG id")
    if isinstance(key, int):
        pid = key
    elif isinstance(key, str) and key.strip().lstrip("+-").isdigit():
        pid = int(key)
    else:
        raise r.error(where, f"{key!r} is not a PDG id (or 'default')")
    if pid == 0:
        raise r.error(where, "PDG id 0 is not a particle")
    return abs(pid)


def card_from_dict(data: Mapping[str, Any], label: str | None = None) -> DetectorCard:
    """Build and validate a :class:`DetectorCard` from its YAML form.

    Parameters
    ----------
    data
        The mapping (as in ``cards/*.yaml`` or :meth:`DetectorCard.to_dict`).
    label
        Name used in error messages (defaults to ``data['name']``).

    Raises
    ------
    heplab.errors.ConfigError
        For any unknown key, missing key, or impossible value, naming card and key.
    """
    name_guess = data.get("name") if isinstance(data, Mapping) else None
    r = _Reader(label or (name_guess if isinstance(name_guess, str) else "<card>"))
    top = r.mapping(
        data,
        "<top>",
        ("name", "geometry", "tracker", "ecal", "hcal", "electron", "muon", "pflow"),
        ("description", "references", "invisible_pids", "energy_fractions"),
    )
    name = top["name"]
    if not isinstance(name, str) or not name.strip():
        raise r.error("name", f"expected a non-empty string, got {name!r}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise r.error("description", "expected a string")
    refs = top.get("references", [])
    refs_l = r.sequence(refs, "references", min_len=0)
    if not all(isinstance(x, str) for x in refs_l):
        raise r.error("references", "expected a list of strings")

    g = r.mapping(top["geometry"], "geometry", ("bz_tesla", "calo_radius_m", "calo_half_length_m"))
    geometry = GeometryCard(
        bz_tesla=r.number(g["bz_tesla"], "geometry.bz_tesla"),
        calo_radius_m=r.number(g["calo_radius_m"], "geometry.calo_radius_m", positive=True),
        calo_half_length_m=r.number(
            g["calo_half_length_m"], "geometry.calo_half_length_m", positive=True
        ),
    )

    t = r.mapping(
        top["tracker"],
        "tracker",
        ("eta_max", "pt_min", "efficiency", "pt_resolution", "d0_resolution", "z0_resolution"),
    )
    eta_max = r.number(t["eta_max"], "tracker.eta_max", positive=True, maximum=10.0)
    eff = r.mapping(t["efficiency"], "tracker.efficiency", ("hadron", "electron", "muon"))
    ptr = r.mapping(t["pt_resolution"], "tracker.pt_resolution", ("bins",), ("sin_theta_power",))
    pt_bins = r.pt_bins(ptr["bins"], "tracker.pt_resolution.bins")
    if pt_bins[-1].eta_max < eta_max - 1e-9:
        raise r.error(
            "tracker.pt_resolution.bins",
            f"bins end at |eta| = {pt_bins[-1].eta_max}, the tracker at {eta_max}",
        )
    for b in pt_bins:
        if b.a == 0 and b.b == 0:
            raise r.error("tracker.pt_resolution.bins", "a and b cannot both be 0")
    tracker = TrackerCard(
        eta_max=eta_max,
        pt_min=r.number(t["pt_min"], "tracker.pt_min"),
        efficiency_hadron=r.efficiency(eff["hadron"], "tracker.efficiency.hadron"),
        efficiency_electron=r.efficiency(eff["electron"], "tracker.efficiency.electron"),
        efficiency_muon=r.efficiency(eff["muon"], "tracker.efficiency.muon"),
        sin_theta_power=r.number(
            ptr.get("sin_theta_power", 0.0), "tracker.pt_resolution.sin_theta_power", maximum=3.0
        ),
        pt_resolution_bins=pt_bins,
        d0=r.impact(t["d0_resolution"], "tracker.d0_resolution"),
        z0=r.impact(t["z0_resolution"], "tracker.z0_resolution"),
    )

    ecal = r.calorimeter(top["ecal"], "ecal")
    hcal = r.calorimeter(top["hcal"], "hcal")

    e = r.mapping(top["electron"], "electron", ("id_efficiency",), ("combine_with_ecal",))
    electron = ElectronCard(
        id_efficiency=r.efficiency(e["id_efficiency"], "electron.id_efficiency"),
        combine_with_ecal=r.boolean(e.get("combine_with_ecal", True), "electron.combine_with_ecal"),
    )

    mu = r.mapping(top["muon"], "muon", ("id_efficiency",), ("spectrometer",))
    spec = mu.get("spectrometer")
    ms_eta = 0.0
    ms_bins: tuple[PtResolutionBin, ...] = ()
    if spec is not None:
        sm = r.mapping(spec, "muon.spectrometer", ("eta_max", "pt_resolution"))
        ms_eta = r.number(sm["eta_max"], "muon.spectrometer.eta_max", positive=True)
        ms_bins = r.pt_bins(sm["pt_resolution"], "muon.spectrometer.pt_resolution")
        if ms_bins[-1].eta_max < ms_eta - 1e-9:
            raise r.error(
                "muon.spectrometer.pt_resolution",
                f"bins end at |eta| = {ms_bins[-1].eta_max}, the spectrometer at {ms_eta}",
            )
    muon = MuonCard(
        id_efficiency=r.efficiency(mu["id_efficiency"], "muon.id_efficiency"),
        spectrometer_eta_max=ms_eta,
        spectrometer_bins=ms_bins,
    )

    pf = r.mapping(top["pflow"], "pflow", ("chs_dz_max_mm", "chs_dz_nsigma"), ("neutral_position",))
    pflow = PFlowCard(
        neutral_position=r.choice(
            pf.get("neutral_position", "uniform"), "pflow.neutral_position", ("uniform", "centre")
        ),
        chs_dz_max_mm=r.number(pf["chs_dz_max_mm"], "pflow.chs_dz_max_mm"),
        chs_dz_nsigma=r.number(pf["chs_dz_nsigma"], "pflow.chs_dz_nsigma"),
    )

    inv = r.sequence(top.get("invisible_pids", []), "invisible_pids", min_len=0)
    invisible = tuple(sorted({_pid_key(r, p, f"invisible_pids[{i}]") for i, p in enumerate(inv)}))

    fr = top.get("energy_fractions", {})
    if not isinstance(fr, Mapping):
        raise r.error("energy_fractions", "expected a mapping |pid| -> [ecal, hcal]")
    default = (0.0, 1.0)
    table: dict[int, tuple[float, float]] = {}
    for key, val in fr.items():
        where = f"energy_fractions.{key}"
        pair = r.sequence(val, where, min_len=2)
        if len(pair) != 2:
            raise r.error(where, "expected [ecal_fraction, hcal_fraction]")
        f_e = r.number(pair[0], f"{where}[0]", maximum=1.0)
        f_h = r.number(pair[1], f"{where}[1]", maximum=1.0)
        if f_e + f_h > 1.0 + 1e-9:
            raise r.error(where, f"fractions sum to {f_e + f_h} > 1")
        if key == "default":
            default = (f_e, f_h)
            continue
        pid = _pid_key(r, key, where)
        if pid in (*NEUTRINO_PIDS, MUON_PID):
            raise r.error(where, "neutrinos and muons never deposit energy; remove this entry")
        if pid in invisible:
            raise r.error(where, "this |pid| is also listed in invisible_pids")
        table[pid] = (f_e, f_h)
    fractions = tuple((p, table[p][0], table[p][1]) for p in sorted(table))

    return DetectorCard(
        name=name,
        description=description,
        references=tuple(refs_l),
        geometry=geometry,
        tracker=tracker,
        ecal=ecal,
        hcal=hcal,
        electron=electron,
        muon=muon,
        pflow=pflow,
        energy_fractions=fractions,
        default_fractions=default,
        invisible_pids=invisible,
    )


# --------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------


def list_cards() -> list[str]:
    """Names of the built-in cards."""
    return list(_BUILTIN)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings (lists and scalars of ``override`` replace those of ``base``)."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_builtin(name: str) -> dict[str, Any]:
    text = resources.files("heplab.detector").joinpath("cards", f"{name}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _read_yaml(path: Path, depth: int = 0) -> dict[str, Any]:
    label = str(path)
    if depth > 8:
        raise ConfigError(f"detector card '{label}': 'base' nests deeper than 8 cards")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"detector card '{label}': cannot read it ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"detector card '{label}': not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"detector card '{label}': expected a YAML mapping at the top")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"detector card '{label}': base: expected a card name or path")
        if base in _BUILTIN:
            base_data = _read_builtin(base)
        else:
            bpath = Path(base)
            if not bpath.is_absolute():
                bpath = path.parent / bpath
            base_data = _read_yaml(bpath, depth + 1)
        data = _merge(base_data, data)
        if "name" not in data or data["name"] == base_data.get("name"):
            data["name"] = path.stem
    data.setdefault("name", path.stem)
    return data


@cache
def _load_builtin(name: str) -> DetectorCard:
    return card_from_dict(_read_builtin(name), name)


def load_card(name_or_path: str | os.PathLike[str]) -> DetectorCard:
    """Load a detector card: a built-in name (``atlas``, ``cms``, ``ee``) or a YAML path.

    Parameters
    ----------
    name_or_path
        Built-in card name, or the path of a user card (YAML). A user card may contain
        ``base: <built-in name or path>`` and override parts of it.

    Returns
    -------
    DetectorCard

    Raises
    ------
    heplab.errors.ConfigError
        Unknown name, unreadable file, invalid YAML, or any invalid entry (the message names
        the card and the key).
    """
    if isinstance(name_or_path, str) and name_or_path in _BUILTIN:
        return _load_builtin(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"detector card '{name_or_path}': not a built-in card ({', '.join(_BUILTIN)}) "
            "and no such file"
        )
    data = _read_yaml(path)
    return card_from_dict(data, str(path))
