"""ROOT files through uproot: NanoAOD-style and Delphes-style trees.

Writing (:func:`write_root`) makes one flat ``TTree`` of one of two styles:

``nanoaod`` (tree ``Events``)
    A counter branch ``nX`` per collection and one jagged branch ``X_field`` per field,
    as CMS NanoAOD does: ``particles`` -> ``nPart``, ``Part_px``, ``Part_py``, ...;
    ``pfcands`` -> ``nPFCand``, ``PFCand_*``; ``partons`` -> ``nParton``, ``Parton_*``;
    any other list of records keeps its name. 4-momenta are stored as Cartesian
    ``px, py, pz, energy`` [GeV] so that they read back bit for bit (a NanoAOD ``pt, eta,
    phi, mass`` collection is converted on reading). Event scalars keep their names
    (``event_id``, ``weight``, ``met``, ...); a list of numbers ``f`` gets a counter ``nf``.

``delphes`` (tree ``Delphes``)
    Branches named as Delphes names them: a counter ``X_size`` and ``X.Field`` per field.
    ``particles`` -> ``Particle`` (``PT, Eta, Phi, Mass, E, Px, Py, Pz, PID, Charge,
    Status, X, Y, Z, IsPU``), ``pfcands`` -> ``ParticleFlowCandidate`` (``... D0, DZ,
    ErrorD0, ErrorDZ, IsRecoPU``), ``partons`` -> ``Parton`` (``... Status, M1``; a heplab
    addition), missing transverse momentum -> ``MissingET.MET``, ``MissingET.Phi`` (and
    ``MissingET.SumET``), event scalars -> ``Event.Number``, ``Event.Weight``,
    ``Event.ID1``, ``Event.ID2``, ``Event.ProcessID``, ``Event.Scale`` (pT-hat) and
    ``Event.PVZ``. uproot writes plain
    jagged branches, not Delphes' split ``TClonesArray`` objects, so ROOT with the Delphes
    library sees them as ordinary branches.

Reading (:func:`read_root`) maps both styles back to the data model of
:mod:`heplab.events.schema`. It also reads real Delphes files (split ``TClonesArray``
branches, which uproot names ``Particle/Particle.PT``): ``Particle`` (status-1 entries)
-> ``particles``, ``ParticleFlowCandidate`` or ``EFlowTrack`` + ``EFlowPhoton`` +
``EFlowNeutralHadron`` -> ``pfcands``, ``Jet``, ``GenJet``, ``FatJet``, ``Electron``,
``Muon``, ``Photon`` -> ``jets``, ``genjets``, ``fatjets``, ``electrons``, ``muons``,
``photons`` (each with ``px, py, pz, energy`` [GeV]), ``MissingET`` -> ``met``,
``met_phi``, and ``Event`` -> the event scalars; and real NanoAOD-like trees (any ``nX`` +
``X_*`` collection; ``pt, eta, phi, mass`` become ``px, py, pz, energy``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import awkward as ak
import numpy as np

from heplab.errors import ConfigError, DataError
from heplab.events._util import atomic_output, data_error, existing_path
from heplab.events.model import (
    COLLECTION_FIELDS,
    EVENT_FIELD_DTYPES,
    MOMENTUM_FIELDS,
    cast_fields,
    with_vector,
)
from heplab.events.schema import EVENT_FIELDS

if TYPE_CHECKING:
    import uproot

__all__ = [
    "DELPHES_TREE",
    "NANOAOD_TREE",
    "RootStyle",
    "list_trees",
    "open_root",
    "read_root",
    "tree_to_events",
    "write_root",
]

log = logging.getLogger(__name__)

RootStyle = Literal["nanoaod", "delphes"]

#: Tree names of the two styles.
NANOAOD_TREE: Final = "Events"
DELPHES_TREE: Final = "Delphes"

_TITLE_PREFIX: Final = "heplab events"
_BATCH: Final = 100_000  # events per uproot extend() call

# NanoAOD style: heplab collection -> ROOT collection name.
_NANO_COLLECTIONS: Final = {"particles": "Part", "pfcands": "PFCand", "partons": "Parton"}
# Foreign NanoAOD scalars -> heplab scalars (used only where the heplab name is absent).
_NANO_SCALARS: Final = {
    "event": "event_id",
    "genWeight": "weight",
    "Generator_id1": "id1",
    "Generator_id2": "id2",
    "MET_pt": "met",
    "MET_phi": "met_phi",
    "MET_sumEt": "sumet",
}

# Delphes style: heplab collection -> (Delphes branch, heplab field -> Delphes field).
_DELPHES_COLLECTIONS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "particles": (
        "Particle",
        {
            "px": "Px",
            "py": "Py",
            "pz": "Pz",
            "energy": "E",
            "pid": "PID",
            "charge": "Charge",
            "vx": "X",
            "vy": "Y",
            "vz": "Z",
            "pileup": "IsPU",
        },
    ),
    "partons": (
        "Parton",
        {
            "px": "Px",
            "py": "Py",
            "pz": "Pz",
            "energy": "E",
            "pid": "PID",
            "status": "Status",
            "mother": "M1",
        },
    ),
    "pfcands": (
        "ParticleFlowCandidate",
        {
            "px": "Px",
            "py": "Py",
            "pz": "Pz",
            "energy": "E",
            "pid": "PID",
            "charge": "Charge",
            "d0": "D0",
            "dz": "DZ",
            "d0err": "ErrorD0",
            "dzerr": "ErrorDZ",
        },
    ),
}
_DELPHES_EVENT: Final = {
    "event_id": "Number",
    "weight": "Weight",
    "id1": "ID1",
    "id2": "ID2",
    "process_code": "ProcessID",
    "pthat": "Scale",
    "pv_z": "PVZ",
}
_DELPHES_MET: Final = {"met": "MET", "met_phi": "Phi", "sumet": "SumET"}
# Fields heplab adds to Delphes collections for Delphes readers (derived on writing).
_DELPHES_DERIVED: Final = ("PT", "Eta", "Phi", "Mass")
# Real-Delphes physics objects read when present: branch -> (heplab field, mass [GeV]).
_DELPHES_OBJECTS: Final = {
    "Jet": ("jets", None),
    "GenJet": ("genjets", None),
    "FatJet": ("fatjets", None),
    "Electron": ("electrons", 0.000510999),
    "Muon": ("muons", 0.1056584),
    "Photon": ("photons", 0.0),
}
_DELPHES_OBJECT_EXTRAS: Final = {
    "Charge": "charge",
    "BTag": "btag",
    "TauTag": "tautag",
    "Flavor": "flavor",
}
_PION_MASS: Final = 0.13957


# --------------------------------------------------------------------------- helpers


def _spherical(rec: ak.Array) -> dict[str, ak.Array]:
    """pt, eta, phi, signed mass [GeV] of records with px, py, pz, energy (float32).

    ``eta`` of a particle along the beam (pT = 0) is set to +-999.9 as Delphes does.
    """
    px, py, pz, e = (ak.values_astype(rec[f], np.float64) for f in MOMENTUM_FIELDS)
    pt = np.hypot(px, py)
    safe_pt = ak.where(pt > 0, pt, 1.0)
    eta = ak.where(pt > 0, np.arcsinh(pz / safe_pt), np.sign(pz) * 999.9)
    m2 = e * e - (px * px + py * py + pz * pz)
    mass = np.sign(m2) * np.sqrt(np.abs(m2))
    return {
        "PT": ak.values_astype(pt, np.float32),
        "Eta": ak.values_astype(eta, np.float32),
        "Phi": ak.values_astype(np.arctan2(py, px), np.float32),
        "Mass": ak.values_astype(mass, np.float32),
    }


def _cartesian(
    pt: ak.Array,
    eta: ak.Array,
    phi: ak.Array,
    *,
    mass: ak.Array | float | None = None,
    energy: ak.Array | None = None,
) -> dict[str, ak.Array]:
    """px, py, pz, energy [GeV, float32] from pt, eta, phi and a mass or an energy."""
    pt = ak.values_astype(pt, np.float64)
    eta = ak.values_astype(eta, np.float64)
    phi = ak.values_astype(phi, np.float64)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    if energy is None:
        m = 0.0 if mass is None else mass
        if not isinstance(m, float):
            m = ak.values_astype(m, np.float64)
        p2 = px * px + py * py + pz * pz
        m2 = np.sign(m) * m * m
        energy = np.sqrt(np.maximum(p2 + m2, 0.0))
    return {
        "px": ak.values_astype(px, np.float32),
        "py": ak.values_astype(py, np.float32),
        "pz": ak.values_astype(pz, np.float32),
        "energy": ak.values_astype(energy, np.float32),
    }


def _leaf_kind(layout: ak.contents.Content) -> str | None:
    """None if ``layout`` bottoms out in plain numbers, else what is wrong with it."""
    while True:
        if layout.parameter("__array__") in ("string", "bytestring"):
            return "strings"
        if layout.is_option:
            return "missing values (None)"
        if layout.is_union:
            return "mixed types"
        if layout.is_indexed or layout.is_list:
            layout = layout.content
        elif layout.is_numpy or layout.is_unknown:
            return None
        else:
            return "records"


def _classify(name: str, values: ak.Array, path: Path) -> str:
    """'scalar', 'list' or 'records' for a top-level field; DataError if ROOT can't hold it."""
    layout = ak.to_layout(values)
    depth = values.ndim
    if values.fields:
        if depth != 2:
            raise data_error(
                path,
                f"cannot write field {name!r} to ROOT: only lists of flat records are supported",
            )
        for sub in values.fields:
            sub_values = values[sub]
            problem = _leaf_kind(ak.to_layout(sub_values))
            if sub_values.fields or sub_values.ndim != 2 or problem:
                raise data_error(
                    path,
                    f"cannot write field {name}.{sub} to ROOT: "
                    f"{problem or 'nested lists or records'}",
                )
        return "records"
    problem = _leaf_kind(layout)
    if problem or depth > 2:
        raise data_error(path, f"cannot write field {name!r} to ROOT: {problem or 'nested lists'}")
    return "list" if depth == 2 else "scalar"


