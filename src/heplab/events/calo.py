"""Calorimeter shower sets and their HDF5 files (CaloGAN and CaloChallenge layouts).

In memory a :class:`ShowerSet` holds N single-particle showers in one
:class:`~heplab.detector.calogeometry.CaloGeometry`: the incident energies [GeV] and the
visible cell energies [GeV], flattened layer after layer in the geometry's order.

On disk (units as the public files, so a user's Geant4 samples read unchanged):

* CaloGAN layout (arXiv:1705.02355; ``geometry.layout == "calogan"``): datasets
  ``energy`` (N, 1) [GeV], ``layer_0`` (N, 3, 96), ``layer_1`` (N, 12, 12),
  ``layer_2`` (N, 12, 6) and ``overflow`` (N, 3), cell energies in MeV.
* CaloChallenge layout (arXiv:2410.21611; ``"calochallenge"``): ``incident_energies``
  (N, 1) [MeV] and ``showers`` (N, n_voxels) [MeV], voxels flattened as
  (layer, alpha, r) with r fastest (see :mod:`heplab.detector.calogeometry`).

heplab adds file attributes ``heplab_geometry`` (the geometry name),
``heplab_geometry_config`` (the geometry as JSON, so a user's own geometry reads back),
``particle`` and ``metadata`` (JSON), and, where present, the datasets ``pids`` (N,)
and ``extra/<name>`` (per-shower truth arrays such as the impact point). Public readers
ignore them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heplab.detector.calogeometry import (
    GEOMETRIES,
    CaloGeometry,
    geometry_from_dict,
    load_geometry,
)
from heplab.errors import ConfigError, DataError
from heplab.events._util import atomic_output

__all__ = [
    "PARTICLES",
    "PDG_IDS",
    "ShowerSet",
    "ShowerWriter",
    "concatenate_showers",
    "read_showers",
    "write_showers",
]

log = logging.getLogger(__name__)

#: Particles the shower engine simulates.
PARTICLES: tuple[str, ...] = ("e-", "gamma", "pi0", "pi+")
#: Their PDG ids (``ShowerSet.pids`` of a mixed set).
PDG_IDS: dict[str, int] = {"e-": 11, "gamma": 22, "pi0": 111, "pi+": 211}

_MEV = 1000.0
_VOXELS_TO_GEOMETRY = {6480: "ds2", 40500: "ds3"}


@dataclass
class ShowerSet:
    """N calorimeter showers of one geometry.

    Attributes
    ----------
    energies : ndarray (N,) float64
        Incident particle energy [GeV].
    showers : ndarray (N, n_voxels) float32
        Visible (sampled, calibrated as the geometry says) energy per cell [GeV], in the
        geometry's flattened order.
    geometry : CaloGeometry
    particle : str
        One of :data:`PARTICLES`, ``"mixed"`` (then ``pids`` is set) or ``"unknown"``
        (a file that does not say).
    pids : ndarray (N,) int64 or None
        PDG id of every shower of a mixed set.
    metadata : dict
        JSON-able provenance (engine settings, seed, spectrum, ...).
    overflow : ndarray (N, n_layers) float64 or None
        Energy outside the cells [GeV] (CaloGAN: lateral leakage per layer).
    extra : dict[str, ndarray]
        Per-shower truth arrays of length N (e.g. ``x0``, ``y0`` impact point [mm],
        ``visible_true``); sliced with the set.
    """

    energies: np.ndarray
    showers: np.ndarray
    geometry: CaloGeometry
    particle: str
    pids: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    overflow: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.energies = np.asarray(self.energies, dtype=np.float64).reshape(-1)
        self.showers = np.asarray(self.showers, dtype=np.float32)
        n = len(self.energies)
        if self.showers.ndim != 2 or self.showers.shape != (n, self.geometry.n_voxels):
            raise DataError(
                f"showers of shape {self.showers.shape} do not match {n} energies x "
                f"{self.geometry.n_voxels} voxels of geometry {self.geometry.name}"
            )
        if self.particle not in (*PARTICLES, "mixed", "unknown"):
            raise ConfigError(
                f"unknown particle {self.particle!r}: choose one of {', '.join(PARTICLES)}"
            )
        if self.pids is not None:
            self.pids = np.asarray(self.pids, dtype=np.int64).reshape(-1)
            if len(self.pids) != n:
                raise DataError(f"pids has {len(self.pids)} entries for {n} showers")
        elif self.particle == "mixed":
            raise DataError("a mixed shower set needs pids")
        if self.overflow is not None:
            self.overflow = np.asarray(self.overflow, dtype=np.float64)
            if self.overflow.shape != (n, self.geometry.n_layers):
                raise DataError(
                    f"overflow of shape {self.overflow.shape}, expected ({n}, {self.geometry.n_layers})"
                )
        for key, value in list(self.extra.items()):
            arr = np.asarray(value)
            if len(arr) != n:
                raise DataError(f"extra[{key!r}] has {len(arr)} entries for {n} showers")
            self.extra[key] = arr

    def __len__(self) -> int:
        return len(self.energies)

    def __getitem__(self, idx: Any) -> ShowerSet:
        """A new set with the selected showers (slice, boolean mask, index array, int)."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        return ShowerSet(
            energies=self.energies[idx],
            showers=self.showers[idx],
            geometry=self.geometry,
            particle=self.particle,
            pids=None if self.pids is None else self.pids[idx],
            metadata=dict(self.metadata),
            overflow=None if self.overflow is None else self.overflow[idx],
            extra={k: v[idx] for k, v in self.extra.items()},
        )

    @property
    def pid_array(self) -> npt.NDArray[np.int64]:
        """PDG id of every shower (from ``pids`` or ``particle``; 0 if unknown)."""
        if self.pids is not None:
            return self.pids
        return np.full(len(self), PDG_IDS.get(self.particle, 0), dtype=np.int64)

    def layer_energies(self) -> np.ndarray:
        """Visible energy per layer, (N, n_layers) [GeV]."""
        return self.geometry.layer_energies(self.showers)

    def total_energy(self) -> np.ndarray:
        """Visible energy of every shower, (N,) [GeV]."""
        return self.showers.sum(axis=1, dtype=np.float64)


