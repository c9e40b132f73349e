"""A tiny toy calorimeter for the generative-model tests (numpy only, fast).

3 cartesian layers of 4 x 4 cells (48 voxels, CaloGAN file layout). Per shower: visible
energy ``E (1 - 0.08 ln(E / 10 GeV)) (1 + 0.1 / sqrt(E) N(0, 1))`` (a leakage that grows
with energy); layer fractions from a longitudinal profile whose
depth grows with ln E and fluctuates per shower; a lateral exponential profile whose width
grows with depth and fluctuates per shower; gamma-distributed cell fluctuations; cells below
1 MeV set to 0 (the zero suppression the generators must reproduce). It is not the heplab
shower engine; it only has to be a learnable, energy-dependent distribution.
"""

from __future__ import annotations

import numpy as np

from heplab.detector.calogeometry import CaloGeometry, geometry_from_dict
from heplab.events.calo import ShowerSet

THRESHOLD = 1e-3  # GeV


def toy_geometry() -> CaloGeometry:
    return geometry_from_dict(
        {
            "name": "toy3x4x4",
            "layout": "calogan",
            "moliere_radius": 20.0,
            "radiation_length": 5.6,
            "layers": [
                {"kind": "cartesian", "shape": [4, 4], "thickness_x0": t, "cell_size": [10.0, 10.0]}
                for t in (3.0, 16.0, 3.0)
            ],
        }
    )


def toy_showers(n: int, seed: int, energies: np.ndarray | None = None) -> ShowerSet:
    geometry = toy_geometry()
    rng = np.random.default_rng(seed)
    e = energies if energies is not None else np.exp(rng.uniform(np.log(10), np.log(100), n))
    e = np.asarray(e, dtype=np.float64)
    n = len(e)
    # response falling with ln E (longitudinal leakage) and a 10 %/sqrt(E) sampling term
    visible = e * (1 - 0.08 * np.log(e / 10)) * (1 + 0.1 * rng.normal(size=n) / np.sqrt(e))
    depth = 0.15 * np.log(e) * rng.lognormal(0, 0.1, n)  # deeper at high energy
    raw = np.stack([np.exp(-depth), 1.5 * np.ones(n), 0.2 + depth], axis=1)
    fractions = raw / raw.sum(1, keepdims=True)
    yc, xc = np.meshgrid(np.arange(4) - 1.5, np.arange(4) - 1.5, indexing="ij")
    r = np.hypot(xc, yc).reshape(-1)
    parts = []
    for layer in range(3):
        width = (0.6 + 0.4 * layer) * rng.lognormal(0, 0.25, n)
        profile = np.exp(-r[None, :] / width[:, None])
        profile /= profile.sum(1, keepdims=True)
        cells = visible[:, None] * fractions[:, layer, None] * profile
        parts.append(cells * rng.gamma(25.0, 0.04, cells.shape))
    showers = np.concatenate(parts, axis=1)
    showers[showers < THRESHOLD] = 0.0
    return ShowerSet(
        energies=e, showers=showers.astype(np.float32), geometry=geometry, particle="e-"
    )