def _plain(values: ak.Array) -> ak.Array:
    """Drop record names and regular-array shapes that uproot need not see."""
    out = ak.without_parameters(values)
    if out.ndim == 2:
        out = ak.from_regular(out, axis=1)
    return out


def _zip(fields: Mapping[str, ak.Array]) -> ak.Array:
    return ak.zip(dict(fields), depth_limit=2, with_name=None)


def _nanoaod_branches(events: ak.Array, path: Path) -> dict[str, ak.Array]:
    branches: dict[str, ak.Array] = {}
    for name in events.fields:
        values = events[name]
        kind = _classify(name, values, path)
        if kind == "records":
            target = _NANO_COLLECTIONS.get(name, name)
            branches[target] = _zip({f: _plain(values[f]) for f in values.fields})
        else:
            branches[name] = _plain(values)
    return branches


def _delphes_branches(events: ak.Array, path: Path) -> dict[str, ak.Array]:
    n = len(events)
    ones = np.ones(n, dtype=np.int64)
    branches: dict[str, ak.Array] = {}
    event_scalars: dict[str, ak.Array] = {}
    met_scalars: dict[str, ak.Array] = {}
    for name in events.fields:
        values = events[name]
        kind = _classify(name, values, path)
        if kind == "records":
            target, mapping = _DELPHES_COLLECTIONS.get(name, (name, {}))
            fields: dict[str, ak.Array] = {}
            if name in _DELPHES_COLLECTIONS and set(MOMENTUM_FIELDS) <= set(values.fields):
                fields.update(_spherical(values))
            for f in values.fields:
                if name == "pfcands" and f == "from_pv":
                    fields["IsRecoPU"] = ak.values_astype(~_plain(values[f]), np.int32)
                else:
                    fields[mapping.get(f, f)] = _plain(values[f])
            if name == "particles":
                fields.setdefault("Status", ak.ones_like(values[values.fields[0]], dtype=np.int32))
            branches[target] = _zip(fields)
        elif kind == "scalar" and name in _DELPHES_EVENT:
            event_scalars[_DELPHES_EVENT[name]] = _plain(values)
        elif kind == "scalar" and name in _DELPHES_MET:
            met_scalars[_DELPHES_MET[name]] = _plain(values)
        else:
            branches[name] = _plain(values)
    if event_scalars:
        branches["Event"] = ak.unflatten(_zip(event_scalars), ones)
    if met_scalars:
        branches["MissingET"] = ak.unflatten(_zip(met_scalars), ones)
    return branches


