"""A parametrised calorimeter shower engine (GFlash-style EM showers + a hadronic model).

Geant4 cannot run here, so heplab brings a fast, physics-based shower engine that fills
the geometries of :mod:`heplab.detector.calogeometry` (CaloGAN, CaloChallenge-like,
granular endcap). It is much simpler than Geant4: treat its samples as a realistic toy.
Everything is vectorised over showers (loops run over layers and batches only).

Units: energies in GeV, lengths in mm, depths t in radiation lengths X0 of the stack.

Electromagnetic showers (e-, gamma; G. Grindhammer and S. Peters, "The parameterized
simulation of electromagnetic showers in homogeneous and sampling calorimeters",
hep-ex/0001020; G. Grindhammer, M. Rudowicz, S. Peters, NIM A290 (1990) 469; constants as
in Geant4's GFlash ``GVFlashHomoShowerTuning``), evaluated with the stack's effective Z,
E_c, X0 and R_M (the sampling corrections of the paper's Sec. 4 are not applied):

* Longitudinal: dE/dt = E f(t), f a gamma distribution with shape alpha and peak depth
  T = (alpha - 1) / beta. Per shower, (ln T, ln alpha) are correlated Gaussians,
  y = E / E_c::

      <ln T>       = ln(ln y - 0.812)
      <ln alpha>   = ln(0.81 + (0.458 + 2.26 / Z) ln y)
      sigma(ln T)     = 1 / (-1.4 + 1.26 ln y)
      sigma(ln alpha) = 1 / (-0.58 + 0.86 ln y)
      rho(ln T, ln alpha) = 0.705 - 0.023 ln y

  (for the average profile the paper gives T = ln y - 0.858: the peak moves by one X0
  per e-fold of energy).
* Radial, in Moliere radii, at tau = t / T::

      f(r) = p 2 r R_C^2 / (r^2 + R_C^2)^2 + (1 - p) 2 r R_T^2 / (r^2 + R_T^2)^2
      R_C = z1 + z2 tau,  z1 = 0.0251 + 0.00319 ln E,  z2 = 0.1162 - 0.000381 Z
      R_T = k1 [exp(k3 (tau - k2)) + exp(k4 (tau - k2))],
            k1 = 0.659 - 0.00309 Z, k2 = 0.645, k3 = -2.59, k4 = 0.3585 + 0.0412 ln E
      p   = p1 exp[(p2 - tau) / p3 - exp((p2 - tau) / p3)],
            p1 = 2.632 - 0.00094 Z, p2 = 0.401 + 0.00187 Z, p3 = 1.313 - 0.0686 ln E

  sampled by inversion, r = R sqrt(u / (1 - u)).
* Energy spots: N_spot = 93 ln(Z) E^0.876 spots per shower (GFlash), each carrying
  E / N_spot. Simplification: spot depths are drawn from the energy profile itself
  (GFlash uses a slightly earlier spot profile); ``ShowerConfig.spot_scale`` and
  ``max_spots`` trade lateral fluctuations for speed.
* Photons first convert after an exponential depth of mean 9/7 X0.
* Sampling fluctuations: the visible energy of each (shower, layer) is Gamma-distributed
  around ``sampling_fraction x deposited`` with relative variance a^2 / E_layer, so the
  total has sigma/E = a / sqrt(E) (a = ``geometry.em_resolution``; 11 %/sqrt(E) for the
  Pb/LAr CaloGAN stack, 17 % for Si/W: heplab's choices, see the YAML files).

pi0 -> gamma gamma: isotropic decay in the pi0 rest frame, the photons travel
``pi0_distance`` (1.5 m) to the face: their impact points are separated by about
L * 2 m / E (8 mm at 50 GeV), resolvable by the 5 mm strips of CaloGAN layer 0.

Charged pions (heplab's model; constants chosen, not fitted to data):

* a minimum-ionising track (``geometry.mip_dedx`` per X0, seen with
  ``geometry.mip_fraction``) up to the first inelastic interaction, exponential with mean
  lambda_I; a pion that does not interact punches through (energy lost out the back);
* at the interaction the remaining energy E' splits into an EM fraction
  f_em = 1 - (E' / E0)^(k - 1) (Groom, NIM A572 (2007) 633: E0 = 1 GeV, k = 0.82),
  Beta-distributed per shower with width 0.12, deposited as three GFlash sub-showers
  (Dirichlet energy split, displaced by ~0.1 lambda_I laterally and ~0.2 lambda_I in depth),
  and a hadronic part with a gamma profile in lambda_I (peak 0.2 ln E + 0.7 lambda_I,
  PDG "Calorimetry" review; shape 2.5, log-normal fluctuations), a two-component radial
  profile with R_C = 0.08 lambda_I (1 + 0.3 tau), R_T = 0.25 lambda_I, fewer spots (5 x
  lumpier) and a 35 %/sqrt(E) sampling term;
* non-compensation: of the hadronic part only h/e = 1 / (e/h) (e/h = 1.4, fluctuating by
  0.05) is deposited as signal-producing energy, the rest is invisible (nuclear binding,
  neutrons, neutrinos). Hence the pion response is lower and broader than the electron's.

Bookkeeping (``ShowerSet.extra``, per shower, GeV before sampling): ``e_cells``
(deposited in the cells), ``e_leak_side`` (outside the cells: CaloGAN ``overflow`` gets its
visible part), ``e_leak_back`` (behind the calorimeter, punch-through), ``e_invisible``
and ``e_missed`` (a pi0 photon going backwards); they add up to the incident energy.
``e_visible_true`` is the visible cell energy before noise and thresholds; ``x0, y0`` the
impact point [mm], ``t_start`` the conversion / first-interaction depth [X0], ``f_em``.

Cell noise (Gaussian, per cell) and a zero-suppression threshold come from the geometry
or :class:`ShowerConfig`. Overlaying several showers in one event (clustering): build the
spots with :func:`generate_spots` at the wanted impact points and call :func:`deposit`
with ``event_of_shower`` (see its docstring).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from heplab.detector.calogeometry import CaloGeometry, load_geometry
from heplab.errors import ConfigError
from heplab.events.calo import PARTICLES, ShowerSet

__all__ = [
    "PI0_MASS",
    "Deposit",
    "ShowerConfig",
    "Spots",
    "deposit",
    "generate_spots",
    "parse_energy",
    "sample_energies",
    "simulate",
    "simulate_showers",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

PI0_MASS = 0.1349768  # GeV
KIND_EM, KIND_HAD, KIND_MIP = 0, 1, 2
_ENGINE_VERSION = 1


@dataclass(frozen=True)
class ShowerConfig:
    """Settings of the shower engine (defaults: the constants cited in the module doc).

    ``noise`` / ``threshold`` [GeV] override the geometry's when not None.
    """

    noise: float | None = None
    threshold: float | None = None
    spot_scale: float = 1.0
    max_spots: int = 20000
    position_spread: float = 0.0
    pi0_distance: float = 1500.0
    conversion_mean_x0: float = 9.0 / 7.0
    e_over_h: float = 1.4
    e_over_h_sigma: float = 0.05
    fem_e0: float = 1.0
    fem_k: float = 0.82
    fem_sigma: float = 0.12
    em_subshowers: int = 3
    em_sub_spread: float = 0.1
    em_sub_delay: float = 0.2
    had_resolution: float = 0.35
    had_alpha: float = 2.5
    had_tmax_slope: float = 0.2
    had_tmax_offset: float = 0.7
    had_sigma_lnt: float = 0.25
    had_sigma_lnalpha: float = 0.2
    had_core_radius: float = 0.08
    had_tail_radius: float = 0.25
    had_core_fraction: float = 0.5
    had_spot_fraction: float = 0.2
    spots_per_batch: int = 4_000_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not math.isfinite(float(value)) or value < 0:
                raise ConfigError(f"shower config: {f.name} must be a finite number >= 0")
        if self.spot_scale <= 0 or self.max_spots < 1 or self.em_subshowers < 1:
            raise ConfigError("shower config: spot_scale > 0, max_spots >= 1, em_subshowers >= 1")
        if self.e_over_h < 1:
            raise ConfigError("shower config: e_over_h must be >= 1")
        if not 0 <= self.had_core_fraction <= 1:
            raise ConfigError("shower config: had_core_fraction must be in [0, 1]")
        if self.had_alpha <= 1 or self.conversion_mean_x0 <= 0 or self.spots_per_batch < 1000:
            raise ConfigError(
                "shower config: had_alpha > 1, conversion_mean_x0 > 0, spots_per_batch >= 1000"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ShowerConfig:
        """Build from a mapping; unknown keys raise :class:`~heplab.errors.ConfigError`."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown shower settings {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad shower settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Spots:
    """Energy spots of a batch of showers (flat arrays, one entry per spot).

    ``shower`` indexes the showers of the batch, ``depth`` [X0 behind the front face],
    ``x``, ``y`` [mm], ``energy`` [GeV deposited, all materials], ``kind`` 0 = EM,
    1 = hadronic, 2 = MIP track.
    """

    shower: I64
    depth: F64
    x: F64
    y: F64
    energy: F64
    kind: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.shower)

    @staticmethod
    def concatenate(parts: list[Spots]) -> Spots:
        return Spots(
            shower=np.concatenate([p.shower for p in parts]),
            depth=np.concatenate([p.depth for p in parts]),
            x=np.concatenate([p.x for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            energy=np.concatenate([p.energy for p in parts]),
            kind=np.concatenate([p.kind for p in parts]),
        )


@dataclass
class _Ledger:
    """Per-shower energy bookkeeping of spot generation [GeV]."""

    e_missed: F64
    e_invisible: F64
    e_leak_back: F64
    t_start: F64
    f_em: F64

    @classmethod
    def zeros(cls, n: int) -> _Ledger:
        return cls(*(np.zeros(n) for _ in range(5)))


# ---------------------------------------------------------------------------- spots
def _spot_counts(energy: F64, z: float, config: ShowerConfig, fraction: float = 1.0) -> I64:
    n = config.spot_scale * fraction * 93.0 * math.log(z) * np.maximum(energy, 1e-6) ** 0.876
    n = np.clip(np.rint(n), 1, config.max_spots).astype(np.int64)
    return np.where(energy > 0, n, 0)


def _radial(rng: np.random.Generator, r_core: F64, r_tail: F64, p_core: F64) -> F64:
    """Radii from the two-component profile (same length units as r_core / r_tail)."""
    u = np.minimum(rng.random(len(r_core)), 1.0 - 1e-7)
    radius = np.where(rng.random(len(r_core)) < p_core, r_core, r_tail)
    return radius * np.sqrt(u / (1.0 - u))


def _em_spots(
    owner: I64,
    energy: F64,
    t0: F64,
    x0: F64,
    y0: F64,
    geometry: CaloGeometry,
    rng: np.random.Generator,
    config: ShowerConfig,
) -> Spots:
    """GFlash spots of EM (sub)showers starting at depth t0 [X0] on the axis (x0, y0)."""
    keep = energy > 0
    owner, energy, t0, x0, y0 = owner[keep], energy[keep], t0[keep], x0[keep], y0[keep]
    z = geometry.z_eff
    # y = E / E_c; very soft sub-showers use the profile of y = e^2 (the fits start ~1 GeV)
    lny = np.maximum(np.log(energy / geometry.critical_energy), 2.0)
    mean_lnt = np.log(np.maximum(lny - 0.812, 0.05))
    mean_lna = np.log(0.81 + (0.458 + 2.26 / z) * lny)
    sig_lnt = 1.0 / (-1.4 + 1.26 * lny)
    sig_lna = 1.0 / (-0.58 + 0.86 * lny)
    rho = 0.705 - 0.023 * lny
    g1 = rng.standard_normal(len(energy))
    g2 = rng.standard_normal(len(energy))
    c1, c2 = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    tmax = np.exp(mean_lnt + sig_lnt * (c1 * g1 + c2 * g2))
    alpha = np.maximum(np.exp(mean_lna + sig_lna * (c1 * g1 - c2 * g2)), 1.05)
    beta = (alpha - 1.0) / tmax
    counts = _spot_counts(energy, z, config)
    idx = np.repeat(np.arange(len(energy)), counts)
    t_rel = rng.gamma(alpha[idx]) / beta[idx]
    tau = t_rel / tmax[idx]
    lne = np.log(np.maximum(energy, 1e-3))[idx]
    r_core = np.maximum(0.0251 + 0.00319 * lne + (0.1162 - 0.000381 * z) * tau, 1e-3)
    k4 = 0.3585 + 0.0412 * lne
    r_tail = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
    p3 = np.maximum(1.313 - 0.0686 * lne, 0.1)
    arg = (0.401 + 0.00187 * z - tau) / p3
    p_core = np.clip((2.632 - 0.00094 * z) * np.exp(arg - np.exp(np.minimum(arg, 50.0))), 0, 1)
    r = geometry.moliere_radius * _radial(rng, r_core, np.maximum(r_tail, 1e-3), p_core)
    phi = rng.uniform(0.0, 2 * math.pi, len(r))
    return Spots(
        shower=owner[idx],
        depth=t0[idx] + t_rel,
        x=x0[idx] + r * np.cos(phi),
        y=y0[idx] + r * np.sin(phi),
        energy=(energy / np.maximum(counts, 1))[idx],
        kind=np.full(len(idx), KIND_EM, dtype=np.int8),
    )


def _had_spots(
    owner: I64,
    energy: F64,
    t0: F64,
    x0: F64,
    y0: F64,
    geometry: CaloGeometry,
    rng: np.random.Generator,
    config: ShowerConfig,
) -> Spots:
    """Spots of the non-EM hadronic part (deposited energy), starting at t0 [X0]."""
    keep = energy > 0
    owner, energy, t0, x0, y0 = owner[keep], energy[keep], t0[keep], x0[keep], y0[keep]
    lam_x0 = geometry.interaction_length / geometry.radiation_length
    n = len(energy)
    tmax_l = config.had_tmax_slope * np.log(np.maximum(energy, 0.1)) + config.had_tmax_offset
    tmax_l = np.maximum(tmax_l, 0.2) * np.exp(config.had_sigma_lnt * rng.standard_normal(n))
    alpha = np.maximum(
        config.had_alpha * np.exp(config.had_sigma_lnalpha * rng.standard_normal(n)), 1.05
    )
    beta = (alpha - 1.0) / tmax_l
    counts = _spot_counts(energy, geometry.z_eff, config, config.had_spot_fraction)
    idx = np.repeat(np.arange(n), counts)
    t_rel_l = rng.gamma(alpha[idx]) / beta[idx]
    tau = t_rel_l / tmax_l[idx]
    lam = geometry.interaction_length
    r_core = lam * config.had_core_radius * (1.0 + 0.3 * tau)
    r_tail = np.full(len(idx), lam * config.had_tail_radius)
    r = _radial(rng, r_core, r_tail, np.full(len(idx), config.had_core_fraction))
    phi = rng.uniform(0.0, 2 * math.pi, len(r))
    return Spots(
        shower=owner[idx],
        depth=t0[idx] + t_rel_l * lam_x0,
        x=x0[idx] + r * np.cos(phi),
        y=y0[idx] + r * np.sin(phi),
        energy=(energy / np.maximum(counts, 1))[idx],
        kind=np.full(len(idx), KIND_HAD, dtype=np.int8),
    )


def _photon_spots(
    owner: I64,
    energy: F64,
    x0: F64,
    y0: F64,
    geometry: CaloGeometry,
    rng: np.random.Generator,
    config: ShowerConfig,
    ledger: _Ledger,
) -> Spots:
    t0 = rng.exponential(config.conversion_mean_x0, len(energy))
    np.minimum.at(ledger.t_start, owner, t0)
    return _em_spots(owner, energy, t0, x0, y0, geometry, rng, config)


def _pi0_photons(
    energy: F64, x0: F64, y0: F64, rng: np.random.Generator, distance: float
) -> tuple[F64, F64, F64, F64, F64, F64, F64]:
    """Two photons of pi0 -> gamma gamma: energies, impact points, energy missing the face."""
    e = np.maximum(energy, PI0_MASS * 1.0000001)
    gamma = e / PI0_MASS
    beta = np.sqrt(1.0 - 1.0 / gamma**2)
    cos_t = rng.uniform(-1.0, 1.0, len(e))
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = rng.uniform(0.0, 2 * math.pi, len(e))
    p_star = 0.5 * PI0_MASS
    out = []
    for sign in (1.0, -1.0):
        e_gamma = gamma * p_star * (1.0 + sign * beta * cos_t)
        p_par = gamma * p_star * (sign * cos_t + beta)
        p_perp = sign * p_star * sin_t
        hits = p_par > 0
        offset = distance * p_perp / np.where(hits, p_par, 1.0)
        out.append((e_gamma, hits, offset))
    (e1, h1, o1), (e2, h2, o2) = out
    missed = np.where(h1, 0.0, e1) + np.where(h2, 0.0, e2)
    e1 = np.where(h1, e1, 0.0)
    e2 = np.where(h2, e2, 0.0)
    c, s = np.cos(phi), np.sin(phi)
    return e1, e2, x0 + o1 * c, y0 + o1 * s, x0 + o2 * c, y0 + o2 * s, missed


def _mip_spots(
    energy: F64, t_int: F64, x0: F64, y0: F64, geometry: CaloGeometry
) -> tuple[Spots, F64]:
    """One spot per layer crossed by the MIP track before t_int; returns the track's loss."""
    front = np.array([la.front_x0 for la in geometry.layers])
    back = np.array([la.back_x0 for la in geometry.layers])
    path = np.clip(np.minimum(t_int[:, None], back[None, :]) - front[None, :], 0.0, None)
    e_layer = geometry.mip_dedx * path
    total = e_layer.sum(axis=1)
    scale = np.where(total > 0.5 * energy, 0.5 * energy / np.maximum(total, 1e-12), 1.0)
    e_layer *= scale[:, None]
    shower, layer = np.nonzero(e_layer > 0)
    spots = Spots(
        shower=shower.astype(np.int64),
        depth=front[layer] + 0.5 * path[shower, layer],
        x=x0[shower],
        y=y0[shower],
        energy=e_layer[shower, layer],
        kind=np.full(len(shower), KIND_MIP, dtype=np.int8),
    )
    return spots, e_layer.sum(axis=1)


def generate_spots(
    particle: str,
    energies: npt.ArrayLike,
    geometry: CaloGeometry,
    rng: np.random.Generator,
    *,
    positions: npt.ArrayLike | None = None,
    config: ShowerConfig | None = None,
) -> tuple[Spots, dict[str, F64]]:
    """Energy spots of showers of one particle type entering at ``positions``.

    Parameters
    ----------
    particle : str
        One of :data:`heplab.events.calo.PARTICLES`.
    energies : array (N,)
        Incident energies [GeV].
    positions : array (N, 2), optional
        Impact points (x, y) on the front face [mm]; default the centre, plus a Gaussian
        ``config.position_spread``. Normal incidence.

    Returns
    -------
    spots : Spots
        Their ``shower`` field indexes ``energies``.
    ledger : dict of (N,) arrays
        ``e_missed``, ``e_invisible``, ``e_leak_back`` (punch-through only; spots behind
        the calorimeter are counted by :func:`deposit`), ``t_start``, ``f_em``, ``x0``, ``y0``.
    """
    config = config or ShowerConfig()
    if particle not in PARTICLES:
        raise ConfigError(f"unknown particle {particle!r}: choose one of {', '.join(PARTICLES)}")
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    if len(e) and (not np.all(np.isfinite(e)) or e.min() <= 0):
        raise ConfigError("incident energies must be finite and > 0 GeV")
    n = len(e)
    if positions is None:
        pos = np.zeros((n, 2))
        if config.position_spread > 0:
            pos = pos + rng.normal(0.0, config.position_spread, (n, 2))
    else:
        pos = np.asarray(positions, dtype=np.float64).reshape(n, 2)
    x0, y0 = pos[:, 0].copy(), pos[:, 1].copy()
    owner = np.arange(n, dtype=np.int64)
    ledger = _Ledger.zeros(n)
    parts: list[Spots] = []
    if particle == "e-":
        parts.append(_em_spots(owner, e, np.zeros(n), x0, y0, geometry, rng, config))
    elif particle == "gamma":
        ledger.t_start[:] = np.inf
        parts.append(_photon_spots(owner, e, x0, y0, geometry, rng, config, ledger))
    elif particle == "pi0":
        ledger.t_start[:] = np.inf
        e1, e2, x1, y1, x2, y2, missed = _pi0_photons(e, x0, y0, rng, config.pi0_distance)
        ledger.e_missed += missed
        parts.append(
            _photon_spots(
                np.concatenate([owner, owner]),
                np.concatenate([e1, e2]),
                np.concatenate([x1, x2]),
                np.concatenate([y1, y2]),
                geometry,
                rng,
                config,
                ledger,
            )
        )
    else:  # pi+
        lam_x0 = geometry.interaction_length / geometry.radiation_length
        t_int = rng.exponential(lam_x0, n)
        ledger.t_start[:] = t_int
        mip, e_mip = _mip_spots(e, t_int, x0, y0, geometry)
        parts.append(mip)
        interacts = t_int < geometry.depth_x0
        e_after = e - e_mip
        ledger.e_leak_back += np.where(interacts, 0.0, e_after)
        e_int = np.where(interacts, e_after, 0.0)
        m = 1.0 - (np.maximum(e_int, config.fem_e0) / config.fem_e0) ** (config.fem_k - 1.0)
        m = np.clip(m, 0.02, 0.98)
        s2 = np.minimum(config.fem_sigma**2, 0.9 * m * (1 - m))
        common = m * (1 - m) / s2 - 1.0
        f_em = rng.beta(m * common, (1 - m) * common)
        f_em = np.where(interacts, f_em, 0.0)
        ledger.f_em[:] = f_em
        # EM part: Dirichlet split into sub-showers around the interaction point
        k = config.em_subshowers
        w = rng.gamma(1.0, 1.0, (n, k))
        w /= w.sum(axis=1, keepdims=True)
        e_sub = (f_em * e_int)[:, None] * w
        lam = geometry.interaction_length
        delay = rng.exponential(config.em_sub_delay * lam_x0, (n, k))
        delay[:, 0] = 0.0
        shift = rng.normal(0.0, config.em_sub_spread * lam, (n, k, 2))
        shift[:, 0] = 0.0
        parts.append(
            _em_spots(
                np.repeat(owner, k),
                e_sub.ravel(),
                (t_int[:, None] + delay).ravel(),
                (x0[:, None] + shift[..., 0]).ravel(),
                (y0[:, None] + shift[..., 1]).ravel(),
                geometry,
                rng,
                config,
            )
        )
        # hadronic part: non-compensation -> invisible energy
        e_had = (1.0 - f_em) * e_int
        h_over_e = np.clip(
            1.0 / config.e_over_h + config.e_over_h_sigma * rng.standard_normal(n), 0.2, 1.0
        )
        e_had_dep = e_had * h_over_e
        ledger.e_invisible += e_had - e_had_dep
        parts.append(_had_spots(owner, e_had_dep, t_int, x0, y0, geometry, rng, config))
    spots = Spots.concatenate(parts)
    out = {
        "e_missed": ledger.e_missed,
        "e_invisible": ledger.e_invisible,
        "e_leak_back": ledger.e_leak_back,
        "t_start": np.where(np.isfinite(ledger.t_start), ledger.t_start, geometry.depth_x0),
        "f_em": ledger.f_em if particle == "pi+" else np.ones(n),
        "x0": x0,
        "y0": y0,
    }
    return spots, out


# ---------------------------------------------------------------------------- deposit
@dataclass
class Deposit:
    """Cell energies of a batch of events and the energy bookkeeping.

    ``cells`` (n_events, n_voxels) float32: visible energy [GeV] with noise and threshold;
    ``overflow`` (n_events, n_layers): visible energy outside the cells [GeV];
    per *shower* (GeV deposited, before sampling): ``e_cells``, ``e_leak_side``,
    ``e_leak_back``; ``e_visible_true`` visible energy in the cells before noise.
    ``contributions`` (optional): ``(shower, voxel, visible)`` flat arrays, one row per
    (shower, cell) pair with energy (before noise): the truth for clustering.
    """

    cells: npt.NDArray[np.float32]
    overflow: F64
    e_cells: F64
    e_leak_side: F64
    e_leak_back: F64
    e_visible_true: F64
    contributions: tuple[I64, I64, F64] | None = None


def _bsum(index: npt.NDArray[np.integer[Any]], weights: F64, size: int) -> F64:
    """Sum of ``weights`` per ``index`` (length ``size``), as float64."""
    return np.bincount(index, weights, minlength=size).astype(np.float64, copy=False)


def _lateral_groups(geometry: CaloGeometry) -> list[tuple[int, ...]]:
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, la in enumerate(geometry.layers):
        groups.setdefault((la.kind, la.shape, la.cell_size, la.r_edges), []).append(i)
    return [tuple(v) for v in groups.values()]


def deposit(
    spots: Spots,
    geometry: CaloGeometry,
    n_showers: int,
    rng: np.random.Generator,
    *,
    config: ShowerConfig | None = None,
    event_of_shower: npt.ArrayLike | None = None,
    n_events: int | None = None,
    contributions: bool = False,
) -> Deposit:
    """Sample, bin and digitise spots into cells.

    Sampling fluctuations are drawn per (shower, layer, component); spots behind the
    calorimeter leak out the back, spots outside a layer's cells leak sideways. Then the
    cells of each *event* (``event_of_shower[i]`` is the event of shower i; default one
    event per shower) get Gaussian noise (``config.noise`` or ``geometry.noise`` [GeV])
    and cells below the threshold are zeroed.

    To overlay several showers in one event (clustering datasets): generate the spots of
    all showers with :func:`generate_spots` (their impact points in ``positions``), then
    pass ``event_of_shower`` and ``n_events``; ``contributions=True`` also returns every
    shower's visible energy per cell.
    """
    config = config or ShowerConfig()
    n_layers = geometry.n_layers
    n_vox = geometry.n_voxels
    events = (
        np.arange(n_showers, dtype=np.int64)
        if event_of_shower is None
        else np.asarray(event_of_shower, dtype=np.int64).reshape(-1)
    )
    if len(events) != n_showers:
        raise ConfigError("event_of_shower needs one event index per shower")
    n_ev = int(n_events if n_events is not None else (events.max() + 1 if n_showers else 0))
    boundaries = geometry.layer_boundaries_x0
    layer = np.searchsorted(boundaries, spots.depth, side="right") - 1
    behind = layer >= n_layers
    e_back = _bsum(spots.shower[behind], spots.energy[behind], n_showers)
    inside_z = ~behind & (layer >= 0)
    sh = spots.shower[inside_z]
    ly = layer[inside_z]
    en = spots.energy[inside_z]
    kind = spots.kind[inside_z]
    x = spots.x[inside_z]
    y = spots.y[inside_z]
    # visible fraction and sampling fluctuations per (shower, layer, kind)
    sf = np.array([la.sampling_fraction for la in geometry.layers])
    frac = np.where(kind == KIND_MIP, geometry.mip_fraction, sf[ly])
    key = (sh * n_layers + ly) * 3 + kind
    sums = _bsum(key, en, n_showers * n_layers * 3)
    res = np.tile(
        np.array([geometry.em_resolution, config.had_resolution, 0.0]), n_showers * n_layers
    )
    factor = np.ones_like(sums)
    fluct = (sums > 0) & (res > 0)
    shape = sums[fluct] / res[fluct] ** 2
    factor[fluct] = rng.gamma(shape) / shape
    visible = en * frac * factor[key]
    # cells
    voxel = np.full(len(sh), -1, dtype=np.int64)
    offsets = np.array([s.start for s in geometry.layer_slices()], dtype=np.int64)
    for group in _lateral_groups(geometry):
        mask = np.isin(ly, group) if len(group) < n_layers else np.ones(len(ly), dtype=bool)
        cell = geometry.layers[group[0]].locate(x[mask], y[mask])
        voxel[mask] = np.where(cell >= 0, offsets[ly[mask]] + cell, -1)
    out_xy = voxel < 0
    e_side = _bsum(sh[out_xy], en[out_xy], n_showers)
    e_cells = _bsum(sh[~out_xy], en[~out_xy], n_showers)
    ev = events[sh]
    overflow = _bsum(ev[out_xy] * n_layers + ly[out_xy], visible[out_xy], n_ev * n_layers)
    overflow = overflow.reshape(n_ev, n_layers)
    inside = ~out_xy
    cells = _bsum(ev[inside] * n_vox + voxel[inside], visible[inside], n_ev * n_vox)
    cells = cells.reshape(n_ev, n_vox)
    vis_true = _bsum(sh[inside], visible[inside], n_showers)
    contrib: tuple[I64, I64, F64] | None = None
    if contributions:
        pair = sh[inside] * n_vox + voxel[inside]
        uniq, inv = np.unique(pair, return_inverse=True)
        contrib = (uniq // n_vox, uniq % n_vox, _bsum(inv, visible[inside], len(uniq)))
    noise = geometry.noise if config.noise is None else config.noise
    threshold = geometry.threshold if config.threshold is None else config.threshold
    if noise > 0:
        cells = cells + rng.normal(0.0, noise, cells.shape)
    if noise > 0 or threshold > 0:
        cells[cells < threshold] = 0.0
    return Deposit(
        cells=cells.astype(np.float32),
        overflow=overflow,
        e_cells=e_cells,
        e_leak_side=e_side,
        e_leak_back=e_back,
        e_visible_true=vis_true,
        contributions=contrib,
    )


# ---------------------------------------------------------------------------- driver
def _expected_spots(particle: str, e: F64, geometry: CaloGeometry, config: ShowerConfig) -> F64:
    n = _spot_counts(e, geometry.z_eff, config).astype(np.float64)
    if particle == "pi0":
        n = 2 * n
    return n + geometry.n_layers


def simulate(
    particle: str,
    energies: npt.ArrayLike,
    geometry: CaloGeometry | str,
    rng: np.random.Generator,
    *,
    config: ShowerConfig | dict[str, Any] | None = None,
    positions: npt.ArrayLike | None = None,
    progress: bool = False,
) -> ShowerSet:
    """Simulate one shower per incident energy [GeV]; returns a :class:`ShowerSet`.

    Showers are processed in batches of about ``config.spots_per_batch`` spots. The
    per-shower bookkeeping is in ``ShowerSet.extra`` (see the module docstring).
    """
    geo = geometry if isinstance(geometry, CaloGeometry) else load_geometry(geometry)
    cfg = config if isinstance(config, ShowerConfig) else ShowerConfig.from_dict(config)
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    n = len(e)
    pos = None if positions is None else np.asarray(positions, dtype=np.float64).reshape(n, 2)
    if particle not in PARTICLES:
        raise ConfigError(f"unknown particle {particle!r}: choose one of {', '.join(PARTICLES)}")
    # batches bounded in spots and in dense cell memory
    cost = np.cumsum(_expected_spots(particle, e, geo, cfg)) if n else np.zeros(0)
    max_rows = max(1, int(2e7 // geo.n_voxels))
    starts = [0]
    while starts[-1] < n:
        s = starts[-1]
        base = cost[s - 1] if s > 0 else 0.0
        stop = int(np.searchsorted(cost, base + cfg.spots_per_batch, side="right"))
        starts.append(min(n, max(stop, s + 1), s + max_rows))
    showers = np.zeros((n, geo.n_voxels), dtype=np.float32)
    overflow = np.zeros((n, geo.n_layers))
    extra_keys = ("e_cells", "e_leak_side", "e_leak_back", "e_invisible", "e_missed",
                  "e_visible_true", "t_start", "f_em", "x0", "y0")  # fmt: skip
    extra = {k: np.zeros(n) for k in extra_keys}
    from tqdm.auto import tqdm

    with tqdm(total=n, unit="shower", disable=not progress, desc=f"{particle} showers") as bar:
        for a, b in itertools.pairwise(starts):
            spots, ledger = generate_spots(
                particle, e[a:b], geo, rng, positions=None if pos is None else pos[a:b], config=cfg
            )
            dep = deposit(spots, geo, b - a, rng, config=cfg)
            showers[a:b] = dep.cells
            overflow[a:b] = dep.overflow
            for key in ("e_missed", "e_invisible", "t_start", "f_em", "x0", "y0"):
                extra[key][a:b] = ledger[key]
            extra["e_leak_back"][a:b] = ledger["e_leak_back"] + dep.e_leak_back
            extra["e_cells"][a:b] = dep.e_cells
            extra["e_leak_side"][a:b] = dep.e_leak_side
            extra["e_visible_true"][a:b] = dep.e_visible_true
            bar.update(b - a)
    return ShowerSet(
        energies=e,
        showers=showers,
        geometry=geo,
        particle=particle,
        metadata={
            "engine": "heplab.detector.showers",
            "engine_version": _ENGINE_VERSION,
            "particle": particle,
            "geometry": geo.name,
            "config": cfg.to_dict(),
        },
        overflow=overflow,
        extra=extra,
    )


def parse_energy(text: str | float) -> tuple[float, float]:
    """``"50"`` -> (50, 50); ``"10:100"`` -> (10, 100) [GeV]."""
    try:
        if isinstance(text, (int, float)):
            lo = hi = float(text)
        elif ":" in text:
            a, b = text.split(":", 1)
            lo, hi = float(a), float(b)
        else:
            lo = hi = float(text)
    except ValueError:
        raise ConfigError(f"--energy takes E or EMIN:EMAX in GeV, not {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo:
        raise ConfigError(f"energy range {text!r}: need 0 < EMIN <= EMAX")
    return lo, hi


def sample_energies(energy: str | float, spectrum: str, n: int, rng: np.random.Generator) -> F64:
    """Incident energies [GeV]: fixed, flat or log-flat between the bounds of ``energy``."""
    lo, hi = parse_energy(energy)
    if n < 0:
        raise ConfigError("the number of showers must be >= 0")
    if spectrum == "flat":
        return rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo)
    if spectrum == "logflat":
        return np.exp(rng.uniform(math.log(lo), math.log(hi), n)) if hi > lo else np.full(n, lo)
    raise ConfigError(f"spectrum must be 'flat' or 'logflat', not {spectrum!r}")


def simulate_showers(
    particle: str,
    energy: str | float = "10:100",
    spectrum: str = "flat",
    n: int = 1000,
    geometry: CaloGeometry | str = "calogan",
    seed: int = 1,
    *,
    config: ShowerConfig | dict[str, Any] | None = None,
    progress: bool = False,
) -> ShowerSet:
    """Sample ``n`` energies from the spectrum and simulate their showers (seeded)."""
    rng = np.random.default_rng(seed)
    energies = sample_energies(energy, spectrum, n, rng)
    out = simulate(particle, energies, geometry, rng, config=config, progress=progress)
    out.metadata.update({"seed": seed, "energy": str(energy), "spectrum": spectrum, "n": n})
    return out
