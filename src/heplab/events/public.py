"""Readers of the public jet-tagging benchmark files, into heplab's flat jet records.

Each reader returns one record per jet in the model of
:func:`heplab.reconstruction.jets.cluster.cluster_events`: constituent lists ``part_*``
(pT-ordered as in the file), jet scalars ``jet_*`` and labels, with the fields the format
provides (what each lacks is listed in its docstring). Units: GeV, radians. Errors (missing
file, wrong layout) raise :class:`heplab.errors.DataError` with a one-line message.

- :func:`read_top_tagging_hdf5`: the top-tagging landscape data set (Kasieczka et al.,
  arXiv:1902.09914; Zenodo 2603256), a pandas ``HDFStore`` (key ``table``) with columns
  ``E_i, PX_i, PY_i, PZ_i`` (i < 200, zero-padded), ``truthE, truthPX, truthPY, truthPZ``,
  ``ttv``, ``is_signal_new``.
- :func:`read_energyflow_qg_npz`: the Energy Flow quark/gluon set (Komiske, Metodiev,
  Thaler, arXiv:1810.05165; ``QG_jets*.npz``): ``X`` of shape (N, M, 4) holding
  (pt, y, phi, pid) per particle, zero-padded, and ``y`` (1 quark, 0 gluon).
- :func:`read_jetclass_root`: JetClass (Qu, Li, Qian, arXiv:2202.03772), ROOT files with
  a tree ``tree`` holding the weaver branches ``part_*``, ``jet_*``, ``label_*``.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, Final

import awkward as ak
import numpy as np

from heplab.errors import DataError

__all__ = ["read_energyflow_qg_npz", "read_jetclass_root", "read_top_tagging_hdf5"]

#: PDG masses [GeV] used to turn (pt, y, phi, pid) into four-momenta (others massless).
_MASSES: Final = {
    211: 0.13957,
    321: 0.493677,
    2212: 0.938272,
    2112: 0.939565,
    130: 0.497611,
    310: 0.497611,
    11: 0.000511,
    13: 0.105658,
    3122: 1.115683,
    3112: 1.197449,
    3222: 1.18937,
    3312: 1.32171,
    3334: 1.67245,
}
_CHARGED: Final = (211, 321, 2212, 11, 13, 3112, 3222, 3312, 3334)


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    return p


def _jets(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    counts: np.ndarray,
    extra_part: dict[str, np.ndarray] | None = None,
    extra_jet: dict[str, np.ndarray] | None = None,
) -> ak.Array:
    """Flat jet records from flat constituent arrays (jet order) and counts per jet."""
    counts = counts.astype(np.int64)
    jet_of = np.repeat(np.arange(len(counts)), counts)
    sums = [np.bincount(jet_of, a.astype(np.float64), len(counts)) for a in (px, py, pz, energy)]
    jpx, jpy, jpz, je = sums
    jpt = np.hypot(jpx, jpy)
    with np.errstate(divide="ignore", invalid="ignore"):
        jeta = np.arcsinh(np.where(jpt > 0, jpz / jpt, 0.0))
        ceta = np.arcsinh(pz / np.hypot(px, py))
    jphi = np.arctan2(jpy, jpx)
    dphi = (np.arctan2(py, px) - jphi[jet_of] + np.pi) % (2 * np.pi) - np.pi
    part = {
        "part_px": px,
        "part_py": py,
        "part_pz": pz,
        "part_energy": energy,
        "part_deta": ceta - jeta[jet_of],
        "part_dphi": dphi,
        **(extra_part or {}),
    }
    jet = {
        "jet_pt": jpt,
        "jet_eta": jeta,
        "jet_phi": jphi,
        "jet_energy": je,
        "jet_mass": np.sqrt(np.maximum(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0)),
        "jet_nparticles": counts.astype(np.int32),
        **(extra_jet or {}),
    }
    fields: dict[str, Any] = {}
    for name, values in jet.items():
        fields[name] = values if values.dtype.kind in "iub" else values.astype(np.float32)
    for name, values in part.items():
        values = values if values.dtype.kind in "iub" else values.astype(np.float32)
        fields[name] = ak.unflatten(values, counts)
    return ak.Array(fields)


# ------------------------------------------------------------------ top tagging (HDF5)
class _ListUnpickler(pickle.Unpickler):
    """Unpickles the plain lists and strings pandas stores as attributes; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _attr_list(value: Any) -> list[str]:
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.ravel()]
    if isinstance(value, np.void):
        value = value.tobytes()
    if isinstance(value, str):
        value = value.encode("latin-1")
    if not isinstance(value, (bytes, np.bytes_)):
        raise DataError(f"unexpected column attribute {value!r}")
    out = _ListUnpickler(io.BytesIO(bytes(value))).load()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in out]