def write_root(
    events: ak.Array,
    path: str | os.PathLike[str],
    *,
    style: RootStyle = "nanoaod",
    overwrite: bool = False,
) -> None:
    """Write ``events`` to a ROOT file with one flat TTree, atomically.

    Parameters
    ----------
    events : ak.Array
        Events in the data model (scalars, lists of numbers and lists of flat records).
    path : path
        Output file (``.root``).
    style : {"nanoaod", "delphes"}
        Branch naming; see the module docstring. The tree is ``Events`` or ``Delphes``.
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    heplab.errors.OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    DataError
        If a field cannot be stored in a flat tree (strings, None, lists of lists).
    ConfigError
        For an unknown ``style``.
    """
    import uproot

    if style not in ("nanoaod", "delphes"):
        raise ConfigError(f"unknown ROOT style {style!r} (choose 'nanoaod' or 'delphes')")
    if not isinstance(events, ak.Array):
        events = ak.Array(events)
    target = Path(path)
    if not events.fields:
        raise data_error(target, "cannot write to ROOT: events are not records")
    if style == "nanoaod":
        tree_name: str = NANOAOD_TREE

        def counter(name: str) -> str:
            return f"n{name}"

        def field(outer: str, inner: str) -> str:
            return f"{outer}_{inner}"

        def build(batch: ak.Array) -> dict[str, ak.Array]:
            return _nanoaod_branches(batch, target)
    else:
        tree_name = DELPHES_TREE

        def counter(name: str) -> str:
            return f"{name}_size"

        def field(outer: str, inner: str) -> str:
            return f"{outer}.{inner}"

        def build(batch: ak.Array) -> dict[str, ak.Array]:
            return _delphes_branches(batch, target)

    with atomic_output(target, overwrite=overwrite) as tmp, uproot.recreate(tmp) as file:
        first = build(events[:_BATCH])
        tree = file.mktree(
            tree_name,
            first,
            title=f"{_TITLE_PREFIX} ({style} style)",
            counter_name=counter,
            field_name=field,
        )
        for start in range(_BATCH, len(events), _BATCH):
            tree.extend(build(events[start : start + _BATCH]))
    log.info("wrote %d events to %s (%s style)", len(events), target, style)


