"""Pythia 8 event generation into the heplab data model.

Events come from ``Pythia.nextBatch`` (pythia8mc >= 8.315), which hands back whole batches
of event records as awkward arrays, so that the final-state particles and the hard-process
truth are extracted with array operations instead of a Python loop over particles.

Conventions (documented in the run manifest):

- Particles with a proper lifetime c*tau > 10 mm are stable (``ParticleDecays:limitTau0``),
  the usual generator-level definition at the LHC: K0S, Lambda, charged pions and kaons are
  final-state particles; b and c hadrons, tau leptons and pi0 decay.
- The hard-scatter vertex gets a Gaussian beam-spot z (``beamspot_sigma_z`` mm) that shifts
  the production vertices of all its particles.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from heplab._arrays import ranges
from heplab.errors import ConfigError, DataError

__all__ = [
    "RESONANCE_IDS",
    "extract_events",
    "generate_gun",
    "generate_pythia",
    "make_pythia",
]

log = logging.getLogger(__name__)

#: |PDG id| of the particles kept, with their decay trees, in ``partons``: t, Z, W, H, Z',
#: W', H0, A0, H+, and tau leptons (as leaves, never expanded).
RESONANCE_IDS = np.array([6, 23, 24, 25, 32, 34, 35, 36, 37])
_RES_LUT = np.isin(np.arange(RESONANCE_IDS.max() + 1), RESONANCE_IDS)

_QUIET = [
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowLHA = 0",
    "Init:showChangedSettings = off",
    "Init:showProcesses = off",
    "Init:showChangedParticleData = off",
    "SLHA:verbose = 0",
]

_STABLE = ["ParticleDecays:limitTau0 = on", "ParticleDecays:tau0Max = 10."]


def _pythia_seed(seed: int) -> int:
    """Map any non-negative integer to Pythia's seed range 1..900,000,000."""
    return int(seed) % 900_000_000 + 1


def make_pythia(settings: Sequence[str], seed: int) -> Any:
    """A quiet, initialised ``pythia8mc.Pythia`` with ``settings`` and ``seed``.

    Raises :class:`ConfigError` when Pythia rejects a setting or fails to initialise.
    """
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for s in [
        *_QUIET,
        *_STABLE,
        *settings,
        "Random:setSeed = on",
        f"Random:seed = {_pythia_seed(seed)}",
    ]:
        if not pythia.readString(s):
            raise ConfigError(f"Pythia 8 does not accept the setting {s!r}")
    if not pythia.init():
        raise ConfigError(
            "Pythia 8 failed to initialise with these settings (an impossible kinematic window, "
            "a closed decay table or an unreadable LHE file?): " + "; ".join(settings)
        )
    return pythia


