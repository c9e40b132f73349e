"""High-level shower features, their histograms and separation powers (CaloChallenge).

The features of one calorimeter shower (a row of ``ShowerSet.showers``, deposited energy per
cell in GeV) that the Fast Calorimeter Simulation Challenge compares between a generator and
the Geant4 reference (arXiv:2410.21611, section 4; CaloGAN's shower shapes,
arXiv:1705.02355, for the 3-layer geometry):

- ``e_layer_<l>``: energy deposited in layer ``l`` [GeV], ``E_l = sum_i E_i``;
- ``etot_einc``: ``E_tot / E_inc``, the visible energy over the incident energy;
- ``cx_layer_<l>``, ``cy_layer_<l>``: the centre of energy of layer ``l`` in x and y [mm],
  ``<x>_l = sum_i E_i x_i / E_l`` over the cells ``i`` of the layer, with ``(x_i, y_i)``
  the cell centres of :meth:`CaloLayer.cell_centres` (the CaloChallenge's "eta" and "phi"
  directions; for polar voxels ``x = r cos(alpha)``, ``y = r sin(alpha)``); 0 for an empty
  layer;
- ``wx_layer_<l>``, ``wy_layer_<l>``: the widths ``sqrt(<x^2>_l - <x>_l^2)`` [mm];
- ``sparsity_layer_<l>``: the fraction of the layer's cells above ``threshold`` [GeV]
  (default 0: cells with any energy);
- ``depth``: the energy-weighted mean depth of the shower ``sum_l E_l d_l / E_tot`` with
  ``d_l`` the depth of the layer centre [X0] (the longitudinal centre of gravity), and
  ``depth_width``: its spread ``sqrt(<d^2> - <d>^2)`` [X0];
- CaloGAN geometry only, ``eratio_layer_<l>``: ``(E_1st - E_2nd) / (E_1st + E_2nd)`` of the
  two hottest cells of the layer (0 when both are empty).

The separation power (the "triangular discrimination" of arXiv:2009.03796, eq. 15, used by
the CaloChallenge for every histogram) of two histograms normalised to unit sum, ``p`` and
``q``, is

    S = 1/2 * sum_b (p_b - q_b)^2 / (p_b + q_b),

0 for identical shapes and 1 for disjoint ones. The challenge computes it from
``density=True`` histograms multiplied by the bin widths, which is the same normalisation.
Here the bins of a feature come from the pooled 0.1 % and 99.9 % quantiles of the two samples
(values outside are folded into the first and last bins), so that two disjoint
distributions still land in different bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from heplab.errors import DataError

if TYPE_CHECKING:
    from heplab.detector.calogeometry import CaloGeometry
    from heplab.events.calo import ShowerSet

__all__ = [
    "FeatureTable",
    "feature_bins",
    "feature_label",
    "high_level_features",
    "histogram",
    "plot_feature",
    "separation_power",
    "separation_powers",
]

_LOG_FLOOR = 1e-8  # GeV: energies are log10(E + floor) in the classifier inputs


@dataclass(frozen=True)
class FeatureTable:
    """High-level features of a set of showers: one row per shower, one column per feature.

    ``kinds[j]`` names the family of column ``j`` (``"e_layer"``, ``"etot_einc"``, ``"cx"``,
    ``"cy"``, ``"wx"``, ``"wy"``, ``"sparsity"``, ``"depth"``, ``"depth_width"``,
    ``"eratio"``) and ``layers[j]`` its layer (``-1`` for whole-shower features);
    ``energies`` are the incident energies [GeV].
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    layers: tuple[int, ...]
    values: np.ndarray  # (N, F) float64
    energies: np.ndarray  # (N,) float64 [GeV]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> np.ndarray:
        """The values of feature ``name`` for every shower."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no feature {name!r}; features: {', '.join(self.names)}") from None

    def subset(self, index: np.ndarray | slice) -> FeatureTable:
        """The rows ``index`` (an index array, boolean mask or slice)."""
        return FeatureTable(
            self.names, self.kinds, self.layers, self.values[index], self.energies[index]
        )

    def classifier_inputs(self) -> np.ndarray:
        """The inputs of the high-level classifier and of FPD/KPD, ``(N, F + 1)`` float64.

        As the CaloChallenge's high-level classifier: ``log10(E_inc / GeV)`` first, then
        every feature, energies as ``log10(E / GeV + 1e-8)`` (layer energies span decades),
        the rest unchanged (the consumers standardise the columns).
        """
        x = self.values.copy()
        energy_like = np.array([k == "e_layer" for k in self.kinds], dtype=bool)
        x[:, energy_like] = np.log10(np.clip(x[:, energy_like], 0.0, None) + _LOG_FLOOR)
        return np.concatenate([np.log10(self.energies)[:, None], x], axis=1)


def _check_geometry(geometry: CaloGeometry, n_voxels: int) -> None:
    if geometry.n_voxels != n_voxels:
        raise DataError(
            f"showers have {n_voxels} cells but geometry {geometry.name!r} has {geometry.n_voxels}"
        )


def high_level_features(showers: ShowerSet, *, threshold: float = 0.0) -> FeatureTable:
    """The high-level features (see the module doc) of every shower of ``showers``.

    ``threshold`` [GeV] is the cell energy a cell must exceed to count in the sparsity.
    """
    geometry = showers.geometry
    data = np.asarray(showers.showers)
    if data.ndim != 2:
        raise DataError(f"showers must be a 2-d array (N, n_voxels), not shape {data.shape}")
    _check_geometry(geometry, data.shape[1])
    energies = np.asarray(showers.energies, dtype=np.float64)
    if energies.shape != (data.shape[0],):
        raise DataError(f"{energies.shape[0]} incident energies for {data.shape[0]} showers")
    if np.any(energies <= 0):
        raise DataError("incident energies must be > 0 GeV")
    calogan = geometry.name == "calogan" or geometry.layout == "calogan"

    names: list[str] = []
    kinds: list[str] = []
    layers: list[int] = []
    columns: list[np.ndarray] = []

    def add(name: str, kind: str, layer: int, value: np.ndarray) -> None:
        names.append(name)
        kinds.append(kind)
        layers.append(layer)
        columns.append(value)

    n_layers = len(geometry.layers)
    e_layer = np.zeros((data.shape[0], n_layers))
    depths = np.array([layer.depth_x0 for layer in geometry.layers], dtype=np.float64)
    per_layer: dict[str, list[np.ndarray]] = {k: [] for k in ("cx", "cy", "wx", "wy", "sp", "er")}
    for index, (layer, part) in enumerate(
        zip(geometry.layers, geometry.layer_slices(), strict=True)
    ):
        cells = data[:, part].astype(np.float64)
        x, y = (np.asarray(c, dtype=np.float64) for c in layer.cell_centres())
        total = cells.sum(axis=1)
        e_layer[:, index] = total
        safe = np.where(total > 0, total, 1.0)
        for axis, pos in (("x", x), ("y", y)):
            mean = np.where(total > 0, cells @ pos / safe, 0.0)
            second = np.where(total > 0, cells @ (pos * pos) / safe, 0.0)
            per_layer["c" + axis].append(mean)
            per_layer["w" + axis].append(np.sqrt(np.clip(second - mean * mean, 0.0, None)))
        per_layer["sp"].append((cells > threshold).mean(axis=1))
        if calogan:
            if cells.shape[1] >= 2:
                top2 = -np.partition(-cells, 1, axis=1)[:, :2]
            else:
                top2 = np.concatenate([cells, np.zeros_like(cells)], axis=1)
            both = top2[:, 0] + top2[:, 1]
            per_layer["er"].append(
                np.where(both > 0, (top2[:, 0] - top2[:, 1]) / np.where(both > 0, both, 1.0), 0.0)
            )

    for index in range(n_layers):
        add(f"e_layer_{index}", "e_layer", index, e_layer[:, index])
    e_tot = e_layer.sum(axis=1)
    add("etot_einc", "etot_einc", -1, e_tot / energies)
    for key, kind in (("cx", "cx"), ("cy", "cy"), ("wx", "wx"), ("wy", "wy"), ("sp", "sparsity")):
        label = "sparsity" if key == "sp" else key
        for index in range(n_layers):
            add(f"{label}_layer_{index}", kind, index, per_layer[key][index])
    safe_tot = np.where(e_tot > 0, e_tot, 1.0)
    depth = np.where(e_tot > 0, e_layer @ depths / safe_tot, 0.0)
    depth2 = np.where(e_tot > 0, e_layer @ (depths * depths) / safe_tot, 0.0)
    add("depth", "depth", -1, depth)
    add("depth_width", "depth_width", -1, np.sqrt(np.clip(depth2 - depth * depth, 0.0, None)))
    if calogan:
        for index in range(n_layers):
            add(f"eratio_layer_{index}", "eratio", index, per_layer["er"][index])

    values = np.stack(columns, axis=1) if columns else np.zeros((data.shape[0], 0))
    return FeatureTable(tuple(names), tuple(kinds), tuple(layers), values, energies)


def feature_bins(*samples: np.ndarray, n_bins: int = 50) -> np.ndarray:
    """Common bin edges of samples of one feature: ``n_bins`` equal bins between the pooled
    0.1 % and 99.9 % quantiles (a degenerate range is widened by +-0.5)."""
    pooled = np.concatenate([np.asarray(s, np.float64).ravel() for s in samples])
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        return np.linspace(-0.5, 0.5, n_bins + 1)
    lo, hi = (float(v) for v in np.quantile(pooled, [0.001, 0.999]))
    if not hi > lo:
        lo, hi = float(pooled.min()), float(pooled.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n_bins + 1)


def histogram(
    values: np.ndarray, bins: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted counts of ``values`` in ``bins``, values outside folded into the end bins."""
    v = np.clip(np.asarray(values, np.float64), bins[0], bins[-1])
    counts, _ = np.histogram(v, bins=bins, weights=weights)
    return counts.astype(np.float64)


