"""High-level jet features for the classical taggers, vectorised over jets.

From the per-jet columns: ``jet_pt``, ``jet_mass``, ``jet_sdmass`` [GeV],
``jet_nparticles``, ``jet_tau1..3`` and the N-subjettiness ratios ``tau21 = tau2/tau1``,
``tau32 = tau3/tau2`` (Thaler, Van Tilburg, arXiv:1011.2268; 0 where the denominator is 0).

From the constituents (``part_px, part_py, part_deta, part_dphi``): the energy-correlation
function ratios with angular exponent beta = 1 (Larkoski, Salam, Thaler, arXiv:1305.0007;
Larkoski, Moult, Neill, arXiv:1409.6298), in the hadron-collider form with momentum
fractions ``z_i = pT_i / jet_pt`` and ``dR_ij`` from the constituents' (deta, dphi) to the
jet axis::

    e2 = sum_{i<j} z_i z_j dR_ij
    e3 = sum_{i<j<k} z_i z_j z_k dR_ij dR_ik dR_jk
    C2 = e3 / e2**2,   D2 = e3 / e2**3

The triplet sum is computed as batched matrix products on the ``ECF_MAX_CONSTITUENTS``
(= 50) hardest constituents of each jet (padded with z = 0), in chunks of jets, so its cost
is O(jets * 50^3) flops and O(chunk * 50^2) memory. Constituents beyond the 50 hardest carry
little pT and are dropped from the ECFs only (a documented approximation).
"""

from __future__ import annotations

from typing import Final

import awkward as ak
import numpy as np

from heplab.errors import DataError

__all__ = ["ECF_MAX_CONSTITUENTS", "FEATURES", "ecf_ratios", "feature_matrix", "jet_column"]

#: Constituents (hardest in pT) entering the energy-correlation functions.
ECF_MAX_CONSTITUENTS: Final = 50
_CHUNK: Final = 4096

#: The feature names, in the column order of :func:`feature_matrix`.
FEATURES: Final = (
    "jet_pt",
    "jet_mass",
    "jet_sdmass",
    "jet_nparticles",
    "jet_tau1",
    "jet_tau2",
    "jet_tau3",
    "tau21",
    "tau32",
    "c2",
    "d2",
)

_JET_COLUMNS: Final = (
    "jet_pt",
    "jet_mass",
    "jet_sdmass",
    "jet_nparticles",
    *(f"jet_tau{i}" for i in (1, 2, 3)),
)
_PART_COLUMNS: Final = ("part_px", "part_py", "part_deta", "part_dphi")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _require(jets: ak.Array, columns: tuple[str, ...] | list[str]) -> None:
    missing = [c for c in columns if c not in ak.fields(jets)]
    if missing:
        raise DataError(f"the jets lack the column(s) {', '.join(missing)}")


def jet_column(jets: ak.Array, name: str) -> np.ndarray:
    """One feature of :data:`FEATURES` (or any per-jet column) as float64."""
    if name == "tau21":
        return _ratio(jet_column(jets, "jet_tau2"), jet_column(jets, "jet_tau1"))
    if name == "tau32":
        return _ratio(jet_column(jets, "jet_tau3"), jet_column(jets, "jet_tau2"))
    if name in ("c2", "d2"):
        c2, d2 = ecf_ratios(jets)
        return c2 if name == "c2" else d2
    _require(jets, [name])
    return np.asarray(ak.to_numpy(jets[name]), dtype=np.float64)


def ecf_ratios(
    jets: ak.Array, max_constituents: int = ECF_MAX_CONSTITUENTS
) -> tuple[np.ndarray, np.ndarray]:
    """``(C2, D2)`` with beta = 1 for every jet (0 where ``e2 == 0``); see the module doc."""
    _require(jets, [*_PART_COLUMNS, "jet_pt"])
    n = int(max_constituents)
    pt = np.hypot(jets["part_px"], jets["part_py"])
    order = ak.argsort(pt, axis=1, ascending=False)[:, :n]
    jet_pt = np.asarray(ak.to_numpy(jets["jet_pt"]), dtype=np.float64)

    def padded(values: ak.Array) -> np.ndarray:
        return np.asarray(
            ak.to_numpy(ak.fill_none(ak.pad_none(values[order], n, axis=1, clip=True), 0.0)),
            dtype=np.float64,
        )

    z = padded(pt) / np.where(jet_pt > 0, jet_pt, 1.0)[:, None]
    eta, phi = padded(jets["part_deta"]), padded(jets["part_dphi"])
    e2 = np.empty(len(z))
    e3 = np.empty(len(z))
    for lo in range(0, len(z), _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        d = np.hypot(eta[sl, :, None] - eta[sl, None, :], phi[sl, :, None] - phi[sl, None, :])
        zz = z[sl]
        w = zz[:, :, None] * zz[:, None, :] * d  # z_i z_j dR_ij (zero diagonal)
        e2[sl] = 0.5 * w.sum(axis=(1, 2))
        # sum_k z_k dR_ik dR_jk = (D diag(z) D)_ij; the full sum over i, j, k counts each
        # triplet 6 times and terms with repeated indices vanish (dR_ii = 0).
        a = np.matmul(d * zz[:, None, :], d)
        e3[sl] = (w * a).sum(axis=(1, 2)) / 6.0
    c2 = _ratio(e3, e2**2)
    d2 = _ratio(e3, e2**3)
    return c2, d2


def feature_matrix(jets: ak.Array, features: tuple[str, ...] | list[str] = FEATURES) -> np.ndarray:
    """The ``(n_jets, n_features)`` float64 matrix of ``features`` (names of :data:`FEATURES`)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise DataError(f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(FEATURES)}")
    cols: dict[str, np.ndarray] = {}
    if "c2" in features or "d2" in features:
        cols["c2"], cols["d2"] = ecf_ratios(jets)
    for f in features:
        if f not in cols:
            cols[f] = jet_column(jets, f)
    return np.column_stack([cols[f] for f in features]) if features else np.empty((len(jets), 0))