# --------------------------------------------------------------------------- reading


def open_root(path: str | os.PathLike[str]) -> uproot.ReadOnlyDirectory:
    """Open a ROOT file with uproot; :class:`DataError` if it is missing or not ROOT."""
    import uproot

    p = existing_path(path)
    if p.is_dir():
        raise data_error(p, "is a directory, not a ROOT file")
    try:
        file = uproot.open(p)
        end = int(file.file.fEND)
    except Exception as exc:
        raise data_error(p, "not a readable ROOT file (corrupt or truncated?)", exc) from exc
    size = p.stat().st_size
    if size < end:
        file.close()
        raise data_error(p, f"truncated ROOT file ({size} of {end} bytes)")
    return file


def list_trees(file: uproot.ReadOnlyDirectory) -> list[str]:
    """Names (without cycle) of the TTrees in ``file``, sub-directories included."""
    names = file.classnames(cycle=False)
    return [name for name, cls in names.items() if cls == "TTree"]


def _pick_tree(file: uproot.ReadOnlyDirectory, path: Path, tree: str | None) -> str:
    trees = list_trees(file)
    if tree is not None:
        if tree not in trees:
            raise data_error(path, f"no TTree {tree!r} (trees: {', '.join(trees) or 'none'})")
        return tree
    for preferred in (NANOAOD_TREE, DELPHES_TREE):
        if preferred in trees:
            return preferred
    if len(trees) == 1:
        return trees[0]
    if not trees:
        raise data_error(path, "ROOT file holds no TTree")
    raise data_error(path, f"ROOT file holds several trees ({', '.join(trees)}); name one")


