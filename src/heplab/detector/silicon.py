"""A TrackML-like silicon tracker: helices, material, pixel clusters, TrackML event files.

Charged particles (GeV, mm) are propagated as helices in a uniform solenoid field
``B`` along z through barrel cylinders and endcap disks (geometry in YAML, default
``geometries/trackml.yaml``: the layout of the TrackML challenge, arXiv:1904.06778), and
every crossing of a sensitive layer makes a hit. The output is one
:class:`heplab.events.trackml.TrackMLEvent` per collision, written as TrackML CSV files.

Propagation (vectorised over particles; one Python loop iteration per crossed layer)
------------------------------------------------------------------------------------
Transverse radius R [mm] = pT [GeV] / (0.3 B [T] |q|) * 1000. With the transverse path
length s, the azimuth of the momentum is phi(s) = phi0 + k s, k = -q / (|q| R) (a positive
particle turns clockwise seen from +z), and

    x(s) = x0 + s cos(phi0 + k s / 2) sinc(k s / 2),  y(s) = y0 + s sin(phi0 + k s / 2) sinc(k s / 2),
    z(s) = z0 + s pz / pT

(exact, and regular for k -> 0). The next surface is the smallest s > 0 among the
circle-cylinder intersections (law of cosines around the helix axis) inside the barrel
half-lengths and the z-plane crossings inside the disk radii. A particle stops when no
surface is left ahead, or when its turning angle would exceed ``max_turn`` (default pi,
half a turn: a looper is followed until it curls back).

At each crossed layer (hit or not: the material is there) the direction is kicked by two
independent Gaussian angles of width theta0 from the Highland formula (PDG Review of
Particle Physics, "Passage of particles through matter", multiple scattering; Highland,
NIM 129 (1975) 497; Lynch & Dahl, NIM B58 (1991) 6):

    theta0 = 13.6 MeV / (beta c p) |z| sqrt(x/X0) [1 + 0.038 ln(x z^2 / (X0 beta^2))],

with x/X0 the layer's material divided by the cosine of the incidence angle (to the
layer normal, floored at 0.05). Optional energy loss: a minimum-ionising silicon-equivalent
loss dE = 0.3876 MeV/mm * 93.7 mm * x/X0 (dE/dx and X0 of silicon, PDG).

Hits
----
- Efficiency: a crossing makes a hit with the layer's probability ``efficiency``.
- Smearing: Gaussian, sigma = pitch / sqrt(12), in the two local directions (barrel:
  r*phi and z; disk: r*phi and r); the true point is in the truth table.
- Modules: barrel layers are cut into ``modules_phi`` x ``modules_z`` modules, disks into
  ``modules_phi`` x ``modules_r``; ``module_id`` = i_phi * n_long + i_long + 1.
- Pixel clusters: the track's segment through the sensor (thickness ``sensor_mm``; local
  slopes from the direction) deposits a charge (in units of a normal-incidence MIP,
  proportional to the path in silicon, with a Landau-like (Moyal) fluctuation) uniformly
  along its length; sample points are diffused by a Gaussian (``diffusion_mm``) and
  binned into the pitch grid; cells under ``cell_threshold`` are dropped (the largest
  cell of a hit is always kept). Cell indices ``ch0`` (r*phi) and ``ch1`` (z or r) are
  local to the module (clipped to it). Hits on one module whose cells touch (share a
  cell or are 8-neighbours) are MERGED into one hit: its position is the charge-weighted
  mean of the merged hits, its truth that of the particle with the largest charge, and
  the extra truth column ``n_particles`` holds how many particles made it (1 for an
  ordinary hit, 0 for noise). Strip hits make one cell (the strip and the row along the
  long direction).
- Noise: Poisson(f / (1 - f) * N_hits) extra hits, f = ``noise_fraction``, placed
  uniformly over the layer areas, ``particle_id`` 0, weight 0.
- Hit order: hits are sorted by (volume_id, layer_id, module_id, z) and numbered 1..N;
  ``particle_id`` = (interaction + 1) * 2**28 + (index of the particle in its interaction
  + 1), interaction 0 being the hard scatter and k the k-th pile-up vertex.

Truth weights (exactly as the TrackML scorer, trackml-library ``trackml/weights.py``,
arXiv:1904.06778 Sec. 3): w = w_order * w_pt, normalised to a sum of 1 per event.
w_pt = 0.2 for 0.05 <= pT <= 0.5 GeV, linear up to 1 at pT = 3 GeV, 1 above, 0 below
0.05 GeV (pT of the particle at production). w_order: the hits of a particle ordered by
|tz - vz|, the proposal (10, 8, 6, 5, 3, 3, 3, 5, 6) interpolated linearly onto its N hits
(N clipped to 20; hits beyond the 20th get 0), normalised to sum 1 over the particle;
particles with fewer than 4 hits and noise hits weigh 0.

Units: GeV, mm, T, ns not used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from heplab.errors import ConfigError
from heplab.events.trackml import TrackMLEvent

__all__ = [
    "SimulationConfig",
    "Surface",
    "TrackerGeometry",
    "generate",
    "geometry_from_dict",
    "highland_theta0",
    "load_geometry",
    "order_weights",
    "pt_weight",
    "simulate_event",
    "simulate_events",
    "trackml_weights",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_X0_SI_MM: Final = 93.7  # radiation length of silicon [mm] (PDG)
_DEDX_SI_MEV_PER_MM: Final = 0.3876  # minimum-ionising dE/dx in silicon [MeV/mm] (PDG)
_ORDER_PROPOSAL: Final = (10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0)
_ORDER_MIN_HITS: Final = 4
_ORDER_MAX_HITS: Final = 20
_ID_SHIFT: Final = 2**28
_CH: Final = 2**20  # cell-index range in the packed cell keys


# ------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Surface:
    """One sensitive layer: a barrel cylinder or an endcap disk (lengths in mm)."""

    volume_id: int
    layer_id: int
    kind: str  # "barrel" | "disk"
    technology: str  # "pixel" | "strip"
    radius: float  # barrel radius (0 for disks)
    half_length: float  # barrel |z| extent (0 for disks)
    z: float  # disk position (0 for barrels)
    r_min: float  # disk inner radius (0 for barrels)
    r_max: float  # disk outer radius (0 for barrels)
    pitch_u: float  # along r*phi
    pitch_v: float  # along z (barrel) or r (disk)
    sensor: float  # sensor thickness
    x_over_x0: float
    efficiency: float
    modules_phi: int
    modules_long: int  # modules along z (barrel) or r (disk)

    @property
    def area(self) -> float:
        """Sensitive area [mm^2]."""
        if self.kind == "barrel":
            return 2 * math.pi * self.radius * 2 * self.half_length
        return math.pi * (self.r_max**2 - self.r_min**2)


@dataclass(frozen=True)
class TrackerGeometry:
    """The tracker: its surfaces (in YAML order), field and noise level."""

    name: str
    field_tesla: float
    noise_fraction: float
    surfaces: tuple[Surface, ...]
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.surfaces)

    def column(self, name: str) -> np.ndarray:
        """One attribute of every surface as an array (float64, int64 or str)."""
        return np.array([getattr(s, name) for s in self.surfaces])

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping this geometry was made from (JSON-serialisable)."""
        return dict(self.source)