class _ChargeTable:
    """Electric charge (units of e) by PDG id, from Pythia's particle data, cached."""

    def __init__(self, particle_data: Any) -> None:
        self._pd = particle_data
        self._cache: dict[int, int] = {}

    def __call__(self, pids: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(pids, return_inverse=True)
        values = np.empty(len(uniq), dtype=np.int8)
        for i, pid in enumerate(uniq.tolist()):
            if pid not in self._cache:
                self._cache[pid] = round(self._pd.charge(pid))
            values[i] = self._cache[pid]
        return values[inverse]


def _follow_copies(start: np.ndarray, next_copy: np.ndarray, is_copied: np.ndarray) -> np.ndarray:
    """From global indices ``start``, follow copies of the same particle to the last one."""
    cur = start.copy()
    for _ in range(500):
        step = is_copied[cur]
        if not step.any():
            return cur
        cur[step] = next_copy[cur[step]]
    raise DataError("Pythia event record: a particle's copy chain does not end")


def _flat_record(prt: ak.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-event counts and flat numpy columns of Pythia's event records (no copies of
    fields that are not needed; behaviours stripped so that no ``vector`` dispatch runs)."""
    raw = ak.without_parameters(prt)
    counts = ak.to_numpy(ak.num(raw))
    flat = ak.flatten(raw)
    cols = {k: ak.to_numpy(flat[k]) for k in ("id", "status", "mother1", "daughter1", "daughter2")}
    for k in ("px", "py", "pz", "e"):
        cols[k] = ak.to_numpy(flat["p", k])
    for k in ("px", "py", "pz"):
        # production vertices are optional (None at the origin): a masked array, filled
        cols["v" + k[1]] = np.ma.filled(ak.to_numpy(flat["vProd", k]), 0.0)
    return counts, cols


def _hard_truth(counts: np.ndarray, cols: Mapping[str, np.ndarray]) -> ak.Array:
    """The ``partons`` list of every event: hard outgoing partons and resonance decay trees."""
    n_events = len(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    event_of = np.repeat(np.arange(n_events), counts)
    pid = cols["id"]
    status = cols["status"]
    d1, d2 = cols["daughter1"], cols["daughter2"]

    def daughters(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global index range [first, last] of the daughters of entries ``idx``."""
        off = offsets[event_of[idx]]
        first = np.where(d1[idx] > 0, d1[idx] + off, 0)
        last = np.maximum(np.where(d2[idx] > 0, d2[idx] + off, first), first)
        return first, last

    # only resonances (t, W, Z, H, ...) are followed through their copies: a particle
    # continues as a later copy of itself when one of its daughters has its id (a recoil
    # copy, or a resonance that radiated in the shower: t -> t g)
    apid = np.abs(pid)
    is_res = np.zeros(len(pid), dtype=bool)
    small = apid <= RESONANCE_IDS.max()
    is_res[small] = _RES_LUT[apid[small]]
    res_all = np.flatnonzero(is_res & (d1 > 0))
    first, last = daughters(res_all)
    next_copy = np.zeros(len(pid), dtype=np.int64)
    nc = np.where(pid[first] == pid[res_all], first, last)
    next_copy[res_all] = nc
    is_copied = np.zeros(len(pid), dtype=bool)
    is_copied[res_all] = pid[nc] == pid[res_all]
    decayed_res = np.zeros(len(pid), dtype=bool)
    decayed_res[res_all[~is_copied[res_all]]] = True

    # hard outgoing non-resonance partons of the hardest process (mother = first incoming),
    # all among the first entries of the record
    head = (offsets[:-1, None] + np.arange(12)[None, :])[np.arange(12)[None, :] < counts[:, None]]
    hard_out = np.zeros(len(pid), dtype=bool)
    hard_out[head] = (np.abs(status[head]) == 23) & (cols["mother1"][head] == 3) & ~is_res[head]

    # decay products of each decayed resonance (last copy)
    res_idx = np.flatnonzero(decayed_res)
    first, last = daughters(res_idx)
    n_prod = last - first + 1
    prod_parent = np.repeat(res_idx, n_prod)
    prod_idx = ranges(first, n_prod)
    prod_last = _follow_copies(prod_idx, next_copy, is_copied)
    prod_is_res = decayed_res[prod_last]
    parent_of = np.full(len(pid), -1, dtype=np.int64)
    # resonance children: link their last copy to the parent resonance
    parent_of[prod_last[prod_is_res]] = prod_parent[prod_is_res]
    leaves = prod_idx[~prod_is_res]
    parent_of[leaves] = prod_parent[~prod_is_res]

    keep = np.zeros(len(pid), dtype=bool)
    keep[res_idx] = True
    keep[leaves] = True
    keep[np.flatnonzero(hard_out)] = True
    sel = np.flatnonzero(keep)
    # position of each kept entry inside its event's parton list
    sel_event = event_of[sel]
    first_of_event = np.searchsorted(sel_event, np.arange(n_events))
    pos = np.full(len(pid), -1, dtype=np.int64)
    pos[sel] = np.arange(len(sel)) - first_of_event[sel_event]
    mother = np.where(parent_of[sel] >= 0, pos[np.maximum(parent_of[sel], 0)], -1)
    counts_sel = np.bincount(sel_event, minlength=n_events)
    rec = ak.zip(
        {
            "px": cols["px"][sel].astype(np.float32),
            "py": cols["py"][sel].astype(np.float32),
            "pz": cols["pz"][sel].astype(np.float32),
            "energy": cols["e"][sel].astype(np.float32),
            "pid": pid[sel].astype(np.int32),
            "status": status[sel].astype(np.int32),
            "mother": mother.astype(np.int32),
        }
    )
    return ak.unflatten(rec, counts_sel)


def extract_events(
    batch: ak.Array,
    charge: _ChargeTable,
    rng: np.random.Generator,
    beamspot_sigma_z: float,
) -> ak.Array:
    """Turn a ``nextBatch`` result into heplab event records (see :mod:`heplab.events.schema`)."""
    counts_all, cols = _flat_record(batch.prt)
    n = len(counts_all)
    pv_z = (rng.normal(0.0, beamspot_sigma_z, n) if beamspot_sigma_z > 0 else np.zeros(n)).astype(
        np.float32
    )
    final = cols["status"] > 0
    event_of = np.repeat(np.arange(n), counts_all)
    counts = np.bincount(event_of[final], minlength=n)
    pid = cols["id"][final].astype(np.int32)
    particles = ak.zip(
        {
            "px": cols["px"][final].astype(np.float32),
            "py": cols["py"][final].astype(np.float32),
            "pz": cols["pz"][final].astype(np.float32),
            "energy": cols["e"][final].astype(np.float32),
            "pid": pid,
            "charge": charge(pid),
            "vx": cols["vx"][final].astype(np.float32),
            "vy": cols["vy"][final].astype(np.float32),
            "vz": (cols["vz"][final] + np.repeat(pv_z, counts)).astype(np.float32),
            "pileup": np.zeros(len(pid), dtype=np.int16),
        }
    )
    info = ak.without_parameters(batch.info)
    weights = info.weights
    weight = ak.to_numpy(ak.fill_none(ak.firsts(weights), 1.0)).astype(np.float64)
    id1 = ak.to_numpy(info.id1).astype(np.int32)
    id2 = ak.to_numpy(info.id2).astype(np.int32)
    pthat = np.sqrt(np.maximum(ak.to_numpy(info.pT2Hat), 0.0)).astype(np.float32)
    return ak.zip(
        {
            "weight": weight,
            "id1": id1,
            "id2": id2,
            "pthat": pthat,
            "pv_z": pv_z,
            "particles": ak.unflatten(particles, counts),
            "partons": _hard_truth(counts_all, cols),
        },
        depth_limit=1,
    )


def generate_pythia(
    settings: Sequence[str],
    n_events: int,
    seed: int,
    *,
    beamspot_sigma_z: float = 0.0,
    batch_size: int = 100,
) -> ak.Array:
    """Generate ``n_events`` events with Pythia 8 and return heplab event records.

    For LHE input (``Beams:frameType = 4``) generation stops early at the end of the file.
    The records lack ``event_id``, which the caller (the chunked production) assigns.
    """
    if n_events < 0:
        raise ConfigError(f"number of events must be >= 0, not {n_events}")
    pythia = make_pythia(settings, seed)
    rng = np.random.default_rng(seed)
    charge = _ChargeTable(pythia.particleData)
    parts: list[ak.Array] = []
    done = 0
    empty_batches = 0
    while done < n_events:
        todo = min(batch_size, n_events - done)
        # "skip": an event Pythia fails to make is dropped, so a batch can come back short
        batch = pythia.nextBatch(todo, "skip")
        got = len(batch)
        if got:
            parts.append(extract_events(batch, charge, rng, beamspot_sigma_z))
            done += got
        if pythia.infoPython().atEndOfFile():
            break
        empty_batches = empty_batches + 1 if got == 0 else 0
        if empty_batches >= 3:
            raise DataError(
                f"Pythia 8 failed to generate events ({done} of {n_events} made); "
                "check the process settings"
            )
    if not parts:
        return _empty_events()
    return ak.concatenate(parts) if len(parts) > 1 else parts[0]


def _empty_events() -> ak.Array:
    p = ak.zip(
        {
            **{k: np.zeros(0, np.float32) for k in ("px", "py", "pz", "energy")},
            "pid": np.zeros(0, np.int32),
            "charge": np.zeros(0, np.int8),
            **{k: np.zeros(0, np.float32) for k in ("vx", "vy", "vz")},
            "pileup": np.zeros(0, np.int16),
        }
    )
    q = ak.zip(
        {
            **{k: np.zeros(0, np.float32) for k in ("px", "py", "pz", "energy")},
            "pid": np.zeros(0, np.int32),
            "status": np.zeros(0, np.int32),
            "mother": np.zeros(0, np.int32),
        }
    )
    return ak.zip(
        {
            "weight": np.zeros(0),
            "id1": np.zeros(0, np.int32),
            "id2": np.zeros(0, np.int32),
            "pthat": np.zeros(0, np.float32),
            "pv_z": np.zeros(0, np.float32),
            "particles": ak.unflatten(p, np.zeros(0, np.int64)),
            "partons": ak.unflatten(q, np.zeros(0, np.int64)),
        },
        depth_limit=1,
    )


def generate_gun(params: Mapping[str, Any], n_events: int, seed: int) -> ak.Array:
    """Single-particle gun events, decayed by Pythia (no hard process, no underlying event).

    ``params``: ``pid``, ``energy`` and ``energy_max`` [GeV], ``spectrum`` (fixed, flat,
    logflat), ``eta_min``, ``eta_max``, ``phi_min``, ``phi_max`` [rad], ``n_particles``.
    """
    pid = int(params["pid"])
    n_particles = int(params["n_particles"])
    emin, emax = float(params["energy"]), float(params["energy_max"])
    spectrum = str(params["spectrum"])
    if spectrum not in {"fixed", "flat", "logflat"}:
        raise ConfigError(f"gun spectrum must be fixed, flat or logflat, not {spectrum!r}")
    if n_particles < 1:
        raise ConfigError("gun n_particles must be >= 1")
    if spectrum != "fixed" and not emax > emin:
        raise ConfigError(f"gun energy_max ({emax}) must exceed energy ({emin}) for {spectrum}")
    if not params["eta_max"] >= params["eta_min"] or not params["phi_max"] >= params["phi_min"]:
        raise ConfigError("gun eta/phi ranges must have max >= min")
    pythia = make_pythia(["ProcessLevel:all = off", "HadronLevel:all = on"], seed)
    pdata = pythia.particleData
    if not pdata.isParticle(pid):
        raise ConfigError(f"gun: PDG id {pid} is unknown to Pythia")
    if pdata.colType(pid) != 0:
        raise ConfigError(
            f"gun: PDG id {pid} is coloured; shoot colourless particles (use ee-z for quark jets)"
        )
    mass = pdata.m0(pid)
    rng = np.random.default_rng(seed)
    size = (n_events, n_particles)
    if spectrum == "fixed":
        energy = np.full(size, emin)
    elif spectrum == "flat":
        energy = rng.uniform(emin, emax, size)
    else:
        if emin <= 0:
            raise ConfigError("gun: a log-flat spectrum needs energy > 0")
        energy = np.exp(rng.uniform(math.log(emin), math.log(emax), size))
    if (energy < mass).any():
        raise ConfigError(f"gun: energy below the mass of PDG id {pid} ({mass:.4g} GeV)")
    eta = rng.uniform(params["eta_min"], params["eta_max"], size)
    phi = rng.uniform(params["phi_min"], params["phi_max"], size)
    pmag = np.sqrt(np.maximum(energy**2 - mass**2, 0.0))
    pt = pmag / np.cosh(eta)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)

    charge = _ChargeTable(pdata)
    rows: list[tuple[float, ...]] = []
    counts = np.zeros(n_events, dtype=np.int64)
    event = pythia.event
    for i in range(n_events):
        event.reset()
        for j in range(n_particles):
            event.append(pid, 1, 0, 0, px[i, j], py[i, j], pz[i, j], energy[i, j], mass)
        if not pythia.next():
            raise DataError(f"gun: Pythia failed to decay event {i}")
        before = len(rows)
        for k in range(event.size()):
            part = event[k]
            if part.isFinal():
                rows.append(
                    (
                        part.px(),
                        part.py(),
                        part.pz(),
                        part.e(),
                        part.id(),
                        part.xProd(),
                        part.yProd(),
                        part.zProd(),
                    )
                )
        counts[i] = len(rows) - before
    arr = np.array(rows, dtype=np.float64).reshape(-1, 8)
    pids = arr[:, 4].astype(np.int32)
    particles = ak.zip(
        {
            "px": arr[:, 0].astype(np.float32),
            "py": arr[:, 1].astype(np.float32),
            "pz": arr[:, 2].astype(np.float32),
            "energy": arr[:, 3].astype(np.float32),
            "pid": pids,
            "charge": charge(pids),
            "vx": arr[:, 5].astype(np.float32),
            "vy": arr[:, 6].astype(np.float32),
            "vz": arr[:, 7].astype(np.float32),
            "pileup": np.zeros(len(pids), dtype=np.int16),
        }
    )
    partons = ak.zip(
        {
            "px": px.ravel().astype(np.float32),
            "py": py.ravel().astype(np.float32),
            "pz": pz.ravel().astype(np.float32),
            "energy": energy.ravel().astype(np.float32),
            "pid": np.full(n_events * n_particles, pid, dtype=np.int32),
            "status": np.full(n_events * n_particles, 1, dtype=np.int32),
            "mother": np.full(n_events * n_particles, -1, dtype=np.int32),
        }
    )
    return ak.zip(
        {
            "weight": np.ones(n_events),
            "pthat": np.zeros(n_events, np.float32),
            "pv_z": np.zeros(n_events, np.float32),
            "particles": ak.unflatten(particles, counts),
            "partons": ak.unflatten(partons, np.full(n_events, n_particles)),
            "id1": np.zeros(n_events, np.int32),
            "id2": np.zeros(n_events, np.int32),
        },
        depth_limit=1,
    )


def cpu_count() -> int:
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
