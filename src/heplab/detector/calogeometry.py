"""Calorimeter geometries for shower simulation and the generative fast-simulation tasks.

A :class:`CaloGeometry` is a stack of readout layers along the particle direction z (the
particle enters the front face at z = 0, normally, at the transverse origin x = y = 0).
Each :class:`CaloLayer` is either

* ``cartesian``: an ``(n_y, n_x)`` grid of rectangular cells of size ``(dy, dx)`` [mm],
  centred on the axis (CaloGAN: eta x phi cells, stored as images ``(N, n_y, n_x)``), or
* ``polar``: ``(n_alpha, n_r)`` voxels, alpha bins of equal width 2 pi / n_alpha between
  -pi and pi, radial bins with edges ``r_edges`` [mm] (CaloChallenge datasets 2 and 3).

Flattening order (the file order, one shower = one vector of ``n_voxels`` values):
layer after layer; inside a layer row-major over ``shape``. For polar layers this is
alpha-major, r fastest: index = layer * n_alpha * n_r + alpha * n_r + r, which is the
CaloChallenge convention ("the first entries correspond to the radial bins of the first
angular slice in the first layer", CaloChallenge homepage and its ``XMLHandler``, where the
alpha bin centres run from -pi to pi and a voxel sits at x = r cos(alpha), y = r sin(alpha)).

Built-in geometries (``heplab/detector/geometries/*.yaml``):

* ``calogan``: the CaloGAN 3-layer Pb/LAr sampling calorimeter (arXiv:1705.02355,
  arXiv:1712.10321): a 480 mm cube, layers 90 / 347 / 43 mm deep with 3 x 96 cells of
  160 x 5 mm, 12 x 12 of 40 x 40 mm, 12 x 6 of 40 x 80 mm (phi x eta).
* ``ds2``, ``ds3``: CaloChallenge datasets 2 and 3 (arXiv:2410.21611): 45 Si/W layers,
  16 x 9 and 50 x 18 (alpha x r) voxels, r edges in steps of 4.65 mm and 2.325 mm up to
  41.85 mm (the challenge's ``binning_dataset_{2,3}.xml``).
* ``endcap``: a highly granular Si/W endcap (CALICE/CMS-HGCAL-like, heplab's own choice)
  for clustering studies with several showers per event.

Material constants (radiation length X0, Moliere radius, critical energy, effective Z,
nuclear interaction length lambda_I, sampling fractions) are in the YAML files with their
sources; lengths are in mm, energies in GeV.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heplab.errors import ConfigError, DataError

__all__ = [
    "GEOMETRIES",
    "CaloGeometry",
    "CaloLayer",
    "geometry_from_dict",
    "load_geometry",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: The built-in geometries (``load_geometry(name)``).
GEOMETRIES: tuple[str, ...] = ("calogan", "ds2", "ds3", "endcap")

_KINDS = ("cartesian", "polar")
_LAYOUTS = ("calogan", "calochallenge")


@dataclass(frozen=True)
class CaloLayer:
    """One readout layer.

    Attributes
    ----------
    name : str
        ``"layer_0"``, ``"layer_1"``, ... (the CaloGAN dataset names).
    kind : str
        ``"cartesian"`` (``shape = (n_y, n_x)``) or ``"polar"`` (``shape = (n_alpha, n_r)``).
    shape : tuple[int, int]
        Cells per layer, in the file's row-major order.
    thickness_x0 : float
        Depth of the layer (absorber + active) in radiation lengths.
    depth_x0 : float
        Depth of the layer centre behind the front face [X0].
    sampling_fraction : float
        Fraction of the energy deposited in the layer that the readout sees (the active
        medium's share for an electromagnetic shower; 1 where the file stores the total
        deposited energy).
    cell_size : tuple[float, float]
        Cartesian: ``(dy, dx)`` [mm]; polar: ``(2 pi / n_alpha [rad], dr [mm])`` (dr of the
        first radial bin where bins are not uniform).
    r_edges : tuple[float, ...] | None
        Polar layers: radial bin edges [mm] (``n_r + 1`` values); ``None`` for cartesian.
    thickness_mm : float
        Physical depth of the layer [mm] (0 when unknown).
    front_x0 : float
        Depth of the layer's front face [X0].
    """

    name: str
    kind: str
    shape: tuple[int, int]
    thickness_x0: float
    depth_x0: float
    sampling_fraction: float
    cell_size: tuple[float, float]
    r_edges: tuple[float, ...] | None = None
    thickness_mm: float = 0.0
    front_x0: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"layer {self.name}: kind must be one of {_KINDS}, not {self.kind!r}")
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ConfigError(f"layer {self.name}: shape must be two positive integers")
        if self.thickness_x0 <= 0:
            raise ConfigError(f"layer {self.name}: thickness_x0 must be > 0")
        if not 0 < self.sampling_fraction <= 1:
            raise ConfigError(f"layer {self.name}: sampling_fraction must be in (0, 1]")
        if self.kind == "polar":
            if self.r_edges is None or len(self.r_edges) != self.shape[1] + 1:
                raise ConfigError(
                    f"layer {self.name}: a polar layer needs n_r + 1 = {self.shape[1] + 1} r_edges"
                )
            if any(b <= a for a, b in zip(self.r_edges, self.r_edges[1:], strict=False)):
                raise ConfigError(f"layer {self.name}: r_edges must increase")
            if self.r_edges[0] < 0:
                raise ConfigError(f"layer {self.name}: r_edges must be >= 0")
        elif min(self.cell_size) <= 0:
            raise ConfigError(f"layer {self.name}: cell sizes must be > 0")

    @property
    def n_cells(self) -> int:
        """Number of cells (voxels) in the layer."""
        return int(self.shape[0] * self.shape[1])

    @property
    def back_x0(self) -> float:
        """Depth of the layer's back face [X0]."""
        return self.front_x0 + self.thickness_x0

    @property
    def half_extent(self) -> tuple[float, float]:
        """Half widths (y, x) of a cartesian layer, or (r_max, r_max) of a polar one [mm]."""
        if self.kind == "polar":
            assert self.r_edges is not None
            return (self.r_edges[-1], self.r_edges[-1])
        return (0.5 * self.shape[0] * self.cell_size[0], 0.5 * self.shape[1] * self.cell_size[1])

    def cell_centres(self) -> tuple[F64, F64]:
        """(x, y) [mm] of every cell centre, flattened in the file's order.

        Cartesian: row index iy along y, column ix along x, both centred on the axis.
        Polar: alpha centres between -pi and pi, radial bin mid-points, x = r cos(alpha),
        y = r sin(alpha) (as the CaloChallenge ``XMLHandler``).
        """
        n0, n1 = self.shape
        if self.kind == "cartesian":
            dy, dx = self.cell_size
            y = (np.arange(n0) - 0.5 * (n0 - 1)) * dy
            x = (np.arange(n1) - 0.5 * (n1 - 1)) * dx
            yy, xx = np.meshgrid(y, x, indexing="ij")
            return xx.ravel().astype(np.float64), yy.ravel().astype(np.float64)
        assert self.r_edges is not None
        edges = np.asarray(self.r_edges, dtype=np.float64)
        r_mid = 0.5 * (edges[:-1] + edges[1:])
        a_edges = np.linspace(-math.pi, math.pi, n0 + 1)
        a_mid = 0.5 * (a_edges[:-1] + a_edges[1:])
        aa, rr = np.meshgrid(a_mid, r_mid, indexing="ij")
        return (rr * np.cos(aa)).ravel(), (rr * np.sin(aa)).ravel()

    def cell_areas(self) -> F64:
        """Area [mm^2] of every cell, flattened in the file's order."""
        n0, n1 = self.shape
        if self.kind == "cartesian":
            return np.full(n0 * n1, self.cell_size[0] * self.cell_size[1])
        assert self.r_edges is not None
        edges = np.asarray(self.r_edges, dtype=np.float64)
        ring = math.pi * (edges[1:] ** 2 - edges[:-1] ** 2) / n0
        return np.tile(ring, n0)

    def locate(self, x: npt.ArrayLike, y: npt.ArrayLike) -> I64:
        """Flat cell index (within the layer) of points (x, y) [mm]; -1 outside the layer."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        n0, n1 = self.shape
        if self.kind == "cartesian":
            dy, dx = self.cell_size
            iy = np.floor(ya / dy + 0.5 * n0).astype(np.int64)
            ix = np.floor(xa / dx + 0.5 * n1).astype(np.int64)
            inside = (iy >= 0) & (iy < n0) & (ix >= 0) & (ix < n1)
            return np.where(inside, iy * n1 + ix, -1)
        assert self.r_edges is not None
        r = np.hypot(xa, ya)
        ir = np.searchsorted(np.asarray(self.r_edges), r, side="right") - 1
        alpha = np.arctan2(ya, xa)
        ia = np.floor((alpha + math.pi) / (2 * math.pi) * n0).astype(np.int64)
        ia = np.clip(ia, 0, n0 - 1)
        inside = (ir >= 0) & (ir < n1)
        return np.where(inside, ia * n1 + ir, -1)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of this layer (``geometry_from_dict`` reads it back)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape),
            "thickness_x0": self.thickness_x0,
            "sampling_fraction": self.sampling_fraction,
            "thickness_mm": self.thickness_mm,
        }
        if self.kind == "polar":
            out["r_edges"] = list(self.r_edges or ())
        else:
            out["cell_size"] = list(self.cell_size)
        return out


@dataclass(frozen=True)
class CaloGeometry:
    """A longitudinally segmented sampling calorimeter and its file layout.

    Attributes
    ----------
    name : str
        ``"calogan"``, ``"ds2"``, ``"ds3"``, ``"endcap"`` or a user's name.
    layout : str
        File layout of :func:`heplab.events.calo.write_showers`: ``"calogan"`` (one image
        dataset per layer + ``overflow``) or ``"calochallenge"`` (flattened ``showers``).
    layers : tuple[CaloLayer, ...]
        Front to back.
    moliere_radius : float
        Effective Moliere radius R_M [mm] (sets the radial shower size).
    radiation_length : float
        Effective radiation length X0 [mm] of the absorber/active stack.
    critical_energy : float
        Effective critical energy E_c [GeV] (GFlash: y = E / E_c).
    z_eff : float
        Effective atomic number (GFlash profile parameters).
    interaction_length : float
        Nuclear interaction length lambda_I [mm] (pion first interaction, hadronic depth).
    em_resolution : float
        Stochastic term a of the sampling fluctuations sigma/E = a / sqrt(E [GeV]).
    mip_fraction : float
        Sampling fraction for minimum-ionising particles (the visible share of a MIP's loss).
    mip_dedx : float
        Energy a MIP loses per radiation length of the stack [GeV / X0].
    noise : float
        Gaussian electronic noise per cell [GeV] (0: none).
    threshold : float
        Zero suppression: cells below this visible energy [GeV] are set to 0.
    description : str
        One line for humans (materials and sources).
    """

    name: str
    layout: str
    layers: tuple[CaloLayer, ...]
    moliere_radius: float
    radiation_length: float
    critical_energy: float = 0.00743
    z_eff: float = 82.0
    interaction_length: float = 175.9
    em_resolution: float = 0.1
    mip_fraction: float = 0.25
    mip_dedx: float = 0.00713
    noise: float = 0.0
    threshold: float = 0.0
    description: str = ""
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in _LAYOUTS:
            raise ConfigError(f"geometry {self.name}: layout must be one of {_LAYOUTS}")
        if not self.layers:
            raise ConfigError(f"geometry {self.name}: no layers")
        for value, what in (
            (self.moliere_radius, "moliere_radius"),
            (self.radiation_length, "radiation_length"),
            (self.critical_energy, "critical_energy"),
            (self.interaction_length, "interaction_length"),
        ):
            if not value > 0:
                raise ConfigError(f"geometry {self.name}: {what} must be > 0")
        if self.noise < 0 or self.threshold < 0 or self.em_resolution < 0:
            raise ConfigError(f"geometry {self.name}: noise, threshold, em_resolution must be >= 0")
        if self.layout == "calogan" and any(la.kind != "cartesian" for la in self.layers):
            raise ConfigError(f"geometry {self.name}: the calogan layout needs cartesian layers")
        offsets = np.concatenate([[0], np.cumsum([la.n_cells for la in self.layers])])
        object.__setattr__(self, "_offsets", tuple(int(o) for o in offsets))

    # ------------------------------------------------------------------ sizes
    @property
    def n_voxels(self) -> int:
        """Length of the flattened shower vector."""
        return self._offsets[-1]

    @property
    def n_layers(self) -> int:
        """Number of readout layers."""
        return len(self.layers)

    @property
    def depth_x0(self) -> float:
        """Total depth of the calorimeter [X0]."""
        return self.layers[-1].back_x0

    @property
    def depth_lambda(self) -> float:
        """Total depth of the calorimeter in nuclear interaction lengths."""
        return self.depth_x0 * self.radiation_length / self.interaction_length

    @property
    def layer_boundaries_x0(self) -> F64:
        """Front face of every layer and the back face of the last [X0] (n_layers + 1)."""
        return np.array([la.front_x0 for la in self.layers] + [self.depth_x0])

    # ------------------------------------------------------------------ views
    def layer_slices(self) -> list[slice]:
        """Slices of the flattened shower vector, one per layer."""
        o = self._offsets
        return [slice(o[i], o[i + 1]) for i in range(len(self.layers))]

    def _check(self, showers: np.ndarray) -> np.ndarray:
        arr = np.asarray(showers)
        if arr.ndim != 2 or arr.shape[1] != self.n_voxels:
            raise DataError(
                f"geometry {self.name}: showers of shape {arr.shape} do not have "
                f"{self.n_voxels} voxels per shower"
            )
        return arr

    def layer_energies(self, showers: np.ndarray) -> np.ndarray:
        """Energy per layer, ``(N, n_layers)``, in the units of ``showers``."""
        arr = self._check(showers)
        return np.add.reduceat(arr, np.asarray(self._offsets[:-1]), axis=1)

    def split(self, showers: np.ndarray) -> list[np.ndarray]:
        """Per-layer views ``(N, *layer.shape)`` of flattened showers ``(N, n_voxels)``."""
        arr = self._check(showers)
        return [
            arr[:, s].reshape(len(arr), *la.shape)
            for s, la in zip(self.layer_slices(), self.layers, strict=True)
        ]

    def join(self, layers: list[np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`split`: per-layer arrays -> ``(N, n_voxels)``."""
        if len(layers) != len(self.layers):
            raise DataError(f"geometry {self.name}: {len(layers)} layers, expected {self.n_layers}")
        n = len(layers[0])
        parts = []
        for arr, la in zip(layers, self.layers, strict=True):
            a = np.asarray(arr)
            if a.shape[1:] != la.shape or len(a) != n:
                raise DataError(
                    f"geometry {self.name}: {la.name} has shape {a.shape}, expected (N, *{la.shape})"
                )
            parts.append(a.reshape(n, -1))
        return np.concatenate(parts, axis=1)

    def cell_centres(self) -> tuple[F64, F64, F64]:
        """(x, y, depth_x0) of every voxel in the flattened order [mm, mm, X0]."""
        xs, ys, zs = [], [], []
        for la in self.layers:
            x, y = la.cell_centres()
            xs.append(x)
            ys.append(y)
            zs.append(np.full(la.n_cells, la.depth_x0))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(zs)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of this geometry (``geometry_from_dict`` reads it back)."""
        return {
            "name": self.name,
            "layout": self.layout,
            "description": self.description,
            "moliere_radius": self.moliere_radius,
            "radiation_length": self.radiation_length,
            "critical_energy": self.critical_energy,
            "z_eff": self.z_eff,
            "interaction_length": self.interaction_length,
            "em_resolution": self.em_resolution,
            "mip_fraction": self.mip_fraction,
            "mip_dedx": self.mip_dedx,
            "noise": self.noise,
            "threshold": self.threshold,
            "layers": [la.to_dict() for la in self.layers],
        }


_GEOMETRY_KEYS = {
    "moliere_radius",
    "radiation_length",
    "critical_energy",
    "z_eff",
    "interaction_length",
    "em_resolution",
    "mip_fraction",
    "mip_dedx",
    "noise",
    "threshold",
}
_LAYER_KEYS = {
    "name",
    "kind",
    "shape",
    "thickness_x0",
    "thickness_mm",
    "sampling_fraction",
    "cell_size",
    "r_edges",
    "count",
}


def geometry_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> CaloGeometry:
    """Build a :class:`CaloGeometry` from its YAML mapping.

    Layers are listed front to back; an entry with ``count: n`` stands for ``n`` identical
    layers. Layer depths (``front_x0``, ``depth_x0``) are computed from the thicknesses,
    names default to ``layer_<i>``. Polar layers take ``r_edges`` [mm]; cartesian ones
    ``cell_size: [dy, dx]`` [mm].

    Raises
    ------
    heplab.errors.ConfigError
        Missing or unknown keys, impossible values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a geometry must be a mapping")
    required = {"name", "layout", "layers", "moliere_radius", "radiation_length"}
    missing = required - set(data)
    if missing:
        raise ConfigError(f"{source}: geometry lacks {sorted(missing)}")
    unknown = set(data) - required - _GEOMETRY_KEYS - {"description"}
    if unknown:
        raise ConfigError(f"{source}: unknown geometry keys {sorted(unknown)}")
    entries = data["layers"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'layers' must be a non-empty list")
    layers: list[CaloLayer] = []
    front = 0.0
    for entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: every layer must be a mapping")
        bad = set(entry) - _LAYER_KEYS
        if bad:
            raise ConfigError(f"{source}: unknown layer keys {sorted(bad)}")
        try:
            count = int(entry.get("count", 1))
            kind = str(entry["kind"])
            shape = tuple(int(v) for v in entry["shape"])
            thickness = float(entry["thickness_x0"])
            fraction = float(entry.get("sampling_fraction", 1.0))
            thickness_mm = float(entry.get("thickness_mm", 0.0))
            r_edges = tuple(float(v) for v in entry["r_edges"]) if "r_edges" in entry else None
            if kind == "polar":
                if r_edges is None:
                    raise ConfigError(f"{source}: a polar layer needs r_edges")
                cell = (2 * math.pi / shape[0], r_edges[1] - r_edges[0])
            else:
                cell_size = tuple(float(v) for v in entry["cell_size"])
                if len(cell_size) != 2:
                    raise ConfigError(f"{source}: cell_size takes [dy, dx]")
                cell = (cell_size[0], cell_size[1])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{source}: bad layer entry {entry!r}: {exc}") from None
        if count < 1 or len(shape) != 2:
            raise ConfigError(f"{source}: bad layer entry {entry!r}")
        for _ in range(count):
            index = len(layers)
            name = str(entry["name"]) if "name" in entry and count == 1 else f"layer_{index}"
            layers.append(
                CaloLayer(
                    name=name,
                    kind=kind,
                    shape=(shape[0], shape[1]),
                    thickness_x0=thickness,
                    depth_x0=front + 0.5 * thickness,
                    sampling_fraction=fraction,
                    cell_size=cell,
                    r_edges=r_edges,
                    thickness_mm=thickness_mm,
                    front_x0=front,
                )
            )
            front += thickness
    kwargs: dict[str, Any] = {}
    for key in _GEOMETRY_KEYS:
        if key in data:
            try:
                kwargs[key] = float(data[key])
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: {key} must be a number") from None
    return CaloGeometry(
        name=str(data["name"]),
        layout=str(data["layout"]),
        layers=tuple(layers),
        description=str(data.get("description", "")),
        **kwargs,
    )


def load_geometry(name_or_path: str | os.PathLike[str]) -> CaloGeometry:
    """A built-in geometry by name (:data:`GEOMETRIES`) or a user's YAML file.

    Raises
    ------
    heplab.errors.ConfigError
        Unknown name, or a file whose contents are not a valid geometry.
    heplab.errors.DataError
        A path that does not exist or is not readable YAML.
    """
    import yaml

    text = str(name_or_path)
    if text in GEOMETRIES:
        raw = (
            resources.files("heplab.detector")
            .joinpath("geometries", f"{text}.yaml")
            .read_text("utf-8")
        )
        return geometry_from_dict(yaml.safe_load(raw), source=f"geometry {text}")
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml") and not path.exists():
        raise ConfigError(
            f"unknown calorimeter geometry {text!r}: choose one of {', '.join(GEOMETRIES)} "
            "or give a YAML file"
        )
    if not path.is_file():
        raise DataError(f"{path}: geometry file not found")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the geometry: {exc}") from None
    return geometry_from_dict(data, source=str(path))