def _hdf_columns(group: Any) -> dict[str, np.ndarray]:
    """Columns of a pandas ``frame_table`` ('table') or ``frame`` ('fixed') group."""
    cols: dict[str, np.ndarray] = {}
    if "table" in group:  # format="table": compound dataset, values_block_k
        table = group["table"][()]
        for block in table.dtype.names or ():
            if not block.startswith("values_block_"):
                continue
            names = _attr_list(group["table"].attrs[f"{block}_kind"])
            values = np.asarray(table[block]).reshape(len(table), -1)
            cols.update({n: values[:, k] for k, n in enumerate(names)})
        return cols
    k = 0
    while f"block{k}_items" in group:  # format="fixed": blockK_items / blockK_values
        names = _attr_list(group[f"block{k}_items"][()])
        values = np.asarray(group[f"block{k}_values"][()]).reshape(-1, len(names))
        cols.update({n: values[:, j] for j, n in enumerate(names)})
        k += 1
    return cols


def read_top_tagging_hdf5(path: str | os.PathLike[str], key: str = "table") -> ak.Array:
    """Read a top-tagging landscape file (``train.h5``, ``val.h5``, ``test.h5``).

    The constituents are the non-zero entries of ``E_i, PX_i, PY_i, PZ_i`` (i < 200), in the
    file's order (pT-ordered). Labels: ``label`` and ``label_Tbqq`` = ``is_signal_new``,
    ``label_QCD`` = 1 - ``is_signal_new``; ``truth_px, truth_py, truth_pz, truth_energy``
    (the top quark, zero for QCD) when present. Both pandas layouts are read with h5py
    (``format="table"``, the published one, and ``format="fixed"``).

    Missing from the format: ``part_pid``, ``part_charge``, impact parameters, particle
    classes, ``jet_sdmass``, ``jet_tau*``, ``event_id``, ``jet_parton_pid``.
    """
    import h5py

    p = _existing(path)
    try:
        with h5py.File(p, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Group):
                raise DataError(f"{p}: no pandas table {key!r} (a top-tagging landscape file?)")
            cols = _hdf_columns(f[key])
    except OSError as exc:
        raise DataError(f"{p}: not an HDF5 file ({exc})") from exc
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
        raise DataError(f"{p}: unreadable pandas column names ({exc})") from exc
    n_max = 0
    while f"E_{n_max}" in cols:
        n_max += 1
    needed = [f"{c}_{i}" for c in ("E", "PX", "PY", "PZ") for i in range(n_max)]
    if n_max == 0 or "is_signal_new" not in cols or any(c not in cols for c in needed):
        raise DataError(
            f"{p}: not the top-tagging layout (needs E_i, PX_i, PY_i, PZ_i and "
            "is_signal_new columns)"
        )

    def block(prefix: str) -> np.ndarray:
        return np.stack([cols[f"{prefix}_{i}"] for i in range(n_max)], axis=1)

    e, px, py, pz = block("E"), block("PX"), block("PY"), block("PZ")
    mask = e > 0
    label = np.asarray(cols["is_signal_new"]).astype(np.int8)
    extra = {
        "label": label,
        "label_QCD": (1 - label).astype(np.int8),
        "label_Tbqq": label.copy(),
    }
    for src, dst in (("truthPX", "px"), ("truthPY", "py"), ("truthPZ", "pz"), ("truthE", "energy")):
        if src in cols:
            extra[f"truth_{dst}"] = np.asarray(cols[src], dtype=np.float32)
    return _jets(px[mask], py[mask], pz[mask], e[mask], mask.sum(axis=1), extra_jet=extra)


