"""Pile-up overlay: minimum-bias events from a pool added to each hard-scatter event.

For each hard event k ~ Poisson(mu) pool events are drawn with replacement. Each drawn
event is rotated by a random azimuth phi ~ U(-pi, pi) about the beam axis (momenta and
production vertices together, so displaced decays stay consistent), moved to a vertex
z ~ N(0, sigma_z) of the Gaussian luminous region (its particles' vz are shifted by
z - z_pool, with z_pool the median vz of the pool event, so the spread of a pool produced
with or without a beam spot is the same), labelled ``pileup`` = 1..k, and its particles
are appended to the hard event's list.

Everything is vectorised: one ``pool[indices]`` gather, flat numpy arithmetic, one
scatter into the merged lists.

References: the LHC luminous region has sigma_z of about 35-50 mm (ATLAS, Eur. Phys. J. C
77 (2017) 332, arXiv:1611.10235); Delphes ``PileUpMerger`` does the same (arXiv:1307.6346).
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np

from heplab.detector.particles import event_median, flatten_particles, rebuild_lists
from heplab.errors import ConfigError, DataError
from heplab.events.schema import PARTICLE_FIELDS

__all__ = ["overlay_pileup"]


def _particles_of(arr: ak.Array, what: str) -> ak.Array:
    """The particle lists of ``arr``: itself, or its ``particles`` field for events."""
    if isinstance(arr, ak.Array) and "particles" in arr.fields and arr.ndim == 1:
        return arr["particles"]
    if not isinstance(arr, ak.Array):
        raise DataError(f"{what}: expected an awkward array, got {type(arr).__name__}")
    return arr


def overlay_pileup(
    hard: ak.Array,
    pool: ak.Array,
    mu: float,
    rng: np.random.Generator,
    beamspot_sigma_z_mm: float = 50.0,
) -> ak.Array:
    """Overlay Poisson(mu) minimum-bias events from ``pool`` on each event of ``hard``.

    Parameters
    ----------
    hard
        Hard-scatter events: lists of particle records (fields of
        :data:`heplab.events.schema.PARTICLE_FIELDS`), or event records with a
        ``particles`` field (then the events are returned with that field replaced).
    pool
        Minimum-bias events of the same form, sampled with replacement.
    mu
        Mean number of pile-up interactions per event (>= 0).
    rng
        Random generator (draws: counts, pool indices, azimuths, vertex z).
    beamspot_sigma_z_mm
        Width of the Gaussian luminous region in z [mm].

    Returns
    -------
    ak.Array
        ``hard`` with the pile-up particles appended to each event (hard-scatter particles
        first, then pile-up interaction 1, 2, ...); ``mu == 0`` returns ``hard`` itself.
        The particle records have exactly the fields and dtypes of ``PARTICLE_FIELDS``.

    Raises
    ------
    heplab.errors.ConfigError
        ``mu`` < 0 or not finite, or a negative beam-spot width.
    heplab.errors.DataError
        Malformed particles, or an empty pool with ``mu`` > 0.
    """
    mu = float(mu)
    if not math.isfinite(mu) or mu < 0:
        raise ConfigError(f"pile-up: mu must be a finite number >= 0, got {mu}")
    sigma_z = float(beamspot_sigma_z_mm)
    if not math.isfinite(sigma_z) or sigma_z < 0:
        raise ConfigError(f"pile-up: beam-spot sigma_z must be >= 0 mm, got {sigma_z}")
    if mu == 0:
        return hard

    hard_parts = _particles_of(hard, "pile-up hard events")
    pool_parts = _particles_of(pool, "pile-up pool")
    h = flatten_particles(hard_parts, "pile-up hard events")
    n_pool = len(pool_parts)
    if n_pool == 0:
        raise DataError("pile-up: the minimum-bias pool is empty")
    p = flatten_particles(pool_parts, "pile-up pool")
    z_pool = event_median(p.vz, p.evt, n_pool)
    pool_start = np.cumsum(p.counts) - p.counts

    n_hard = h.n_events
    k = rng.poisson(mu, n_hard).astype(np.int64)
    n_int = int(k.sum())
    src = rng.integers(0, n_pool, n_int)
    phi = rng.uniform(-np.pi, np.pi, n_int)
    z_vtx = rng.normal(0.0, sigma_z, n_int) if sigma_z > 0 else np.zeros(n_int)

    owner = np.repeat(np.arange(n_hard, dtype=np.int64), k)
    first = np.cumsum(k) - k
    pu_index = np.arange(n_int, dtype=np.int64) - first[owner] + 1

    # gather the drawn pool particles: interaction j contributes p.counts[src[j]] particles
    n_sel = p.counts[src]
    interaction = np.repeat(np.arange(n_int, dtype=np.int64), n_sel)
    int_start = np.cumsum(n_sel) - n_sel
    gather = pool_start[src][interaction] + (np.arange(len(interaction)) - int_start[interaction])
    c, s = np.cos(phi)[interaction], np.sin(phi)[interaction]
    pu = {
        "px": c * p.px[gather] - s * p.py[gather],
        "py": s * p.px[gather] + c * p.py[gather],
        "pz": p.pz[gather],
        "energy": p.energy[gather],
        "pid": p.pid[gather],
        "charge": p.charge[gather],
        "vx": c * p.vx[gather] - s * p.vy[gather],
        "vy": s * p.vx[gather] + c * p.vy[gather],
        "vz": p.vz[gather] - z_pool[src][interaction] + z_vtx[interaction],
        "pileup": pu_index[interaction],
    }
    hs = {
        "px": h.px,
        "py": h.py,
        "pz": h.pz,
        "energy": h.energy,
        "pid": h.pid,
        "charge": h.charge,
        "vx": h.vx,
        "vy": h.vy,
        "vz": h.vz,
        "pileup": h.pileup,
    }

    # merged lists: per event the hard particles, then its pile-up particles in order
    pu_evt = owner[interaction]
    pu_counts = np.bincount(pu_evt, minlength=n_hard).astype(np.int64)
    counts = h.counts + pu_counts
    offset = np.cumsum(counts) - counts
    hard_pos = offset[h.evt] + (np.arange(len(h)) - (np.cumsum(h.counts) - h.counts)[h.evt])
    pu_start = np.cumsum(pu_counts) - pu_counts
    pu_pos = offset[pu_evt] + h.counts[pu_evt] + (np.arange(len(pu_evt)) - pu_start[pu_evt])
    cols = {}
    for name, dtype in PARTICLE_FIELDS.items():
        col = np.empty(int(counts.sum()), dtype=dtype)
        col[hard_pos] = hs[name]
        col[pu_pos] = pu[name]
        cols[name] = col
    merged = rebuild_lists(cols, counts)
    if hard_parts is not hard:
        return ak.with_field(hard, merged, "particles")
    return merged
