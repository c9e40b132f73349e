"""Helix fit of built tracks: pT, eta, phi, d0, z0 and their residuals against truth.

In a solenoid field B along +z a charged track is a helix: a circle in x-y of radius

    R [mm] = pT [GeV] / (0.3 B [T]) * 1000,    i.e. pT = 0.3e-3 B R

and a straight line in (s, z), s the transverse arc length. The fit:

1. circle in x-y by the algebraic least-squares fit of Taubin (IEEE PAMI 13 (1991) 1115)
   in its SVD form (Chernov, "Circular and linear regression", 2010): with centred
   coordinates and Z = x^2 + y^2, the circle A Z + B x + C y + D = 0 minimising the
   algebraic distances under Taubin's normalisation is the smallest right-singular
   vector of [ (Z - <Z>) / (2 sqrt<Z>), x, y ]. Unlike the Kasa fit it is unbiased for
   short arcs (high pT);
2. charge from the sense of rotation of the hits ordered by radius (a positive charge
   turns clockwise seen from +z); the point of closest approach to the beam line
   P = c (1 - R / |c|) and the direction there give phi and the signed transverse impact
   parameter d0 = (P x t)_z (the convention of :mod:`heplab.detector.tracker`: d0 > 0
   when the beam line is to the left of the track);
3. a least-squares line z = z0 + s cot(theta) with s the arc length from P;
   eta = asinh(cot theta).

Truth parameters come from the particles table (production vertex and momentum), with
d0 = (vx py - vy px) / pT and z0 = vz - (vx px + vy py) / pT * pz / pT as in
:mod:`heplab.detector.tracker` (straight-line approximation near the beam line).

Expected resolution without multiple scattering (Gluckstern, NIM 24 (1963) 381): N
equally spaced points over a lever arm L with r-phi resolution sigma give
sigma(1/R) = sigma / L^2 sqrt(720 / (N + 4)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.errors import DataError
from heplab.events.trackml import TrackMLEvent

__all__ = [
    "HelixFit",
    "fit_circle",
    "fit_helix",
    "fit_tracks",
    "gluckstern_sigma_curvature",
    "track_residuals",
    "truth_parameters",
]

F64 = npt.NDArray[np.float64]


def gluckstern_sigma_curvature(sigma: float, lever_arm: float, n_points: int) -> float:
    """sigma(1/R) [1/mm] of N equally spaced points over ``lever_arm`` [mm] (module doc)."""
    return sigma / lever_arm**2 * np.sqrt(720.0 / (n_points + 4))


def fit_circle(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float, float]:
    """Taubin circle fit (SVD form): centre (xc, yc) and radius R, all in mm.

    Raises
    ------
    DataError
        With fewer than 3 points.
    """
    xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(xa) < 3:
        raise DataError(f"a circle fit needs >= 3 points, got {len(xa)}")
    xm, ym = xa.mean(), ya.mean()
    u, v = xa - xm, ya - ym
    zz = u * u + v * v
    zmean = zz.mean()
    if zmean <= 0:
        raise DataError("a circle fit needs distinct points")
    z0 = (zz - zmean) / (2.0 * np.sqrt(zmean))
    _, _, vt = np.linalg.svd(np.stack([z0, u, v], 1), full_matrices=False)
    a = vt[2].copy()
    a[0] /= 2.0 * np.sqrt(zmean)
    d = -zmean * a[0]
    if a[0] == 0:  # a straight line: infinite radius
        return float("inf"), float("inf"), float("inf")
    xc = -a[1] / a[0] / 2.0 + xm
    yc = -a[2] / a[0] / 2.0 + ym
    radius = np.sqrt(a[1] ** 2 + a[2] ** 2 - 4 * a[0] * d) / abs(a[0]) / 2.0
    return float(xc), float(yc), float(radius)


@dataclass
class HelixFit:
    """Fitted helix parameters of one track (GeV, rad, mm)."""

    pt: float
    eta: float
    phi: float
    d0: float
    z0: float
    q: int
    radius: float
    n_hits: int


def fit_helix(
    x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, *, b_field: float = 2.0
) -> HelixFit:
    """Fit one track's hits (mm) with a helix from near the beam line (module doc)."""
    xa, ya, za = (np.asarray(v, np.float64) for v in (x, y, z))
    xc, yc, radius = fit_circle(xa, ya)
    order = np.argsort(np.hypot(xa, ya) ** 2 + za**2)
    xa, ya, za = xa[order], ya[order], za[order]
    c = np.array([xc, yc])
    rc = float(np.hypot(xc, yc))
    # sense of rotation: angles of the hits around the centre, unwrapped along the track
    ang = np.unwrap(np.arctan2(ya - yc, xa - xc))
    turn = ang[-1] - ang[0]
    q = -1 if turn > 0 else 1  # counter-clockwise = negative charge in B along +z
    pca = c * (1.0 - radius / rc)
    rel = (pca - c) / radius
    tangent = np.array([rel[1], -rel[0]]) if q > 0 else np.array([-rel[1], rel[0]])
    d0 = float(pca[0] * tangent[1] - pca[1] * tangent[0])
    phi = float(np.arctan2(tangent[1], tangent[0]))
    ang_pca = np.arctan2(pca[1] - yc, pca[0] - xc)
    s = radius * np.abs(np.unwrap(np.r_[ang_pca, np.arctan2(ya - yc, xa - xc)])[1:] - ang_pca)
    if len(np.unique(s)) >= 2:
        cot, z0 = np.polyfit(s, za, 1)
    else:
        cot, z0 = 0.0, float(za.mean())
    return HelixFit(
        pt=0.3e-3 * b_field * radius,
        eta=float(np.arcsinh(cot)),
        phi=phi,
        d0=d0,
        z0=float(z0),
        q=q,
        radius=radius,
        n_hits=len(xa),
    )


