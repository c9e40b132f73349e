"""Hough-transform track finding for tracks from the beam line: the classical baseline.

Transverse plane: a track of charge q and transverse momentum pT [GeV] from the beam line
with direction phi0 crosses radius r [mm] at

    phi(r) = phi0 - asin(k r q / pT),   k = 0.3 B / 2 * 1e-3 [1/mm per 1/GeV]

(k = 0.3e-3 for B = 2 T; a positive charge turns clockwise seen from +z). Each hit thus
votes, for every bin of c = q / pT in [-1/pt_min, 1/pt_min], for the phi0 = phi + asin(k r
c) that it fits: a sinusoid-like curve in the (phi0, q/pT) plane whose curves from one
track cross in one bin. The accumulator counts the *distinct layers* voting in each bin
(a track leaves one hit per layer; noise and overlaps do not build up), counted by
sorting flattened (bin, layer) keys. Peaks are bins
with >= ``min_layers`` layers that are local maxima of their neighbourhood (phi0 wraps).

z slicing (to cut the combinatorics: at high occupancy a (phi0, q/pT) bin of the whole
detector collects hits of many layers by chance): the hits first vote in slices of
(z0, eta), z0 the track's z at the beam line in slices of width ``2 z0_max / n_z0`` and
eta = asinh((z - z0) / r) in slices of width ``eta_width``; a hit enters every eta slice
within ``eta_width / 2``-overlap of its eta seen from the z0 slice's centre, widened by
the shift d eta = (dz0 / 2) / sqrt(r^2 + (z - z0)^2) that the z0 slice's width allows (so
the inner pixel hits enter several slices). The (phi0, q/pT) accumulator is kept per
slice, sparse (bins with votes only), and a peak must be a local maximum among its 80
neighbours in (z0 slice, eta slice, q/pT, phi0) (ties: the lower bin wins).

Candidates: a peak's hits are the votes in its bin and the phi0 bins either side; they are
refined in r-z (each hit votes in fine (z0, eta) bins, eta = asinh((z - z0) / r); the
candidate keeps the hits of its best (z0, eta +- 1 bin) window by distinct layers), then
the candidates, most layers first, claim their still-free hits when those span >=
``min_layers`` layers (a greedy ambiguity resolution). Cost: O(hits x slices per hit x
q/pT bins) memory and time, no O(N^2).

References: P. V. C. Hough, US patent 3069654 (1962); the ATLAS FTK / Hough-transform
track finders; Amrouche et al. (TrackML) arXiv:1904.06778 for the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heplab.errors import ConfigError
from heplab.events.trackml import TrackMLEvent
from heplab.reconstruction.tracking.graph import check_event, hit_coordinates

__all__ = ["HoughConfig", "hough_tracks"]

I64 = npt.NDArray[np.int64]


@dataclass
class HoughConfig:
    """Binning and thresholds of :func:`hough_tracks` (GeV, mm, T)."""

    pt_min: float = 0.8
    n_qpt: int = 48
    n_phi: int = 720
    min_layers: int = 5
    z0_max: float = 200.0
    n_z0: int = 8
    eta_max: float = 4.0
    eta_width: float = 0.2
    n_z0_fine: int = 64
    n_eta_fine: int = 160
    b_field: float = 2.0

    def __post_init__(self) -> None:
        if min(self.pt_min, self.b_field, self.z0_max, self.eta_max, self.eta_width) <= 0:
            raise ConfigError(f"pt_min, b_field, z0_max, eta_max, eta_width must be > 0: {self}")
        if min(self.n_qpt, self.n_phi, self.n_z0) < 1 or self.n_phi < 3 or self.min_layers < 2:
            raise ConfigError(f"Hough bins must be >= 1 (n_phi >= 3), min_layers >= 2: {self}")


def _unique(x: I64) -> I64:
    """Sorted distinct values (a plain sort: faster than hashing for these int64 keys)."""
    a = np.sort(x, kind="stable")
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _distinct_layers(key: I64, layer: I64, n_layers: int) -> tuple[I64, I64]:
    """For bin keys with a layer each: (bins, number of distinct layers in each bin)."""
    bins = _unique(key * n_layers + layer) // n_layers  # sorted
    start = np.r_[True, bins[1:] != bins[:-1]]
    idx = np.nonzero(start)[0]
    return bins[idx], np.diff(np.r_[idx, len(bins)])


def _slice_votes(r: np.ndarray, z: np.ndarray, cfg: HoughConfig) -> tuple[I64, I64]:
    """(hit, slice) pairs of the (z0, eta) slicing (module doc)."""
    n_eta = int(np.ceil(2 * cfg.eta_max / cfg.eta_width))
    dz0 = 2 * cfg.z0_max / cfg.n_z0
    centres = -cfg.z0_max + dz0 * (np.arange(cfg.n_z0) + 0.5)
    rr = np.maximum(r, 1e-9)[:, None]
    dzc = z[:, None] - centres[None, :]
    eta = np.arcsinh(dzc / rr)
    half = cfg.eta_width / 2 + (dz0 / 2) / np.sqrt(rr**2 + dzc**2)
    lo = np.clip(np.floor((eta - half + cfg.eta_max) / cfg.eta_width), 0, n_eta - 1).astype(
        np.int64
    )
    hi = np.clip(np.floor((eta + half + cfg.eta_max) / cfg.eta_width), 0, n_eta - 1).astype(
        np.int64
    )
    count = (hi - lo + 1).ravel()
    hit = np.repeat(np.repeat(np.arange(len(r)), cfg.n_z0), count)
    z0_slice = np.repeat(np.tile(np.arange(cfg.n_z0), len(r)), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    eta_slice = np.repeat(lo.ravel(), count) + offset
    return hit, z0_slice * n_eta + eta_slice


def hough_tracks(event: TrackMLEvent, config: HoughConfig | None = None) -> I64:
    """Candidate label of each hit (row order; -1 = unassigned), see the module doc.

    Raises
    ------
    DataError
        An event without hits or with mismatched truth.
    """
    check_event(event)
    cfg = config or HoughConfig()
    c = hit_coordinates(event)
    r, phi, z = c["r"], c["phi"], c["z"]
    _, layer_idx = np.unique(c["layer"], return_inverse=True)
    layer = layer_idx.astype(np.int64).ravel()
    n_layers = int(layer.max()) + 1
    n_hits = len(r)
    labels = np.full(n_hits, -1, np.int64)
    k = 0.3 * cfg.b_field / 2.0 * 1e-3
    qpt = np.linspace(-1.0 / cfg.pt_min, 1.0 / cfg.pt_min, cfg.n_qpt)
    arg = k * r[:, None] * qpt[None, :]
    phi0 = phi[:, None] + np.arcsin(np.clip(arg, -1.0, 1.0))
    phi_bin = np.floor((phi0 + np.pi) / (2 * np.pi) * cfg.n_phi).astype(np.int64) % cfg.n_phi
    phi_bin[np.abs(arg) >= 1.0] = -1  # the track cannot reach this radius
    hit_s, slice_s = _slice_votes(r, z, cfg)
    # votes: (slice, q/pT bin, phi0 bin) per (hit, slice) and q/pT bin
    hit_v = np.repeat(hit_s, cfg.n_qpt)
    q_v = np.tile(np.arange(cfg.n_qpt), len(hit_s))
    p_v = phi_bin[hit_v, q_v]
    ok = p_v >= 0
    hit_v, q_v, p_v = hit_v[ok], q_v[ok], p_v[ok]
    sq_v = np.repeat(slice_s, cfg.n_qpt)[ok] * cfg.n_qpt + q_v  # (slice, q) row
    key = sq_v * cfg.n_phi + p_v
    bins, n_lay = _distinct_layers(key, layer[hit_v], n_layers)
    # sparse local maxima over (z0 slice, eta slice, q/pT, phi0): 80 neighbours
    n_eta = int(np.ceil(2 * cfg.eta_max / cfg.eta_width))
    cand_bins = bins[n_lay >= cfg.min_layers]
    cand_n = n_lay[n_lay >= cfg.min_layers]

    def count_at(keys: I64) -> I64:
        pos = np.clip(np.searchsorted(cand_bins, keys), 0, max(len(cand_bins) - 1, 0))
        return np.where(cand_bins[pos] == keys, cand_n[pos], 0)

    row, pb = cand_bins // cfg.n_phi, cand_bins % cfg.n_phi
    qb, sl = row % cfg.n_qpt, row // cfg.n_qpt
    zs, es = sl // n_eta, sl % n_eta
    is_peak = np.ones(len(cand_bins), bool)
    for dz in (-1, 0, 1):
        for de in (-1, 0, 1):
            for dq in (-1, 0, 1):
                for dp in (-1, 0, 1):
                    if dz == de == dq == dp == 0:
                        continue
                    valid = (qb + dq >= 0) & (qb + dq < cfg.n_qpt)
                    valid &= (zs + dz >= 0) & (zs + dz < cfg.n_z0)
                    valid &= (es + de >= 0) & (es + de < n_eta)
                    nrow = ((zs + dz) * n_eta + es + de) * cfg.n_qpt + qb + dq
                    nb = nrow * cfg.n_phi + (pb + dp) % cfg.n_phi
                    other = np.where(valid, count_at(nb), 0)
                    # ties: the lower key wins, so a plateau gives one peak
                    is_peak &= (cand_n > other) | ((cand_n == other) & ((nb > cand_bins) | ~valid))
    peaks = cand_bins[is_peak]
    if len(peaks) == 0:
        return labels
    # a peak's hits: votes in its bin or the phi0 bins either side
    cand_parts, hit_parts = [], []
    for dp in (-1, 0, 1):
        vk = sq_v * cfg.n_phi + (p_v + dp) % cfg.n_phi
        pos = np.clip(np.searchsorted(peaks, vk), 0, len(peaks) - 1)
        sel = peaks[pos] == vk
        cand_parts.append(pos[sel])
        hit_parts.append(hit_v[sel])
    pairs = _unique(np.concatenate(cand_parts) * n_hits + np.concatenate(hit_parts))
    kc, kh = _refine_rz(pairs // n_hits, pairs % n_hits, r, z, layer, n_layers, len(peaks), cfg)
    return _greedy_assign(kc, kh, layer, n_hits, cfg.min_layers)


def _refine_rz(
    kc: I64,
    kh: I64,
    r: np.ndarray,
    z: np.ndarray,
    layer: I64,
    n_layers: int,
    n_cand: int,
    cfg: HoughConfig,
) -> tuple[I64, I64]:
    """Keep each candidate's hits in its best fine (z0, eta +- 1 bin) window."""
    n_z0, n_eta = cfg.n_z0_fine, cfg.n_eta_fine
    z0 = np.linspace(-cfg.z0_max, cfg.z0_max, n_z0)
    eta = np.arcsinh((z[kh][:, None] - z0[None, :]) / np.maximum(r[kh][:, None], 1e-9))
    eb = np.floor((eta + cfg.eta_max) / (2 * cfg.eta_max) * n_eta).astype(np.int64)
    row, zb = np.nonzero((eb >= 0) & (eb < n_eta))
    cell = (kc[row] * n_z0 + zb) * n_eta + eb[row, zb]
    cells, cnt = _distinct_layers(cell, layer[kh[row]], n_layers)
    window = cnt.copy()
    for de in (-1, 1):
        nb = cells + de
        pos = np.clip(np.searchsorted(cells, nb), 0, len(cells) - 1)
        same = (cells // n_eta == nb // n_eta) & (cells[pos] == nb)
        window += np.where(same, cnt[pos], 0)
    owner = cells // (n_z0 * n_eta)
    order = np.lexsort((-window, owner))
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    best = np.full(n_cand, -1, np.int64)
    best[owner[first]] = cells[first]
    bc = best[kc[row]]
    keep = (bc >= 0) & (cell // n_eta == bc // n_eta) & (np.abs(cell - bc) <= 1)
    n_hits = len(r)
    kept = _unique(kc[row][keep] * n_hits + kh[row][keep])
    return kept // n_hits, kept % n_hits


def _greedy_assign(kc: I64, kh: I64, layer: I64, n_hits: int, min_layers: int) -> I64:
    """Candidates by decreasing number of layers claim their still-free hits (module doc)."""
    labels = np.full(n_hits, -1, np.int64)
    if len(kc) == 0:
        return labels
    n_layers = int(layer.max()) + 1
    cands, quality = _distinct_layers(kc, layer[kh], n_layers)
    starts = np.searchsorted(kc, cands)
    ends = np.searchsorted(kc, cands, side="right")
    for i in np.argsort(-quality, kind="stable"):
        if quality[i] < min_layers:
            break
        hits = kh[starts[i] : ends[i]]
        free = hits[labels[hits] < 0]
        if len(np.unique(layer[free])) >= min_layers:
            labels[free] = cands[i]
    return labels
