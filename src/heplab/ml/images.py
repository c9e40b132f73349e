"""Jet images: constituents pixelated in the (eta, phi) plane, with the standard preprocessing.

:func:`jet_images` turns jets records (the weaver / JetClass columns ``part_px, part_py,
part_deta, part_dphi`` and, for the charge channels, ``part_charge``) into float32 images
``(n, C, npix, npix)``, the inputs of the jet-image CNNs (DeepTop, Kasieczka, Plehn,
Russell, Schell, arXiv:1701.08784; Macaluso, Shih, arXiv:1803.00107; the CNN and ResNeXt of
the top-tagging landscape, arXiv:1902.09914). The preprocessing, each step switchable, in
the order applied to the constituents' ``(deta, dphi)`` to the jet axis:

1. ``centre``: ``"centroid"`` shifts the pT-weighted centroid to the origin,
   ``"hardest"`` the hardest constituent (DeepTop's leading subjet), ``"none"`` keeps the
   jet axis there.
2. ``rotate``: turns the jet about the origin so that the principal axis of the
   pT-weighted second moments (the major axis of ``sum pT (u, v)^T (u, v)``) is vertical.
   A two-prong jet then lies along the vertical axis.
3. ``flip``: reflects ``v -> -v`` when more pT lies below the horizontal axis than above,
   and ``u -> -u`` when more lies left of the vertical axis than right of it: the heavier
   half is always on top, the heavier side on the right. With ``centre="hardest"`` the
   hardest constituent sits at the origin, so a second prong lands on top; with
   ``"centroid"`` the harder of two prongs is nearer the centroid and lands on top.
   Steps 1-3 weigh all the (kept) constituents, also those outside the window.
4. Pixelation: a square window ``[-half_width, half_width]^2`` cut into ``npix x npix``
   pixels; constituents outside are dropped. ``img[:, c, i, j]`` is pixel row ``i`` along
   the vertical ``v`` (``i = 0`` at ``v = -half_width``, so "top" is large ``i``; plot
   with ``imshow(origin="lower")``) and column ``j`` along the horizontal ``u``. An odd
   ``npix`` puts the origin at a pixel centre, an even one on a pixel corner.
5. ``normalise``: every channel of every image is divided by its sum (which is then 1;
   empty channels stay 0). Intensities are pT [GeV] (or counts) before that.

Defaults: 40 x 40 pixels (DeepTop, the landscape CNN) over a half-width of 1.0, i.e. pixels
of 0.05 x 0.05: the window holds the whole cone of an R = 0.8 jet (AK8, JetClass, the
top-tagging data set) when the image centre lies within 0.2 of the jet axis, which the
pT-weighted centroid always nearly does (it *is* the E-scheme axis at small angles) and the
hardest constituent mostly does.

Channels (:data:`IMAGE_CHANNELS`; several make a "colour" image, Komiske, Metodiev,
Schwartz arXiv:1612.01551): ``pt`` (pT of all constituents), ``charged_pt`` and
``neutral_pt`` (pT of the charged / neutral ones, by ``part_charge != 0``),
``charged_n`` (multiplicity of charged constituents) and ``n`` (all constituents).

Everything is vectorised over flat constituent arrays: per-jet moments with
``np.bincount`` over the jet index, pixels with ``np.bincount`` over
``(jet * npix + row) * npix + column`` in blocks of jets (no Python loop over jets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError

__all__ = [
    "CENTRES",
    "IMAGE_CHANNELS",
    "check_image_settings",
    "jet_images",
    "pixelate",
]

#: Channel names of :func:`jet_images` (module docstring).
IMAGE_CHANNELS: Final = ("pt", "charged_pt", "neutral_pt", "charged_n", "n")
#: Channels that need ``part_charge``.
_CHARGE_CHANNELS: Final = frozenset({"charged_pt", "neutral_pt", "charged_n"})
#: Choices of the ``centre`` step.
CENTRES: Final = ("centroid", "hardest", "none")
_REQUIRED: Final = ("part_px", "part_py", "part_deta", "part_dphi")
#: Largest pixel histogram filled at once (entries): bounds the memory of a block of jets.
_BLOCK: Final = 1 << 23


def check_image_settings(
    npix: int, half_width: float, channels: Sequence[str], centre: str, *, who: str = "jet images"
) -> None:
    """Raise :class:`ConfigError` (its message starting with ``who``) for impossible
    image settings."""
    if isinstance(npix, bool) or not isinstance(npix, (int, np.integer)) or npix < 4:
        raise ConfigError(f"{who}: npix must be an integer >= 4, not {npix!r}")
    if not half_width > 0:
        raise ConfigError(f"{who}: half_width must be > 0, not {half_width!r}")
    if isinstance(channels, str) or not channels:
        raise ConfigError(
            f"{who}: channels must be a non-empty list of {', '.join(IMAGE_CHANNELS)}"
        )
    bad = [c for c in channels if c not in IMAGE_CHANNELS]
    if bad:
        raise ConfigError(
            f"{who}: unknown channel(s) {', '.join(map(repr, bad))}; "
            f"choose from {', '.join(IMAGE_CHANNELS)}"
        )
    if len(set(channels)) != len(channels):
        raise ConfigError(f"{who}: repeated channel in {list(channels)}")
    if centre not in CENTRES:
        raise ConfigError(f"{who}: centre must be one of {', '.join(CENTRES)}, not {centre!r}")


def _flat(jets: ak.Array, column: str) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(jets[column], axis=1)), dtype=np.float64)


def jet_images(
    jets: ak.Array,
    *,
    npix: int = 40,
    half_width: float = 1.0,
    channels: Sequence[str] = ("pt",),
    centre: str = "centroid",
    rotate: bool = True,
    flip: bool = True,
    normalise: bool = True,
    max_particles: int | None = None,
) -> np.ndarray:
    """Images ``(n, len(channels), npix, npix)`` (float32) of ``jets`` (module docstring).

    ``max_particles`` keeps only the hardest constituents of each jet (all when None).
    :class:`DataError` names a missing column (``part_charge`` only when a charge channel
    is asked for).
    """
    check_image_settings(npix, half_width, channels, centre)
    fields = ak.fields(jets)
    missing = [c for c in _REQUIRED if c not in fields]
    if missing:
        raise DataError(f"jet images need the constituent column(s) {', '.join(missing)}")
    needs_charge = sorted(_CHARGE_CHANNELS.intersection(channels))
    if needs_charge and "part_charge" not in fields:
        raise DataError(
            f"the jet-image channel(s) {', '.join(needs_charge)} need the 'part_charge' column, "
            "which the jets lack"
        )
    counts = np.asarray(ak.to_numpy(ak.num(jets["part_px"], axis=1)), dtype=np.int64)
    pt = np.hypot(_flat(jets, "part_px"), _flat(jets, "part_py"))
    charged = _flat(jets, "part_charge") != 0 if needs_charge else None
    return pixelate(
        counts,
        pt,
        _flat(jets, "part_deta"),
        _flat(jets, "part_dphi"),
        charged,
        npix=npix,
        half_width=half_width,
        channels=channels,
        centre=centre,
        rotate=rotate,
        flip=flip,
        normalise=normalise,
        max_particles=max_particles,
    )


def pixelate(
    counts: np.ndarray,
    pt: np.ndarray,
    deta: np.ndarray,
    dphi: np.ndarray,
    charged: np.ndarray | None = None,
    *,
    npix: int = 40,
    half_width: float = 1.0,
    channels: Sequence[str] = ("pt",),
    centre: str = "centroid",
    rotate: bool = True,
    flip: bool = True,
    normalise: bool = True,
    max_particles: int | None = None,
) -> np.ndarray:
    """The images of :func:`jet_images` from flat constituent arrays.

    Parameters
    ----------
    counts
        Constituents per jet ``(n,)``; the flat arrays hold jet 0's, then jet 1's, ...
    pt, deta, dphi
        Flat transverse momenta [GeV] and angles to the jet axis.
    charged
        Flat bool, True for a charged constituent (needed by the charge channels).
    """
    check_image_settings(npix, half_width, channels, centre)
    if charged is None and _CHARGE_CHANNELS.intersection(channels):
        raise DataError("the charge channels of a jet image need the constituents' charges")
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    jet = np.repeat(np.arange(n), counts)
    pt = np.asarray(pt, dtype=np.float64)
    u = np.asarray(deta, dtype=np.float64)
    v = np.asarray(dphi, dtype=np.float64)
    if charged is not None:
        charged = np.asarray(charged, dtype=bool)
    if len(pt) != len(jet) or len(u) != len(jet) or len(v) != len(jet):
        raise DataError("jet images: the constituent arrays do not match the counts")

    if max_particles is not None or centre == "hardest":
        # rank of each constituent in its jet by pT (0 = hardest), without a loop over jets
        order = np.lexsort((-pt, jet))
        starts = np.cumsum(counts) - counts
        rank = np.empty(len(pt), dtype=np.int64)
        rank[order] = np.arange(len(pt)) - starts[jet[order]]
        if max_particles is not None:
            keep = rank < max_particles
            jet, pt, u, v, rank = jet[keep], pt[keep], u[keep], v[keep], rank[keep]
            if charged is not None:
                charged = charged[keep]

    def per_jet(weights: np.ndarray) -> np.ndarray:
        return np.bincount(jet, weights=weights, minlength=n)

    if centre == "centroid":
        total = np.maximum(per_jet(pt), np.finfo(np.float64).tiny)
        u = u - (per_jet(pt * u) / total)[jet]
        v = v - (per_jet(pt * v) / total)[jet]
    elif centre == "hardest":
        lead = rank == 0
        cu, cv = np.zeros(n), np.zeros(n)
        cu[jet[lead]], cv[jet[lead]] = u[lead], v[lead]
        u, v = u - cu[jet], v - cv[jet]
    if rotate:
        # major axis at angle theta to the u axis; turn it by pi/2 - theta onto the v axis
        theta = 0.5 * np.arctan2(2.0 * per_jet(pt * u * v), per_jet(pt * (u * u - v * v)))
        alpha = 0.5 * np.pi - theta
        c, s = np.cos(alpha)[jet], np.sin(alpha)[jet]
        u, v = u * c - v * s, u * s + v * c
    if flip:
        v = v * np.where(per_jet(pt * (v < 0)) > per_jet(pt * (v > 0)), -1.0, 1.0)[jet]
        u = u * np.where(per_jet(pt * (u < 0)) > per_jet(pt * (u > 0)), -1.0, 1.0)[jet]

    scale = npix / (2.0 * half_width)
    row = np.floor((v + half_width) * scale)
    col = np.floor((u + half_width) * scale)
    inside = (row >= 0) & (row < npix) & (col >= 0) & (col < npix)
    jet = jet[inside]
    pixel = (row[inside] * npix + col[inside]).astype(np.int64)
    pt = pt[inside]
    if charged is not None:
        charged = charged[inside]
    weights = []
    for name in channels:
        if name == "pt":
            weights.append(pt)
        elif name == "n":
            weights.append(np.ones_like(pt))
        else:
            assert charged is not None
            sel = charged if name.startswith("charged") else ~charged
            weights.append(np.where(sel, pt if name.endswith("_pt") else 1.0, 0.0))

    out = np.zeros((n, len(channels), npix, npix), dtype=np.float32)
    area = npix * npix
    block = max(1, _BLOCK // area)
    bounds = np.searchsorted(jet, np.arange(0, n + block, block))
    for k, first in enumerate(range(0, n, block)):
        last = min(first + block, n)
        lo, hi = bounds[k], bounds[k + 1]
        index = (jet[lo:hi] - first) * area + pixel[lo:hi]
        for c, w in enumerate(weights):
            flat = np.bincount(index, weights=w[lo:hi], minlength=(last - first) * area)
            hist = np.asarray(flat, dtype=np.float64).reshape(last - first, npix, npix)
            if normalise:
                total = hist.sum(axis=(1, 2), keepdims=True)
                hist = hist / np.where(total > 0, total, 1.0)
            out[first:last, c] = hist
    return out