def separation_power(first: np.ndarray, second: np.ndarray) -> float:
    """``S = 1/2 sum (p - q)^2 / (p + q)`` of two histograms (counts), each normalised to unit
    sum: 0 for identical shapes, 1 for disjoint ones (arXiv:2009.03796, eq. 15)."""
    h1 = np.asarray(first, np.float64)
    h2 = np.asarray(second, np.float64)
    if h1.shape != h2.shape:
        raise ValueError(f"histograms differ in shape: {h1.shape} and {h2.shape}")
    s1, s2 = h1.sum(), h2.sum()
    if s1 <= 0 or s2 <= 0:
        raise ValueError("separation power needs two histograms with positive content")
    p, q = h1 / s1, h2 / s2
    both = p + q
    filled = both > 0
    return float(0.5 * np.sum((p[filled] - q[filled]) ** 2 / both[filled]))


def separation_powers(
    reference: FeatureTable,
    other: FeatureTable,
    *,
    other_weights: np.ndarray | None = None,
    n_bins: int = 50,
    bins: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Separation power of every feature between ``reference`` and ``other``.

    ``bins`` fixes the binning per feature (e.g. to compare a generator and the floor on the
    same bins); missing features get :func:`feature_bins` of the two samples.
    """
    if reference.names != other.names:
        raise DataError("the two feature tables have different features")
    out: dict[str, float] = {}
    for j, name in enumerate(reference.names):
        edges = (bins or {}).get(name)
        if edges is None:
            edges = feature_bins(reference.values[:, j], other.values[:, j], n_bins=n_bins)
        out[name] = separation_power(
            histogram(reference.values[:, j], edges),
            histogram(other.values[:, j], edges, other_weights),
        )
    return out


_UNITS = {
    "e_layer": "GeV",
    "cx": "mm",
    "cy": "mm",
    "wx": "mm",
    "wy": "mm",
    "depth": "X0",
    "depth_width": "X0",
}


def feature_label(name: str, kind: str) -> str:
    """An axis label with the unit of feature ``name``."""
    unit = _UNITS.get(kind)
    return f"{name} [{unit}]" if unit else name


def plot_feature(
    name: str,
    kind: str,
    bins: np.ndarray,
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    generated_weights: np.ndarray | None = None,
    floor: np.ndarray | None = None,
    labels: Sequence[str] = ("reference", "generated", "reference, other half"),
    annotation: str = "",
) -> Any:
    """A normalised histogram of one feature, generated vs reference, with a ratio panel
    (generated / reference) below; ``floor`` (a second reference sample) is drawn dashed."""
    import matplotlib.pyplot as plt
    import mplhep

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    h_ref = histogram(reference, bins)
    h_gen = histogram(generated, bins, generated_weights)
    n_ref, n_gen = max(h_ref.sum(), 1e-300), max(h_gen.sum(), 1e-300)
    mplhep.histplot(h_ref / n_ref, bins, ax=top, label=labels[0], color="black")
    mplhep.histplot(h_gen / n_gen, bins, ax=top, label=labels[1], color="tab:red")
    ratio_ref = np.where(h_ref > 0, h_ref / n_ref, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        bottom.stairs((h_gen / n_gen) / ratio_ref, bins, color="tab:red")
        if floor is not None:
            h_floor = histogram(floor, bins)
            n_floor = max(h_floor.sum(), 1e-300)
            mplhep.histplot(
                h_floor / n_floor, bins, ax=top, label=labels[2], color="gray", linestyle="--"
            )
            bottom.stairs((h_floor / n_floor) / ratio_ref, bins, color="gray", linestyle="--")
    top.set_ylim(0.0, 1.5 * max(float((h_ref / n_ref).max()), float((h_gen / n_gen).max()), 1e-12))
    bottom.axhline(1.0, color="black", linewidth=0.8)
    bottom.set_ylim(0.5, 1.5)
    bottom.set_ylabel("ratio")
    bottom.set_xlabel(feature_label(name, kind))
    top.set_ylabel("fraction of showers")
    top.legend(fontsize="small", title=annotation or None, title_fontsize="small")
    return fig
