"""Shower shapes: the reconstruction-level features of a calorimeter shower.

Computed from the cell energies alone (``ShowerSet.showers``, visible energy per cell
[GeV]) and the geometry; the incident energy is never used, so the features can feed
particle identification and energy regression. For a shower with cell energies ``E_i``,
cell centres ``(x_i, y_i)`` [mm] and layer energies ``E_l``:

- ``log_esum``: ``ln(E_sum / GeV)`` with ``E_sum = sum_l E_l`` the visible energy;
- ``frac_<l>``: the layer fractions ``E_l / E_sum`` (electromagnetic showers die in the
  first layers, hadronic ones reach the back: the longitudinal profile);
- ``wx_<l>``, ``wy_<l>``: the energy-weighted widths ``sqrt(<x^2>_l - <x>_l^2)`` [mm]
  (a hadronic shower is wider than an electromagnetic one, R_M vs lambda_I);
- ``fmax_<l>``: the hottest cell's share of the layer, ``max_i E_i / E_l`` (core energy);
- ``nhit_<l>``: ``log(1 + number of cells above 0.1 MeV)``;
- ``eratio``: in the first (strip) layer, ``(E_1 - E_2) / (E_1 + E_2)`` of the highest and
  the second-highest *local maximum* of the strip profile (the layer summed over its rows),
  as ATLAS's E_ratio for pi0 -> gamma gamma rejection (ATLAS, arXiv:1908.00005): one peak
  for a photon (E_ratio near 1), two for a resolved pi0;
- ``depth``: the energy-weighted mean depth ``sum_l E_l d_l / E_sum`` [X0] and
  ``depth_width``, its spread [X0].

Empty layers give 0 widths and fractions. Features of CaloGAN's shower-shape studies
(arXiv:1705.02355, Fig. 3-5) and of the CaloChallenge high-level set (arXiv:2410.21611).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heplab.detector.calogeometry import CaloGeometry
from heplab.errors import DataError
from heplab.events.calo import ShowerSet

__all__ = ["HIT_THRESHOLD", "shower_shape_names", "shower_shapes", "strip_eratio"]

#: Visible cell energy [GeV] above which a cell counts as hit (0.1 MeV).
HIT_THRESHOLD = 1e-4

F64 = npt.NDArray[np.float64]


def shower_shape_names(geometry: CaloGeometry) -> list[str]:
    """The column names of :func:`shower_shapes` for ``geometry``, in order."""
    n = geometry.n_layers
    names = ["log_esum"]
    for key in ("frac", "wx", "wy", "fmax", "nhit"):
        names += [f"{key}_{i}" for i in range(n)]
    return [*names, "eratio", "depth", "depth_width"]


def strip_eratio(layer: npt.ArrayLike) -> F64:
    """E_ratio of the two highest local maxima of the strip profile, ``(N,)``.

    ``layer`` is ``(N, n_rows, n_strips)``: summed over the rows, the strip profile ``s_j``
    has local maxima where ``s_j >= s_{j-1}`` and ``s_j > s_{j+1}`` (edges count as lower
    neighbours); ``E_ratio = (E_1 - E_2) / (E_1 + E_2)`` with ``E_2 = 0`` (ratio 1) when
    there is a single maximum and 0 for an empty layer.
    """
    cells = np.asarray(layer, dtype=np.float64)
    if cells.ndim != 3:
        raise DataError(f"strip layer must be (N, rows, strips), not shape {cells.shape}")
    s = cells.sum(axis=1)
    left = np.pad(s, ((0, 0), (1, 0)), constant_values=-np.inf)[:, :-1]
    right = np.pad(s, ((0, 0), (0, 1)), constant_values=-np.inf)[:, 1:]
    peak = (s >= left) & (s > right) & (s > 0)
    values = np.where(peak, s, 0.0)
    top2 = -np.partition(-values, 1, axis=1)[:, :2] if s.shape[1] > 1 else values
    first = top2[:, 0]
    second = top2[:, 1] if top2.shape[1] > 1 else np.zeros_like(first)
    both = first + second
    return np.where(both > 0, (first - second) / np.where(both > 0, both, 1.0), 0.0)


def shower_shapes(showers: ShowerSet) -> F64:
    """The shower shapes (module doc) of every shower, ``(N, F)`` float64.

    Columns as :func:`shower_shape_names`; the strip E_ratio uses the first layer (rows x
    strips for cartesian layers, alpha x r for polar ones).
    """
    geometry = showers.geometry
    data = np.asarray(showers.showers)
    if data.ndim != 2 or data.shape[1] != geometry.n_voxels:
        raise DataError(
            f"showers of shape {data.shape} do not fit geometry {geometry.name!r} "
            f"({geometry.n_voxels} cells)"
        )
    n = data.shape[0]
    n_layers = geometry.n_layers
    e_layer = np.zeros((n, n_layers))
    cols: dict[str, list[F64]] = {k: [] for k in ("wx", "wy", "fmax", "nhit")}
    for i, (layer, part) in enumerate(zip(geometry.layers, geometry.layer_slices(), strict=True)):
        cells = np.clip(data[:, part].astype(np.float64), 0.0, None)
        x, y = (np.asarray(c, dtype=np.float64) for c in layer.cell_centres())
        total = cells.sum(axis=1)
        e_layer[:, i] = total
        ok = total > 0
        safe = np.where(ok, total, 1.0)
        for axis, pos in (("wx", x), ("wy", y)):
            mean = cells @ pos / safe
            second = cells @ (pos * pos) / safe
            cols[axis].append(np.where(ok, np.sqrt(np.clip(second - mean**2, 0.0, None)), 0.0))
        cols["fmax"].append(np.where(ok, cells.max(axis=1) / safe, 0.0))
        cols["nhit"].append(np.log1p((cells > HIT_THRESHOLD).sum(axis=1)))
    e_sum = e_layer.sum(axis=1)
    ok = e_sum > 0
    safe = np.where(ok, e_sum, 1.0)
    depths = np.array([la.depth_x0 for la in geometry.layers], dtype=np.float64)
    depth = np.where(ok, e_layer @ depths / safe, 0.0)
    depth2 = np.where(ok, e_layer @ depths**2 / safe, 0.0)
    first = geometry.layers[0]
    strips = np.clip(data[:, geometry.layer_slices()[0]].astype(np.float64), 0.0, None)
    eratio = strip_eratio(strips.reshape(n, *first.shape))
    parts: list[F64] = [np.log(np.clip(e_sum, 1e-6, None))[:, None], e_layer / safe[:, None]]
    for key in ("wx", "wy", "fmax", "nhit"):
        parts.append(np.stack(cols[key], axis=1))
    parts += [
        eratio[:, None],
        depth[:, None],
        np.sqrt(np.clip(depth2 - depth**2, 0.0, None))[:, None],
    ]
    return np.concatenate(parts, axis=1)
