"""Toy calorimeter showers for the evaluation and reweighting tests (numpy only, fast).

A GFlash-like toy: a gamma-distributed longitudinal profile whose maximum moves with
ln(E) and fluctuates per shower, an exponential radial profile that widens with depth,
uniform in alpha, gamma-distributed cell fluctuations and a 1/sqrt(E) sampling term. It is
not the heplab engine; it only has to give two samples of one distribution and "wrong"
generators with known defects.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from heplab.detector.calogeometry import CaloGeometry, geometry_from_dict
from heplab.events.calo import ShowerSet


def toy_geometry(n_layers: int = 8, n_alpha: int = 8, n_r: int = 5) -> CaloGeometry:
    """A small polar (CaloChallenge-like) geometry: ``n_layers`` of ``n_alpha x n_r``."""
    return geometry_from_dict(
        {
            "name": "toy",
            "layout": "calochallenge",
            "moliere_radius": 9.3,
            "radiation_length": 3.5,
            "layers": [
                {
                    "kind": "polar",
                    "shape": [n_alpha, n_r],
                    "thickness_x0": 24.0 / n_layers,
                    "r_edges": [4.65 * 2 * i for i in range(n_r + 1)],
                    "count": n_layers,
                }
            ],
        }
    )


def toy_showers(
    geometry: CaloGeometry,
    n: int,
    seed: int,
    *,
    depth_scale: float = 1.0,
    width_scale: float = 1.0,
) -> ShowerSet:
    """``n`` toy showers with incident energies log-uniform in 10-100 GeV.

    ``depth_scale`` stretches the longitudinal profile, ``width_scale`` the radial one
    (a mis-modelled generator).
    """
    rng = np.random.default_rng(seed)
    energy = np.exp(rng.uniform(np.log(10.0), np.log(100.0), n))
    t_max = (np.log(energy / 0.00743) - 0.5) * rng.lognormal(0.0, 0.08, n) * 0.45 * depth_scale
    b = 0.5 / depth_scale
    a = b * t_max + 1.0
    edges = geometry.layer_boundaries_x0
    cdf = stats.gamma.cdf(edges[None, :] * b, a[:, None])
    fractions = np.diff(cdf, axis=1)  # (n, n_layers)
    visible = energy * (1.0 + rng.normal(0.0, 0.1, n) / np.sqrt(energy))
    e_layer = visible[:, None] * fractions
    parts = []
    for index, layer in enumerate(geometry.layers):
        assert layer.r_edges is not None
        r_edges = np.asarray(layer.r_edges)
        radius = 4.0 * width_scale * (1.0 + 0.08 * layer.depth_x0)
        radius = radius * rng.lognormal(0.0, 0.1, n)
        cdf_r = 1.0 - np.exp(-r_edges[None, :] / radius[:, None]) * (
            1.0 + r_edges[None, :] / radius[:, None]
        )
        f_r = np.diff(cdf_r, axis=1)  # (n, n_r)
        n_alpha = layer.shape[0]
        mean = e_layer[:, index, None, None] * f_r[:, None, :] / n_alpha  # (n, 1, n_r)
        cells = mean * rng.gamma(8.0, 1.0 / 8.0, size=(n, n_alpha, f_r.shape[1]))
        cells[cells < 1e-4] = 0.0
        parts.append(cells.reshape(n, -1))
    showers = np.concatenate(parts, axis=1).astype(np.float32)
    return ShowerSet(energies=energy, showers=showers, geometry=geometry, particle="e-")


def shifted_deeper(sample: ShowerSet) -> ShowerSet:
    """Every shower moved one layer deeper (the last layer's energy is lost)."""
    geometry = sample.geometry
    n_first = geometry.layers[0].n_cells
    moved = np.zeros_like(sample.showers)
    moved[:, n_first:] = sample.showers[:, :-n_first]
    return ShowerSet(sample.energies.copy(), moved, geometry, sample.particle)


def scaled(sample: ShowerSet, factor: float) -> ShowerSet:
    """Every cell energy multiplied by ``factor``."""
    return ShowerSet(
        sample.energies.copy(),
        sample.showers * np.float32(factor),
        sample.geometry,
        sample.particle,
    )