_VOLUME_KEYS: Final = {
    "id",
    "name",
    "kind",
    "technology",
    "pitch_mm",
    "sensor_mm",
    "x_over_x0",
    "efficiency",
    "half_length_mm",
    "r_min_mm",
    "r_max_mm",
    "modules_phi",
    "modules_z",
    "modules_r",
    "layers",
}
_LAYER_KEYS: Final = (_VOLUME_KEYS - {"id", "name", "kind", "technology", "layers"}) | {
    "radius_mm",
    "z_mm",
}


def _number(where: str, value: Any, *, positive: bool = True, unit: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, not {value!r}") from None
    if not math.isfinite(out) or (positive and out <= 0) or (unit and not 0 <= out <= 1):
        raise ConfigError(f"{where}: invalid value {value!r}")
    return out


def geometry_from_dict(data: Mapping[str, Any]) -> TrackerGeometry:
    """Build a :class:`TrackerGeometry` from its YAML mapping (see ``geometries/trackml.yaml``).

    Raises
    ------
    ConfigError
        For a missing or unknown key, an impossible value, or two layers with one id.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("tracker geometry: expected a mapping at the top level")
    unknown = set(data) - {
        "name",
        "description",
        "references",
        "field_tesla",
        "noise_fraction",
        "volumes",
    }
    if unknown:
        raise ConfigError(f"tracker geometry: unknown key(s) {sorted(unknown)}")
    name = str(data.get("name", "custom"))
    b = _number("field_tesla", data.get("field_tesla"))
    noise = _number("noise_fraction", data.get("noise_fraction", 0.0), positive=False, unit=True)
    if noise >= 1:
        raise ConfigError("noise_fraction must be below 1")
    volumes = data.get("volumes")
    if not isinstance(volumes, list) or not volumes:
        raise ConfigError("tracker geometry: 'volumes' must be a non-empty list")
    surfaces: list[Surface] = []
    for vol in volumes:
        if not isinstance(vol, Mapping) or "id" not in vol:
            raise ConfigError("tracker geometry: every volume needs an 'id'")
        vid = int(vol["id"])
        where = f"volume {vid}"
        bad = set(vol) - _VOLUME_KEYS
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {sorted(bad)}")
        kind = vol.get("kind")
        tech = vol.get("technology")
        if kind not in ("barrel", "disk"):
            raise ConfigError(f"{where}: kind must be 'barrel' or 'disk', not {kind!r}")
        if tech not in ("pixel", "strip"):
            raise ConfigError(f"{where}: technology must be 'pixel' or 'strip', not {tech!r}")
        layers = vol.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ConfigError(f"{where}: 'layers' must be a non-empty list")
        for k, lay in enumerate(layers):
            lwhere = f"{where} layer {2 * (k + 1)}"
            if not isinstance(lay, Mapping):
                raise ConfigError(f"{lwhere}: expected a mapping")
            bad = set(lay) - _LAYER_KEYS
            if bad:
                raise ConfigError(f"{lwhere}: unknown key(s) {sorted(bad)}")
            merged = {**vol, **lay}

            def get(key: str, merged: Mapping[str, Any] = merged, lwhere: str = lwhere) -> Any:
                if key not in merged:
                    raise ConfigError(f"{lwhere}: missing '{key}'")
                return merged[key]

            pitch = get("pitch_mm")
            if not isinstance(pitch, (list, tuple)) or len(pitch) != 2:
                raise ConfigError(f"{lwhere}: pitch_mm must be [pitch_rphi, pitch_long]")
            n_phi = int(get("modules_phi"))
            n_long = int(get("modules_z" if kind == "barrel" else "modules_r"))
            if n_phi < 1 or n_long < 1:
                raise ConfigError(f"{lwhere}: module counts must be >= 1")
            common: dict[str, Any] = {
                "volume_id": vid,
                "layer_id": 2 * (k + 1),
                "kind": str(kind),
                "technology": str(tech),
                "pitch_u": _number(f"{lwhere} pitch", pitch[0]),
                "pitch_v": _number(f"{lwhere} pitch", pitch[1]),
                "sensor": _number(f"{lwhere} sensor_mm", get("sensor_mm")),
                "x_over_x0": _number(f"{lwhere} x_over_x0", get("x_over_x0"), positive=False),
                "efficiency": _number(
                    f"{lwhere} efficiency", get("efficiency"), positive=False, unit=True
                ),
                "modules_phi": n_phi,
                "modules_long": n_long,
            }
            if kind == "barrel":
                surfaces.append(
                    Surface(
                        **common,
                        radius=_number(f"{lwhere} radius_mm", get("radius_mm")),
                        half_length=_number(f"{lwhere} half_length_mm", get("half_length_mm")),
                        z=0.0,
                        r_min=0.0,
                        r_max=0.0,
                    )
                )
            else:
                r_min = _number(f"{lwhere} r_min_mm", get("r_min_mm"))
                r_max = _number(f"{lwhere} r_max_mm", get("r_max_mm"))
                if r_max <= r_min:
                    raise ConfigError(f"{lwhere}: r_max_mm must exceed r_min_mm")
                surfaces.append(
                    Surface(
                        **common,
                        radius=0.0,
                        half_length=0.0,
                        z=_number(f"{lwhere} z_mm", get("z_mm"), positive=False),
                        r_min=r_min,
                        r_max=r_max,
                    )
                )
    ids = [(s.volume_id, s.layer_id) for s in surfaces]
    if len(set(ids)) != len(ids):
        raise ConfigError("tracker geometry: a volume id appears twice")
    source = {k: v for k, v in data.items()}
    return TrackerGeometry(name, b, noise, tuple(surfaces), source)


def load_geometry(name_or_path: str | os.PathLike[str] = "trackml") -> TrackerGeometry:
    """A built-in geometry by name (``trackml``) or a YAML file.

    Raises
    ------
    ConfigError
        Unknown name, unreadable file or invalid content.
    """
    import yaml

    text: str
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: no such geometry file")
        text = path.read_text("utf-8")
        where = str(path)
    else:
        ref = resources.files("heplab.detector").joinpath("geometries", f"{name_or_path}.yaml")
        if not ref.is_file():
            raise ConfigError(
                f"unknown tracker geometry {str(name_or_path)!r} (built in: trackml; "
                "or give a YAML file)"
            )
        text = ref.read_text("utf-8")
        where = str(name_or_path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    try:
        return geometry_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


# ----------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SimulationConfig:
    """Settings of :func:`simulate_event` (None: take the geometry's value).

    Attributes
    ----------
    pt_min : float
        Particles with pT below this [GeV] are not simulated.
    multiple_scattering, energy_loss, smearing, clusters : bool
        Switch the Highland kicks, the energy loss, the hit smearing and the pixel
        cluster simulation (and merging) on or off.
    efficiency, noise_fraction : float or None
        Override every layer's efficiency / the geometry's noise fraction.
    max_turn : float
        Largest turning angle [rad] a particle is followed for (pi: half a turn).
    diffusion_mm, cell_threshold, landau_width : float
        Charge diffusion sigma [mm]; cell threshold and Landau-like width [MIP units].
    """

    pt_min: float = 0.1
    multiple_scattering: bool = True
    energy_loss: bool = False
    smearing: bool = True
    clusters: bool = True
    efficiency: float | None = None
    noise_fraction: float | None = None
    max_turn: float = math.pi
    diffusion_mm: float = 0.004
    cell_threshold: float = 0.1
    landau_width: float = 0.15

    def __post_init__(self) -> None:
        if not self.pt_min >= 0:
            raise ConfigError(f"pt_min must be >= 0, not {self.pt_min}")
        for name in ("efficiency", "noise_fraction"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                raise ConfigError(f"{name} must be in [0, 1], not {v}")
        if self.noise_fraction is not None and self.noise_fraction >= 1:
            raise ConfigError("noise_fraction must be below 1")
        if not 0 < self.max_turn <= 2 * math.pi:
            raise ConfigError(f"max_turn must be in (0, 2 pi], not {self.max_turn}")
        for name in ("diffusion_mm", "cell_threshold", "landau_width"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulationConfig:
        known = {f.name for f in fields(cls)}
        bad = set(data) - known
        if bad:
            raise ConfigError(f"unknown tracker simulation setting(s) {sorted(bad)}")
        return cls(**dict(data))


# ------------------------------------------------------------------------ physics
def highland_theta0(p: F64, beta: F64, charge: F64, x_over_x0: F64) -> F64:
    """RMS plane-projected scattering angle [rad] (Highland formula, PDG); p in GeV."""
    x = np.maximum(np.asarray(x_over_x0, dtype=np.float64), 1e-12)
    z = np.abs(charge)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.0136 / (beta * p) * z * np.sqrt(x) * (1.0 + 0.038 * np.log(x * z**2 / beta**2))
    return np.where(np.asarray(x_over_x0) > 0, np.maximum(out, 0.0), 0.0)


def pt_weight(pt: F64) -> F64:
    """TrackML's pT weight: 0 below 0.05 GeV, 0.2 up to 0.5 GeV, linear to 1 at 3 GeV."""
    return np.interp(pt, [0.05, 0.5, 3.0], [0.2, 0.2, 1.0], left=0.0, right=1.0)


def _order_matrix() -> F64:
    w = np.zeros((_ORDER_MAX_HITS + 1, _ORDER_MAX_HITS))
    prop = np.asarray(_ORDER_PROPOSAL)
    for n in range(_ORDER_MIN_HITS, _ORDER_MAX_HITS + 1):
        support = np.arange(len(prop)) * (n - 1) / (len(prop) - 1)
        row = np.interp(np.arange(n), support, prop)
        w[n, :n] = row / row.sum()
    return w


_ORDER_MATRIX: Final = _order_matrix()


def order_weights(ihit: I64, nhits: I64) -> F64:
    """TrackML's hit-order weight of hit ``ihit`` (0-based) of a particle with ``nhits``."""
    ihit = np.asarray(ihit, dtype=np.int64)
    n = np.minimum(np.asarray(nhits, dtype=np.int64), _ORDER_MAX_HITS)
    ok = (n >= _ORDER_MIN_HITS) & (ihit < _ORDER_MAX_HITS) & (ihit >= 0) & (ihit < n)
    out = np.zeros(ihit.shape)
    out[ok] = _ORDER_MATRIX[n[ok], ihit[ok]]
    return out


def trackml_weights(
    truth: Mapping[str, np.ndarray], particles: Mapping[str, np.ndarray]
) -> npt.NDArray[np.float32]:
    """Per-hit weights as the TrackML scorer defines them (see the module docstring).

    ``truth`` needs ``particle_id, tz``; ``particles`` needs ``particle_id, vz, px, py``.
    Hits are ordered along a particle by |tz - vz| (ties: file order). Returns float32
    weights summing to 1 (all zero if nothing can be scored).
    """
    pid = np.asarray(truth["particle_id"], dtype=np.int64)
    n = len(pid)
    if n == 0:
        return np.zeros(0, np.float32)
    ppid = np.asarray(particles["particle_id"], dtype=np.int64)
    order = np.argsort(ppid, kind="stable")
    pos = np.searchsorted(ppid[order], pid)
    pos = np.minimum(pos, max(len(ppid) - 1, 0))
    known = (pid != 0) & (len(ppid) > 0)
    if len(ppid):
        known &= ppid[order][pos] == pid
    prow = order[pos] if len(ppid) else np.zeros(n, np.int64)
    pt = np.hypot(np.asarray(particles["px"], np.float64), np.asarray(particles["py"], np.float64))
    wpt = np.where(known, pt_weight(pt[prow]) if len(ppid) else 0.0, 0.0)
    vz = np.asarray(particles["vz"], np.float64)[prow] if len(ppid) else np.zeros(n)
    dz = np.abs(np.asarray(truth["tz"], np.float64) - vz)
    # rank of each hit within its particle by |tz - vz|
    srt = np.lexsort((np.arange(n), dz, pid))
    spid = pid[srt]
    start = np.r_[True, spid[1:] != spid[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    ihit = np.empty(n, np.int64)
    ihit[srt] = np.arange(n) - first
    counts = np.diff(np.r_[np.flatnonzero(start), n])
    nh = np.empty(n, np.int64)
    nh[srt] = np.repeat(counts, counts)
    w = np.where(known, wpt * order_weights(ihit, nh), 0.0)
    total = w.sum()
    return (w / total if total > 0 else w).astype(np.float32)


def _rng_normal(rng: np.random.Generator, n: int) -> F64:
    return rng.standard_normal(n)


def _mass(energy: F64, p: F64) -> F64:
    return np.sqrt(np.maximum(energy**2 - p**2, 0.0))


@dataclass
class _Crossings:
    particle: I64
    surface: I64
    step: I64
    x: F64
    y: F64
    z: F64
    px: F64
    py: F64
    pz: F64


def _propagate(
    x: F64,
    y: F64,
    z: F64,
    px: F64,
    py: F64,
    pz: F64,
    q: F64,
    mass: F64,
    geometry: TrackerGeometry,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> _Crossings:
    """All layer crossings of all particles, in path order per particle."""
    b = geometry.field_tesla
    kind = geometry.column("kind")
    barrel = np.flatnonzero(kind == "barrel")
    disk = np.flatnonzero(kind == "disk")
    rb = geometry.column("radius")[barrel]
    lb = geometry.column("half_length")[barrel]
    zd = geometry.column("z")[disk]
    rmin = geometry.column("r_min")[disk]
    rmax = geometry.column("r_max")[disk]
    x0_all = geometry.column("x_over_x0").astype(np.float64)
    is_barrel = kind == "barrel"
    eps = 1e-3  # mm: a surface just left is not crossed again at once

    n = len(x)
    idx = np.arange(n)
    x, y, z, px, py, pz = (a.astype(np.float64).copy() for a in (x, y, z, px, py, pz))
    turned = np.zeros(n)
    out: dict[str, list[np.ndarray]] = {k: [] for k in _Crossings.__dataclass_fields__}
    step = 0
    while len(idx) and step < 200:
        pt = np.hypot(px, py)
        rho = pt / (0.3 * b * np.abs(q)) * 1000.0  # mm
        k = -np.sign(q) / rho
        phi0 = np.arctan2(py, px)
        tanl = pz / pt
        cx = x - np.sin(phi0) / k
        cy = y + np.cos(phi0) / k
        d = np.hypot(cx, cy)
        remaining = (config.max_turn - turned) * rho  # transverse path still allowed
        # --- barrels: circle (centre c, radius rho) meets circle (origin, R)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = (rb[None, :] ** 2 - (d - rho)[:, None] ** 2) / (4 * d * rho)[:, None]
        ok_b = (h >= 0) & (h <= 1) & (d > 1e-9)[:, None]
        gamma = 2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
        theta_c = np.arctan2(-cy, -cx)[:, None]
        alpha0 = np.arctan2(y - cy, x - cx)[:, None]
        sgn = np.sign(k)[:, None]
        best_s = np.full(len(idx), np.inf)
        best_surf = np.full(len(idx), -1, np.int64)
        for pm in (1.0, -1.0):
            s = rho[:, None] * np.mod((theta_c + pm * gamma - alpha0) * sgn, 2 * np.pi)
            zs = z[:, None] + s * tanl[:, None]
            good = ok_b & (s > eps) & (np.abs(zs) <= lb[None, :]) & (s <= remaining[:, None])
            s = np.where(good, s, np.inf)
            j = np.argmin(s, axis=1)
            sj = s[np.arange(len(idx)), j]
            better = sj < best_s
            best_s = np.where(better, sj, best_s)
            best_surf = np.where(better, barrel[j], best_surf)
        # --- disks: z-plane crossings inside [r_min, r_max]
        if len(disk):
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (zd[None, :] - z[:, None]) / tanl[:, None]
            s = np.where(np.isfinite(s), s, -1.0)
            half = 0.5 * k[:, None] * s
            sinc = np.sinc(half / np.pi)
            xs = x[:, None] + s * np.cos(phi0[:, None] + half) * sinc
            ys = y[:, None] + s * np.sin(phi0[:, None] + half) * sinc
            rs = np.hypot(xs, ys)
            good = (s > eps) & (rs >= rmin[None, :]) & (rs <= rmax[None, :])
            good &= s <= remaining[:, None]
            s = np.where(good, s, np.inf)
            j = np.argmin(s, axis=1)
            sj = s[np.arange(len(idx)), j]
            better = sj < best_s
            best_s = np.where(better, sj, best_s)
            best_surf = np.where(better, disk[j], best_surf)
        go = np.isfinite(best_s)
        if not go.any():
            break
        # --- move the survivors to their next surface
        sel = np.flatnonzero(go)
        s = best_s[sel]
        surf = best_surf[sel]
        kk, ph, ptt = k[sel], phi0[sel], pt[sel]
        half = 0.5 * kk * s
        sinc = np.sinc(half / np.pi)
        nx = x[sel] + s * np.cos(ph + half) * sinc
        ny = y[sel] + s * np.sin(ph + half) * sinc
        nz = z[sel] + s * tanl[sel]
        phin = ph + kk * s
        npx = ptt * np.cos(phin)
        npy = ptt * np.sin(phin)
        npz = pz[sel]
        # snap onto the surface (removes round-off)
        bsel = is_barrel[surf]
        rnow = np.hypot(nx, ny)
        scale = np.where(bsel, geometry.column("radius")[surf] / np.where(rnow > 0, rnow, 1), 1)
        nx, ny = nx * scale, ny * scale
        nz = np.where(bsel, nz, geometry.column("z")[surf])
        for key, val in (
            ("particle", idx[sel]),
            ("surface", surf),
            ("step", np.full(len(sel), step)),
            ("x", nx),
            ("y", ny),
            ("z", nz),
            ("px", npx),
            ("py", npy),
            ("pz", npz),
        ):
            out[key].append(val)
        # --- material: multiple scattering (and energy loss)
        p = np.sqrt(npx**2 + npy**2 + npz**2)
        r_hat_dot = (nx * npx + ny * npy) / np.maximum(np.hypot(nx, ny) * p, 1e-300)
        cos_inc = np.where(bsel, np.abs(r_hat_dot), np.abs(npz) / p)
        xx0 = x0_all[surf] / np.maximum(cos_inc, 0.05)
        m = mass[sel]
        qq = q[sel]
        alive = np.ones(len(sel), bool)
        if config.energy_loss:
            e = np.sqrt(p**2 + m**2) - 1e-3 * _DEDX_SI_MEV_PER_MM * _X0_SI_MM * xx0
            alive = e > m * 1.0001
            pnew = np.sqrt(np.maximum(e**2 - m**2, 1e-18))
            f = pnew / p
            npx, npy, npz, p = npx * f, npy * f, npz * f, pnew
        if config.multiple_scattering:
            beta = p / np.sqrt(p**2 + m**2)
            th = highland_theta0(p, beta, qq, xx0)
            ux, uy, uz = npx / p, npy / p, npz / p
            tpt = np.hypot(ux, uy)
            safe = tpt > 1e-12
            e1x = np.where(safe, -uy / np.where(safe, tpt, 1), 1.0)
            e1y = np.where(safe, ux / np.where(safe, tpt, 1), 0.0)
            e1z = np.zeros_like(ux)
            e2x = uy * e1z - uz * e1y
            e2y = uz * e1x - ux * e1z
            e2z = ux * e1y - uy * e1x
            a1 = th * _rng_normal(rng, len(sel))
            a2 = th * _rng_normal(rng, len(sel))
            vx_ = ux + a1 * e1x + a2 * e2x
            vy_ = uy + a1 * e1y + a2 * e2y
            vz_ = uz + a1 * e1z + a2 * e2z
            norm = np.sqrt(vx_**2 + vy_**2 + vz_**2)
            npx, npy, npz = p * vx_ / norm, p * vy_ / norm, p * vz_ / norm
        # a particle kicked to (almost) zero pT cannot continue as a helix
        alive &= np.hypot(npx, npy) > 1e-6
        keep = sel[alive]
        turned_new = turned[sel] + np.abs(kk) * s
        idx = idx[keep]
        x, y, z = nx[alive], ny[alive], nz[alive]
        px, py, pz = npx[alive], npy[alive], npz[alive]
        q, mass, turned = q[keep], mass[keep], turned_new[alive]
        step += 1
    cat: dict[str, Any] = {
        k: (
            np.concatenate(v)
            if v
            else np.zeros(0, np.int64 if k in ("particle", "surface", "step") else np.float64)
        )
        for k, v in out.items()
    }
    return _Crossings(**cat)


# --------------------------------------------------------------------------- hits
def _local(
    geometry: TrackerGeometry, surf: I64, x: F64, y: F64, z: F64
) -> tuple[I64, F64, F64, I64, I64]:
    """Module id, local (u, v) in the module [mm] and the module's cell counts (nu, nv)."""
    col = geometry.column
    barrel = col("kind")[surf] == "barrel"
    nphi = col("modules_phi")[surf].astype(np.int64)
    nlong = col("modules_long")[surf].astype(np.int64)
    pu, pv = col("pitch_u")[surf], col("pitch_v")[surf]
    phi = np.arctan2(y, x)
    iphi = np.minimum(np.floor((phi + np.pi) / (2 * np.pi) * nphi), nphi - 1).astype(np.int64)
    dphi = np.maximum(phi - (-np.pi + iphi * 2 * np.pi / nphi), 0.0)
    r = np.hypot(x, y)
    radius, half = col("radius")[surf], col("half_length")[surf]
    rmin, rmax = col("r_min")[surf], col("r_max")[surf]
    lo = np.where(barrel, -half, rmin)
    span = np.where(barrel, 2 * half, rmax - rmin)
    coord = np.where(barrel, z, r)
    ilong = np.clip(np.floor((coord - lo) / span * nlong), 0, nlong - 1).astype(np.int64)
    u = np.where(barrel, radius, r) * dphi
    v = coord - (lo + ilong * span / nlong)
    width = np.where(barrel, radius, rmax) * 2 * np.pi / nphi
    nu = np.ceil(width / pu).astype(np.int64)
    nv = np.ceil(span / nlong / pv).astype(np.int64)
    return iphi * nlong + ilong + 1, u, v, np.maximum(nu, 1), np.maximum(nv, 1)


def _group_starts(keys: np.ndarray) -> I64:
    """Start index of each run of equal values in sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _last_of_group(order_keys: tuple[np.ndarray, ...], group: I64) -> I64:
    """For each group value (0..G-1, all present), the index of its lexsort-last element."""
    srt = np.lexsort((*order_keys, group))
    g = group[srt]
    ends = np.r_[np.flatnonzero(g[1:] != g[:-1]), len(g) - 1]
    return srt[ends]


def _pixel_cells(
    geometry: TrackerGeometry,
    config: SimulationConfig,
    rng: np.random.Generator,
    surf: I64,
    u: F64,
    v: F64,
    nu: I64,
    nv: I64,
    dirs: tuple[F64, F64, F64],
    phi: F64,
    charge: F64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells (hit index, ch0, ch1, value) of pixel hits from their track segments."""
    col = geometry.column
    n = len(surf)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros(0)
    barrel = col("kind")[surf] == "barrel"
    t = col("sensor")[surf]
    pu, pv = col("pitch_u")[surf], col("pitch_v")[surf]
    dx, dy, dz = dirs
    cphi, sphi = np.cos(phi), np.sin(phi)
    d_u = -sphi * dx + cphi * dy
    d_r = cphi * dx + sphi * dy
    d_n = np.where(barrel, d_r, dz)
    d_v = np.where(barrel, dz, d_r)
    dn = np.where(np.abs(d_n) < 1e-3, 1e-3, np.abs(d_n)) * np.where(d_n < 0, -1.0, 1.0)
    du_ = np.clip(t * d_u / dn, -4.0, 4.0)
    dv_ = np.clip(t * d_v / dn, -4.0, 4.0)
    step = 0.25 * np.minimum(pu, pv)
    k = np.clip(np.ceil(np.hypot(du_, dv_) / step).astype(np.int64) + 1, 2, 400)
    hit = np.repeat(np.arange(n), k)
    first = np.repeat(np.cumsum(k) - k, k)
    frac = (np.arange(len(hit)) - first + 0.5) / k[hit] - 0.5
    su = u[hit] + frac * du_[hit] + config.diffusion_mm * rng.standard_normal(len(hit))
    sv = v[hit] + frac * dv_[hit] + config.diffusion_mm * rng.standard_normal(len(hit))
    ch0 = np.clip(np.floor(su / pu[hit]), 0, nu[hit] - 1).astype(np.int64)
    ch1 = np.clip(np.floor(sv / pv[hit]), 0, nv[hit] - 1).astype(np.int64)
    q = (charge / k)[hit]
    key = (hit * _CH + ch0) * _CH + ch1
    ukey, inv = np.unique(key, return_inverse=True)
    value = np.bincount(inv, q, len(ukey))
    c_hit = ukey // (_CH * _CH)
    c0 = (ukey // _CH) % _CH
    c1 = ukey % _CH
    biggest = np.zeros(len(ukey), bool)
    biggest[_last_of_group((value,), c_hit)] = True
    keep = (value >= config.cell_threshold) | biggest
    return c_hit[keep], c0[keep], c1[keep], value[keep]


def _merge_clusters(module_key: I64, cell_hit: I64, ch0: I64, ch1: I64) -> tuple[I64, int]:
    """Cluster index of each hit: hits of one module whose cells share or touch a cell."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_hits = len(module_key)
    if n_hits == 0:
        return np.zeros(0, np.int64), 0
    gkey = (module_key[cell_hit] * _CH + ch0) * _CH + ch1
    ukey, inv = np.unique(gkey, return_inverse=True)
    rows = [cell_hit]
    cols = [n_hits + inv]
    u0 = (ukey // _CH) % _CH
    u1 = ukey % _CH
    for d0, d1 in ((0, 1), (1, -1), (1, 0), (1, 1)):
        ok = (u1 + d1 >= 0) & (u1 + d1 < _CH) & (u0 + d0 < _CH)
        nb = ukey + d0 * _CH + d1
        pos = np.minimum(np.searchsorted(ukey, nb), len(ukey) - 1)
        found = ok & (ukey[pos] == nb)
        rows.append(n_hits + np.flatnonzero(found))
        cols.append(n_hits + pos[found])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    size = n_hits + len(ukey)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(size, size)).tocsr()
    _, labels = connected_components(graph, directed=False)
    uniq, cluster = np.unique(labels[:n_hits], return_inverse=True)
    return cluster.astype(np.int64), len(uniq)


def _particle_ids(pileup: np.ndarray) -> I64:
    """(interaction + 1) * 2**28 + (index of the particle in its interaction + 1)."""
    pileup = np.asarray(pileup, np.int64)
    n = len(pileup)
    order = np.argsort(pileup, kind="stable")
    sp = pileup[order]
    starts = _group_starts(sp)
    first = np.zeros(n, np.int64)
    if n:
        first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - first
    return (pileup + 1) * _ID_SHIFT + rank + 1


_DEFAULT_GEOMETRY: dict[str, TrackerGeometry] = {}


def _default_geometry() -> TrackerGeometry:
    if "trackml" not in _DEFAULT_GEOMETRY:
        _DEFAULT_GEOMETRY["trackml"] = load_geometry("trackml")
    return _DEFAULT_GEOMETRY["trackml"]


_REQUIRED: Final = ("px", "py", "pz", "energy", "charge", "vx", "vy", "vz")


def simulate_event(
    particles: Mapping[str, np.ndarray],
    geometry: TrackerGeometry | None = None,
    rng: np.random.Generator | None = None,
    config: SimulationConfig | None = None,
    event_id: int = 0,
) -> TrackMLEvent:
    """Simulate the tracker response to one collision's particles.

    Parameters
    ----------
    particles : mapping of str to 1-d arrays
        Flat truth particles of one event: ``px, py, pz, energy`` [GeV], ``charge`` [e],
        ``vx, vy, vz`` [mm]; optional ``pileup`` (interaction number, 0 = hard scatter).
        Neutral particles and those below ``config.pt_min`` are ignored.
    geometry : TrackerGeometry, optional
        Default: :func:`load_geometry` ``("trackml")``.
    rng : numpy Generator, optional
        Source of all randomness (default: a fresh unseeded one).
    config : SimulationConfig, optional
    event_id : int

    Returns
    -------
    TrackMLEvent
        hits, truth (with ``n_particles``), particles and cells (see the module docstring).
    """
    geometry = geometry or _default_geometry()
    config = config or SimulationConfig()
    rng = rng if rng is not None else np.random.default_rng()
    missing = [k for k in _REQUIRED if k not in particles]
    if missing:
        raise ConfigError(f"simulate_event: particles lack field(s) {', '.join(missing)}")
    if not geometry.field_tesla > 0:
        raise ConfigError("the tracker needs a magnetic field > 0 T")
    arr = {k: np.asarray(particles[k], dtype=np.float64) for k in _REQUIRED}
    n_all = len(arr["px"])
    pileup = np.asarray(particles.get("pileup", np.zeros(n_all)), np.int64)
    pid_all = _particle_ids(pileup)
    pt_all = np.hypot(arr["px"], arr["py"])
    sel = np.flatnonzero((arr["charge"] != 0) & (pt_all > config.pt_min))
    p = {k: v[sel] for k, v in arr.items()}
    ptot = np.sqrt(p["px"] ** 2 + p["py"] ** 2 + p["pz"] ** 2)
    mass = _mass(np.maximum(p["energy"], ptot), ptot)
    cr = _propagate(
        p["vx"],
        p["vy"],
        p["vz"],
        p["px"],
        p["py"],
        p["pz"],
        p["charge"],
        mass,
        geometry,
        config,
        rng,
    )
    col = geometry.column
    # efficiency
    eff = col("efficiency")[cr.surface] if config.efficiency is None else config.efficiency
    keep = rng.random(len(cr.surface)) < eff
    part = cr.particle[keep]
    surf = cr.surface[keep]
    tx, ty, tz = cr.x[keep], cr.y[keep], cr.z[keep]
    tpx, tpy, tpz = cr.px[keep], cr.py[keep], cr.pz[keep]
    n = len(part)
    # smearing in local coordinates
    barrel = col("kind")[surf] == "barrel"
    su = col("pitch_u")[surf] / math.sqrt(12.0)
    sv = col("pitch_v")[surf] / math.sqrt(12.0)
    tr = np.hypot(tx, ty)
    tphi = np.arctan2(ty, tx)
    g1 = rng.standard_normal(n) if config.smearing else np.zeros(n)
    g2 = rng.standard_normal(n) if config.smearing else np.zeros(n)
    mr = np.where(barrel, tr, tr + g2 * sv)
    mphi = tphi + g1 * su / np.maximum(tr, 1e-9)
    mx, my = mr * np.cos(mphi), mr * np.sin(mphi)
    mz = np.where(barrel, tz + g2 * sv, tz)
    module, u, v, nu, nv = _local(geometry, surf, tx, ty, tz)
    # charge in MIP units: path in silicon / thickness, with a Moyal (Landau-like) factor
    ptrk = np.sqrt(tpx**2 + tpy**2 + tpz**2)
    ux, uy, uz = tpx / ptrk, tpy / ptrk, tpz / ptrk
    cos_n = np.where(barrel, np.abs(ux * np.cos(tphi) + uy * np.sin(tphi)), np.abs(uz))
    moyal = -np.log(np.maximum(rng.standard_normal(n) ** 2, 1e-300))
    fluct = (1 + config.landau_width * moyal) / (1 + config.landau_width * 1.2704)
    charge = np.maximum(fluct, 0.3) / np.maximum(cos_n, 0.05)

    pixel = (col("technology")[surf] == "pixel") & config.clusters
    # strips (and pixels without cluster simulation): one cell per hit
    c_hit_s = np.flatnonzero(~pixel)
    c0_s = np.clip(np.floor(u / col("pitch_u")[surf]), 0, nu - 1).astype(np.int64)[~pixel]
    c1_s = np.clip(np.floor(v / col("pitch_v")[surf]), 0, nv - 1).astype(np.int64)[~pixel]
    val_s = charge[~pixel]
    # pixel hits: clusters, merged when they touch on one module
    pix = np.flatnonzero(pixel)
    ch_hit, ch0, ch1, chv = _pixel_cells(
        geometry,
        config,
        rng,
        surf[pix],
        u[pix],
        v[pix],
        nu[pix],
        nv[pix],
        (ux[pix], uy[pix], uz[pix]),
        tphi[pix],
        charge[pix],
    )
    mod_key = np.unique(surf[pix] * _CH + module[pix], return_inverse=True)[1].astype(np.int64)
    cluster, n_cl = _merge_clusters(mod_key, ch_hit, ch0, ch1)
    hit_q = np.bincount(ch_hit, chv, len(pix))
    dom = pix[_last_of_group((hit_q,), cluster)] if n_cl else np.zeros(0, np.int64)
    wsum = np.bincount(cluster, hit_q, n_cl)
    cx = np.bincount(cluster, hit_q * mx[pix], n_cl) / wsum
    cy = np.bincount(cluster, hit_q * my[pix], n_cl) / wsum
    cz = np.bincount(cluster, hit_q * mz[pix], n_cl) / wsum
    pairs = np.unique(cluster * (len(sel) + 1) + part[pix])
    n_part_cl = np.bincount(pairs // (len(sel) + 1), minlength=n_cl)
    ckey = np.unique((cluster[ch_hit] * _CH + ch0) * _CH + ch1, return_inverse=True)
    cl_cells_key, cl_inv = ckey
    cl_val = np.bincount(cl_inv, chv, len(cl_cells_key))

    # assemble real hits: pixel clusters then strip hits
    strip = np.flatnonzero(~pixel)
    src = np.r_[dom, strip].astype(np.int64)  # the crossing that gives each hit its truth
    hx = np.r_[cx, mx[strip]]
    hy = np.r_[cy, my[strip]]
    hz = np.r_[cz, mz[strip]]
    n_particles = np.r_[n_part_cl, np.ones(len(strip), np.int64)]
    cell_hit = np.r_[cl_cells_key // (_CH * _CH), n_cl + np.searchsorted(strip, c_hit_s)]
    cell_c0 = np.r_[(cl_cells_key // _CH) % _CH, c0_s]
    cell_c1 = np.r_[cl_cells_key % _CH, c1_s]
    cell_v = np.r_[cl_val, val_s]
    n_real = len(src)

    # noise hits, uniform over the layer areas
    f = geometry.noise_fraction if config.noise_fraction is None else config.noise_fraction
    n_noise = int(rng.poisson(f / (1 - f) * n_real)) if f > 0 and n_real else 0
    areas = np.array([s.area for s in geometry.surfaces])
    nsurf = rng.choice(len(areas), size=n_noise, p=areas / areas.sum())
    nb = col("kind")[nsurf] == "barrel"
    nphi = rng.uniform(-np.pi, np.pi, n_noise)
    rr = np.sqrt(rng.uniform(col("r_min")[nsurf] ** 2, col("r_max")[nsurf] ** 2))
    nr = np.where(nb, col("radius")[nsurf], rr)
    half = col("half_length")[nsurf]
    nzz = np.where(nb, rng.uniform(-1, 1, n_noise) * half, col("z")[nsurf])
    nxx, nyy = nr * np.cos(nphi), nr * np.sin(nphi)
    nmod, nu_, nv_, nnu, nnv = _local(geometry, nsurf, nxx, nyy, nzz)

    hsurf = np.r_[surf[src], nsurf].astype(np.int64)
    hmod = np.r_[module[src], nmod]
    X = np.r_[hx, nxx]
    Y = np.r_[hy, nyy]
    Z = np.r_[hz, nzz]
    tpid = np.r_[pid_all[sel][part[src]], np.zeros(n_noise, np.int64)]
    t_x = np.r_[tx[src], nxx]
    t_y = np.r_[ty[src], nyy]
    t_z = np.r_[tz[src], nzz]
    t_px = np.r_[tpx[src], np.zeros(n_noise)]
    t_py = np.r_[tpy[src], np.zeros(n_noise)]
    t_pz = np.r_[tpz[src], np.zeros(n_noise)]
    n_particles = np.r_[n_particles, np.zeros(n_noise, np.int64)]
    cell_hit = np.r_[cell_hit, n_real + np.arange(n_noise)]
    cell_c0 = np.r_[
        cell_c0, np.clip(np.floor(nu_ / col("pitch_u")[nsurf]), 0, nnu - 1).astype(np.int64)
    ]
    cell_c1 = np.r_[
        cell_c1, np.clip(np.floor(nv_ / col("pitch_v")[nsurf]), 0, nnv - 1).astype(np.int64)
    ]
    cell_v = np.r_[cell_v, rng.uniform(config.cell_threshold, 1.0, n_noise)]

    # order by (volume, layer, module, z) and number 1..N
    vol = col("volume_id")[hsurf].astype(np.int32)
    lay = col("layer_id")[hsurf].astype(np.int32)
    order = np.lexsort((Z, hmod, lay, vol))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    hit_id = np.arange(1, len(order) + 1, dtype=np.int64)
    hits = {
        "hit_id": hit_id,
        "x": X[order].astype(np.float32),
        "y": Y[order].astype(np.float32),
        "z": Z[order].astype(np.float32),
        "volume_id": vol[order],
        "layer_id": lay[order],
        "module_id": hmod[order].astype(np.int32),
    }
    truth = {
        "hit_id": hit_id.copy(),
        "particle_id": tpid[order],
        "tx": t_x[order].astype(np.float32),
        "ty": t_y[order].astype(np.float32),
        "tz": t_z[order].astype(np.float32),
        "tpx": t_px[order].astype(np.float32),
        "tpy": t_py[order].astype(np.float32),
        "tpz": t_pz[order].astype(np.float32),
        "weight": np.zeros(len(order), np.float32),
        "n_particles": n_particles[order].astype(np.int32),
    }
    pids = pid_all[sel]
    nhits = np.zeros(len(sel), np.int64)
    if len(tpid):
        real = tpid[tpid != 0]
        srt = np.argsort(pids, kind="stable")
        pos = srt[np.searchsorted(pids[srt], real)]
        nhits = np.bincount(pos, minlength=len(sel))
    parts: dict[str, np.ndarray] = {
        "particle_id": pids,
        "vx": p["vx"].astype(np.float32),
        "vy": p["vy"].astype(np.float32),
        "vz": p["vz"].astype(np.float32),
        "px": p["px"].astype(np.float32),
        "py": p["py"].astype(np.float32),
        "pz": p["pz"].astype(np.float32),
        "q": p["charge"].astype(np.int32),
        "nhits": nhits.astype(np.int32),
    }
    truth["weight"] = trackml_weights(truth, parts)
    c_order = np.lexsort((cell_c1, cell_c0, rank[cell_hit]))
    cells = {
        "hit_id": rank[cell_hit][c_order] + 1,
        "ch0": cell_c0[c_order].astype(np.int32),
        "ch1": cell_c1[c_order].astype(np.int32),
        "value": cell_v[c_order].astype(np.float32),
    }
    return TrackMLEvent(int(event_id), hits, truth, parts, cells)


def simulate_events(
    events: Any,
    geometry: TrackerGeometry | None = None,
    config: SimulationConfig | None = None,
    seed: int = 1,
    first_event_id: int = 0,
) -> Iterator[TrackMLEvent]:
    """Simulate heplab events (an awkward array with a ``particles`` list) one by one.

    Event ``i`` gets the id ``first_event_id + event_id`` (its ``event_id`` field, else
    ``i``) and its own generator ``numpy.random.default_rng([seed, id])``, so any event can
    be re-made alone.
    """
    import awkward as ak

    plist = events["particles"]
    counts = ak.to_numpy(ak.num(plist)).astype(np.int64)
    offsets = np.r_[0, np.cumsum(counts)]
    names = [*_REQUIRED, *(["pileup"] if "pileup" in plist.fields else [])]
    flat = {k: ak.to_numpy(ak.flatten(plist[k])) for k in names}
    ids = (
        ak.to_numpy(events["event_id"]).astype(np.int64)
        if "event_id" in events.fields
        else np.arange(len(counts))
    )
    for i in range(len(counts)):
        sl = slice(offsets[i], offsets[i + 1])
        eid = int(first_event_id + ids[i])
        yield simulate_event(
            {k: v[sl] for k, v in flat.items()},
            geometry,
            np.random.default_rng([seed, eid]),
            config,
            event_id=eid,
        )


# ---------------------------------------------------------------------- production
def _event_complete(out_dir: Path, event_id: int) -> bool:
    return (out_dir / f"event{event_id:09d}-hits.csv").is_file()


def _trackml_chunk(run: Mapping[str, Any], index: int, out_dir: str) -> Any:
    """Dask task: Pythia chunk ``index`` -> tracker -> TrackML CSV files (hits last)."""
    import time

    from heplab.events.manifest import ChunkRecord
    from heplab.events.trackml import write_event
    from heplab.generation.production import chunk_events, chunk_seeds, generate_chunk

    t_start = time.perf_counter()
    prod = run["production"]
    out = Path(out_dir)
    n = chunk_events(prod, index)
    first = int(run["first_event_id"]) + index * int(prod["chunk_size"])
    ids = range(first, first + n)
    timing: dict[str, float] = {}
    hits = 0
    if not all(_event_complete(out, i) for i in ids):
        events, timing = generate_chunk(prod, index, out_dir)
        geometry = geometry_from_dict(run["geometry"])
        config = SimulationConfig.from_dict(run["simulation"])
        t_sim = t_io = 0.0
        t0 = time.perf_counter()
        for event in simulate_events(
            events, geometry, config, int(prod["seed"]), int(run["first_event_id"])
        ):
            t1 = time.perf_counter()
            t_sim += t1 - t0
            hits += len(event)
            if not _event_complete(out, event.event_id):
                write_event(out, event)
            t0 = time.perf_counter()
            t_io += t0 - t1
        timing["simulation"] = t_sim
        timing["io"] = t_io
    return ChunkRecord(
        index=index,
        file=f"event{ids[-1]:09d}-hits.csv",
        events=n,
        rows=hits,
        seed=chunk_seeds(int(prod["seed"]), index)["pythia"],
        seconds=time.perf_counter() - t_start,
        timing=timing,
    )


def generate(
    out_dir: str | os.PathLike[str],
    n_events: int,
    pileup: float = 0.0,
    process: str = "ttbar",
    seed: int = 1,
    geometry: str | os.PathLike[str] = "trackml",
    config: SimulationConfig | None = None,
    *,
    workers: int = 0,
    events_per_chunk: int = 10,
    first_event_id: int = 1000,
    force: bool = False,
    progress: bool = True,
) -> Any:
    """Generate ``n_events`` Pythia events (+ Poisson(``pileup``) minimum bias) and write
    their tracker response as TrackML CSV files ``event%09d-*.csv`` into ``out_dir``.

    Events are made in chunks of ``events_per_chunk`` (one Pythia initialisation and one
    pile-up pool per chunk, seeds from (seed, chunk)), on ``workers`` local Dask processes
    (0: in this process). The run configuration (production, geometry, simulation
    settings) is kept in ``out_dir/manifest.json``; re-running the same command skips the
    finished chunks, and within a chunk the events whose hits file exists (files are
    written atomically, hits last). Event ids count from ``first_event_id`` (TrackML's
    training events start at 1000).

    Returns the run's :class:`heplab.events.manifest.Manifest`.

    Raises
    ------
    OutputExistsError
        ``out_dir`` holds other files or a run with other settings (unless ``force``,
        which deletes that run's event files first).
    ConfigError
        Bad settings (events, pile-up, process, geometry).
    """
    import logging

    from heplab.events.manifest import MANIFEST_NAME
    from heplab.generation.production import (
        build_config,
        chunk_events,
        n_chunks,
        pileup_init_file,
    )
    from heplab.parallel import prepare_run_dir, run_chunks

    if events_per_chunk < 1:
        raise ConfigError(f"events_per_chunk must be >= 1, not {events_per_chunk}")
    geom = load_geometry(geometry)
    config = config or SimulationConfig()
    prod_log = logging.getLogger("heplab.generation.production")
    level = prod_log.level
    prod_log.setLevel(logging.ERROR)  # "pile-up without a detector" is what we want here
    try:
        prod = build_config(
            process,
            events=n_events,
            seed=seed,
            chunk_size=events_per_chunk,
            detector="none",
            pileup=pileup,
        )
    finally:
        prod_log.setLevel(level)
    run = {
        "production": prod,
        "geometry": geom.to_dict(),
        "simulation": config.to_dict(),
        "first_event_id": int(first_event_id),
    }
    out = Path(out_dir)
    if force and (out / MANIFEST_NAME).is_file():
        for path in [*out.glob("event*-*.csv"), *out.glob(".event*-*.csv.*.tmp")]:
            path.unlink()
        (out / MANIFEST_NAME).unlink()
        for path in out.glob(".pileup-mpi-*.dat"):
            path.unlink()
    manifest = prepare_run_dir(out, "trackml", run, n_chunks(prod), force=force)
    if float(prod["pileup"]) > 0 and not manifest.complete:
        pileup_init_file(prod, out)
    return run_chunks(
        out,
        manifest,
        _trackml_chunk,
        lambda i: (run, i, str(out)),
        units_per_chunk=lambda i: chunk_events(prod, i),
        workers=workers,
        progress=progress,
        description=f"tracking {prod['process']} mu={float(pileup):g}",
    )
