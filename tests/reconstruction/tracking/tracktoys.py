"""Toy TrackML events for the tracking tests: helices in a 2 T solenoid, made in milliseconds.

Charged particles start near the origin (vertex z ~ N(0, ``sigma_vz``)), with 1/pT flat
between 1/``pt_max`` and 1/``pt_min`` (GeV), eta flat in +-``eta_max`` and charge +-1. Each
follows a helix in B = 2 T along +z (transverse radius R = pT / (0.3 B) [m]; a positive
charge turns clockwise seen from +z) on its outgoing half turn and leaves a hit on every
surface it crosses:

- barrels (TrackML volumes 8, 13, 17) at R = 32, 72, 116, 172 | 260, 360, 500, 660 |
  820, 1020 mm with half lengths 490 | 1080 | 1080 mm;
- disks at |z| = 600, 700, 820, 960, 1100, 1300, 1500 mm (pixel endcaps 7 / 9, r 30-175
  mm) and |z| = 1220, 1500, 1800, 2150, 2600, 2950 mm (strip endcaps 12 / 14, r 230-700
  mm; 16 / 18, r 720-1020 mm); layer_id 2, 4, ... in increasing z.

Hits are smeared by ``sigma_rphi`` (r-phi) and ``sigma_z`` (z on barrels, r on disks), no
multiple scattering; ``noise`` random hits are spread over the surfaces. Truth weights are
uniform over the hits of particles with >= 4 hits (a simplification of TrackML's weights).
"""

from __future__ import annotations

import numpy as np

from heplab.events.trackml import TrackMLEvent

B_FIELD = 2.0  # T
#: (volume, layer, radius, half length) of the barrel cylinders
BARRELS = (
    *((8, 2 * (i + 1), r, 490.0) for i, r in enumerate((32.0, 72.0, 116.0, 172.0))),
    *((13, 2 * (i + 1), r, 1080.0) for i, r in enumerate((260.0, 360.0, 500.0, 660.0))),
    *((17, 2 * (i + 1), r, 1080.0) for i, r in enumerate((820.0, 1020.0))),
)
_PIX_Z = (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0)
_STRIP_Z = (1220.0, 1500.0, 1800.0, 2150.0, 2600.0, 2950.0)


def _disks() -> list[tuple[int, int, float, float, float]]:
    """(volume, layer, z, r_min, r_max) of every disk, layer ids increasing with z."""
    out = []
    for vol_neg, vol_pos, zs, rmin, rmax in (
        (7, 9, _PIX_Z, 30.0, 175.0),
        (12, 14, _STRIP_Z, 230.0, 700.0),
        (16, 18, _STRIP_Z, 720.0, 1020.0),
    ):
        for i, z in enumerate(sorted(-np.asarray(zs))):
            out.append((vol_neg, 2 * (i + 1), float(z), rmin, rmax))
        for i, z in enumerate(zs):
            out.append((vol_pos, 2 * (i + 1), float(z), rmin, rmax))
    return out


DISKS = tuple(_disks())


