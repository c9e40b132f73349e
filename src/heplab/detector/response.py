"""The fast detector response: truth particles -> particle-flow candidates and MET.

:func:`simulate` flattens the events once, runs the tracker
(:mod:`~heplab.detector.tracker`), the calorimeters (:mod:`~heplab.detector.calorimeter`)
and particle flow (:mod:`~heplab.detector.pflow`) on flat numpy arrays, and rebuilds one
record per event. No Python loop runs over events or particles.

Missing transverse momentum: MET = |-sum pT(candidates)|, met_phi its azimuth, sumet the
scalar sum of the candidates' pT [GeV].
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import awkward as ak
import numpy as np
import numpy.typing as npt

from heplab.detector.calorimeter import calo_impact, deposit_and_smear
from heplab.detector.card import DetectorCard, load_card
from heplab.detector.particles import (
    FlatParticles,
    event_median,
    flatten_particles,
    rebuild_lists,
)
from heplab.detector.pflow import Neutrals, energy_flow
from heplab.detector.tracker import Tracks, reconstruct_tracks
from heplab.errors import DataError
from heplab.events.schema import PFCAND_FIELDS

__all__ = ["simulate"]

#: |eta| margin beyond the outermost detector edge: a vertex at z != 0 moves the impact
#: point on an endcap by ln(Z / (Z - vz)) ~ 0.1 in eta for |vz| = 5 sigma_z.
_ETA_MARGIN = 0.5

#: particles per block of events processed at once (working set within the CPU caches)
_BLOCK = 1 << 17

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _pv_z(parts: FlatParticles, pv_z: npt.ArrayLike | None) -> F64:
    if pv_z is None:
        hs = parts.pileup == 0
        return event_median(parts.vz[hs], parts.evt[hs], parts.n_events)
    arr = np.asarray(pv_z, dtype=np.float64).reshape(-1)
    if arr.shape != (parts.n_events,):
        raise DataError(f"pv_z: expected {parts.n_events} values (one per event), got {arr.size}")
    if not np.isfinite(arr).all():
        raise DataError("pv_z: non-finite value(s)")
    return arr


def _assemble(
    n_events: int, tracks: Tracks, neutrals: list[tuple[Neutrals, int]], chs: tuple[float, float]
) -> tuple[dict[str, npt.NDArray[np.generic]], I64, F64, F64, F64]:
    """Candidates of all kinds into one flat table grouped by event (per event the charged
    candidates first, then photons, then neutral hadrons); with the per-event sums
    (sum px, sum py, sum pT) for the MET."""
    dz_max, nsig = chs
    from_pv = np.abs(tracks.dz) < np.maximum(dz_max, nsig * tracks.dzerr)
    groups: list[tuple[I64, dict[str, Any]]] = [
        (
            tracks.evt,
            {
                "px": tracks.px,
                "py": tracks.py,
                "pz": tracks.pz,
                "energy": tracks.energy,
                "pid": tracks.pid,
                "charge": tracks.charge,
                "d0": tracks.d0,
                "dz": tracks.dz,
                "d0err": tracks.d0err,
                "dzerr": tracks.dzerr,
                "from_pv": from_pv,
            },
        )
    ]
    for neu, pid in neutrals:
        groups.append(
            (
                neu.evt,
                {"px": neu.px, "py": neu.py, "pz": neu.pz, "energy": neu.energy, "pid": pid},
            )
        )
    counts_g = [np.bincount(evt, minlength=n_events).astype(np.int64) for evt, _ in groups]
    total = np.sum(counts_g, axis=0).astype(np.int64)
    offset = np.cumsum(total) - total
    n_tot = int(total.sum())
    out = {k: np.zeros(n_tot, dtype=dt) for k, dt in PFCAND_FIELDS.items()}
    out["from_pv"][:] = True  # neutrals; charged ones are written below
    sum_px = np.zeros(n_events)
    sum_py = np.zeros(n_events)
    sum_pt = np.zeros(n_events)
    before = offset.copy()
    for (evt, cols), c in zip(groups, counts_g, strict=True):
        start = np.cumsum(c) - c
        pos = (before - start)[evt] + np.arange(len(evt))
        for k, v in cols.items():
            out[k][pos] = v
        px: F64 = cols["px"]
        py: F64 = cols["py"]
        sum_px += np.bincount(evt, weights=px, minlength=n_events)
        sum_py += np.bincount(evt, weights=py, minlength=n_events)
        sum_pt += np.bincount(evt, weights=np.sqrt(px * px + py * py), minlength=n_events)
        before += c
    return out, total, sum_px, sum_py, sum_pt


def simulate(
    particles: ak.Array,
    card: DetectorCard | str | os.PathLike[str],
    rng: np.random.Generator,
    pv_z: npt.ArrayLike | None = None,
) -> ak.Array:
    """Fast detector response of events of truth particles.

    Parameters
    ----------
    particles
        Awkward array, one list of truth final-state particle records per event, with the
        fields of :data:`heplab.events.schema.PARTICLE_FIELDS` (GeV, mm).
    card
        Detector card (:func:`heplab.detector.load_card`), or a name or path for it.
    rng
        Random generator; the result is a deterministic function of its state.
    pv_z
        True z of the hard-scatter vertex per event [mm], the reference of ``dz``. When
        omitted, the per-event median vz of the hard-scatter (``pileup == 0``) particles.

    Returns
    -------
    ak.Array
        One record per event: ``pfcands`` (list of records with the fields and dtypes of
        :data:`heplab.events.schema.PFCAND_FIELDS`), ``met``, ``met_phi``, ``sumet``
        (float32, GeV).

    Raises
    ------
    heplab.errors.DataError
        Missing fields, non-finite momenta or vertices, wrong ``pv_z`` length.

    Notes
    -----
    Physics and parameters: module docstrings of :mod:`heplab.detector.tracker`,
    :mod:`heplab.detector.calorimeter`, :mod:`heplab.detector.pflow`, and
    ``docs/detector.md``. Delphes 3: arXiv:1307.6346.
    """
    if isinstance(card, str | os.PathLike):
        card = load_card(card)
    if not isinstance(card, DetectorCard):
        raise TypeError(f"card: expected a DetectorCard, got {type(card).__name__}")
    parts = flatten_particles(particles)
    pvz = _pv_z(parts, pv_z)

    # blocks of whole events of about _BLOCK particles: the working arrays then stay
    # in the CPU caches (a loop over blocks, not over events; the result does not
    # depend on where the blocks are cut other than through the random stream)
    ends = parts.offsets[1:]
    cuts = np.searchsorted(ends, np.arange(_BLOCK, len(parts), _BLOCK), side="left") + 1
    bounds = np.unique(np.concatenate([[0], cuts, [parts.n_events]]))
    results = [
        _simulate_flat(parts.events(int(a), int(b)), card, rng, pvz[a:b])
        for a, b in itertools.pairwise(bounds)
    ] or [_simulate_flat(parts, card, rng, pvz)]
    cols = {k: np.concatenate([r[0][k] for r in results]) for k in PFCAND_FIELDS}
    counts, sum_px, sum_py, sumet = (np.concatenate([r[i] for r in results]) for i in range(1, 5))
    met = np.sqrt(sum_px * sum_px + sum_py * sum_py)
    met_phi = np.arctan2(-sum_py, -sum_px)
    return ak.zip(
        {
            "pfcands": rebuild_lists(cols, counts),
            "met": met.astype(np.float32),
            "met_phi": met_phi.astype(np.float32),
            "sumet": sumet.astype(np.float32),
        },
        depth_limit=1,
    )


def _simulate_flat(
    parts: FlatParticles, card: DetectorCard, rng: np.random.Generator, pvz: F64
) -> tuple[dict[str, npt.NDArray[np.generic]], I64, F64, F64, F64]:
    """The detector response of a block of events (flat arrays in, flat arrays out)."""
    n_events = parts.n_events
    # particles far beyond every detector's coverage leave nothing: drop them early
    reach = max(card.tracker.eta_max, card.ecal.eta_max, card.hcal.eta_max) + _ETA_MARGIN
    seen = np.abs(parts.eta) < reach
    if np.count_nonzero(seen) < 0.95 * len(parts):
        parts = parts.subset(np.flatnonzero(seen))

    tracks = reconstruct_tracks(parts, card, rng, pvz)
    track_slot = np.full(len(parts), -1, dtype=np.int64)
    track_slot[tracks.idx] = np.arange(len(tracks), dtype=np.int64)

    impact = calo_impact(parts, card)
    f_ecal, f_hcal = card.deposit_fractions(parts.abs_pid)
    ecal = deposit_and_smear(parts, impact, f_ecal, card.ecal, rng)
    hcal = deposit_and_smear(parts, impact, f_hcal, card.hcal, rng)
    position = card.pflow.neutral_position
    photons = energy_flow(
        ecal,
        card.ecal,
        track_slot,
        tracks,
        position=position,
        combine_em=card.electron.combine_with_ecal,
        rng=rng,
    )
    nhad = energy_flow(
        hcal, card.hcal, track_slot, tracks, position=position, combine_em=False, rng=rng
    )
    return _assemble(
        n_events,
        tracks,
        [(photons, 22), (nhad, 130)],
        (card.pflow.chs_dz_max_mm, card.pflow.chs_dz_nsigma),
    )