def fit_tracks(
    event: TrackMLEvent, track_id: npt.ArrayLike, *, min_hits: int = 3, b_field: float = 2.0
) -> dict[str, np.ndarray]:
    """Helix fit of every track with >= ``min_hits`` hits: columns track_id, pt, eta, phi,
    d0, z0, q, n_hits (one row per track)."""
    tid = np.asarray(track_id, np.int64)
    if len(tid) != len(event.hits["hit_id"]):
        raise DataError(f"{len(tid)} track ids for {len(event.hits['hit_id'])} hits")
    x, y, z = (np.asarray(event.hits[k], np.float64) for k in ("x", "y", "z"))
    order = np.argsort(tid, kind="stable")
    uniq, start, count = np.unique(tid[order], return_index=True, return_counts=True)
    rows: list[tuple[int, HelixFit]] = []
    for t, s0, n in zip(uniq, start, count, strict=True):
        if n < min_hits:
            continue
        idx = order[s0 : s0 + n]
        try:
            rows.append((int(t), fit_helix(x[idx], y[idx], z[idx], b_field=b_field)))
        except DataError:
            continue
    cols = ("pt", "eta", "phi", "d0", "z0", "q", "n_hits")
    out = {"track_id": np.array([t for t, _ in rows], np.int64)}
    for col in cols:
        out[col] = np.array([getattr(f, col) for _, f in rows])
    return out


def truth_parameters(event: TrackMLEvent) -> dict[str, np.ndarray]:
    """Truth pt, eta, phi, d0, z0, q per particle of the particles table (module doc).

    Raises
    ------
    DataError
        If the event has no particles table.
    """
    p = event.particles
    if p is None:
        raise DataError(f"event {event.event_id}: truth parameters need the particles table")
    px, py, pz = (np.asarray(p[k], np.float64) for k in ("px", "py", "pz"))
    vx, vy, vz = (np.asarray(p[k], np.float64) for k in ("vx", "vy", "vz"))
    pt = np.hypot(px, py)
    safe = np.where(pt > 0, pt, 1.0)
    return {
        "particle_id": np.asarray(p["particle_id"], np.int64),
        "pt": pt,
        "eta": np.arcsinh(pz / safe),
        "phi": np.arctan2(py, px),
        "d0": (vx * py - vy * px) / safe,
        "z0": vz - (vx * px + vy * py) / safe * pz / safe,
        "q": np.asarray(p["q"], np.float64),
    }


def track_residuals(
    event: TrackMLEvent, track_id: npt.ArrayLike, *, min_hits: int = 3, b_field: float = 2.0
) -> dict[str, np.ndarray]:
    """Fit the tracks and compare with their majority particle (> 50 % of the hits).

    Columns: track_id, particle_id, true_pt, and for pt (relative: fit / true - 1), eta,
    phi (wrapped), d0, z0 the residual ``res_<name>``, plus ``charge_ok``.
    """
    if event.truth is None:
        raise DataError(f"event {event.event_id}: residuals need truth")
    fits = fit_tracks(event, track_id, min_hits=min_hits, b_field=b_field)
    tid = np.asarray(track_id, np.int64)
    pid = np.asarray(event.truth["particle_id"], np.int64)
    truth = truth_parameters(event)
    order = np.argsort(truth["particle_id"])
    keep_t, keep_p = [], []
    for i, t in enumerate(fits["track_id"]):
        hits = pid[tid == t]
        ids, cnt = np.unique(hits, return_counts=True)
        j = int(np.argmax(cnt))
        if ids[j] == 0 or 2 * cnt[j] <= len(hits):
            continue
        pos = np.searchsorted(truth["particle_id"][order], ids[j])
        if pos >= len(order) or truth["particle_id"][order[pos]] != ids[j]:
            continue
        keep_t.append(i)
        keep_p.append(order[pos])
    ti, pi = np.array(keep_t, np.int64), np.array(keep_p, np.int64)
    dphi = fits["phi"][ti] - truth["phi"][pi]
    return {
        "track_id": fits["track_id"][ti],
        "particle_id": truth["particle_id"][pi],
        "true_pt": truth["pt"][pi],
        "res_pt": fits["pt"][ti] / truth["pt"][pi] - 1.0,
        "res_eta": fits["eta"][ti] - truth["eta"][pi],
        "res_phi": (dphi + np.pi) % (2 * np.pi) - np.pi,
        "res_d0": fits["d0"][ti] - truth["d0"][pi],
        "res_z0": fits["z0"][ti] - truth["z0"][pi],
        "charge_ok": fits["q"][ti] == truth["q"][pi],
    }