def helix_position(
    s: np.ndarray, phi0: np.ndarray, kappa: np.ndarray, vz: np.ndarray, cot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point at transverse arc length ``s`` [mm] of a helix from (0, 0, vz), signed curvature
    ``kappa`` = -q / R [1/mm] (direction angle phi0 + kappa s), dz/ds = ``cot``."""
    x = (np.sin(phi0 + kappa * s) - np.sin(phi0)) / kappa
    y = -(np.cos(phi0 + kappa * s) - np.cos(phi0)) / kappa
    return x, y, vz + s * cot


def make_event(
    n_particles: int = 50,
    *,
    seed: int = 0,
    event_id: int = 1,
    pt_min: float = 0.5,
    pt_max: float = 20.0,
    eta_max: float = 2.5,
    sigma_vz: float = 30.0,
    sigma_rphi: float = 0.02,
    sigma_z: float = 0.1,
    noise: int = 20,
) -> TrackMLEvent:
    """One toy event (see the module doc); hit rows are shuffled."""
    rng = np.random.default_rng(seed)
    n = n_particles
    pt = 1.0 / rng.uniform(1.0 / pt_max, 1.0 / pt_min, n)
    eta = rng.uniform(-eta_max, eta_max, n)
    phi0 = rng.uniform(-np.pi, np.pi, n)
    q = rng.choice([-1, 1], n)
    vz = rng.normal(0.0, sigma_vz, n)
    radius = pt / (0.3 * B_FIELD) * 1000.0  # mm
    kappa = -q / radius
    cot = np.sinh(eta)
    s_max = np.pi * radius  # outgoing half turn
    rows: list[tuple[np.ndarray, ...]] = []
    for vol, lay, r_layer, half in BARRELS:
        ok = r_layer < 2.0 * radius
        s = np.where(ok, 2.0 * radius * np.arcsin(np.clip(r_layer / (2.0 * radius), 0, 1)), 0.0)
        x, y, z = helix_position(s, phi0, kappa, vz, cot)
        ok &= np.abs(z) < half
        k = np.nonzero(ok)[0]
        rows.append((k, x[k], y[k], z[k], np.full(len(k), vol), np.full(len(k), lay), s[k]))
    for vol, lay, z_disk, rmin, rmax in DISKS:
        s = (z_disk - vz) / np.where(cot == 0, 1e-9, cot)
        ok = (s > 0) & (s < s_max)
        x, y, z = helix_position(np.where(ok, s, 0.0), phi0, kappa, vz, cot)
        r = np.hypot(x, y)
        ok &= (r > rmin) & (r < rmax)
        k = np.nonzero(ok)[0]
        rows.append(
            (
                k,
                x[k],
                y[k],
                np.full(len(k), z_disk),
                np.full(len(k), vol),
                np.full(len(k), lay),
                s[k],
            )
        )
    pidx, tx, ty, tz, vol_a, lay_a, s_a = (np.concatenate(c) for c in zip(*rows, strict=True))
    barrel = np.isin(vol_a, (8, 13, 17))
    # smear: r-phi always, z on barrels, r on disks
    r_t = np.hypot(tx, ty)
    phi_t = np.arctan2(ty, tx) + rng.normal(0, sigma_rphi, len(tx)) / r_t
    r_m = np.where(barrel, r_t, r_t + rng.normal(0, sigma_z, len(tx)))
    z_m = np.where(barrel, tz + rng.normal(0, sigma_z, len(tx)), tz)
    xm, ym = r_m * np.cos(phi_t), r_m * np.sin(phi_t)
    # true momentum at the hit: direction angle phi0 + kappa s
    ang = phi0[pidx] + kappa[pidx] * s_a
    tpx, tpy, tpz = pt[pidx] * np.cos(ang), pt[pidx] * np.sin(ang), pt[pidx] * cot[pidx]
    pid = (pidx + 1).astype(np.int64) * 1000
    # noise hits on random surfaces
    surfaces = [(v, la, r, h, True) for v, la, r, h in BARRELS] + [
        (v, la, z, (rmin, rmax), False) for v, la, z, rmin, rmax in DISKS
    ]
    pick = rng.integers(0, len(surfaces), noise)
    nx, ny, nz, nv, nl = [], [], [], [], []
    for i in pick:
        v, la, a, b, is_barrel = surfaces[i]
        ph = rng.uniform(-np.pi, np.pi)
        if is_barrel:
            rr, zz = a, rng.uniform(-b, b)
        else:
            rr, zz = rng.uniform(*b), a
        nx.append(rr * np.cos(ph))
        ny.append(rr * np.sin(ph))
        nz.append(zz)
        nv.append(v)
        nl.append(la)
    nn = len(pick)
    x_all = np.concatenate([xm, nx])
    y_all = np.concatenate([ym, ny])
    z_all = np.concatenate([z_m, nz])
    order = rng.permutation(len(x_all))
    n_hits = len(order)
    phi_all = np.arctan2(y_all, x_all)
    hits = {
        "hit_id": np.arange(1, n_hits + 1, dtype=np.int64),
        "x": x_all[order].astype(np.float32),
        "y": y_all[order].astype(np.float32),
        "z": z_all[order].astype(np.float32),
        "volume_id": np.concatenate([vol_a, nv]).astype(np.int32)[order],
        "layer_id": np.concatenate([lay_a, nl]).astype(np.int32)[order],
        "module_id": ((phi_all[order] + np.pi) / (2 * np.pi) * 64).astype(np.int32),
    }
    pid_all = np.concatenate([pid, np.zeros(nn, np.int64)])[order]
    nhits = np.bincount(pidx, minlength=n)
    good = np.isin(pid_all, pid[nhits[pidx] >= 4]) & (pid_all > 0)
    weight = good / max(int(good.sum()), 1)
    zeros = np.zeros(nn)
    truth = {
        "hit_id": hits["hit_id"].copy(),
        "particle_id": pid_all,
        "tx": np.concatenate([tx, nx])[order].astype(np.float32),
        "ty": np.concatenate([ty, ny])[order].astype(np.float32),
        "tz": np.concatenate([tz, nz])[order].astype(np.float32),
        "tpx": np.concatenate([tpx, zeros])[order].astype(np.float32),
        "tpy": np.concatenate([tpy, zeros])[order].astype(np.float32),
        "tpz": np.concatenate([tpz, zeros])[order].astype(np.float32),
        "weight": weight.astype(np.float32),
    }
    phi_p = phi0
    particles = {
        "particle_id": (np.arange(n, dtype=np.int64) + 1) * 1000,
        "vx": np.zeros(n, np.float32),
        "vy": np.zeros(n, np.float32),
        "vz": vz.astype(np.float32),
        "px": (pt * np.cos(phi_p)).astype(np.float32),
        "py": (pt * np.sin(phi_p)).astype(np.float32),
        "pz": (pt * cot).astype(np.float32),
        "q": q.astype(np.int32),
        "nhits": nhits.astype(np.int32),
    }
    return TrackMLEvent(event_id, hits, truth, particles, None)


def make_events(
    n_events: int, n_particles: int = 50, seed: int = 0, **kw: float
) -> list[TrackMLEvent]:
    """``n_events`` toy events with seeds ``seed``, ``seed + 1``, ..."""
    return [
        make_event(n_particles, seed=seed + i, event_id=i + 1, **kw)  # type: ignore[arg-type]
        for i in range(n_events)
    ]
