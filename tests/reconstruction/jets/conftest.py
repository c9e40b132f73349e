"""Fixtures for the heplab.reconstruction.jets tests: hand-made events and partons."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import awkward as ak
import numpy as np
import pytest
import vector

from heplab.events.schema import PARTICLE_FIELDS, PARTON_FIELDS, PFCAND_FIELDS

#: A particle as (pt [GeV], eta, phi, mass [GeV], pid, charge); extra keys for pfcands.
Particle = Sequence[Any]


def four_momenta(pt: Any, eta: Any, phi: Any, mass: Any) -> dict[str, np.ndarray]:
    v = vector.array(
        {
            "pt": np.asarray(pt, float),
            "eta": np.asarray(eta, float),
            "phi": np.asarray(phi, float),
            "mass": np.asarray(mass, float),
        }
    )
    return {"px": v.px, "py": v.py, "pz": v.pz, "energy": v.E}


def _records(rows: list[list[Particle]], dtypes: dict[str, str], extra: dict[str, Any]) -> ak.Array:
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = [p for r in rows for p in r]
    cols: dict[str, np.ndarray] = {}
    if flat:
        pt, eta, phi, mass = (np.array([p[k] for p in flat], float) for k in range(4))
        cols.update(four_momenta(pt, eta, phi, mass))
    else:
        cols.update({k: np.zeros(0) for k in ("px", "py", "pz", "energy")})
    cols["pid"] = np.array([p[4] for p in flat], dtype=np.int64)
    cols["charge"] = np.array([p[5] for p in flat], dtype=np.int64)
    for name, fill in extra.items():
        cols[name] = np.array([p[6][name] if len(p) > 6 and name in p[6] else fill for p in flat])
    arrays = {
        name: (cols[name] if name in cols else np.zeros(len(flat))).astype(dtype)
        for name, dtype in dtypes.items()
    }
    return ak.unflatten(ak.zip(arrays), counts)


def make_partons(rows: list[list[Sequence[Any]]]) -> ak.Array:
    """``partons`` lists from (pid, pt, eta, phi, mass, mother[, status]) tuples."""
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = [p for r in rows for p in r]
    cols = four_momenta(
        [p[1] for p in flat], [p[2] for p in flat], [p[3] for p in flat], [p[4] for p in flat]
    )
    cols["pid"] = np.array([p[0] for p in flat])
    cols["mother"] = np.array([p[5] for p in flat])
    cols["status"] = np.array(
        [p[6] if len(p) > 6 else (-22 if p[0] in (6, -6) else 23) for p in flat]
    )
    arrays = {
        name: np.asarray(cols[name] if len(flat) else np.zeros(0)).astype(dtype)
        for name, dtype in PARTON_FIELDS.items()
    }
    return ak.unflatten(ak.zip(arrays), counts)


def make_events(
    particles: list[list[Particle]],
    *,
    partons: list[list[Sequence[Any]]] | None = None,
    pfcands: list[list[Particle]] | None = None,
    event_id: Sequence[int] | None = None,
) -> ak.Array:
    """heplab events from particle tuples (pt, eta, phi, mass, pid, charge[, extra])."""
    fields: dict[str, Any] = {
        "particles": _records(particles, PARTICLE_FIELDS, {"pileup": 0}),
    }
    if partons is not None:
        fields["partons"] = make_partons(partons)
    if pfcands is not None:
        fields["pfcands"] = _records(
            pfcands,
            PFCAND_FIELDS,
            {"from_pv": True, "d0": 0.0, "dz": 0.0, "d0err": 0.0, "dzerr": 0.0},
        )
    if event_id is not None:
        fields["event_id"] = np.asarray(event_id, dtype=np.int64)
    return ak.zip(fields, depth_limit=1)


def spray(
    pt: float, eta: float, phi: float, n: int, width: float, rng: np.random.Generator
) -> list[Particle]:
    """``n`` massless charged pions sharing ``pt`` around (eta, phi) with a Gaussian width."""
    shares = rng.dirichlet(np.full(n, 5.0)) * pt
    etas = eta + rng.normal(0, width, n)
    phis = phi + rng.normal(0, width, n)
    return [(s, e, f, 0.0, 211, 1) for s, e, f in zip(shares, etas, phis, strict=True)]


@pytest.fixture
def events_factory() -> Callable[..., ak.Array]:
    return make_events


@pytest.fixture
def partons_factory() -> Callable[..., ak.Array]:
    return make_partons


@pytest.fixture
def spray_factory() -> Callable[..., list[Particle]]:
    return spray