class _MappingError(ValueError):
    """A tree whose branches cannot be mapped to the data model."""


class _Reader:
    """Reads branches of one tree on demand, turning uproot failures into DataError."""

    def __init__(self, tree: Any, path: Path) -> None:
        self.tree = tree
        self.path = path
        self.cache: dict[str, ak.Array] = {}

    def __call__(self, key: str) -> ak.Array:
        if key not in self.cache:
            try:
                self.cache[key] = self.tree[key].array(library="ak")
            except Exception as exc:
                raise data_error(
                    self.path, f"cannot read branch {key!r} (corrupt or truncated file?)", exc
                ) from exc
        return self.cache[key]


Builder = Callable[[_Reader], ak.Array]


def _leaf(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _branch_info(tree: Any) -> list[tuple[str, Any]]:
    """(key, branch) of every branch that holds data (no parents of split branches)."""
    out = []
    for key in tree.keys(recursive=True):
        branch = tree[key]
        if len(branch.branches) == 0:
            out.append((key, branch))
    return out


def _is_jagged(branch: Any) -> bool:
    import uproot

    return isinstance(branch.interpretation, uproot.interpretation.jagged.AsJagged)


def _is_plain_data(branch: Any) -> bool:
    import uproot

    interp = branch.interpretation
    if isinstance(interp, uproot.interpretation.jagged.AsJagged):
        interp = interp.content
    return isinstance(interp, uproot.interpretation.numerical.AsDtype)


# ---- NanoAOD style


def _plan_nanoaod(tree: Any, heplab_written: bool) -> dict[str, Builder]:
    plan: dict[str, Builder] = {}
    groups: dict[str, list[str]] = {}
    counters: set[str] = set()
    scalars: list[str] = []
    for key, branch in _branch_info(tree):
        if not _is_plain_data(branch):
            log.debug("skipping branch %s (%s)", key, branch.typename)
            continue
        count = branch.count_branch
        if count is not None:
            counters.add(count.name)
            groups.setdefault(count.name, []).append(key)
        elif _is_jagged(branch):
            plan[_leaf(key)] = _direct(key)  # a std::vector branch
        else:
            scalars.append(key)
    for key in scalars:
        if _leaf(key) not in counters:
            plan[_leaf(key)] = _direct(key)
    reverse = {v: k for k, v in _NANO_COLLECTIONS.items()}
    for count, keys in groups.items():
        collection = count[1:] if count.startswith("n") else count
        if len(keys) == 1 and _leaf(keys[0]) == collection:
            plan[collection] = _direct(keys[0])
            continue
        fields = {}
        for key in keys:
            leaf = _leaf(key)
            fields[leaf[len(collection) + 1 :] if leaf.startswith(f"{collection}_") else leaf] = key
        name = reverse.get(collection, collection)
        plan[name] = _nano_collection(name, fields, heplab_written)
    if not heplab_written:
        for source, target in _NANO_SCALARS.items():
            if source in plan and target not in plan:
                plan[target] = plan.pop(source)
    return plan


def _direct(key: str) -> Builder:
    return lambda read: read(key)


def _nano_collection(name: str, fields: dict[str, str], heplab_written: bool) -> Builder:
    def build(read: _Reader) -> ak.Array:
        values = {f: read(k) for f, k in fields.items()}
        if not heplab_written:
            if "pdgId" in values and "pid" not in values:
                values["pid"] = values.pop("pdgId")
            if not set(MOMENTUM_FIELDS) <= set(values) and {"pt", "eta", "phi"} <= set(values):
                p4 = _cartesian(
                    values.pop("pt"),
                    values.pop("eta"),
                    values.pop("phi"),
                    mass=values.pop("mass", None),
                )
                values = {**p4, **values}
        out = _zip(values)
        return cast_fields(out, COLLECTION_FIELDS[name]) if name in COLLECTION_FIELDS else out

    return build


# ---- Delphes style


def _delphes_layout(tree: Any) -> tuple[dict[str, dict[str, str]], dict[str, str], set[str]]:
    """Collections (name -> field -> key), plain branches (name -> key), counters."""
    collections: dict[str, dict[str, str]] = {}
    plain: dict[str, str] = {}
    counters: set[str] = set()
    for key, branch in _branch_info(tree):
        leaf = _leaf(key)
        if "." in leaf:
            collection, field = leaf.split(".", 1)
            if _is_plain_data(branch):
                collections.setdefault(collection, {})[field] = key
        elif leaf.endswith("_size"):
            counters.add(leaf)
        elif _is_plain_data(branch):
            plain[leaf] = key
    return collections, plain, counters


def _looks_delphes(tree: Any) -> bool:
    collections, _, counters = _delphes_layout(tree)
    return bool(counters) or bool(collections)


def _delphes_momentum(
    read: _Reader, fields: Mapping[str, str], mass: float | None
) -> dict[str, ak.Array]:
    if all(f in fields for f in ("Px", "Py", "Pz", "E")):
        return {
            "px": read(fields["Px"]),
            "py": read(fields["Py"]),
            "pz": read(fields["Pz"]),
            "energy": read(fields["E"]),
        }
    pt_field = "PT" if "PT" in fields else "ET"
    if not all(f in fields for f in (pt_field, "Eta", "Phi")):
        raise _MappingError(f"Delphes collection lacks a momentum (fields: {', '.join(fields)})")
    pt, eta, phi = read(fields[pt_field]), read(fields["Eta"]), read(fields["Phi"])
    if "E" in fields:
        return _cartesian(pt, eta, phi, energy=read(fields["E"]))
    if "Mass" in fields:
        return _cartesian(pt, eta, phi, mass=read(fields["Mass"]))
    return _cartesian(pt, eta, phi, mass=mass if mass is not None else 0.0)


def _delphes_model_collection(name: str, fields: dict[str, str], heplab_written: bool) -> Builder:
    _, mapping = _DELPHES_COLLECTIONS[name]
    reverse = {v: k for k, v in mapping.items()}

    def build(read: _Reader) -> ak.Array:
        values: dict[str, ak.Array] = _delphes_momentum(read, fields, None)
        for dfield, key in fields.items():
            if dfield in ("Px", "Py", "Pz", "E"):
                continue
            if dfield in reverse:
                values[reverse[dfield]] = read(key)
            elif name == "pfcands" and dfield == "IsRecoPU":
                values["from_pv"] = read(key) == 0
            elif (
                heplab_written
                and dfield not in _DELPHES_DERIVED
                and not (name == "particles" and dfield == "Status")
            ):
                values[dfield] = read(key)
        if name == "particles" and "Status" in fields and not heplab_written:
            keep = read(fields["Status"]) == 1
            values = {k: v[keep] for k, v in values.items()}
        return cast_fields(_zip(values), COLLECTION_FIELDS[name])

    return build


def _delphes_eflow(collections: dict[str, dict[str, str]]) -> Builder:
    def build(read: _Reader) -> ak.Array:
        parts = []
        dtypes = COLLECTION_FIELDS["pfcands"]
        if "EFlowTrack" in collections:
            fields = collections["EFlowTrack"]
            values = _delphes_momentum(read, fields, _PION_MASS)
            template = values["px"]
            values["pid"] = (
                read(fields["PID"])
                if "PID" in fields
                else ak.full_like(template, 211, dtype=np.int32)
            )
            values["charge"] = (
                read(fields["Charge"])
                if "Charge" in fields
                else ak.zeros_like(template, dtype=np.int8)
            )
            for ours, theirs in (
                ("d0", "D0"),
                ("dz", "DZ"),
                ("d0err", "ErrorD0"),
                ("dzerr", "ErrorDZ"),
            ):
                values[ours] = read(fields[theirs]) if theirs in fields else ak.zeros_like(template)
            values["from_pv"] = (
                read(fields["IsRecoPU"]) == 0
                if "IsRecoPU" in fields
                else ak.ones_like(template, dtype=bool)
            )
            parts.append(cast_fields(_zip(values), dtypes))
        for branch, pid in (("EFlowPhoton", 22), ("EFlowNeutralHadron", 130)):
            if branch not in collections:
                continue
            values = _delphes_momentum(read, collections[branch], 0.0)
            template = values["px"]
            values["pid"] = ak.full_like(template, pid, dtype=np.int32)
            values["charge"] = ak.zeros_like(template, dtype=np.int8)
            for ours in ("d0", "dz", "d0err", "dzerr"):
                values[ours] = ak.zeros_like(template)
            values["from_pv"] = ak.ones_like(template, dtype=bool)
            parts.append(cast_fields(_zip(values), dtypes))
        return ak.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    return build


def _delphes_object(fields: dict[str, str], mass: float | None) -> Builder:
    def build(read: _Reader) -> ak.Array:
        values = _delphes_momentum(read, fields, mass)
        for theirs, ours in _DELPHES_OBJECT_EXTRAS.items():
            if theirs in fields:
                values[ours] = read(fields[theirs])
        return _zip(values)

    return build


def _firsts(key: str, dtype: str) -> Builder:
    def build(read: _Reader) -> ak.Array:
        values = ak.fill_none(ak.firsts(read(key)), 0)
        return ak.values_astype(values, np.dtype(dtype))

    return build


def _plan_delphes(tree: Any, heplab_written: bool) -> dict[str, Builder]:
    collections, plain, _ = _delphes_layout(tree)
    plan: dict[str, Builder] = {}
    for name, (branch, _) in _DELPHES_COLLECTIONS.items():
        if branch in collections:
            plan[name] = _delphes_model_collection(name, collections[branch], heplab_written)
    if "pfcands" not in plan and any(
        b in collections for b in ("EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron")
    ):
        plan["pfcands"] = _delphes_eflow(collections)
    for name, fields in (("Event", _DELPHES_EVENT), ("MissingET", _DELPHES_MET)):
        for ours, theirs in fields.items():
            if theirs in collections.get(name, {}):
                plan[ours] = _firsts(collections[name][theirs], EVENT_FIELD_DTYPES[ours])
    known = {b for b, _ in _DELPHES_COLLECTIONS.values()} | {"Event", "MissingET"}
    if heplab_written:
        for name, fields in collections.items():
            if name not in known:
                plan[name] = _generic_collection(fields)
        for name, key in plain.items():
            if name not in collections:
                plan[name] = _direct(key)
    else:
        for branch, (ours, mass) in _DELPHES_OBJECTS.items():
            if branch in collections and ours not in plan:
                plan[ours] = _delphes_object(collections[branch], mass)
    return plan


def _generic_collection(fields: dict[str, str]) -> Builder:
    return lambda read: _zip({f: read(k) for f, k in fields.items()})


# ---- common


def _defaults(n: int) -> dict[str, np.ndarray]:
    """Values of the event scalars for a tree that lacks them."""
    out: dict[str, np.ndarray] = {}
    for name in EVENT_FIELDS:
        dtype = np.dtype(EVENT_FIELD_DTYPES.get(name, "float32"))
        if name == "event_id":
            out[name] = np.arange(n, dtype=dtype)
        elif name == "weight":
            out[name] = np.ones(n, dtype=dtype)
        else:
            out[name] = np.zeros(n, dtype=dtype)
    return out


_ORDER: Final = (
    *EVENT_FIELDS,
    "process_code",
    "particles",
    "partons",
    "pfcands",
    "met",
    "met_phi",
    "sumet",
)


def read_root(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    *,
    tree: str | None = None,
) -> ak.Array:
    """Read a NanoAOD-style or Delphes-style ROOT tree into heplab events.

    Parameters
    ----------
    path : path
        A ROOT file.
    columns : list of str, optional
        Top-level fields of the data model to read (``"particles.px"`` reads one
        sub-field); only their branches are read. All if None.
    tree : str, optional
        Tree name; default ``Events``, else ``Delphes``, else the file's only TTree.

    Returns
    -------
    ak.Array
        Events with the data model's field names and dtypes (momenta in GeV, vertices in
        mm; 4-momenta with the ``vector`` Momentum4D behaviour). Trees not written by heplab get defaults for absent event scalars
        (``event_id`` counts from 0, ``weight`` is 1, the others 0).

    Raises
    ------
    DataError
        For a missing, corrupt or truncated file, a missing tree or requested column.
    """
    p = existing_path(path)
    with open_root(p) as file:
        name = _pick_tree(file, p, tree)
        try:
            ttree = file[name]
        except Exception as exc:
            raise data_error(
                p, f"cannot read TTree {name!r} (corrupt or truncated file?)", exc
            ) from exc
        return tree_to_events(ttree, columns, source=p)


def tree_to_events(
    tree: Any,
    columns: Sequence[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
) -> ak.Array:
    """Map an open uproot ``TTree`` (NanoAOD- or Delphes-style) to heplab events.

    This is :func:`read_root` for a tree already opened with uproot
    (``uproot.open(path)["Delphes"]``).

    Parameters
    ----------
    tree : uproot.TTree
        The tree.
    columns : list of str, optional
        Top-level fields to read; all if None.
    source : path, optional
        Named in error messages (default: the tree's file path).
    """
    p = Path(source) if source is not None else Path(str(getattr(tree, "file_path", "?")))
    name = str(getattr(tree, "name", "?"))
    try:
        n_entries = int(tree.num_entries)
        heplab_written = str(tree.title).startswith(_TITLE_PREFIX)
        style = "delphes" if _looks_delphes(tree) else "nanoaod"
        if style == "delphes":
            plan = _plan_delphes(tree, heplab_written)
        else:
            plan = _plan_nanoaod(tree, heplab_written)
    except DataError:
        raise
    except Exception as exc:
        raise data_error(
            p, f"cannot read TTree {name!r} (corrupt or truncated file?)", exc
        ) from exc
    log.debug("%s: tree %s read as %s style (heplab: %s)", p, name, style, heplab_written)
    defaults = {} if heplab_written else _defaults(n_entries)
    available = list(dict.fromkeys([*(f for f in _ORDER if f in plan or f in defaults), *plan]))
    wanted = available
    if columns is not None:
        missing = [c for c in columns if c.split(".", 1)[0] not in available]
        if missing:
            raise data_error(
                p,
                f"no column(s) {', '.join(missing)} in tree {name!r}"
                f" (present: {', '.join(available)})",
            )
        wanted = list(dict.fromkeys(c.split(".", 1)[0] for c in columns))
    read = _Reader(tree, p)
    out: dict[str, Any] = {}
    for field in wanted:
        if field in plan:
            try:
                values = plan[field](read)
            except _MappingError as exc:
                raise data_error(p, f"cannot read field {field!r}: {exc}") from exc
        else:
            values = ak.Array(defaults[field])
        if field in EVENT_FIELD_DTYPES and values.ndim == 1 and not values.fields:
            values = ak.values_astype(values, np.dtype(EVENT_FIELD_DTYPES[field]))
        out[field] = values
    if not out:
        raise data_error(p, f"tree {name!r} holds no branch heplab can read")
    events = ak.zip(out, depth_limit=1)
    if columns is not None:
        events = _project(events, columns, p)
    return with_vector(events)


def _project(events: ak.Array, columns: Sequence[str], path: Path) -> ak.Array:
    """Keep the (possibly dotted) ``columns`` of ``events``."""
    out: dict[str, Any] = {}
    for column in columns:
        top, _, sub = column.partition(".")
        if not sub:
            out[top] = events[top]
            continue
        current = out.get(top)
        values = events[top]
        if sub not in values.fields:
            raise data_error(path, f"no column {column!r} (fields of {top}: {values.fields})")
        if isinstance(current, dict):
            current[sub] = values[sub]
        elif current is None:
            out[top] = {sub: values[sub]}
    zipped = {
        k: (ak.zip(v, depth_limit=events[k].ndim) if isinstance(v, dict) else v)
        for k, v in out.items()
    }
    return ak.zip(zipped, depth_limit=1)
