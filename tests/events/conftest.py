"""Fixtures for the heplab.events tests: small synthetic events and the shared LHE files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplab.events.model import EVENT_FIELD_DTYPES
from heplab.events.schema import EVENT_FIELDS, PARTICLE_FIELDS, PARTON_FIELDS, PFCAND_FIELDS

# /work/main/tests/events/conftest.py -> /work/shared/data (../shared/data from the repo)
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _momenta(rng: np.random.Generator, n: int, masses: np.ndarray) -> dict[str, np.ndarray]:
    pt = rng.exponential(5.0, n) + 0.1
    eta = rng.uniform(-4.0, 4.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + masses**2)
    return {"px": px, "py": py, "pz": pz, "energy": energy}


def _records(fields: dict[str, np.ndarray], dtypes: dict[str, str], counts: np.ndarray) -> ak.Array:
    flat = {name: np.asarray(fields[name]).astype(dtype) for name, dtype in dtypes.items()}
    return ak.unflatten(ak.zip(flat, with_name="Momentum4D"), counts)


def make_synthetic_events(n: int = 50, seed: int = 1, *, pfcands: bool = True) -> ak.Array:
    """Events in the heplab data model with random, physical-looking content."""
    rng = np.random.default_rng(seed)
    n_part = rng.poisson(20, n)
    n_part[0] = 0  # an empty event
    total = int(n_part.sum())
    pid = rng.choice([211, -211, 321, 22, 2112, 11, -13, 12], total)
    masses = np.select(
        [np.abs(pid) == 211, np.abs(pid) == 321, np.abs(pid) == 2112, np.abs(pid) == 11],
        [0.13957, 0.49368, 0.93957, 0.000511],
        default=0.0,
    )
    charge = np.select([pid > 0, pid < 0], [1, -1], 0)
    charge[np.isin(np.abs(pid), [22, 2112, 12])] = 0
    particles = _records(
        {
            **_momenta(rng, total, masses),
            "pid": pid,
            "charge": charge,
            "vx": rng.normal(0, 0.01, total),
            "vy": rng.normal(0, 0.01, total),
            "vz": rng.normal(0, 35.0, total),
            "pileup": rng.integers(0, 3, total),
        },
        PARTICLE_FIELDS,
        n_part,
    )
    # partons: two incoming along the beam, a resonance and its two decay products
    n_parton = np.full(n, 5)
    total_p = int(n_parton.sum())
    p4 = _momenta(rng, total_p, np.zeros(total_p))
    beam = np.tile([True, True, False, False, False], n)
    for name in ("px", "py"):
        p4[name][beam] = 0.0
    p4["energy"][beam] = np.abs(p4["pz"][beam])
    partons = _records(
        {
            **p4,
            "pid": np.tile([21, 21, 6, 5, 24], n),
            "status": np.tile([-21, -21, -22, 23, 23], n),
            "mother": np.tile([-1, -1, -1, 2, 2], n),
        },
        PARTON_FIELDS,
        n_parton,
    )
    fields: dict[str, object] = {}
    for name in EVENT_FIELDS:  # the event scalars, whatever the schema names them
        dtype = np.dtype(EVENT_FIELD_DTYPES.get(name, "float32"))
        if name == "event_id":
            fields[name] = np.arange(n, dtype=dtype) + 1000
        elif dtype.kind == "f":
            fields[name] = rng.uniform(0.5, 200.0, n).astype(dtype)
        else:
            fields[name] = rng.choice([21, 1, -2, 3], n).astype(dtype)
    fields["particles"] = particles
    fields["partons"] = partons
    if pfcands:
        n_pf = rng.poisson(15, n)
        total_pf = int(n_pf.sum())
        pf_pid = rng.choice([211, -211, 130, 22, 11, -13], total_pf)
        pf_charge = np.select(
            [pf_pid == 211, pf_pid == -211, pf_pid == 11, pf_pid == -13], [1, -1, -1, 1], 0
        )
        charged = pf_charge != 0
        fields["pfcands"] = _records(
            {
                **_momenta(rng, total_pf, np.where(charged, 0.13957, 0.0)),
                "pid": pf_pid,
                "charge": pf_charge,
                "d0": np.where(charged, rng.normal(0, 0.02, total_pf), 0.0),
                "dz": np.where(charged, rng.normal(0, 0.05, total_pf), 0.0),
                "d0err": np.where(charged, 0.01, 0.0),
                "dzerr": np.where(charged, 0.02, 0.0),
                "from_pv": ~charged | (rng.random(total_pf) > 0.2),
            },
            PFCAND_FIELDS,
            n_pf,
        )
        fields["met"] = rng.exponential(20.0, n).astype(np.float32)
        fields["met_phi"] = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
        fields["sumet"] = rng.uniform(100, 1000, n).astype(np.float32)
    return ak.zip(fields, depth_limit=1)


@pytest.fixture
def make_events() -> Callable[..., ak.Array]:
    """Factory of synthetic events: ``make_events(n=50, seed=1, pfcands=True)``."""
    return make_synthetic_events


@pytest.fixture
def events() -> ak.Array:
    """50 synthetic events with particles, partons, pfcands and MET."""
    return make_synthetic_events()


@pytest.fixture
def shared_data() -> Path:
    """The folder of real LHE files beside the repository; skips the test if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (real LHE files not available)")
    return SHARED_DATA
