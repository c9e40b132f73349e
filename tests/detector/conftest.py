"""Synthetic truth particles for the detector tests (numpy only, no generator needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
import pytest

from heplab.events.schema import PARTICLE_FIELDS

MASS = {
    11: 0.000511,
    12: 0.0,
    13: 0.105658,
    22: 0.0,
    130: 0.497611,
    211: 0.139570,
    321: 0.493677,
    2112: 0.939565,
    2212: 0.938272,
    310: 0.497611,
    1000022: 100.0,
}


def charge_of(pid: np.ndarray) -> np.ndarray:
    """Electric charge of a few PDG ids (leptons: pid > 0 is negative)."""
    apid = np.abs(pid)
    sign = np.sign(pid)
    q = np.zeros(len(pid))
    q = np.where(np.isin(apid, [211, 321, 2212]), sign, q)
    return np.where(np.isin(apid, [11, 13]), -sign, q)


def build_particles(
    pid: Any,
    pt: Any,
    eta: Any,
    phi: Any,
    counts: Any,
    *,
    vx: Any = 0.0,
    vy: Any = 0.0,
    vz: Any = 0.0,
    pileup: Any = 0,
) -> ak.Array:
    """Events x particles with the schema fields from flat (pid, pT, eta, phi) arrays."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    pid = np.broadcast_to(np.asarray(pid), (n,))
    pt = np.broadcast_to(np.asarray(pt, dtype=np.float64), (n,))
    eta = np.broadcast_to(np.asarray(eta, dtype=np.float64), (n,))
    phi = np.broadcast_to(np.asarray(phi, dtype=np.float64), (n,))
    mass = np.array([MASS[abs(int(p))] for p in pid]) if n else np.zeros(0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    cols = {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + mass**2),
        "pid": pid,
        "charge": charge_of(pid),
        "vx": np.broadcast_to(np.asarray(vx, dtype=np.float64), (n,)),
        "vy": np.broadcast_to(np.asarray(vy, dtype=np.float64), (n,)),
        "vz": np.broadcast_to(np.asarray(vz, dtype=np.float64), (n,)),
        "pileup": np.broadcast_to(np.asarray(pileup), (n,)),
    }
    arrays = {k: np.ascontiguousarray(v).astype(PARTICLE_FIELDS[k]) for k, v in cols.items()}
    return ak.unflatten(ak.zip(arrays, depth_limit=1), counts)


@pytest.fixture
def gun() -> Callable[..., ak.Array]:
    """Single-particle events: ``gun(pid, pt, eta, n, rng, **vertex)``, random phi."""

    def _gun(
        pid: int, pt: float, eta: float, n: int, rng: np.random.Generator, **kw: Any
    ) -> ak.Array:
        phi = kw.pop("phi", None)
        if phi is None:
            phi = rng.uniform(-np.pi, np.pi, n)
        return build_particles(pid, pt, eta, phi, np.ones(n, dtype=np.int64), **kw)

    return _gun


@pytest.fixture
def build() -> Callable[..., ak.Array]:
    """:func:`build_particles`."""
    return build_particles


def std_tolerance(x: np.ndarray, n_sigma: float = 3.5) -> float:
    """n_sigma times the statistical error of the relative standard deviation of ``x``
    (from its sample kurtosis: var(s^2) = sigma^4 (kappa - 1) / N)."""
    x = np.asarray(x, dtype=np.float64)
    d = x - x.mean()
    kappa = np.mean(d**4) / np.mean(d**2) ** 2
    return n_sigma * float(np.sqrt((kappa - 1.0) / (4.0 * len(x))))


@pytest.fixture
def std_tol() -> Callable[..., float]:
    """:func:`std_tolerance`."""
    return std_tolerance
