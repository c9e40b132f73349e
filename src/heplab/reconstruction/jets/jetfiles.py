"""Read and write files of jets (one record per jet), whatever their format.

:func:`read_jets` takes what physicists have:

- parquet files or directories, heplab runs (``heplab jets cluster`` / ``jets build``
  outputs) and HDF5 files written by heplab: through :func:`heplab.events.read_events`;
- ROOT files whose TTree *or* RNTuple holds one jet per entry with the weaver / JetClass
  branches (``part_px`` ...), e.g. the JetClass files or anything written with uproot
  (``file["tree"] = {...}`` makes an RNTuple with uproot >= 5.6, ``mktree`` a TTree);
  other ROOT files (NanoAOD, Delphes) go through :func:`heplab.events.read_events`;
- the public top-tagging HDF5 (``E_i, PX_i, PY_i, PZ_i, is_signal_new``) and the
  energyflow quark/gluon ``.npz`` (:mod:`heplab.events.public`).

:func:`write_jets` writes jets records as parquet, ROOT (a TTree ``tree`` whose jagged
``part_*`` branches share the counter ``npart``, JetClass layout) or HDF5, atomically,
refusing to replace an existing file unless asked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Literal

import awkward as ak
import numpy as np

from heplab.errors import DataError
from heplab.events._util import atomic_output, existing_path

__all__ = ["JetFormat", "jet_file_format", "read_jets", "write_jets"]

JetFormat = Literal["parquet", "root", "hdf5"]

#: The tree name of the ROOT files :func:`write_jets` makes (JetClass's).
JET_TREE: Final = "tree"
_ROOT_CLASSES: Final = ("TTree", "ROOT::RNTuple")


def jet_file_format(path: str | os.PathLike[str]) -> JetFormat:
    """The format :func:`write_jets` should use for jets read from ``path``: the same as
    the input for parquet, ROOT and HDF5, parquet otherwise (``.npz``, directories)."""
    p = Path(path)
    if p.is_file():
        with p.open("rb") as f:
            head = f.read(8)
        if head.startswith(b"root"):
            return "root"
        if head.startswith(b"\x89HDF"):
            return "hdf5"
    return "parquet"


def _root_jet_trees(file: Any) -> list[str]:
    names = file.classnames(cycle=False)
    return [n for n, cls in names.items() if cls in _ROOT_CLASSES]


def _read_root_jets(p: Path) -> ak.Array | None:
    """The jets of the ROOT file's only tree/RNTuple with a ``part_px`` field, or None."""
    from heplab.events.root import open_root

    file = open_root(p)
    try:
        candidates = []
        for name in _root_jet_trees(file):
            obj = file[name]
            keys = obj.keys() if hasattr(obj, "keys") else []
            if "part_px" in keys:
                candidates.append(name)
        if not candidates:
            return None
        if len(candidates) > 1:
            raise DataError(
                f"{p}: several trees hold jets ({', '.join(candidates)}); split the file"
            )
        try:
            arrays = file[candidates[0]].arrays(library="ak")
        except Exception as exc:
            raise DataError(f"{p}: cannot read {candidates[0]!r} (corrupt file?) ({exc})") from exc
    finally:
        file.close()
    # uproot's jagged counters (npart, ...) are bookkeeping, not jet properties
    keep = [f for f in arrays.fields if not (f.startswith("n") and f"{f[1:]}_px" in arrays.fields)]
    return arrays[keep]


def _is_top_tagging_hdf5(p: Path) -> bool:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            return "table" in f and "heplab_awkward" not in f["table"].attrs
    except OSError:
        return False


def read_jets(path: str | os.PathLike[str]) -> ak.Array:
    """Jets records from ``path`` (see the module docstring for the formats).

    Raises
    ------
    DataError
        Missing or unreadable path, or no jets with constituent columns in it.
    """
    from heplab.events import read_events
    from heplab.events.public import read_energyflow_qg_npz, read_top_tagging_hdf5

    p = existing_path(path)
    jets: ak.Array | None = None
    kind = jet_file_format(p)
    if p.suffix == ".npz":
        jets = read_energyflow_qg_npz(p)
    elif kind == "root":
        jets = _read_root_jets(p)
    elif kind == "hdf5" and _is_top_tagging_hdf5(p):
        jets = read_top_tagging_hdf5(p)
    if jets is None:
        jets = read_events(p)
    if "part_px" not in ak.fields(jets):
        raise DataError(
            f"{p}: holds no jets with constituents (no part_px column); "
            "make jets with `heplab jets cluster`"
        )
    return jets


def _root_branches(jets: ak.Array) -> dict[str, Any]:
    """``{"part": record of the part_* lists, other: numpy}`` for uproot's mktree."""
    fields = ak.fields(jets)
    part = [f for f in fields if f.startswith("part_")]
    out: dict[str, Any] = {}
    if part:
        out["part"] = ak.zip({f.removeprefix("part_"): jets[f] for f in part})
    for f in fields:
        if f in part:
            continue
        values = jets[f]
        if values.ndim != 1:
            raise DataError(f"cannot write the nested column {f!r} of the jets to ROOT")
        out[f] = np.asarray(ak.to_numpy(values))
    return out


def write_jets(
    jets: ak.Array,
    path: str | os.PathLike[str],
    format: JetFormat = "parquet",
    *,
    overwrite: bool = False,
) -> Path:
    """Write jets records to ``path`` as ``format``, atomically; returns the path.

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    from heplab.events.hdf5 import write_hdf5
    from heplab.events.parquet import write_parquet

    target = Path(path)
    if format == "parquet":
        write_parquet(jets, target, overwrite=overwrite)
    elif format == "hdf5":
        write_hdf5(jets, target, key="jets", overwrite=overwrite)
    elif format == "root":
        import uproot

        branches = _root_branches(jets)
        with atomic_output(target, overwrite=overwrite) as tmp, uproot.recreate(tmp) as f:
            f.mktree(
                JET_TREE,
                {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()},
            )
            if len(jets):
                f[JET_TREE].extend(branches)
    else:
        raise ValueError(f"unknown jets format {format!r}")
    return target
