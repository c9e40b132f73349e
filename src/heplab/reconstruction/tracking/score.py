"""The TrackML score of a track-finding result (Amrouche et al., arXiv:1904.06778, Sec. 3).

A submission assigns every hit of an event to one track (``hit_id -> track_id``). For
each reconstructed track, its *majority particle* is the truth particle that made most of
its hits (ties: the smallest ``particle_id``, as the reference implementation, which
walks the hits sorted by (track_id, particle_id) and replaces the majority only on a
strictly larger count). The track is *good* when both

    n(track & majority) / n(track)    > 1/2   (more than half its hits are that particle's)
    n(track & majority) / n(majority) > 1/2   (it holds more than half of that particle's
                                              hits, counted in the truth file)

and the event score is the sum of the truth weights of the hits of the good tracks that
belong to their majority particle, divided by the event's total weight (1 for TrackML
files). The noise "particle" 0 never counts (its hits weigh 0 in TrackML files anyway).
Since a particle can hold more than half of its hits in at most one track, no hit is
counted twice and the score lies in [0, 1]; the overall score is the mean over events.
This reproduces ``trackml.score.score_event`` of the trackml-library (LAL/trackml-library)
with numpy group-bys instead of a loop over hits.

Submission CSV (Kaggle format): header ``event_id,hit_id,track_id``, integers, every hit
of each event exactly once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from heplab.errors import DataError

__all__ = ["read_submission", "score_event", "score_submission"]

log = logging.getLogger(__name__)

SUBMISSION_COLUMNS = ("event_id", "hit_id", "track_id")


def _column(table: Mapping[str, Any], name: str, what: str) -> np.ndarray:
    if name not in table:
        raise DataError(f"{what}: missing column {name}")
    return np.asarray(table[name])


def score_event(
    truth: Mapping[str, np.ndarray], submission: Mapping[str, np.ndarray], *, name: str = "event"
) -> float:
    """TrackML score of one event.

    Parameters
    ----------
    truth : mapping
        ``hit_id, particle_id, weight`` arrays (a TrackML truth table).
    submission : mapping
        ``hit_id, track_id`` arrays: every truth hit exactly once.
    name : str
        What to call the event in error messages.

    Raises
    ------
    DataError
        If the submission misses a hit, names an unknown hit or a hit twice.
    """
    t_hit = _column(truth, "hit_id", f"{name} truth").astype(np.int64)
    pid = _column(truth, "particle_id", f"{name} truth").astype(np.int64)
    weight = _column(truth, "weight", f"{name} truth").astype(np.float64)
    s_hit = _column(submission, "hit_id", f"{name} submission").astype(np.int64)
    track = _column(submission, "track_id", f"{name} submission")
    if track.dtype.kind not in "iu" and not (
        np.all(np.isfinite(track)) and np.all(track == np.round(track))
    ):
        raise DataError(f"{name} submission: track_id must be integers")
    track = track.astype(np.int64)
    n = len(t_hit)
    # --- one submission row per truth hit
    s_order = np.argsort(s_hit, kind="stable")
    s_sorted = s_hit[s_order]
    dup = s_sorted[1:][s_sorted[1:] == s_sorted[:-1]]
    if len(dup):
        raise DataError(
            f"{name} submission: hit_id {int(dup[0])} assigned more than once "
            f"({len(np.unique(dup))} duplicated hit(s))"
        )
    t_order = np.argsort(t_hit, kind="stable")
    t_sorted = t_hit[t_order]
    unknown = np.setdiff1d(s_sorted, t_sorted, assume_unique=True)
    if len(unknown):
        raise DataError(
            f"{name} submission: unknown hit_id {int(unknown[0])} "
            f"({len(unknown)} hit(s) not in the truth)"
        )
    if len(s_sorted) != n:
        missing = np.setdiff1d(t_sorted, s_sorted)
        raise DataError(
            f"{name} submission: hit_id {int(missing[0])} missing "
            f"({len(missing)} of {n} hits not assigned to a track)"
        )
    if n == 0:
        return 0.0
    total = weight.sum()
    if not total > 0:
        return 0.0
    tr = np.empty(n, np.int64)
    tr[t_order] = track[s_order]  # track of each truth row
    # --- hits per particle in the truth
    _, pid_inv, pid_count = np.unique(pid, return_inverse=True, return_counts=True)
    # --- (track, particle) groups: hits and weight
    order = np.lexsort((pid, tr))
    ts, ps = tr[order], pid[order]
    start = np.r_[True, (ts[1:] != ts[:-1]) | (ps[1:] != ps[:-1])]
    g_start = np.flatnonzero(start)
    g_n = np.diff(np.r_[g_start, n])
    g_w = np.add.reduceat(weight[order], g_start)
    g_track = ts[g_start]
    g_pid = ps[g_start]
    g_pcount = pid_count[pid_inv[order][g_start]]
    # --- per track: hits and majority group (most hits; ties -> smallest particle_id)
    t_first = np.r_[True, g_track[1:] != g_track[:-1]]
    t_start = np.flatnonzero(t_first)
    t_n = np.add.reduceat(g_n, t_start)
    best = np.lexsort((g_pid, -g_n, g_track))
    bt = g_track[best]
    maj = best[np.r_[True, bt[1:] != bt[:-1]]]
    m_n = g_n[maj]
    good = (2 * m_n > t_n) & (2 * m_n > g_pcount[maj]) & (g_pid[maj] != 0)
    return float(g_w[maj][good].sum() / total)


def read_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a submission CSV (``event_id,hit_id,track_id``) into int64 columns.

    Raises
    ------
    DataError
        Missing file or column, empty cells or non-integer values (naming the file).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such submission file")
    try:
        header = pacsv.open_csv(p).schema.names
    except Exception as exc:
        raise DataError(f"{p}: cannot read submission CSV ({exc})") from exc
    missing = [c for c in SUBMISSION_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{p}: not a TrackML submission: missing column(s) {', '.join(missing)} "
            f"(expected {','.join(SUBMISSION_COLUMNS)})"
        )
    try:
        table = pacsv.read_csv(
            p,
            convert_options=pacsv.ConvertOptions(
                include_columns=list(SUBMISSION_COLUMNS),
                column_types={c: pa.int64() for c in SUBMISSION_COLUMNS},
            ),
        )
    except Exception as exc:
        raise DataError(f"{p}: cannot read submission CSV ({' '.join(str(exc).split())})") from exc
    out = {}
    for c in SUBMISSION_COLUMNS:
        column = table.column(c)
        if column.null_count:
            raise DataError(f"{p}: column {c} has {column.null_count} empty value(s)")
        out[c] = column.to_numpy().astype(np.int64)
    return out


def score_submission(
    submission_csv: str | os.PathLike[str], truth_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """Score a submission file against the TrackML truth files of ``truth_dir``.

    Every event of the submission is scored (its ``event%09d-truth.csv`` must exist); truth
    events absent from the submission are reported in the log and not scored.

    Returns
    -------
    dict
        ``score`` (mean of the event scores), ``events`` (number scored) and
        ``per_event`` ({event_id: score}).

    Raises
    ------
    DataError
        Unreadable submission, an event without truth, or a missing / unknown / duplicated
        hit (the message names the file and the event).
    """
    from heplab.events.trackml import event_ids, read_event

    sub = read_submission(submission_csv)
    available = set(event_ids(truth_dir))
    ev = sub["event_id"]
    order = np.argsort(ev, kind="stable")
    ev_sorted = ev[order]
    if len(ev) == 0:
        raise DataError(f"{submission_csv}: the submission has no rows")
    starts = np.flatnonzero(np.r_[True, ev_sorted[1:] != ev_sorted[:-1]])
    ends = np.r_[starts[1:], len(ev)]
    per_event: dict[int, float] = {}
    for a, b in zip(starts, ends, strict=True):
        eid = int(ev_sorted[a])
        if eid not in available:
            raise DataError(
                f"{submission_csv}: event {eid} has no truth files in {truth_dir} "
                f"(no event{eid:09d}-hits.csv)"
            )
        event = read_event(truth_dir, eid, parts=("truth",))
        if event.truth is None:
            raise DataError(f"{truth_dir}: event{eid:09d}-truth.csv is missing")
        rows = order[a:b]
        per_event[eid] = score_event(
            event.truth,
            {"hit_id": sub["hit_id"][rows], "track_id": sub["track_id"][rows]},
            name=f"{submission_csv}: event {eid}",
        )
    unscored = sorted(available - set(per_event))
    if unscored:
        log.warning(
            "%s: %d truth event(s) not in the submission (not scored): %s",
            truth_dir,
            len(unscored),
            ", ".join(map(str, unscored[:10])),
        )
    return {
        "score": float(np.mean(list(per_event.values()))),
        "events": len(per_event),
        "per_event": per_event,
    }