# ------------------------------------------------------------------ energyflow q/g (npz)
def read_energyflow_qg_npz(path: str | os.PathLike[str]) -> ak.Array:
    """Read an Energy Flow quark/gluon file (``QG_jets.npz``, ``QG_jets_withbc_*.npz``).

    Particles with pt > 0 are kept, in the file's order; four-momenta from (pt, y, phi)
    with the PDG mass of the particle id (massless for photons and unknown ids).
    ``part_pid`` and ``part_charge`` and the particle classes come from the id.
    Labels: ``label`` = ``label_q`` = y, ``label_g`` = 1 - y (int8).

    Missing from the format: impact parameters, ``jet_sdmass``, ``jet_tau*``,
    ``jet_parton_pid``, the JetClass ``label_*`` columns.
    """
    p = _existing(path)
    try:
        with np.load(p, allow_pickle=False) as f:
            if "X" not in f or "y" not in f:
                raise DataError(f"{p}: no arrays 'X' and 'y' (an Energy Flow q/g file?)")
            x, y = np.asarray(f["X"]), np.asarray(f["y"])
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: not a numpy .npz file ({exc})") from exc
    if x.ndim != 3 or x.shape[2] != 4 or len(y) != len(x):
        raise DataError(
            f"{p}: X must have shape (N, M, 4) and y length N, not {x.shape}, {y.shape}"
        )
    mask = x[:, :, 0] > 0
    pt, rap, phi = (x[:, :, k][mask].astype(np.float64) for k in range(3))
    pid = x[:, :, 3][mask].astype(np.int32)
    apid = np.abs(pid)
    mass = np.zeros(len(pid))
    for k, m in _MASSES.items():
        mass[apid == k] = m
    mt = np.sqrt(pt**2 + mass**2)
    charge = np.where(np.isin(apid, _CHARGED), np.sign(pid), 0).astype(np.float32)
    charge[np.isin(apid, (11, 13))] *= -1  # e-, mu- have positive PDG ids
    is_e, is_mu, is_gamma = apid == 11, apid == 13, apid == 22
    extra_part = {
        "part_charge": charge,
        "part_pid": pid,
        "part_isChargedHadron": ((charge != 0) & ~is_e & ~is_mu).astype(np.float32),
        "part_isNeutralHadron": ((charge == 0) & ~is_gamma).astype(np.float32),
        "part_isPhoton": is_gamma.astype(np.float32),
        "part_isElectron": is_e.astype(np.float32),
        "part_isMuon": is_mu.astype(np.float32),
    }
    label = y.astype(np.int8)
    extra_jet = {"label": label, "label_q": label.copy(), "label_g": (1 - label).astype(np.int8)}
    return _jets(
        pt * np.cos(phi),
        pt * np.sin(phi),
        mt * np.sinh(rap),
        mt * np.cosh(rap),
        mask.sum(axis=1),
        extra_part,
        extra_jet,
    )


# ------------------------------------------------------------------ JetClass (ROOT)
_JETCLASS_REQUIRED: Final = ("part_px", "part_py", "part_pz", "part_energy", "jet_pt")


def read_jetclass_root(path: str | os.PathLike[str], tree: str = "tree") -> ak.Array:
    """Read a JetClass ROOT file: all branches of ``tree`` as they are (weaver names).

    ``jet_mass`` (absent from JetClass) is computed from the constituents' sum when
    missing, ``part_deta``/``part_dphi`` likewise. Missing from the format: ``part_pid``
    (JetClass has the particle classes ``part_is*`` instead), ``event_id``,
    ``jet_parton_pid``.
    """
    import uproot

    p = _existing(path)
    try:
        with uproot.open(p) as f:
            if tree not in f:
                raise DataError(f"{p}: no tree {tree!r} (a JetClass file?)")
            arrays = f[tree].arrays(library="ak")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{p}: not a readable ROOT file ({exc})") from exc
    missing = [b for b in _JETCLASS_REQUIRED if b not in arrays.fields]
    if missing:
        raise DataError(f"{p}: tree {tree!r} lacks the JetClass branches {missing}")
    counts = ak.to_numpy(ak.num(arrays.part_px))
    flat = {
        k: ak.to_numpy(ak.flatten(arrays[k])).astype(np.float64) for k in _JETCLASS_REQUIRED[:4]
    }
    built = _jets(flat["part_px"], flat["part_py"], flat["part_pz"], flat["part_energy"], counts)
    out = arrays
    for name in ("jet_mass", "part_deta", "part_dphi", "jet_nparticles"):
        if name not in out.fields:
            out = ak.with_field(out, built[name], name)
    return out