def concatenate_showers(sets: list[ShowerSet]) -> ShowerSet:
    """Join shower sets of one geometry; different particles give a ``"mixed"`` set."""
    if not sets:
        raise ConfigError("nothing to concatenate")
    geometry = sets[0].geometry
    if any(s.geometry.to_dict() != geometry.to_dict() for s in sets):
        raise DataError("cannot concatenate shower sets of different geometries")
    particles = {s.particle for s in sets}
    particle = particles.pop() if len(particles) == 1 else "mixed"
    mixed = particle == "mixed" or any(s.pids is not None for s in sets)
    overflow = None
    if all(s.overflow is not None for s in sets):
        overflow = np.concatenate([s.overflow for s in sets if s.overflow is not None])
    keys = set.intersection(*(set(s.extra) for s in sets))
    return ShowerSet(
        energies=np.concatenate([s.energies for s in sets]),
        showers=np.concatenate([s.showers for s in sets]),
        geometry=geometry,
        particle=particle,
        pids=np.concatenate([s.pid_array for s in sets]) if mixed else None,
        metadata={"parts": [s.metadata for s in sets]},
        overflow=overflow,
        extra={k: np.concatenate([s.extra[k] for s in sets]) for k in sorted(keys)},
    )


# ---------------------------------------------------------------------------- writing
class ShowerWriter:
    """Write showers to one HDF5 file chunk by chunk (for samples larger than memory).

    >>> with ShowerWriter("big.h5", geometry, "e-", metadata={...}) as out:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         out.append(chunk)

    The layout and units are those of :func:`write_showers`; the file appears under its
    name only when the ``with`` block ends without an error (temporary name + rename).

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``force`` is false (when entering the block).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        geometry: CaloGeometry,
        particle: str,
        *,
        metadata: dict[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.geometry = geometry
        self.particle = particle
        self.metadata = dict(metadata or {})
        self.force = force
        self.n = 0
        self._atomic: Any = None
        self._file: Any = None

    def __enter__(self) -> ShowerWriter:
        import h5py

        self._atomic = atomic_output(self.path, overwrite=self.force)
        tmp = self._atomic.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def _dataset(self, name: str, row_shape: tuple[int, ...], dtype: Any, big: bool) -> Any:
        f = self._file
        if name not in f:
            opts: dict[str, Any] = {}
            if big:
                opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            rows = max(1, min(1024, int(4e6 // max(1, int(np.prod(row_shape))))))
            f.create_dataset(
                name,
                shape=(0, *row_shape),
                maxshape=(None, *row_shape),
                dtype=dtype,
                chunks=(rows, *row_shape),
                **opts,
            )
        return f[name]

    def _put(self, name: str, data: np.ndarray, dtype: Any, big: bool = False) -> None:
        ds = self._dataset(name, tuple(data.shape[1:]), dtype, big)
        start = ds.shape[0]
        ds.resize(start + len(data), axis=0)
        ds[start:] = data

    def append(self, shower_set: ShowerSet) -> None:
        """Add the showers of ``shower_set`` (same geometry) at the end of the file."""
        if self._file is None:
            raise RuntimeError("ShowerWriter.append outside its with-block")
        geometry = self.geometry
        if shower_set.geometry.n_voxels != geometry.n_voxels:
            raise DataError(
                f"{self.path}: cannot append showers of geometry {shower_set.geometry.name} "
                f"to a file of geometry {geometry.name}"
            )
        n = len(shower_set)
        overflow = shower_set.overflow
        if overflow is None:
            overflow = np.zeros((n, geometry.n_layers))
        if geometry.layout == "calogan":
            self._put("energy", shower_set.energies.reshape(-1, 1), np.float64)
            for layer, arr in zip(geometry.layers, geometry.split(shower_set.showers), strict=True):
                self._put(layer.name, (arr * _MEV).astype(np.float32), np.float32, big=True)
            self._put("overflow", (overflow * _MEV).astype(np.float32), np.float32)
        else:
            self._put("incident_energies", (shower_set.energies * _MEV).reshape(-1, 1), np.float64)
            self._put(
                "showers", (shower_set.showers * _MEV).astype(np.float32), np.float32, big=True
            )
            if shower_set.overflow is not None:
                self._put("overflow", overflow * _MEV, np.float64)
        if shower_set.pids is not None:
            self._put("pids", shower_set.pids, np.int64)
        for key, value in shower_set.extra.items():
            arr = np.asarray(value)
            self._put(f"extra/{key}", arr, arr.dtype)
        self.n += n

    def __exit__(self, *exc: Any) -> None:
        f, self._file = self._file, None
        try:
            if exc[0] is None:
                f.attrs["heplab_geometry"] = self.geometry.name
                f.attrs["heplab_geometry_config"] = json.dumps(self.geometry.to_dict())
                f.attrs["particle"] = self.particle
                f.attrs["metadata"] = json.dumps(self.metadata, default=_json_default)
                f.attrs["units"] = (
                    "energy GeV (CaloGAN layout); incident_energies, cells, overflow MeV"
                )
        finally:
            f.close()
            self._atomic.__exit__(*exc)
        if exc[0] is None:
            log.info(
                "wrote %d %s showers (%s) to %s",
                self.n,
                self.particle,
                self.geometry.name,
                self.path,
            )


def write_showers(
    path: str | os.PathLike[str], shower_set: ShowerSet, *, force: bool = False
) -> Path:
    """Write a shower set as HDF5 in its geometry's layout (units as the public files).

    Returns the path written. The file appears atomically (temporary name + rename).
    For samples larger than memory use :class:`ShowerWriter`.

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``force`` is false.
    """
    writer = ShowerWriter(
        path,
        shower_set.geometry,
        shower_set.particle,
        metadata=shower_set.metadata,
        force=force,
    )
    with writer:
        writer.append(shower_set)
    return writer.path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ---------------------------------------------------------------------------- reading
def _as_geometry(geometry: str | CaloGeometry) -> CaloGeometry:
    return geometry if isinstance(geometry, CaloGeometry) else load_geometry(geometry)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _file_geometry(f: Any, path: Path) -> CaloGeometry | None:
    if "heplab_geometry_config" in f.attrs:
        try:
            return geometry_from_dict(
                json.loads(_text(f.attrs["heplab_geometry_config"])), source=str(path)
            )
        except (ValueError, ConfigError) as exc:
            raise DataError(f"{path}: corrupt geometry attribute: {exc}") from None
    if "heplab_geometry" in f.attrs:
        name = _text(f.attrs["heplab_geometry"])
        if name in GEOMETRIES:
            return load_geometry(name)
    return None


def _read_array(f: Any, key: str, path: Path) -> np.ndarray:
    try:
        arr = np.asarray(f[key][()])
    except Exception as exc:  # h5py raises OSError/KeyError/... on damaged datasets
        raise DataError(f"{path}: cannot read dataset {key!r}: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: dataset {key!r} is not numeric ({arr.dtype})")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: dataset {key!r} contains NaN or infinite values")
    return arr


def read_showers(
    path: str | os.PathLike[str], geometry: str | CaloGeometry | None = None
) -> ShowerSet:
    """Read a CaloGAN- or CaloChallenge-layout HDF5 file (heplab's or a public one).

    The layout is sniffed from the dataset names. The geometry is, in order: the one
    heplab wrote into the file attributes; the ``geometry`` argument (checked against
    the file's shapes); for CaloGAN files ``calogan``; for CaloChallenge files the voxel
    count (6480 -> ``ds2``, 40500 -> ``ds3``). Energies are converted to GeV.

    Raises
    ------
    heplab.errors.DataError
        Missing or unreadable file, unknown layout, missing datasets, NaNs, shapes that
        do not match each other or the geometry.
    """
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: shower file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        keys = set(f.keys())
        geom = _file_geometry(f, path)
        if geom is None and geometry is not None:
            geom = _as_geometry(geometry)
        particle = _text(f.attrs.get("particle", "unknown"))
        if particle not in (*PARTICLES, "mixed"):
            particle = "unknown"
        try:
            metadata = json.loads(_text(f.attrs.get("metadata", "{}")))
        except ValueError:
            metadata = {}
        overflow = None
        if {"energy", "layer_0"} <= keys:
            if geom is None:
                geom = load_geometry("calogan")
            if geom.layout != "calogan":
                raise DataError(
                    f"{path}: a CaloGAN-layout file cannot be read with geometry {geom.name}"
                )
            energies = _read_array(f, "energy", path).reshape(-1).astype(np.float64)
            layers = []
            for layer in geom.layers:
                if layer.name not in keys:
                    raise DataError(f"{path}: dataset {layer.name!r} missing")
                arr = _read_array(f, layer.name, path)
                if arr.shape != (len(energies), *layer.shape):
                    raise DataError(
                        f"{path}: {layer.name} has shape {arr.shape}, expected "
                        f"({len(energies)}, {layer.shape[0]}, {layer.shape[1]})"
                    )
                layers.append(arr.astype(np.float32) / np.float32(_MEV))
            showers = geom.join(layers)
            if "overflow" in keys:
                overflow = _read_array(f, "overflow", path).astype(np.float64) / _MEV
                if overflow.shape != (len(energies), geom.n_layers):
                    raise DataError(f"{path}: overflow has shape {overflow.shape}")
        elif {"incident_energies", "showers"} <= keys:
            energies = _read_array(f, "incident_energies", path).reshape(-1) / _MEV
            raw = _read_array(f, "showers", path)
            if raw.ndim != 2 or len(raw) != len(energies):
                raise DataError(
                    f"{path}: showers of shape {raw.shape} do not match "
                    f"{len(energies)} incident energies"
                )
            if geom is None:
                name = _VOXELS_TO_GEOMETRY.get(raw.shape[1])
                if name is None:
                    raise DataError(
                        f"{path}: {raw.shape[1]} voxels per shower match no built-in geometry; "
                        "pass the geometry (name or YAML file)"
                    )
                geom = load_geometry(name)
            if raw.shape[1] != geom.n_voxels:
                raise DataError(
                    f"{path}: {raw.shape[1]} voxels per shower, geometry {geom.name} has "
                    f"{geom.n_voxels}"
                )
            showers = raw.astype(np.float32) / np.float32(_MEV)
            if "overflow" in keys:
                overflow = _read_array(f, "overflow", path).astype(np.float64) / _MEV
        else:
            raise DataError(
                f"{path}: neither the CaloGAN layout (energy, layer_0, ...) nor the "
                f"CaloChallenge layout (incident_energies, showers); found {sorted(keys)}"
            )
        if len(energies) and np.any(energies <= 0):
            raise DataError(f"{path}: incident energies must be > 0")
        pids = _read_array(f, "pids", path).astype(np.int64) if "pids" in keys else None
        extra: dict[str, np.ndarray] = {}
        if "extra" in keys and isinstance(f["extra"], h5py.Group):
            for key in f["extra"]:
                extra[key] = np.asarray(f["extra"][key][()])
    if particle == "mixed" and pids is None:
        particle = "unknown"
    try:
        return ShowerSet(
            energies=energies,
            showers=showers,
            geometry=geom,
            particle=particle,
            pids=pids,
            metadata=metadata if isinstance(metadata, dict) else {},
            overflow=overflow,
            extra=extra,
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
